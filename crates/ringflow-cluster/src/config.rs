//! Configuration of coordinators and workers (TOML files, overridable by flags).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// Where a node finds its certificates: `certs_dir/ca.crt`, `certs_dir/{name}.crt`,
/// `certs_dir/{name}.key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Directory holding the cluster CA certificate and this node's certificate and key.
    pub certs_dir: PathBuf,
    /// Base name of this node's certificate files.
    pub name: String,
}

/// Configuration of the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorConfig {
    /// Cluster name; every peer's handshake must name the same cluster.
    pub cluster: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Directory for the persisted membership and assignment.
    pub data_dir: PathBuf,
    /// Certificates.
    pub tls: TlsConfig,
    /// Number of ring partitions (power of two); fixed when the cluster is created.
    pub partitions: u32,
    /// Replicas per partition (capped by the number of live workers).
    pub replication: u32,
    /// How often workers send heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Silence after which a worker is declared dead and loses its partitions, in ms.
    pub failure_timeout_ms: u64,
    /// After a restart, how long workers known from the data directory keep their
    /// partitions while they reconnect, in ms (never less than the failure timeout).
    pub recovery_grace_ms: u64,
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// HTTP address serving Prometheus metrics at `/metrics` (TCP; port 0 picks a free
    /// port, written to `data_dir/metrics.addr`); off when unset. Not authenticated.
    pub metrics_listen: Option<SocketAddr>,
    /// Defaults for stream jobs (`[jobs]`).
    pub jobs: JobDefaults,
}

/// What the coordinator applies to stream jobs whose spec does not say (`[jobs]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobDefaults {
    /// Checkpoint interval of jobs whose spec sets none (ms); 0 (default): no checkpoints.
    pub checkpoint_interval_ms: u64,
    /// Completed checkpoints kept per job to restart from (the older ones are deleted
    /// from the checkpoint store). Default 3, at least 1.
    pub checkpoints_retained: usize,
}

impl Default for JobDefaults {
    fn default() -> Self {
        Self {
            checkpoint_interval_ms: 0,
            checkpoints_retained: 3,
        }
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            cluster: "ringflow".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            data_dir: PathBuf::from("data/coordinator"),
            tls: TlsConfig {
                certs_dir: PathBuf::from("certs"),
                name: "coordinator".into(),
            },
            partitions: ringflow_ring::DEFAULT_PARTITIONS,
            replication: ringflow_ring::DEFAULT_REPLICATION as u32,
            heartbeat_interval_ms: 500,
            failure_timeout_ms: 3000,
            recovery_grace_ms: 10_000,
            max_frame: ringflow_proto::DEFAULT_MAX_FRAME,
            metrics_listen: None,
            jobs: JobDefaults::default(),
        }
    }
}

impl CoordinatorConfig {
    /// Checks values that serde cannot; the first problem found, as an error.
    pub fn validate(&self) -> Result<(), ClusterError> {
        first_problem(self.problems())
    }

    /// Every value that serde accepts but the coordinator cannot run with, each with
    /// the key it is about (`ringflow config check` reports them all with their lines).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Err(e) = ringflow_ring::RingConfig::new(self.partitions, self.replication as usize) {
            let key = if self.replication == 0 {
                "replication"
            } else {
                "partitions"
            };
            out.push(Problem::new(key, e.to_string()));
        }
        if self.jobs.checkpoints_retained == 0 {
            out.push(Problem::new(
                "jobs.checkpoints_retained",
                "jobs.checkpoints_retained must be >= 1",
            ));
        }
        if self.heartbeat_interval_ms == 0 {
            out.push(Problem::new(
                "heartbeat_interval_ms",
                "heartbeat_interval_ms must be > 0",
            ));
        } else if self.failure_timeout_ms < 2 * self.heartbeat_interval_ms {
            out.push(Problem::new(
                "failure_timeout_ms",
                format!(
                    "failure_timeout_ms ({}) must be at least twice heartbeat_interval_ms ({})",
                    self.failure_timeout_ms, self.heartbeat_interval_ms
                ),
            ));
        }
        if self.max_frame < 64 * 1024 {
            out.push(Problem::new(
                "max_frame",
                "max_frame must be at least 65536",
            ));
        } else {
            // A view carries partitions x replication owner indexes (at most 5 bytes each
            // in MessagePack) plus the peers; it must fit in one frame.
            let view_bytes = self.partitions as usize * self.replication as usize * 5 + 1024 * 1024;
            if view_bytes > self.max_frame {
                out.push(Problem::new("max_frame", format!(
                    "max_frame ({}) is too small for a view of {} partitions x {} replicas (needs about {view_bytes})",
                    self.max_frame, self.partitions, self.replication
                )));
            }
        }
        if let Err(e) = validate_name("cluster", &self.cluster) {
            out.push(Problem::from_error("cluster", e));
        }
        if let Err(e) = validate_name("tls.name", &self.tls.name) {
            out.push(Problem::from_error("tls.name", e));
        }
        out
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The failure timeout.
    pub fn failure_timeout(&self) -> Duration {
        Duration::from_millis(self.failure_timeout_ms)
    }
}

/// Settings of the distributed hash table a worker hosts (`[dht]` in the worker's file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhtSettings {
    /// Address of the Redis-compatible (RESP) port; off when unset. Clients on it are not
    /// authenticated: bind it to loopback or a trusted network only.
    pub resp_listen: Option<SocketAddr>,
    /// Largest key, in bytes.
    pub max_key: usize,
    /// Largest value, in bytes.
    pub max_value: usize,
    /// 0 (default): every write is fsynced before it is acknowledged, so an acknowledged
    /// write survives power loss. N > 0: a write is acknowledged once the OS has it (it
    /// survives kill -9 of any process, and a machine crash as long as a write quorum of
    /// replicas stays up) and the log is fsynced at least every N ms.
    pub fsync_interval_ms: u64,
    /// Deletion tombstones are forgotten this many seconds after the delete (default 7
    /// days; 0 keeps them forever). A worker away for longer must rejoin with an empty
    /// data directory, or values deleted meanwhile can come back with it.
    pub tombstone_grace_s: u64,
    /// Most keys one RESP command may name (`MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`);
    /// more are answered `-ERR`, nothing executed. Default 10 000.
    pub max_keys_per_command: usize,
    /// Largest reply the RESP port builds for one command, in bytes (never less than
    /// `max_value` plus 1 KiB); a larger one is answered `-ERR`. Default 64 MiB.
    pub max_reply_bytes: usize,
    /// Most RESP clients connected at once; one more is answered `-ERR max number of
    /// clients reached` and closed. Default 10 000.
    pub max_clients: usize,
}

impl Default for DhtSettings {
    fn default() -> Self {
        Self {
            resp_listen: None,
            max_key: 64 * 1024,
            max_value: 8 * 1024 * 1024,
            fsync_interval_ms: 0,
            tombstone_grace_s: 7 * 24 * 3600,
            max_keys_per_command: 10_000,
            max_reply_bytes: 64 * 1024 * 1024,
            max_clients: 10_000,
        }
    }
}

/// Configuration of a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Cluster name; must match the coordinator's.
    pub cluster: String,
    /// Stable worker id: a restarted worker with the same id gets its partitions back.
    pub id: String,
    /// QUIC listen address for peers (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address announced to peers, if different from the bound one (e.g. behind NAT).
    pub advertise: Option<String>,
    /// The coordinator's address, `HOST:PORT`.
    pub coordinator: String,
    /// Capacity weight: the worker's share of partitions is proportional to it.
    pub capacity: u32,
    /// Directory for the worker's own data.
    pub data_dir: PathBuf,
    /// Certificates.
    pub tls: TlsConfig,
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// HTTP address serving Prometheus metrics at `/metrics` (TCP; port 0 picks a free
    /// port, written to `data_dir/metrics.addr`); off when unset. Not authenticated.
    pub metrics_listen: Option<SocketAddr>,
    /// The distributed hash table.
    pub dht: DhtSettings,
    /// The stream runtime (`[stream]`).
    pub stream: StreamSettings,
}

/// Settings of the stream runtime a worker hosts (`[stream]` in the worker's file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSettings {
    /// Store checkpoints of stream jobs as files in this directory instead of the DHT.
    /// Every worker must see the same directory (a shared filesystem) for a job to be
    /// restored on other workers than the ones that wrote its parts.
    pub checkpoint_dir: Option<PathBuf>,
    /// Threads the worker runs each job's operators on (unset or 0: one per core). A
    /// chain of operators is one actor; a job's actors share these threads.
    pub threads: Option<usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            cluster: "ringflow".into(),
            id: "worker-1".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            coordinator: "127.0.0.1:7400".into(),
            capacity: 1,
            data_dir: PathBuf::from("data/worker-1"),
            tls: TlsConfig {
                certs_dir: PathBuf::from("certs"),
                name: "worker-1".into(),
            },
            max_frame: ringflow_proto::DEFAULT_MAX_FRAME,
            metrics_listen: None,
            dht: DhtSettings::default(),
            stream: StreamSettings::default(),
        }
    }
}

impl WorkerConfig {
    /// Checks values that serde cannot; the first problem found, as an error.
    pub fn validate(&self) -> Result<(), ClusterError> {
        first_problem(self.problems())
    }

    /// Every value that serde accepts but the worker cannot run with, each with the key
    /// it is about (`ringflow config check` reports them all with their lines).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (key, value) in [
            ("id", &self.id),
            ("cluster", &self.cluster),
            ("tls.name", &self.tls.name),
        ] {
            if let Err(e) = validate_name(key, value) {
                out.push(Problem::from_error(key, e));
            }
        }
        if self.capacity == 0 {
            out.push(Problem::new("capacity", "capacity must be >= 1"));
        }
        if self.stream.threads.is_some_and(|t| t > 1024) {
            out.push(Problem::new(
                "stream.threads",
                "stream.threads must be at most 1024 (0: one per core)",
            ));
        }
        if self.coordinator.trim().is_empty() {
            out.push(Problem::new("coordinator", "coordinator address is empty"));
        } else if !self.coordinator.contains(':') {
            out.push(Problem::new(
                "coordinator",
                format!("coordinator {:?} must be HOST:PORT", self.coordinator),
            ));
        }
        if let Some(a) = &self.advertise {
            if !a.contains(':') {
                out.push(Problem::new(
                    "advertise",
                    format!("advertise {a:?} must be HOST:PORT"),
                ));
            }
        }
        if self.max_frame < 64 * 1024 {
            out.push(Problem::new(
                "max_frame",
                "max_frame must be at least 65536",
            ));
        } else {
            // One key and value, with room for the message around them, must fit in a frame.
            let largest = self.dht.max_key + self.dht.max_value + 1024 * 1024;
            if largest > self.max_frame {
                out.push(Problem::new("dht.max_value", format!(
                    "dht.max_key + dht.max_value + 1 MiB ({largest}) must not exceed max_frame ({})",
                    self.max_frame
                )));
            }
        }
        if self.dht.max_key == 0 {
            out.push(Problem::new("dht.max_key", "dht.max_key must be >= 1"));
        }
        // Both are TCP (the QUIC `listen` port is UDP and may share a number with them).
        if let (Some(m), Some(r)) = (self.metrics_listen, self.dht.resp_listen) {
            if m == r && m.port() != 0 {
                out.push(Problem::new(
                    "dht.resp_listen",
                    format!("metrics_listen and dht.resp_listen are both {m}"),
                ));
            }
        }
        out
    }
}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key it is about, dotted for nested tables (`dht.max_value`).
    pub key: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn from_error(key: &str, e: ClusterError) -> Self {
        let message = match e {
            ClusterError::Config(m) => m,
            other => other.to_string(),
        };
        Self::new(key, message)
    }
}

fn first_problem(problems: Vec<Problem>) -> Result<(), ClusterError> {
    match problems.into_iter().next() {
        Some(p) => Err(ClusterError::Config(p.message)),
        None => Ok(()),
    }
}

/// Ids and names: 1..=128 chars of `[A-Za-z0-9._-]`.
pub fn validate_name(what: &str, s: &str) -> Result<(), ClusterError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Config(format!(
            "{what} {s:?} must be 1 to 128 characters of letters, digits, '.', '_' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CoordinatorConfig::default().validate().unwrap();
        WorkerConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused() {
        let c = CoordinatorConfig {
            partitions: 1000,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = CoordinatorConfig {
            failure_timeout_ms: 100,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let w = WorkerConfig {
            id: "a/b".into(),
            ..Default::default()
        };
        assert!(w.validate().is_err());
        let w = WorkerConfig {
            capacity: 0,
            ..Default::default()
        };
        assert!(w.validate().is_err());
        let same = SocketAddr::from(([127, 0, 0, 1], 9400));
        let w = WorkerConfig {
            metrics_listen: Some(same),
            dht: DhtSettings {
                resp_listen: Some(same),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(w.validate().is_err());
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_read_from_the_file() {
        assert_eq!(WorkerConfig::default().metrics_listen, None);
        assert_eq!(CoordinatorConfig::default().metrics_listen, None);
        let w = toml_like("metrics_listen = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(
            w.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        w.validate().unwrap();
        assert!(toml_like("metrics_listen = \"not an address\"\n").is_err());
    }

    #[test]
    fn toml_with_unknown_key_is_refused() {
        let r: Result<WorkerConfig, _> = toml_like("id = \"w\"\nbogus = 1\n");
        assert!(r.is_err());
    }

    fn toml_like(s: &str) -> Result<WorkerConfig, String> {
        // The crate does not depend on toml; JSON exercises the same serde attributes.
        let mut map = serde_json::Map::new();
        for line in s.lines() {
            let (k, v) = line.split_once('=').ok_or("no =")?;
            let v: serde_json::Value = serde_json::from_str(v.trim()).map_err(|e| e.to_string())?;
            map.insert(k.trim().to_string(), v);
        }
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
    }
}
