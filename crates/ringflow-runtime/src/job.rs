//! One job's part on one worker: built at prepare time (inputs and operator instances),
//! wired and started at start time (outlets, QUIC edge writers, actors), torn down on
//! end, failure or cancel.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use ringflow_cluster::clock::now_ms;
use ringflow_net::{Connection, Endpoint};
use ringflow_proto::{EdgeOpen, JobPrepare, VertexStatus};
use ringflow_ring::RingConfig;
use ringflow_stream::checkpoint::Restore;
use ringflow_stream::instance::{self, Chain, Routing};
use ringflow_stream::registry::Instance;
use ringflow_stream::{plan, InitContext, JobPlan, JobSpec, PortType, Registry};
use tokio::sync::mpsc;

use crate::actors::{InstanceEvent, OperatorActor, SharedStatus, SourceActor};
use crate::credit::{self, CreditSender, InputQueue, QueueGauge};
use crate::edge::{self, Outlets, Target};

/// An instance built at prepare time, waiting for start.
struct Pending {
    vertex: usize,
    instance: Instance,
    input: Option<(InputQueue, QueueGauge)>,
}

/// Events of a job on this worker, for its control stream.
#[derive(Debug)]
pub(crate) enum JobEvent {
    /// An instance or edge writer finished (for an instance, of this vertex).
    Done(Option<(usize, Option<ringflow_stream::checkpoint::InstanceSnapshot>)>),
    /// Something failed; the job fails.
    Failed(String),
    /// An instance of a vertex took its snapshot of a checkpoint.
    Snapshot {
        /// The vertex.
        vertex: usize,
        /// The snapshot.
        snapshot: ringflow_stream::checkpoint::InstanceSnapshot,
        /// Its alignment time (ms).
        alignment_ms: u64,
    },
}

/// A job's part on this worker.
pub(crate) struct LocalJob {
    pub id: String,
    pub plan: JobPlan,
    pub index: usize,
    workers: Vec<(String, String)>,
    /// (edge, sending instance) -> the input channel of the local receiving instance.
    inputs: HashMap<(u32, u32), (CreditSender, PortType)>,
    pending: RefCell<Vec<Pending>>,
    statuses: Vec<(usize, SharedStatus)>,
    arbiters: RefCell<Vec<Arbiter>>,
    tasks: RefCell<Vec<tokio::task::JoinHandle<()>>>,
    conns: RefCell<Vec<Connection>>,
    scratch: std::path::PathBuf,
    events_tx: mpsc::UnboundedSender<JobEvent>,
    /// How many `Done` events mean the job finished here.
    pub expected_done: RefCell<usize>,
    /// The local source actors (checkpoints start there).
    sources: RefCell<Vec<Addr<SourceActor>>>,
    /// The vertices with an instance here.
    pub local_vertices: Vec<usize>,
    /// Most threads its actors run on.
    threads: usize,
}

impl LocalJob {
    /// Validates the spec with this worker's registry and builds every local instance.
    pub fn prepare(
        prep: &JobPrepare,
        registry: &Registry,
        worker: &str,
        scratch: std::path::PathBuf,
        restored: &crate::checkpoints::Restored,
        threads: usize,
    ) -> Result<(LocalJob, mpsc::UnboundedReceiver<JobEvent>), String> {
        let spec = JobSpec::from_json(&prep.spec_json).map_err(|e| e.to_string())?;
        let ring = RingConfig::new(prep.partitions, 1).map_err(|e| e.to_string())?;
        let n = prep.workers.len();
        let index = prep.index as usize;
        if n == 0 || index >= n || prep.owners.len() != prep.partitions as usize {
            return Err("malformed job deployment (workers, index or owners)".into());
        }
        if prep.owners.iter().any(|&o| o as usize >= n) {
            return Err("malformed job deployment (owner out of range)".into());
        }
        let init = InitContext {
            job: prep.job.clone(),
            vertex: String::new(),
            worker: worker.to_owned(),
            instance: index,
            instances: n,
            ring,
            scratch_dir: scratch.clone(),
            validate_only: true,
            extensions: registry.extensions().clone(),
        };
        let plan = plan(&spec, registry, &init).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("creating the job directory {}: {e}", scratch.display()))?;
        let routing = Routing::new(ring, prep.owners.clone());
        let s = plan.spec.settings.clone();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut inputs = HashMap::new();
        let mut pending = Vec::new();
        let mut statuses = Vec::new();
        let now = now_ms();
        for (v, vp) in plan.vertices.iter().enumerate() {
            if !plan.runs_on(v, index) {
                continue;
            }
            let chans = plan.input_channels(v, index, n);
            let input = if vp.is_source || plan.chained_input(v).is_some() {
                // A chained vertex is fed directly by the one before it.
                None
            } else {
                let (senders, queue, gauge) = credit::input(chans.len(), s.edge_credits);
                for (sender, &(e, from)) in senders.into_iter().zip(&chans) {
                    let port = plan.vertices[plan.edges[e].from].output;
                    inputs.insert((e as u32, from as u32), (sender, port));
                }
                Some((queue, gauge))
            };
            let mut instance = instance::build(&plan, registry, v, index, n, &init, &routing, now)
                .map_err(|e| e.to_string())?;
            if let Some(snapshots) = restored.get(&vp.name) {
                // Partitions go to the instance that serves them now; a source gets every
                // earlier position and resumes the ones it reads.
                let me = if vp.single { 0 } else { index };
                let owners = &prep.owners;
                let serves = |p: u32| vp.single || owners.get(p as usize) == Some(&(index as u32));
                let count = plan.instances(v, n);
                match &mut instance {
                    Instance::Operator(op) => {
                        op.restore(Restore::for_instance(snapshots, serves, me, count))
                    }
                    Instance::Source(src) => {
                        src.restore(Restore::for_instance(snapshots, |_| false, 0, 1))
                    }
                }
                .map_err(|e| e.to_string())?;
            }
            statuses.push((
                v,
                Arc::new(Mutex::new(VertexStatus {
                    name: vp.name.clone(),
                    instances: 1,
                    watermark: i64::MIN,
                    ..VertexStatus::default()
                })),
            ));
            pending.push(Pending {
                vertex: v,
                instance,
                input,
            });
        }
        let local_vertices = pending.iter().map(|p: &Pending| p.vertex).collect();
        let job = LocalJob {
            local_vertices,
            sources: RefCell::new(Vec::new()),
            id: prep.job.clone(),
            plan,
            index,
            workers: prep
                .workers
                .iter()
                .map(|w| (w.id.0.clone(), w.addr.clone()))
                .collect(),
            inputs,
            pending: RefCell::new(pending),
            statuses,
            arbiters: RefCell::new(Vec::new()),
            tasks: RefCell::new(Vec::new()),
            conns: RefCell::new(Vec::new()),
            scratch,
            events_tx,
            expected_done: RefCell::new(0),
            threads,
        };
        Ok((job, events_rx))
    }

    /// The input channel for frames of `edge` from instance `sender`, with its type.
    pub fn input_for(&self, edge: u32, sender: u32) -> Option<(CreditSender, PortType)> {
        self.inputs.get(&(edge, sender)).cloned()
    }

    /// The worker that runs instance `i` of every vertex (for error messages).
    pub fn worker_name(&self, i: u32) -> String {
        self.workers
            .get(i as usize)
            .map(|(w, _)| w.clone())
            .unwrap_or_else(|| format!("instance {i}"))
    }

    /// Reports a failure to the job's control stream.
    pub fn fail(&self, reason: String) {
        let _ = self.events_tx.send(JobEvent::Failed(reason));
    }

    /// A clone of the events sender (edge readers report through it).
    pub fn events(&self) -> mpsc::UnboundedSender<JobEvent> {
        self.events_tx.clone()
    }

    /// Connects outgoing edges and starts every local instance.
    pub async fn start(
        &self,
        endpoint: &Endpoint,
        worker_id: &str,
        cluster: &str,
    ) -> Result<(), String> {
        let n = self.workers.len();
        let s = self.plan.spec.settings.clone();
        // One connection per peer worker that some local instance sends to.
        let mut conns: HashMap<usize, Connection> = HashMap::new();
        let mut pending: HashMap<usize, Pending> = std::mem::take(&mut *self.pending.borrow_mut())
            .into_iter()
            .map(|p| (p.vertex, p))
            .collect();
        let mut expected = 0;
        let mut chains = Vec::new();
        for members in self.plan.chains() {
            if !pending.contains_key(&members[0]) {
                continue;
            }
            let mut built = Vec::new();
            let mut links = Vec::new();
            let mut outlets = Vec::new();
            let mut input = None;
            let mut statuses = Vec::new();
            for (m, &v) in members.iter().enumerate() {
                let p = pending
                    .remove(&v)
                    .ok_or_else(|| format!("chained vertex {v} has no instance here"))?;
                let link = members
                    .get(m + 1)
                    .and_then(|&next| self.plan.chained_input(next));
                if let Some(e) = link {
                    let pos = self.plan.vertices[v]
                        .outputs
                        .iter()
                        .position(|&o| o == e)
                        .ok_or("a chain link that is not an output")?;
                    links.push(pos);
                }
                if m == 0 {
                    input = p.input;
                }
                let my_instance = if self.plan.vertices[v].single {
                    0
                } else {
                    self.index
                };
                let mut targets = Vec::new();
                for &e in &self.plan.vertices[v].outputs {
                    let edge = &self.plan.edges[e];
                    let count = self.plan.instances(edge.to, n);
                    let mut row = Vec::new();
                    for t in 0..count {
                        let reachable = match edge.kind {
                            ringflow_stream::EdgeKind::Forward => t == my_instance,
                            _ => true,
                        };
                        if !reachable || Some(e) == link {
                            row.push(None);
                            continue;
                        }
                        if t == self.index {
                            let (sender, _) = self
                                .input_for(e as u32, my_instance as u32)
                                .ok_or_else(|| format!("no local input for edge {e}"))?;
                            row.push(Some(Target::Local(sender)));
                        } else {
                            let conn = match conns.get(&t) {
                                Some(c) => c.clone(),
                                None => {
                                    let (peer, addr) = &self.workers[t];
                                    let sa: SocketAddr = addr
                                        .parse()
                                        .map_err(|_| format!("bad address {addr} of {peer}"))?;
                                    let c = endpoint
                                        .connect(sa)
                                        .await
                                        .map_err(|e| format!("connecting to {peer}: {e}"))?;
                                    conns.insert(t, c.clone());
                                    c
                                }
                            };
                            let open = EdgeOpen {
                                job: self.id.clone(),
                                edge: e as u32,
                                sender: my_instance as u32,
                                receiver: t as u32,
                            };
                            let (tx, task) = edge::open(
                                &conn,
                                open,
                                worker_id,
                                cluster,
                                self.workers[t].0.clone(),
                                s.edge_credits,
                                self.events_tx.clone(),
                            )
                            .await?;
                            expected += 1;
                            self.tasks.borrow_mut().push(task);
                            row.push(Some(Target::Remote {
                                tx,
                                port: self.plan.vertices[v].output,
                            }));
                        }
                    }
                    targets.push(row);
                }
                outlets.push(targets);
                expected += 1;
                statuses.push(
                    self.statuses
                        .iter()
                        .find(|(sv, _)| *sv == v)
                        .map(|(_, s)| s.clone())
                        .ok_or("missing status")?,
                );
                built.push((v, p.instance));
            }
            let chain = Chain::new(built, links).map_err(|e| e.to_string())?;
            chains.push((
                chain,
                input,
                statuses,
                Arc::new(Outlets { targets: outlets }),
            ));
        }
        *self.expected_done.borrow_mut() = expected;
        self.conns.borrow_mut().extend(conns.into_values());

        // The job's actors share a bounded set of threads (`[stream] threads` of the
        // worker), operators before sources, so nothing waits on an actor that is not
        // there yet.
        chains.sort_by_key(|(c, ..)| c.is_source());
        let threads = self.threads.clamp(1, chains.len().max(1));
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let (inst_tx, mut inst_rx) = mpsc::unbounded_channel::<InstanceEvent>();
        let tick = Duration::from_millis((s.linger_ms / 2).clamp(5, 1000));
        for (k, (chain, input, statuses, outlets)) in chains.into_iter().enumerate() {
            let arbiter = &arbiters[k % threads];
            let events = inst_tx.clone();
            if chain.is_source() {
                let budget = s.batch_size;
                let max_wait = Duration::from_millis(s.linger_ms.min(s.idle_timeout_ms / 2).max(1));
                let addr = SourceActor::start_in_arbiter(&arbiter.handle(), move |_| SourceActor {
                    inst: chain,
                    outlets,
                    statuses,
                    events,
                    budget,
                    max_wait,
                    failed: false,
                });
                self.sources.borrow_mut().push(addr);
            } else {
                let (queue, gauge) = input.ok_or("operator without input")?;
                OperatorActor::start_in_arbiter(&arbiter.handle(), move |_| OperatorActor {
                    inst: chain,
                    stash: Default::default(),
                    input: Some(queue),
                    gauge,
                    outlets,
                    statuses,
                    events,
                    tick,
                    failed: false,
                });
            }
        }
        self.arbiters.borrow_mut().extend(arbiters);
        drop(inst_tx);
        // Relay instance events (they come from other threads) onto the job's channel.
        let events = self.events_tx.clone();
        let relay = actix_rt::spawn(async move {
            while let Some(ev) = inst_rx.recv().await {
                let ev = match ev {
                    InstanceEvent::Finished(v, last) => JobEvent::Done(Some((v, last))),
                    InstanceEvent::Failed(r) => JobEvent::Failed(r),
                    InstanceEvent::Snapshot {
                        vertex,
                        snapshot,
                        alignment_ms,
                    } => JobEvent::Snapshot {
                        vertex,
                        snapshot,
                        alignment_ms,
                    },
                };
                if events.send(ev).is_err() {
                    break;
                }
            }
        });
        self.tasks.borrow_mut().push(relay);
        Ok(())
    }

    /// Starts checkpoint `id` at every local source (a finished one adds nothing).
    pub fn inject_barrier(&self, id: ringflow_stream::checkpoint::CheckpointId) {
        for s in self.sources.borrow().iter() {
            s.do_send(crate::actors::InjectBarrier(id));
        }
    }

    /// Per-vertex counters of this worker.
    pub fn status(&self) -> Vec<VertexStatus> {
        self.statuses
            .iter()
            .filter_map(|(_, s)| s.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// Stops every actor and task of the job here.
    pub fn stop(&self) {
        for t in self.tasks.borrow_mut().drain(..) {
            t.abort();
        }
        for a in self.arbiters.borrow_mut().iter() {
            a.stop();
        }
    }

    /// Stops the job here and waits until every one of its threads has ended (no
    /// operator of it writes anything any more), at most `limit`.
    pub async fn stop_and_wait(&self, limit: std::time::Duration) {
        self.stop();
        let arbiters: Vec<Arbiter> = self.arbiters.borrow_mut().drain(..).collect();
        if arbiters.is_empty() {
            return;
        }
        let joined = tokio::task::spawn_blocking(move || {
            for a in arbiters {
                let _ = a.join();
            }
        });
        if tokio::time::timeout(limit, joined).await.is_err() {
            tracing::warn!(job = %self.id, "the job's threads did not stop in time");
        }
    }
}

impl Drop for LocalJob {
    fn drop(&mut self) {
        self.stop();
        // Spill files and scratch data die with the job.
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
