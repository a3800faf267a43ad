//! A sans-IO checker of register histories: operations (writes and reads of keys) with
//! their invocation and completion times and outcomes, recorded by concurrent clients of
//! the DHT, and a final read of every key, checked for lost acknowledged writes, values
//! that were never written and values older than an acknowledged overwrite.
//!
//! # Model
//!
//! Every key is a register; writes are `SET`s of values unique in the whole history (so a
//! value names its write), never deletes. Times are nanoseconds on one monotonic clock of
//! the recording process: `invoke` is taken before the request is sent, `complete` after
//! its answer arrived, so `a.complete < b.invoke` proves that `a` took effect before `b`.
//!
//! A write's outcome is [`WriteOutcome::Ok`] (acknowledged: it took effect between its
//! invocation and completion), [`WriteOutcome::Failed`] (definitely not applied:
//! `CLUSTERDOWN` / `TRYAGAIN`) or [`WriteOutcome::Unknown`] (`UNKNOWN`, a timeout, a lost
//! connection, any other error): it may take effect at any time after its invocation, or
//! never — its completion counts as infinitely late, as Jepsen's `:info` operations. A
//! read that returned a value is an observation; a read that failed says nothing.
//!
//! # Rules (all sound for a linearizable register: no false alarms for concurrency)
//!
//! The *effective end* of a write `w` is the earliest time by which it provably took
//! effect: its completion if acknowledged, or the completion of a read that returned its
//! value, whichever is earlier (none for an unknown write nobody read).
//!
//! A *witness* is an acknowledged write, or a read that returned a value, with that value
//! `u` and its interval. A witness `E` with `u != x` that started after the effective end
//! of `x`'s write proves that `u` took effect after `x` (a write of `u` invoked later, or a
//! read of `u` that began once `x` was in place), and before `E` completed.
//!
//! For every observation `O` (a read that returned, or the final read, which starts after
//! everything) of key `k`:
//! 1. `O` returned `x` that no write of `k` wrote: **never written**.
//! 2. `x`'s write was definitely refused: **refused write read**.
//! 3. `x`'s write was invoked after `O` completed: **read from the future**.
//! 4. Some witness `E` with `u != x` started after `x`'s effective end and completed
//!    before `O` started: **stale** (`x` is older than an acknowledged overwrite, or than
//!    a value already read).
//! 5. `O` returned nil although a witness (an acknowledged write, a read of a value)
//!    completed before `O` started: **lost write** (keys are never deleted).
//!
//! Every key with an acknowledged write or a value read must have a final read.
//!
//! Rule 4 with the final read is "no acknowledged write lost, none older than an
//! acknowledged overwrite": the final value `x` is allowed iff no acknowledged write (and
//! no read of another value) began after `x`'s write was known to be in place. With
//! overlapping writes either value may win; an unknown write that nobody read may surface
//! at the end even after later acknowledged writes (it may have been applied late), which
//! the checker must accept to be sound.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Nanoseconds on the recorder's monotonic clock.
pub type Time = u64;

/// What became of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Acknowledged.
    Ok,
    /// Definitely not applied (`CLUSTERDOWN`, `TRYAGAIN`).
    Failed,
    /// May or may not have been applied (`UNKNOWN`, timeouts, lost connections, other errors).
    Unknown,
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SET key value`.
    Write {
        /// The value (unique in the history).
        value: String,
        /// Its outcome.
        outcome: WriteOutcome,
    },
    /// `GET key`: `Some(value)` when it answered (`None` inside: nil), `None` on an error.
    Read {
        /// What it returned, if it answered.
        result: Option<Option<String>>,
    },
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client that ran it.
    pub process: usize,
    /// The key.
    pub key: String,
    /// When it was invoked.
    pub invoke: Time,
    /// When its answer (or error) arrived.
    pub complete: Time,
    /// What it did.
    pub action: Action,
    /// The error text, if any (for reports).
    pub note: String,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |t: Time| t as f64 / 1e6;
        write!(
            f,
            "p{} [{:.3} ms .. {:.3} ms] {} ",
            self.process,
            ms(self.invoke),
            ms(self.complete),
            self.key
        )?;
        match &self.action {
            Action::Write { value, outcome } => write!(f, "SET {value} -> {outcome:?}")?,
            Action::Read { result: Some(v) } => write!(f, "GET -> {v:?}")?,
            Action::Read { result: None } => write!(f, "GET -> error")?,
        }
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

/// The kinds of anomaly the checker finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// A value that no write of the key wrote.
    NeverWritten,
    /// The value of a write that was answered as not applied.
    RefusedWriteRead,
    /// A value whose write was invoked after the read completed.
    FromTheFuture,
    /// A value older than an acknowledged overwrite or than a value already read.
    Stale,
    /// Nil after an acknowledged write or a read of a value.
    LostWrite,
    /// A key with acknowledged writes or read values but no final read.
    NoFinalRead,
    /// The history itself is malformed (a value written twice).
    BadHistory,
}

/// One anomaly, with the operations that prove it: the observation, the write of its
/// value, for a stale value the read that showed that write in place (if any), and the
/// witness of a later value.
#[derive(Clone, Debug)]
pub struct Anomaly {
    /// Its kind.
    pub kind: AnomalyKind,
    /// The key.
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
    /// The operations involved (the observation, the write of its value, the witness).
    pub ops: Vec<Op>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?} on {}: {}", self.kind, self.key, self.message)?;
        for op in &self.ops {
            writeln!(f, "    {op}")?;
        }
        Ok(())
    }
}

/// Counts of operations by kind and outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acknowledged writes.
    pub writes_ok: u64,
    /// Writes answered as not applied.
    pub writes_failed: u64,
    /// Writes with an unknown outcome.
    pub writes_unknown: u64,
    /// Reads that answered.
    pub reads_ok: u64,
    /// Reads that failed.
    pub reads_failed: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writes: {} ok, {} failed, {} unknown; reads: {} ok, {} failed",
            self.writes_ok,
            self.writes_failed,
            self.writes_unknown,
            self.reads_ok,
            self.reads_failed
        )
    }
}

/// Counts the operations of a history.
pub fn stats(ops: &[Op]) -> Stats {
    let mut s = Stats::default();
    for op in ops {
        match &op.action {
            Action::Write { outcome, .. } => match outcome {
                WriteOutcome::Ok => s.writes_ok += 1,
                WriteOutcome::Failed => s.writes_failed += 1,
                WriteOutcome::Unknown => s.writes_unknown += 1,
            },
            Action::Read { result: Some(_) } => s.reads_ok += 1,
            Action::Read { result: None } => s.reads_failed += 1,
        }
    }
    s
}

/// A witness: an acknowledged write or a read that returned a value.
#[derive(Clone, Copy)]
struct Witness {
    start: Time,
    end: Time,
    value: u32,
    op: usize,
}

/// The two earliest-ending witnesses of a suffix with different values.
#[derive(Clone, Copy, Default)]
struct Best {
    first: Option<Witness>,
    /// The earliest-ending one whose value differs from `first`'s.
    second: Option<Witness>,
}

impl Best {
    fn with(mut self, w: Witness) -> Self {
        match self.first {
            None => self.first = Some(w),
            Some(f) if f.value == w.value => {
                if w.end < f.end {
                    self.first = Some(w);
                }
            }
            Some(f) if w.end < f.end => {
                self.second = Some(f);
                self.first = Some(w);
            }
            Some(_) => {
                if self.second.is_none_or(|s| w.end < s.end) {
                    self.second = Some(w);
                }
            }
        }
        self
    }

    /// The earliest-ending witness whose value is not `not`.
    fn other_than(&self, not: Option<u32>) -> Option<Witness> {
        match self.first {
            Some(f) if Some(f.value) == not => self.second,
            f => f,
        }
    }
}

impl Best {
    fn merge(self, other: Best) -> Best {
        let mut b = self;
        for w in [other.first, other.second].into_iter().flatten() {
            b = b.with(w);
        }
        b
    }
}

/// Witnesses of one key sorted by start, each active or not, to ask "which active one
/// started after `t` and ended earliest?" (a segment tree of [`Best`]).
struct Witnesses {
    by_start: Vec<Witness>,
    size: usize,
    tree: Vec<Best>,
}

impl Witnesses {
    fn new(mut by_start: Vec<Witness>) -> Self {
        by_start.sort_by_key(|w| (w.start, w.op));
        let size = by_start.len().next_power_of_two();
        Self {
            by_start,
            size,
            tree: vec![Best::default(); 2 * size],
        }
    }

    /// Makes the witness of operation `op` count.
    fn activate(&mut self, op: usize) {
        let Some(i) = self.by_start.iter().position(|w| w.op == op) else {
            return;
        };
        let mut n = i + self.size;
        self.tree[n] = Best::default().with(self.by_start[i]);
        while n > 1 {
            n /= 2;
            self.tree[n] = self.tree[2 * n].merge(self.tree[2 * n + 1]);
        }
    }

    /// An active witness with a value other than `not` that started after `after` (all
    /// if `None`) and completed before `before`.
    fn find(&self, after: Option<Time>, before: Time, not: Option<u32>) -> Option<Witness> {
        let from = after.map_or(0, |t| self.by_start.partition_point(|w| w.start <= t));
        let (mut lo, mut hi) = (from + self.size, 2 * self.size);
        let mut best = Best::default();
        while lo < hi {
            if lo & 1 == 1 {
                best = best.merge(self.tree[lo]);
                lo += 1;
            }
            if hi & 1 == 1 {
                hi -= 1;
                best = best.merge(self.tree[hi]);
            }
            lo /= 2;
            hi /= 2;
        }
        best.other_than(not).filter(|w| w.end < before)
    }
}

/// An observation: a read that returned, or the final read (index `None`).
struct Observation<'a> {
    op: Option<usize>,
    start: Time,
    end: Time,
    value: Option<&'a str>,
}

/// Checks a history against the final value of every key (read once the clients have
/// stopped and the cluster is healthy). Returns every anomaly found, by key.
pub fn check(ops: &[Op], finals: &BTreeMap<String, Option<String>>) -> Vec<Anomaly> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    for key in finals.keys() {
        by_key.entry(key.as_str()).or_default();
    }
    let mut anomalies = Vec::new();
    for (key, idx) in by_key {
        check_key(ops, key, &idx, finals.get(key), &mut anomalies);
    }
    anomalies
}

fn intern<'a>(ids: &mut HashMap<&'a str, u32>, v: &'a str) -> u32 {
    let next = ids.len() as u32;
    *ids.entry(v).or_insert(next)
}

fn check_key(
    ops: &[Op],
    key: &str,
    idx: &[usize],
    fin: Option<&Option<String>>,
    out: &mut Vec<Anomaly>,
) {
    let anomaly = |kind, message: String, involved: &[Option<usize>]| Anomaly {
        kind,
        key: key.to_string(),
        message,
        ops: involved.iter().flatten().map(|&i| ops[i].clone()).collect(),
    };
    // The write of each value.
    let mut write_of: HashMap<&str, usize> = HashMap::new();
    for &i in idx {
        if let Action::Write { value, .. } = &ops[i].action {
            if let Some(&j) = write_of.get(value.as_str()) {
                out.push(anomaly(
                    AnomalyKind::BadHistory,
                    format!("value {value} written twice"),
                    &[Some(j), Some(i)],
                ));
            }
            write_of.insert(value, i);
        }
    }
    let mut observations = Vec::new();
    for &i in idx {
        if let Action::Read { result: Some(v) } = &ops[i].action {
            observations.push(Observation {
                op: Some(i),
                start: ops[i].invoke,
                end: ops[i].complete,
                value: v.as_deref(),
            });
        }
    }
    match fin {
        Some(v) => observations.push(Observation {
            op: None,
            start: Time::MAX,
            end: Time::MAX,
            value: v.as_deref(),
        }),
        None => {
            let acked_or_read = idx.iter().copied().find(|&i| match &ops[i].action {
                Action::Write { outcome, .. } => *outcome == WriteOutcome::Ok,
                Action::Read { result } => matches!(result, Some(Some(_))),
            });
            if acked_or_read.is_some() {
                out.push(anomaly(
                    AnomalyKind::NoFinalRead,
                    "acknowledged or read values but no final read".into(),
                    &[acked_or_read],
                ));
            }
        }
    }
    // Observations in the order they started. The facts an observation is checked
    // against (witnesses that completed before it started, reads that put a write in
    // place before them) all started before it: acknowledged writes, and the reads found
    // consistent so far. A stale read is then reported once, not again as the "later
    // value" that makes the ones after it look stale.
    observations.sort_by_key(|o| (o.start, o.op));
    let mut ids: HashMap<&str, u32> = HashMap::new();
    // Per write: when it was provably in place, and the operation that proves it.
    let mut eff_end: HashMap<usize, (Time, usize)> = HashMap::new();
    let mut all = Vec::new();
    let mut acked = Vec::new();
    for &i in idx {
        let op = &ops[i];
        match &op.action {
            Action::Write {
                value,
                outcome: WriteOutcome::Ok,
            } => {
                eff_end.insert(i, (op.complete, i));
                acked.push(i);
                all.push(Witness {
                    start: op.invoke,
                    end: op.complete,
                    value: intern(&mut ids, value),
                    op: i,
                });
            }
            Action::Read {
                result: Some(Some(v)),
            } => all.push(Witness {
                start: op.invoke,
                end: op.complete,
                value: intern(&mut ids, v),
                op: i,
            }),
            _ => {}
        }
    }
    let mut facts = Witnesses::new(all);
    for i in acked {
        facts.activate(i);
    }
    for o in &observations {
        let what = match o.op {
            Some(_) => "a read",
            None => "the final read",
        };
        let found = match o.value {
            None => facts.find(None, o.start, None).map(|w| {
                anomaly(
                    AnomalyKind::LostWrite,
                    format!("{what} returned nil after the key held a value"),
                    &[o.op, Some(w.op)],
                )
            }),
            Some(x) => match write_of.get(x) {
                None => Some(anomaly(
                    AnomalyKind::NeverWritten,
                    format!("{what} returned {x}, which was never written"),
                    &[o.op],
                )),
                Some(&w) => {
                    let write = &ops[w];
                    if matches!(
                        write.action,
                        Action::Write {
                            outcome: WriteOutcome::Failed,
                            ..
                        }
                    ) {
                        Some(anomaly(
                            AnomalyKind::RefusedWriteRead,
                            format!("{what} returned {x}, whose write was answered as not applied"),
                            &[o.op, Some(w)],
                        ))
                    } else if write.invoke > o.end {
                        Some(anomaly(
                            AnomalyKind::FromTheFuture,
                            format!("{what} returned {x} before its write was invoked"),
                            &[o.op, Some(w)],
                        ))
                    } else {
                        eff_end.get(&w).and_then(|&(end, proof)| {
                            let not = ids.get(x).copied();
                            // The read that showed x in place, if not its acknowledgement.
                            let proof = (proof != w).then_some(proof);
                            facts.find(Some(end), o.start, not).map(|e| {
                                anomaly(
                                    AnomalyKind::Stale,
                                    format!(
                                        "{what} returned {x}, but a later value was \
                                         acknowledged or read (after {x} was in place) \
                                         before it started"
                                    ),
                                    &[o.op, Some(w), proof, Some(e.op)],
                                )
                            })
                        })
                    }
                }
            },
        };
        match (found, o.op) {
            (Some(a), _) => out.push(a),
            (None, Some(i)) => {
                // A consistent read: a fact from now on.
                if let Some(&w) = o.value.and_then(|x| write_of.get(x)) {
                    let e = eff_end.entry(w).or_insert((o.end, i));
                    if o.end < e.0 {
                        *e = (o.end, i);
                    }
                }
                if o.value.is_some() {
                    facts.activate(i);
                }
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(process: usize, value: &str, invoke: Time, complete: Time, outcome: WriteOutcome) -> Op {
        Op {
            process,
            key: "k".into(),
            invoke,
            complete,
            action: Action::Write {
                value: value.into(),
                outcome,
            },
            note: String::new(),
        }
    }

    fn ack(value: &str, invoke: Time, complete: Time) -> Op {
        w(0, value, invoke, complete, WriteOutcome::Ok)
    }

    fn unknown(value: &str, invoke: Time, complete: Time) -> Op {
        w(0, value, invoke, complete, WriteOutcome::Unknown)
    }

    fn read(value: Option<&str>, invoke: Time, complete: Time) -> Op {
        Op {
            process: 1,
            key: "k".into(),
            invoke,
            complete,
            action: Action::Read {
                result: Some(value.map(str::to_string)),
            },
            note: String::new(),
        }
    }

    fn kinds(ops: &[Op], fin: Option<&str>) -> Vec<AnomalyKind> {
        let finals = BTreeMap::from([("k".to_string(), fin.map(str::to_string))]);
        let mut k: Vec<AnomalyKind> = check(ops, &finals).iter().map(|a| a.kind).collect();
        k.sort();
        k
    }

    /// Asserts that each of `finals` would be a clean end of `h`.
    fn clean_with_each(h: &[Op], finals: &[&str]) {
        for f in finals {
            assert_eq!(kinds(h, Some(f)), vec![], "final {f}");
        }
    }

    #[test]
    fn sequential_history_is_clean() {
        let h = [
            read(None, 0, 1),
            ack("a", 2, 3),
            read(Some("a"), 4, 5),
            ack("b", 6, 7),
            read(Some("b"), 8, 9),
        ];
        assert_eq!(kinds(&h, Some("b")), vec![]);
    }

    #[test]
    fn concurrent_writes_may_end_either_way() {
        // a [0, 5] and b [1, 3] overlap: either may be linearized last.
        clean_with_each(&[ack("a", 0, 5), ack("b", 1, 3)], &["a", "b"]);
        // A read during the overlap may see either, or nil before both.
        let h = [
            ack("a", 0, 5),
            ack("b", 1, 3),
            read(Some("b"), 2, 4),
            read(None, 1, 2),
        ];
        assert_eq!(kinds(&h, Some("a")), vec![]);
    }

    #[test]
    fn an_unknown_write_nobody_read_may_surface_late() {
        clean_with_each(&[unknown("a", 0, 1), ack("b", 2, 3)], &["a", "b"]);
        // Or never: nil is fine when nothing was acknowledged.
        assert_eq!(kinds(&[unknown("a", 0, 1)], None), vec![]);
    }

    #[test]
    fn a_lost_acknowledged_write_is_flagged() {
        assert_eq!(kinds(&[ack("a", 0, 1)], None), vec![AnomalyKind::LostWrite]);
        // A read after the acknowledgement returns nil.
        assert_eq!(
            kinds(&[ack("a", 0, 1), read(None, 2, 3)], Some("a")),
            vec![AnomalyKind::LostWrite]
        );
        // A value once read is never lost, even of an unknown write.
        assert_eq!(
            kinds(
                &[unknown("a", 0, 10), read(Some("a"), 1, 2), read(None, 3, 4)],
                Some("a")
            ),
            vec![AnomalyKind::LostWrite]
        );
        assert_eq!(
            kinds(&[unknown("a", 0, 10), read(Some("a"), 1, 2)], None),
            vec![AnomalyKind::LostWrite]
        );
    }

    #[test]
    fn a_value_older_than_an_acknowledged_overwrite_is_flagged() {
        let h = [ack("a", 0, 1), ack("b", 2, 3)];
        assert_eq!(kinds(&h, Some("a")), vec![AnomalyKind::Stale]);
        // A read after the overwrite.
        let h = [ack("a", 0, 1), ack("b", 2, 3), read(Some("a"), 4, 5)];
        assert_eq!(kinds(&h, Some("b")), vec![AnomalyKind::Stale]);
        // But not a read concurrent with the overwrite.
        let h = [ack("a", 0, 1), ack("b", 2, 6), read(Some("a"), 4, 5)];
        assert_eq!(kinds(&h, Some("b")), vec![]);
    }

    #[test]
    fn an_unknown_write_once_read_is_in_place() {
        // a was read at [2, 3]; b was acknowledged after that: a is older than b.
        let h = [unknown("a", 0, 1), read(Some("a"), 2, 3), ack("b", 4, 5)];
        assert_eq!(kinds(&h, Some("a")), vec![AnomalyKind::Stale]);
        assert_eq!(kinds(&h, Some("b")), vec![]);
    }

    #[test]
    fn a_value_older_than_one_already_read_is_flagged() {
        // b (unknown) was read at [4, 5] after a was in place; a read after that sees a.
        let h = [
            ack("a", 0, 1),
            unknown("b", 2, 3),
            read(Some("b"), 4, 5),
            read(Some("a"), 6, 7),
        ];
        assert_eq!(kinds(&h, Some("b")), vec![AnomalyKind::Stale]);
        // Also at the end.
        let h = [ack("a", 0, 1), unknown("b", 2, 3), read(Some("b"), 4, 5)];
        assert_eq!(kinds(&h, Some("a")), vec![AnomalyKind::Stale]);
    }

    #[test]
    fn values_never_written_refused_or_from_the_future_are_flagged() {
        assert_eq!(
            kinds(&[ack("a", 0, 1)], Some("zzz")),
            vec![AnomalyKind::NeverWritten]
        );
        let h = [ack("a", 0, 1), w(2, "b", 2, 3, WriteOutcome::Failed)];
        assert_eq!(kinds(&h, Some("b")), vec![AnomalyKind::RefusedWriteRead]);
        let h = [read(Some("a"), 0, 1), ack("a", 2, 3)];
        assert_eq!(kinds(&h, Some("a")), vec![AnomalyKind::FromTheFuture]);
        // A failed read says nothing.
        let h = [
            ack("a", 0, 1),
            Op {
                action: Action::Read { result: None },
                ..read(None, 2, 3)
            },
        ];
        assert_eq!(kinds(&h, Some("a")), vec![]);
    }

    #[test]
    fn a_key_without_a_final_read_and_a_value_written_twice_are_flagged() {
        let h = [ack("a", 0, 1)];
        let anomalies = check(&h, &BTreeMap::new());
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].kind, AnomalyKind::NoFinalRead);
        let h = [ack("a", 0, 1), ack("a", 2, 3)];
        assert_eq!(kinds(&h, Some("a")), vec![AnomalyKind::BadHistory]);
    }

    #[test]
    fn the_stale_check_picks_a_witness_with_another_value() {
        // The earliest-ending witness after a's end is a itself (a read of a): the next
        // one, of c, must still be found.
        let h = [
            ack("a", 0, 1),
            read(Some("a"), 2, 3),
            ack("c", 4, 9),
            read(Some("a"), 5, 6),
            read(Some("a"), 10, 11),
        ];
        assert_eq!(kinds(&h, Some("c")), vec![AnomalyKind::Stale]);
        // Many overlapping writes and reads, all consistent with one order.
        let mut h = Vec::new();
        for i in 0..100u64 {
            h.push(ack(&format!("v{i}"), 10 * i, 10 * i + 15));
            h.push(read(Some(&format!("v{i}")), 10 * i + 14, 10 * i + 16));
        }
        assert_eq!(kinds(&h, Some("v99")), vec![]);
        // v99 was read (from 1004) after v98 was in place (995).
        assert_eq!(kinds(&h, Some("v98")), vec![AnomalyKind::Stale]);
        // Without that read, v98 and v99 overlap and either may be last.
        h.pop();
        assert_eq!(kinds(&h, Some("v98")), vec![]);
        assert_eq!(kinds(&h, Some("v97")), vec![AnomalyKind::Stale]);
    }

    #[test]
    fn stats_count_outcomes() {
        let h = [
            ack("a", 0, 1),
            unknown("b", 0, 1),
            w(0, "c", 0, 1, WriteOutcome::Failed),
            read(None, 0, 1),
        ];
        let s = stats(&h);
        assert_eq!(
            (s.writes_ok, s.writes_failed, s.writes_unknown, s.reads_ok),
            (1, 1, 1, 1)
        );
    }
}
