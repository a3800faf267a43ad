//! Messages of the DHT service, carried in frames on `"dht"` streams.
//!
//! Clients send [`DhtRequest::Put`] / [`DhtRequest::Get`] to the primary of each key's
//! partition; the primary replicates to the other owners with [`DhtRequest::Replicate`] and
//! reads from them with [`DhtRequest::ReadReplica`]. A node that is not the primary answers
//! [`DhtResponse::Moved`] so that the client refreshes its view and retries.

use serde::{Deserialize, Serialize};

use crate::Entry;

/// The service name in stream hellos.
pub const SERVICE: &str = "dht";

/// A request to a worker's DHT service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhtRequest {
    /// Writes (value `None` deletes), all keys in `partition`; answered once a write quorum
    /// has them durably.
    Put {
        /// Epoch of the view the client routed with.
        epoch: u64,
        /// The partition of every key.
        partition: u32,
        /// Keys and values.
        items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// Reads, all keys in `partition`, answered from a read quorum.
    Get {
        /// Epoch of the view the client routed with.
        epoch: u64,
        /// The partition of every key.
        partition: u32,
        /// Keys.
        keys: Vec<Vec<u8>>,
    },
    /// Primary → replica: store these versioned entries durably.
    Replicate {
        /// The partition.
        partition: u32,
        /// Keys and entries.
        writes: Vec<(Vec<u8>, Entry)>,
    },
    /// New replica → existing replica (handoff): entries of these partitions, in
    /// (partition, key) order, after the cursor, up to about `max_bytes`.
    Fetch {
        /// Partitions wanted, ascending.
        partitions: Vec<u32>,
        /// Resume after this (partition, key); `None` starts at the beginning.
        after: Option<(u32, Vec<u8>)>,
        /// Byte budget of the answer.
        max_bytes: usize,
    },
    /// Primary → replica: your copies of these keys.
    ReadReplica {
        /// The partition.
        partition: u32,
        /// Keys.
        keys: Vec<Vec<u8>>,
    },
}

/// An answer from a worker's DHT service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhtResponse {
    /// Writes done; for each item, whether the key held a value before (for DEL counts).
    Written {
        /// Per item: a live value existed before this write.
        existed: Vec<bool>,
    },
    /// Values read (None: no such key).
    Values {
        /// Per key.
        values: Vec<Option<Vec<u8>>>,
    },
    /// Replica stored the writes.
    Replicated,
    /// A page of a handoff.
    Page {
        /// (partition, key, entry), in order.
        entries: Vec<(u32, Vec<u8>, Entry)>,
        /// Cursor for the next page; `None` when done.
        next: Option<(u32, Vec<u8>)>,
        /// The sender is itself still catching up on some of these partitions: its copy
        /// may be incomplete.
        #[serde(default)]
        partial: bool,
    },
    /// Replica's entries (None: it has none).
    Entries {
        /// Per key.
        entries: Vec<Option<Entry>>,
    },
    /// This node is not the partition's primary in its view: refresh and retry.
    Moved {
        /// The partition.
        partition: u32,
        /// Epoch of the answering node's view.
        epoch: u64,
        /// The primary's address in that view, if any.
        primary: Option<String>,
    },
    /// Not enough replicas answered in time: nothing is acknowledged (a write may still
    /// have reached some replicas).
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The request was invalid (too large, malformed...).
    Error {
        /// Why.
        message: String,
    },
}
