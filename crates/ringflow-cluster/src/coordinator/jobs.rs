//! The coordinator's job manager: deploys stream jobs to workers (prepare everywhere,
//! then start), follows their reports, takes their checkpoints and savepoints, restarts
//! them from their last checkpoint when a worker is lost, moves them to a new membership
//! (rescale), and cancels.
//!
//! Lifecycle of a job: Deploying → Running → Finished | Failed | Cancelled; a running
//! job goes through *restarting* (cancelled everywhere, redeployed from a checkpoint as
//! deployment `ID-rN`) after a failure, a rescale or a coordinator restart. Jobs, their
//! retained checkpoints and the savepoints are persisted in `jobs.json` in the
//! coordinator's data directory before they count: a checkpoint is complete only once
//! every part is durable in the checkpoint store *and* it is recorded there. A restarted
//! coordinator redeploys every job that was running from its last checkpoint.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringflow_net::{Endpoint, FramedRecv, FramedSend};
use ringflow_proto::{
    CheckpointPart, ClusterView, CompletedCheckpoint, JobControl, JobInfo, JobPrepare, JobReport,
    JobState, JobWorker, PeerRole, RestoreFrom, SavepointInfo, StreamOpen, VertexStatus,
};
use ringflow_ring::{PartitionId, WorkerId};
use ringflow_stream::{JobSpec, RescaleMode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::now_ms;
use crate::config::JobDefaults;
use crate::net::open_service_stream;
use crate::persist::{read_json, write_json};
use crate::ClusterError;
use ringflow_proto::STREAM_SERVICE;

/// Longest wait for a worker to prepare its part of a job.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most jobs kept (oldest terminal jobs are forgotten first).
const MAX_JOBS: usize = 1000;

/// Longest a savepoint or rescale request waits for its checkpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a restart waits for the replaced deployment's live workers to stop it.
const STOP_WAIT: Duration = Duration::from_secs(12);

/// After a coordinator restart, longest a job waits for its workers to come back
/// before it is redeployed on whichever are live.
const RECOVERY_WAIT: Duration = Duration::from_secs(20);

/// The file in the coordinator's data directory.
pub(crate) const JOBS_FILE: &str = "jobs.json";

/// Someone waiting for the checkpoint in progress.
enum Waiter {
    /// `job savepoint`: keep the checkpoint as a savepoint (and stop the job).
    Savepoint {
        stop: bool,
        reply: oneshot::Sender<Result<SavepointInfo, String>>,
    },
    /// A rescale: restart from the checkpoint on the current membership.
    Rescale {
        reply: Option<oneshot::Sender<Result<JobInfo, String>>>,
    },
}

impl Waiter {
    fn fail(self, why: &str) {
        match self {
            Waiter::Savepoint { reply, .. } => {
                let _ = reply.send(Err(why.to_owned()));
            }
            Waiter::Rescale { reply } => {
                if let Some(r) = reply {
                    let _ = r.send(Err(why.to_owned()));
                }
            }
        }
    }
}

/// A checkpoint the coordinator started and waits for.
struct InFlight {
    id: u64,
    started_ms: u64,
    /// Per worker: its stored parts and longest alignment, once it reported.
    acks: Vec<Option<(Vec<CheckpointPart>, u64)>>,
    waiters: Vec<Waiter>,
}

/// Why a job is redeployed.
enum Restart {
    /// A worker was lost or failed (counts against `restart_attempts`, waits the backoff).
    Failure(String),
    /// Moved to the current membership.
    Rescale(Option<oneshot::Sender<Result<JobInfo, String>>>),
    /// The coordinator restarted.
    Recovery,
}

struct JobRecord {
    info: JobInfo,
    /// The spec (kept to redeploy it), with the cluster defaults applied.
    spec: JobSpec,
    /// Which deployment of the job runs now (0, then one more per restart); reports of an
    /// older one are ignored.
    attempt: u32,
    /// The last completed checkpoints, newest last (a restart tries the newest first).
    retained: VecDeque<CompletedCheckpoint>,
    /// The checkpoint in progress, if any (one at a time).
    in_flight: Option<InFlight>,
    /// The number of the next checkpoint.
    next_checkpoint: u64,
    /// Counters last reported by each worker.
    per_worker: Vec<Vec<VertexStatus>>,
    finished: Vec<bool>,
    controls: Vec<mpsc::UnboundedSender<JobControl>>,
    vertex_names: Vec<String>,
    /// Workers whose control stream (of any deployment) is still open.
    open: Rc<RefCell<Vec<WorkerId>>>,
    /// A rescale was asked for and is not done.
    rescaling: bool,
}

/// What `jobs.json` holds.
#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    counter: u64,
    jobs: Vec<PersistedJob>,
    savepoints: Vec<SavepointInfo>,
}

#[derive(Serialize, Deserialize)]
struct PersistedJob {
    info: JobInfo,
    spec: JobSpec,
    attempt: u32,
    retained: Vec<CompletedCheckpoint>,
    next_checkpoint: u64,
}

impl JobRecord {
    fn new(info: JobInfo, spec: JobSpec, attempt: u32) -> Self {
        let n = info.workers.len();
        JobRecord {
            vertex_names: spec.vertices.iter().map(|v| v.name.clone()).collect(),
            info,
            spec,
            attempt,
            retained: VecDeque::new(),
            in_flight: None,
            next_checkpoint: 1,
            per_worker: vec![Vec::new(); n],
            finished: vec![false; n],
            controls: Vec::new(),
            open: Rc::default(),
            rescaling: false,
        }
    }

    fn refresh(&mut self) {
        let mut merged: Vec<VertexStatus> = self
            .vertex_names
            .iter()
            .map(|n| VertexStatus {
                name: n.clone(),
                watermark: i64::MIN,
                ..VertexStatus::default()
            })
            .collect();
        for w in &self.per_worker {
            for s in w {
                if let Some(m) = merged.iter_mut().find(|m| m.name == s.name) {
                    m.merge(s);
                }
            }
        }
        self.info.vertices = merged;
    }

    /// Starts the next checkpoint at every worker's sources, unless one is in progress;
    /// one that is older than `timeout_ms` counts as failed first.
    fn trigger_checkpoint(&mut self, now: u64, timeout_ms: u64) {
        if self.controls.is_empty() {
            // Being redeployed.
            return;
        }
        if self.finished.iter().any(|f| *f) {
            // Draining: a worker that finished takes part in no checkpoint any more, so
            // one now would miss its sources' positions. A failure from here restores
            // the last checkpoint before the drain.
            return;
        }
        if let Some(f) = &self.in_flight {
            if now.saturating_sub(f.started_ms) < timeout_ms {
                return;
            }
            tracing::warn!(job = %self.info.id, checkpoint = f.id, "checkpoint timed out");
            self.info.checkpoints.failed += 1;
            crate::metrics::checkpoint_metric(&self.info.id, None);
            self.abandon_in_flight("the checkpoint timed out");
        }
        let id = self.next_checkpoint;
        self.next_checkpoint += 1;
        let acks = vec![None; self.finished.len()];
        self.in_flight = Some(InFlight {
            id,
            started_ms: now,
            acks,
            waiters: Vec::new(),
        });
        for c in &self.controls {
            let _ = c.send(JobControl::Checkpoint { id });
        }
    }

    /// `w` waits for the checkpoint in progress, or for one started now.
    fn request_checkpoint(&mut self, w: Waiter) {
        if self.controls.is_empty() {
            w.fail("the job is being redeployed: try again in a moment");
            return;
        }
        if self.in_flight.is_none() {
            self.trigger_checkpoint(now_ms(), u64::MAX);
        }
        match self.in_flight.as_mut() {
            Some(f) => f.waiters.push(w),
            None if self.finished.iter().any(|f| *f) => {
                w.fail("the job is finishing (a worker's part is done): no checkpoint any more")
            }
            None => w.fail("no checkpoint could be started"),
        }
    }

    /// Worker `i` stored its part of checkpoint `id` (or has nothing left to store);
    /// the checkpoint and its waiters once every worker has.
    fn checkpoint_ack(
        &mut self,
        i: usize,
        id: u64,
        parts: Vec<CheckpointPart>,
        alignment: u64,
    ) -> Option<(CompletedCheckpoint, Vec<Waiter>)> {
        let f = self.in_flight.as_mut().filter(|f| f.id == id)?;
        if let Some(slot) = f.acks.get_mut(i) {
            *slot = Some((parts, alignment));
        }
        if !f.acks.iter().all(Option::is_some) {
            return None;
        }
        let now = now_ms();
        let f = self.in_flight.take()?;
        let mut done = CompletedCheckpoint {
            id,
            completed_ms: now,
            duration_ms: now.saturating_sub(f.started_ms),
            ..CompletedCheckpoint::default()
        };
        for (parts, alignment) in f.acks.into_iter().flatten() {
            done.alignment_ms = done.alignment_ms.max(alignment);
            done.size_bytes += parts.iter().map(|p| p.bytes).sum::<u64>();
            done.parts.extend(parts);
        }
        Some((done, f.waiters))
    }

    /// Worker `i` could not store its part of checkpoint `id`.
    fn checkpoint_failed(&mut self, i: usize, id: u64, reason: &str) {
        if self.in_flight.as_ref().is_some_and(|f| f.id == id) {
            tracing::warn!(job = %self.info.id, checkpoint = id, worker = i, %reason, "checkpoint failed");
            self.info.checkpoints.failed += 1;
            crate::metrics::checkpoint_metric(&self.info.id, None);
            self.abandon_in_flight(&format!("the checkpoint failed: {reason}"));
        }
    }

    /// Gives up the checkpoint in progress: its waiters fail, and the parts workers
    /// already stored are deleted (through the first worker, before anything else it is
    /// sent). A worker's part stored but not yet reported stays behind.
    fn abandon_in_flight(&mut self, why: &str) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        for w in f.waiters {
            w.fail(why);
        }
        let parts: Vec<CheckpointPart> =
            f.acks.into_iter().flatten().flat_map(|(p, _)| p).collect();
        if let (false, Some(c)) = (parts.is_empty(), self.controls.first()) {
            let _ = c.send(JobControl::Discard { parts });
        }
    }

    /// Cancels the running deployment (its workers stop it); in-flight waiters fail.
    fn cancel_deployment(&mut self, reason: &str) {
        self.abandon_in_flight(reason);
        for c in self.controls.drain(..) {
            let _ = c.send(JobControl::Cancel {
                reason: reason.to_owned(),
            });
        }
    }

    fn end(&mut self, state: JobState, reason: Option<String>) {
        if self.info.state.is_terminal() {
            return;
        }
        self.info.state = state;
        self.info.reason = reason.clone();
        self.info.ended_ms = Some(now_ms());
        self.rescaling = false;
        let r = reason.unwrap_or_else(|| state.as_str().to_owned());
        self.cancel_deployment(&r);
    }

    /// The job's info with the checkpoint in progress.
    fn shown(&self) -> JobInfo {
        let mut info = self.info.clone();
        info.checkpoints.in_progress = self.in_flight.as_ref().map(|f| (f.id, f.started_ms));
        info
    }

    fn persisted(&self) -> PersistedJob {
        PersistedJob {
            info: self.info.clone(),
            spec: self.spec.clone(),
            attempt: self.attempt,
            retained: self.retained.iter().cloned().collect(),
            next_checkpoint: self.next_checkpoint,
        }
    }
}

/// What a failure costs the output of `spec` (shown by `job status`).
fn guarantee(spec: &JobSpec) -> String {
    if spec.settings.checkpoint_interval() == 0 {
        return "none: no checkpoints, a failure fails the job".into();
    }
    let named = |ops: &[&str]| -> Vec<String> {
        spec.vertices
            .iter()
            .filter(|v| ops.contains(&v.operator.as_str()))
            .map(|v| format!("{} ({})", v.name, v.operator))
            .collect()
    };
    let lossy = named(&["source.tcp", "source.client"]);
    let repeating = named(&["sink.stdout", "sink.tcp", "sink.client"]);
    match (lossy.is_empty(), repeating.is_empty()) {
        (true, true) => "exactly-once".into(),
        (true, false) => format!(
            "at-least-once: {} may write again what came after the last checkpoint",
            repeating.join(", ")
        ),
        (false, _) => format!(
            "at-most-once: {} cannot replay what came after the last checkpoint",
            lossy.join(", ")
        ),
    }
}

/// The vertices with state in `cp`, with their operators.
fn stateful_vertices(spec: &JobSpec, cp: &CompletedCheckpoint) -> Vec<(String, String)> {
    let names: BTreeSet<&str> = cp
        .parts
        .iter()
        .filter(|p| p.stateful)
        .map(|p| p.vertex.as_str())
        .collect();
    spec.vertices
        .iter()
        .filter(|v| names.contains(v.name.as_str()))
        .map(|v| (v.name.clone(), v.operator.clone()))
        .collect()
}

/// Refuses to start `spec` from `sp` unless every vertex with state in it is in the spec
/// under the same name and operator.
fn check_savepoint(spec: &JobSpec, sp: &SavepointInfo) -> Result<(), String> {
    for (name, op) in &sp.stateful {
        match spec.vertices.iter().find(|v| &v.name == name) {
            Some(v) if &v.operator == op => {}
            Some(v) => {
                return Err(format!(
                    "savepoint {} holds the state of vertex '{name}' ({op}), but the spec's \
                     '{name}' is {}: a job started from a savepoint must keep the names and \
                     operators of its stateful vertices",
                    sp.id, v.operator
                ))
            }
            None => {
                return Err(format!(
                    "savepoint {} holds the state of vertex '{name}' ({op}), which the spec \
                     does not have: a job started from a savepoint must keep the names and \
                     operators of its stateful vertices",
                    sp.id
                ))
            }
        }
    }
    Ok(())
}

/// Deploys and tracks jobs. Lives on the coordinator's network Arbiter.
pub(crate) struct JobManager {
    endpoint: Endpoint,
    name: String,
    cluster: String,
    views: watch::Receiver<Arc<ClusterView>>,
    jobs: RefCell<BTreeMap<String, Rc<RefCell<JobRecord>>>>,
    savepoints: RefCell<BTreeMap<String, SavepointInfo>>,
    counter: Cell<u64>,
    /// `jobs.json`; none in tests that persist nothing.
    file: Option<PathBuf>,
    defaults: JobDefaults,
}

impl JobManager {
    /// The job manager, with the jobs and savepoints persisted in `data_dir` (jobs that
    /// were running are redeployed from their last checkpoint).
    pub fn new(
        endpoint: Endpoint,
        name: String,
        cluster: String,
        views: watch::Receiver<Arc<ClusterView>>,
        data_dir: Option<PathBuf>,
        defaults: JobDefaults,
    ) -> Result<Rc<Self>, ClusterError> {
        let file = data_dir.map(|d| d.join(JOBS_FILE));
        let persisted: Persisted = match &file {
            Some(f) => read_json(f)?.unwrap_or_default(),
            None => Persisted::default(),
        };
        let jm = Rc::new(JobManager {
            endpoint,
            name,
            cluster,
            views,
            jobs: RefCell::new(BTreeMap::new()),
            savepoints: RefCell::new(
                persisted
                    .savepoints
                    .into_iter()
                    .map(|s| (s.id.clone(), s))
                    .collect(),
            ),
            counter: Cell::new(persisted.counter),
            file,
            defaults,
        });
        let mut resume = Vec::new();
        for p in persisted.jobs {
            let running = !p.info.state.is_terminal();
            let mut rec = JobRecord::new(p.info, p.spec, p.attempt);
            rec.retained = p.retained.into();
            rec.next_checkpoint = p.next_checkpoint;
            rec.refresh();
            let rec = Rc::new(RefCell::new(rec));
            if running {
                resume.push(rec.clone());
            }
            let id = rec.borrow().info.id.clone();
            jm.jobs.borrow_mut().insert(id, rec);
        }
        if !resume.is_empty() {
            tracing::info!(jobs = resume.len(), "recovering the jobs that were running");
        }
        for rec in resume {
            actix_rt::spawn(jm.clone().resume(rec));
        }
        let weak = Rc::downgrade(&jm);
        let mut views = jm.views.clone();
        actix_rt::spawn(async move {
            while views.changed().await.is_ok() {
                let view = views.borrow_and_update().clone();
                let Some(jm) = weak.upgrade() else { return };
                jm.on_view(&view);
            }
        });
        Ok(jm)
    }

    /// Writes `jobs.json`; false (logged) if it could not.
    fn persist(&self) -> bool {
        let Some(file) = &self.file else {
            return true;
        };
        let p = Persisted {
            counter: self.counter.get(),
            jobs: self
                .jobs
                .borrow()
                .values()
                .map(|r| r.borrow().persisted())
                .collect(),
            savepoints: self.savepoints.borrow().values().cloned().collect(),
        };
        match write_json(file, &p) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not persist the jobs");
                false
            }
        }
    }

    /// A job that ran when the coordinator stopped: once its workers are back (or after
    /// [`RECOVERY_WAIT`]), redeployed from its last checkpoint, or failed if it takes
    /// none.
    async fn resume(self: Rc<Self>, rec: Rc<RefCell<JobRecord>>) {
        let workers = rec.borrow().info.workers.clone();
        let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
        let mut views = self.views.clone();
        loop {
            let all_back = {
                let v = views.borrow_and_update();
                workers.iter().all(|w| v.has_peer(w))
            };
            if all_back {
                break;
            }
            if tokio::time::timeout_at(deadline, views.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        let interval = rec.borrow().spec.settings.checkpoint_interval();
        if interval == 0 {
            self.finish_job(
                &rec,
                JobState::Failed,
                Some(
                    "the coordinator restarted, and the job takes no checkpoints to recover from"
                        .into(),
                ),
            );
            return;
        }
        actix_rt::spawn(checkpoint_timer(rec.clone(), interval));
        self.restart(&rec, Restart::Recovery);
    }

    /// Restarts (or fails) running jobs that lost a worker; rescales `auto` jobs whose
    /// membership changed.
    fn on_view(self: &Rc<Self>, view: &ClusterView) {
        let mut lost_ones = Vec::new();
        for rec in self.jobs.borrow().values() {
            let mut r = rec.borrow_mut();
            if r.info.state.is_terminal() || r.controls.is_empty() {
                continue;
            }
            let lost = r
                .info
                .workers
                .iter()
                .enumerate()
                .find(|(i, w)| !r.finished.get(*i).copied().unwrap_or(false) && !view.has_peer(w))
                .map(|(_, w)| w.clone());
            if let Some(w) = lost {
                tracing::warn!(job = %r.info.id, worker = %w, "job lost a worker");
                lost_ones.push((
                    rec.clone(),
                    r.attempt,
                    format!("worker {w} left the cluster (dead or leaving) while the job ran"),
                ));
                continue;
            }
            let auto = r.spec.settings.rescale == RescaleMode::Auto
                && r.spec.settings.checkpoint_interval() > 0;
            let joined = view.peers.iter().any(|p| !r.info.workers.contains(&p.id));
            if auto && joined && !r.rescaling && !r.finished.iter().any(|f| *f) {
                tracing::info!(job = %r.info.id, "a worker joined: rescaling the job");
                r.rescaling = true;
                r.request_checkpoint(Waiter::Rescale { reply: None });
            }
        }
        for (rec, attempt, reason) in lost_ones {
            self.fail_or_restart(&rec, attempt, reason);
        }
    }

    /// A failure of deployment `attempt` of a job: a checkpointed job with restarts left
    /// is cancelled everywhere and redeployed on the live workers from its last
    /// checkpoint after its backoff; any other fails. Failures of an older deployment
    /// than the current one are ignored (they are echoes of the one being handled).
    fn fail_or_restart(
        self: &Rc<Self>,
        rec: &Rc<RefCell<JobRecord>>,
        attempt: u32,
        reason: String,
    ) {
        {
            let r = rec.borrow_mut();
            if r.attempt != attempt || r.info.state.is_terminal() {
                return;
            }
            let s = r.spec.settings.clone();
            let checkpointed = s.checkpoint_interval() > 0;
            if !checkpointed || r.info.restarts >= s.restart_attempts {
                let reason = if checkpointed {
                    format!("{reason} (after {} restarts)", r.info.restarts)
                } else {
                    reason
                };
                tracing::warn!(job = %r.info.id, %reason, "job failed");
                drop(r);
                self.finish_job(rec, JobState::Failed, Some(reason));
                return;
            }
        }
        self.restart(rec, Restart::Failure(reason));
    }

    /// Cancels the running deployment and redeploys the job on the live workers from
    /// its newest readable checkpoint (after the backoff, for a failure), once the live
    /// workers of the old deployment have stopped it.
    fn restart(self: &Rc<Self>, rec: &Rc<RefCell<JobRecord>>, why: Restart) {
        let mut r = rec.borrow_mut();
        r.attempt += 1;
        let backoff = match &why {
            Restart::Failure(reason) => {
                r.info.restarts += 1;
                r.info.reason = Some(format!("restarted after: {reason}"));
                tracing::warn!(job = %r.info.id, %reason, restart = r.info.restarts, "restarting the job from its last checkpoint");
                r.cancel_deployment(&format!("restarting: {reason}"));
                Duration::from_millis(r.spec.settings.restart_backoff_ms)
            }
            Restart::Rescale(_) => {
                tracing::info!(job = %r.info.id, "rescaling: stopping the job");
                r.cancel_deployment("rescaling");
                Duration::ZERO
            }
            Restart::Recovery => Duration::ZERO,
        };
        if !matches!(why, Restart::Rescale(_)) {
            // A rescale that was waiting for a checkpoint was abandoned with it.
            r.rescaling = false;
        }
        let next = r.attempt;
        let open = r.open.clone();
        drop(r);
        // The deployment number is recorded before it is used: a coordinator restarted
        // after this point never deploys the same number again.
        self.persist();
        let started = tokio::time::Instant::now();
        let (jm, rec) = (self.clone(), rec.clone());
        actix_rt::spawn(async move {
            tokio::time::sleep(backoff).await;
            // The old deployment must be stopped where it still runs before its state is
            // restored (a sink still writing would race the restored one).
            let deadline = started + backoff.max(STOP_WAIT);
            loop {
                let running = {
                    let view = jm.views.borrow();
                    open.borrow().iter().any(|w| view.has_peer(w))
                };
                if !running || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            jm.redeploy(rec, next, why, started).await;
        });
    }

    /// Deploys a restarted job from its newest readable checkpoint (from the start if it
    /// completed none).
    async fn redeploy(
        self: Rc<Self>,
        rec: Rc<RefCell<JobRecord>>,
        attempt: u32,
        why: Restart,
        stopped: tokio::time::Instant,
    ) {
        let (spec, id, mut candidates) = {
            let r = rec.borrow();
            let c: Vec<Option<CompletedCheckpoint>> = if r.retained.is_empty() {
                vec![None]
            } else {
                r.retained.iter().rev().cloned().map(Some).collect()
            };
            (r.spec.clone(), r.info.id.clone(), c.into_iter())
        };
        let mut last = String::new();
        for (k, from) in candidates.by_ref().enumerate() {
            // Each try is a deployment of its own: workers of a refused one may still be
            // dropping it when the next is prepared.
            let deployment = match k {
                0 => format!("{id}-r{attempt}"),
                k => format!("{id}-r{attempt}-{k}"),
            };
            let restore = from.as_ref().map(|c| RestoreFrom {
                checkpoint: c.id,
                parts: c.parts.clone(),
            });
            match self.deploy(&spec, &deployment, restore).await {
                Ok((workers, streams)) => {
                    let info = {
                        let mut r = rec.borrow_mut();
                        if r.attempt != attempt || r.info.state.is_terminal() {
                            return;
                        }
                        r.info.workers = workers.iter().map(|w| w.id.clone()).collect();
                        r.per_worker = vec![Vec::new(); workers.len()];
                        r.finished = vec![false; workers.len()];
                        r.info.restored_from = from.as_ref().map(|c| c.id);
                        r.info.state = JobState::Running;
                        if let Restart::Rescale(_) = &why {
                            r.info.rescales += 1;
                            r.info.last_rescale_pause_ms =
                                Some(stopped.elapsed().as_millis() as u64);
                            r.rescaling = false;
                        }
                        r.refresh();
                        r.info.clone()
                    };
                    tracing::info!(job = %id, attempt, from = ?from.as_ref().map(|c| c.id), workers = workers.len(), pause_ms = stopped.elapsed().as_millis() as u64, "job redeployed");
                    self.launch(&rec, attempt, streams);
                    self.persist();
                    if let Restart::Rescale(Some(reply)) = why {
                        let _ = reply.send(Ok(info));
                    }
                    return;
                }
                Err(e) => {
                    // A part that cannot be read: try the checkpoint before it.
                    let unreadable = e.contains("corrupt") || e.contains("missing");
                    tracing::warn!(job = %id, error = %e, "redeploying failed");
                    last = e;
                    if !unreadable {
                        break;
                    }
                }
            }
        }
        if let Restart::Rescale(Some(reply)) = why {
            let _ = reply.send(Err(format!("redeploying: {last}")));
        }
        rec.borrow_mut().rescaling = false;
        self.fail_or_restart(&rec, attempt, format!("redeploying: {last}"));
    }

    /// A checkpoint of `rec` is complete on every worker: recorded durably, older ones
    /// beyond the retained count deleted, and its waiters served.
    fn completed(
        self: &Rc<Self>,
        rec: &Rc<RefCell<JobRecord>>,
        done: CompletedCheckpoint,
        waiters: Vec<Waiter>,
    ) {
        let keep = self.defaults.checkpoints_retained.max(1);
        let (job, job_name, dropped) = {
            let mut r = rec.borrow_mut();
            r.retained.push_back(done.clone());
            let mut dropped = Vec::new();
            while r.retained.len() > keep {
                dropped.extend(r.retained.pop_front());
            }
            (r.info.id.clone(), r.info.name.clone(), dropped)
        };
        let mut saves = Vec::new();
        let mut rescale = None;
        for w in waiters {
            match w {
                Waiter::Savepoint { stop, reply } => {
                    let sp = SavepointInfo {
                        id: format!("sp-{job}-{}", done.id),
                        job: job.clone(),
                        job_name: job_name.clone(),
                        stateful: stateful_vertices(&rec.borrow().spec, &done),
                        checkpoint: done.clone(),
                    };
                    self.savepoints
                        .borrow_mut()
                        .insert(sp.id.clone(), sp.clone());
                    saves.push((sp, stop, reply));
                }
                Waiter::Rescale { reply } => rescale = Some(reply),
            }
        }
        if !self.persist() {
            // Not recorded: it does not count (the parts stay until the job ends).
            let mut r = rec.borrow_mut();
            r.retained.pop_back();
            r.info.checkpoints.failed += 1;
            for (sp, _, reply) in saves {
                self.savepoints.borrow_mut().remove(&sp.id);
                let _ = reply.send(Err("the coordinator could not record the savepoint".into()));
            }
            r.rescaling = false;
            return;
        }
        {
            let mut r = rec.borrow_mut();
            tracing::debug!(job = %r.info.id, checkpoint = done.id, bytes = done.size_bytes, "checkpoint completed");
            r.info.checkpoints.completed += 1;
            crate::metrics::checkpoint_metric(&r.info.id, Some(&done));
            r.info.checkpoints.last = Some(done);
        }
        self.discard(rec, dropped);
        for (sp, stop, reply) in saves {
            tracing::info!(job = %job, savepoint = %sp.id, "savepoint taken");
            if stop {
                self.finish_job(
                    rec,
                    JobState::Cancelled,
                    Some(format!("stopped with savepoint {}", sp.id)),
                );
            }
            let _ = reply.send(Ok(sp));
        }
        if let Some(reply) = rescale {
            if rec.borrow().info.state.is_terminal() {
                if let Some(r) = reply {
                    let _ = r.send(Err("the job ended".into()));
                }
            } else {
                self.restart(rec, Restart::Rescale(reply));
            }
        }
    }

    /// The store keys that savepoints hold (never deleted with a job's checkpoints).
    fn kept_keys(&self) -> BTreeSet<String> {
        self.savepoints
            .borrow()
            .values()
            .flat_map(|s| s.checkpoint.parts.iter().map(|p| p.key.clone()))
            .collect()
    }

    /// Deletes the parts of `dropped` checkpoints from the store (through the first
    /// worker of the job), except those a savepoint keeps.
    fn discard(&self, rec: &Rc<RefCell<JobRecord>>, dropped: Vec<CompletedCheckpoint>) {
        let kept = self.kept_keys();
        let parts: Vec<CheckpointPart> = dropped
            .into_iter()
            .flat_map(|c| c.parts)
            .filter(|p| !kept.contains(&p.key))
            .collect();
        if parts.is_empty() {
            return;
        }
        let r = rec.borrow();
        match r.controls.first() {
            Some(c) => {
                let _ = c.send(JobControl::Discard { parts });
            }
            None => {
                tracing::warn!(job = %r.info.id, parts = parts.len(), "no worker to delete old checkpoint parts through: they stay in the store")
            }
        }
    }

    /// Ends a job: its retained checkpoints are deleted (asked of a worker before the
    /// cancel), and the end is persisted.
    fn finish_job(&self, rec: &Rc<RefCell<JobRecord>>, state: JobState, reason: Option<String>) {
        if rec.borrow().info.state.is_terminal() {
            return;
        }
        let dropped: Vec<CompletedCheckpoint> = rec.borrow_mut().retained.drain(..).collect();
        tracing::info!(job = %rec.borrow().info.id, checkpoints = dropped.len(), state = state.as_str(), "job ended: deleting its checkpoints");
        self.discard(rec, dropped);
        rec.borrow_mut().end(state, reason);
        self.persist();
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        self.jobs
            .borrow()
            .values()
            .map(|r| r.borrow().shown())
            .collect()
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.jobs.borrow().get(id).map(|r| r.borrow().shown())
    }

    /// Cancels a job; returns its info, or `None` when unknown.
    pub fn cancel(&self, id: &str) -> Option<JobInfo> {
        let rec = self.jobs.borrow().get(id).cloned()?;
        self.finish_job(
            &rec,
            JobState::Cancelled,
            Some("cancelled by a user".into()),
        );
        let info = rec.borrow().info.clone();
        Some(info)
    }

    /// Every savepoint, oldest job first.
    pub fn savepoints(&self) -> Vec<SavepointInfo> {
        self.savepoints.borrow().values().cloned().collect()
    }

    /// Deletes a savepoint: forgotten, and its parts deleted from the store through a
    /// worker of a running job if there is one (else they stay in the store).
    pub fn delete_savepoint(&self, id: &str) -> Result<Vec<SavepointInfo>, String> {
        let sp = self
            .savepoints
            .borrow_mut()
            .remove(id)
            .ok_or_else(|| format!("no savepoint {id}"))?;
        if !self.persist() {
            self.savepoints.borrow_mut().insert(sp.id.clone(), sp);
            return Err("the coordinator could not record the deletion".into());
        }
        // Parts a job still retains (it was restored from the savepoint) stay.
        let retained: BTreeSet<String> = self
            .jobs
            .borrow()
            .values()
            .flat_map(|r| {
                r.borrow()
                    .retained
                    .iter()
                    .flat_map(|c| c.parts.iter().map(|p| p.key.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut cp = sp.checkpoint;
        cp.parts.retain(|p| !retained.contains(&p.key));
        let carrier = self
            .jobs
            .borrow()
            .values()
            .find(|r| !r.borrow().controls.is_empty())
            .cloned();
        match carrier {
            Some(rec) => self.discard(&rec, vec![cp]),
            None => {
                tracing::warn!(savepoint = %id, "no running job to delete the savepoint's parts through: they stay in the store")
            }
        }
        Ok(self.savepoints())
    }

    /// Takes a savepoint of a running job (a checkpoint kept until it is deleted), then
    /// cancels the job if `stop`.
    pub async fn savepoint(self: Rc<Self>, id: &str, stop: bool) -> Result<SavepointInfo, String> {
        let rec = self.running(id)?;
        let (tx, rx) = oneshot::channel();
        rec.borrow_mut()
            .request_checkpoint(Waiter::Savepoint { stop, reply: tx });
        answer_of(rx, "savepoint").await
    }

    /// A job that has not ended.
    fn running(&self, id: &str) -> Result<Rc<RefCell<JobRecord>>, String> {
        let rec = self
            .jobs
            .borrow()
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no job {id}"))?;
        let state = rec.borrow().info.state;
        if state.is_terminal() {
            return Err(format!("job {id} is {}", state.as_str()));
        }
        Ok(rec)
    }

    /// Moves a running job to the current membership: a checkpoint, then a restart from
    /// it on the live workers. Answers once the job runs again.
    pub async fn rescale(self: Rc<Self>, id: &str) -> Result<JobInfo, String> {
        let rec = self.running(id)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut r = rec.borrow_mut();
            if r.rescaling {
                return Err(format!("job {id} is already being rescaled"));
            }
            if r.finished.iter().any(|f| *f) {
                return Err(format!(
                    "job {id} is finishing (some of its instances are done): too late to rescale"
                ));
            }
            r.rescaling = true;
            r.request_checkpoint(Waiter::Rescale { reply: Some(tx) });
        }
        let out = answer_of(rx, "rescale").await;
        if out.is_err() {
            rec.borrow_mut().rescaling = false;
        }
        out
    }

    /// Validates the spec on every worker, then starts it (restored from a savepoint if
    /// asked). Errors are for the submitter.
    pub async fn submit(
        self: Rc<Self>,
        spec_json: String,
        from_savepoint: Option<String>,
    ) -> Result<JobInfo, String> {
        let mut spec = JobSpec::from_json(&spec_json).map_err(|e| e.to_string())?;
        if spec.settings.checkpoint_interval_ms.is_none() {
            spec.settings.checkpoint_interval_ms = Some(self.defaults.checkpoint_interval_ms);
        }
        if spec.settings.rescale == RescaleMode::Auto && spec.settings.checkpoint_interval() == 0 {
            return Err(
                "settings.rescale = \"auto\" needs checkpoints: set checkpoint_interval_ms".into(),
            );
        }
        if spec.settings.checkpoint_interval() > 0 && !spec.settings.accept_at_most_once {
            if let Some(v) = spec
                .vertices
                .iter()
                .find(|v| matches!(v.operator.as_str(), "source.tcp" | "source.client"))
            {
                return Err(format!(
                    "vertex '{}': {} cannot replay what it read after the last checkpoint, so \
                     a restart of this checkpointed job would lose it; set \
                     settings.accept_at_most_once = true to run it anyway",
                    v.name, v.operator
                ));
            }
        }
        let savepoint = match &from_savepoint {
            Some(sp) => {
                let s = self.savepoints.borrow().get(sp).cloned().ok_or_else(|| {
                    format!("no savepoint {sp} (`ringflow job savepoints` lists them)")
                })?;
                check_savepoint(&spec, &s)?;
                Some(s)
            }
            None => None,
        };
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let id = format!("job-{:x}-{n}", now_ms() / 1000);
        let restore = savepoint.as_ref().map(|s| RestoreFrom {
            checkpoint: s.checkpoint.id,
            parts: s.checkpoint.parts.clone(),
        });
        let (workers, streams) = self.deploy(&spec, &id, restore).await?;
        let info = JobInfo {
            id: id.clone(),
            name: spec.name.clone(),
            state: JobState::Running,
            reason: None,
            workers: workers.iter().map(|w| w.id.clone()).collect(),
            submitted_ms: now_ms(),
            ended_ms: None,
            vertices: Vec::new(),
            checkpoints: Default::default(),
            restarts: 0,
            restored_from: savepoint.as_ref().map(|s| s.checkpoint.id),
            from_savepoint: from_savepoint.clone(),
            guarantee: guarantee(&spec),
            rescales: 0,
            last_rescale_pause_ms: None,
        };
        let mut record = JobRecord::new(info, spec.clone(), 0);
        if let Some(s) = &savepoint {
            // Until its first checkpoint, a restart goes back to the savepoint.
            record.retained.push_back(s.checkpoint.clone());
            record.next_checkpoint = s.checkpoint.id + 1;
        }
        record.refresh();
        let rec = Rc::new(RefCell::new(record));
        {
            let mut jobs = self.jobs.borrow_mut();
            if jobs.len() >= MAX_JOBS {
                let old = jobs
                    .iter()
                    .find(|(_, r)| r.borrow().info.state.is_terminal())
                    .map(|(k, _)| k.clone());
                if let Some(k) = old {
                    jobs.remove(&k);
                }
            }
            jobs.insert(id.clone(), rec.clone());
        }
        self.persist();
        self.launch(&rec, 0, streams);
        let interval = spec.settings.checkpoint_interval();
        if interval > 0 {
            actix_rt::spawn(checkpoint_timer(rec.clone(), interval));
        }
        tracing::info!(job = %id, name = %spec.name, workers = workers.len(), from = ?from_savepoint, "job started");
        let info = rec.borrow().info.clone();
        Ok(info)
    }

    /// Starts a prepared deployment: its control writers and report followers.
    fn launch(
        self: &Rc<Self>,
        rec: &Rc<RefCell<JobRecord>>,
        attempt: u32,
        streams: Vec<(FramedSend, FramedRecv)>,
    ) {
        for (i, (send, recv)) in streams.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(JobControl::Start);
            let worker = {
                let mut r = rec.borrow_mut();
                r.controls.push(tx);
                let w = r
                    .info
                    .workers
                    .get(i)
                    .cloned()
                    .unwrap_or(WorkerId(String::new()));
                r.open.borrow_mut().push(w.clone());
                w
            };
            let open = OpenStream(rec.borrow().open.clone(), worker);
            actix_rt::spawn(write_controls(send, rx));
            actix_rt::spawn(follow(
                Rc::downgrade(self),
                rec.clone(),
                i,
                attempt,
                recv,
                open,
            ));
        }
    }
    /// Prepares `spec` as deployment `deployment` on every live worker (instance `i` on
    /// the `i`-th by id, keys routed as the current assignment's primaries), restored
    /// from `restore` if given. The first refusal (it names the vertex) is the error.
    async fn deploy(
        &self,
        spec: &JobSpec,
        deployment: &str,
        restore: Option<RestoreFrom>,
    ) -> Result<(Vec<JobWorker>, Vec<(FramedSend, FramedRecv)>), String> {
        let id = deployment.to_owned();
        let view = self.views.borrow().clone();
        let mut peers = view.peers.clone();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        if peers.is_empty() {
            return Err("no worker has joined the cluster yet".into());
        }
        let index_of: BTreeMap<&WorkerId, u32> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (&p.id, i as u32))
            .collect();
        let parts = view.assignment.partitions();
        let owners: Vec<u32> = (0..parts)
            .map(|p| {
                view.assignment
                    .primary(PartitionId(p))
                    .and_then(|w| index_of.get(w).copied())
                    .unwrap_or(p % peers.len() as u32)
            })
            .collect();
        let workers: Vec<JobWorker> = peers
            .iter()
            .map(|p| JobWorker {
                id: p.id.clone(),
                addr: p.addr.clone(),
            })
            .collect();

        // Prepare everywhere; the first refusal (it names the vertex) is the answer.
        let mut streams = Vec::new();
        for (i, w) in workers.iter().enumerate() {
            let prep = JobPrepare {
                job: id.clone(),
                spec_json: spec.to_json(),
                workers: workers.clone(),
                index: i as u32,
                partitions: parts,
                epoch: view.epoch(),
                owners: owners.clone(),
                restore: restore.clone(),
            };
            match tokio::time::timeout(PREPARE_TIMEOUT, self.prepare_one(w, prep)).await {
                Ok(Ok(s)) => streams.push(s),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(format!(
                        "worker {} did not prepare the job within {} s",
                        w.id,
                        PREPARE_TIMEOUT.as_secs()
                    ))
                }
            }
        }

        Ok((workers, streams))
    }

    async fn prepare_one(
        &self,
        w: &JobWorker,
        prep: JobPrepare,
    ) -> Result<(FramedSend, FramedRecv), String> {
        let addr: SocketAddr = w
            .addr
            .parse()
            .map_err(|_| format!("worker {} has a bad address {}", w.id, w.addr))?;
        let conn = self
            .endpoint
            .connect(addr)
            .await
            .map_err(|e| format!("cannot reach worker {}: {e}", w.id))?;
        let (mut send, mut recv) = open_service_stream(
            &conn,
            PeerRole::Coordinator,
            Some(self.name.clone()),
            &self.cluster,
            STREAM_SERVICE,
        )
        .await
        .map_err(|e| format!("worker {}: {e}", w.id))?;
        send.send(&StreamOpen::Control(prep))
            .await
            .map_err(|e| format!("worker {}: {e}", w.id))?;
        match recv.recv::<JobReport>().await {
            Ok(Some(JobReport::Prepared)) => Ok((send, recv)),
            Ok(Some(JobReport::Refused { error })) => Err(error),
            Ok(Some(other)) => Err(format!("worker {} answered {other:?}", w.id)),
            Ok(None) => Err(format!(
                "worker {} closed the stream (does it run the stream service?)",
                w.id
            )),
            Err(e) => Err(format!("worker {}: {e}", w.id)),
        }
    }
}

/// The answer to a savepoint or rescale request, or why there is none.
async fn answer_of<T>(rx: oneshot::Receiver<Result<T, String>>, what: &str) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(format!("the {what} was abandoned (the job restarted)")),
        Err(_) => Err(format!(
            "the {what} did not complete within {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}

/// Starts a checkpoint of a running job every `interval_ms` (one at a time; one not
/// complete after ten intervals, and at least a minute, counts as failed).
async fn checkpoint_timer(rec: Rc<RefCell<JobRecord>>, interval_ms: u64) {
    let timeout = (interval_ms * 10).max(60_000);
    let mut every = tokio::time::interval(Duration::from_millis(interval_ms));
    every.tick().await;
    loop {
        every.tick().await;
        let mut r = rec.borrow_mut();
        if r.info.state.is_terminal() {
            return;
        }
        r.trigger_checkpoint(now_ms(), timeout);
    }
}

async fn write_controls(mut send: FramedSend, mut rx: mpsc::UnboundedReceiver<JobControl>) {
    while let Some(c) = rx.recv().await {
        let last = matches!(c, JobControl::Cancel { .. });
        if send.send(&c).await.is_err() || last {
            break;
        }
    }
    let _ = send.finish();
}

/// Marks a worker's control stream open while it lives.
struct OpenStream(Rc<RefCell<Vec<WorkerId>>>, WorkerId);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut open = self.0.borrow_mut();
        if let Some(i) = open.iter().position(|w| *w == self.1) {
            open.swap_remove(i);
        }
    }
}

/// Follows one worker's reports (deployment `attempt`) until its part ends.
async fn follow(
    jm: std::rc::Weak<JobManager>,
    rec: Rc<RefCell<JobRecord>>,
    i: usize,
    attempt: u32,
    mut recv: FramedRecv,
    _open: OpenStream,
) {
    // After its part finished, the worker's stream is kept open (and read until it
    // closes) so that the job's end and the deletion of its checkpoints reach it.
    let mut finished_here = false;
    loop {
        let msg = recv.recv::<JobReport>().await;
        if finished_here {
            match msg {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
        let mut r = rec.borrow_mut();
        if r.attempt != attempt {
            // A deployment that was replaced by a restart.
            return;
        }
        let worker = r
            .info
            .workers
            .get(i)
            .cloned()
            .unwrap_or(WorkerId(String::new()));
        let failure = match msg {
            Ok(Some(JobReport::Progress { vertices })) => {
                r.per_worker[i] = vertices;
                r.refresh();
                continue;
            }
            Ok(Some(JobReport::Checkpointed {
                id,
                parts,
                alignment_ms,
            })) => {
                if let Some((done, waiters)) = r.checkpoint_ack(i, id, parts, alignment_ms) {
                    drop(r);
                    if let Some(jm) = jm.upgrade() {
                        jm.completed(&rec, done, waiters);
                    }
                }
                continue;
            }
            Ok(Some(JobReport::CheckpointFailed { id, reason })) => {
                r.checkpoint_failed(i, id, &reason);
                continue;
            }
            Ok(Some(JobReport::Finished { vertices })) => {
                r.per_worker[i] = vertices;
                r.finished[i] = true;
                r.refresh();
                // A checkpoint in progress that this worker did not store its part of
                // cannot complete (its part would miss the positions it reached).
                let unstored = r
                    .in_flight
                    .as_ref()
                    .filter(|f| f.acks.get(i).is_some_and(Option::is_none))
                    .map(|f| f.id);
                if let Some(id) = unstored {
                    r.checkpoint_failed(i, id, "a worker finished before storing its part");
                }
                let all = r.finished.iter().all(|f| *f) && !r.info.state.is_terminal();
                drop(r);
                let Some(jm) = jm.upgrade() else { return };
                if all {
                    tracing::info!(job = %rec.borrow().info.id, "job finished");
                    jm.finish_job(&rec, JobState::Finished, None);
                }
                finished_here = true;
                continue;
            }
            Ok(Some(JobReport::Failed { reason })) => format!("on {worker}: {reason}"),
            Ok(Some(other)) => {
                tracing::debug!(job = %r.info.id, ?other, "unexpected job report");
                continue;
            }
            Ok(None) | Err(_) => {
                if r.info.state.is_terminal() {
                    return;
                }
                format!("lost the control stream to worker {worker}")
            }
        };
        drop(r);
        if let Some(jm) = jm.upgrade() {
            jm.fail_or_restart(&rec, attempt, failure);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interval: Option<u64>, ops: &[(&str, &str)]) -> JobSpec {
        let mut s = JobSpec::new("j");
        s.settings.checkpoint_interval_ms = interval;
        for (name, op) in ops {
            s.vertices
                .push(ringflow_stream::VertexSpec::new(*name, *op));
        }
        s
    }

    #[test]
    fn the_guarantee_names_what_weakens_it() {
        let files = [("in", "source.files"), ("out", "sink.file")];
        assert!(guarantee(&spec(None, &files)).starts_with("none"));
        assert!(guarantee(&spec(Some(0), &files)).starts_with("none"));
        assert_eq!(guarantee(&spec(Some(500), &files)), "exactly-once");
        let g = guarantee(&spec(
            Some(500),
            &[("in", "source.files"), ("print", "sink.stdout")],
        ));
        assert!(
            g.starts_with("at-least-once") && g.contains("print (sink.stdout)"),
            "{g}"
        );
        let g = guarantee(&spec(
            Some(500),
            &[("in", "source.tcp"), ("print", "sink.stdout")],
        ));
        assert!(
            g.starts_with("at-most-once") && g.contains("in (source.tcp)"),
            "{g}"
        );
    }

    #[test]
    fn a_savepoint_needs_its_stateful_vertices_under_the_same_names_and_operators() {
        let sp = SavepointInfo {
            id: "sp-1".into(),
            job: "job-1".into(),
            job_name: "j".into(),
            stateful: vec![("counts".into(), "count".into())],
            checkpoint: CompletedCheckpoint::default(),
        };
        let ok = spec(Some(100), &[("counts", "count"), ("new", "map")]);
        assert!(check_savepoint(&ok, &sp).is_ok());
        let renamed = spec(Some(100), &[("tally", "count")]);
        let e = check_savepoint(&renamed, &sp).unwrap_err();
        assert!(e.contains("'counts'") && e.contains("does not have"), "{e}");
        let changed = spec(Some(100), &[("counts", "sum")]);
        let e = check_savepoint(&changed, &sp).unwrap_err();
        assert!(e.contains("is sum"), "{e}");
    }

    #[test]
    fn only_vertices_with_state_are_recorded_in_a_savepoint() {
        let s = spec(
            Some(100),
            &[("in", "source.files"), ("m", "map"), ("c", "count")],
        );
        let part = |v: &str, stateful| CheckpointPart {
            vertex: v.into(),
            stateful,
            ..CheckpointPart::default()
        };
        let cp = CompletedCheckpoint {
            parts: vec![
                part("in", true),
                part("m", false),
                part("c", true),
                part("c", false),
            ],
            ..CompletedCheckpoint::default()
        };
        assert_eq!(
            stateful_vertices(&s, &cp),
            vec![
                ("in".to_string(), "source.files".to_string()),
                ("c".to_string(), "count".to_string())
            ]
        );
    }
}
