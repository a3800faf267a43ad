//! The ringflow partition ring: stable key hashing, a fixed power-of-two partition count,
//! and the weighted, sticky assignment of partition replica sets to workers with movement diffs.
//! Pure and deterministic (sans-IO): the coordinator plans tables here, every node routes by them.
//!
//! Entry points: [`RingConfig::partition_for_key`] (key -> partition), [`assign`]
//! (membership -> next [`Assignment`]), [`diff`] / [`moved_fraction`] (what moves);
//! [`rng`] is the seeded SplitMix64 generator shared by deterministic code elsewhere.

#![warn(missing_docs)]

mod assign;
mod assignment;
mod error;
pub mod rng;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use assign::assign;
pub use assignment::{diff, moved_fraction, Assignment, Move, NO_OWNER};
pub use error::RingError;

/// Default number of partitions (power of two). Same as Redis Cluster's slot count.
pub const DEFAULT_PARTITIONS: u32 = 16384;

/// Default replication factor: each partition is held by this many distinct workers.
pub const DEFAULT_REPLICATION: usize = 3;

/// Largest accepted partition count (2^20).
pub const MAX_PARTITIONS: u32 = 1 << 20;

/// Largest accepted replication factor.
pub const MAX_REPLICATION: usize = 16;

/// Fixed seed of [`key_hash`]. Changing it re-routes every key: never change it.
pub const KEY_HASH_SEED: u64 = 0x7269_6e67_666c_6f77; // "ringflow"

/// Identifier of a worker (a node that owns partitions).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl WorkerId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        WorkerId(s.to_owned())
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        WorkerId(s)
    }
}

/// Index of a partition, in `0..RingConfig::partitions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl PartitionId {
    /// The partition number as a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Stable 64-bit key hash: xxh3_64 with the fixed seed [`KEY_HASH_SEED`].
///
/// Identical on every node, build and version; never std's `DefaultHasher`.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, KEY_HASH_SEED)
}

/// Shape of a ring: partition count and replication factor, fixed per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingConfig {
    /// Number of partitions: a power of two in `1..=MAX_PARTITIONS`.
    pub partitions: u32,
    /// Replicas per partition (distinct workers), in `1..=MAX_REPLICATION`.
    pub replication: usize,
}

impl RingConfig {
    /// Checked constructor: `partitions` must be a power of two in `1..=2^20`, and
    /// `replication` in `1..=MAX_REPLICATION`.
    pub fn new(partitions: u32, replication: usize) -> Result<Self, RingError> {
        let config = RingConfig {
            partitions,
            replication,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the invariants of [`RingConfig::new`] (useful after deserializing).
    pub fn validate(&self) -> Result<(), RingError> {
        if !self.partitions.is_power_of_two() || self.partitions > MAX_PARTITIONS {
            return Err(RingError::InvalidPartitions(self.partitions));
        }
        if self.replication == 0 || self.replication > MAX_REPLICATION {
            return Err(RingError::InvalidReplication(self.replication));
        }
        Ok(())
    }

    /// The partition of a key: a pure function of [`key_hash`], uniform over the partitions.
    pub fn partition_for_key(&self, key: &[u8]) -> PartitionId {
        self.partition_for_hash(key_hash(key))
    }

    /// The partition of an already computed [`key_hash`] (multiply-shift of the hash).
    pub fn partition_for_hash(&self, hash: u64) -> PartitionId {
        let p = (u128::from(hash) * u128::from(self.partitions.max(1))) >> 64;
        // `p < partitions <= u32::MAX`, so the conversion cannot fail.
        PartitionId(u32::try_from(p).unwrap_or(0))
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            partitions: DEFAULT_PARTITIONS,
            replication: DEFAULT_REPLICATION,
        }
    }
}

/// A worker offered to [`assign`], with its relative capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The worker's id.
    pub id: WorkerId,
    /// Relative weight (>= 1): replica slots and primaries are shared in proportion to it.
    pub capacity: u32,
}

impl WorkerSpec {
    /// A worker with the given id and capacity.
    pub fn new(id: impl Into<WorkerId>, capacity: u32) -> Self {
        WorkerSpec {
            id: id.into(),
            capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_pinned() {
        // These constants pin the hash across versions: if this test fails, every key
        // in every existing cluster would be routed to a different partition.
        assert_eq!(key_hash(b""), 0x8469_c894_2253_fdb1);
        assert_eq!(key_hash(b"hello"), 0xeced_9c21_b6f6_48cd);
        assert_eq!(key_hash(b"user:1000"), 0xdb2e_dd86_dff0_b45e);
        assert_eq!(key_hash(&[0u8; 64]), 0xf54f_6c8c_c9c0_529d);
        // And the partition of a key at the default size.
        assert_eq!(
            RingConfig::default().partition_for_key(b"hello"),
            PartitionId(15163)
        );
    }

    #[test]
    fn partition_for_key_in_range() {
        for partitions in [1u32, 2, 64, 1024, DEFAULT_PARTITIONS, MAX_PARTITIONS] {
            let config = RingConfig::new(partitions, 3).expect("valid config");
            for i in 0..2000u32 {
                let p = config.partition_for_key(&i.to_le_bytes());
                assert!(p.0 < partitions);
            }
        }
        let one = RingConfig::new(1, 1).expect("valid config");
        assert_eq!(one.partition_for_hash(u64::MAX), PartitionId(0));
        let c = RingConfig::default();
        assert_eq!(
            c.partition_for_hash(u64::MAX),
            PartitionId(DEFAULT_PARTITIONS - 1)
        );
        assert_eq!(c.partition_for_hash(0), PartitionId(0));
    }

    #[test]
    fn partition_for_key_is_roughly_uniform() {
        let config = RingConfig::new(16, 1).expect("valid config");
        let mut counts = [0u32; 16];
        for i in 0..160_000u32 {
            counts[config
                .partition_for_key(format!("key-{i}").as_bytes())
                .index()] += 1;
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "skewed bucket {c}");
        }
    }

    #[test]
    fn config_errors() {
        assert_eq!(RingConfig::new(0, 3), Err(RingError::InvalidPartitions(0)));
        assert_eq!(
            RingConfig::new(1000, 3),
            Err(RingError::InvalidPartitions(1000))
        );
        assert_eq!(
            RingConfig::new(1 << 21, 3),
            Err(RingError::InvalidPartitions(1 << 21))
        );
        assert_eq!(
            RingConfig::new(64, 0),
            Err(RingError::InvalidReplication(0))
        );
        assert_eq!(
            RingConfig::new(64, MAX_REPLICATION + 1),
            Err(RingError::InvalidReplication(MAX_REPLICATION + 1))
        );
        assert!(RingConfig::new(1, 1).is_ok());
        assert!(RingConfig::new(MAX_PARTITIONS, MAX_REPLICATION).is_ok());
        let d = RingConfig::default();
        assert_eq!(
            (d.partitions, d.replication),
            (DEFAULT_PARTITIONS, DEFAULT_REPLICATION)
        );
    }

    #[test]
    fn worker_id_conversions() {
        let a: WorkerId = "w1".into();
        let b: WorkerId = String::from("w1").into();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "w1");
        assert_eq!(a.as_str(), "w1");
        assert_eq!(PartitionId(7).to_string(), "7");
    }
}
