//! `source.tcp`: the lines a TCP server sends, read without blocking.

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

use serde::Deserialize;

use crate::io::{
    check_address, connect, decode_line, read_line, LineError, LineRead, DEFAULT_MAX_LINE_BYTES,
};
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};
use ringflow_stream::Value;

/// Configuration of `source.tcp`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSourceConfig {
    /// The server to connect to, `host:port`.
    pub address: String,
    /// On a failed connect, a closed or a broken connection, connect again (with
    /// backoff) instead of ending (closed) or failing (connect error, broken).
    #[serde(default)]
    pub reconnect: bool,
    /// Longest wait for a connection to be established (ms); a connect that takes
    /// longer fails (and is retried with `reconnect`).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Longest accepted line in bytes (line ending excluded); a longer line fails the
    /// job. Default 1 MiB.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
}

fn default_connect_timeout() -> u64 {
    5000
}

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// First wait before reconnecting (ms); doubles per failed attempt.
const BACKOFF_START_MS: u64 = 100;
/// Longest wait before reconnecting (ms).
const BACKOFF_MAX_MS: u64 = 5000;
/// Poll interval while the socket has nothing to read, or a connect is under way (ms).
const IDLE_POLL_MS: u64 = 10;

enum State {
    Unconnected,
    /// A helper thread is resolving and connecting; it sends its result here.
    Connecting(Receiver<io::Result<TcpStream>>),
    Connected(BufReader<TcpStream>),
    Backoff {
        retry_at: u64,
    },
    Ended,
}

/// Connects to a TCP server and emits each line it sends as a [`Value::String`],
/// without its line ending (`\n` or `\r\n`; invalid UTF-8 replaced and counted under
/// `invalid_utf8`). Lines longer than `max_line_bytes` fail the job (they are not
/// split).
///
/// Only instance 0 connects: a server's stream is one sequence, so the other instances
/// end at once. Give the vertex `parallelism = 1`, or fan out with a `hash` edge.
///
/// The connection is made from the first poll on, without blocking it: name
/// resolution and the connect (at most `connect_timeout_ms`) run on a short-lived
/// helper thread while polls return `Wait`. The connected socket is non-blocking and a
/// poll reads at most [`SourceOutput::remaining`] lines. When the server closes
/// the connection, a last line without newline is emitted and the source ends; with
/// `reconnect` it connects again after a backoff (100 ms doubling to 5 s, reset when a
/// line arrives) timed with the runtime's `now`. A line cut by a broken connection is
/// dropped and counted under `truncated_lines`. Counters: `lines`, `connects`,
/// `disconnects`.
pub struct TcpSource {
    cfg: TcpSourceConfig,
    active: bool,
    state: State,
    partial: Vec<u8>,
    backoff: u64,
    lossy: u64,
}

impl Source for TcpSource {
    type Out = Value;
    type Config = TcpSourceConfig;

    fn create(cfg: TcpSourceConfig, init: &InitContext) -> OpResult<Self> {
        check_address(&cfg.address).map_err(|e| OpError(format!("source.tcp: {e}")))?;
        if cfg.connect_timeout_ms == 0 || cfg.connect_timeout_ms > 60_000 {
            return Err("source.tcp: 'connect_timeout_ms' must be 1..=60000".into());
        }
        if cfg.max_line_bytes == 0 {
            return Err("source.tcp: 'max_line_bytes' must be positive".into());
        }
        Ok(TcpSource {
            cfg,
            active: init.instance == 0,
            state: State::Unconnected,
            partial: Vec::new(),
            backoff: BACKOFF_START_MS,
            lossy: 0,
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        // Counted once per poll, not per line.
        let before = out.remaining();
        let result = self.read(out);
        let lines = before.saturating_sub(out.remaining()) as u64;
        if lines > 0 {
            out.count("lines", lines);
        }
        if self.lossy > 0 {
            out.count("invalid_utf8", std::mem::take(&mut self.lossy));
        }
        result
    }
}

impl TcpSource {
    /// Connects, reads up to the credit, backs off; see [`TcpSource`].
    fn read(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        if !self.active {
            return Ok(SourcePoll::Done);
        }
        let now = out.now();
        loop {
            match &mut self.state {
                State::Ended => return Ok(SourcePoll::Done),
                State::Backoff { retry_at } if *retry_at > now => {
                    return Ok(SourcePoll::Wait(*retry_at - now))
                }
                State::Unconnected | State::Backoff { .. } => {
                    self.state = State::Connecting(self.start_connect()?);
                    return Ok(SourcePoll::Wait(IDLE_POLL_MS));
                }
                State::Connecting(rx) => {
                    let result = match rx.try_recv() {
                        Err(TryRecvError::Empty) => return Ok(SourcePoll::Wait(IDLE_POLL_MS)),
                        Err(TryRecvError::Disconnected) => Err(io::Error::other(
                            "the connecting thread ended without a result",
                        )),
                        Ok(result) => result,
                    };
                    match result {
                        Ok(stream) => {
                            out.count("connects", 1);
                            self.state =
                                State::Connected(BufReader::with_capacity(64 * 1024, stream));
                        }
                        Err(e) if self.cfg.reconnect => {
                            tracing::debug!(address = %self.cfg.address, error = %e, "source.tcp: connect failed");
                            return Ok(self.back_off(now));
                        }
                        Err(e) => {
                            self.state = State::Ended;
                            return Err(OpError(format!(
                                "source.tcp: cannot connect to {}: {e}",
                                self.cfg.address
                            )));
                        }
                    }
                }
                State::Connected(reader) => {
                    if out.remaining() == 0 {
                        return Ok(SourcePoll::More);
                    }
                    match read_line(reader, &mut self.partial, self.cfg.max_line_bytes) {
                        Ok(LineRead::Line) => {
                            self.emit(out);
                            self.backoff = BACKOFF_START_MS;
                        }
                        Ok(LineRead::WouldBlock) => return Ok(SourcePoll::Wait(IDLE_POLL_MS)),
                        Ok(LineRead::Eof) => {
                            if !self.partial.is_empty() {
                                self.emit(out);
                            }
                            out.count("disconnects", 1);
                            if !self.cfg.reconnect {
                                self.state = State::Ended;
                                return Ok(SourcePoll::Done);
                            }
                            return Ok(self.back_off(now));
                        }
                        Err(LineError::TooLong) => {
                            return Err(OpError(format!(
                                "source.tcp: {} sent a line longer than {} bytes",
                                self.cfg.address, self.cfg.max_line_bytes
                            )))
                        }
                        Err(LineError::Io(e)) => {
                            out.count("disconnects", 1);
                            if !self.cfg.reconnect {
                                return Err(OpError(format!(
                                    "source.tcp: reading from {}: {e}",
                                    self.cfg.address
                                )));
                            }
                            if !self.partial.is_empty() {
                                self.partial.clear();
                                out.count("truncated_lines", 1);
                            }
                            return Ok(self.back_off(now));
                        }
                    }
                }
            }
        }
    }
}

impl TcpSource {
    /// Resolves and connects on a helper thread, so that `poll` never blocks; the
    /// thread ends after at most the connect timeout (per resolved address) even when
    /// the source is dropped meanwhile.
    fn start_connect(&self) -> OpResult<Receiver<io::Result<TcpStream>>> {
        let (tx, rx) = mpsc::channel();
        let address = self.cfg.address.clone();
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
        std::thread::Builder::new()
            .name("ringflow-tcp-connect".into())
            .spawn(move || {
                let result = connect(&address, timeout).and_then(|s| {
                    s.set_nonblocking(true)?;
                    // Best effort: only latency depends on it.
                    let _ = s.set_nodelay(true);
                    Ok(s)
                });
                // The source may be gone: nobody to tell.
                let _ = tx.send(result);
            })
            .map_err(|e| OpError(format!("source.tcp: cannot start connecting: {e}")))?;
        Ok(rx)
    }

    fn back_off(&mut self, now: u64) -> SourcePoll {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX_MS);
        self.state = State::Backoff {
            retry_at: now + wait,
        };
        SourcePoll::Wait(wait)
    }

    fn emit(&mut self, out: &mut SourceOutput<'_, Value>) {
        let (line, lossy) = decode_line(&self.partial);
        self.partial.clear();
        self.lossy += u64::from(lossy);
        out.emit(Value::String(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{poll_once, strings};
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    fn make(address: &str, reconnect: bool, instance: usize) -> OpResult<TcpSource> {
        let cfg = serde_json::from_value(serde_json::json!({
            "address": address, "reconnect": reconnect
        }))
        .map_err(OpError::from)?;
        let init = InitContext {
            instance,
            instances: 2,
            ..InitContext::for_test("tcp")
        };
        TcpSource::create(cfg, &init)
    }

    /// Polls with a simulated clock (advanced by each Wait) and a real-time deadline
    /// until `want` lines arrived or the source ended.
    fn collect(src: &mut TcpSource, budget: usize, want: usize) -> (Vec<String>, SourcePoll) {
        let mut counters = BTreeMap::new();
        let mut lines = Vec::new();
        let mut now = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let p = poll_once(src, budget, now, &mut counters).unwrap();
            assert!(p.items.len() <= budget);
            lines.extend(strings(&p.items));
            match p.poll {
                SourcePoll::Done => return (lines, p.poll),
                _ if lines.len() >= want => return (lines, p.poll),
                SourcePoll::Wait(ms) => {
                    now += ms;
                    std::thread::sleep(Duration::from_millis(1));
                }
                SourcePoll::More => {}
            }
        }
        panic!("timed out with {lines:?}");
    }

    /// Polls at `now` until the connect under way (if any) has a result.
    fn settle(
        src: &mut TcpSource,
        now: u64,
        counters: &mut BTreeMap<String, u64>,
    ) -> OpResult<SourcePoll> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let p = poll_once(src, 10, now, counters)?;
            if !matches!(src.state, State::Connecting(_)) {
                return Ok(p.poll);
            }
            assert_eq!(p.poll, SourcePoll::Wait(IDLE_POLL_MS));
            assert!(Instant::now() < deadline, "connect never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn lines_from_a_server_until_it_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"one\r\ntw").unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"o\nbad\xff\n").unwrap();
            for i in 0..20 {
                s.write_all(format!("n{i}\n").as_bytes()).unwrap();
            }
            s.write_all(b"tail").unwrap();
        });
        let mut src = make(&addr, false, 0).unwrap();
        let (lines, end) = collect(&mut src, 3, usize::MAX);
        server.join().unwrap();
        assert_eq!(end, SourcePoll::Done);
        assert_eq!(&lines[..3], ["one", "two", "bad\u{fffd}"]);
        assert_eq!(lines.len(), 24);
        assert_eq!(lines[23], "tail");
    }

    #[test]
    fn only_instance_zero_connects() {
        // Nothing listens there: instance 1 must not even try.
        let mut src = make("127.0.0.1:1", false, 1).unwrap();
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 10, 0, &mut counters).unwrap();
        assert_eq!(p.poll, SourcePoll::Done);
        assert!(counters.is_empty());
    }

    #[test]
    fn a_refused_connection_fails_or_backs_off() {
        // Bind then drop: the port is (almost surely) closed.
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let mut counters = BTreeMap::new();
        let mut src = make(&addr, false, 0).unwrap();
        let e = settle(&mut src, 0, &mut counters).err().unwrap();
        assert!(e.0.contains(&addr), "{e}");
        let mut src = make(&addr, true, 0).unwrap();
        let waits: Vec<SourcePoll> = [0, 100, 300, 700]
            .iter()
            .map(|&now| settle(&mut src, now, &mut counters).unwrap())
            .collect();
        use SourcePoll::Wait;
        assert_eq!(waits, [Wait(100), Wait(200), Wait(400), Wait(800)]);
        // Before the retry time nothing is attempted.
        assert_eq!(
            poll_once(&mut src, 10, 701, &mut counters).unwrap().poll,
            Wait(799)
        );
        assert!(matches!(src.state, State::Backoff { retry_at: 1500 }));
    }

    #[test]
    fn reconnect_reads_from_the_next_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for msg in [&b"first\n"[..], b"second\nthird\n"] {
                let (mut s, _) = listener.accept().unwrap();
                s.write_all(msg).unwrap();
            }
        });
        let mut src = make(&addr, true, 0).unwrap();
        let (lines, end) = collect(&mut src, 100, 3);
        server.join().unwrap();
        assert_eq!(lines, ["first", "second", "third"]);
        assert_ne!(end, SourcePoll::Done);
    }

    #[test]
    fn an_overlong_line_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.write_all(&[b'x'; 100]);
        });
        let cfg =
            serde_json::from_value(serde_json::json!({"address": addr, "max_line_bytes": 10}))
                .unwrap();
        let mut src = TcpSource::create(cfg, &InitContext::for_test("tcp")).unwrap();
        let mut counters = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let err = loop {
            assert!(Instant::now() < deadline, "no error");
            match poll_once(&mut src, 10, 0, &mut counters) {
                Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => break e,
            }
        };
        server.join().unwrap();
        assert!(err.0.contains("longer than 10 bytes"), "{err}");
    }

    #[test]
    fn bad_addresses_are_refused_at_validation() {
        let mut init = InitContext::for_test("tcp");
        init.validate_only = true;
        for bad in ["nowhere", "host:0", ""] {
            let cfg = serde_json::from_value(serde_json::json!({ "address": bad })).unwrap();
            assert!(TcpSource::create(cfg, &init).is_err(), "{bad}");
        }
        assert!(make("localhost:9", false, 0).is_ok());
    }
}
