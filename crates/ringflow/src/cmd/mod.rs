//! One module per command.

mod certs;
mod config;
mod dht;
mod gen;
mod job;
mod local;
mod node;
mod sort;
mod status;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the parsed command; workers run the operators of `registry`.
pub fn run(cli: Cli, registry: ringflow_stream::Registry) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Local(a) => local::run(a),
        Command::Coordinator(a) => node::coordinator(a),
        Command::Worker(a) => node::worker(a, registry),
        Command::Job(c) => job::run(c),
        Command::Certs(c) => certs::run(c),
        Command::Status(a) => status::run(a),
        Command::Put(a) => dht::put(a),
        Command::Get(a) => dht::get(a),
        Command::Del(a) => dht::del(a),
        Command::Gen(a) => gen::run(a),
        Command::Sort(a) => sort::run(a),
        Command::Config(c) => config::run(c),
    }
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        _ = term.recv() => tracing::info!("terminated: shutting down"),
    }
}
