//! Checkpoints, sans-IO: barriers, what an instance's snapshot holds, how snapshots are
//! given back to the instances of a later run, and the alignment of barriers over an
//! instance's inputs.
//!
//! Checkpoints are aligned asynchronous barrier snapshots, as in Flink and Arroyo. A
//! checkpoint `n` starts at the sources: each records its position and sends
//! [`crate::Message::Barrier`]`(n)` after every record it emitted before. An operator
//! instance that gets `Barrier(n)` on one input *blocks* that input: what arrives on it
//! afterwards waits ([`Aligner::is_blocked`]; the runtime stops delivering from it, so
//! its sender runs out of credit rather than memory growing). When the barrier has come
//! on every input that has not ended, the instance snapshots its state, sends `Barrier(n)`
//! on every output after the records it emitted before, and takes its inputs back. The
//! snapshots of checkpoint `n` then describe one consistent cut of the job: every record
//! before the barriers is in some state, none after.
//!
//! Blocking an input never blocks the others, so an instance keeps draining its unblocked
//! inputs until their barriers arrive; every sender emits its barrier on all its outputs
//! at once, behind records already emitted, so no barrier waits for credit that only the
//! blocked input could free. Unaligned checkpoints (barriers overtaking records, in-flight
//! records stored with the state) are not offered: alignment time is measured instead
//! ([`BarrierOutcome::Aligned`]).
//!
//! Keyed state and timers are snapshotted per ring partition ([`PartitionSnapshot`]), so
//! a later run restores each partition on whichever instance owns it then (failure
//! recovery, rescaling and savepoints are the same restore); an operator's own state and a
//! source's position are opaque bytes given back to one instance of the later run
//! ([`Restore::for_instance`]).

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::data::{EventTime, Key};
use crate::operator::{OpError, OpResult};
use crate::StreamError;

/// A checkpoint's number: increasing over a job's life.
pub type CheckpointId = u64;

/// The state of one ring partition of an operator instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSnapshot {
    /// The operator's keyed state of the partition (see
    /// [`crate::state::PartitionedState`]); empty when it has none.
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
    /// Event-time timers set for keys of the partition.
    pub timers: Vec<(EventTime, Key)>,
}

/// One instance's snapshot at a checkpoint barrier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// The vertex.
    pub vertex: String,
    /// The instance's index in that run.
    pub instance: usize,
    /// Keyed state and timers, per ring partition.
    pub partitions: BTreeMap<u32, PartitionSnapshot>,
    /// The operator's own state ([`crate::Operator::snapshot`]) or the source's position
    /// ([`crate::Source::snapshot`]), if any.
    pub operator: Option<serde_bytes::ByteBuf>,
}

impl InstanceSnapshot {
    /// Bytes of state held (for metrics).
    pub fn size(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.state.len() + p.timers.iter().map(|(_, k)| k.len() + 8).sum::<usize>())
            .sum::<usize>()
            + self.operator.as_ref().map_or(0, |b| b.len())
    }
}

/// What one instance of a later run restores: the partitions it serves, and the own
/// states of the earlier instances given to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    /// Keyed state and timers of the partitions this instance serves.
    pub partitions: BTreeMap<u32, PartitionSnapshot>,
    /// Own states (or source positions) of earlier instances, in their index order.
    pub operator: Vec<Vec<u8>>,
}

impl Restore {
    /// The part of a vertex's snapshots (one per earlier instance) for instance `index`
    /// of `instances`: every partition `owns` says it serves, and the own state of each
    /// earlier instance `i` with `i % instances == index` (so with as many instances as
    /// before, each gets its own back).
    pub fn for_instance(
        snapshots: &[InstanceSnapshot],
        owns: impl Fn(u32) -> bool,
        index: usize,
        instances: usize,
    ) -> Restore {
        let mut r = Restore::default();
        let mut own: Vec<&InstanceSnapshot> = snapshots.iter().collect();
        own.sort_by_key(|s| s.instance);
        for s in own {
            for (p, part) in &s.partitions {
                if owns(*p) {
                    let into = r.partitions.entry(*p).or_default();
                    if into.state.is_empty() {
                        into.state = part.state.clone();
                    }
                    into.timers.extend(part.timers.iter().cloned());
                }
            }
            if s.instance % instances.max(1) == index {
                if let Some(b) = &s.operator {
                    r.operator.push(b.to_vec());
                }
            }
        }
        r
    }
}

/// Durable storage of checkpoint parts: the cluster's DHT by default. The hosting
/// program provides one with `Registry::provide(CheckpointStorage(..))`.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Stores the pairs durably; `Ok` means every pair is durable (a quorum write in the
    /// DHT). Blocking: the runtime calls it on a thread of its own.
    fn put(&self, items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String>;
    /// Reads keys (a quorum read in the DHT): values in the order of `keys`.
    fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String>;
    /// Deletes keys (parts of checkpoints no longer retained); absent keys are no error.
    fn delete(&self, keys: Vec<Vec<u8>>) -> Result<(), String>;
}

/// The checkpoint store a worker writes to, as a registry extension.
#[derive(Clone)]
pub struct CheckpointStorage(pub std::sync::Arc<dyn CheckpointStore>);

/// MessagePack of `value`: for [`crate::Operator::snapshot`] and sources' positions.
pub fn to_bytes<T: Serialize>(value: &T) -> OpResult<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| OpError(format!("snapshot: {e}")))
}

/// The value [`to_bytes`] made.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> OpResult<T> {
    rmp_serde::from_slice(bytes).map_err(|e| OpError(format!("restoring a snapshot: {e}")))
}

/// What a barrier did to an instance's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierOutcome {
    /// Other inputs have yet to bring it: this input is blocked meanwhile.
    Waiting,
    /// Every input that has not ended brought it: snapshot now.
    Aligned {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// From its first barrier to its last (ms).
        alignment_ms: u64,
    },
}

/// Barrier alignment over an instance's inputs (sans-IO: the caller passes `now`).
#[derive(Clone, Debug)]
pub struct Aligner {
    current: Option<CheckpointId>,
    arrived: Vec<bool>,
    started: u64,
    last: Option<CheckpointId>,
}

impl Aligner {
    /// For `inputs` input channels.
    pub fn new(inputs: usize) -> Self {
        Aligner {
            current: None,
            arrived: vec![false; inputs],
            started: 0,
            last: None,
        }
    }

    /// Whether `input` brought the barrier being aligned: what it sends next waits.
    pub fn is_blocked(&self, input: usize) -> bool {
        self.current.is_some() && self.arrived.get(input).copied().unwrap_or(false)
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning(&self) -> Option<CheckpointId> {
        self.current
    }

    /// The last checkpoint this instance aligned.
    pub fn last(&self) -> Option<CheckpointId> {
        self.last
    }

    /// `Barrier(checkpoint)` arrived on `input`; `ended[i]` says which inputs ended.
    ///
    /// Barriers travel in order behind the records of every channel, so a barrier for
    /// another checkpoint than the one being aligned, an old one, or a second one on the
    /// same input means a sender broke that order: an error (the job fails and recovers),
    /// never a silently inconsistent snapshot.
    pub fn on_barrier(
        &mut self,
        input: usize,
        checkpoint: CheckpointId,
        ended: &[bool],
        now: u64,
    ) -> Result<BarrierOutcome, StreamError> {
        let broken = |why: String| StreamError::Checkpoint(why);
        if input >= self.arrived.len() {
            return Err(StreamError::UnknownInput(input));
        }
        if self.last.is_some_and(|l| checkpoint <= l) {
            return Err(broken(format!(
                "barrier {checkpoint} on input {input} after checkpoint {} was aligned",
                self.last.unwrap_or_default()
            )));
        }
        match self.current {
            None => {
                self.current = Some(checkpoint);
                self.started = now;
                self.arrived.iter_mut().for_each(|a| *a = false);
            }
            Some(c) if c != checkpoint => {
                return Err(broken(format!(
                    "barrier {checkpoint} on input {input} while checkpoint {c} is being aligned"
                )));
            }
            Some(_) => {}
        }
        if std::mem::replace(&mut self.arrived[input], true) {
            return Err(broken(format!(
                "a second barrier {checkpoint} on input {input}"
            )));
        }
        Ok(self.check(ended, now))
    }

    /// An input ended (`ended` includes it): alignment may be complete without it.
    pub fn on_end(&mut self, ended: &[bool], now: u64) -> BarrierOutcome {
        if self.current.is_none() {
            return BarrierOutcome::Waiting;
        }
        self.check(ended, now)
    }

    fn check(&mut self, ended: &[bool], now: u64) -> BarrierOutcome {
        let Some(c) = self.current else {
            return BarrierOutcome::Waiting;
        };
        let all = self
            .arrived
            .iter()
            .enumerate()
            .all(|(i, a)| *a || ended.get(i).copied().unwrap_or(false));
        if !all {
            return BarrierOutcome::Waiting;
        }
        self.current = None;
        self.last = Some(c);
        self.arrived.iter_mut().for_each(|a| *a = false);
        BarrierOutcome::Aligned {
            checkpoint: c,
            alignment_ms: now.saturating_sub(self.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_blocked_from_its_barrier_until_every_live_input_brought_it() {
        let mut a = Aligner::new(3);
        let ended = [false, false, true];
        assert_eq!(
            a.on_barrier(0, 1, &ended, 100).unwrap(),
            BarrierOutcome::Waiting
        );
        assert!(a.is_blocked(0) && !a.is_blocked(1) && !a.is_blocked(2));
        assert_eq!(
            a.on_barrier(1, 1, &ended, 130).unwrap(),
            BarrierOutcome::Aligned {
                checkpoint: 1,
                alignment_ms: 30
            },
            "input 2 ended: it is not waited for"
        );
        assert!(!a.is_blocked(0) && !a.is_blocked(1));
        assert_eq!(a.last(), Some(1));
    }

    #[test]
    fn an_input_that_ends_while_aligning_completes_the_alignment() {
        let mut a = Aligner::new(2);
        a.on_barrier(1, 4, &[false, false], 0).unwrap();
        assert_eq!(a.on_end(&[false, false], 5), BarrierOutcome::Waiting);
        assert_eq!(
            a.on_end(&[true, false], 9),
            BarrierOutcome::Aligned {
                checkpoint: 4,
                alignment_ms: 9
            }
        );
    }

    #[test]
    fn barriers_out_of_order_are_errors() {
        let mut a = Aligner::new(2);
        let live = [false, false];
        a.on_barrier(0, 2, &live, 0).unwrap();
        assert!(a.on_barrier(0, 2, &live, 0).is_err(), "twice on one input");
        assert!(a.on_barrier(1, 3, &live, 0).is_err(), "another checkpoint");
        let mut b = Aligner::new(1);
        b.on_barrier(0, 2, &[false], 0).unwrap();
        assert!(b.on_barrier(0, 1, &[false], 0).is_err(), "an older one");
        assert!(b.on_barrier(0, 2, &[false], 0).is_err(), "a repeated one");
        assert!(b.on_barrier(5, 3, &[false], 0).is_err(), "no such input");
    }

    fn snap(instance: usize, parts: &[(u32, &str)], own: Option<&str>) -> InstanceSnapshot {
        InstanceSnapshot {
            checkpoint: 1,
            vertex: "v".into(),
            instance,
            partitions: parts
                .iter()
                .map(|(p, s)| {
                    (
                        *p,
                        PartitionSnapshot {
                            state: s.as_bytes().to_vec(),
                            timers: vec![(i64::from(*p), format!("k{p}"))],
                        },
                    )
                })
                .collect(),
            operator: own.map(|o| serde_bytes::ByteBuf::from(o.as_bytes().to_vec())),
        }
    }

    #[test]
    fn partitions_go_to_their_new_owner_and_own_states_round_robin() {
        let snaps = [
            snap(0, &[(0, "a"), (2, "c")], Some("s0")),
            snap(1, &[(1, "b"), (3, "d")], Some("s1")),
            snap(2, &[], Some("s2")),
        ];
        // Two instances now: partitions by parity, own states 0 and 2 to instance 0.
        let r0 = Restore::for_instance(&snaps, |p| p % 2 == 0, 0, 2);
        assert_eq!(r0.partitions.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(r0.partitions[&2].state, b"c");
        assert_eq!(r0.partitions[&2].timers, vec![(2, "k2".to_string())]);
        assert_eq!(r0.operator, vec![b"s0".to_vec(), b"s2".to_vec()]);
        let r1 = Restore::for_instance(&snaps, |p| p % 2 == 1, 1, 2);
        assert_eq!(r1.partitions.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(r1.operator, vec![b"s1".to_vec()]);
    }

    #[test]
    fn snapshot_bytes_round_trip() {
        let v: BTreeMap<String, u64> = [("a".to_string(), 3)].into();
        let back: BTreeMap<String, u64> = from_bytes(&to_bytes(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        assert!(from_bytes::<BTreeMap<String, u64>>(b"\xc1garbage").is_err());
    }
}
