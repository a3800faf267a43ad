//! The RESP listener and its connections: reads, parses, runs each read's commands as one
//! pipeline (runs of plain `GET`s or `SET`s batched into one DHT request) and writes the
//! replies at once.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringflow_resp::{Command, Limits, Reply, RequestParser, RespError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cmd::operands;
use super::dispatch::{execute, Outcome};
use super::reply::{bulk_or_null, dht_error};
use super::session::{ClientGuard, Session, Shared};
use crate::{DhtConfig, DhtError, DhtService};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// A bulk string may exceed the largest key/value by this much (such requests get a clean
/// `-ERR` from the DHT instead of a protocol error).
const BULK_SLACK: usize = 64 * 1024;
/// Unanswered input a connection may hold beyond the largest value.
const BUFFER_SLACK: usize = 1024 * 1024;
/// Most commands in one pipelined batch sent to the DHT.
const MAX_BATCH: usize = 1024;
/// Most key and value bytes in one pipelined batch.
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// A bound RESP port, not yet serving.
///
/// The worker's assembly binds it on the worker's network thread once the DHT service is
/// open, advertises [`Gateway::local_addr`] as the service's `resp` address, and starts it
/// with [`Gateway::spawn`] next to the service.
pub struct Gateway {
    listener: TcpListener,
    local: SocketAddr,
}

impl Gateway {
    /// Binds `addr`. Must be called inside a Tokio runtime (the worker's network thread).
    pub fn bind(addr: SocketAddr) -> Result<Self, DhtError> {
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| DhtError::io(format!("binding the RESP port {addr}"), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| DhtError::io("RESP port", e))?;
        let listener =
            TcpListener::from_std(std_listener).map_err(|e| DhtError::io("RESP port", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| DhtError::io("RESP port", e))?;
        tracing::info!(%local, "serving the DHT over RESP (Redis protocol)");
        Ok(Self { listener, local })
    }

    /// The address the port is bound to (the real port if `0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves RESP clients in a task of its own on the current `LocalSet` (the worker's
    /// network thread), until the worker's runtime stops.
    pub fn spawn(self, service: Rc<DhtService>) {
        tokio::task::spawn_local(serve(self.listener, service));
    }
}

/// Serves RESP clients on `listener` until the worker's runtime stops.
///
/// Must run inside a `LocalSet` (the worker's network thread): each client gets its own
/// `spawn_local` task sharing `service`.
async fn serve(listener: TcpListener, service: Rc<DhtService>) {
    let shared = Rc::new(Shared {
        started: Instant::now(),
        next_id: Cell::new(1),
        clients: Cell::new(0),
    });
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::task::spawn_local(connection(service.clone(), shared.clone(), stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "RESP port: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The parser limits for a node's key and value limits.
fn limits(cfg: &DhtConfig) -> Limits {
    Limits {
        max_bulk: cfg.max_value.max(cfg.max_key).saturating_add(BULK_SLACK),
        ..Limits::default()
    }
}

/// Most unanswered input one connection may hold.
fn max_buffered(cfg: &DhtConfig) -> usize {
    cfg.max_value.saturating_add(BUFFER_SLACK)
}

async fn connection(
    service: Rc<DhtService>,
    shared: Rc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
) {
    let _guard = ClientGuard::new(shared.clone());
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "RESP: TCP_NODELAY");
    }
    let mut session = Session::new(shared.next_id(), peer, stream.local_addr().ok());
    let cfg = service.config();
    let mut parser = RequestParser::new(limits(cfg));
    let cap = max_buffered(cfg);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "RESP: read failed");
                return;
            }
        };
        parser.push(chunk.get(..n).unwrap_or_default());
        let (commands, failure) = drain(&mut parser);
        let mut out = Vec::new();
        let mut close = run_pipeline(&service, &shared, &mut session, commands, &mut out).await;
        if !close {
            if let Some(e) = failure {
                tracing::debug!(%peer, error = %e, "RESP: protocol error, closing");
                e.to_reply().encode(session.proto, &mut out);
                close = true;
            } else if parser.buffered() > cap {
                tracing::debug!(%peer, cap, "RESP: request too large, closing");
                too_large_request(cap).encode(session.proto, &mut out);
                close = true;
            }
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                tracing::debug!(%peer, error = %e, "RESP: write failed");
                return;
            }
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

fn too_large_request(cap: usize) -> Reply {
    Reply::Error(format!(
        "ERR Protocol error: request larger than {cap} bytes"
    ))
}

/// Every complete command buffered in `parser`, and the protocol error that stopped it, if
/// any (the commands before the error are still executed, as Redis does).
fn drain(parser: &mut RequestParser) -> (Vec<Command>, Option<RespError>) {
    let mut commands = Vec::new();
    loop {
        match parser.next_command() {
            Ok(Some(c)) => commands.push(c),
            Ok(None) => return (commands, None),
            Err(e) => return (commands, Some(e)),
        }
    }
}

/// Executes `commands` in order, appending their replies to `out`. `true` if the
/// connection must close (`QUIT`).
async fn run_pipeline(
    service: &DhtService,
    shared: &Shared,
    session: &mut Session,
    commands: Vec<Command>,
    out: &mut Vec<u8>,
) -> bool {
    let cfg = service.config();
    let mut commands = commands.into_iter().peekable();
    while let Some(first) = commands.next() {
        let Some(kind) = batch_kind(&first, cfg) else {
            match execute(service, shared, session, first).await {
                Outcome::Reply(r) => r.encode(session.proto, out),
                Outcome::Close(r) => {
                    r.encode(session.proto, out);
                    return true;
                }
            }
            continue;
        };
        let mut bytes = command_bytes(&first);
        let mut batch = vec![first];
        while let Some(next) = commands.peek() {
            if batch.len() >= MAX_BATCH
                || bytes >= MAX_BATCH_BYTES
                || batch_kind(next, cfg) != Some(kind)
            {
                break;
            }
            bytes += command_bytes(next);
            batch.extend(commands.next());
        }
        for r in run_batch(service, kind, batch).await {
            r.encode(session.proto, out);
        }
    }
    false
}

/// Commands that can share one DHT request with their neighbours in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchKind {
    Get,
    Set,
}

/// Whether `cmd` is a plain, well-formed `GET key` or `SET key value` within the size
/// limits (anything else runs on its own, with its own error).
fn batch_kind(cmd: &Command, cfg: &DhtConfig) -> Option<BatchKind> {
    if cmd.len() == 2 && cmd.is("get") {
        Some(BatchKind::Get)
    } else if cmd.len() == 3
        && cmd.is("set")
        && cmd.arg(1).is_some_and(|k| k.len() <= cfg.max_key)
        && cmd.arg(2).is_some_and(|v| v.len() <= cfg.max_value)
    {
        Some(BatchKind::Set)
    } else {
        None
    }
}

fn command_bytes(cmd: &Command) -> usize {
    cmd.args.iter().skip(1).map(Vec::len).sum()
}

async fn run_batch(service: &DhtService, kind: BatchKind, batch: Vec<Command>) -> Vec<Reply> {
    let n = batch.len();
    match kind {
        BatchKind::Get => {
            let keys: Vec<Vec<u8>> = batch.into_iter().flat_map(operands).collect();
            match service.route_get(keys).await {
                Ok(values) => values.into_iter().map(bulk_or_null).collect(),
                Err(e) => vec![dht_error(&e); n],
            }
        }
        BatchKind::Set => {
            let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch
                .into_iter()
                .filter_map(|c| {
                    let mut args = operands(c);
                    Some((args.next()?, Some(args.next()?)))
                })
                .collect();
            match service.route_put(items).await {
                Ok(_) => vec![Reply::ok(); n],
                Err(e) => vec![dht_error(&e); n],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;

    #[test]
    fn batching_takes_only_plain_gets_and_sets_within_limits() {
        let cfg = DhtConfig {
            max_key: 4,
            max_value: 8,
            ..DhtConfig::default()
        };
        assert_eq!(batch_kind(&cmd(&["get", "k"]), &cfg), Some(BatchKind::Get));
        assert_eq!(batch_kind(&cmd(&["GET", "k", "x"]), &cfg), None);
        assert_eq!(
            batch_kind(&cmd(&["Set", "k", "v"]), &cfg),
            Some(BatchKind::Set)
        );
        assert_eq!(batch_kind(&cmd(&["set", "k", "v", "NX"]), &cfg), None);
        assert_eq!(batch_kind(&cmd(&["set", "kkkkk", "v"]), &cfg), None);
        assert_eq!(batch_kind(&cmd(&["set", "k", "123456789"]), &cfg), None);
        assert_eq!(batch_kind(&cmd(&["mget", "k"]), &cfg), None);
        assert!(limits(&cfg).max_bulk > cfg.max_value);
        assert!(max_buffered(&cfg) > limits(&cfg).max_bulk);
    }

    #[test]
    fn drain_returns_commands_before_a_protocol_error() {
        let mut p = RequestParser::new(Limits::default());
        p.push(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$999999999999\r\n");
        let (cmds, failure) = drain(&mut p);
        assert_eq!(cmds.len(), 2);
        let reply = failure.unwrap().to_reply();
        assert_eq!(reply, err("ERR Protocol error: invalid bulk length"));
    }
}
