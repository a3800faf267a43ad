//! `sink.stdout`: records printed to the process's standard output.

use std::io::Write;

use serde::Deserialize;

use super::format::LineFormat;
use super::throttle::Throttle;
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};
use ringflow_stream::Value;

/// Configuration of `sink.stdout`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Written before every line.
    #[serde(default)]
    pub prefix: String,
    /// Line format: `json` (default) or `text`.
    #[serde(default)]
    pub format: LineFormat,
    /// Print at most this many records per second (see [`Throttle`]).
    #[serde(default)]
    pub max_per_sec: Option<f64>,
}

/// Prints each record as one line, after `prefix`, to standard output (flushed after
/// every batch). A closed stdout fails the job. Counter: `written`.
pub struct StdoutSink<T = Value> {
    cfg: StdoutSinkConfig,
    throttle: Throttle,
    line: Vec<u8>,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<T: ringflow_stream::Data> Operator for StdoutSink<T> {
    type In = T;
    type Out = ();
    type Config = StdoutSinkConfig;

    fn create(cfg: StdoutSinkConfig, _init: &InitContext) -> OpResult<Self> {
        let throttle =
            Throttle::new(cfg.max_per_sec).map_err(|e| OpError(format!("sink.stdout: {e}")))?;
        Ok(StdoutSink {
            cfg,
            throttle,
            line: Vec::new(),
            _records: std::marker::PhantomData,
        })
    }

    fn on_batch(&mut self, batch: Batch<T>, ctx: &mut Context<'_, ()>) -> OpResult {
        let fail = |e: std::io::Error| OpError(format!("sink.stdout: {e}"));
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for item in &batch {
            self.throttle.admit();
            self.line.clear();
            self.line.extend_from_slice(self.cfg.prefix.as_bytes());
            self.cfg
                .format
                .write_line(&mut self.line, item)
                .map_err(fail)?;
            out.write_all(&self.line).map_err(fail)?;
        }
        out.flush().map_err(fail)?;
        ctx.count("written", batch.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{items, sink_call};
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn prints_and_counts() {
        let cfg = serde_json::from_value(json!({"prefix": "test> "})).unwrap();
        let mut sink = StdoutSink::create(cfg, &InitContext::for_test("out")).unwrap();
        let mut counters = BTreeMap::new();
        sink_call(
            &mut sink,
            Some(items([json!("a"), json!(1)])),
            &mut counters,
        )
        .unwrap();
        sink_call(&mut sink, None, &mut counters).unwrap();
        assert_eq!(counters.get("written"), Some(&2));
        assert!(serde_json::from_value::<StdoutSinkConfig>(json!({"prefx": ""})).is_err());
    }
}
