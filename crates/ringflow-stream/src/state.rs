//! Keyed state stored per ring partition: partitions are the key groups, so a
//! partition's state can be moved, snapshotted or dropped as one unit.

use std::collections::{BTreeMap, HashMap};

use ringflow_ring::{PartitionId, RingConfig};

use crate::data::Key;

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
