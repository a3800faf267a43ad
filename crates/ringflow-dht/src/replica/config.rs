//! The DHT service's configuration: limits (of keys, values and the RESP gateway's work),
//! timeouts, durability, tombstone grace.

use std::time::Duration;

/// Configuration of a worker's DHT service.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Largest key, in bytes.
    pub max_key: usize,
    /// Largest value, in bytes.
    pub max_value: usize,
    /// How long the primary waits for replicas before answering `Unavailable`.
    pub replica_timeout: Duration,
    /// fsync every write before acknowledging it (default). Off: acknowledged once in
    /// the OS (survives kill -9, not a machine crash), fsynced every `sync_interval`.
    pub sync: bool,
    /// With `sync` off: the longest a write waits for its fsync.
    pub sync_interval: Duration,
    /// Deletion tombstones older than this are forgotten, by the partition's primary and
    /// only once every replica of the configured set holds them; `None` keeps them
    /// forever. A worker away for longer must come back with an empty data directory, or
    /// values deleted meanwhile can come back with it.
    pub tombstone_grace: Option<Duration>,
    /// How far ahead of this node's clock a version may be: a replicated write stamped
    /// further in the future is refused (a broken clock or a forged version would
    /// otherwise win over every later write for that long).
    pub max_clock_skew: Duration,
    /// Most keys one RESP command may name (`MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`);
    /// a command over it is answered `-ERR` and nothing of it is executed. Default 10 000.
    pub max_keys_per_command: usize,
    /// Largest reply the RESP gateway builds for one command, in bytes (at least
    /// `max_value` plus a little, so a `GET` of any storable value fits). A command whose
    /// reply would be larger (e.g. an `MGET` repeating a large key) is answered `-ERR`
    /// instead, sized from the values read before the reply is allocated; a connection's
    /// unwritten replies are written out before they exceed it. Default 64 MiB.
    pub max_reply_bytes: usize,
    /// Most RESP clients connected at once (like Redis `maxclients`); one more is
    /// answered `-ERR max number of clients reached` and closed. Default 10 000.
    pub max_clients: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            max_key: 64 * 1024,
            max_value: 8 * 1024 * 1024,
            replica_timeout: Duration::from_secs(5),
            sync: true,
            sync_interval: Duration::from_millis(100),
            tombstone_grace: Some(Duration::from_secs(7 * 24 * 3600)),
            max_clock_skew: Duration::from_secs(120),
            max_keys_per_command: 10_000,
            max_reply_bytes: 64 * 1024 * 1024,
            max_clients: 10_000,
        }
    }
}
