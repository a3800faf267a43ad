//! Test helpers: drive a source or a sink by hand, without an instance.

use std::collections::BTreeMap;

use ringflow_stream::data::{EventTime, Item};
use ringflow_stream::operator::{OpResult, Operator};
use ringflow_stream::source::{Source, SourcePoll};
use ringflow_stream::testing::HookEnv;
use ringflow_stream::Value;

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
    let mut env = HookEnv::<Value>::new();
    env.now = now;
    env.counters = std::mem::take(counters);
    let (poll, emitted, watermark) = env.poll(budget, |out| src.poll(out));
    *counters = std::mem::take(&mut env.counters);
    let poll = poll?;
    let items = env.take_emitted();
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
    let mut env = HookEnv::<()>::new();
    env.counters = std::mem::take(counters);
    let mut ctx = env.context(Some(0), 1);
    let r = match batch {
        Some(b) => op.on_batch(b, &mut ctx),
        None => op.on_end(&mut ctx),
    };
    *counters = std::mem::take(&mut env.counters);
    r
}

/// Unkeyed items holding `values`.
pub(crate) fn items(values: impl IntoIterator<Item = Value>) -> Vec<Item<Value>> {
    values
        .into_iter()
        .map(|value| Item { key: None, value })
        .collect()
}
