//! The coordinator's job manager: deploys stream jobs to workers (prepare everywhere,
//! then start), follows their reports, fails a job whose worker is lost, and cancels.
//!
//! Lifecycle: Deploying → Running → Finished | Failed | Cancelled. Jobs live in memory:
//! after a coordinator restart the list is empty, and workers stop the jobs whose control
//! stream closed (recovery from checkpoints is future work).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringflow_net::{Endpoint, FramedRecv, FramedSend};
use ringflow_proto::{
    CheckpointPart, ClusterView, CompletedCheckpoint, JobControl, JobInfo, JobPrepare, JobReport,
    JobState, JobWorker, PeerRole, RestoreFrom, StreamOpen, VertexStatus,
};
use ringflow_ring::{PartitionId, WorkerId};
use ringflow_stream::JobSpec;
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::net::open_service_stream;
use ringflow_proto::STREAM_SERVICE;

/// Longest wait for a worker to prepare its part of a job.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most jobs kept (oldest terminal jobs are forgotten first).
const MAX_JOBS: usize = 1000;

/// Completed checkpoints a job keeps to restart from (the newest first, then older ones
/// if a part of it cannot be read).
const RETAINED_CHECKPOINTS: usize = 3;

/// A checkpoint the coordinator started and waits for.
struct InFlight {
    id: u64,
    started_ms: u64,
    /// Per worker: its stored parts and longest alignment, once it reported.
    acks: Vec<Option<(Vec<CheckpointPart>, u64)>>,
}

struct JobRecord {
    info: JobInfo,
    /// The spec (kept to redeploy it).
    spec: JobSpec,
    /// Which deployment of the job runs now (0, then one more per restart); reports of an
    /// older one are ignored.
    attempt: u32,
    /// The last completed checkpoints, newest last (a restart tries the newest first).
    retained: std::collections::VecDeque<CompletedCheckpoint>,
    /// The checkpoint in progress, if any (one at a time).
    in_flight: Option<InFlight>,
    /// The number of the next checkpoint.
    next_checkpoint: u64,
    /// Counters last reported by each worker.
    per_worker: Vec<Vec<VertexStatus>>,
    finished: Vec<bool>,
    controls: Vec<mpsc::UnboundedSender<JobControl>>,
    vertex_names: Vec<String>,
}

impl JobRecord {
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
        if let Some(f) = &self.in_flight {
            if now.saturating_sub(f.started_ms) < timeout_ms {
                return;
            }
            tracing::warn!(job = %self.info.id, checkpoint = f.id, "checkpoint timed out");
            self.info.checkpoints.failed += 1;
            self.in_flight = None;
        }
        let id = self.next_checkpoint;
        self.next_checkpoint += 1;
        let acks = self
            .finished
            .iter()
            .map(|f| f.then(|| (Vec::new(), 0)))
            .collect();
        self.in_flight = Some(InFlight {
            id,
            started_ms: now,
            acks,
        });
        for c in &self.controls {
            let _ = c.send(JobControl::Checkpoint { id });
        }
    }

    /// Worker `i` stored its part of checkpoint `id` (or has nothing left to store).
    fn checkpoint_ack(&mut self, i: usize, id: u64, parts: Vec<CheckpointPart>, alignment: u64) {
        let Some(f) = self.in_flight.as_mut().filter(|f| f.id == id) else {
            return;
        };
        if let Some(slot) = f.acks.get_mut(i) {
            *slot = Some((parts, alignment));
        }
        if f.acks.iter().all(Option::is_some) {
            let now = now_ms();
            let f = self.in_flight.take().unwrap_or_else(|| unreachable!());
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
            tracing::debug!(job = %self.info.id, checkpoint = id, bytes = done.size_bytes, "checkpoint completed");
            self.info.checkpoints.completed += 1;
            self.info.checkpoints.last = Some(done.clone());
            self.retained.push_back(done);
            while self.retained.len() > RETAINED_CHECKPOINTS {
                self.retained.pop_front();
            }
        }
    }

    /// Worker `i` could not store its part of checkpoint `id`.
    fn checkpoint_failed(&mut self, i: usize, id: u64, reason: &str) {
        if self.in_flight.as_ref().is_some_and(|f| f.id == id) {
            tracing::warn!(job = %self.info.id, checkpoint = id, worker = i, %reason, "checkpoint failed");
            self.in_flight = None;
            self.info.checkpoints.failed += 1;
        }
    }

    fn end(&mut self, state: JobState, reason: Option<String>) {
        if self.info.state.is_terminal() {
            return;
        }
        self.info.state = state;
        self.info.reason = reason.clone();
        self.info.ended_ms = Some(now_ms());
        let r = reason.unwrap_or_else(|| state.as_str().to_owned());
        for c in &self.controls {
            let _ = c.send(JobControl::Cancel { reason: r.clone() });
        }
        self.controls.clear();
    }
}

/// Deploys and tracks jobs. Lives on the coordinator's network Arbiter.
pub(crate) struct JobManager {
    endpoint: Endpoint,
    name: String,
    cluster: String,
    views: watch::Receiver<Arc<ClusterView>>,
    jobs: RefCell<BTreeMap<String, Rc<RefCell<JobRecord>>>>,
    counter: Cell<u64>,
}

impl JobManager {
    pub fn new(
        endpoint: Endpoint,
        name: String,
        cluster: String,
        views: watch::Receiver<Arc<ClusterView>>,
    ) -> Rc<Self> {
        let jm = Rc::new(JobManager {
            endpoint,
            name,
            cluster,
            views,
            jobs: RefCell::new(BTreeMap::new()),
            counter: Cell::new(0),
        });
        let weak = Rc::downgrade(&jm);
        let mut views = jm.views.clone();
        actix_rt::spawn(async move {
            while views.changed().await.is_ok() {
                let view = views.borrow_and_update().clone();
                let Some(jm) = weak.upgrade() else { return };
                jm.on_view(&view);
            }
        });
        jm
    }

    /// Restarts (or fails) running jobs that lost a worker.
    fn on_view(self: &Rc<Self>, view: &ClusterView) {
        let mut lost_ones = Vec::new();
        for rec in self.jobs.borrow().values() {
            let r = rec.borrow();
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
        let mut r = rec.borrow_mut();
        if r.attempt != attempt || r.info.state.is_terminal() {
            return;
        }
        let s = r.spec.settings.clone();
        if s.checkpoint_interval_ms == 0 || r.info.restarts >= s.restart_attempts {
            let reason = if s.checkpoint_interval_ms > 0 {
                format!("{reason} (after {} restarts)", r.info.restarts)
            } else {
                reason
            };
            tracing::warn!(job = %r.info.id, %reason, "job failed");
            r.end(JobState::Failed, Some(reason));
            return;
        }
        r.attempt += 1;
        r.info.restarts += 1;
        r.in_flight = None;
        r.info.reason = Some(format!("restarted after: {reason}"));
        for c in r.controls.drain(..) {
            let _ = c.send(JobControl::Cancel {
                reason: format!("restarting: {reason}"),
            });
        }
        let next = r.attempt;
        tracing::warn!(job = %r.info.id, %reason, restart = r.info.restarts, "restarting the job from its last checkpoint");
        drop(r);
        let (jm, rec) = (self.clone(), rec.clone());
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(s.restart_backoff_ms)).await;
            jm.redeploy(rec, next).await;
        });
    }

    /// Deploys a restarted job from its newest readable checkpoint (from the start if it
    /// completed none).
    async fn redeploy(self: Rc<Self>, rec: Rc<RefCell<JobRecord>>, attempt: u32) {
        let (spec, id, mut candidates) = {
            let r = rec.borrow();
            let c: Vec<Option<CompletedCheckpoint>> = if r.retained.is_empty() {
                vec![None]
            } else {
                r.retained.iter().rev().cloned().map(Some).collect()
            };
            (r.spec.clone(), r.info.id.clone(), c.into_iter())
        };
        let deployment = format!("{id}-r{attempt}");
        let mut last = String::new();
        for from in candidates.by_ref() {
            let restore = from.as_ref().map(|c| RestoreFrom {
                checkpoint: c.id,
                parts: c.parts.clone(),
            });
            match self.deploy(&spec, &deployment, restore).await {
                Ok((workers, streams)) => {
                    {
                        let mut r = rec.borrow_mut();
                        if r.attempt != attempt || r.info.state.is_terminal() {
                            return;
                        }
                        r.info.workers = workers.iter().map(|w| w.id.clone()).collect();
                        r.per_worker = vec![Vec::new(); workers.len()];
                        r.finished = vec![false; workers.len()];
                        r.info.restored_from = from.as_ref().map(|c| c.id);
                        r.refresh();
                    }
                    tracing::info!(job = %id, attempt, from = ?from.as_ref().map(|c| c.id), workers = workers.len(), "job redeployed");
                    self.launch(&rec, attempt, streams);
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
        self.fail_or_restart(&rec, attempt, format!("redeploying: {last}"));
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        self.jobs
            .borrow()
            .values()
            .map(|r| r.borrow().info.clone())
            .collect()
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.jobs.borrow().get(id).map(|r| r.borrow().info.clone())
    }

    /// Cancels a job; returns its info, or `None` when unknown.
    pub fn cancel(&self, id: &str) -> Option<JobInfo> {
        let rec = self.jobs.borrow().get(id).cloned()?;
        let mut r = rec.borrow_mut();
        r.end(JobState::Cancelled, Some("cancelled by a user".into()));
        Some(r.info.clone())
    }

    /// Validates the spec on every worker, then starts it. Errors are for the submitter.
    pub async fn submit(self: Rc<Self>, spec_json: String) -> Result<JobInfo, String> {
        let spec = JobSpec::from_json(&spec_json).map_err(|e| e.to_string())?;
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let id = format!("job-{:x}-{n}", now_ms() / 1000);
        let (workers, streams) = self.deploy(&spec, &id, None).await?;
        let rec = Rc::new(RefCell::new(JobRecord {
            info: JobInfo {
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
                restored_from: None,
            },
            spec: spec.clone(),
            attempt: 0,
            retained: Default::default(),
            in_flight: None,
            next_checkpoint: 1,
            per_worker: vec![Vec::new(); workers.len()],
            finished: vec![false; workers.len()],
            controls: Vec::new(),
            vertex_names: spec.vertices.iter().map(|v| v.name.clone()).collect(),
        }));
        rec.borrow_mut().refresh();
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
        self.launch(&rec, 0, streams);
        let interval = spec.settings.checkpoint_interval_ms;
        if interval > 0 {
            actix_rt::spawn(checkpoint_timer(rec.clone(), interval));
        }
        tracing::info!(job = %id, name = %spec.name, workers = workers.len(), "job started");
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
            rec.borrow_mut().controls.push(tx);
            actix_rt::spawn(write_controls(send, rx));
            actix_rt::spawn(follow(Rc::downgrade(self), rec.clone(), i, attempt, recv));
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

/// Follows one worker's reports (deployment `attempt`) until its part ends.
async fn follow(
    jm: std::rc::Weak<JobManager>,
    rec: Rc<RefCell<JobRecord>>,
    i: usize,
    attempt: u32,
    mut recv: FramedRecv,
) {
    loop {
        let msg = recv.recv::<JobReport>().await;
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
                r.checkpoint_ack(i, id, parts, alignment_ms);
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
                if let Some(id) = r.in_flight.as_ref().map(|f| f.id) {
                    r.checkpoint_ack(i, id, Vec::new(), 0);
                }
                if r.finished.iter().all(|f| *f) && !r.info.state.is_terminal() {
                    tracing::info!(job = %r.info.id, "job finished");
                    r.end(JobState::Finished, None);
                }
                return;
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
