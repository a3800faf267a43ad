//! The RESP listener and its connections: refuses clients past `max_clients`, reads,
//! parses, runs each read's commands as one pipeline (runs of plain `GET`s or `SET`s
//! batched into one DHT request, each answered with its own outcome) and writes the
//! replies, at once or as they reach the reply cap.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringflow_resp::{Command, Limits, ProtoVersion, Reply, RequestParser, RespError};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cmd::operands;
use super::cmd::strings::sized_bulk;
use super::dispatch::{execute, Outcome};
use super::reply::{dht_error, encoded_len, reply_cap};
use super::session::{ClientGuard, Session, Shared};
use super::Node;
use crate::batch::Router;
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
/// The parser accepts at least this many arguments per command, whatever the key cap.
const MIN_ARGS: usize = 1024;

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
/// `spawn_local` task sharing `service`. Past `max_clients` connected clients, a new one
/// is answered `-ERR max number of clients reached` and closed.
async fn serve<S: Node + Router + 'static>(listener: TcpListener, service: Rc<S>) {
    let shared = Rc::new(Shared::new());
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.clients.get() >= service.config().max_clients {
                    refuse(&shared, stream, peer);
                    continue;
                }
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

/// Refused connections answered at once; beyond this many, more are closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is kept open for the client to read the error.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// The error a client past `max_clients` gets (Redis's text).
pub(crate) const MAX_CLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

/// Answers a client past `max_clients` with the error and closes it, as Redis does. The
/// socket stays open (reading and dropping what the client sends) until the client
/// closes or for [`REFUSE_LINGER`], so that closing with unread input does not reset
/// the connection before the client read the error.
fn refuse(shared: &Rc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    shared.rejected.set(shared.rejected.get() + 1);
    tracing::debug!(%peer, "RESP: max number of clients reached, refusing");
    if shared.refusing.get() >= MAX_REFUSING {
        return;
    }
    shared.refusing.set(shared.refusing.get() + 1);
    let shared = shared.clone();
    tokio::task::spawn_local(async move {
        let linger = async {
            stream.write_all(MAX_CLIENTS_REACHED).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSE_LINGER, linger).await;
        shared.refusing.set(shared.refusing.get().saturating_sub(1));
    });
}

/// The parser limits for a node's limits: bulk strings up to the largest key or value
/// (plus slack, for a clean `-ERR` from the DHT), and arguments up to what an `MSET` of
/// `max_keys_per_command` keys needs (plus slack, for a clean `-ERR` from the key cap),
/// so a huge array header is a protocol error at once. Nothing is allocated from a
/// declared length either way (see [`Limits`]).
fn limits(cfg: &DhtConfig) -> Limits {
    Limits {
        max_bulk: cfg.max_value.max(cfg.max_key).saturating_add(BULK_SLACK),
        max_args: cfg
            .max_keys_per_command
            .saturating_mul(2)
            .saturating_add(1)
            .max(MIN_ARGS),
        ..Limits::default()
    }
}

/// Most unanswered input one connection may hold.
fn max_buffered(cfg: &DhtConfig) -> usize {
    cfg.max_value.saturating_add(BUFFER_SLACK)
}

async fn connection<S: Node + Router>(
    service: Rc<S>,
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
    let mut replies = Replies::new(reply_cap(cfg));
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
        let written = async {
            let mut close = run_pipeline(
                &*service,
                &shared,
                &mut session,
                commands,
                &mut replies,
                &mut stream,
            )
            .await?;
            if !close {
                if let Some(e) = failure {
                    tracing::debug!(%peer, error = %e, "RESP: protocol error, closing");
                    replies
                        .push(e.to_reply(), session.proto, &mut stream)
                        .await?;
                    close = true;
                } else if parser.buffered() > cap {
                    tracing::debug!(%peer, cap, "RESP: request too large, closing");
                    replies
                        .push(too_large_request(cap), session.proto, &mut stream)
                        .await?;
                    close = true;
                }
            }
            replies.flush(&mut stream).await?;
            Ok::<_, std::io::Error>(close)
        };
        match written.await {
            Ok(false) => {}
            Ok(true) => {
                let _ = stream.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "RESP: write failed");
                return;
            }
        }
    }
}

/// A connection's replies not written yet. Before a reply would take them past the
/// reply cap they are written out, so they never hold much more than one reply (and a
/// client that does not read stalls its own connection, not the worker's memory).
pub(crate) struct Replies {
    buf: Vec<u8>,
    cap: usize,
}

impl Replies {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
        }
    }

    /// Appends `reply`, first writing out what is buffered if both would exceed the cap.
    pub(crate) async fn push<W: AsyncWrite + Unpin>(
        &mut self,
        reply: Reply,
        proto: ProtoVersion,
        sink: &mut W,
    ) -> std::io::Result<()> {
        if !self.buf.is_empty() && self.buf.len().saturating_add(encoded_len(&reply)) > self.cap {
            self.flush(sink).await?;
        }
        reply.encode(proto, &mut self.buf);
        Ok(())
    }

    /// Writes out what is buffered.
    pub(crate) async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        sink: &mut W,
    ) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            sink.write_all(&self.buf).await?;
            self.buf.clear();
            if self.buf.capacity() > READ_CHUNK {
                // A big pipeline's buffer is not kept for the connection's life.
                self.buf.shrink_to(READ_CHUNK);
            }
        }
        Ok(())
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

/// Executes `commands` in order, passing their replies to `replies` (which writes them
/// to `sink` as it fills up). `Ok(true)` if the connection must close (`QUIT`).
async fn run_pipeline<S: Node + Router, W: AsyncWrite + Unpin>(
    service: &S,
    shared: &Shared,
    session: &mut Session,
    commands: Vec<Command>,
    replies: &mut Replies,
    sink: &mut W,
) -> std::io::Result<bool> {
    let cfg = service.config();
    let cap = reply_cap(cfg);
    let mut commands = commands.into_iter().peekable();
    while let Some(first) = commands.next() {
        let Some(kind) = batch_kind(&first, cfg) else {
            match execute(service, shared, session, first).await {
                Outcome::Reply(r) => replies.push(r, session.proto, sink).await?,
                Outcome::Close(r) => {
                    replies.push(r, session.proto, sink).await?;
                    return Ok(true);
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
        for r in run_batch(service, kind, batch, cap).await {
            replies.push(r, session.proto, sink).await?;
        }
    }
    Ok(false)
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

/// Runs a batch of plain `GET`s or `SET`s as one DHT request per partition; each command
/// is answered with its own outcome (a failed partition fails only its own commands).
async fn run_batch<R: Router>(
    r: &R,
    kind: BatchKind,
    batch: Vec<Command>,
    cap: usize,
) -> Vec<Reply> {
    match kind {
        BatchKind::Get => {
            let keys: Vec<Vec<u8>> = batch.into_iter().flat_map(operands).collect();
            crate::batch::read_each(r, keys)
                .await
                .into_iter()
                .map(|v| match v {
                    Ok(v) => sized_bulk(v, cap),
                    Err(e) => dht_error(&e),
                })
                .collect()
        }
        BatchKind::Set => {
            let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch
                .into_iter()
                .filter_map(|c| {
                    let mut args = operands(c);
                    Some((args.next()?, Some(args.next()?)))
                })
                .collect();
            crate::batch::write_each(r, items)
                .await
                .into_iter()
                .map(|w| match w {
                    Ok(_) => Reply::ok(),
                    Err(e) => dht_error(&e),
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;
    use std::time::Instant;

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

    fn bulk(v: &str) -> Reply {
        Reply::Bulk(v.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn a_pipelined_batch_answers_each_command_with_its_own_outcome() {
        let f = fixture(None);
        f.put(b"a", b"1");
        f.put(b"b", b"2");
        assert_ne!(partition_of(b"a"), partition_of(b"b"));
        f.fail(b"b", DhtError::Unavailable("partition of b".into()));
        let gets = vec![cmd(&["GET", "a"]), cmd(&["GET", "b"]), cmd(&["GET", "zz"])];
        let replies = run_batch(&f, BatchKind::Get, gets, usize::MAX).await;
        assert_eq!(replies[0], bulk("1"));
        assert!(
            matches!(&replies[1], Reply::Error(e) if e.starts_with("CLUSTERDOWN ")),
            "{:?}",
            replies[1]
        );
        assert_eq!(replies[2], Reply::Null);
        // One request per partition.
        assert_eq!(f.requests.get(), 3);

        f.fail(b"b", DhtError::OutcomeUnknown("no quorum".into()));
        let sets = vec![cmd(&["SET", "a", "x"]), cmd(&["SET", "b", "y"])];
        let replies = run_batch(&f, BatchKind::Set, sets, usize::MAX).await;
        assert_eq!(replies[0], Reply::ok());
        assert!(
            matches!(&replies[1], Reply::Error(e) if e.starts_with("UNKNOWN ")),
            "{:?}",
            replies[1]
        );
        assert_eq!(f.data.borrow().get(&b"a"[..]), Some(&b"x".to_vec()));
        assert_eq!(f.data.borrow().get(&b"b"[..]), Some(&b"2".to_vec()));
    }

    #[tokio::test]
    async fn a_pipeline_runs_its_gets_as_one_batch_and_answers_each() {
        let f = fixture(None);
        f.put(b"a", b"1");
        f.fail(b"b", DhtError::Unavailable("partition of b".into()));
        let mut s = session();
        let mut replies = Replies::new(1 << 20);
        let mut sink = Vec::new();
        let commands = vec![
            cmd(&["GET", "a"]),
            cmd(&["GET", "b"]),
            cmd(&["GET", "a"]),
            cmd(&["PING"]),
        ];
        let close = run_pipeline(&f, &shared(), &mut s, commands, &mut replies, &mut sink)
            .await
            .unwrap();
        assert!(!close);
        replies.flush(&mut sink).await.unwrap();
        let text = String::from_utf8(sink).unwrap();
        assert!(
            text.starts_with(
                "$1\r\n1\r\n-CLUSTERDOWN no quorum: partition of b\r\n$1\r\n1\r\n+PONG\r\n"
            ),
            "{text:?}"
        );
        // One request per partition: "a" asked once, "b" failed.
        assert_eq!(f.requests.get(), 2);
        assert_eq!(f.gets.borrow().as_slice(), &[vec![b"a".to_vec()]]);
    }

    #[tokio::test]
    async fn commands_over_the_key_cap_are_refused_and_nothing_runs() {
        let f = with_config(
            None,
            DhtConfig {
                max_keys_per_command: 3,
                ..DhtConfig::default()
            },
        );
        f.put(b"a", b"1");
        for args in [
            &["MGET", "a", "b", "c", "d"][..],
            &["mset", "a", "1", "b", "2", "c", "3", "d", "4"],
            &["DEL", "a", "b", "c", "d"],
            &["unlink", "a", "b", "c", "d"],
            &["EXISTS", "a", "a", "a", "a"],
        ] {
            let name = args[0].to_ascii_lowercase();
            assert_eq!(
                exec(&f, args).await,
                err(&format!(
                    "ERR too many keys for '{name}': 4, at most 3 per command"
                ))
            );
        }
        assert_eq!(f.requests.get(), 0, "nothing was executed");
        assert_eq!(f.data.borrow().len(), 1);
        // At the cap, they run.
        assert_eq!(
            exec(&f, &["EXISTS", "a", "a", "b"]).await,
            Reply::Integer(2)
        );
        assert_eq!(
            exec(&f, &["MSET", "a", "1", "b", "2", "c", "3"]).await,
            Reply::ok()
        );
        assert_eq!(exec(&f, &["DEL", "a", "b", "c"]).await, Reply::Integer(3));
    }

    #[tokio::test]
    async fn an_mget_repeating_a_large_key_is_refused_before_its_reply_is_built() {
        let f = with_config(
            None,
            DhtConfig {
                max_value: 1000,
                max_reply_bytes: 10_000,
                ..DhtConfig::default()
            },
        );
        f.put(b"big", &[b'x'; 1000]);
        let mut args = vec!["MGET"];
        args.extend(std::iter::repeat_n("big", 50));
        match exec(&f, &args).await {
            Reply::Error(e) => {
                assert!(e.starts_with("ERR the reply to 'mget' would take "), "{e}");
                assert!(e.ends_with("above the limit of 10000 bytes"), "{e}");
            }
            other => panic!("{:?}", encoded_len(&other)),
        }
        // The key was asked once, not 50 times.
        assert_eq!(f.gets.borrow().as_slice(), &[vec![b"big".to_vec()]]);
        // Under the cap, the reply has every occurrence.
        match exec(&f, &["MGET", "big", "nothing", "big"]).await {
            Reply::Array(items) => {
                assert_eq!(items.len(), 3);
                assert_eq!(items[0], Reply::Bulk(vec![b'x'; 1000]));
                assert_eq!(items[1], Reply::Null);
                assert_eq!(items[2], items[0]);
            }
            other => panic!("{other:?}"),
        }
        // A GET of the largest value always fits, whatever the cap.
        assert_eq!(
            exec(&f, &["GET", "big"]).await,
            Reply::Bulk(vec![b'x'; 1000])
        );
        // A value larger than the cap (stored under a larger limit) is refused too.
        f.put(b"huge", &[b'y'; 20_000]);
        let r = run_batch(&f, BatchKind::Get, vec![cmd(&["GET", "huge"])], 10_000).await;
        assert!(
            matches!(&r[0], Reply::Error(e) if e.contains("'get'")),
            "{:?}",
            r[0]
        );
    }

    #[tokio::test]
    async fn replies_are_written_out_before_they_pass_the_cap() {
        let mut replies = Replies::new(200);
        let mut sink = Vec::new();
        let mut most = 0;
        for _ in 0..10 {
            replies
                .push(Reply::Bulk(vec![b'v'; 90]), ProtoVersion::Resp2, &mut sink)
                .await
                .unwrap();
            most = most.max(replies.buf.len());
        }
        assert!(most <= 200, "{most}");
        replies.flush(&mut sink).await.unwrap();
        assert_eq!(sink.len(), 10 * ("$90\r\n".len() + 90 + 2));
    }

    #[test]
    fn a_huge_array_header_is_a_protocol_error_at_once() {
        let cfg = DhtConfig::default();
        let mut p = RequestParser::new(limits(&cfg));
        p.push(b"*100000\r\n");
        let (cmds, failure) = drain(&mut p);
        assert!(cmds.is_empty());
        assert_eq!(
            failure.unwrap().to_reply(),
            err("ERR Protocol error: invalid multibulk length")
        );
        // An MGET just over the key cap still parses, for its clean error.
        assert!(limits(&cfg).max_args >= cfg.max_keys_per_command + 2);
        let small = DhtConfig {
            max_keys_per_command: 2,
            ..DhtConfig::default()
        };
        assert_eq!(limits(&small).max_args, MIN_ARGS);
    }

    #[tokio::test]
    async fn past_max_clients_a_client_gets_the_error_and_the_others_are_served() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let f = with_config(
                    None,
                    DhtConfig {
                        max_clients: 2,
                        ..DhtConfig::default()
                    },
                );
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::task::spawn_local(serve(listener, Rc::new(f)));
                let ping = |mut c: TcpStream| async move {
                    c.write_all(b"PING\r\n").await.unwrap();
                    let mut buf = [0u8; 7];
                    c.read_exact(&mut buf).await.unwrap();
                    assert_eq!(&buf, b"+PONG\r\n");
                    c
                };
                let a = ping(TcpStream::connect(addr).await.unwrap()).await;
                let b = ping(TcpStream::connect(addr).await.unwrap()).await;
                let mut c = TcpStream::connect(addr).await.unwrap();
                let mut refused = Vec::new();
                let read = c.read_to_end(&mut refused);
                let closed = tokio::time::timeout(Duration::from_secs(10), read).await;
                assert_eq!(refused, MAX_CLIENTS_REACHED);
                assert!(matches!(closed, Ok(Ok(_))), "closed after the error");
                // The others are still served; once one leaves, a new client is too.
                let a = ping(a).await;
                drop(ping(b).await);
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let mut d = TcpStream::connect(addr).await.unwrap();
                    d.write_all(b"PING\r\n").await.unwrap();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 64];
                    let n = d.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if buf == b"+PONG\r\n" {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{buf:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                drop(a);
            })
            .await;
    }
}
