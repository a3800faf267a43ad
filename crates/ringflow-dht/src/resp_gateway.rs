//! The Redis-compatible (RESP) gateway of a worker's DHT.
//!
//! Started by `ringflow worker --resp-listen ADDR`: accepts TCP clients on the worker's
//! network thread, parses commands with `ringflow-resp` and runs them through
//! [`DhtService::route_put`] / [`DhtService::route_get`], so **every node serves every key**:
//! a command for a key whose partition another worker leads is forwarded to that primary.
//!
//! # Behaviour
//!
//! - One task per client. Every command completed by a read is executed in order and all
//!   their replies are written at once (pipelining). Runs of consecutive plain `GET`s (or
//!   `SET`s) in one pipeline go to the DHT as one batch; a failed batch answers the same error
//!   to each of its commands.
//! - RESP2 until `HELLO 3`, per connection.
//! - A protocol error is answered `-ERR Protocol error: ...` and that connection is closed,
//!   as Redis does; so is a client whose unanswered input exceeds `max_value + 1 MiB`.
//! - Cluster: `CLUSTER SLOTS` / `SHARDS` / `NODES` describe the real placement (each ring
//!   partition owns a contiguous slot range, see [`crate::slot`]), with every worker that
//!   advertises a RESP address; node ids are worker ids. The gateway never answers `MOVED`:
//!   cluster-aware clients route by `CLUSTER SLOTS`, and a misrouted command is forwarded.
//!
//! # Commands
//!
//! Data: `GET`, `SET key value` (options such as `NX`, `XX`, `GET`, `EX`, `PX`, `KEEPTTL`
//! are refused with `ERR syntax error`: the DHT has no expiry and no atomic
//! read-modify-write), `DEL` / `UNLINK` (count of keys that existed), `EXISTS`, `MGET`,
//! `MSET`, `STRLEN`. `DBSIZE` answers the number of entries this worker stores (replica
//! copies and deletion tombstones included), not the cluster's key count.
//!
//! Connection and server: `PING`, `ECHO`, `QUIT`, `SELECT 0`, `AUTH` / `HELLO ... AUTH`
//! (no passwords: user `default` with any password), `HELLO`, `CLIENT SETINFO | SETNAME |
//! GETNAME | ID | INFO`, `INFO [section ...]`, `COMMAND [COUNT | INFO | DOCS | LIST]`,
//! `CONFIG GET` (a few fixed values; `*` and `?` globs), `CONFIG RESETSTAT`, `READONLY`,
//! `READWRITE`, `ASKING`, and `CLUSTER KEYSLOT | INFO | MYID | SLOTS | SHARDS | NODES`.
//! `CONFIG SET` is refused. Anything else is an unknown command.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringflow_proto::{ClusterView, PeerInfo};
use ringflow_resp::{Command, Limits, ProtoVersion, Reply, RequestParser, RespError};
use ringflow_ring::{PartitionId, WorkerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{key_slot, DhtConfig, DhtError, DhtService, SlotMap, SLOTS};

/// The Redis version reported by `INFO` and `HELLO` (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.0";

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

/// Serves RESP clients on `listener` until the worker's runtime stops.
///
/// Must run inside a `LocalSet` (the worker's network thread): each client gets its own
/// `spawn_local` task sharing `service`.
pub async fn serve(listener: tokio::net::TcpListener, service: Rc<DhtService>) {
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

/// State shared by the connections of one gateway.
struct Shared {
    started: Instant,
    next_id: Cell<u64>,
    clients: Cell<usize>,
}

impl Shared {
    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }
}

/// Counts a connection while it lives.
struct ClientGuard(Rc<Shared>);

impl ClientGuard {
    fn new(shared: Rc<Shared>) -> Self {
        shared.clients.set(shared.clients.get() + 1);
        Self(shared)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.set(self.0.clients.get().saturating_sub(1));
    }
}

/// Per-connection state.
#[derive(Debug)]
struct Session {
    id: u64,
    proto: ProtoVersion,
    name: Option<String>,
    lib_name: Option<String>,
    lib_ver: Option<String>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    since: Instant,
}

impl Session {
    fn new(id: u64, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        Self {
            id,
            proto: ProtoVersion::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            peer,
            local,
            since: Instant::now(),
        }
    }
}

/// What the node tells the gateway; [`DhtService`] in production, a fixture in tests.
trait Node {
    fn id(&self) -> &WorkerId;
    fn view(&self) -> Option<Arc<ClusterView>>;
    fn stored_entries(&self) -> u64;
}

impl Node for DhtService {
    fn id(&self) -> &WorkerId {
        self.worker_id()
    }

    fn view(&self) -> Option<Arc<ClusterView>> {
        DhtService::view(self)
    }

    fn stored_entries(&self) -> u64 {
        self.local_entries()
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

/// What a command asks of its connection.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Send the reply and go on.
    Reply(Reply),
    /// Send the reply and close.
    Close(Reply),
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

/// Arguments 1.. of a command, by value.
fn operands(cmd: Command) -> impl Iterator<Item = Vec<u8>> {
    cmd.args.into_iter().skip(1)
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

/// Runs one command.
async fn execute(
    service: &DhtService,
    shared: &Shared,
    session: &mut Session,
    cmd: Command,
) -> Outcome {
    let spec = match lookup(&cmd) {
        Ok(spec) => spec,
        Err(reply) => return Outcome::Reply(reply),
    };
    let reply = match spec.name {
        "get" => get(service, cmd).await,
        "set" => set(service, cmd).await,
        "del" | "unlink" => del(service, cmd).await,
        "exists" => exists(service, cmd).await,
        "mget" => mget(service, cmd).await,
        "mset" => mset(service, cmd).await,
        "strlen" => strlen(service, cmd).await,
        _ => return local_command(service, shared, session, spec.name, &cmd),
    };
    Outcome::Reply(reply)
}

// ---------------------------------------------------------------------------------------
// Command table
// ---------------------------------------------------------------------------------------

/// A command as `COMMAND` describes it.
#[derive(Debug)]
struct Spec {
    /// Lowercase name.
    name: &'static str,
    /// Redis arity: `n` exactly `n` arguments (name included), `-n` at least `n`.
    arity: i64,
    flags: &'static [&'static str],
    first_key: i64,
    last_key: i64,
    step: i64,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);

/// Every command the gateway knows.
static COMMANDS: &[Spec] = &[
    spec("get", 2, &["readonly", "fast"], (1, 1, 1)),
    spec("set", -3, &["write", "denyoom"], (1, 1, 1)),
    spec("del", -2, &["write"], (1, -1, 1)),
    spec("unlink", -2, &["write", "fast"], (1, -1, 1)),
    spec("exists", -2, &["readonly", "fast"], (1, -1, 1)),
    spec("mget", -2, &["readonly", "fast"], (1, -1, 1)),
    spec("mset", -3, &["write", "denyoom"], (1, -1, 2)),
    spec("strlen", 2, &["readonly", "fast"], (1, 1, 1)),
    spec("ping", -1, &["fast"], NO_KEYS),
    spec("echo", 2, &["fast"], NO_KEYS),
    spec(
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast"],
        NO_KEYS,
    ),
    spec("select", 2, &["loading", "stale", "fast"], NO_KEYS),
    spec("dbsize", 1, &["readonly", "fast"], NO_KEYS),
    spec("info", -1, &["loading", "stale"], NO_KEYS),
    spec("command", -1, &["loading", "stale"], NO_KEYS),
    spec("config", -2, &["admin", "loading", "stale"], NO_KEYS),
    spec(
        "hello",
        -1,
        &["noauth", "loading", "stale", "fast"],
        NO_KEYS,
    ),
    spec("auth", -2, &["noauth", "loading", "stale", "fast"], NO_KEYS),
    spec("client", -2, &["loading", "stale"], NO_KEYS),
    spec("cluster", -2, &[], NO_KEYS),
    spec("readonly", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("readwrite", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("asking", 1, &["fast"], NO_KEYS),
];

/// Subcommands: (command, subcommand, arity counted from the command name).
static SUBCOMMANDS: &[(&str, &str, i64)] = &[
    ("cluster", "keyslot", 3),
    ("cluster", "info", 2),
    ("cluster", "myid", 2),
    ("cluster", "slots", 2),
    ("cluster", "shards", 2),
    ("cluster", "nodes", 2),
    ("cluster", "help", 2),
    ("config", "get", -3),
    ("config", "set", -4),
    ("config", "resetstat", 2),
    ("config", "help", 2),
    ("client", "setinfo", 4),
    ("client", "setname", 3),
    ("client", "getname", 2),
    ("client", "id", 2),
    ("client", "info", 2),
    ("client", "help", 2),
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "info", -2),
    ("command", "list", -2),
    ("command", "help", 2),
];

fn arity_ok(arity: i64, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The command's table entry, or the error Redis sends for an unknown command or a wrong
/// number of arguments.
fn lookup(cmd: &Command) -> Result<&'static Spec, Reply> {
    let spec = COMMANDS
        .iter()
        .find(|s| cmd.is(s.name))
        .ok_or_else(|| unknown_command(cmd))?;
    if arity_ok(spec.arity, cmd.len()) {
        Ok(spec)
    } else {
        Err(wrong_args(spec.name))
    }
}

/// The lowercase subcommand of `cmd` (a `parent` command), or its error.
fn subcommand(cmd: &Command, parent: &str) -> Result<&'static str, Reply> {
    let sub = cmd.arg(1).unwrap_or_default();
    let (_, name, arity) = SUBCOMMANDS
        .iter()
        .find(|(p, s, _)| *p == parent && sub.eq_ignore_ascii_case(s.as_bytes()))
        .ok_or_else(|| {
            Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                shown(sub, 128),
                parent.to_ascii_uppercase()
            ))
        })?;
    if arity_ok(*arity, cmd.len()) {
        Ok(name)
    } else {
        Err(wrong_args(&format!("{parent}|{name}")))
    }
}

/// `text` as lossy UTF-8, cut to `max` characters.
fn shown(text: &[u8], max: usize) -> String {
    String::from_utf8_lossy(text).chars().take(max).collect()
}

fn wrong_args(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's text: the name as sent, then the first arguments (up to about 128 characters).
fn unknown_command(cmd: &Command) -> Reply {
    let mut args = String::new();
    for a in cmd.args.iter().skip(1) {
        let room = 128usize.saturating_sub(args.chars().count());
        if room == 0 {
            break;
        }
        args.push_str(&format!("'{}' ", shown(a, room)));
    }
    Reply::Error(format!(
        "ERR unknown command '{}', with args beginning with: {args}",
        shown(cmd.arg(0).unwrap_or_default(), 128)
    ))
}

fn syntax_error() -> Reply {
    Reply::Error("ERR syntax error".into())
}

fn not_an_integer() -> Reply {
    Reply::Error("ERR value is not an integer or out of range".into())
}

fn parse_int(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// The reply for a failed DHT operation: `CLUSTERDOWN` when no quorum or owner can be
/// had, `TRYAGAIN` for a transient peer failure, `ERR` otherwise (e.g. too large).
fn dht_error(e: &DhtError) -> Reply {
    let prefix = match e {
        DhtError::Unavailable(_) | DhtError::NoOwner(_) => "CLUSTERDOWN",
        DhtError::Peer(_) | DhtError::Closed(_) => "TRYAGAIN",
        _ => "ERR",
    };
    Reply::Error(format!("{prefix} {e}"))
}

fn bulk_or_null(v: Option<Vec<u8>>) -> Reply {
    v.map_or(Reply::Null, Reply::Bulk)
}

// ---------------------------------------------------------------------------------------
// Data commands
// ---------------------------------------------------------------------------------------

async fn get(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(mut values) => bulk_or_null(values.pop().flatten()),
        Err(e) => dht_error(&e),
    }
}

async fn set(service: &DhtService, cmd: Command) -> Reply {
    if cmd.len() != 3 {
        // NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL: no expiry, no atomic read-modify-write.
        return syntax_error();
    }
    let mut args = operands(cmd);
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return wrong_args("set");
    };
    match service.route_put(vec![(key, Some(value))]).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

/// `DEL` / `UNLINK`: how many of the (distinct) keys held a value.
async fn del(service: &DhtService, cmd: Command) -> Reply {
    let mut seen = HashSet::new();
    let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = operands(cmd)
        .filter(|k| seen.insert(k.clone()))
        .map(|k| (k, None))
        .collect();
    match service.route_put(items).await {
        Ok(existed) => count(existed.into_iter().filter(|e| *e).count()),
        Err(e) => dht_error(&e),
    }
}

fn count(n: usize) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `EXISTS`: how many of the keys hold a value, a repeated key counted each time.
async fn exists(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(values) => count(values.iter().filter(|v| v.is_some()).count()),
        Err(e) => dht_error(&e),
    }
}

async fn mget(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(values) => Reply::Array(values.into_iter().map(bulk_or_null).collect()),
        Err(e) => dht_error(&e),
    }
}

async fn mset(service: &DhtService, cmd: Command) -> Reply {
    if cmd.len() % 2 == 0 {
        return wrong_args("mset");
    }
    let mut args = operands(cmd);
    let mut items = Vec::new();
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        items.push((k, Some(v)));
    }
    match service.route_put(items).await {
        Ok(_) => Reply::ok(),
        Err(e) => dht_error(&e),
    }
}

async fn strlen(service: &DhtService, cmd: Command) -> Reply {
    match service.route_get(operands(cmd).collect()).await {
        Ok(mut values) => count(values.pop().flatten().map_or(0, |v| v.len())),
        Err(e) => dht_error(&e),
    }
}

// ---------------------------------------------------------------------------------------
// Connection, server and cluster commands (no DHT traffic)
// ---------------------------------------------------------------------------------------

/// Commands answered from local state only.
fn local_command(
    node: &dyn Node,
    shared: &Shared,
    s: &mut Session,
    name: &str,
    cmd: &Command,
) -> Outcome {
    let reply = match name {
        "quit" => return Outcome::Close(Reply::ok()),
        "ping" => match (cmd.arg(1), cmd.len()) {
            (_, 3..) => wrong_args("ping"),
            (Some(msg), _) => Reply::Bulk(msg.to_vec()),
            (None, _) => Reply::Simple("PONG".into()),
        },
        "echo" => Reply::Bulk(cmd.arg(1).unwrap_or_default().to_vec()),
        "select" => select(cmd),
        "dbsize" => Reply::Integer(i64::try_from(node.stored_entries()).unwrap_or(i64::MAX)),
        "readonly" | "readwrite" | "asking" => Reply::ok(),
        "auth" => auth(cmd),
        "hello" => hello(s, cmd),
        "client" => client(s, cmd),
        "info" => info(node, shared, s, cmd),
        "command" => command(cmd),
        "config" => config(cmd),
        "cluster" => cluster(node, s, cmd),
        other => unknown_command(&Command::new(vec![other.as_bytes().to_vec()])),
    };
    Outcome::Reply(reply)
}

fn select(cmd: &Command) -> Reply {
    match cmd.arg(1).and_then(parse_int) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::Error("ERR SELECT is not allowed in cluster mode".into()),
        None => not_an_integer(),
    }
}

/// No passwords are configured: user `default` is accepted with any password.
fn check_auth(user: &[u8]) -> Result<(), Reply> {
    if user == b"default" {
        Ok(())
    } else {
        Err(Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

fn auth(cmd: &Command) -> Reply {
    match cmd.len() {
        2 => Reply::Error(
            "ERR AUTH <password> called without any password configured for the default \
             user. Are you sure your configuration is correct?"
                .into(),
        ),
        3 => match check_auth(cmd.arg(1).unwrap_or_default()) {
            Ok(()) => Reply::ok(),
            Err(r) => r,
        },
        _ => syntax_error(),
    }
}

/// A client name or library attribute: printable ASCII without spaces.
fn valid_name(v: &[u8]) -> bool {
    v.iter().all(|c| (b'!'..=b'~').contains(c))
}

fn hello(s: &mut Session, cmd: &Command) -> Reply {
    let mut proto = s.proto;
    if let Some(v) = cmd.arg(1) {
        let Some(n) = parse_int(v) else {
            return Reply::Error("ERR Protocol version is not an integer or out of range".into());
        };
        let Some(p) = ProtoVersion::from_number(n) else {
            return Reply::Error("NOPROTO unsupported protocol version".into());
        };
        proto = p;
    }
    let mut name = None;
    let mut i = 2;
    while let Some(opt) = cmd.arg(i) {
        if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < cmd.len() {
            if let Err(r) = check_auth(cmd.arg(i + 1).unwrap_or_default()) {
                return r;
            }
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < cmd.len() {
            let n = cmd.arg(i + 1).unwrap_or_default();
            if !valid_name(n) {
                return bad_client_name();
            }
            name = Some(String::from_utf8_lossy(n).into_owned());
            i += 2;
        } else {
            return Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                shown(opt, 128)
            ));
        }
    }
    s.proto = proto;
    if let Some(n) = name {
        s.name = Some(n).filter(|n| !n.is_empty());
    }
    let proto_number = match proto {
        ProtoVersion::Resp2 => 2,
        ProtoVersion::Resp3 => 3,
    };
    Reply::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(REDIS_VERSION)),
        (bulk("proto"), Reply::Integer(proto_number)),
        (bulk("id"), id_reply(s.id)),
        (bulk("mode"), bulk("cluster")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Reply::Array(vec![])),
    ])
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

fn id_reply(id: u64) -> Reply {
    Reply::Integer(i64::try_from(id).unwrap_or(i64::MAX))
}

/// A text reply: verbatim in RESP3, a bulk string in RESP2 (like `INFO`).
fn text(body: String) -> Reply {
    Reply::Verbatim {
        format: "txt".into(),
        text: body,
    }
}

fn bad_client_name() -> Reply {
    Reply::Error("ERR Client names cannot contain spaces, newlines or special characters.".into())
}

fn help(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple((*l).into())).collect())
}

fn client(s: &mut Session, cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "client") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "id" => id_reply(s.id),
        "getname" => s.name.as_deref().map_or(Reply::Null, bulk),
        "setname" => {
            let n = cmd.arg(2).unwrap_or_default();
            if !valid_name(n) {
                return bad_client_name();
            }
            s.name = Some(String::from_utf8_lossy(n).into_owned()).filter(|n| !n.is_empty());
            Reply::ok()
        }
        "setinfo" => client_setinfo(s, cmd),
        "info" => text(client_line(s)),
        _ => help(&[
            "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
            "ID, GETNAME, SETNAME <name>, SETINFO <LIB-NAME|LIB-VER> <value>, INFO, HELP",
        ]),
    }
}

fn client_setinfo(s: &mut Session, cmd: &Command) -> Reply {
    let attr = cmd.arg(2).unwrap_or_default();
    let value = cmd.arg(3).unwrap_or_default();
    let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
        &mut s.lib_name
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        &mut s.lib_ver
    } else {
        return Reply::Error(format!("ERR Unrecognized option '{}'", shown(attr, 128)));
    };
    if !valid_name(value) {
        return Reply::Error(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            shown(attr, 128).to_ascii_lowercase()
        ));
    }
    *slot = Some(String::from_utf8_lossy(value).into_owned()).filter(|v| !v.is_empty());
    Reply::ok()
}

/// `CLIENT INFO`'s line for this connection.
fn client_line(s: &Session) -> String {
    let local = s.local.map(|a| a.to_string()).unwrap_or_default();
    let resp = match s.proto {
        ProtoVersion::Resp2 => 2,
        ProtoVersion::Resp3 => 3,
    };
    format!(
        "id={} addr={} laddr={local} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 \
         ssub=0 multi=-1 cmd=client|info user=default redir=-1 resp={resp} lib-name={} \
         lib-ver={}\n",
        s.id,
        s.peer,
        s.name.as_deref().unwrap_or_default(),
        s.since.elapsed().as_secs(),
        s.lib_name.as_deref().unwrap_or_default(),
        s.lib_ver.as_deref().unwrap_or_default(),
    )
}

/// `INFO [section ...]`: server, clients, replication, cluster and keyspace.
fn info(node: &dyn Node, shared: &Shared, s: &Session, cmd: &Command) -> Reply {
    let wanted: Vec<String> = cmd
        .args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let want = |name: &str| all || wanted.iter().any(|w| w == name);
    let mut sections: Vec<String> = Vec::new();
    if want("server") {
        sections.push(format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nringflow_version:{}\r\n\
             redis_mode:cluster\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{}\r\nworker_id:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            s.local.map_or(0, |a| a.port()),
            shared.started.elapsed().as_secs(),
            node.id().0,
        ));
    }
    if want("clients") {
        sections.push(format!(
            "# Clients\r\nconnected_clients:{}\r\n",
            shared.clients.get()
        ));
    }
    if want("replication") {
        sections.push("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n".into());
    }
    if want("cluster") {
        sections.push("# Cluster\r\ncluster_enabled:1\r\n".into());
    }
    if want("keyspace") {
        sections.push(format!(
            "# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
            node.stored_entries()
        ));
    }
    text(sections.join("\r\n"))
}

fn command(cmd: &Command) -> Reply {
    if cmd.len() == 1 {
        return Reply::Array(COMMANDS.iter().map(command_entry).collect());
    }
    let sub = match subcommand(cmd, "command") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "count" => count(COMMANDS.len()),
        // Documentation is optional; redis-cli asks for it at start-up.
        "docs" => Reply::Map(vec![]),
        "info" => Reply::Array(
            cmd.args
                .iter()
                .skip(2)
                .map(|n| {
                    COMMANDS
                        .iter()
                        .find(|s| n.eq_ignore_ascii_case(s.name.as_bytes()))
                        .map_or(Reply::NullArray, command_entry)
                })
                .collect(),
        ),
        "list" => Reply::Array(COMMANDS.iter().map(|s| bulk(s.name)).collect()),
        _ => help(&[
            "COMMAND <subcommand> [<arg> ...]. Subcommands are:",
            "(no subcommand), COUNT, DOCS, INFO [<name> ...], LIST, HELP",
        ]),
    }
}

/// One command in Redis 7's `COMMAND` shape (what cluster clients read key positions from).
fn command_entry(spec: &Spec) -> Reply {
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Integer(spec.arity),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// The configuration `CONFIG GET` reports (fixed: nothing here is configurable over RESP).
static CONFIG: &[(&str, &str)] = &[
    ("appendonly", "no"),
    ("cluster-enabled", "yes"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("save", ""),
    ("timeout", "0"),
];

fn config(cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "config") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "get" => config_get(cmd.args.iter().skip(2).map(Vec::as_slice)),
        "set" => Reply::Error("ERR CONFIG SET is not supported by ringflow".into()),
        "resetstat" => Reply::ok(),
        _ => help(&[
            "CONFIG <subcommand> [<arg> ...]. Subcommands are:",
            "GET <pattern> [<pattern> ...], RESETSTAT, HELP",
        ]),
    }
}

fn config_get<'a>(patterns: impl Iterator<Item = &'a [u8]>) -> Reply {
    let patterns: Vec<Vec<u8>> = patterns.map(|p| p.to_ascii_lowercase()).collect();
    Reply::Map(
        CONFIG
            .iter()
            .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
            .map(|(name, value)| (bulk(name), bulk(value)))
            .collect(),
    )
}

/// Redis-style glob: `*`, `?` and `\` escapes (no `[...]` classes).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'\\') if pattern.get(p + 1) == text.get(t) && p + 1 < pattern.len() => {
                p += 2;
                t += 1;
                continue;
            }
            Some(c) if *c != b'\\' && Some(c) == text.get(t) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == b'*')
}

fn cluster(node: &dyn Node, s: &Session, cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "cluster") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    if sub == "keyslot" {
        return Reply::Integer(i64::from(key_slot(cmd.arg(2).unwrap_or_default())));
    }
    if sub == "myid" {
        return bulk(&node.id().0);
    }
    if sub == "help" {
        return help(&[
            "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
            "INFO, KEYSLOT <key>, MYID, NODES, SHARDS, SLOTS, HELP",
        ]);
    }
    let view = node.view();
    let topology = view
        .as_deref()
        .map(|v| Topology::new(v, node.id(), s.local.map(|a| a.ip())));
    match (sub, &topology) {
        ("info", _) => text(cluster_info(view.as_deref(), topology.as_ref())),
        (_, None) => Reply::Error("CLUSTERDOWN this worker has not joined the cluster yet".into()),
        ("slots", Some(t)) => cluster_slots(&t.ranges),
        ("shards", Some(t)) => cluster_shards(&t.ranges),
        ("nodes", Some(t)) => text(cluster_nodes(t, node.id(), view.as_deref())),
        _ => unknown_command(cmd),
    }
}

// ---------------------------------------------------------------------------------------
// Topology: the view as Redis Cluster describes it
// ---------------------------------------------------------------------------------------

/// A worker serving RESP, as advertised in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RespNode {
    id: String,
    ip: String,
    port: u16,
}

/// A contiguous range of slots (`end` inclusive) and the nodes serving it, primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    nodes: Vec<RespNode>,
}

/// The RESP-serving workers of a view and the slot ranges they serve.
#[derive(Debug)]
struct Topology {
    nodes: BTreeMap<WorkerId, RespNode>,
    ranges: Vec<SlotRange>,
}

impl Topology {
    /// `local_ip` stands in for this worker's own unspecified (`0.0.0.0`) RESP address.
    fn new(view: &ClusterView, me: &WorkerId, local_ip: Option<IpAddr>) -> Self {
        let nodes: BTreeMap<WorkerId, RespNode> = view
            .peers
            .iter()
            .filter_map(|p| Some((p.id.clone(), resp_node(p, me, local_ip)?)))
            .collect();
        let ranges = slot_ranges(view, &nodes);
        Self { nodes, ranges }
    }
}

/// A peer's RESP address (`services["resp"]`), if it has one. An unspecified IP is replaced
/// by the IP of the peer's QUIC address, or for this worker by `local_ip`.
fn resp_node(peer: &PeerInfo, me: &WorkerId, local_ip: Option<IpAddr>) -> Option<RespNode> {
    let addr: SocketAddr = peer.services.get("resp")?.parse().ok()?;
    let mut ip = addr.ip();
    if ip.is_unspecified() {
        let quic = peer
            .addr
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified());
        let local = local_ip.filter(|_| &peer.id == me);
        ip = quic.or(local).unwrap_or(ip);
    }
    Some(RespNode {
        id: peer.id.0.clone(),
        ip: ip.to_string(),
        port: addr.port(),
    })
}

/// Every partition's slots with its replicas that serve RESP (primary first), adjacent
/// ranges with the same node list merged. Slots with no such replica are left out.
fn slot_ranges(view: &ClusterView, nodes: &BTreeMap<WorkerId, RespNode>) -> Vec<SlotRange> {
    let Ok(map) = SlotMap::new(view.assignment.config.partitions) else {
        return Vec::new();
    };
    let mut out: Vec<SlotRange> = Vec::new();
    for p in 0..map.partitions() {
        let slots = map.slots_of(PartitionId(p));
        if slots.is_empty() {
            continue;
        }
        let owners: Vec<&RespNode> = view
            .assignment
            .replicas(PartitionId(p))
            .into_iter()
            .filter_map(|id| nodes.get(id))
            .collect();
        if owners.is_empty() {
            continue;
        }
        let end = slots.end - 1;
        match out.last_mut() {
            Some(last)
                if u32::from(last.end) + 1 == u32::from(slots.start)
                    && last.nodes.iter().eq(owners.iter().copied()) =>
            {
                last.end = end;
            }
            _ => out.push(SlotRange {
                start: slots.start,
                end,
                nodes: owners.into_iter().cloned().collect(),
            }),
        }
    }
    out
}

fn node_entry(n: &RespNode) -> Reply {
    Reply::Array(vec![
        bulk(&n.ip),
        Reply::Integer(i64::from(n.port)),
        bulk(&n.id),
    ])
}

fn cluster_slots(ranges: &[SlotRange]) -> Reply {
    Reply::Array(
        ranges
            .iter()
            .map(|r| {
                let mut entry = vec![
                    Reply::Integer(i64::from(r.start)),
                    Reply::Integer(i64::from(r.end)),
                ];
                entry.extend(r.nodes.iter().map(node_entry));
                Reply::Array(entry)
            })
            .collect(),
    )
}

/// A node list (primary first) and the slot ranges (inclusive) it serves.
type Shard<'a> = (&'a [RespNode], Vec<(u16, u16)>);

/// Ranges grouped by node list (first-seen order): Redis 7's shards.
fn shards(ranges: &[SlotRange]) -> Vec<Shard<'_>> {
    let mut out: Vec<Shard<'_>> = Vec::new();
    let mut index: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    for r in ranges {
        let key: Vec<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
        let i = *index.entry(key).or_insert_with(|| {
            out.push((&r.nodes, Vec::new()));
            out.len() - 1
        });
        if let Some((_, slots)) = out.get_mut(i) {
            slots.push((r.start, r.end));
        }
    }
    out
}

fn cluster_shards(ranges: &[SlotRange]) -> Reply {
    Reply::Array(
        shards(ranges)
            .into_iter()
            .map(|(nodes, slots)| {
                let slots = slots
                    .iter()
                    .flat_map(|(a, b)| {
                        [Reply::Integer(i64::from(*a)), Reply::Integer(i64::from(*b))]
                    })
                    .collect();
                let nodes = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| shard_node(n, i == 0))
                    .collect();
                Reply::Map(vec![
                    (bulk("slots"), Reply::Array(slots)),
                    (bulk("nodes"), Reply::Array(nodes)),
                ])
            })
            .collect(),
    )
}

fn shard_node(n: &RespNode, primary: bool) -> Reply {
    Reply::Map(vec![
        (bulk("id"), bulk(&n.id)),
        (bulk("port"), Reply::Integer(i64::from(n.port))),
        (bulk("ip"), bulk(&n.ip)),
        (bulk("endpoint"), bulk(&n.ip)),
        (
            bulk("role"),
            bulk(if primary { "master" } else { "replica" }),
        ),
        (bulk("replication-offset"), Reply::Integer(0)),
        (bulk("health"), bulk("online")),
    ])
}

/// `CLUSTER NODES`: every RESP node as a master of the ranges it is primary for.
fn cluster_nodes(t: &Topology, me: &WorkerId, view: Option<&ClusterView>) -> String {
    let epoch = view.map_or(0, ClusterView::epoch);
    let mut out = String::new();
    for (id, n) in &t.nodes {
        let flags = if id == me { "myself,master" } else { "master" };
        out.push_str(&format!(
            "{} {}:{}@0 {flags} - 0 0 {epoch} connected",
            n.id, n.ip, n.port
        ));
        for r in t.ranges.iter().filter(|r| r.nodes.first() == Some(n)) {
            if r.start == r.end {
                out.push_str(&format!(" {}", r.start));
            } else {
                out.push_str(&format!(" {}-{}", r.start, r.end));
            }
        }
        out.push('\n');
    }
    out
}

fn cluster_info(view: Option<&ClusterView>, t: Option<&Topology>) -> String {
    let assigned: u32 = t.map_or(0, |t| {
        t.ranges
            .iter()
            .map(|r| u32::from(r.end) - u32::from(r.start) + 1)
            .sum()
    });
    let primaries: std::collections::BTreeSet<&str> = t
        .map(|t| {
            t.ranges
                .iter()
                .filter_map(|r| r.nodes.first().map(|n| n.id.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let epoch = view.map_or(0, ClusterView::epoch);
    let state = if assigned == SLOTS { "ok" } else { "fail" };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n\
         cluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{epoch}\r\n\
         cluster_my_epoch:{epoch}\r\ncluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        t.map_or(0, |t| t.nodes.len()),
        primaries.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringflow_ring::{plan, RingConfig, WorkerSpec};

    struct Fixture {
        me: WorkerId,
        view: Option<Arc<ClusterView>>,
    }

    impl Node for Fixture {
        fn id(&self) -> &WorkerId {
            &self.me
        }
        fn view(&self) -> Option<Arc<ClusterView>> {
            self.view.clone()
        }
        fn stored_entries(&self) -> u64 {
            7
        }
    }

    fn peer(id: &str, quic: &str, resp: Option<&str>) -> PeerInfo {
        PeerInfo {
            id: WorkerId(id.into()),
            addr: quic.into(),
            services: resp
                .map(|r| [("resp".to_string(), r.to_string())].into())
                .unwrap_or_default(),
        }
    }

    fn view(partitions: u32, replication: usize, peers: Vec<PeerInfo>) -> ClusterView {
        let specs: Vec<WorkerSpec> = peers
            .iter()
            .map(|p| WorkerSpec::new(p.id.clone(), 1))
            .collect();
        let config = RingConfig::new(partitions, replication).unwrap();
        ClusterView {
            assignment: plan(None, &specs, config).unwrap(),
            peers,
        }
    }

    fn three(partitions: u32, replication: usize) -> ClusterView {
        view(
            partitions,
            replication,
            vec![
                peer("w1", "127.0.0.1:7001", Some("127.0.0.1:6381")),
                peer("w2", "127.0.0.1:7002", Some("127.0.0.1:6382")),
                peer("w3", "127.0.0.1:7003", Some("127.0.0.1:6383")),
            ],
        )
    }

    fn cmd(args: &[&str]) -> Command {
        Command::new(args.iter().map(|a| a.as_bytes().to_vec()).collect())
    }

    fn session() -> Session {
        Session::new(
            5,
            "127.0.0.1:50000".parse().unwrap(),
            Some("127.0.0.1:6380".parse().unwrap()),
        )
    }

    fn shared() -> Shared {
        Shared {
            started: Instant::now(),
            next_id: Cell::new(1),
            clients: Cell::new(1),
        }
    }

    fn run(node: &Fixture, s: &mut Session, args: &[&str]) -> Outcome {
        let c = cmd(args);
        match lookup(&c) {
            Ok(spec) => local_command(node, &shared(), s, spec.name, &c),
            Err(r) => Outcome::Reply(r),
        }
    }

    fn reply(node: &Fixture, s: &mut Session, args: &[&str]) -> Reply {
        match run(node, s, args) {
            Outcome::Reply(r) | Outcome::Close(r) => r,
        }
    }

    fn err(text: &str) -> Reply {
        Reply::Error(text.into())
    }

    fn fixture(view: Option<ClusterView>) -> Fixture {
        Fixture {
            me: WorkerId("w1".into()),
            view: view.map(Arc::new),
        }
    }

    #[test]
    fn ranges_cover_every_slot_once_with_replicas_primary_first() {
        for (partitions, replication) in [(1, 1), (16, 3), (1024, 2), (16384, 3)] {
            let v = three(partitions, replication);
            let t = Topology::new(&v, &WorkerId("w1".into()), None);
            let mut next = 0u32;
            for r in &t.ranges {
                assert_eq!(u32::from(r.start), next);
                assert!(r.end >= r.start);
                assert_eq!(r.nodes.len(), replication);
                next = u32::from(r.end) + 1;
                let slots = SlotMap::new(partitions).unwrap();
                let p = slots.partition_of_slot(r.start);
                let primary = v.assignment.primary(p).unwrap();
                assert_eq!(r.nodes[0].id, primary.0);
            }
            assert_eq!(next, SLOTS);
            // Merged: no two neighbours share a node list.
            for w in t.ranges.windows(2) {
                assert_ne!(w[0].nodes, w[1].nodes);
            }
        }
    }

    #[test]
    fn one_worker_is_one_range() {
        let v = view(
            1024,
            1,
            vec![peer("solo", "127.0.0.1:7001", Some("127.0.0.1:6380"))],
        );
        let t = Topology::new(&v, &WorkerId("solo".into()), None);
        assert_eq!(
            t.ranges,
            vec![SlotRange {
                start: 0,
                end: 16383,
                nodes: vec![RespNode {
                    id: "solo".into(),
                    ip: "127.0.0.1".into(),
                    port: 6380
                }]
            }]
        );
        let bytes = cluster_slots(&t.ranges).to_bytes(ProtoVersion::Resp2);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:6380\r\n$4\r\nsolo\r\n"
        );
        let nodes = cluster_nodes(&t, &WorkerId("solo".into()), Some(&v));
        assert!(
            nodes.starts_with("solo 127.0.0.1:6380@0 myself,master - 0 0 "),
            "{nodes}"
        );
        assert!(nodes.ends_with(" connected 0-16383\n"), "{nodes}");
        let info = cluster_info(Some(&v), Some(&t));
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
    }

    #[test]
    fn workers_without_a_resp_address_are_skipped() {
        let v = view(
            64,
            2,
            vec![
                peer("a", "127.0.0.1:7001", Some("127.0.0.1:6381")),
                peer("b", "127.0.0.1:7002", None),
            ],
        );
        let t = Topology::new(&v, &WorkerId("a".into()), None);
        assert_eq!(t.nodes.len(), 1);
        // Every partition has `a` among its two replicas: all slots, served by `a` alone.
        assert_eq!(t.ranges.len(), 1);
        assert_eq!((t.ranges[0].start, t.ranges[0].end), (0, 16383));
        assert!(t.ranges[0].nodes.iter().all(|n| n.id == "a"));

        // With replication 1, b's partitions are not served at all: the state is fail.
        let v = view(
            64,
            1,
            vec![
                peer("a", "127.0.0.1:7001", Some("127.0.0.1:6381")),
                peer("b", "127.0.0.1:7002", None),
            ],
        );
        let t = Topology::new(&v, &WorkerId("a".into()), None);
        let served: u32 = t
            .ranges
            .iter()
            .map(|r| u32::from(r.end - r.start) + 1)
            .sum();
        assert!(served > 0 && served < SLOTS);
        assert!(cluster_info(Some(&v), Some(&t)).starts_with("cluster_state:fail\r\n"));
    }

    #[test]
    fn unspecified_resp_ip_uses_the_quic_ip_or_the_local_one() {
        let me = WorkerId("a".into());
        let local = Some("10.0.0.9".parse().unwrap());
        let n = resp_node(
            &peer("a", "10.0.0.1:7001", Some("0.0.0.0:6380")),
            &me,
            local,
        );
        assert_eq!(n.unwrap().ip, "10.0.0.1");
        let n = resp_node(&peer("a", "0.0.0.0:7001", Some("0.0.0.0:6380")), &me, local);
        assert_eq!(n.unwrap().ip, "10.0.0.9");
        let n = resp_node(&peer("b", "0.0.0.0:7001", Some("0.0.0.0:6380")), &me, local);
        assert_eq!(n.unwrap().ip, "0.0.0.0");
        assert!(resp_node(&peer("b", "x", Some("garbage")), &me, local).is_none());
    }

    #[test]
    fn shards_group_ranges_by_node_list() {
        let v = three(16, 3);
        let t = Topology::new(&v, &WorkerId("w1".into()), None);
        let sh = shards(&t.ranges);
        let total: u32 = sh
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum();
        assert_eq!(total, SLOTS);
        for (i, (a, _)) in sh.iter().enumerate() {
            for (b, _) in &sh[i + 1..] {
                assert_ne!(a, b);
            }
        }
        match cluster_shards(&t.ranges) {
            Reply::Array(items) => assert_eq!(items.len(), sh.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arity_and_unknown_commands_use_redis_texts() {
        let f = fixture(None);
        let mut s = session();
        assert_eq!(
            reply(&f, &mut s, &["get"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["GET", "a", "b"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["FOO", "a", "b"]),
            err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
        );
        assert_eq!(
            reply(&f, &mut s, &["foo"]),
            err("ERR unknown command 'foo', with args beginning with: ")
        );
        assert_eq!(
            reply(&f, &mut s, &["cluster", "bogus"]),
            err("ERR unknown subcommand 'bogus'. Try CLUSTER HELP.")
        );
        assert_eq!(
            reply(&f, &mut s, &["config", "get"]),
            err("ERR wrong number of arguments for 'config|get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["cluster", "keyslot"]),
            err("ERR wrong number of arguments for 'cluster|keyslot' command")
        );
        assert!(lookup(&cmd(&["mset", "a"])).is_err());
        assert!(lookup(&cmd(&["MSET", "a", "1"])).is_ok());
        assert!(lookup(&cmd(&["del"])).is_err());
        assert!(lookup(&cmd(&["PiNg"])).is_ok());
        // A long unknown command stays bounded.
        let long = "x".repeat(10_000);
        match reply(&f, &mut s, &[&long, &long, &long]) {
            Reply::Error(e) => assert!(e.len() < 400, "{}", e.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_commands() {
        let f = fixture(None);
        let mut s = session();
        assert_eq!(reply(&f, &mut s, &["PING"]), Reply::Simple("PONG".into()));
        assert_eq!(
            reply(&f, &mut s, &["ping", "hi"]),
            Reply::Bulk(b"hi".to_vec())
        );
        assert_eq!(
            reply(&f, &mut s, &["ping", "a", "b"]),
            err("ERR wrong number of arguments for 'ping' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["echo", "x"]),
            Reply::Bulk(b"x".to_vec())
        );
        assert_eq!(run(&f, &mut s, &["quit"]), Outcome::Close(Reply::ok()));
        assert_eq!(reply(&f, &mut s, &["select", "0"]), Reply::ok());
        assert_eq!(
            reply(&f, &mut s, &["select", "1"]),
            err("ERR SELECT is not allowed in cluster mode")
        );
        assert_eq!(reply(&f, &mut s, &["select", "x"]), not_an_integer());
        assert_eq!(reply(&f, &mut s, &["dbsize"]), Reply::Integer(7));
        assert_eq!(reply(&f, &mut s, &["client", "id"]), Reply::Integer(5));
        assert_eq!(reply(&f, &mut s, &["client", "getname"]), Reply::Null);
        assert_eq!(
            reply(&f, &mut s, &["client", "setname", "app"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "getname"]),
            Reply::Bulk(b"app".to_vec())
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setname", "a b"]),
            bad_client_name()
        );
        assert_eq!(
            reply(&f, &mut s, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setinfo", "lib-ver", "5.0.1"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setinfo", "color", "red"]),
            err("ERR Unrecognized option 'color'")
        );
        match reply(&f, &mut s, &["client", "info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(text.starts_with("id=5 addr=127.0.0.1:50000 "), "{text}");
                assert!(text.contains(" name=app "), "{text}");
                assert!(
                    text.contains(" lib-name=redis-py lib-ver=5.0.1\n"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(&f, &mut s, &["auth", "secret"]),
            Reply::Error(e) if e.starts_with("ERR AUTH <password> called without")
        ));
        assert_eq!(reply(&f, &mut s, &["auth", "default", "x"]), Reply::ok());
        assert!(matches!(
            reply(&f, &mut s, &["auth", "bob", "x"]),
            Reply::Error(e) if e.starts_with("WRONGPASS")
        ));
    }

    #[test]
    fn hello_negotiates_the_protocol() {
        let f = fixture(None);
        let mut s = session();
        let r = reply(&f, &mut s, &["HELLO"]);
        assert_eq!(s.proto, ProtoVersion::Resp2);
        let Reply::Map(pairs) = r else {
            panic!("{r:?}")
        };
        let keys: Vec<Reply> = pairs.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            ["server", "version", "proto", "id", "mode", "role", "modules"]
                .iter()
                .map(|k| bulk(k))
                .collect::<Vec<_>>()
        );
        assert_eq!(pairs[2].1, Reply::Integer(2));
        assert_eq!(
            reply(&f, &mut s, &["hello", "4"]),
            err("NOPROTO unsupported protocol version")
        );
        assert_eq!(
            reply(&f, &mut s, &["hello", "x"]),
            err("ERR Protocol version is not an integer or out of range")
        );
        assert_eq!(
            reply(&f, &mut s, &["hello", "3", "bogus"]),
            err("ERR Syntax error in HELLO option 'bogus'")
        );
        assert!(matches!(
            reply(&f, &mut s, &["hello", "3", "auth", "bob", "pw"]),
            Reply::Error(e) if e.starts_with("WRONGPASS")
        ));
        assert_eq!(
            s.proto,
            ProtoVersion::Resp2,
            "a failed HELLO changes nothing"
        );
        let r = reply(
            &f,
            &mut s,
            &["hello", "3", "AUTH", "default", "pw", "SETNAME", "me"],
        );
        assert_eq!(s.proto, ProtoVersion::Resp3);
        assert_eq!(s.name.as_deref(), Some("me"));
        assert!(r.to_bytes(ProtoVersion::Resp3).starts_with(b"%7\r\n"));
        reply(&f, &mut s, &["hello", "2"]);
        assert_eq!(s.proto, ProtoVersion::Resp2);
    }

    #[test]
    fn server_commands() {
        let f = fixture(Some(three(1024, 3)));
        let mut s = session();
        match reply(&f, &mut s, &["info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(
                    text.starts_with("# Server\r\nredis_version:7.2.0\r\n"),
                    "{text}"
                );
                assert!(text.contains("\r\nredis_mode:cluster\r\n"), "{text}");
                assert!(text.contains("\r\ntcp_port:6380\r\n"), "{text}");
                assert!(text.contains("# Keyspace\r\ndb0:keys=7,"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["INFO", "clients"]) {
            Reply::Verbatim { text, .. } => {
                assert_eq!(text, "# Clients\r\nconnected_clients:1\r\n")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reply(&f, &mut s, &["config", "get", "save"]),
            Reply::Map(vec![(bulk("save"), bulk(""))])
        );
        assert_eq!(
            reply(&f, &mut s, &["CONFIG", "GET", "AppendOnly"]),
            Reply::Map(vec![(bulk("appendonly"), bulk("no"))])
        );
        assert_eq!(
            reply(&f, &mut s, &["config", "get", "nothing-*"]),
            Reply::Map(vec![])
        );
        match reply(&f, &mut s, &["config", "get", "max*", "save"]) {
            Reply::Map(p) => assert_eq!(p.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(&f, &mut s, &["config", "set", "save", ""]),
            Reply::Error(_)
        ));
        assert_eq!(
            reply(&f, &mut s, &["command", "count"]),
            count(COMMANDS.len())
        );
        assert_eq!(reply(&f, &mut s, &["command", "docs"]), Reply::Map(vec![]));
        match reply(&f, &mut s, &["command"]) {
            Reply::Array(items) => assert_eq!(items.len(), COMMANDS.len()),
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["command", "info", "mset", "nope"]) {
            Reply::Array(items) => {
                assert_eq!(items.len(), 2);
                assert_eq!(items[1], Reply::NullArray);
                let Reply::Array(mset) = &items[0] else {
                    panic!()
                };
                assert_eq!(&mset[..2], &[bulk("mset"), Reply::Integer(-3)]);
                assert_eq!(
                    &mset[3..6],
                    &[Reply::Integer(1), Reply::Integer(-1), Reply::Integer(2)]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_commands() {
        let mut s = session();
        let down = fixture(None);
        assert!(matches!(
            reply(&down, &mut s, &["cluster", "slots"]),
            Reply::Error(e) if e.starts_with("CLUSTERDOWN")
        ));
        match reply(&down, &mut s, &["cluster", "info"]) {
            Reply::Verbatim { text, .. } => assert!(text.starts_with("cluster_state:fail\r\n")),
            other => panic!("{other:?}"),
        }
        let f = fixture(Some(three(1024, 3)));
        assert_eq!(
            reply(&f, &mut s, &["cluster", "keyslot", "foo"]),
            Reply::Integer(12182)
        );
        assert_eq!(
            reply(&f, &mut s, &["CLUSTER", "MYID"]),
            Reply::Bulk(b"w1".to_vec())
        );
        match reply(&f, &mut s, &["cluster", "slots"]) {
            Reply::Array(items) => assert!(!items.is_empty()),
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["cluster", "nodes"]) {
            Reply::Verbatim { text, .. } => {
                assert_eq!(text.lines().count(), 3, "{text}");
                assert!(
                    text.starts_with("w1 127.0.0.1:6381@0 myself,master "),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["cluster", "info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(text.starts_with("cluster_state:ok\r\n"), "{text}");
                assert!(text.contains("\r\ncluster_known_nodes:3\r\ncluster_size:3\r\n"));
            }
            other => panic!("{other:?}"),
        }
    }

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

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"sa?e", b"save"));
        assert!(glob_match(b"max*", b"maxmemory-policy"));
        assert!(glob_match(b"*policy", b"maxmemory-policy"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(!glob_match(b"save?", b"save"));
        assert!(!glob_match(b"", b"save"));
        assert!(glob_match(b"", b""));
        assert!(glob_match(b"**", b""));
    }

    #[test]
    fn dht_errors_map_to_redis_prefixes() {
        let r = dht_error(&DhtError::Unavailable("1 of 3".into()));
        assert!(matches!(r, Reply::Error(e) if e.starts_with("CLUSTERDOWN ")));
        let r = dht_error(&DhtError::Peer("gone".into()));
        assert!(matches!(r, Reply::Error(e) if e.starts_with("TRYAGAIN ")));
        let r = dht_error(&DhtError::TooLarge {
            what: "value",
            len: 9,
            max: 8,
        });
        assert_eq!(r, err("ERR value of 9 bytes exceeds the limit of 8 bytes"));
    }
}
