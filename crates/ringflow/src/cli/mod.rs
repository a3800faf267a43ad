//! The `ringflow` command line: the syntax ([`Cli`]) and one module per command, each
//! holding its own arguments and what it does. Commands parse, wire and print; the work
//! is done by the library (the node assembly in [`crate::node`], the sort driver in
//! [`crate::sort`], the clients).

mod certs;
mod config;
mod dht;
mod forget;
mod gen;
mod job;
mod local;
mod nexmark;
mod node;
mod sort;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use certs::CertsCommand;
use config::ConfigCommand;
use dht::{KeyArgs, PutArgs};
use forget::ForgetArgs;
use gen::GenArgs;
use job::JobCommand;
use local::LocalArgs;
use node::{CoordinatorArgs, WorkerArgs};
use sort::SortArgs;
use status::StatusArgs;

/// ringflow: actor-based cluster runtime for distributed stream processing.
#[derive(Debug, Parser)]
#[command(name = "ringflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local cluster (a coordinator and workers as processes on loopback) until Ctrl-C.
    Local(LocalArgs),
    /// Run the coordinator.
    Coordinator(CoordinatorArgs),
    /// Run a worker.
    Worker(WorkerArgs),
    /// Manage the cluster CA and node / client certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Show members, the ring's epoch and partitions without an owner.
    Status(StatusArgs),
    /// Store a value in the DHT.
    Put(PutArgs),
    /// Read a value from the DHT (exit status 1 if the key does not exist).
    Get(KeyArgs),
    /// Delete a key from the DHT (prints how many keys were deleted).
    Del(KeyArgs),
    /// Submit, list, inspect, cancel, savepoint and rescale stream jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Run Nexmark benchmark queries as jobs on the cluster.
    #[command(subcommand)]
    Nexmark(nexmark::NexmarkCommand),
    /// Generate input for `sort`: Sort Benchmark (gensort) records or lines of words.
    Gen(GenArgs),
    /// Sort files with the cluster (sample, range-partition, external merge sort), or
    /// check a sorted output with `--verify`.
    Sort(SortArgs),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Declare that a dead worker will not come back: partitions kept for it (below a
    /// quorum of their replicas, refusing reads and writes) are planned again from the
    /// survivors, losing writes only the lost workers held.
    ForgetWorker(ForgetArgs),
}

impl Command {
    /// Whether this is a short-lived client command (as opposed to a node).
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Command::Certs(_)
                | Command::Status(_)
                | Command::Put(_)
                | Command::Get(_)
                | Command::Del(_)
                | Command::Job(_)
                | Command::Nexmark(_)
                | Command::Gen(_)
                | Command::Sort(_)
                | Command::Config(_)
                | Command::ForgetWorker(_)
        )
    }
}

/// How a client reaches the cluster: flags, then environment, then the profile.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Coordinator address, HOST:PORT.
    #[arg(long, env = "RINGFLOW_CLUSTER")]
    pub cluster: Option<String>,
    /// Directory with ca.crt and the client certificate.
    #[arg(long, env = "RINGFLOW_CERTS")]
    pub certs: Option<PathBuf>,
    /// Base name of the client certificate files.
    #[arg(long, env = "RINGFLOW_CERT_NAME")]
    pub cert_name: Option<String>,
    /// Cluster name.
    #[arg(long, env = "RINGFLOW_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Profile file [default: $XDG_CONFIG_HOME/ringflow/profile.toml].
    #[arg(long, env = "RINGFLOW_PROFILE")]
    pub profile: Option<PathBuf>,
}

/// Runs the parsed command; workers run the operators of `registry`.
pub fn run(cli: Cli, registry: ringflow_stream::Registry) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Local(a) => local::run(a),
        Command::Coordinator(a) => node::coordinator(a),
        Command::Worker(a) => node::worker(a, registry),
        Command::Job(c) => job::run(c),
        Command::Nexmark(c) => nexmark::run(c),
        Command::Certs(c) => certs::run(c),
        Command::Status(a) => status::run(a),
        Command::Put(a) => dht::put(a),
        Command::Get(a) => dht::get(a),
        Command::Del(a) => dht::del(a),
        Command::Gen(a) => gen::run(a),
        Command::Sort(a) => sort::run(a),
        Command::Config(c) => config::run(c),
        Command::ForgetWorker(a) => forget::run(a),
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
