//! The Redis-compatible (RESP) gateway of a worker's DHT.
//!
//! [`Gateway`] is bound and started by the worker's assembly (`ringflow worker --resp-listen
//! ADDR`), next to the [`DhtService`] it serves: it accepts TCP clients on the worker's
//! network thread, parses commands with `ringflow-resp` and runs them through
//! [`DhtService::route_put`] / [`DhtService::route_get`], so **every node serves every key**:
//! a command for a key whose partition another worker leads is forwarded to that primary.
//!
//! Layout: `server` (listener, connections, pipelining), `session` (connection state),
//! `table` (the command table), `dispatch` (one command to its handler), `cmd` (one module
//! per command family: strings, keys, connection, server, cluster) and `reply` (shared
//! reply shapes and error texts).
//!
//! # Behaviour
//!
//! - One task per client. Every command completed by a read is executed in order and their
//!   replies are written together (pipelining). Runs of consecutive plain `GET`s (or `SET`s)
//!   in one pipeline go to the DHT as one batch (one request per partition), and each
//!   command is answered with its own outcome: a partition whose request failed fails only
//!   its own commands (`CLUSTERDOWN`, `TRYAGAIN` or `UNKNOWN`, see `reply::dht_error`),
//!   the others answer their value or `OK`.
//! - RESP2 until `HELLO 3`, per connection.
//! - A protocol error is answered `-ERR Protocol error: ...` and that connection is closed,
//!   as Redis does; so is a client whose unanswered input exceeds `max_value + 1 MiB`. The
//!   parser takes at most `2 × max_keys_per_command + 1` arguments (at least 1024) and bulk
//!   strings up to the largest key or value (plus 64 KiB), and allocates nothing from a
//!   declared length, so one huge header is a protocol error at once.
//!
//! # Bounded work per request ([`DhtConfig`])
//!
//! - **Keys per command** (`max_keys_per_command`, default 10 000): an `MGET`, `MSET`,
//!   `DEL`, `UNLINK` or `EXISTS` naming more keys is answered `-ERR too many keys for
//!   'mget': N, at most M per command` and nothing of it is executed.
//! - **Reply bytes** (`max_reply_bytes`, default 64 MiB, never below `max_value + 1 KiB`):
//!   a command reads each distinct key once (an `MGET` repeating a key asks for it once),
//!   sums its reply's size from the values read and, past the cap, answers `-ERR the reply
//!   to 'mget' would take N bytes, above the limit of M bytes` without building the reply.
//!   A connection's unwritten replies are written out before the next one would take them
//!   past the cap, so a client that does not read stalls only its own connection. The
//!   values read themselves are bounded by distinct keys × `max_value` (the gateway cannot
//!   know their sizes before reading them).
//! - **Connections** (`max_clients`, default 10 000, like Redis `maxclients`): one more
//!   client is answered `-ERR max number of clients reached` and closed (lingering up to
//!   1 s for the client to read it); the others are served. `INFO clients` reports
//!   `connected_clients` and `maxclients`, `INFO stats` `rejected_connections`.
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

mod cmd;
mod dispatch;
mod reply;
mod server;
mod session;
mod table;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use ringflow_proto::ClusterView;
use ringflow_ring::WorkerId;

use crate::{DhtConfig, DhtService};

pub use server::Gateway;

/// The Redis version reported by `INFO` and `HELLO` (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.0";

/// What the node tells the gateway; [`DhtService`] in production, a fixture in tests.
trait Node {
    /// This worker's id (`CLUSTER MYID`, `INFO`).
    fn id(&self) -> &WorkerId;
    /// The worker's current view, if it has joined.
    fn view(&self) -> Option<Arc<ClusterView>>;
    /// Entries this worker stores (`DBSIZE`, `INFO keyspace`).
    fn stored_entries(&self) -> u64;
    /// The DHT's configuration (key, value and gateway limits).
    fn config(&self) -> &DhtConfig;
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

    fn config(&self) -> &DhtConfig {
        DhtService::config(self)
    }
}
