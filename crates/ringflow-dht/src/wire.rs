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
        /// The write's versions, one per item, proposed by the router (see [`Stamps`]).
        #[serde(default)]
        stamps: Stamps,
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
        /// Epoch of the sender's view (fencing: see [`fenced_out`]).
        #[serde(default)]
        epoch: u64,
        /// The sending worker.
        #[serde(default)]
        from: String,
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
        /// Epoch of the sender's view.
        #[serde(default)]
        epoch: u64,
        /// The sending worker.
        #[serde(default)]
        from: String,
    },
    /// Several requests to one worker in one round trip (a worker forwarding for many
    /// clients at once); answered by [`DhtResponse::Multi`], one answer per request in
    /// order. Not nested.
    Multi(Vec<DhtRequest>),
    /// Primary → replica: forget these tombstones (each only if the key still holds that
    /// very tombstone). Sent only once every replica of the configured set holds them.
    Forget {
        /// The partition.
        partition: u32,
        /// Keys and the versions of their tombstones.
        tombstones: Vec<(Vec<u8>, crate::Version)>,
        /// Epoch of the sender's view (fencing, as for `Replicate`).
        epoch: u64,
        /// Sender's worker id (set from its certificate on arrival).
        from: String,
    },
}

/// The versions of a write, chosen once by whoever routes it and kept across its
/// retries, so that a retried write is idempotent.
///
/// On a first attempt (`retry == false`) the primary takes each proposed version that is
/// newer than every version it knows of the key, and stamps the others itself (and all of
/// them again if a replica answers [`DhtResponse::Superseded`]), so a write acknowledged
/// before this one began is always overwritten. A retry (`retry == true`: an earlier
/// attempt may have been applied) is stored with exactly these versions and never
/// stamped again: stamping it above a newer write would apply the same write a second
/// time after an acknowledged overwrite, bringing an old value back. When a replica holds
/// a newer version than a retry carries, the retry is answered
/// [`DhtResponse::Unknown`]: the write may have been applied before that newer one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamps {
    /// One version per item; empty: the primary stamps every item itself.
    pub versions: Vec<crate::Version>,
    /// An earlier attempt of this write may have been applied.
    pub retry: bool,
}

/// Epoch fencing of replica traffic: a replica refuses `Replicate` / `ReadReplica` from a
/// sender whose view is older than its own, unless its own (newer) view still makes the
/// sender the partition's primary and itself one of the owners — the change did not touch
/// this partition. So a primary that lost its role cannot gather a quorum among replicas
/// that already know, and an owner that already handed a partition away ignores it.
pub fn fenced_out(
    my_epoch: u64,
    my_primary: Option<&str>,
    i_own_it: bool,
    sender_epoch: u64,
    sender: &str,
) -> bool {
    if sender_epoch >= my_epoch {
        return false;
    }
    !(i_own_it && my_primary == Some(sender))
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
    /// The replica holds a newer version of some of the keys than the write carries (the
    /// primary's clock is behind, or it missed a write): it stored the rest, and the
    /// primary must stamp the write again above `version`, the highest such version.
    Superseded {
        /// The highest version the replica holds for any of the keys.
        version: crate::Version,
    },
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
    /// A write reached this node's store (and maybe some replicas) but no quorum
    /// acknowledged it in time: it may or may not survive. Not a refusal.
    Unknown {
        /// Why.
        reason: String,
        /// The versions the write was last stamped with, one per item (empty when not
        /// known): a retry pins them ([`Stamps::retry`]), so the write is never applied
        /// twice under two versions.
        #[serde(default)]
        stamped: Vec<crate::Version>,
    },
    /// The request was invalid (too large, malformed...).
    Error {
        /// Why.
        message: String,
    },
    /// The answers to a [`DhtRequest::Multi`], in order.
    Multi(Vec<DhtResponse>),
}

#[cfg(test)]
mod fencing_tests {
    use super::fenced_out;

    #[test]
    fn replica_traffic_from_an_older_view_is_refused_unless_the_partition_did_not_change() {
        // Same or newer view: always accepted.
        assert!(!fenced_out(5, Some("w1"), true, 5, "w9"));
        assert!(!fenced_out(5, Some("w1"), false, 7, "w9"));
        // Older view, and the sender is no longer the primary: refused.
        assert!(fenced_out(6, Some("w2"), true, 5, "w1"));
        // Older view, and this node no longer owns the partition: refused.
        assert!(fenced_out(6, Some("w1"), false, 5, "w1"));
        // Older view, but the new table left this partition alone: accepted.
        assert!(!fenced_out(6, Some("w1"), true, 5, "w1"));
        // Unknown primary in the new view: refused.
        assert!(fenced_out(6, None, true, 5, "w1"));
    }
}
