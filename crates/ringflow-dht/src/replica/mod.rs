//! The DHT service a worker hosts: primary-coordinated, quorum-replicated reads and writes
//! over the worker's durable store.
//!
//! The primary of a key's partition (first of its replica set in the worker's view) assigns
//! the write's version (hybrid logical clock), stores it durably and replicates it to the
//! other owners, acknowledging once a majority of the replica set has it on disk. Reads ask a
//! majority, return the highest version, and repair replicas that were behind.
//!
//! One file per concern, all of them `impl DhtService`: `dispatch` (requests from streams,
//! batches taken apart, fencing), `write` (the primary's quorum write with re-stamping above
//! newer versions, a replica's store), `read` (quorum read, awaited read repair), `routing`
//! (placement, the lease check, redirects, requests sent to a partition's primary),
//! `handoff` (catching up on gained partitions), `upkeep` (following views: orphan push,
//! compaction), `tombstones` (forgotten only once every replica holds them), `clock` (the
//! HLC's high-water mark on disk), `coalesce` (per-peer request batching) and `metrics`.
//!
//! A primary acts only while it holds the worker's lease from the coordinator
//! ([`ringflow_cluster::lease`]). The RESP gateway is not started here: see
//! [`crate::resp::Gateway`].

mod clock;
mod coalesce;
mod config;
mod dispatch;
mod handoff;
mod metrics;
mod read;
mod routing;
mod tombstones;
mod upkeep;
mod write;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringflow_cluster::{ClusterError, ServiceContext, ServiceFactory, WorkerService};
use ringflow_proto::{ClusterView, PeerRole};
use ringflow_ring::WorkerId;
use tokio::sync::watch;

use crate::pool::StreamPool;
use crate::store::{Store, StoreOptions};
use crate::Hlc;
use metrics::metrics;

pub use config::DhtConfig;

/// A factory for [`ringflow_cluster::WorkerHandle::start_with`]: the DHT service alone,
/// without a RESP port (for one, see [`crate::resp::Gateway`]).
pub fn service(cfg: DhtConfig) -> ServiceFactory {
    Box::new(move |ctx: ServiceContext| {
        Ok(DhtService::open(cfg, ctx)?.start() as Rc<dyn WorkerService>)
    })
}

/// A stable node number for version tie-breaking.
pub fn node_number(id: &WorkerId) -> u32 {
    xxhash_rust::xxh3::xxh3_64(id.0.as_bytes()) as u32
}

/// The DHT service.
pub struct DhtService {
    me: WorkerId,
    store: Arc<Store>,
    views: watch::Receiver<Option<Arc<ClusterView>>>,
    peers: Rc<StreamPool>,
    /// Requests routed to other primaries, batched per peer.
    forward: Rc<coalesce::Coalescer>,
    hlc: RefCell<Hlc>,
    /// Where the clock's high-water mark is kept across restarts, and what was saved.
    hlc_file: std::path::PathBuf,
    hlc_saved: std::cell::Cell<u64>,
    cfg: DhtConfig,
    /// Partitions this node holds a replica of but has not caught up on yet (handoff in
    /// progress): its copies do not count towards read quorums.
    syncing: RefCell<BTreeSet<u32>>,
    /// Client-facing addresses announced in the worker's `Join` (the RESP port's).
    advertised: Vec<(String, String)>,
    /// Partitions this node no longer owns whose data it is handing to the owners.
    pushing: RefCell<BTreeSet<u32>>,
    /// The worker's lease from the coordinator: a primary reads and writes only while it
    /// holds (see [`ringflow_cluster::lease`]).
    lease: ringflow_cluster::Lease,
}

impl DhtService {
    /// Opens the worker's store (`data_dir/dht`) and builds the service. Nothing runs until
    /// [`DhtService::start`]; meanwhile [`DhtService::advertise`] can add client-facing
    /// addresses.
    pub fn open(cfg: DhtConfig, ctx: ServiceContext) -> Result<Self, ClusterError> {
        // Export every request series (at zero) from the start.
        let _ = metrics();
        let dir = ctx.data_dir.join("dht");
        let store = Store::open(StoreOptions {
            max_key: cfg.max_key,
            max_value: cfg.max_value,
            sync: cfg.sync,
            sync_interval: cfg.sync_interval,
            ..StoreOptions::new(dir)
        })
        .map_err(|e| ClusterError::Service(format!("opening the DHT store: {e}")))?;
        let node = node_number(&ctx.worker_id);
        // The clock never starts below a version this node issued or holds.
        let hlc_file = ctx.data_dir.join("dht-hlc");
        let mut hlc = Hlc::new(node);
        hlc.observe_ts(store.high_water());
        hlc.observe_ts(
            clock::load(&hlc_file)
                .map_err(|e| ClusterError::Service(format!("opening the DHT: {e}")))?,
        );
        let peers = Rc::new(StreamPool::new(
            ctx.endpoint.clone(),
            PeerRole::Worker,
            Some(ctx.worker_id.0.clone()),
            ctx.cluster.clone(),
            // Longer than a primary's own wait for its replicas, so that a forwarded request
            // gets the primary's answer rather than a local timeout.
            cfg.replica_timeout * 2 + Duration::from_secs(1),
        ));
        Ok(DhtService {
            me: ctx.worker_id,
            store: Arc::new(store),
            views: ctx.views,
            forward: coalesce::Coalescer::new(peers.clone()),
            peers,
            hlc_saved: std::cell::Cell::new(hlc.high_water()),
            hlc: RefCell::new(hlc),
            hlc_file,
            cfg,
            syncing: RefCell::new(BTreeSet::new()),
            advertised: Vec::new(),
            pushing: RefCell::new(BTreeSet::new()),
            lease: ctx.lease,
        })
    }

    /// Announces a client-facing address under `name` (e.g. `"resp"`): the worker sends it
    /// in its `Join` and the coordinator publishes it in views.
    pub fn advertise(&mut self, name: &str, addr: SocketAddr) {
        self.advertised.push((name.to_string(), addr.to_string()));
    }

    /// Starts following the worker's views (handoff, orphan push, compaction, tombstone
    /// purge) on the current `LocalSet` and returns the shared service.
    pub fn start(self) -> Rc<Self> {
        let service = Rc::new(self);
        tokio::task::spawn_local(service.clone().follow_views());
        service
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.me
    }

    /// The configured limits and timeouts.
    pub fn config(&self) -> &DhtConfig {
        &self.cfg
    }

    /// Number of entries this worker stores (all partitions; replica copies and deletion
    /// tombstones included).
    pub fn local_entries(&self) -> u64 {
        self.store.stats().keys
    }

    /// The current view, if the worker has joined.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.views.borrow().clone()
    }
}
