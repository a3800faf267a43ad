//! The DHT service a worker hosts: primary-coordinated, quorum-replicated reads and writes
//! over the worker's durable store.
//!
//! The primary of a key's partition (first of its replica set in the worker's view) assigns
//! the write's version (hybrid logical clock), stores it durably and replicates it to the
//! other owners, acknowledging once a majority of the replica set has it on disk. Reads ask a
//! majority, return the highest version, and repair replicas that were behind.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringflow_cluster::{ClusterError, LocalFuture, ServiceContext, ServiceFactory, WorkerService};
use ringflow_net::{Connection, FramedRecv, FramedSend};
use ringflow_proto::{ClusterView, Hello, PeerRole};
use ringflow_ring::{PartitionId, WorkerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::pool::StreamPool;
use crate::store::{Store, StoreOptions, Write};
use crate::wire::{DhtRequest, DhtResponse, SERVICE};
use crate::{DhtError, Entry, Hlc};

/// Configuration of a worker's DHT service.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Largest key, in bytes.
    pub max_key: usize,
    /// Largest value, in bytes.
    pub max_value: usize,
    /// How long the primary waits for replicas before answering `Unavailable`.
    pub replica_timeout: Duration,
    /// fsync every write before acknowledging it (default). Off: acknowledged once in
    /// the OS (survives kill -9, not a machine crash), fsynced every `sync_interval`.
    pub sync: bool,
    /// With `sync` off: the longest a write waits for its fsync.
    pub sync_interval: Duration,
    /// Address of the Redis-compatible port, if any.
    pub resp_listen: Option<SocketAddr>,
    /// Deletion tombstones older than this are forgotten (checked every minute); `None`
    /// keeps them forever. A worker away for longer must come back with an empty data
    /// directory, or values deleted meanwhile can come back with it.
    pub tombstone_grace: Option<Duration>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            max_key: 64 * 1024,
            max_value: 8 * 1024 * 1024,
            replica_timeout: Duration::from_secs(5),
            sync: true,
            sync_interval: Duration::from_millis(100),
            resp_listen: None,
            tombstone_grace: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// A factory for [`ringflow_cluster::WorkerHandle::start_with`].
pub fn service(cfg: DhtConfig) -> ServiceFactory {
    Box::new(move |ctx: ServiceContext| {
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
        let peers = Rc::new(StreamPool::new(
            ctx.endpoint.clone(),
            PeerRole::Worker,
            Some(ctx.worker_id.0.clone()),
            ctx.cluster.clone(),
            // Longer than a primary's own wait for its replicas, so that a forwarded request
            // gets the primary's answer rather than a local timeout.
            cfg.replica_timeout * 2 + Duration::from_secs(1),
        ));
        let resp = match cfg.resp_listen {
            Some(addr) => {
                let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
                    ClusterError::Service(format!("binding the RESP port {addr}: {e}"))
                })?;
                std_listener
                    .set_nonblocking(true)
                    .map_err(|e| ClusterError::Service(format!("RESP port: {e}")))?;
                let listener = tokio::net::TcpListener::from_std(std_listener)
                    .map_err(|e| ClusterError::Service(format!("RESP port: {e}")))?;
                let local = listener
                    .local_addr()
                    .map_err(|e| ClusterError::Service(format!("RESP port: {e}")))?;
                tracing::info!(%local, "serving the DHT over RESP (Redis protocol)");
                Some((listener, local))
            }
            None => None,
        };
        let service = Rc::new(DhtService {
            me: ctx.worker_id,
            store: Arc::new(store),
            views: ctx.views,
            forward: crate::coalesce::Coalescer::new(peers.clone()),
            peers,
            hlc: RefCell::new(Hlc::new(node)),
            cfg,
            syncing: RefCell::new(BTreeSet::new()),
            resp_addr: resp.as_ref().map(|(_, a)| *a),
            pushing: RefCell::new(BTreeSet::new()),
        });
        tokio::task::spawn_local(service.clone().follow_views());
        if let Some((listener, _)) = resp {
            tokio::task::spawn_local(crate::resp_gateway::serve(listener, service.clone()));
        }
        Ok(service as Rc<dyn WorkerService>)
    })
}

/// Request kinds as the `op` label says them, indexed by [`op_index`].
const OPS: [&str; 5] = ["put", "get", "replicate", "read_replica", "fetch"];
/// Answers as the `outcome` label says them, indexed by [`outcome_index`].
const OUTCOMES: [&str; 4] = ["ok", "moved", "unavailable", "error"];

fn op_index(req: &DhtRequest) -> usize {
    match req {
        DhtRequest::Put { .. } => 0,
        DhtRequest::Get { .. } => 1,
        DhtRequest::Replicate { .. } => 2,
        DhtRequest::ReadReplica { .. } => 3,
        DhtRequest::Fetch { .. } => 4,
        // Never recorded: `handle` records the parts.
        DhtRequest::Multi(_) => 0,
    }
}

fn outcome_index(resp: &DhtResponse) -> usize {
    match resp {
        DhtResponse::Written { .. }
        | DhtResponse::Values { .. }
        | DhtResponse::Replicated
        | DhtResponse::Page { .. }
        | DhtResponse::Entries { .. }
        | DhtResponse::Multi(_) => 0,
        DhtResponse::Moved { .. } => 1,
        DhtResponse::Unavailable { .. } => 2,
        DhtResponse::Error { .. } => 3,
    }
}

/// Handles on the DHT's metrics (`ringflow_dht_*`), every series created up front.
struct DhtMetrics {
    requests: [[ringflow_metrics::Counter; OUTCOMES.len()]; OPS.len()],
    seconds: [ringflow_metrics::Histogram; OPS.len()],
}

fn metrics() -> &'static DhtMetrics {
    static M: OnceLock<DhtMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let r = ringflow_metrics::global();
        let requests = r.counter(
            "ringflow_dht_requests_total",
            "DHT requests handled by this worker, by operation and outcome.",
            ["op", "outcome"],
        );
        let seconds = r.histogram(
            "ringflow_dht_request_seconds",
            "Time this worker spent handling a DHT request (quorum waits included), by operation.",
            ["op"],
            ringflow_metrics::LATENCY_BUCKETS,
        );
        DhtMetrics {
            requests: std::array::from_fn(|op| {
                std::array::from_fn(|outcome| requests.with([OPS[op], OUTCOMES[outcome]]))
            }),
            seconds: std::array::from_fn(|op| seconds.with([OPS[op]])),
        }
    })
}

impl DhtMetrics {
    fn record(&self, op: usize, resp: &DhtResponse, elapsed: Duration) {
        if let Some(c) = self
            .requests
            .get(op)
            .and_then(|row| row.get(outcome_index(resp)))
        {
            c.inc();
        }
        if let Some(h) = self.seconds.get(op) {
            h.observe_duration(elapsed);
        }
    }
}

fn unexpected(r: DhtResponse) -> DhtError {
    DhtError::Peer(format!("unexpected answer: {r:?}"))
}

/// A stable node number for version tie-breaking.
pub fn node_number(id: &WorkerId) -> u32 {
    xxhash_rust::xxh3::xxh3_64(id.0.as_bytes()) as u32
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The DHT service.
pub struct DhtService {
    me: WorkerId,
    store: Arc<Store>,
    views: watch::Receiver<Option<Arc<ClusterView>>>,
    peers: Rc<StreamPool>,
    /// Requests routed to other primaries, batched per peer.
    forward: Rc<crate::coalesce::Coalescer>,
    hlc: RefCell<Hlc>,
    cfg: DhtConfig,
    /// Partitions this node holds a replica of but has not caught up on yet (handoff in
    /// progress): its copies do not count towards read quorums.
    syncing: RefCell<BTreeSet<u32>>,
    /// The bound RESP address, if the gateway runs.
    resp_addr: Option<SocketAddr>,
    /// Partitions this node no longer owns whose data it is handing to the owners.
    pushing: RefCell<BTreeSet<u32>>,
}

/// Byte budget of one handoff page.
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Where a partition's replicas are, in this node's view.
struct Placement {
    epoch: u64,
    primary: Option<WorkerId>,
    others: Vec<SocketAddr>,
    size: usize,
}

impl DhtService {
    fn placement(&self, partition: u32) -> Option<Placement> {
        let view = self.views.borrow().clone()?;
        let p = PartitionId(partition);
        if partition >= view.assignment.config.partitions {
            return None;
        }
        let replicas: Vec<WorkerId> = view.assignment.replicas(p).into_iter().cloned().collect();
        let addr_of = |id: &WorkerId| {
            view.peers
                .iter()
                .find(|peer| &peer.id == id)
                .and_then(|peer| peer.addr.parse::<SocketAddr>().ok())
        };
        Some(Placement {
            epoch: view.epoch(),
            primary: replicas.first().cloned(),
            others: replicas
                .iter()
                .filter(|id| **id != self.me)
                .filter_map(addr_of)
                .collect(),
            size: replicas.len(),
        })
    }

    fn current_epoch(&self) -> u64 {
        self.views.borrow().as_ref().map_or(0, |v| v.epoch())
    }

    /// Whether replica traffic for `partition` from `sender` (routed with `epoch`) must be
    /// refused: see [`crate::wire::fenced_out`].
    fn fences(&self, partition: u32, epoch: u64, sender: &str) -> bool {
        let Some(view) = self.views.borrow().clone() else {
            return false;
        };
        let p = PartitionId(partition);
        let replicas = view.assignment.replicas(p);
        crate::wire::fenced_out(
            view.epoch(),
            replicas.first().map(|w| w.as_str()),
            replicas.iter().any(|w| **w == self.me),
            epoch,
            sender,
        )
    }

    fn moved(&self, partition: u32) -> DhtResponse {
        let view = self.views.borrow().clone();
        let (epoch, primary) = match &view {
            Some(v) => {
                let primary = v
                    .assignment
                    .primary(PartitionId(partition))
                    .and_then(|id| v.peers.iter().find(|p| &p.id == id).map(|p| p.addr.clone()));
                (v.epoch(), primary)
            }
            None => (0, None),
        };
        DhtResponse::Moved {
            partition,
            epoch,
            primary,
        }
    }

    fn check_sizes<'a>(
        &self,
        keys: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), DhtError> {
        for (k, v) in keys {
            if k.len() > self.cfg.max_key {
                return Err(DhtError::TooLarge {
                    what: "key",
                    len: k.len(),
                    max: self.cfg.max_key,
                });
            }
            if let Some(v) = v {
                if v.len() > self.cfg.max_value {
                    return Err(DhtError::TooLarge {
                        what: "value",
                        len: v.len(),
                        max: self.cfg.max_value,
                    });
                }
            }
        }
        Ok(())
    }

    async fn store_write(&self, writes: Vec<Write>) -> Result<Vec<bool>, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.store.write_async(
            writes,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await
            .map_err(|_| DhtError::Closed("store writer stopped".into()))?
    }

    async fn put(&self, partition: u32, items: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> DhtResponse {
        let Some(place) = self.placement(partition) else {
            return self.moved(partition);
        };
        if place.primary.as_ref() != Some(&self.me) {
            return self.moved(partition);
        }
        if let Err(e) = self.check_sizes(items.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))) {
            return DhtResponse::Error {
                message: e.to_string(),
            };
        }
        let p = PartitionId(partition);
        // A primary still catching up on this partition may lack the newest versions:
        // learn them from the other replicas first, so the new versions stamped below
        // supersede every version an earlier primary wrote.
        let mut remote_live: Vec<bool> = vec![false; items.len()];
        if self.syncing.borrow().contains(&partition) && !place.others.is_empty() {
            let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
            let req = DhtRequest::ReadReplica {
                partition,
                keys,
                epoch: place.epoch,
                from: self.me.0.clone(),
            };
            for addr in place.others.iter().copied() {
                if let Ok(Ok(DhtResponse::Entries { entries })) = tokio::time::timeout(
                    self.cfg.replica_timeout,
                    self.forward.call(addr, req.clone()),
                )
                .await
                {
                    let mut hlc = self.hlc.borrow_mut();
                    for (i, e) in entries.iter().enumerate().take(items.len()) {
                        if let Some(e) = e {
                            hlc.observe(e.version);
                            remote_live[i] |= e.value.is_some();
                        }
                    }
                }
            }
        }
        let mut existed = Vec::with_capacity(items.len());
        let mut writes = Vec::with_capacity(items.len());
        let now = now_ms();
        {
            let mut hlc = self.hlc.borrow_mut();
            for (i, (key, value)) in items.into_iter().enumerate() {
                let current = self.store.get(p, &key);
                existed.push(current.as_ref().is_some_and(|e| e.value.is_some()) || remote_live[i]);
                if let Some(c) = &current {
                    hlc.observe(c.version);
                }
                let entry = Entry {
                    version: hlc.tick(now),
                    value,
                };
                writes.push(Write {
                    partition: p,
                    key,
                    entry,
                });
            }
        }
        let replicated: Vec<(Vec<u8>, Entry)> = writes
            .iter()
            .map(|w| (w.key.clone(), w.entry.clone()))
            .collect();
        let needed = place.size / 2 + 1;
        let (tx, mut rx) = mpsc::channel::<bool>(place.others.len().max(1));
        let req = Rc::new(DhtRequest::Replicate {
            partition,
            writes: replicated,
            epoch: place.epoch,
            from: self.me.0.clone(),
        });
        let newer_view = Rc::new(std::cell::Cell::new(0u64));
        for addr in place.others {
            let (forward, req, tx) = (self.forward.clone(), req.clone(), tx.clone());
            let newer_view = newer_view.clone();
            tokio::task::spawn_local(async move {
                let r = forward.call(addr, (*req).clone()).await;
                let ok = matches!(r, Ok(DhtResponse::Replicated));
                if let Ok(DhtResponse::Moved { epoch, .. }) = r {
                    newer_view.set(newer_view.get().max(epoch));
                }
                if !ok {
                    tracing::warn!(%addr, partition, "replica did not store a write");
                }
                let _ = tx.send(ok).await;
            });
        }
        drop(tx);
        if let Err(e) = self.store_write(writes).await {
            return DhtResponse::Unavailable {
                reason: format!("local store failed: {e}"),
            };
        }
        let mut acks = 1;
        let deadline = tokio::time::sleep(self.cfg.replica_timeout);
        tokio::pin!(deadline);
        while acks < needed {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(true) => acks += 1,
                    Some(false) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        if acks < needed {
            if newer_view.get() > place.epoch {
                // Replicas know a newer table than ours: the client refreshes and retries
                // with the partition's current primary.
                return DhtResponse::Moved {
                    partition,
                    epoch: newer_view.get(),
                    primary: None,
                };
            }
            return DhtResponse::Unavailable {
                reason: format!(
                    "{acks} of {} replicas stored the write, {needed} needed",
                    place.size
                ),
            };
        }
        DhtResponse::Written { existed }
    }

    async fn get(&self, partition: u32, keys: Vec<Vec<u8>>) -> DhtResponse {
        let Some(place) = self.placement(partition) else {
            return self.moved(partition);
        };
        if place.primary.as_ref() != Some(&self.me) {
            return self.moved(partition);
        }
        let p = PartitionId(partition);
        let mut best: Vec<Option<Entry>> = keys.iter().map(|k| self.store.get(p, k)).collect();
        let needed = place.size / 2 + 1;
        // A copy still catching up does not count towards the quorum.
        let local = usize::from(!self.syncing.borrow().contains(&partition));
        if needed > local {
            let (tx, mut rx) = mpsc::channel::<(SocketAddr, Option<Vec<Option<Entry>>>)>(
                place.others.len().max(1),
            );
            let req = Rc::new(DhtRequest::ReadReplica {
                partition,
                keys: keys.clone(),
                epoch: place.epoch,
                from: self.me.0.clone(),
            });
            let newer_view = Rc::new(std::cell::Cell::new(0u64));
            for addr in place.others.iter().copied() {
                let (forward, req, tx) = (self.forward.clone(), req.clone(), tx.clone());
                let newer_view = newer_view.clone();
                tokio::task::spawn_local(async move {
                    let r = match forward.call(addr, (*req).clone()).await {
                        Ok(DhtResponse::Entries { entries }) => Some(entries),
                        Ok(DhtResponse::Moved { epoch, .. }) => {
                            newer_view.set(newer_view.get().max(epoch));
                            None
                        }
                        _ => None,
                    };
                    let _ = tx.send((addr, r)).await;
                });
            }
            drop(tx);
            let mut answers: Vec<(SocketAddr, Vec<Option<Entry>>)> = Vec::new();
            let deadline = tokio::time::sleep(self.cfg.replica_timeout);
            tokio::pin!(deadline);
            while local + answers.len() < needed {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some((addr, Some(entries))) if entries.len() == keys.len() => answers.push((addr, entries)),
                        Some(_) => {}
                        None => break,
                    },
                    _ = &mut deadline => break,
                }
            }
            if local + answers.len() < needed {
                if newer_view.get() > place.epoch {
                    return DhtResponse::Moved {
                        partition,
                        epoch: newer_view.get(),
                        primary: None,
                    };
                }
                return DhtResponse::Unavailable {
                    reason: format!(
                        "{} of {} replicas answered, {needed} needed",
                        local + answers.len(),
                        place.size
                    ),
                };
            }
            for (_, entries) in &answers {
                for (b, e) in best.iter_mut().zip(entries) {
                    if let Some(e) = e {
                        if e.supersedes(b.as_ref()) {
                            *b = Some(e.clone());
                        }
                    }
                }
            }
            self.read_repair(partition, &keys, &best, &answers);
        }
        DhtResponse::Values {
            values: best.into_iter().map(|e| e.and_then(|e| e.value)).collect(),
        }
    }

    /// Sends the winning entries to replicas (and this node) that were behind.
    fn read_repair(
        &self,
        partition: u32,
        keys: &[Vec<u8>],
        best: &[Option<Entry>],
        answers: &[(SocketAddr, Vec<Option<Entry>>)],
    ) {
        let p = PartitionId(partition);
        let behind = |have: Option<&Entry>, want: &Option<Entry>| match want {
            Some(w) => w.supersedes(have),
            None => false,
        };
        let local: Vec<Write> = keys
            .iter()
            .zip(best)
            .filter(|(k, b)| behind(self.store.get(p, k).as_ref(), b))
            .filter_map(|(k, b)| {
                b.clone().map(|entry| Write {
                    partition: p,
                    key: k.clone(),
                    entry,
                })
            })
            .collect();
        if !local.is_empty() {
            self.store.write_async(local, Box::new(|_| {}));
        }
        for (addr, entries) in answers {
            let writes: Vec<(Vec<u8>, Entry)> = keys
                .iter()
                .zip(best.iter().zip(entries))
                .filter(|(_, (b, have))| behind(have.as_ref(), b))
                .filter_map(|(k, (b, _))| b.clone().map(|e| (k.clone(), e)))
                .collect();
            if writes.is_empty() {
                continue;
            }
            let (peers, addr) = (self.peers.clone(), *addr);
            let (epoch, from) = (self.current_epoch(), self.me.0.clone());
            tokio::task::spawn_local(async move {
                let req = DhtRequest::Replicate {
                    partition,
                    writes,
                    epoch,
                    from,
                };
                if let Err(e) = peers.call(addr, &req).await {
                    tracing::debug!(%addr, error = %e, "read repair failed");
                }
            });
        }
    }

    async fn replicate(&self, partition: u32, writes: Vec<(Vec<u8>, Entry)>) -> DhtResponse {
        if let Err(e) = self.check_sizes(
            writes
                .iter()
                .map(|(k, e)| (k.as_slice(), e.value.as_deref())),
        ) {
            return DhtResponse::Error {
                message: e.to_string(),
            };
        }
        let p = PartitionId(partition);
        {
            let mut hlc = self.hlc.borrow_mut();
            for (_, e) in &writes {
                hlc.observe(e.version);
            }
        }
        let writes = writes
            .into_iter()
            .map(|(key, entry)| Write {
                partition: p,
                key,
                entry,
            })
            .collect();
        match self.store_write(writes).await {
            Ok(_) => DhtResponse::Replicated,
            Err(e) => DhtResponse::Unavailable {
                reason: e.to_string(),
            },
        }
    }

    /// One page of a handoff: entries of `partitions` after the cursor.
    fn fetch_page(
        &self,
        partitions: &[u32],
        after: Option<(u32, Vec<u8>)>,
        max_bytes: usize,
    ) -> DhtResponse {
        // A copy that is catching up itself may be incomplete: say so.
        let partial = partitions.iter().any(|p| self.syncing.borrow().contains(p));
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for &partition in partitions {
            if let Some((ap, _)) = &after {
                if partition < *ap {
                    continue;
                }
            }
            for (key, entry) in self.store.snapshot_partition(PartitionId(partition)) {
                if let Some((ap, ak)) = &after {
                    if partition == *ap && key.as_slice() <= ak.as_slice() {
                        continue;
                    }
                }
                let size = key.len() + entry.value.as_ref().map_or(0, Vec::len) + 32;
                if bytes + size > max_bytes && !entries.is_empty() {
                    let next = entries
                        .last()
                        .map(|(p, k, _): &(u32, Vec<u8>, Entry)| (*p, k.clone()));
                    return DhtResponse::Page {
                        entries,
                        next,
                        partial,
                    };
                }
                bytes += size;
                entries.push((partition, key, entry));
            }
        }
        DhtResponse::Page {
            entries,
            next: None,
            partial,
        }
    }

    /// Follows the worker's views: starts a handoff for every partition this node gains.
    async fn follow_views(self: Rc<Self>) {
        let mut views = self.views.clone();
        let mut previous: Option<Arc<ClusterView>> = None;
        let mut last_purge = Instant::now();
        loop {
            let Some(current) = views.borrow_and_update().clone() else {
                if views.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let mine = |v: &ClusterView| -> BTreeSet<u32> {
                v.assignment
                    .partitions_of(&self.me)
                    .into_iter()
                    .map(|p| p.0)
                    .collect()
            };
            let now = mine(&current);
            let before = previous.as_deref().map(mine).unwrap_or_default();
            let gained: Vec<u32> = now.difference(&before).copied().collect();
            {
                let mut syncing = self.syncing.borrow_mut();
                syncing.retain(|p| now.contains(p));
            }
            if !gained.is_empty() {
                self.start_handoff(&gained, previous.as_deref(), &current);
            }
            self.push_orphans(&current, &now);
            previous = Some(current);
            // Wake on a new view, or after a while to retry hand-overs that failed.
            loop {
                match tokio::time::timeout(Duration::from_secs(3), views.changed()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        if let Some(v) = views.borrow().clone() {
                            let mine = mine(&v);
                            self.push_orphans(&v, &mine);
                        }
                        self.maybe_checkpoint();
                        if last_purge.elapsed() >= Duration::from_secs(60) {
                            last_purge = Instant::now();
                            self.purge_tombstones();
                        }
                    }
                }
            }
        }
    }

    /// Forgets tombstones older than the grace period (on a thread of its own: the store's
    /// calls block).
    fn purge_tombstones(&self) {
        let Some(grace) = self.cfg.tombstone_grace else {
            return;
        };
        let cutoff_ms = now_ms().saturating_sub(grace.as_millis() as u64);
        let before_ts = cutoff_ms << crate::version::LOGICAL_BITS;
        let store = self.store.clone();
        std::thread::spawn(move || match store.purge_tombstones(before_ts) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                "forgot deletion tombstones past their grace period"
            ),
            Err(e) => tracing::warn!(error = %e, "purging tombstones failed"),
        });
    }

    /// Compacts the write-ahead log (on a thread of its own) once it is much larger than
    /// the live data.
    fn maybe_checkpoint(&self) {
        let stats = self.store.stats();
        if stats.wal_bytes < 64 * 1024 * 1024 || stats.wal_bytes < 2 * stats.bytes {
            return;
        }
        let store = self.store.clone();
        std::thread::spawn(move || {
            if let Err(e) = store.checkpoint() {
                tracing::warn!(error = %e, "checkpoint of the DHT store failed");
            }
        });
    }

    /// The addresses of `partition`'s replicas in `view`, without this node.
    fn replica_addrs(&self, view: &ClusterView, partition: u32) -> Vec<SocketAddr> {
        view.assignment
            .replicas(PartitionId(partition))
            .into_iter()
            .filter(|id| **id != self.me)
            .filter_map(|id| view.peers.iter().find(|p| &p.id == id))
            .filter_map(|p| p.addr.parse().ok())
            .collect()
    }

    /// Sends every entry this node has of `partition` to `targets` (in pages); Ok only if
    /// every target stored all of it.
    async fn push_partition(
        &self,
        partition: u32,
        targets: &[SocketAddr],
    ) -> Result<usize, DhtError> {
        let entries = self.store.snapshot_partition(PartitionId(partition));
        let total = entries.len();
        let mut page: Vec<(Vec<u8>, Entry)> = Vec::new();
        let mut bytes = 0usize;
        let mut pages = Vec::new();
        for (k, e) in entries {
            let size = k.len() + e.value.as_ref().map_or(0, Vec::len) + 32;
            if bytes + size > PAGE_BYTES && !page.is_empty() {
                pages.push(std::mem::take(&mut page));
                bytes = 0;
            }
            bytes += size;
            page.push((k, e));
        }
        if !page.is_empty() {
            pages.push(page);
        }
        for writes in pages {
            let req = DhtRequest::Replicate {
                partition,
                writes,
                epoch: self.current_epoch(),
                from: self.me.0.clone(),
            };
            for addr in targets {
                match self.peers.call(*addr, &req).await? {
                    DhtResponse::Replicated => {}
                    other => return Err(unexpected(other)),
                }
            }
        }
        Ok(total)
    }

    /// Hands the data of partitions this node no longer owns to their owners, then forgets
    /// it (anti-entropy for data left behind by leaves, failures and restarts).
    fn push_orphans(self: &Rc<Self>, view: &Arc<ClusterView>, mine: &BTreeSet<u32>) {
        let orphans: Vec<u32> = self
            .store
            .partitions()
            .into_iter()
            .map(|p| p.0)
            .filter(|p| !mine.contains(p) && !self.pushing.borrow().contains(p))
            .filter(|p| !view.assignment.replicas(PartitionId(*p)).is_empty())
            .collect();
        if orphans.is_empty() {
            return;
        }
        self.pushing.borrow_mut().extend(orphans.iter().copied());
        let (this, view) = (self.clone(), view.clone());
        tokio::task::spawn_local(async move {
            let (mut moved, mut kept) = (0usize, 0usize);
            for partition in orphans {
                let targets = this.replica_addrs(&view, partition);
                let still_orphan = this.views.borrow().as_ref().is_some_and(|v| {
                    !v.assignment
                        .partitions_of(&this.me)
                        .contains(&PartitionId(partition))
                });
                if targets.is_empty() || !still_orphan {
                    this.pushing.borrow_mut().remove(&partition);
                    continue;
                }
                match this.push_partition(partition, &targets).await {
                    Ok(n) => {
                        // Ownership may have come back while the push ran: then keep it.
                        let regained = this.views.borrow().as_ref().is_some_and(|v| {
                            v.assignment
                                .partitions_of(&this.me)
                                .contains(&PartitionId(partition))
                        });
                        if regained {
                            this.pushing.borrow_mut().remove(&partition);
                            continue;
                        }
                        if let Err(e) = this.store.drop_partition(PartitionId(partition)) {
                            tracing::warn!(partition, error = %e, "could not forget a handed-over partition");
                        }
                        moved += n;
                    }
                    Err(e) => {
                        kept += 1;
                        tracing::warn!(partition, error = %e, "handing a partition to its owners failed; will retry");
                    }
                }
                this.pushing.borrow_mut().remove(&partition);
            }
            if moved > 0 || kept > 0 {
                tracing::info!(
                    entries = moved,
                    partitions_kept = kept,
                    "handed data of partitions no longer owned to their owners"
                );
            }
        });
    }

    /// Pulls the gained partitions from their other replicas (previous owners first).
    fn start_handoff(
        self: &Rc<Self>,
        gained: &[u32],
        previous: Option<&ClusterView>,
        current: &ClusterView,
    ) {
        let addr_of = |id: &WorkerId| {
            current
                .peers
                .iter()
                .find(|p| &p.id == id)
                .and_then(|p| p.addr.parse::<SocketAddr>().ok())
        };
        // Partitions with the same sources are copied together.
        let mut groups: BTreeMap<Vec<WorkerId>, Vec<u32>> = BTreeMap::new();
        for &partition in gained {
            let p = PartitionId(partition);
            let mut sources: Vec<WorkerId> = Vec::new();
            let candidates = previous
                .map(|v| v.assignment.replicas(p))
                .unwrap_or_default()
                .into_iter()
                .chain(current.assignment.replicas(p));
            for id in candidates {
                if *id != self.me && addr_of(id).is_some() && !sources.contains(id) {
                    sources.push(id.clone());
                }
            }
            if !sources.is_empty() {
                groups.entry(sources).or_default().push(partition);
            }
        }
        if groups.is_empty() {
            return;
        }
        let total: usize = groups.values().map(Vec::len).sum();
        self.syncing
            .borrow_mut()
            .extend(groups.values().flatten().copied());
        tracing::info!(
            partitions = total,
            groups = groups.len(),
            "handoff: catching up on gained partitions"
        );
        for (sources, partitions) in groups {
            let this = self.clone();
            tokio::task::spawn_local(async move {
                this.sync_from(sources, partitions).await;
            });
        }
    }

    /// Copies `partitions` from every source that answers (previous owners first) and
    /// merges them by version, so that an acknowledged write held by any reachable old
    /// replica arrives. Retries until at least one source succeeded in a round, or the
    /// partitions are no longer ours.
    async fn sync_from(self: Rc<Self>, sources: Vec<WorkerId>, partitions: Vec<u32>) {
        let mut round = 0usize;
        loop {
            let partitions: Vec<u32> = partitions
                .iter()
                .copied()
                .filter(|p| self.syncing.borrow().contains(p))
                .collect();
            if partitions.is_empty() {
                return;
            }
            // Sources at their addresses in the newest view (a restarted peer has a new
            // one), plus the current co-replicas.
            let Some(view) = self.view() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let addr_of = |id: &WorkerId| {
                view.peers
                    .iter()
                    .find(|p| &p.id == id)
                    .and_then(|p| p.addr.parse::<SocketAddr>().ok())
            };
            let current: BTreeSet<SocketAddr> = partitions
                .iter()
                .flat_map(|&p| self.replica_addrs(&view, p))
                .collect();
            let mut round_sources: Vec<SocketAddr> = sources.iter().filter_map(addr_of).collect();
            for a in &current {
                if !round_sources.contains(a) {
                    round_sources.push(*a);
                }
            }
            let this: &DhtService = &self;
            let attempts = round_sources.iter().map(|source| {
                let parts = partitions.clone();
                async move { (*source, this.copy_partitions(*source, &parts).await) }
            });
            let mut copied = 0usize;
            let (mut complete, mut partial) = (0usize, 0usize);
            let mut current_answered = 0usize;
            for (source, result) in crate::join::join_all(attempts.collect()).await {
                match result {
                    Ok((n, is_partial)) => {
                        if is_partial {
                            partial += 1;
                        } else {
                            complete += 1;
                        }
                        if current.contains(&source) {
                            current_answered += 1;
                        }
                        copied += n;
                    }
                    Err(e) => {
                        tracing::debug!(%source, error = %e, "handoff: source did not answer");
                    }
                }
            }
            // Caught up once a source with a complete copy answered, or when every current
            // co-replica answered but all are catching up too (every replica restarted at
            // once: each has its own durable data, and together they have everything).
            let answered = complete + partial;
            if complete > 0 || (!current.is_empty() && current_answered == current.len()) {
                {
                    let mut syncing = self.syncing.borrow_mut();
                    for p in &partitions {
                        syncing.remove(p);
                    }
                }
                // What this node had before (a restart, an earlier ownership) may be
                // newer than what its co-replicas hold: push it to them.
                if let Some(view) = self.view() {
                    for &p in &partitions {
                        if self.store.partition_len(PartitionId(p)) > 0 {
                            let targets = self.replica_addrs(&view, p);
                            if let Err(e) = self.push_partition(p, &targets).await {
                                tracing::debug!(partition = p, error = %e, "pushing local data to co-replicas failed");
                            }
                        }
                    }
                }
                tracing::info!(
                    partitions = partitions.len(),
                    sources = answered,
                    entries = copied,
                    "handoff: caught up"
                );
                return;
            }
            round += 1;
            tracing::warn!(
                partitions = partitions.len(),
                round,
                "handoff: no source answered; retrying"
            );
            tokio::time::sleep(Duration::from_millis(200 * round.min(10) as u64)).await;
        }
    }

    /// Copies the partitions from `source`: entries copied, and whether the source said
    /// its copy may be incomplete (it is catching up itself).
    async fn copy_partitions(
        &self,
        source: SocketAddr,
        partitions: &[u32],
    ) -> Result<(usize, bool), DhtError> {
        let wanted: BTreeSet<u32> = partitions.iter().copied().collect();
        let mut after: Option<(u32, Vec<u8>)> = None;
        let mut copied = 0;
        let mut any_partial = false;
        loop {
            let req = DhtRequest::Fetch {
                partitions: partitions.to_vec(),
                after: after.clone(),
                max_bytes: PAGE_BYTES,
            };
            match self.peers.call(source, &req).await? {
                DhtResponse::Page {
                    entries,
                    next,
                    partial,
                } => {
                    any_partial |= partial;
                    copied += entries.len();
                    // Only what was asked for, and a cursor that moves forward.
                    if entries.iter().any(|(p, _, _)| !wanted.contains(p)) {
                        return Err(DhtError::Peer(format!(
                            "{source} sent partitions it was not asked for"
                        )));
                    }
                    if let (Some(prev), Some(cur)) = (&after, &next) {
                        if cur <= prev {
                            return Err(DhtError::Peer(format!(
                                "{source} sent a cursor that does not advance"
                            )));
                        }
                    }
                    let cursor = next.clone();
                    if !entries.is_empty() {
                        let writes = entries
                            .into_iter()
                            .map(|(p, key, entry)| Write {
                                partition: PartitionId(p),
                                key,
                                entry,
                            })
                            .collect();
                        self.store_write(writes).await?;
                    }
                    match cursor {
                        Some(c) => after = Some(c),
                        None => return Ok((copied, any_partial)),
                    }
                }
                other => {
                    return Err(DhtError::Peer(format!(
                        "unexpected answer to a fetch: {other:?}"
                    )))
                }
            }
        }
    }

    /// Writes (value `None` deletes) from a node that may not own the keys: each
    /// partition's batch goes to its primary (this node or a peer). Per item, whether a
    /// value existed before.
    pub async fn route_put(
        &self,
        items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<bool>, DhtError> {
        crate::batch::write(self, items).await
    }

    /// Reads from a node that may not own the keys; values in the order of `keys`.
    pub async fn route_get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
        crate::batch::read(self, keys).await
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.me
    }

    /// The configured limits and timeouts.
    pub fn config(&self) -> &DhtConfig {
        &self.cfg
    }

    /// Number of live keys this worker stores (all partitions, tombstones excluded is not
    /// tracked: this counts entries).
    pub fn local_entries(&self) -> u64 {
        self.store.stats().keys
    }

    /// The current view, if the worker has joined.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.views.borrow().clone()
    }

    /// Sends one partition's request to its primary (handled here if that is this node),
    /// waiting for a newer view and retrying while the answer is a redirect.
    async fn route(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        let mut views = self.views.clone();
        let mut last = DhtError::NoOwner(partition);
        for _ in 0..8 {
            let Some(view) = views.borrow_and_update().clone() else {
                return Err(DhtError::Unavailable(
                    "this worker has not joined the cluster yet".into(),
                ));
            };
            let req = make(view.epoch());
            let primary = view.assignment.primary(PartitionId(partition)).cloned();
            let resp = match primary {
                None => Err(DhtError::NoOwner(partition)),
                Some(id) if id == self.me => Ok(self.handle(req).await),
                Some(id) => match view
                    .peers
                    .iter()
                    .find(|p| p.id == id)
                    .and_then(|p| p.addr.parse().ok())
                {
                    Some(addr) => self.forward.call(addr, req).await,
                    None => Err(DhtError::Peer(format!("no address for {id}"))),
                },
            };
            match resp {
                Ok(DhtResponse::Moved { .. }) => {
                    last = DhtError::Peer(format!("partition {partition} moved"))
                }
                // Transient (replicas catching up after a restart, a failover in
                // progress): retry, and report it only if it lasts.
                Ok(DhtResponse::Unavailable { reason }) => last = DhtError::Unavailable(reason),
                Ok(DhtResponse::Error { message }) => return Err(DhtError::Refused(message)),
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
            // Wait (briefly) for a newer view before retrying.
            let _ = tokio::time::timeout(Duration::from_millis(500), views.changed()).await;
        }
        Err(last)
    }

    /// Handles a request: the parts of a `Multi` concurrently, each counted as itself.
    async fn handle(&self, req: DhtRequest) -> DhtResponse {
        let DhtRequest::Multi(parts) = req else {
            return self.handle_one(req).await;
        };
        if parts.iter().any(|p| matches!(p, DhtRequest::Multi(_))) {
            return DhtResponse::Error {
                message: "a batch request inside a batch request".into(),
            };
        }
        let answers =
            crate::join::join_all(parts.into_iter().map(|p| self.handle_one(p)).collect()).await;
        DhtResponse::Multi(answers)
    }

    /// Handles one request, counting it and timing it.
    async fn handle_one(&self, req: DhtRequest) -> DhtResponse {
        let op = op_index(&req);
        let started = Instant::now();
        let resp = self.dispatch(req).await;
        metrics().record(op, &resp, started.elapsed());
        resp
    }

    async fn dispatch(&self, req: DhtRequest) -> DhtResponse {
        match req {
            // `handle` takes batches apart; one reaching here was nested.
            DhtRequest::Multi(_) => DhtResponse::Error {
                message: "a batch request inside a batch request".into(),
            },
            DhtRequest::Put {
                partition, items, ..
            } => self.put(partition, items).await,
            DhtRequest::Get {
                partition, keys, ..
            } => self.get(partition, keys).await,
            DhtRequest::Replicate {
                partition,
                epoch,
                from,
                ..
            }
            | DhtRequest::ReadReplica {
                partition,
                epoch,
                from,
                ..
            } if self.fences(partition, epoch, &from) => self.moved(partition),
            DhtRequest::Replicate {
                partition, writes, ..
            } => self.replicate(partition, writes).await,
            DhtRequest::ReadReplica { partition, .. }
                if self.syncing.borrow().contains(&partition) =>
            {
                DhtResponse::Unavailable {
                    reason: format!("partition {partition} is still catching up"),
                }
            }
            DhtRequest::Fetch {
                partitions,
                after,
                max_bytes,
            } => self.fetch_page(&partitions, after, max_bytes.min(PAGE_BYTES)),
            DhtRequest::ReadReplica {
                partition, keys, ..
            } => {
                let p = PartitionId(partition);
                DhtResponse::Entries {
                    entries: keys.iter().map(|k| self.store.get(p, k)).collect(),
                }
            }
        }
    }
}

impl WorkerService for DhtService {
    fn name(&self) -> &str {
        SERVICE
    }

    fn advertised(&self) -> Vec<(String, String)> {
        self.resp_addr
            .map(|a| vec![("resp".to_string(), a.to_string())])
            .unwrap_or_default()
    }

    fn serve(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        mut send: FramedSend,
        mut recv: FramedRecv,
    ) -> LocalFuture<Result<(), ClusterError>> {
        Box::pin(async move {
            let peer_is_node = conn.peer_is_node();
            while let Some(req) = recv.recv::<DhtRequest>().await? {
                let internal = matches!(
                    req,
                    DhtRequest::Replicate { .. }
                        | DhtRequest::ReadReplica { .. }
                        | DhtRequest::Fetch { .. }
                );
                let resp = if internal && !(peer_is_node && hello.role == PeerRole::Worker) {
                    let resp = DhtResponse::Error {
                        message: "replica traffic is only accepted from workers".into(),
                    };
                    metrics().record(op_index(&req), &resp, Duration::ZERO);
                    resp
                } else {
                    self.handle(req).await
                };
                send.send(&resp).await?;
            }
            Ok(())
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move {
            self.peers.close();
            if let Err(e) = self.store.close() {
                tracing::error!(error = %e, "closing the DHT store");
            }
        })
    }
}

impl crate::batch::Router for DhtService {
    fn partition_count(&self) -> Result<u32, DhtError> {
        self.view()
            .map(|v| v.assignment.config.partitions)
            .ok_or_else(|| {
                DhtError::Unavailable("this worker has not joined the cluster yet".into())
            })
    }

    async fn send_to_primary(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        self.route(partition, make).await
    }
}
