//! The Rust client of the DHT: routes each key to its partition's primary, in batches,
//! following redirects with a refreshed view.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringflow_cluster::ClusterClient;
use ringflow_net::{Endpoint, NetConfig, TlsIdentity};
use ringflow_proto::{ClusterView, PeerRole};
use ringflow_ring::PartitionId;

use crate::pool::StreamPool;
use crate::wire::{DhtRequest, DhtResponse};
use crate::DhtError;

/// Attempts per batch before giving up on redirects or unreachable primaries.
const ATTEMPTS: usize = 10;

/// A DHT client connected to a cluster.
pub struct DhtClient {
    coordinator: ClusterClient,
    view: Mutex<Arc<ClusterView>>,
    pool: StreamPool,
    /// The clock of the versions this client proposes for its writes; its node number is
    /// drawn at random (workers' are hashes of their ids), so versions stay unique.
    hlc: Mutex<crate::version::Hlc>,
}

/// A node number for a client's versions: a hash of its process, time and address.
fn client_node_number() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let marker = 0u8;
    let seed = format!("{}-{nanos}-{:p}", std::process::id(), &marker);
    xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) as u32
}

impl DhtClient {
    /// Connects to the coordinator at `coordinator` and fetches the view.
    pub async fn connect(
        coordinator: &str,
        identity: &TlsIdentity,
        cluster: &str,
    ) -> Result<Self, DhtError> {
        let cc = ClusterClient::connect(coordinator, identity, cluster)
            .await
            .map_err(|e| DhtError::Peer(e.to_string()))?;
        let view = cc.view().await.map_err(|e| DhtError::Peer(e.to_string()))?;
        let endpoint = Endpoint::client(identity, &NetConfig::default())
            .map_err(|e| DhtError::Peer(e.to_string()))?;
        Ok(Self {
            coordinator: cc,
            view: Mutex::new(Arc::new(view)),
            pool: StreamPool::new(
                endpoint,
                PeerRole::Client,
                None,
                cluster.to_string(),
                Duration::from_secs(15),
            ),
            hlc: Mutex::new(crate::version::Hlc::new(client_node_number())),
        })
    }

    fn current(&self) -> Arc<ClusterView> {
        match self.view.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Fetches the coordinator's current view now (requests also do when a primary
    /// redirects or fails): for a caller that knows membership just changed.
    pub async fn refresh(&self) -> Result<(), DhtError> {
        let v = self
            .coordinator
            .view()
            .await
            .map_err(|e| DhtError::Peer(e.to_string()))?;
        if let Ok(mut cur) = self.view.lock() {
            if v.epoch() >= cur.epoch() {
                *cur = Arc::new(v);
            }
        }
        Ok(())
    }

    fn primary_addr(view: &ClusterView, partition: u32) -> Result<SocketAddr, DhtError> {
        let id = view
            .assignment
            .primary(PartitionId(partition))
            .ok_or(DhtError::NoOwner(partition))?;
        let addr = view
            .addr_of(id)
            .ok_or_else(|| DhtError::Peer(format!("no address for {id}")))?;
        addr.parse()
            .map_err(|_| DhtError::Peer(format!("bad address {addr:?} for {id}")))
    }

    /// Sends one partition's request to its primary, following redirects.
    async fn route(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        let mut last = DhtError::NoOwner(partition);
        let mut attempts = crate::batch::Attempts::default();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis((50u64 << attempt).min(2000))).await;
                if let Err(e) = self.refresh().await {
                    last = e;
                    continue;
                }
            }
            let view = self.current();
            let addr = match Self::primary_addr(&view, partition) {
                Ok(a) => a,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let req = attempts.prepare(make(view.epoch()));
            let resp = self.pool.call(addr, &req).await;
            match attempts.settle(&req, resp, partition) {
                Ok(done) => return done,
                Err(retry) => last = retry,
            }
        }
        Err(attempts.give_up(last))
    }

    /// Stores `value` under `key` (acknowledged once a write quorum has it durably).
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), DhtError> {
        self.put_many([(key.as_ref().to_vec(), value.as_ref().to_vec())])
            .await
    }

    /// The value under `key`, if any (read from a quorum).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, DhtError> {
        let mut v = self.get_many([key.as_ref().to_vec()]).await?;
        Ok(v.pop().flatten())
    }

    /// Deletes `key`; whether it held a value.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, DhtError> {
        Ok(self.delete_many([key.as_ref().to_vec()]).await? > 0)
    }

    /// Stores many pairs, one request per partition.
    pub async fn put_many<K, V>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), DhtError>
    where
        K: Into<Vec<u8>>,
        V: Into<Vec<u8>>,
    {
        let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = items
            .into_iter()
            .map(|(k, v)| (k.into(), Some(v.into())))
            .collect();
        self.write(items).await.map(|_| ())
    }

    /// Deletes many keys; how many held a value.
    pub async fn delete_many<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize, DhtError> {
        let items: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            keys.into_iter().map(|k| (k.into(), None)).collect();
        Ok(self.write(items).await?.into_iter().filter(|e| *e).count())
    }

    async fn write(&self, items: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Vec<bool>, DhtError> {
        crate::batch::write(self, items).await
    }

    /// Reads many keys, one request per partition; values in the order of `keys`.
    pub async fn get_many<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
        crate::batch::read(self, keys.into_iter().map(Into::into).collect()).await
    }

    /// Closes connections.
    pub async fn close(self) {
        self.pool.close();
        self.pool.endpoint().shutdown().await;
        self.coordinator.close().await;
    }
}

impl crate::batch::Router for DhtClient {
    fn partition_count(&self) -> Result<u32, DhtError> {
        Ok(self.current().assignment.config.partitions)
    }

    async fn send_to_primary(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        self.route(partition, make).await
    }

    fn propose(&self, n: usize) -> Vec<crate::Version> {
        let now = ringflow_cluster::clock::now_ms();
        let mut hlc = match self.hlc.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        (0..n).map(|_| hlc.tick(now)).collect()
    }
}
