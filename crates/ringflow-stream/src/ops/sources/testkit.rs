//! Test helpers: drive a source or a sink by hand, without the harness.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::{EventTime, Item, Message, MIN_TIME};
use crate::harness::{ErasedOutputs, OutEdge, Outputs};
use crate::operator::{Context, OpResult, Operator};
use crate::source::{Source, SourceOutput, SourcePoll};
use crate::spec::EdgeKind;
use crate::Value;

/// What one poll produced.
pub(crate) struct Polled {
    pub items: Vec<Item<Value>>,
    pub poll: SourcePoll,
    pub watermark: Option<EventTime>,
}

/// Polls `src` once with `budget` credit at time `now`.
pub(crate) fn poll_once<S: Source<Out = Value>>(
    src: &mut S,
    budget: usize,
    now: u64,
    counters: &mut BTreeMap<String, u64>,
) -> OpResult<Polled> {
    let edge = OutEdge {
        kind: EdgeKind::Forward,
        targets: 1,
        self_index: 0,
    };
    let mut outputs = Outputs::<Value>::new(vec![edge], None, usize::MAX);
    let mut out = SourceOutput {
        out: &mut outputs,
        budget,
        emitted: 0,
        watermark: None,
        counters,
        now,
    };
    let poll = src.poll(&mut out)?;
    let watermark = out.watermark;
    let emitted = out.emitted;
    ErasedOutputs::flush(&mut outputs);
    let mut items = Vec::new();
    for o in outputs.take_ready() {
        if let Message::Batch(b) = o.msg {
            items.extend(b.downcast::<Value>().expect("a batch of Value"));
        }
    }
    assert_eq!(items.len(), emitted);
    Ok(Polled {
        items,
        poll,
        watermark,
    })
}

/// The string values of `items`.
pub(crate) fn strings(items: &[Item<Value>]) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i.value {
            Value::String(s) => s.clone(),
            other => panic!("not a string: {other}"),
        })
        .collect()
}

/// Calls `on_batch` (with `Some`) or `on_end` (with `None`) of a sink.
pub(crate) fn sink_call<O: Operator<In = Value, Out = ()>>(
    op: &mut O,
    batch: Option<Vec<Item<Value>>>,
    counters: &mut BTreeMap<String, u64>,
) -> OpResult {
    let mut outputs = Outputs::<()>::new(Vec::new(), None, 1);
    let mut timers = BTreeSet::new();
    let mut own = MIN_TIME;
    let mut ctx = Context {
        out: &mut outputs,
        timers: &mut timers,
        counters,
        watermark: MIN_TIME,
        now: 0,
        own_watermark: &mut own,
        input: Some(0),
        inputs: 1,
    };
    match batch {
        Some(b) => op.on_batch(b, &mut ctx),
        None => op.on_end(&mut ctx),
    }
}

/// Unkeyed items holding `values`.
pub(crate) fn items(values: impl IntoIterator<Item = Value>) -> Vec<Item<Value>> {
    values
        .into_iter()
        .map(|value| Item { key: None, value })
        .collect()
}
