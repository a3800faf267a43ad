//! ringflow: an actor-based cluster runtime for distributed stream processing.
//!
//! This crate is the user-facing facade: what an application needs to talk to a cluster
//! from Rust ([`Cluster`], [`Dht`], [`Sorter`]), to ship its own operators in a worker
//! binary ([`WorkerBuilder`]), the node assembly ([`node`]), the distributed sort's driver
//! ([`sort`]), `sink.dht`, client profiles, and the `ringflow` command line (coordinator,
//! worker, local cluster, certificates, status, DHT, jobs, sort), which only parses, wires
//! and prints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The profile written by `ringflow local` (or `Cluster::new` with explicit settings).
//! let cluster = ringflow::Cluster::from_profile()?;
//! let dht = cluster.dht();
//! dht.put("key1", "value1").await?;
//! let v = dht.get("key1").await?;
//! assert_eq!(v.as_deref(), Some(&b"value1"[..]));
//! # Ok(()) }
//! ```

mod app;
mod cli;
pub mod dht_sink;
pub mod node;
pub mod notify;
pub mod profile;
pub mod sort;

pub use app::WorkerBuilder;
/// The allocator of the `ringflow` binary: a custom worker binary should use it too
/// (`#[global_allocator] static GLOBAL: ringflow::MiMalloc = ringflow::MiMalloc;`), since
/// stream operators allocate small strings per record on many threads, where glibc's
/// malloc costs several times more.
pub use mimalloc::MiMalloc;
/// The built-in operators and sources (`ringflow-ops`).
pub use ringflow_ops as ops;
/// The stream model: operator and source traits, specs, the instance executor
/// (`ringflow-stream`).
pub use ringflow_stream as stream;
pub use sort::Sorter;

use std::sync::Arc;

pub use ringflow_cluster::{
    ClusterClient, ClusterError, CoordinatorConfig, CoordinatorHandle, DhtSettings, TlsConfig,
    WorkerConfig, WorkerHandle,
};
pub use ringflow_dht::{DhtClient, DhtError};
pub use ringflow_net::{certs, Role, TlsIdentity};
pub use ringflow_proto::{ClusterStatus, MemberState, MemberStatus, NodeInfo};
pub use ringflow_ring::{Assignment, PartitionId, RingConfig, WorkerId};

/// Errors of the facade.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client profile could not be read, or there is none.
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    /// No profile exists and no settings were given.
    #[error("no cluster profile at {0}: start `ringflow local` or use Cluster::new")]
    NoProfile(String),
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] ringflow_net::NetError),
    /// The cluster refused or failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A distributed sort failed.
    #[error(transparent)]
    Sort(#[from] sort::SortError),
}

/// A handle on a cluster: where its coordinator is and how to authenticate.
#[derive(Clone)]
pub struct Cluster {
    coordinator: String,
    identity: TlsIdentity,
    name: String,
}

impl Cluster {
    /// A cluster whose coordinator is at `coordinator` (`HOST:PORT`), reached with a
    /// client (or node) certificate, named `name`.
    pub fn new(
        coordinator: impl Into<String>,
        identity: TlsIdentity,
        name: impl Into<String>,
    ) -> Self {
        Self {
            coordinator: coordinator.into(),
            identity,
            name: name.into(),
        }
    }

    /// The cluster of the default client profile (written by `ringflow local`).
    pub fn from_profile() -> Result<Self, Error> {
        let path = profile::default_path()
            .ok_or_else(|| Error::NoProfile("(no home directory)".into()))?;
        let p = profile::Profile::load(&path)?
            .ok_or_else(|| Error::NoProfile(path.display().to_string()))?;
        let identity = TlsIdentity::from_dir(&p.certs_dir, &p.cert_name)?;
        Ok(Self::new(p.cluster, identity, p.cluster_name))
    }

    /// The distributed hash table; connects on first use.
    pub fn dht(&self) -> Dht {
        Dht {
            cluster: self.clone(),
            client: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The coordinator's status report.
    pub async fn status(&self) -> Result<ClusterStatus, Error> {
        let c = ClusterClient::connect(&self.coordinator, &self.identity, &self.name).await?;
        let s = c.status().await;
        c.close().await;
        Ok(s?)
    }
}

/// The cluster's distributed hash table (cheap to clone; connections are shared).
#[derive(Clone)]
pub struct Dht {
    cluster: Cluster,
    client: Arc<tokio::sync::OnceCell<DhtClient>>,
}

impl Dht {
    async fn client(&self) -> Result<&DhtClient, DhtError> {
        self.client
            .get_or_try_init(|| {
                DhtClient::connect(
                    &self.cluster.coordinator,
                    &self.cluster.identity,
                    &self.cluster.name,
                )
            })
            .await
    }

    /// Stores `value` under `key` (acknowledged once a write quorum has it durably).
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), DhtError> {
        self.client().await?.put(key, value).await
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, DhtError> {
        self.client().await?.get(key).await
    }

    /// Deletes `key`; whether it held a value.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, DhtError> {
        self.client().await?.delete(key).await
    }

    /// Stores many pairs (one request per partition).
    pub async fn put_many<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), DhtError> {
        self.client().await?.put_many(items).await
    }

    /// Reads many keys; values in the order of `keys`.
    pub async fn get_many<K: Into<Vec<u8>>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
        self.client().await?.get_many(keys).await
    }
}
