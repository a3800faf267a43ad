//! `ringflow coordinator` and `ringflow worker`: long-running nodes.

use std::path::Path;
use std::process::ExitCode;

use crate::{CoordinatorConfig, CoordinatorHandle, WorkerConfig, WorkerHandle};
use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::cli::{CoordinatorArgs, WorkerArgs};
use crate::notify::notify_or_warn;

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
        let dht = ringflow_dht::DhtConfig {
            max_key: cfg.dht.max_key,
            max_value: cfg.dht.max_value,
            sync: cfg.dht.fsync_interval_ms == 0,
            sync_interval: std::time::Duration::from_millis(cfg.dht.fsync_interval_ms.max(1)),
            tombstone_grace: (cfg.dht.tombstone_grace_s > 0)
                .then(|| std::time::Duration::from_secs(cfg.dht.tombstone_grace_s)),
            ..ringflow_dht::DhtConfig::default()
        };
        let mut registry = registry;
        let identity = crate::TlsIdentity::from_dir(&cfg.tls.certs_dir, &cfg.tls.name)?;
        registry.provide(crate::dht_sink::DhtBackend::start(
            cfg.coordinator.clone(),
            identity,
            cfg.cluster.clone(),
        ));
        registry.operator::<crate::dht_sink::DhtSink>("sink.dht");
        let services = vec![
            dht_with_resp(dht, cfg.dht.resp_listen),
            ringflow_runtime::service(registry),
        ];
        let handle = WorkerHandle::start_with(cfg, services).await?;
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

/// The DHT service, and its RESP port if `resp_listen` is set: bound once the store is open,
/// advertised as the service's `resp` address, served next to it on the network thread.
fn dht_with_resp(
    dht: ringflow_dht::DhtConfig,
    resp_listen: Option<std::net::SocketAddr>,
) -> ringflow_cluster::ServiceFactory {
    Box::new(move |ctx| {
        let mut service = ringflow_dht::DhtService::open(dht, ctx)?;
        let gateway = resp_listen
            .map(ringflow_dht::resp::Gateway::bind)
            .transpose()
            .map_err(|e| ringflow_cluster::ClusterError::Service(e.to_string()))?;
        if let Some(g) = &gateway {
            service.advertise("resp", g.local_addr());
        }
        let service = service.start();
        if let Some(g) = gateway {
            g.spawn(service.clone());
        }
        Ok(service as std::rc::Rc<dyn ringflow_cluster::WorkerService>)
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
