//! `ringflow coordinator` and `ringflow worker`: long-running nodes. Their settings come
//! from a TOML file and flags; the worker's services are assembled by [`crate::node`].

use std::path::Path;
use std::process::ExitCode;

use crate::{CoordinatorConfig, CoordinatorHandle, WorkerConfig};
use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::notify::notify_or_warn;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, env = "RINGFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// QUIC listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (membership and assignment).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory with ca.crt and this node's certificate.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Base name of this node's certificate files.
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Partition count (power of two), fixed at cluster creation.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor.
    #[arg(long)]
    pub replication: Option<u32>,
    /// Heartbeat interval in milliseconds.
    #[arg(long)]
    pub heartbeat_interval_ms: Option<u64>,
    /// Failure timeout in milliseconds.
    #[arg(long)]
    pub failure_timeout_ms: Option<u64>,
    /// After a restart, how long known workers keep their partitions while they reconnect (ms).
    #[arg(long)]
    pub recovery_grace_ms: Option<u64>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, env = "RINGFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Coordinator address, HOST:PORT.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Stable worker id.
    #[arg(long)]
    pub id: Option<String>,
    /// QUIC listen address (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address announced to peers, if not the bound one.
    #[arg(long)]
    pub advertise: Option<String>,
    /// Capacity weight.
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory with ca.crt and this node's certificate.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Base name of this node's certificate files [default: the worker id].
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Serve the DHT over RESP (Redis protocol) on this address (port 0 picks one).
    #[arg(long)]
    pub resp_listen: Option<SocketAddr>,
    /// Store stream jobs' checkpoints as files in this directory (shared by every
    /// worker) instead of the DHT (config key `stream.checkpoint_dir`).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// DHT durability: 0 fsyncs every write before acknowledging it; N > 0 acknowledges
    /// writes the OS has and fsyncs every N ms (config key `dht.fsync_interval_ms`).
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
    /// Seconds after a delete its tombstone may be forgotten, once every replica holds it
    /// (config key `dht.tombstone_grace_s`; 0 keeps tombstones forever).
    #[arg(long)]
    pub tombstone_grace_s: Option<u64>,
    /// Most keys one RESP command may name, e.g. in `MGET` or `MSET` (config key
    /// `dht.max_keys_per_command`).
    #[arg(long)]
    pub max_keys_per_command: Option<usize>,
    /// Largest reply the RESP port builds for one command, in bytes (config key
    /// `dht.max_reply_bytes`).
    #[arg(long)]
    pub max_reply_bytes: Option<usize>,
    /// Most RESP clients connected at once (config key `dht.max_clients`).
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Reads a TOML config file, naming the file and line of any mistake.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn write_addr_file(path: Option<&Path>, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    if let Some(p) = path {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

pub fn coordinator_config(a: &CoordinatorArgs) -> anyhow::Result<CoordinatorConfig> {
    let mut c: CoordinatorConfig = match &a.config {
        Some(p) => load_toml(p)?,
        None => CoordinatorConfig::default(),
    };
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = &a.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = &a.certs {
        c.tls.certs_dir = v.clone();
    }
    if let Some(v) = &a.name {
        c.tls.name = v.clone();
    }
    if let Some(v) = &a.cluster_name {
        c.cluster = v.clone();
    }
    if let Some(v) = a.partitions {
        c.partitions = v;
    }
    if let Some(v) = a.replication {
        c.replication = v;
    }
    if let Some(v) = a.heartbeat_interval_ms {
        c.heartbeat_interval_ms = v;
    }
    if let Some(v) = a.failure_timeout_ms {
        c.failure_timeout_ms = v;
    }
    if let Some(v) = a.metrics_listen {
        c.metrics_listen = Some(v);
    }
    if let Some(v) = a.recovery_grace_ms {
        c.recovery_grace_ms = v;
    }
    c.validate()?;
    Ok(c)
}

pub fn worker_config(a: &WorkerArgs) -> anyhow::Result<WorkerConfig> {
    let from_file = a.config.is_some();
    let mut c: WorkerConfig = match &a.config {
        Some(p) => load_toml(p)?,
        None => WorkerConfig::default(),
    };
    if let Some(v) = &a.id {
        c.id = v.clone();
        if !from_file {
            // Without a file, the id also names the data directory and the certificate.
            c.data_dir = std::path::PathBuf::from("data").join(v);
            c.tls.name = v.clone();
        }
    }
    if let Some(v) = &a.coordinator {
        c.coordinator = v.clone();
    }
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = &a.advertise {
        c.advertise = Some(v.clone());
    }
    if let Some(v) = a.capacity {
        c.capacity = v;
    }
    if let Some(v) = &a.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = &a.certs {
        c.tls.certs_dir = v.clone();
    }
    if let Some(v) = &a.name {
        c.tls.name = v.clone();
    }
    if let Some(v) = &a.cluster_name {
        c.cluster = v.clone();
    }
    if let Some(v) = a.resp_listen {
        c.dht.resp_listen = Some(v);
    }
    if let Some(v) = &a.checkpoint_dir {
        c.stream.checkpoint_dir = Some(v.clone());
    }
    if let Some(v) = a.tombstone_grace_s {
        c.dht.tombstone_grace_s = v;
    }
    if let Some(v) = a.max_keys_per_command {
        c.dht.max_keys_per_command = v;
    }
    if let Some(v) = a.max_reply_bytes {
        c.dht.max_reply_bytes = v;
    }
    if let Some(v) = a.max_clients {
        c.dht.max_clients = v;
    }
    if let Some(v) = a.fsync_interval_ms {
        c.dht.fsync_interval_ms = v;
    }
    if let Some(v) = a.metrics_listen {
        c.metrics_listen = Some(v);
    }
    c.validate()?;
    Ok(c)
}

pub fn coordinator(a: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let cfg = coordinator_config(&a)?;
    actix_rt::System::new().block_on(async move {
        let handle = CoordinatorHandle::start(cfg).await?;
        write_addr_file(a.addr_file.as_deref(), handle.local_addr())?;
        notify_or_warn(&format!(
            "READY=1\nSTATUS=listening on {}",
            handle.local_addr()
        ));
        super::shutdown_signal().await;
        notify_or_warn("STOPPING=1");
        handle.shutdown().await?;
        tracing::info!("coordinator stopped");
        Ok(ExitCode::SUCCESS)
    })
}

pub fn worker(a: WorkerArgs, registry: ringflow_stream::Registry) -> anyhow::Result<ExitCode> {
    let cfg = worker_config(&a)?;
    actix_rt::System::new().block_on(async move {
        let handle = crate::node::start_worker(cfg, registry).await?;
        write_addr_file(a.addr_file.as_deref(), handle.local_addr())?;
        notify_or_warn("STATUS=joining the cluster");
        // Ready only once joined: a unit ordered after this one finds a serving worker.
        let ready = async {
            handle.joined().await;
            tracing::info!("member of the cluster: ready");
            notify_or_warn("READY=1\nSTATUS=member of the cluster");
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = super::shutdown_signal() => {}
            _ = ready => {}
        }
        notify_or_warn("STOPPING=1\nSTATUS=handing partitions back");
        handle.shutdown().await?;
        tracing::info!("worker stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(file: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/config")
            .join(file)
    }

    #[test]
    fn shipped_example_configs_parse_and_validate() {
        let c: CoordinatorConfig =
            load_toml(&deploy("coordinator.toml")).expect("coordinator.toml");
        c.validate().expect("valid coordinator config");
        assert_eq!(c.partitions, 16384);
        let w: WorkerConfig = load_toml(&deploy("worker.toml")).expect("worker.toml");
        w.validate().expect("valid worker config");
        assert_eq!(w.tls.name, "worker-1");
    }

    #[test]
    fn config_mistakes_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "cluster = \"x\"\npartitons = 8\n").unwrap();
        let err = load_toml::<CoordinatorConfig>(&p).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("partitons"), "{err}");
    }
}
