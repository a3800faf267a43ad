//! Checkpoint barriers through one operator instance: alignment over its inputs, the
//! order of what it sends, and a snapshot restored into a new instance.

use ringflow_ring::RingConfig;

use super::*;
use crate::checkpoint::Restore;
use crate::data::{AnyBatch, Item, Message};
use crate::operator::{Context, InitContext, OpResult, Operator, Timer};
use crate::registry::{Instance, Registry};
use crate::spec::EdgeKind;
use crate::state::{KeyedState, PartitionedState};
use crate::Value;

/// Counts records per key (keyed state), sets a timer per key at its first record, and
/// keeps a total of its own (non-keyed state); emits each record's key and new count.
struct Counter {
    counts: KeyedState<u64>,
    total: u64,
}

impl Operator for Counter {
    type In = Value;
    type Out = Value;
    type Config = serde_json::Map<String, Value>;
    fn create(_: Self::Config, init: &InitContext) -> OpResult<Self> {
        Ok(Counter {
            counts: KeyedState::new(init.ring),
            total: 0,
        })
    }
    fn on_batch(&mut self, batch: Vec<Item<Value>>, ctx: &mut Context<'_, Value>) -> OpResult {
        for i in batch {
            let key = i.key.unwrap_or_default();
            let c = self.counts.entry(&key);
            *c += 1;
            if *c == 1 {
                ctx.set_timer(1_000, key.clone());
            }
            let n = *c;
            self.total += 1;
            ctx.emit_keyed(key, Value::from(n));
        }
        Ok(())
    }
    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.counts)
    }
    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        crate::checkpoint::to_bytes(&self.total).map(Some)
    }
    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        for s in states {
            self.total += crate::checkpoint::from_bytes::<u64>(&s)?;
        }
        Ok(())
    }
}

fn ring() -> RingConfig {
    RingConfig::new(16, 1).unwrap()
}

fn counter(inputs: usize) -> OperatorInstance {
    let mut r = Registry::new();
    r.operator::<Counter>("counter");
    let cfg = InstanceConfig {
        vertex: "count".into(),
        instance: 0,
        inputs,
        input_ports: Vec::new(),
        outputs: vec![OutEdge {
            kind: EdgeKind::Forward,
            targets: 1,
            self_index: 0,
        }],
        routing: Some(Routing::round_robin(ring(), 1)),
        batch_size: 1000,
        linger_ms: 10,
        idle_timeout_ms: 1000,
    };
    let mut init = InitContext::for_test("count");
    init.ring = ring();
    match r
        .instantiate("counter", &Value::Null, &init, cfg, 0)
        .unwrap()
    {
        Instance::Operator(o) => o,
        Instance::Source(_) => unreachable!(),
    }
}

fn keys(keys: &[&str]) -> Message {
    Message::Batch(AnyBatch::new(
        keys.iter()
            .map(|k| Item {
                key: Some(k.to_string()),
                value: Value::Null,
            })
            .collect(),
    ))
}

/// What was sent, in order: "k=n" per record, "B<n>" per barrier.
fn sent(out: Vec<Outgoing>) -> Vec<String> {
    let mut v = Vec::new();
    for o in out {
        match o.msg {
            Message::Batch(b) => {
                for i in b.downcast::<Value>().unwrap() {
                    v.push(format!("{}={}", i.key.unwrap_or_default(), i.value));
                }
            }
            Message::Barrier(c) => v.push(format!("B{c}")),
            _ => {}
        }
    }
    v
}

#[test]
fn a_barrier_blocks_its_input_until_every_input_brought_it() {
    let mut op = counter(2);
    let mut out = op.handle(0, keys(&["a"]), 0).unwrap();
    out.extend(op.handle(0, Message::Barrier(1), 1).unwrap());
    assert!(op.is_blocked(0) && !op.is_blocked(1));
    // After its barrier, input 0's records wait; input 1's go on.
    out.extend(op.handle(0, keys(&["a"]), 2).unwrap());
    out.extend(op.handle(1, keys(&["b"]), 3).unwrap());
    assert!(op.take_snapshots().is_empty(), "not aligned yet");
    out.extend(op.handle(1, Message::Barrier(1), 7).unwrap());
    out.extend(op.flush());
    assert_eq!(sent(out), ["a=1", "b=1", "B1", "a=2"]);
    assert!(!op.is_blocked(0));
    assert_eq!(op.last_alignment_ms(), 6);
    let snaps = op.take_snapshots();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!((s.checkpoint, s.vertex.as_str()), (1, "count"));
    // a counted once (its second record came after the barrier), b once: total 2.
    assert_eq!(
        crate::checkpoint::from_bytes::<u64>(s.operator.as_ref().unwrap()).unwrap(),
        2
    );
    let timers: usize = s.partitions.values().map(|p| p.timers.len()).sum();
    assert_eq!(timers, 2, "one timer per key, in its key's partition");
}

#[test]
fn held_messages_can_bring_the_next_barrier() {
    let mut op = counter(2);
    let mut out = Vec::new();
    for m in [
        Message::Barrier(1),
        keys(&["x"]),
        Message::Barrier(2),
        keys(&["x"]),
    ] {
        out.extend(op.handle(0, m, 0).unwrap());
    }
    out.extend(op.handle(1, Message::Barrier(1), 1).unwrap());
    // Checkpoint 1 aligned; the held x=1 ran, then barrier 2 blocked input 0 again.
    assert!(op.is_blocked(0));
    out.extend(op.handle(1, Message::Barrier(2), 2).unwrap());
    out.extend(op.flush());
    assert_eq!(sent(out), ["B1", "x=1", "B2", "x=2"]);
    let snaps = op.take_snapshots();
    assert_eq!(
        snaps.iter().map(|s| s.checkpoint).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn an_input_that_ends_completes_the_alignment_and_barriers_out_of_order_fail() {
    let mut op = counter(2);
    op.handle(0, Message::Barrier(3), 0).unwrap();
    let out = op.handle(1, Message::End, 1).unwrap();
    assert_eq!(sent(out), ["B3"]);
    assert_eq!(op.take_snapshots().len(), 1);
    let mut bad = counter(2);
    bad.handle(0, Message::Barrier(2), 0).unwrap();
    let e = bad.handle(1, Message::Barrier(5), 0).unwrap_err();
    assert!(
        e.to_string().contains("checkpoint 2 is being aligned"),
        "{e}"
    );
}

#[test]
fn a_snapshot_restored_into_new_instances_carries_on_where_it_stopped() {
    let mut op = counter(1);
    op.handle(0, keys(&["a", "b", "a", "c", "a"]), 0).unwrap();
    op.handle(0, Message::Barrier(1), 1).unwrap();
    let snaps = op.take_snapshots();
    // Restored across two new instances by partition parity; each then gets the keys it
    // serves.
    let ring = ring();
    let parity = |k: &str| ring.partition_for_key(k.as_bytes()).0 % 2;
    let mut totals = 0;
    let mut next = Vec::new();
    for index in [0usize, 1] {
        let mut fresh = counter(1);
        let r = Restore::for_instance(&snaps, |p| p % 2 == index as u32, index, 2);
        fresh.restore(r).unwrap();
        let mine: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|k| parity(k) == index as u32)
            .collect();
        fresh.handle(0, keys(&mine), 2).unwrap();
        next.extend(sent(fresh.flush()));
        fresh.handle(0, Message::Barrier(2), 3).unwrap();
        let s = fresh.take_snapshots().pop().unwrap();
        totals += crate::checkpoint::from_bytes::<u64>(s.operator.as_ref().unwrap()).unwrap();
    }
    // Each key continues from its count in the snapshot, on whichever instance owns it.
    next.sort();
    assert_eq!(next, ["a=4", "b=2", "c=2"]);
    // The own state (total 5) went to instance 0 only; 3 more records since.
    assert_eq!(totals, 8);
    // Timers came back in the partitions of their keys.
    let mut fresh = counter(1);
    fresh
        .restore(Restore::for_instance(&snaps, |_| true, 0, 1))
        .unwrap();
    fresh.handle(0, Message::Barrier(2), 0).unwrap();
    let s = fresh.take_snapshots().pop().unwrap();
    let mut timers: Vec<Timer> = s
        .partitions
        .values()
        .flat_map(|p| p.timers.iter())
        .map(|(time, key)| Timer {
            time: *time,
            key: key.clone(),
        })
        .collect();
    timers.sort();
    let keys: Vec<&str> = timers.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert!(timers.iter().all(|t| t.time == 1_000));
}

#[test]
fn a_source_sends_its_barrier_after_what_it_emitted_and_keeps_its_position() {
    use crate::source::{Source, SourceOutput, SourcePoll};
    /// Emits 0, 1, 2, ... from its position.
    struct Seq(u64);
    impl Source for Seq {
        type Out = Value;
        type Config = serde_json::Map<String, Value>;
        fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> {
            Ok(Seq(0))
        }
        fn poll(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
            while out.remaining() > 0 {
                out.emit(Value::from(self.0));
                self.0 += 1;
            }
            Ok(SourcePoll::More)
        }
        fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
            crate::checkpoint::to_bytes(&self.0).map(Some)
        }
        fn restore(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
            for p in positions {
                self.0 = crate::checkpoint::from_bytes(&p)?;
            }
            Ok(())
        }
    }
    let mut r = Registry::new();
    r.source::<Seq>("seq");
    let cfg = || InstanceConfig {
        vertex: "seq".into(),
        instance: 0,
        inputs: 0,
        input_ports: Vec::new(),
        outputs: vec![OutEdge {
            kind: EdgeKind::Forward,
            targets: 1,
            self_index: 0,
        }],
        routing: None,
        batch_size: 1000,
        linger_ms: 10,
        idle_timeout_ms: 1000,
    };
    let make = || match r
        .instantiate("seq", &Value::Null, &InitContext::for_test("seq"), cfg(), 0)
        .unwrap()
    {
        Instance::Source(s) => s,
        Instance::Operator(_) => unreachable!(),
    };
    let values = |out: Vec<Outgoing>| -> Vec<String> {
        out.into_iter()
            .flat_map(|o| match o.msg {
                Message::Batch(b) => b
                    .downcast::<Value>()
                    .unwrap()
                    .into_iter()
                    .map(|i| i.value.to_string())
                    .collect(),
                Message::Barrier(c) => vec![format!("B{c}")],
                _ => vec![],
            })
            .collect()
    };
    let mut src = make();
    let (mut out, _) = src.poll(3, 0).unwrap();
    out.extend(src.barrier(7).unwrap());
    assert_eq!(values(out), ["0", "1", "2", "B7"]);
    let snaps = src.take_snapshots();
    let mut again = make();
    again
        .restore(Restore::for_instance(&snaps, |_| true, 0, 1))
        .unwrap();
    let (out, _) = again.poll(2, 1).unwrap();
    let mut out = out;
    out.extend(again.barrier(8).unwrap());
    assert_eq!(values(out), ["3", "4", "B8"], "resumed after the barrier");
}

/// Emits 0, 1, ... below `N`, then ends; its position is the next value.
struct UpTo<const N: u64>(u64);
impl<const N: u64> crate::source::Source for UpTo<N> {
    type Out = Value;
    type Config = serde_json::Map<String, Value>;
    fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> {
        Ok(UpTo(0))
    }
    fn poll(
        &mut self,
        out: &mut crate::source::SourceOutput<'_, Value>,
    ) -> OpResult<crate::source::SourcePoll> {
        while out.remaining() > 0 && self.0 < N {
            out.emit(Value::from(self.0));
            self.0 += 1;
        }
        Ok(if self.0 < N {
            crate::source::SourcePoll::More
        } else {
            crate::source::SourcePoll::Done
        })
    }
    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        crate::checkpoint::to_bytes(&self.0).map(Some)
    }
}

/// A source chained to the counter: its records reach the counter in the same step
/// (the chained edge never waits for a batch to fill), the counter's output leaves the
/// chain batched as any edge's, a barrier passes through after the records before it
/// with a snapshot from each member, and the end finishes both with the source's final
/// position.
#[test]
fn a_chain_runs_its_members_in_one_step_and_passes_barriers_and_the_end_through() {
    let mut r = Registry::new();
    r.source::<UpTo<5>>("upto");
    r.operator::<Counter>("counter");
    let edge = || OutEdge {
        kind: EdgeKind::Forward,
        targets: 1,
        self_index: 0,
    };
    let cfg = |vertex: &str, inputs: usize| InstanceConfig {
        vertex: vertex.into(),
        instance: 0,
        inputs,
        input_ports: Vec::new(),
        outputs: vec![edge()],
        routing: Some(Routing::round_robin(ring(), 1)),
        batch_size: 1000,
        linger_ms: 10,
        idle_timeout_ms: 1000,
    };
    let mut init = InitContext::for_test("x");
    init.ring = ring();
    let src = r
        .instantiate("upto", &Value::Null, &init, cfg("src", 0), 0)
        .unwrap();
    let count = r
        .instantiate("counter", &Value::Null, &init, cfg("count", 1), 0)
        .unwrap();
    let mut chain = Chain::new(vec![(3, src), (5, count)], vec![0]).unwrap();
    assert!(chain.is_source());
    assert_eq!(chain.vertices(), &[3, 5]);
    let external = |out: Vec<ChainOutgoing>| {
        assert!(
            out.iter().all(|o| o.member == 1),
            "only the counter's edge leaves"
        );
        sent(out.into_iter().map(|o| o.out).collect())
    };
    let (out, _) = chain.poll(2, 0).unwrap();
    assert!(external(out).is_empty(), "the counter's batch is not full");
    assert_eq!(
        external(chain.tick(10).unwrap()),
        ["=1", "=2"],
        "the counter had both records after one step"
    );
    let (out, _) = chain.poll(1, 11).unwrap();
    let mut out = out;
    out.extend(chain.barrier(7, 11).unwrap());
    assert_eq!(external(out), ["=3", "B7"]);
    let snaps: Vec<(usize, u64)> = chain
        .take_events()
        .into_iter()
        .map(|e| match e {
            ChainEvent::Snapshot {
                vertex, snapshot, ..
            } => (vertex, snapshot.checkpoint),
            ChainEvent::Finished(v, _) => panic!("{v} finished early"),
        })
        .collect();
    assert_eq!(snaps, [(3, 7), (5, 7)]);
    let (out, poll) = chain.poll(10, 2).unwrap();
    assert!(matches!(poll, crate::source::SourcePoll::Done));
    let kinds: Vec<String> = out
        .iter()
        .map(|o| match &o.out.msg {
            Message::Batch(b) => format!("{} records", b.len()),
            Message::End => "end".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["2 records", "end"]);
    assert!(chain.is_finished());
    let finished: Vec<(usize, bool)> = chain
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ChainEvent::Finished(v, last) => Some((v, last.is_some())),
            ChainEvent::Snapshot { .. } => None,
        })
        .collect();
    assert_eq!(
        finished,
        [(3, true), (5, false)],
        "the source adds its final position"
    );
}

/// A chain built with the wrong number of links or a source after its head is an
/// error, not a panic.
#[test]
fn a_malformed_chain_is_refused() {
    let mut r = Registry::new();
    r.source::<UpTo<5>>("upto");
    let cfg = InstanceConfig {
        vertex: "src".into(),
        instance: 0,
        inputs: 0,
        input_ports: Vec::new(),
        outputs: vec![],
        routing: None,
        batch_size: 10,
        linger_ms: 10,
        idle_timeout_ms: 1000,
    };
    let init = InitContext::for_test("x");
    let make = || {
        r.instantiate("upto", &Value::Null, &init, cfg.clone(), 0)
            .unwrap()
    };
    assert!(Chain::new(vec![(0, make())], vec![0]).is_err());
    assert!(Chain::new(vec![(0, make()), (1, make())], vec![0]).is_err());
    assert!(Chain::new(vec![], vec![]).is_err());
}

/// Passes records on, keyed by their value (a hash edge after it spreads them).
struct KeyByValue;
impl Operator for KeyByValue {
    type In = Value;
    type Out = Value;
    type Config = serde_json::Map<String, Value>;
    fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> {
        Ok(KeyByValue)
    }
    fn on_batch(&mut self, batch: Vec<Item<Value>>, ctx: &mut Context<'_, Value>) -> OpResult {
        for i in batch {
            ctx.emit_keyed(i.value.to_string(), i.value);
        }
        Ok(())
    }
}

/// Polls, ticks and barriers in a pseudo-random order through source → key → hash
/// edge to 3 targets: on every target, what comes before barrier `n` is exactly the
/// records below the source's position at `n`.
#[test]
fn a_source_chain_sends_every_record_before_its_position_ahead_of_the_barrier() {
    let mut r = Registry::new();
    r.source::<UpTo<10_000>>("count10k");
    r.operator::<KeyByValue>("key");
    let mut init = InitContext::for_test("x");
    init.ring = ring();
    let cfg = |vertex: &str, inputs: usize, edge: OutEdge| InstanceConfig {
        vertex: vertex.into(),
        instance: 0,
        inputs,
        input_ports: Vec::new(),
        outputs: vec![edge],
        routing: Some(Routing::round_robin(ring(), 3)),
        batch_size: 7,
        linger_ms: 3,
        idle_timeout_ms: 1_000_000,
    };
    let fwd = OutEdge {
        kind: EdgeKind::Forward,
        targets: 1,
        self_index: 0,
    };
    let hash = OutEdge {
        kind: EdgeKind::Hash,
        targets: 3,
        self_index: 0,
    };
    let src = r
        .instantiate(
            "count10k",
            &Value::Null,
            &init,
            cfg("src", 0, fwd.clone()),
            0,
        )
        .unwrap();
    let k1 = r
        .instantiate("key", &Value::Null, &init, cfg("k1", 1, fwd), 0)
        .unwrap();
    let k2 = r
        .instantiate("key", &Value::Null, &init, cfg("k2", 1, hash), 0)
        .unwrap();
    let mut chain = Chain::new(vec![(0, src), (1, k1), (2, k2)], vec![0, 0]).unwrap();
    let mut streams: Vec<Vec<String>> = vec![Vec::new(); 3];
    let mut positions = BTreeMap::new();
    let mut now = 0;
    let mut seed = 12345u64;
    let mut next_barrier = 1;
    while !chain.is_finished() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let out = match (seed >> 33) % 4 {
            0 => {
                let out = chain.barrier(next_barrier, now).unwrap();
                for e in chain.take_events() {
                    if let ChainEvent::Snapshot {
                        vertex: 0,
                        snapshot,
                        ..
                    } = e
                    {
                        let pos: u64 =
                            crate::checkpoint::from_bytes(snapshot.operator.as_deref().unwrap())
                                .unwrap();
                        positions.insert(next_barrier, pos);
                    }
                }
                next_barrier += 1;
                out
            }
            1 => {
                now += 1 + (seed >> 40) % 4;
                chain.tick(now).unwrap()
            }
            _ => chain.poll(1 + ((seed >> 45) % 20) as usize, now).unwrap().0,
        };
        for o in out {
            assert_eq!(o.member, 2);
            match o.out.msg {
                Message::Batch(b) => {
                    for i in b.downcast::<Value>().unwrap() {
                        streams[o.out.target].push(i.value.to_string());
                    }
                }
                Message::Barrier(n) => streams[o.out.target].push(format!("B{n}")),
                _ => {}
            }
        }
    }
    assert!(positions.len() > 10, "{positions:?}");
    for s in &streams {
        let mut barrier_pos = 0u64;
        for x in s {
            if let Some(n) = x.strip_prefix('B') {
                barrier_pos = positions[&n.parse::<u64>().unwrap()];
                continue;
            }
            let v: u64 = x.parse().unwrap();
            assert!(
                v >= barrier_pos,
                "{v} after a barrier at position {barrier_pos}"
            );
        }
    }
    // And before each barrier everything below its position has been sent.
    for s in &streams {
        let mut seen = std::collections::BTreeSet::new();
        for x in s {
            if let Some(n) = x.strip_prefix('B') {
                let pos = positions[&n.parse::<u64>().unwrap()];
                assert!(seen.iter().all(|v| *v < pos));
            } else {
                seen.insert(x.parse::<u64>().unwrap());
            }
        }
    }
}
