//! The assignment table (partition -> replica set) and movement diffs between tables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{PartitionId, RingConfig, RingError, WorkerId};

/// Marker of an empty replica slot in [`Assignment::owners`].
pub const NO_OWNER: u32 = u32::MAX;

/// The assignment table.
///
/// Compact on the wire: `workers` is a sorted list of the worker ids that appear,
/// `owners` is flattened `partitions x replication` with `u32` indexes into `workers`
/// ([`NO_OWNER`] = no owner, only after the owned slots of a row). Index 0 within a
/// partition's replica set is its primary.
///
/// Deserialized tables are untrusted: call [`Assignment::validate`] before use. The
/// accessors never panic on an invalid table; they skip entries that make no sense.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Version of the table; grows by one with every change.
    pub epoch: u64,
    /// The ring shape this table was planned for.
    pub config: RingConfig,
    workers: Vec<WorkerId>,
    owners: Vec<u32>,
}

impl Assignment {
    /// An epoch-0 table in which nobody owns anything.
    ///
    /// `config` should be valid ([`RingConfig::new`]); for an invalid one the table has
    /// no slots at all and fails [`Assignment::validate`].
    pub fn empty(config: RingConfig) -> Self {
        let len = match config.validate() {
            Ok(()) => config.partitions as usize * config.replication,
            Err(_) => 0,
        };
        Assignment {
            epoch: 0,
            config,
            workers: Vec::new(),
            owners: vec![NO_OWNER; len],
        }
    }

    /// Builds a table from its wire parts, validating it.
    pub fn from_parts(
        epoch: u64,
        config: RingConfig,
        workers: Vec<WorkerId>,
        owners: Vec<u32>,
    ) -> Result<Self, RingError> {
        let a = Assignment {
            epoch,
            config,
            workers,
            owners,
        };
        a.validate()?;
        Ok(a)
    }

    /// Builds a table from parts known to be valid (the planner's output).
    pub(crate) fn from_parts_unchecked(
        epoch: u64,
        config: RingConfig,
        workers: Vec<WorkerId>,
        owners: Vec<u32>,
    ) -> Self {
        Assignment {
            epoch,
            config,
            workers,
            owners,
        }
    }

    /// Version of the table.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.config.partitions
    }

    /// Width of a replica row (the configured replication factor).
    pub fn replication_width(&self) -> usize {
        self.config.replication
    }

    /// Sorted ids of the workers that own at least one slot.
    pub fn workers(&self) -> &[WorkerId] {
        &self.workers
    }

    /// The flattened `partitions x replication` owner indexes into [`Assignment::workers`].
    pub fn owners(&self) -> &[u32] {
        &self.owners
    }

    /// The raw owner-index row of a partition (empty when out of range).
    pub(crate) fn row(&self, p: PartitionId) -> &[u32] {
        let w = self.config.replication;
        let start = p.index().saturating_mul(w);
        self.owners
            .get(start..start.saturating_add(w))
            .unwrap_or(&[])
    }

    fn row_ids(&self, p: PartitionId) -> impl Iterator<Item = &WorkerId> {
        self.row(p)
            .iter()
            .take_while(|&&i| i != NO_OWNER)
            .filter_map(|&i| self.workers.get(i as usize))
    }

    /// The replica set of a partition, primary first. Shorter than the replication
    /// factor when there are too few workers; empty when unowned or out of range.
    pub fn replicas(&self, p: PartitionId) -> Vec<&WorkerId> {
        self.row_ids(p).collect()
    }

    /// The primary (rank 0 replica) of a partition.
    pub fn primary(&self, p: PartitionId) -> Option<&WorkerId> {
        self.row_ids(p).next()
    }

    /// The replica set of the partition that `key` hashes to, primary first.
    pub fn owners_of_key(&self, key: &[u8]) -> Vec<&WorkerId> {
        self.replicas(self.config.partition_for_key(key))
    }

    fn worker_index(&self, w: &WorkerId) -> Option<u32> {
        self.workers
            .binary_search(w)
            .ok()
            .and_then(|i| u32::try_from(i).ok())
    }

    fn partition_ids(&self) -> impl Iterator<Item = PartitionId> {
        (0..self.config.partitions).map(PartitionId)
    }

    /// Partitions in which `w` holds a replica of any rank, ascending.
    pub fn partitions_of(&self, w: &WorkerId) -> Vec<PartitionId> {
        let Some(ix) = self.worker_index(w) else {
            return Vec::new();
        };
        self.partition_ids()
            .filter(|&p| self.row(p).contains(&ix))
            .collect()
    }

    /// Partitions of which `w` is the primary, ascending.
    pub fn primaries_of(&self, w: &WorkerId) -> Vec<PartitionId> {
        let Some(ix) = self.worker_index(w) else {
            return Vec::new();
        };
        self.partition_ids()
            .filter(|&p| self.row(p).first() == Some(&ix))
            .collect()
    }

    /// Partitions with no owner at all.
    pub fn unowned(&self) -> Vec<PartitionId> {
        self.partition_ids()
            .filter(|&p| self.primary(p).is_none())
            .collect()
    }

    /// Partitions with fewer than `target` replicas.
    pub fn under_replicated(&self, target: usize) -> Vec<PartitionId> {
        self.partition_ids()
            .filter(|&p| self.row_ids(p).count() < target)
            .collect()
    }

    /// Number of owned replica slots over all partitions.
    pub fn assigned_slots(&self) -> usize {
        self.partition_ids().map(|p| self.row_ids(p).count()).sum()
    }

    /// Per worker: (replica slots of any rank, primaries).
    pub fn counts(&self) -> BTreeMap<WorkerId, (usize, usize)> {
        let mut slots = vec![0usize; self.workers.len()];
        let mut prim = vec![0usize; self.workers.len()];
        for p in self.partition_ids() {
            for (rank, &i) in self
                .row(p)
                .iter()
                .take_while(|&&i| i != NO_OWNER)
                .enumerate()
            {
                if let Some(s) = slots.get_mut(i as usize) {
                    *s += 1;
                    if rank == 0 {
                        prim[i as usize] += 1;
                    }
                }
            }
        }
        self.workers
            .iter()
            .cloned()
            .zip(slots.into_iter().zip(prim))
            .collect()
    }

    /// This table with the rows of `parts` taken from `previous` (same partition count
    /// and replication), workers re-indexed; everything else as it is. Used to keep a
    /// replica set that must not be re-planned yet.
    pub fn with_rows_from(&self, previous: &Assignment, parts: &[PartitionId]) -> Assignment {
        if parts.is_empty() || previous.config != self.config {
            return self.clone();
        }
        let keep: std::collections::BTreeSet<PartitionId> = parts.iter().copied().collect();
        let mut workers: Vec<WorkerId> = self.workers.clone();
        for p in &keep {
            workers.extend(previous.replicas(*p).into_iter().cloned());
        }
        workers.sort();
        workers.dedup();
        let index = |id: &WorkerId| {
            workers
                .binary_search(id)
                .map(|i| i as u32)
                .unwrap_or(NO_OWNER)
        };
        let width = self.config.replication;
        let mut owners = vec![NO_OWNER; self.owners.len()];
        for p in self.partition_ids() {
            let row: Vec<&WorkerId> = if keep.contains(&p) {
                previous.replicas(p)
            } else {
                self.replicas(p)
            };
            for (j, id) in row.into_iter().take(width).enumerate() {
                owners[p.index() * width + j] = index(id);
            }
        }
        // Workers left without a slot are not listed.
        let mut used = vec![false; workers.len()];
        for &i in owners.iter().filter(|&&i| i != NO_OWNER) {
            used[i as usize] = true;
        }
        let remap: Vec<u32> = used
            .iter()
            .scan(0u32, |next, &u| {
                let r = if u { *next } else { NO_OWNER };
                if u {
                    *next += 1;
                }
                Some(r)
            })
            .collect();
        let owners = owners
            .into_iter()
            .map(|i| if i == NO_OWNER { i } else { remap[i as usize] })
            .collect();
        let workers = workers
            .into_iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(w, _)| w)
            .collect();
        Assignment {
            epoch: self.epoch,
            config: self.config,
            workers,
            owners,
        }
    }

    /// Whether two tables place every partition the same way (epochs aside).
    pub fn same_placement(&self, other: &Assignment) -> bool {
        self.config == other.config && self.workers == other.workers && self.owners == other.owners
    }

    /// Checks the table: valid config, `owners` sized `partitions * replication`, worker
    /// ids strictly sorted, indexes in range, owned slots before empty ones, and the
    /// replicas within a partition distinct.
    pub fn validate(&self) -> Result<(), RingError> {
        self.config.validate()?;
        let expected = self.config.partitions as usize * self.config.replication;
        if self.owners.len() != expected {
            return Err(RingError::OwnersLength {
                expected,
                actual: self.owners.len(),
            });
        }
        if self.workers.len() >= NO_OWNER as usize {
            return Err(RingError::TooManyWorkers(self.workers.len()));
        }
        if let Some(i) = self.workers.windows(2).position(|w| w[0] >= w[1]) {
            return Err(RingError::WorkersNotSorted(i + 1));
        }
        for p in self.partition_ids() {
            let row = self.row(p);
            let mut seen_empty = false;
            for (j, &ix) in row.iter().enumerate() {
                if ix == NO_OWNER {
                    seen_empty = true;
                    continue;
                }
                if seen_empty {
                    return Err(RingError::ReplicaGap(p));
                }
                let Some(worker) = self.workers.get(ix as usize) else {
                    return Err(RingError::OwnerOutOfRange {
                        partition: p,
                        index: ix,
                    });
                };
                if row[..j].contains(&ix) {
                    return Err(RingError::DuplicateReplica {
                        partition: p,
                        worker: worker.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// One replica-slot change between two tables.
///
/// `from: Some, to: Some` moves a replica's data; `from: None` adds a replica (the
/// partition grows); `to: None` drops one (the partition shrinks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The partition whose replica set changes.
    pub partition: PartitionId,
    /// The worker that stops holding the replica, if any.
    pub from: Option<WorkerId>,
    /// The worker that starts holding the replica, if any.
    pub to: Option<WorkerId>,
}

/// Replica-set membership changes from `old` to `new`, by partition, pairing leavers with
/// joiners in rank order. Primary changes and rank swaps within an unchanged set are not
/// moves (leadership moves without data).
pub fn diff(old: &Assignment, new: &Assignment) -> Vec<Move> {
    let partitions = old.config.partitions.max(new.config.partitions);
    let mut moves = Vec::new();
    for p in (0..partitions).map(PartitionId) {
        let a = old.replicas(p);
        let b = new.replicas(p);
        let mut gone = a.iter().filter(|w| !b.contains(w));
        let mut came = b.iter().filter(|w| !a.contains(w));
        loop {
            match (gone.next(), came.next()) {
                (None, None) => break,
                (from, to) => moves.push(Move {
                    partition: p,
                    from: from.map(|w| (*w).clone()),
                    to: to.map(|w| (*w).clone()),
                }),
            }
        }
    }
    moves
}

/// Moved replica slots ([`diff`] entries) divided by the total replica slots (the larger
/// of the two tables' owned slots); 0 when both tables are empty.
pub fn moved_fraction(old: &Assignment, new: &Assignment) -> f64 {
    let total = old.assigned_slots().max(new.assigned_slots());
    if total == 0 {
        return 0.0;
    }
    diff(old, new).len() as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(p: u32, r: usize) -> RingConfig {
        RingConfig::new(p, r).expect("valid config")
    }

    #[test]
    fn empty_table() {
        let a = Assignment::empty(cfg(8, 3));
        assert_eq!(a.epoch(), 0);
        assert!(a.validate().is_ok());
        assert_eq!(a.unowned().len(), 8);
        assert_eq!(a.under_replicated(1).len(), 8);
        assert!(a.replicas(PartitionId(0)).is_empty());
        assert!(a.replicas(PartitionId(100)).is_empty());
        assert_eq!(a.primary(PartitionId(0)), None);
        assert!(a.counts().is_empty());
        assert_eq!(a.assigned_slots(), 0);
        assert_eq!(moved_fraction(&a, &a), 0.0);
    }

    #[test]
    fn rows_kept_from_a_previous_table_keep_their_workers_and_the_rest_is_unchanged() {
        let c = cfg(2, 3);
        let w = |s: &str| WorkerId::from(s);
        let prev =
            Assignment::from_parts(4, c, vec![w("a"), w("b"), w("c")], vec![0, 1, 2, 1, 2, 0])
                .expect("valid");
        // b and c died: the planner gave both rows to a alone.
        let next = Assignment::from_parts(
            5,
            c,
            vec![w("a")],
            vec![0, NO_OWNER, NO_OWNER, 0, NO_OWNER, NO_OWNER],
        )
        .expect("valid");
        let kept = next.with_rows_from(&prev, &[PartitionId(0)]);
        assert!(kept.validate().is_ok());
        assert_eq!(kept.epoch(), 5);
        let ids = |a: &Assignment, p| -> Vec<String> {
            a.replicas(PartitionId(p))
                .iter()
                .map(|w| w.0.clone())
                .collect()
        };
        assert_eq!(ids(&kept, 0), ["a", "b", "c"]);
        assert_eq!(ids(&kept, 1), ["a"]);
        assert!(!kept.same_placement(&next));
        assert!(kept
            .with_rows_from(&prev, &[PartitionId(1)])
            .same_placement(&prev.with_rows_from(&prev, &[])));
        // Keeping nothing is the table itself.
        assert!(next.with_rows_from(&prev, &[]).same_placement(&next));
    }

    #[test]
    fn validate_rejects_bad_tables() {
        let c = cfg(2, 2);
        let w = |s: &str| WorkerId::from(s);
        let ok = Assignment::from_parts(1, c, vec![w("a"), w("b")], vec![0, 1, 1, NO_OWNER]);
        assert!(ok.is_ok());
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("a")], vec![0, NO_OWNER]),
            Err(RingError::OwnersLength { .. })
        ));
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("b"), w("a")], vec![0, 1, 0, 1]),
            Err(RingError::WorkersNotSorted(1))
        ));
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("a"), w("a")], vec![0, 1, 0, 1]),
            Err(RingError::WorkersNotSorted(1))
        ));
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("a")], vec![0, 5, 0, NO_OWNER]),
            Err(RingError::OwnerOutOfRange { .. })
        ));
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("a")], vec![0, 0, 0, NO_OWNER]),
            Err(RingError::DuplicateReplica { .. })
        ));
        assert!(matches!(
            Assignment::from_parts(1, c, vec![w("a")], vec![NO_OWNER, 0, 0, NO_OWNER]),
            Err(RingError::ReplicaGap(PartitionId(0)))
        ));
        let bad_cfg = RingConfig {
            partitions: 3,
            replication: 1,
        };
        assert!(matches!(
            Assignment::from_parts(1, bad_cfg, vec![], vec![NO_OWNER; 3]),
            Err(RingError::InvalidPartitions(3))
        ));
    }

    #[test]
    fn accessors_and_diff() {
        let c = cfg(4, 2);
        let w = |s: &str| WorkerId::from(s);
        let old = Assignment::from_parts(
            1,
            c,
            vec![w("a"), w("b"), w("c")],
            vec![0, 1, 1, 2, 2, 0, 0, NO_OWNER],
        )
        .expect("valid");
        assert_eq!(old.replicas(PartitionId(1)), vec![&w("b"), &w("c")]);
        assert_eq!(old.primary(PartitionId(2)), Some(&w("c")));
        assert_eq!(
            old.partitions_of(&w("a")),
            vec![PartitionId(0), PartitionId(2), PartitionId(3)]
        );
        assert_eq!(
            old.primaries_of(&w("a")),
            vec![PartitionId(0), PartitionId(3)]
        );
        assert!(old.partitions_of(&w("zz")).is_empty());
        assert_eq!(old.under_replicated(2), vec![PartitionId(3)]);
        assert!(old.unowned().is_empty());
        assert_eq!(old.counts()[&w("a")], (3, 2));
        assert_eq!(old.assigned_slots(), 7);

        // Partition 0: rank swap only (no move); 1: c -> a; 3: grows by b.
        let new = Assignment::from_parts(
            2,
            c,
            vec![w("a"), w("b"), w("c")],
            vec![1, 0, 1, 0, 2, 0, 0, 1],
        )
        .expect("valid");
        let moves = diff(&old, &new);
        assert_eq!(
            moves,
            vec![
                Move {
                    partition: PartitionId(1),
                    from: Some(w("c")),
                    to: Some(w("a"))
                },
                Move {
                    partition: PartitionId(3),
                    from: None,
                    to: Some(w("b"))
                },
            ]
        );
        assert!((moved_fraction(&old, &new) - 2.0 / 8.0).abs() < 1e-12);
    }
}
