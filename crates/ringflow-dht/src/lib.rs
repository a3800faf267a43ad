//! ringflow's distributed hash table.
//!
//! Keys map to Redis Cluster's 16384 slots (CRC16 with `{hash tags}`), slots to ring
//! partitions; every partition's replicas keep versioned entries in a durable store
//! (write-ahead log with group commit), so replicas converge and stale copies never win.
//! The primary of each partition coordinates quorum writes and reads.

mod batch;
pub mod client;
mod coalesce;
pub mod error;
mod join;
pub mod node;
pub mod pool;
pub mod resp_gateway;
pub mod slot;
pub mod store;
pub mod version;
pub mod wire;

pub use client::DhtClient;
pub use error::DhtError;
pub use node::{service, DhtConfig, DhtService};
pub use slot::{key_slot, SlotMap, SLOTS};
pub use version::{Entry, Hlc, Version};
