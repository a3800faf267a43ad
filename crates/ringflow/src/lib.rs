//! ringflow: an actor-based cluster runtime for distributed stream processing.
//!
//! This crate is the user-facing facade: the `ringflow` binary (coordinator, worker,
//! local cluster, certificates, status) and the re-exports an application needs to run
//! or talk to a cluster from Rust.

pub mod profile;

pub use ringflow_cluster::{
    ClusterClient, ClusterError, CoordinatorConfig, CoordinatorHandle, TlsConfig, WorkerConfig,
    WorkerHandle,
};
pub use ringflow_net::{certs, Role, TlsIdentity};
pub use ringflow_proto::{ClusterStatus, MemberState, MemberStatus, NodeInfo};
pub use ringflow_ring::{Assignment, PartitionId, RingConfig, WorkerId};
