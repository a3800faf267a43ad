//! Typed errors of the ring.

use crate::{PartitionId, WorkerId, MAX_PARTITIONS, MAX_REPLICATION};

/// Everything that can go wrong when configuring, planning or validating a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The partition count is not a power of two in `1..=MAX_PARTITIONS`.
    #[error("partition count {0} must be a power of two between 1 and {MAX_PARTITIONS}")]
    InvalidPartitions(u32),
    /// The replication factor is not in `1..=MAX_REPLICATION`.
    #[error("replication factor {0} must be between 1 and {MAX_REPLICATION}")]
    InvalidReplication(usize),
    /// A worker was offered with capacity 0.
    #[error("worker {0:?} has capacity 0; capacity must be at least 1")]
    ZeroCapacity(WorkerId),
    /// A worker was offered with an empty id.
    #[error("worker ids must not be empty")]
    EmptyWorkerId,
    /// The same worker id was offered twice.
    #[error("worker {0:?} is listed more than once")]
    DuplicateWorker(WorkerId),
    /// More workers than a table can index.
    #[error("too many workers: {0}")]
    TooManyWorkers(usize),
    /// The partition count of a cluster is fixed at creation and cannot change.
    #[error("partition count cannot change: previous table has {previous}, requested {requested}")]
    PartitionCountMismatch {
        /// Partition count of the previous table.
        previous: u32,
        /// Partition count requested now.
        requested: u32,
    },
    /// The epoch counter would overflow.
    #[error("epoch overflow")]
    EpochOverflow,
    /// The owners table does not have `partitions * replication` entries.
    #[error("owners table has {actual} entries, expected {expected}")]
    OwnersLength {
        /// `partitions * replication`.
        expected: usize,
        /// Entries present.
        actual: usize,
    },
    /// The worker list is not strictly sorted (unsorted or duplicated ids).
    #[error("worker list is not strictly sorted at position {0}")]
    WorkersNotSorted(usize),
    /// An owner index does not point into the worker list.
    #[error("partition {partition}: owner index {index} out of range")]
    OwnerOutOfRange {
        /// The partition whose row is bad.
        partition: PartitionId,
        /// The bad index.
        index: u32,
    },
    /// A replica row has an owner after an empty slot.
    #[error("partition {0}: owner after an empty replica slot")]
    ReplicaGap(PartitionId),
    /// A worker appears twice in one partition's replica set.
    #[error("partition {partition}: worker {worker:?} holds more than one replica")]
    DuplicateReplica {
        /// The partition whose row is bad.
        partition: PartitionId,
        /// The repeated worker.
        worker: WorkerId,
    },
}
