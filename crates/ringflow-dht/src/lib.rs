//! ringflow's distributed hash table.
//!
//! Keys map to Redis Cluster's 16384 slots (CRC16 with `{hash tags}`), slots to ring
//! partitions; every partition's replicas keep versioned entries in a durable store
//! (write-ahead log with group commit), so replicas converge and stale copies never win.
//! The primary of each partition coordinates quorum writes and reads.
//!
//! Modules: [`replica`] is the service a worker hosts ([`DhtService`]: writes, reads,
//! routing, handoff, upkeep); [`resp`] the Redis-compatible gateway the worker's assembly
//! starts next to it; [`client`] the client for other processes; [`store`] the durable
//! store; [`slot`], [`version`] and [`wire`] placement, versions and the peer protocol;
//! [`pool`] the streams to peers.

mod batch;
pub mod client;
pub mod error;
mod join;
pub mod pool;
pub mod replica;
pub mod resp;
pub mod slot;
pub mod store;
pub mod version;
pub mod wire;

pub use client::DhtClient;
pub use error::DhtError;
pub use replica::{service, DhtConfig, DhtService};
pub use slot::{key_slot, SlotMap, SLOTS};
pub use version::{Entry, Hlc, Version};
