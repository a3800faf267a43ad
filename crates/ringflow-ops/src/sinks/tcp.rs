//! `sink.tcp`: records written as lines to a TCP server.

use std::io::{BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde::Deserialize;

use super::format::LineFormat;
use super::throttle::Throttle;
use crate::io::{check_address, connect};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};
use ringflow_stream::Value;

/// Configuration of `sink.tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSinkConfig {
    /// The server to write to, `host:port`.
    pub address: String,
    /// Line format: `json` (default) or `text`.
    #[serde(default)]
    pub format: LineFormat,
    /// Longest wait for the connection (ms).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Write at most this many records per second (see [`Throttle`]).
    #[serde(default)]
    pub max_per_sec: Option<f64>,
}

fn default_connect_timeout() -> u64 {
    5000
}

/// Connects to `address` at the first record (or at the end, when none came) and
/// writes one line per record, flushed after every batch; at the end it flushes and
/// shuts down its side of the connection. Every instance opens its own connection. A
/// failed connect or write fails the job naming the address; nothing is retried.
/// Counter: `written`.
pub struct TcpSink {
    cfg: TcpSinkConfig,
    conn: Option<BufWriter<TcpStream>>,
    throttle: Throttle,
}

impl Operator for TcpSink {
    type In = Value;
    type Out = ();
    type Config = TcpSinkConfig;

    fn create(cfg: TcpSinkConfig, _init: &InitContext) -> OpResult<Self> {
        check_address(&cfg.address).map_err(|e| OpError(format!("sink.tcp: {e}")))?;
        if cfg.connect_timeout_ms == 0 || cfg.connect_timeout_ms > 600_000 {
            return Err("sink.tcp: 'connect_timeout_ms' must be 1..=600000".into());
        }
        let throttle =
            Throttle::new(cfg.max_per_sec).map_err(|e| OpError(format!("sink.tcp: {e}")))?;
        Ok(TcpSink {
            cfg,
            conn: None,
            throttle,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, ()>) -> OpResult {
        for item in &batch {
            self.throttle.admit();
            let format = self.cfg.format;
            let w = self.conn()?;
            if let Err(e) = format.write_line(w, item) {
                return Err(self.fail("writing to", e));
            }
        }
        if let Some(w) = self.conn.as_mut() {
            if let Err(e) = w.flush() {
                return Err(self.fail("writing to", e));
            }
        }
        ctx.count("written", batch.len() as u64);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut Context<'_, ()>) -> OpResult {
        let w = self.conn()?;
        if let Err(e) = w.flush() {
            return Err(self.fail("writing to", e));
        }
        if let Some(w) = self.conn.take() {
            let stream = w
                .into_inner()
                .map_err(|e| self.fail("writing to", e.into_error()))?;
            if let Err(e) = stream.shutdown(Shutdown::Write) {
                // The peer may already be gone after reading everything.
                if e.kind() != std::io::ErrorKind::NotConnected {
                    return Err(self.fail("closing", e));
                }
            }
        }
        Ok(())
    }
}

impl TcpSink {
    fn conn(&mut self) -> OpResult<&mut BufWriter<TcpStream>> {
        if self.conn.is_none() {
            let timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
            let stream = connect(&self.cfg.address, timeout)
                .map_err(|e| self.fail("cannot connect to", e))?;
            // Best effort: only latency depends on it.
            let _ = stream.set_nodelay(true);
            self.conn = Some(BufWriter::with_capacity(64 * 1024, stream));
        }
        self.conn
            .as_mut()
            .ok_or_else(|| OpError("sink.tcp: no connection".into()))
    }

    fn fail(&self, doing: &str, e: std::io::Error) -> OpError {
        OpError(format!("sink.tcp: {doing} {}: {e}", self.cfg.address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{items, sink_call};
    use ringflow_stream::data::Item;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::net::TcpListener;

    fn make(address: &str, format: &str) -> OpResult<TcpSink> {
        let cfg = serde_json::from_value(json!({"address": address, "format": format}))?;
        TcpSink::create(cfg, &InitContext::for_test("out"))
    }

    #[test]
    fn lines_reach_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        });
        let mut sink = make(&addr, "json").unwrap();
        let mut counters = BTreeMap::new();
        sink_call(
            &mut sink,
            Some(items([json!("a"), json!(1)])),
            &mut counters,
        )
        .unwrap();
        let keyed = vec![Item {
            key: Some("k".into()),
            value: json!(null),
        }];
        sink_call(&mut sink, Some(keyed), &mut counters).unwrap();
        sink_call(&mut sink, None, &mut counters).unwrap();
        assert_eq!(
            server.join().unwrap(),
            "\"a\"\n1\n{\"key\":\"k\",\"value\":null}\n"
        );
        assert_eq!(counters.get("written"), Some(&3));
    }

    #[test]
    fn connection_errors_fail_the_operator() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let mut sink = make(&addr, "text").unwrap();
        let mut counters = BTreeMap::new();
        let e = sink_call(&mut sink, Some(items([json!(1)])), &mut counters).unwrap_err();
        assert!(e.0.contains(&addr), "{e}");
        assert!(make("no-port", "text").is_err());
    }
}
