//! `sink.discard`: counts records and drops them (benchmarks).

use serde::Deserialize;

use super::throttle::Throttle;
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};
use ringflow_stream::Value;

/// Configuration of `sink.discard`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardSinkConfig {
    /// Accept at most this many records per second (see [`Throttle`]): a slow consumer
    /// for tests of backpressure.
    #[serde(default)]
    pub max_per_sec: Option<f64>,
}

/// Drops every record, counting them under `discarded`; `T` is the record type
/// (`Value`, or a typed record through [`ringflow_stream::Registry::overload`]).
pub struct DiscardSink<T = Value> {
    throttle: Throttle,
    /// Records dropped so far.
    pub discarded: u64,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<T: ringflow_stream::Data> Operator for DiscardSink<T> {
    type In = T;
    type Out = ();
    type Config = DiscardSinkConfig;

    fn create(cfg: DiscardSinkConfig, _init: &InitContext) -> OpResult<Self> {
        let throttle =
            Throttle::new(cfg.max_per_sec).map_err(|e| OpError(format!("sink.discard: {e}")))?;
        Ok(DiscardSink {
            throttle,
            discarded: 0,
            _records: std::marker::PhantomData,
        })
    }

    fn on_batch(&mut self, batch: Batch<T>, ctx: &mut Context<'_, ()>) -> OpResult {
        for _ in &batch {
            self.throttle.admit();
        }
        self.discarded += batch.len() as u64;
        ctx.count("discarded", batch.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{items, sink_call};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    #[test]
    fn counts_and_drops_and_can_be_slow() {
        let cfg = serde_json::from_value(json!({"max_per_sec": 100})).unwrap();
        let mut sink = DiscardSink::create(cfg, &InitContext::for_test("out")).unwrap();
        let mut counters = BTreeMap::new();
        let start = Instant::now();
        sink_call(
            &mut sink,
            Some(items((0..11).map(|i| json!(i)))),
            &mut counters,
        )
        .unwrap();
        sink_call(&mut sink, None, &mut counters).unwrap();
        // 11 records at 100/s: at least 100 ms (lower bound only).
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(sink.discarded, 11);
        assert_eq!(counters.get("discarded"), Some(&11));
    }
}
