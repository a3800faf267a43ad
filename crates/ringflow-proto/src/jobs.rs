//! Stream-job messages: client ↔ coordinator (submit, list, status, cancel) and
//! coordinator ↔ worker (prepare, start, cancel; reports back), plus the first frame of
//! a worker-to-worker data edge.

use std::collections::BTreeMap;

use ringflow_ring::WorkerId;
use serde::{Deserialize, Serialize};

/// Name of the workers' stream service in `Hello.service`: job control streams from the
/// coordinator, data edges between workers and client ports.
pub const STREAM_SERVICE: &str = "stream";

/// Lifecycle of a job, as the coordinator tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Workers are validating the spec and building operators.
    Deploying,
    /// Every worker runs its part.
    Running,
    /// Every instance reached the end of its input.
    Finished,
    /// A worker failed or was lost; see the reason.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// True for states a job never leaves.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Cancelled
        )
    }

    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Deploying => "deploying",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// Counters of one vertex on one worker (summed over workers in [`JobInfo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexStatus {
    /// Vertex name.
    pub name: String,
    /// Instances running it.
    pub instances: u32,
    /// Instances that have finished.
    pub finished: u32,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records waiting in its input queues (backpressure shows here).
    pub queued: u64,
    /// Capacity of its input queues, in records.
    pub queue_capacity: u64,
    /// Lowest watermark among instances (ms since the epoch; i64::MIN when none).
    pub watermark: i64,
    /// Named counters of the operator (`late_dropped`, `parse_errors`, ...).
    pub counters: BTreeMap<String, u64>,
}

impl VertexStatus {
    /// Adds another instance's or worker's counters to these.
    pub fn merge(&mut self, other: &VertexStatus) {
        self.instances = self.instances.saturating_add(other.instances);
        self.finished = self.finished.saturating_add(other.finished);
        self.records_in = self.records_in.saturating_add(other.records_in);
        self.records_out = self.records_out.saturating_add(other.records_out);
        self.queued = self.queued.saturating_add(other.queued);
        self.queue_capacity = self.queue_capacity.saturating_add(other.queue_capacity);
        self.watermark = if self.instances == other.instances {
            other.watermark
        } else {
            self.watermark.min(other.watermark)
        };
        // Counters wrap (checksums are sums modulo 2^64), never panic.
        for (k, v) in &other.counters {
            let c = self.counters.entry(k.clone()).or_default();
            *c = c.wrapping_add(*v);
        }
    }
}

/// A job as `ringflow job status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Name from the spec.
    pub name: String,
    /// Lifecycle state.
    pub state: JobState,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Workers running it, in instance order.
    pub workers: Vec<WorkerId>,
    /// Submission time (ms since the Unix epoch).
    pub submitted_ms: u64,
    /// When it reached a terminal state.
    pub ended_ms: Option<u64>,
    /// Per-vertex counters summed over workers.
    pub vertices: Vec<VertexStatus>,
    /// Checkpoints of the job (none when its spec has no `checkpoint_interval_ms`).
    #[serde(default)]
    pub checkpoints: CheckpointStats,
    /// Times the job was restarted after a failure (from its last checkpoint).
    #[serde(default)]
    pub restarts: u32,
    /// The checkpoint the current run was restored from, if any.
    #[serde(default)]
    pub restored_from: Option<u64>,
    /// The savepoint the job was submitted from, if any.
    #[serde(default)]
    pub from_savepoint: Option<String>,
    /// What a failure costs this job's output: `exactly-once`, `at-least-once (...)`
    /// naming the sinks and sources that make it so, or `none` without checkpoints.
    #[serde(default)]
    pub guarantee: String,
    /// Times the job was moved to a new membership (`job rescale`, or `rescale = "auto"`).
    #[serde(default)]
    pub rescales: u32,
    /// How long the last rescale paused the job: from its stop checkpoint's start to the
    /// new deployment running (ms).
    #[serde(default)]
    pub last_rescale_pause_ms: Option<u64>,
}

/// A checkpoint taken on demand and kept until it is deleted (`ringflow job savepoint`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointInfo {
    /// Its id (`sp-...`), for `job submit --from-savepoint`.
    pub id: String,
    /// The job it was taken of.
    pub job: String,
    /// That job's name.
    pub job_name: String,
    /// The vertices whose instances stored state in it, with their operator (`op`): a
    /// spec started from it must have each of them under the same name and operator.
    pub stateful: Vec<(String, String)>,
    /// The checkpoint itself.
    pub checkpoint: CompletedCheckpoint,
}

/// What a job's checkpoints came to, for `ringflow job status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints that failed or timed out.
    pub failed: u64,
    /// The last completed one.
    pub last: Option<CompletedCheckpoint>,
    /// The checkpoint in progress: its number and when it started (ms since the Unix
    /// epoch).
    #[serde(default)]
    pub in_progress: Option<(u64, u64)>,
}

/// A completed checkpoint: every instance's part is durable and recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    /// Its number.
    pub id: u64,
    /// When it completed (ms since the Unix epoch).
    pub completed_ms: u64,
    /// Bytes of state in all its parts.
    pub size_bytes: u64,
    /// From the barriers' injection to the last part stored (ms).
    pub duration_ms: u64,
    /// The longest barrier alignment of any instance (ms).
    pub alignment_ms: u64,
    /// Where its parts are: one per instance that was running.
    pub parts: Vec<CheckpointPart>,
}

/// One instance's stored snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPart {
    /// The vertex.
    pub vertex: String,
    /// The instance.
    pub instance: u32,
    /// Key prefix of its chunks in the checkpoint store (`PREFIX/0`, `PREFIX/1`, ...).
    pub key: String,
    /// Number of chunks.
    pub chunks: u32,
    /// Bytes of the snapshot.
    pub bytes: u64,
    /// xxh3 of the snapshot's bytes: a corrupt part is never restored.
    pub checksum: u64,
    /// Whether the instance had state to restore (keyed state, timers, operator state
    /// or a source position); stateless instances store an empty part.
    #[serde(default)]
    pub stateful: bool,
}

/// A worker taking part in a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobWorker {
    /// Worker id.
    pub id: WorkerId,
    /// Its QUIC address.
    pub addr: String,
}

/// Coordinator → worker: validate and build your part of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPrepare {
    /// Job id.
    pub job: String,
    /// The spec as JSON.
    pub spec_json: String,
    /// Workers of the job; instance `i` of every vertex runs on `workers[i]`.
    pub workers: Vec<JobWorker>,
    /// This worker's index in `workers`.
    pub index: u32,
    /// The ring's partition count.
    pub partitions: u32,
    /// Epoch of the assignment the routing was taken from.
    pub epoch: u64,
    /// For each partition, the index in `workers` of the instance that serves its keys.
    pub owners: Vec<u32>,
    /// Restore every instance from this checkpoint before it starts (a job restarted
    /// after a failure).
    #[serde(default)]
    pub restore: Option<RestoreFrom>,
}

/// The checkpoint a redeployed job starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreFrom {
    /// Its number.
    pub checkpoint: u64,
    /// Every instance's part of it.
    pub parts: Vec<CheckpointPart>,
}

/// First frame of a stream opened to a worker's `stream` service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamOpen {
    /// From the coordinator: the control stream of one job on this worker.
    Control(JobPrepare),
    /// From a worker: a data edge of a job.
    Edge(EdgeOpen),
    /// From a client: records for a `source.client` instance (data frames follow).
    Push(ClientPort),
    /// From a client: read a `sink.client` instance's records (data frames come back).
    Pull(ClientPort),
}

/// A client port of a job: which vertex instance a client feeds or reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientPort {
    /// Job id.
    pub job: String,
    /// Vertex name.
    pub vertex: String,
    /// Instance index (= the worker's index in the job).
    pub instance: u32,
}

/// Which edge a data stream carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeOpen {
    /// Job id.
    pub job: String,
    /// Edge id in the job plan.
    pub edge: u32,
    /// Sending instance index.
    pub sender: u32,
    /// Receiving instance index.
    pub receiver: u32,
}

/// Coordinator → worker, after [`StreamOpen::Control`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobControl {
    /// Every worker is prepared: connect the edges and run.
    Start,
    /// Stop the job and drop its state.
    Cancel {
        /// Why.
        reason: String,
    },
    /// Start checkpoint `id`: inject its barrier at every local source.
    Checkpoint {
        /// The checkpoint.
        id: u64,
    },
    /// Delete these parts of checkpoints the job no longer needs from the checkpoint
    /// store (garbage collection; sent to one worker of the job).
    Discard {
        /// The parts.
        parts: Vec<CheckpointPart>,
    },
}

/// Worker → coordinator on a job's control stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobReport {
    /// The spec is valid here and operators are built.
    Prepared,
    /// The spec was refused (the message names the vertex).
    Refused {
        /// Why.
        error: String,
    },
    /// Counters, sent periodically while running.
    Progress {
        /// Per-vertex counters of this worker.
        vertices: Vec<VertexStatus>,
    },
    /// Every local instance finished and every edge was flushed.
    Finished {
        /// Final counters.
        vertices: Vec<VertexStatus>,
    },
    /// Something failed here.
    Failed {
        /// Why.
        reason: String,
    },
    /// Every local instance that still runs stored its part of checkpoint `id`.
    Checkpointed {
        /// The checkpoint.
        id: u64,
        /// The stored parts.
        parts: Vec<CheckpointPart>,
        /// The longest alignment of a local instance (ms).
        alignment_ms: u64,
    },
    /// This worker could not store its part of checkpoint `id` (the job goes on).
    CheckpointFailed {
        /// The checkpoint.
        id: u64,
        /// Why.
        reason: String,
    },
}

/// Client → coordinator: submit a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSubmit {
    /// The spec as JSON.
    pub spec_json: String,
    /// Start from this savepoint's state (`job submit --from-savepoint`).
    #[serde(default)]
    pub from_savepoint: Option<String>,
}
