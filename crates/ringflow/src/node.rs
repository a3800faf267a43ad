//! The node assembly: what a worker process runs beside its control plane. Its data-plane
//! services are the DHT (with its Redis-protocol port when `dht.resp_listen` is set) and
//! the stream runtime, whose registry also gets `sink.dht` (a DHT client of this worker's
//! own cluster). The `ringflow worker` command and custom worker binaries
//! ([`crate::WorkerBuilder`]) both start workers through [`start_worker`].

use std::rc::Rc;
use std::time::Duration;

use ringflow_cluster::{ClusterError, ServiceFactory, WorkerService};
use ringflow_stream::Registry;

use crate::dht_sink::{DhtBackend, DhtSink};
use crate::{Error, TlsIdentity, WorkerConfig, WorkerHandle};

/// The DHT's settings from a worker's `[dht]` section.
pub fn dht_config(cfg: &WorkerConfig) -> ringflow_dht::DhtConfig {
    ringflow_dht::DhtConfig {
        max_key: cfg.dht.max_key,
        max_value: cfg.dht.max_value,
        sync: cfg.dht.fsync_interval_ms == 0,
        sync_interval: Duration::from_millis(cfg.dht.fsync_interval_ms.max(1)),
        tombstone_grace: (cfg.dht.tombstone_grace_s > 0)
            .then(|| Duration::from_secs(cfg.dht.tombstone_grace_s)),
        max_keys_per_command: cfg.dht.max_keys_per_command,
        max_reply_bytes: cfg.dht.max_reply_bytes,
        max_clients: cfg.dht.max_clients,
        ..ringflow_dht::DhtConfig::default()
    }
}

/// The worker's services: the DHT (and its RESP port) and the stream runtime running
/// the operators of `registry`, plus `sink.dht`.
pub fn worker_services(
    cfg: &WorkerConfig,
    mut registry: Registry,
) -> Result<Vec<ServiceFactory>, Error> {
    let identity = TlsIdentity::from_dir(&cfg.tls.certs_dir, &cfg.tls.name)?;
    let backend = DhtBackend::start(cfg.coordinator.clone(), identity, cfg.cluster.clone());
    // Checkpoints of stream jobs are stored in the DHT, or in `[stream] checkpoint_dir`.
    let checkpoints: std::sync::Arc<dyn ringflow_stream::checkpoint::CheckpointStore> =
        match &cfg.stream.checkpoint_dir {
            Some(dir) => std::sync::Arc::new(ringflow_runtime::DirStore::new(dir)),
            None => std::sync::Arc::new(
                backend
                    .handle()
                    .map_err(|e| Error::Cluster(ClusterError::Service(e)))?,
            ),
        };
    registry.provide(backend);
    registry.provide(ringflow_stream::checkpoint::CheckpointStorage(checkpoints));
    registry.operator::<DhtSink>("sink.dht");
    Ok(vec![
        dht_with_resp(dht_config(cfg), cfg.dht.resp_listen),
        ringflow_runtime::service_with(registry, cfg.stream.threads.unwrap_or(0)),
    ])
}

/// Starts a worker with its services (see [`worker_services`]); it joins the cluster in
/// the background ([`WorkerHandle::joined`] says when).
pub async fn start_worker(cfg: WorkerConfig, registry: Registry) -> Result<WorkerHandle, Error> {
    let services = worker_services(&cfg, registry)?;
    Ok(WorkerHandle::start_with(cfg, services).await?)
}

/// The DHT service, and its RESP port if `resp_listen` is set: bound once the store is
/// open, advertised as the service's `resp` address, served next to it on the network
/// thread.
fn dht_with_resp(
    dht: ringflow_dht::DhtConfig,
    resp_listen: Option<std::net::SocketAddr>,
) -> ServiceFactory {
    Box::new(move |ctx| {
        let mut service = ringflow_dht::DhtService::open(dht, ctx)?;
        let gateway = resp_listen
            .map(ringflow_dht::resp::Gateway::bind)
            .transpose()
            .map_err(|e| ClusterError::Service(e.to_string()))?;
        if let Some(g) = &gateway {
            service.advertise("resp", g.local_addr());
        }
        let service = service.start();
        if let Some(g) = gateway {
            g.spawn(service.clone());
        }
        Ok(service as Rc<dyn WorkerService>)
    })
}
