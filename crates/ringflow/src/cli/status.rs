//! `ringflow status`: members, epoch, unowned partitions.

use std::process::ExitCode;

use crate::profile::{self, Profile};
use crate::{ClusterClient, ClusterStatus, MemberState, TlsIdentity};
use anyhow::Context;

use crate::cli::ClientArgs;
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask this node (HOST:PORT) about itself instead of asking the coordinator.
    #[arg(long)]
    pub node: Option<String>,
}

/// Flags, then environment (clap reads both), then the profile.
pub fn resolve_client(a: &ClientArgs) -> anyhow::Result<Profile> {
    let path = a.profile.clone().or_else(profile::default_path);
    let saved = match &path {
        Some(p) => Profile::load(p)?,
        None => None,
    };
    let cluster = a
        .cluster
        .clone()
        .or_else(|| saved.as_ref().map(|p| p.cluster.clone()))
        .context("no cluster given: pass --cluster HOST:PORT, set RINGFLOW_CLUSTER, or start `ringflow local` to write a profile")?;
    let certs_dir = a
        .certs
        .clone()
        .or_else(|| saved.as_ref().map(|p| p.certs_dir.clone()))
        .context("no certificates given: pass --certs DIR (with ca.crt and a client certificate) or set RINGFLOW_CERTS")?;
    Ok(Profile {
        cluster,
        certs_dir,
        cert_name: a
            .cert_name
            .clone()
            .or_else(|| saved.as_ref().map(|p| p.cert_name.clone()))
            .unwrap_or_else(|| "client".into()),
        cluster_name: a
            .cluster_name
            .clone()
            .or_else(|| saved.as_ref().map(|p| p.cluster_name.clone()))
            .unwrap_or_else(|| "ringflow".into()),
    })
}

/// Connects with the resolved profile.
pub async fn connect(p: &Profile, target: &str) -> anyhow::Result<ClusterClient> {
    let identity = TlsIdentity::from_dir(&p.certs_dir, &p.cert_name)?;
    ClusterClient::connect(target, &identity, &p.cluster_name)
        .await
        .with_context(|| format!("connecting to {target}"))
}

pub fn run(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let p = resolve_client(&a.client)?;
    actix_rt::System::new().block_on(async move {
        let target = a.node.clone().unwrap_or_else(|| p.cluster.clone());
        let client = connect(&p, &target).await?;
        if a.node.is_some() {
            let info = client.node_info().await?;
            client.close().await;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "node {} ({:?}) epoch {} partitions {} primaries {} connected {}",
                    info.id, info.role, info.epoch, info.partitions, info.primaries, info.connected
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let status = client.status().await?;
        client.close().await;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", render(&status));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Whether every partition is owned with its full replica count by live members.
pub fn healthy(s: &ClusterStatus) -> bool {
    s.unowned.is_empty()
        && s.under_replicated == 0
        && s.members.iter().any(|m| m.state == MemberState::Alive)
}

/// The status as a table.
pub fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}  epoch {}  partitions {}  replication {}  {}",
        s.cluster,
        s.epoch,
        s.partitions,
        s.replication,
        if healthy(s) { "HEALTHY" } else { "DEGRADED" }
    );
    let _ = writeln!(
        out,
        "{:<20} {:<22} {:<10} {:>4} {:>10} {:>9} {:>14} {:>6}",
        "ID", "ADDRESS", "STATE", "CAP", "PARTITIONS", "PRIMARIES", "LAST HEARTBEAT", "EPOCH"
    );
    for m in &s.members {
        let hb = match m.last_heartbeat_ms_ago {
            Some(ms) => format!("{:.1}s ago", ms as f64 / 1000.0),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<22} {:<10} {:>4} {:>10} {:>9} {:>14} {:>6}",
            m.id.0,
            m.addr,
            m.state.to_string(),
            m.capacity,
            m.partitions,
            m.primaries,
            hb,
            m.member_epoch
        );
    }
    if s.members.is_empty() {
        let _ = writeln!(out, "(no workers yet)");
    }
    if s.unowned.is_empty() {
        let _ = writeln!(out, "unowned partitions: none");
    } else {
        let shown: Vec<String> = s.unowned.iter().take(16).map(|p| p.to_string()).collect();
        let more = if s.unowned.len() > 16 {
            format!(" ... ({} in all)", s.unowned.len())
        } else {
            String::new()
        };
        let _ = writeln!(out, "unowned partitions: {}{more}", shown.join(", "));
    }
    let _ = writeln!(out, "under-replicated partitions: {}", s.under_replicated);
    out
}
