//! Keyed state stored per ring partition: partitions are the key groups, so a
//! partition's state can be moved, snapshotted or dropped as one unit.

use std::collections::{BTreeMap, HashMap};

use ringflow_ring::{PartitionId, RingConfig};
use serde::{de::DeserializeOwned, Serialize};

use crate::data::Key;
use crate::operator::{OpError, OpResult};

/// Keyed state the runtime snapshots and restores per ring partition at checkpoints,
/// without the operator writing code for it: an operator returns its [`KeyedState`] from
/// [`crate::Operator::keyed_state`].
pub trait PartitionedState {
    /// MessagePack of each partition's state (partitions without state left out).
    fn snapshot_partitions(&self) -> OpResult<BTreeMap<u32, Vec<u8>>>;
    /// Puts back one partition's state as [`PartitionedState::snapshot_partitions`]
    /// made it (replacing what the partition held).
    fn restore_partition(&mut self, partition: u32, bytes: &[u8]) -> OpResult;
}

impl<S: Serialize + DeserializeOwned> PartitionedState for KeyedState<S> {
    fn snapshot_partitions(&self) -> OpResult<BTreeMap<u32, Vec<u8>>> {
        self.parts
            .iter()
            .map(|(p, keys)| {
                let mut sorted: Vec<(&Key, &S)> = keys.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                Ok((p.0, crate::checkpoint::to_bytes(&sorted)?))
            })
            .collect()
    }

    fn restore_partition(&mut self, partition: u32, bytes: &[u8]) -> OpResult {
        let pairs: Vec<(Key, S)> = crate::checkpoint::from_bytes(bytes)?;
        let p = PartitionId(partition);
        if let Some((k, _)) = pairs.iter().find(|(k, _)| self.partition_of(k) != p) {
            return Err(OpError(format!(
                "restoring partition {partition}: key {k:?} belongs to partition {} \
                 (a snapshot of a ring of another shape?)",
                self.partition_of(k).0
            )));
        }
        if pairs.is_empty() {
            self.parts.remove(&p);
        } else {
            self.parts.insert(p, pairs.into_iter().collect());
        }
        Ok(())
    }
}

/// Per-key state of type `S`, grouped by the ring partition of the key.
#[derive(Debug, Clone)]
pub struct KeyedState<S> {
    ring: RingConfig,
    parts: BTreeMap<PartitionId, HashMap<Key, S>>,
}

impl<S> KeyedState<S> {
    /// Empty state for a ring of this shape.
    pub fn new(ring: RingConfig) -> Self {
        KeyedState {
            ring,
            parts: BTreeMap::new(),
        }
    }

    /// The partition a key's state lives in.
    pub fn partition_of(&self, key: &str) -> PartitionId {
        self.ring.partition_for_key(key.as_bytes())
    }

    /// The state of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&S> {
        self.parts.get(&self.partition_of(key))?.get(key)
    }

    /// The state of `key`, created with `init` when absent.
    pub fn entry_or_insert_with(&mut self, key: &str, init: impl FnOnce() -> S) -> &mut S {
        let p = self.partition_of(key);
        let part = self.parts.entry(p).or_default();
        if !part.contains_key(key) {
            part.insert(key.to_owned(), init());
        }
        // Just inserted when absent.
        part.get_mut(key).unwrap_or_else(|| unreachable!())
    }

    /// Removes and returns the state of `key`.
    pub fn remove(&mut self, key: &str) -> Option<S> {
        let p = self.partition_of(key);
        let part = self.parts.get_mut(&p)?;
        let v = part.remove(key);
        if part.is_empty() {
            self.parts.remove(&p);
        }
        v
    }

    /// Partitions that hold state.
    pub fn partitions(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.parts.keys().copied()
    }

    /// Takes all the state of one partition out (to hand it over or snapshot it).
    pub fn take_partition(&mut self, partition: PartitionId) -> HashMap<Key, S> {
        self.parts.remove(&partition).unwrap_or_default()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.parts.values().map(HashMap::len).sum()
    }

    /// True when no key holds state.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Every (key, state), partition by partition.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &S)> {
        self.parts.values().flat_map(|m| m.iter())
    }

    /// Removes and yields every (key, state).
    pub fn drain(&mut self) -> impl Iterator<Item = (Key, S)> {
        std::mem::take(&mut self.parts)
            .into_values()
            .flat_map(|m| m.into_iter())
    }
}

impl<S: Default> KeyedState<S> {
    /// The state of `key`, created with `S::default()` when absent.
    pub fn entry(&mut self, key: &str) -> &mut S {
        self.entry_or_insert_with(key, S::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_state_round_trips_partition_by_partition() {
        let ring = RingConfig::new(16, 1).unwrap();
        let mut s: KeyedState<u64> = KeyedState::new(ring);
        for i in 0..200u64 {
            *s.entry(&format!("k{}", i % 50)) += i;
        }
        let snap = s.snapshot_partitions().unwrap();
        assert_eq!(snap.len(), s.partitions().count());
        // Two new owners split the partitions; together they hold the same state.
        let mut even: KeyedState<u64> = KeyedState::new(ring);
        let mut odd: KeyedState<u64> = KeyedState::new(ring);
        for (p, bytes) in &snap {
            let into = if p % 2 == 0 { &mut even } else { &mut odd };
            into.restore_partition(*p, bytes).unwrap();
        }
        assert_eq!(even.len() + odd.len(), s.len());
        for (k, v) in s.iter() {
            assert_eq!(even.get(k).or(odd.get(k)), Some(v), "{k}");
        }
        // A partition's bytes restored as another partition are refused.
        let (p, bytes) = snap.iter().next().unwrap();
        let other = (p + 1) % 16;
        assert!(even.restore_partition(other, bytes).is_err());
        assert!(even.restore_partition(*p, b"\xc1").is_err(), "garbage");
    }

    #[test]
    fn state_is_grouped_by_the_ring_partition_of_its_key() {
        let ring = RingConfig::new(64, 1).unwrap();
        let mut s: KeyedState<u64> = KeyedState::new(ring);
        for i in 0..1000 {
            *s.entry(&format!("k{}", i % 100)) += 1;
        }
        assert_eq!(s.len(), 100);
        assert_eq!(s.get("k7"), Some(&10));
        let p = s.partition_of("k7");
        assert_eq!(p, ring.partition_for_key(b"k7"));
        let taken = s.take_partition(p);
        assert!(taken.contains_key("k7"));
        assert!(taken
            .keys()
            .all(|k| ring.partition_for_key(k.as_bytes()) == p));
        assert_eq!(s.get("k7"), None);
        assert_eq!(s.len(), 100 - taken.len());
        assert_eq!(s.remove("k8").is_some(), p != s.partition_of("k8"));
    }
}
