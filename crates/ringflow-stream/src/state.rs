//! Keyed state stored per ring partition: partitions are the key groups, so a
//! partition's state can be moved, snapshotted or dropped as one unit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hashbrown::HashTable;
use ringflow_ring::{key_hash, PartitionId, RingConfig};
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
        let mut parts: BTreeMap<u32, Vec<(&Key, &S)>> = BTreeMap::new();
        for s in &self.table {
            parts
                .entry(self.ring.partition_for_hash(s.hash).0)
                .or_default()
                .push((&s.key, &s.value));
        }
        parts
            .into_iter()
            .map(|(p, mut keys)| {
                keys.sort_by(|a, b| a.0.cmp(b.0));
                Ok((p, crate::checkpoint::to_bytes(&keys)?))
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
        // A restore fills an empty state: scan the table only when it holds keys.
        if !self.table.is_empty() {
            drop(self.take_partition(p));
        }
        for (key, value) in pairs {
            let hash = key_hash(key.as_bytes());
            let table_hash_of = |s: &Slot<S>| table_hash(s.hash);
            match self.table.entry(
                table_hash(hash),
                |s| s.hash == hash && s.key == key,
                table_hash_of,
            ) {
                hashbrown::hash_table::Entry::Occupied(mut o) => o.get_mut().value = value,
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(Slot { hash, key, value });
                }
            }
        }
        Ok(())
    }
}

/// Two partitioned states as one (the two sides of a join, say): a partition's snapshot
/// holds both parts, each restored into its own state.
impl<A: PartitionedState, B: PartitionedState> PartitionedState for (A, B) {
    fn snapshot_partitions(&self) -> OpResult<BTreeMap<u32, Vec<u8>>> {
        let mut a = self.0.snapshot_partitions()?;
        let mut b = self.1.snapshot_partitions()?;
        let parts: std::collections::BTreeSet<u32> = a.keys().chain(b.keys()).copied().collect();
        parts
            .into_iter()
            .map(|p| {
                let pair = (
                    a.remove(&p).map(serde_bytes::ByteBuf::from),
                    b.remove(&p).map(serde_bytes::ByteBuf::from),
                );
                Ok((p, crate::checkpoint::to_bytes(&pair)?))
            })
            .collect()
    }

    fn restore_partition(&mut self, partition: u32, bytes: &[u8]) -> OpResult {
        let (a, b): (Option<serde_bytes::ByteBuf>, Option<serde_bytes::ByteBuf>) =
            crate::checkpoint::from_bytes(bytes)?;
        if let Some(a) = a {
            self.0.restore_partition(partition, &a)?;
        }
        if let Some(b) = b {
            self.1.restore_partition(partition, &b)?;
        }
        Ok(())
    }
}

/// One key's state in a [`KeyedState`], with the key's ring hash.
#[derive(Debug, Clone)]
struct Slot<S> {
    /// [`ringflow_ring::key_hash`] of the key: its partition, and (mixed) its place in
    /// the table.
    hash: u64,
    key: Key,
    value: S,
}

/// Spreads a ring hash over the table: the ring takes a key's partition from the hash's
/// high bits, so the keys one instance serves share them; the table must not.
fn table_hash(ring_hash: u64) -> u64 {
    (ring_hash ^ (ring_hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// Per-key state of type `S`: one flat hash table per operator (each key hashed once,
/// with the ring's hash, which also gives its partition), enumerable and movable per
/// ring partition.
#[derive(Debug, Clone)]
pub struct KeyedState<S> {
    ring: RingConfig,
    table: HashTable<Slot<S>>,
}

impl<S> KeyedState<S> {
    /// Empty state for a ring of this shape.
    pub fn new(ring: RingConfig) -> Self {
        KeyedState {
            ring,
            table: HashTable::new(),
        }
    }

    /// The partition a key's state lives in.
    pub fn partition_of(&self, key: &str) -> PartitionId {
        self.ring.partition_for_key(key.as_bytes())
    }

    /// The state of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&S> {
        let h = key_hash(key.as_bytes());
        self.table
            .find(table_hash(h), |s| s.hash == h && s.key == key)
            .map(|s| &s.value)
    }

    /// The state of `key` to change, if any.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut S> {
        let h = key_hash(key.as_bytes());
        self.table
            .find_mut(table_hash(h), |s| s.hash == h && s.key == key)
            .map(|s| &mut s.value)
    }

    /// The state of `key`, created with `init` when absent.
    pub fn entry_or_insert_with(&mut self, key: &str, init: impl FnOnce() -> S) -> &mut S {
        self.entry_hashed(key_hash(key.as_bytes()), key, init)
    }

    /// As [`KeyedState::entry_or_insert_with`], for a key whose
    /// [`ringflow_ring::key_hash`] is already known (it must be that key's).
    pub fn entry_hashed(&mut self, hash: u64, key: &str, init: impl FnOnce() -> S) -> &mut S {
        let entry = self.table.entry(
            table_hash(hash),
            |s| s.hash == hash && s.key == key,
            |s| table_hash(s.hash),
        );
        let slot = match entry {
            hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_table::Entry::Vacant(v) => v
                .insert(Slot {
                    hash,
                    key: key.to_owned(),
                    value: init(),
                })
                .into_mut(),
        };
        &mut slot.value
    }

    /// Removes and returns the state of `key`.
    pub fn remove(&mut self, key: &str) -> Option<S> {
        let h = key_hash(key.as_bytes());
        match self
            .table
            .find_entry(table_hash(h), |s| s.hash == h && s.key == key)
        {
            Ok(o) => Some(o.remove().0.value),
            Err(_) => None,
        }
    }

    /// Partitions that hold state, in order.
    pub fn partitions(&self) -> impl Iterator<Item = PartitionId> {
        let ring = self.ring;
        self.table
            .iter()
            .map(|s| ring.partition_for_hash(s.hash))
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    /// Takes all the state of one partition out (to hand it over or snapshot it).
    pub fn take_partition(&mut self, partition: PartitionId) -> HashMap<Key, S> {
        let ring = self.ring;
        self.table
            .extract_if(|s| ring.partition_for_hash(s.hash) == partition)
            .map(|s| (s.key, s.value))
            .collect()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key holds state.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every (key, state), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &S)> {
        self.table.iter().map(|s| (&s.key, &s.value))
    }

    /// Removes and yields every (key, state).
    pub fn drain(&mut self) -> impl Iterator<Item = (Key, S)> + '_ {
        self.table.drain().map(|s| (s.key, s.value))
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
    fn a_pair_of_states_round_trips_partition_by_partition() {
        let ring = RingConfig::new(16, 1).unwrap();
        let mut pair: (KeyedState<u64>, KeyedState<String>) =
            (KeyedState::new(ring), KeyedState::new(ring));
        for i in 0..40u64 {
            *pair.0.entry(&format!("a{i}")) = i;
            if i % 3 == 0 {
                *pair.1.entry(&format!("b{i}")) = format!("v{i}");
            }
        }
        let snap = pair.snapshot_partitions().unwrap();
        let mut back: (KeyedState<u64>, KeyedState<String>) =
            (KeyedState::new(ring), KeyedState::new(ring));
        for (p, bytes) in &snap {
            back.restore_partition(*p, bytes).unwrap();
        }
        assert_eq!(back.0.len(), 40);
        assert_eq!(back.1.len(), 14);
        assert_eq!(back.0.get("a7"), Some(&7));
        assert_eq!(back.1.get("b9").map(String::as_str), Some("v9"));
        assert!(back.restore_partition(0, b"junk").is_err());
    }

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

    proptest::proptest! {
        /// Any sequence of updates and removals leaves the same state as a plain map,
        /// and a snapshot per partition restores it whole into an empty state.
        #[test]
        fn keyed_state_matches_a_plain_map(
            ops in proptest::collection::vec((0u8..40, 0u8..4, 0u64..100), 0..400)
        ) {
            let ring = RingConfig::new(64, 1).unwrap();
            let mut s: KeyedState<u64> = KeyedState::new(ring);
            let mut model: BTreeMap<String, u64> = BTreeMap::new();
            for (k, op, n) in ops {
                let key = format!("key-{k}");
                if op == 0 {
                    proptest::prop_assert_eq!(s.remove(&key), model.remove(&key));
                } else {
                    *s.entry(&key) += n;
                    *model.entry(key).or_default() += n;
                }
            }
            proptest::prop_assert_eq!(s.len(), model.len());
            for (k, v) in &model {
                proptest::prop_assert_eq!(s.get(k), Some(v));
            }
            let mut back: KeyedState<u64> = KeyedState::new(ring);
            for (p, bytes) in s.snapshot_partitions().unwrap() {
                back.restore_partition(p, &bytes).unwrap();
            }
            let got: BTreeMap<String, u64> = back.drain().collect();
            proptest::prop_assert_eq!(got, model);
        }
    }
}
