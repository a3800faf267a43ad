//! The worker's `stream` service: job control streams from the coordinator and data
//! edge streams from peer workers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringflow_net::{Connection, FramedRecv, FramedSend};
use std::sync::mpsc::{TryRecvError, TrySendError};

use ringflow_ops::client::{ClientPorts, PortFrame};
use ringflow_proto::{
    ClientPort, EdgeOpen, Hello, JobControl, JobPrepare, JobReport, PeerRole, StreamOpen,
    STREAM_SERVICE,
};
use ringflow_stream::wire::DataFrame;
use ringflow_stream::Registry;
use tokio::sync::mpsc;

use crate::checkpoints::LocalCheckpoints;
use crate::edge;
use crate::job::{JobEvent, LocalJob};
use ringflow_cluster::{ClusterError, LocalFuture, ServiceContext, ServiceFactory, WorkerService};
use ringflow_stream::checkpoint::CheckpointStorage;

/// How long a finished job's client outboxes wait to be read.
const OUTBOX_GRACE: Duration = Duration::from_secs(300);

/// How often a running job reports its counters to the coordinator.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Builds the stream service with the operators of `registry`.
pub fn service(registry: Registry) -> ServiceFactory {
    service_with(registry, 0)
}

/// [`service`], running each job's actors on `threads` threads (0: one per core).
pub fn service_with(mut registry: Registry, threads: usize) -> ServiceFactory {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        threads
    };
    registry.provide(ClientPorts::default());
    let registry = Arc::new(registry);
    Box::new(move |ctx: ServiceContext| {
        let ports = registry
            .extensions()
            .get::<ClientPorts>()
            .ok_or_else(|| ClusterError::Service("client ports missing".into()))?;
        Ok(Rc::new(StreamService {
            ctx,
            registry,
            ports,
            jobs: RefCell::new(HashMap::new()),
            threads,
        }) as Rc<dyn WorkerService>)
    })
}

/// Runs stream jobs on a worker.
pub struct StreamService {
    ctx: ServiceContext,
    registry: Arc<Registry>,
    ports: Arc<ClientPorts>,
    jobs: RefCell<HashMap<String, Rc<LocalJob>>>,
    /// Threads per job.
    threads: usize,
}

impl WorkerService for StreamService {
    fn name(&self) -> &str {
        STREAM_SERVICE
    }

    fn serve(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        send: FramedSend,
        mut recv: FramedRecv,
    ) -> LocalFuture<Result<(), ClusterError>> {
        Box::pin(async move {
            let Some(open) = recv.recv::<StreamOpen>().await? else {
                return Ok(());
            };
            match open {
                StreamOpen::Control(prep) => {
                    if hello.role != PeerRole::Coordinator || !conn.peer_is_node() {
                        let mut send = send;
                        send.send(&JobReport::Refused {
                            error: "only the coordinator controls jobs".into(),
                        })
                        .await?;
                        return Ok(());
                    }
                    self.control(prep, send, recv).await
                }
                StreamOpen::Edge(open) => {
                    if !conn.peer_is_node() {
                        return Ok(());
                    }
                    self.edge(open, send, recv).await
                }
                StreamOpen::Push(port) => self.push(port, send, recv).await,
                StreamOpen::Pull(port) => self.pull(port, send).await,
            }
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move {
            for (_, job) in self.jobs.borrow_mut().drain() {
                job.stop();
            }
        })
    }
}

/// Reads job control messages on a task of its own (cancel-safe for `select!`).
fn spawn_control_reader(mut recv: FramedRecv) -> mpsc::Receiver<Option<JobControl>> {
    let (tx, rx) = mpsc::channel(4);
    actix_rt::spawn(async move {
        loop {
            match recv.recv::<JobControl>().await {
                Ok(Some(m)) => {
                    if tx.send(Some(m)).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = tx.send(None).await;
                    return;
                }
            }
        }
    });
    rx
}

impl StreamService {
    async fn control(
        &self,
        prep: JobPrepare,
        mut send: FramedSend,
        recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        let scratch = self.ctx.data_dir.join("jobs").join(&prep.job);
        let restored = match self.fetch_restore(&prep).await {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(job = %prep.job, %error, "cannot restore a job");
                send.send(&JobReport::Refused { error }).await?;
                return Ok(());
            }
        };
        let prepared = LocalJob::prepare(
            &prep,
            &self.registry,
            self.ctx.worker_id.as_str(),
            scratch,
            &restored,
            self.threads,
        );
        let (job, mut events) = match prepared {
            Ok(j) => j,
            Err(error) => {
                tracing::info!(job = %prep.job, %error, "refused a job");
                send.send(&JobReport::Refused { error }).await?;
                return Ok(());
            }
        };
        let job = Rc::new(job);
        let id = job.id.clone();
        self.jobs.borrow_mut().insert(id.clone(), job.clone());
        // The job's gauges go with it, however this ends (scrapes see its progress while
        // it runs here).
        let _gauges = crate::metrics::JobGauges(id.clone());
        let result = self.run_job(&job, &mut send, recv, &mut events).await;
        // The coordinator restores the job elsewhere once this stream closes: nothing of
        // this deployment may still write then.
        job.stop_and_wait(Duration::from_secs(10)).await;
        self.jobs.borrow_mut().remove(&id);
        self.ports.remove_inboxes(&id);
        // The last batches of a finished job may still wait in client outboxes: give the
        // client time to read them.
        let ports = self.ports.clone();
        actix_rt::spawn(async move {
            tokio::time::sleep(OUTBOX_GRACE).await;
            ports.remove_outboxes(&id);
        });
        result
    }

    async fn run_job(
        &self,
        job: &Rc<LocalJob>,
        send: &mut FramedSend,
        recv: FramedRecv,
        events: &mut mpsc::UnboundedReceiver<JobEvent>,
    ) -> Result<(), ClusterError> {
        send.send(&JobReport::Prepared).await?;
        let mut control = spawn_control_reader(recv);
        match control.recv().await.flatten() {
            Some(JobControl::Start) => {}
            // No checkpoint is started before the job is.
            Some(
                JobControl::Cancel { .. }
                | JobControl::Checkpoint { .. }
                | JobControl::Discard { .. },
            )
            | None => return Ok(()),
        }
        if let Err(reason) = job
            .start(
                &self.ctx.endpoint,
                self.ctx.worker_id.as_str(),
                &self.ctx.cluster,
            )
            .await
        {
            send.send(&JobReport::Failed { reason }).await?;
            return Ok(());
        }
        tracing::info!(job = %job.id, index = job.index, "job started");
        let mut done = 0;
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let mut checkpoints = LocalCheckpoints::new(job.local_vertices.clone());
        let (stored_tx, mut stored) = mpsc::unbounded_channel::<JobReport>();
        let store = self.registry.extensions().get::<CheckpointStorage>();
        let save = |ready: Vec<(u64, crate::checkpoints::Collected)>| {
            for (id, collected) in ready {
                self.store_checkpoint(&job.id, id, collected, store.clone(), stored_tx.clone());
            }
        };
        loop {
            tokio::select! {
                msg = control.recv() => match msg.flatten() {
                    Some(JobControl::Cancel { reason }) => {
                        tracing::info!(job = %job.id, %reason, "job cancelled");
                        return Ok(());
                    }
                    Some(JobControl::Checkpoint { id }) => {
                        job.inject_barrier(id);
                        save(checkpoints.started(id));
                    }
                    Some(JobControl::Discard { parts }) => self.discard(&job.id, parts),
                    Some(JobControl::Start) => {}
                    None => {
                        tracing::warn!(job = %job.id, "job control stream closed: stopping the job");
                        return Ok(());
                    }
                },
                report = stored.recv() => {
                    if let Some(report) = report {
                        send.send(&report).await?;
                    }
                }
                ev = events.recv() => match ev {
                    Some(JobEvent::Snapshot { vertex, snapshot, alignment_ms }) => {
                        save(checkpoints.snapshot(vertex, snapshot, alignment_ms));
                    }
                    Some(JobEvent::Done(vertex)) => {
                        if let Some((v, last)) = vertex {
                            save(checkpoints.finished(v, last));
                        }
                        done += 1;
                        if done >= *job.expected_done.borrow() {
                            send.send(&JobReport::Finished { vertices: job.status() }).await?;
                            tracing::info!(job = %job.id, "job finished here");
                            // Keep the stream until the coordinator has read it (it may
                            // ask for the job's checkpoints to be deleted first).
                            let until = tokio::time::Instant::now() + Duration::from_secs(10);
                            loop {
                                match tokio::time::timeout_at(until, control.recv()).await {
                                    Ok(Some(Some(JobControl::Discard { parts }))) => {
                                        self.discard(&job.id, parts)
                                    }
                                    // A checkpoint asked for before the end was known.
                                    Ok(Some(Some(
                                        JobControl::Checkpoint { .. } | JobControl::Start,
                                    ))) => {}
                                    other => {
                                        tracing::debug!(job = %job.id, ?other, "control stream after the end");
                                        return Ok(());
                                    }
                                }
                            }
                        }
                    }
                    Some(JobEvent::Failed(reason)) => {
                        tracing::warn!(job = %job.id, %reason, "job failed here");
                        send.send(&JobReport::Failed { reason }).await?;
                        let _ = tokio::time::timeout(Duration::from_secs(10), control.recv()).await;
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                _ = progress.tick() => {
                    let vertices = job.status();
                    crate::metrics::stream_gauges().update(&job.id, &vertices);
                    send.send(&JobReport::Progress { vertices }).await?;
                }
            }
        }
    }

    /// The snapshots a redeployed job restores here (those of the vertices that run on
    /// this worker), read from the checkpoint store on a blocking thread.
    async fn fetch_restore(
        &self,
        prep: &JobPrepare,
    ) -> Result<crate::checkpoints::Restored, String> {
        let Some(from) = &prep.restore else {
            return Ok(Default::default());
        };
        let store = self
            .registry
            .extensions()
            .get::<CheckpointStorage>()
            .ok_or("this worker has no checkpoint store to restore from")?;
        // Every vertex's parts (those of a vertex that does not run here go unused).
        let vertices: std::collections::BTreeSet<String> =
            from.parts.iter().map(|p| p.vertex.clone()).collect();
        let parts = from.parts.clone();
        let checkpoint = from.checkpoint;
        tokio::task::spawn_blocking(move || {
            crate::checkpoints::fetch(store.0.as_ref(), &parts, &vertices)
        })
        .await
        .map_err(|e| format!("reading checkpoint {checkpoint}: {e}"))?
        .map_err(|e| format!("restoring checkpoint {checkpoint}: {e}"))
    }

    /// Deletes parts of checkpoints the coordinator no longer retains (in the background;
    /// a failure only leaves garbage, logged).
    fn discard(&self, job: &str, parts: Vec<ringflow_proto::CheckpointPart>) {
        let Some(store) = self.registry.extensions().get::<CheckpointStorage>() else {
            return;
        };
        let job = job.to_owned();
        tracing::debug!(job = %job, parts = parts.len(), "deleting checkpoint parts no longer retained");
        actix_rt::spawn(async move {
            let keys: Vec<Vec<u8>> = parts
                .iter()
                .flat_map(crate::checkpoints::chunk_keys)
                .collect();
            let n = keys.len();
            let s = store.0.clone();
            match tokio::task::spawn_blocking(move || s.delete(keys)).await {
                Ok(Ok(())) => {
                    tracing::debug!(job = %job, chunks = n, "old checkpoint parts deleted")
                }
                Ok(Err(e)) => {
                    tracing::warn!(job = %job, error = %e, "could not delete old checkpoint parts")
                }
                Err(e) => tracing::warn!(job = %job, error = %e, "the checkpoint deleter stopped"),
            }
        });
    }

    /// Stores the local part of checkpoint `id` (on a blocking thread: the store waits
    /// for quorum writes) and queues the report for the coordinator.
    fn store_checkpoint(
        &self,
        job: &str,
        id: u64,
        collected: crate::checkpoints::Collected,
        store: Option<Arc<CheckpointStorage>>,
        reports: mpsc::UnboundedSender<JobReport>,
    ) {
        let job = job.to_owned();
        actix_rt::spawn(async move {
            let result = async {
                let store = store.ok_or("this worker has no checkpoint store")?;
                let mut writes = Vec::new();
                let mut parts = Vec::new();
                for snapshot in collected.snapshots.values() {
                    let (w, part) = crate::checkpoints::chunks(
                        &job,
                        snapshot,
                        crate::checkpoints::CHUNK_BYTES,
                    )?;
                    writes.extend(w);
                    parts.push(part);
                }
                if !writes.is_empty() {
                    let s = store.0.clone();
                    tokio::task::spawn_blocking(move || s.put(writes))
                        .await
                        .map_err(|e| format!("the checkpoint writer stopped: {e}"))??;
                }
                Ok::<_, String>(parts)
            }
            .await;
            let report = match result {
                Ok(parts) => JobReport::Checkpointed {
                    id,
                    parts,
                    alignment_ms: collected.alignment_ms,
                },
                Err(reason) => {
                    tracing::warn!(job = %job, checkpoint = id, %reason, "checkpoint not stored");
                    JobReport::CheckpointFailed { id, reason }
                }
            };
            let _ = reports.send(report);
        });
    }

    /// Relays a client's frames into a `source.client` instance (waiting while its inbox
    /// is full, so QUIC flow control holds the client back).
    async fn push(
        &self,
        port: ClientPort,
        mut send: FramedSend,
        mut recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        let id = (
            port.job.clone(),
            port.vertex.clone(),
            port.instance as usize,
        );
        let Some(inbox) = self.ports.take_inbox(&id) else {
            send.send(&DataFrame::End).await?;
            return Ok(());
        };
        // Tell the client the port is open.
        send.send(&DataFrame::Credit(0)).await?;
        loop {
            let mut frame = match recv.recv::<DataFrame>().await? {
                Some(DataFrame::Batch { bytes, records }) => PortFrame::Batch(bytes, records),
                Some(DataFrame::End) | None => PortFrame::End,
                Some(_) => continue,
            };
            let end = matches!(frame, PortFrame::End);
            let mut wait = Duration::from_millis(1);
            loop {
                match inbox.try_send(frame) {
                    Ok(()) => break,
                    Err(TrySendError::Full(f)) => {
                        frame = f;
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_millis(20));
                    }
                    Err(TrySendError::Disconnected(_)) => return Ok(()),
                }
            }
            if end {
                let _ = send.finish();
                return Ok(());
            }
        }
    }

    /// Relays a `sink.client` instance's records to a client.
    async fn pull(&self, port: ClientPort, mut send: FramedSend) -> Result<(), ClusterError> {
        let id = (
            port.job.clone(),
            port.vertex.clone(),
            port.instance as usize,
        );
        let Some(outbox) = self.ports.take_outbox(&id) else {
            send.send(&DataFrame::Idle).await?;
            return Ok(());
        };
        let mut wait = Duration::from_millis(1);
        loop {
            match outbox.try_recv() {
                Ok(PortFrame::Batch(bytes, records)) => {
                    wait = Duration::from_millis(1);
                    send.send(&DataFrame::Batch { records, bytes }).await?;
                }
                Ok(PortFrame::End) => {
                    send.send(&DataFrame::End).await?;
                    let _ = send.finish();
                    return Ok(());
                }
                Err(TryRecvError::Empty) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(20));
                }
                Err(TryRecvError::Disconnected) => {
                    // The sink failed or the job was cancelled.
                    send.send(&DataFrame::Idle).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Finds the local input of one incoming data edge and feeds it (see
    /// [`edge::read`]).
    async fn edge(
        &self,
        open: EdgeOpen,
        send: FramedSend,
        recv: FramedRecv,
    ) -> Result<(), ClusterError> {
        let job = self.jobs.borrow().get(&open.job).cloned();
        let Some(job) = job else {
            tracing::debug!(job = %open.job, "edge for an unknown job");
            return Ok(());
        };
        let Some((input, port)) = job.input_for(open.edge, open.sender) else {
            job.fail(format!(
                "edge {} from instance {} does not end on this worker",
                open.edge, open.sender
            ));
            return Ok(());
        };
        let events = job.events();
        let from = format!(
            "edge {} from instance {} on {}",
            open.edge,
            open.sender,
            job.worker_name(open.sender)
        );
        drop(job);
        edge::read(input, port, from, events, send, recv).await;
        Ok(())
    }
}
