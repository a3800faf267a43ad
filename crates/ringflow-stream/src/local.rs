//! Runs a planned job on simulated workers in one thread, deterministically: the same
//! operators and instance executor as the cluster, with in-memory queues instead of actors and
//! QUIC, and a simulated clock. Unit tests and the single-process reference use it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use ringflow_ring::RingConfig;

use crate::instance::{self, InstanceMetrics, Outgoing, Routing};
use crate::operator::InitContext;
use crate::plan::JobPlan;
use crate::registry::{Instance, Registry};
use crate::source::SourcePoll;
use crate::{Message, StreamError};

/// A job running on `workers` simulated workers in this thread.
pub struct LocalRunner {
    plan: JobPlan,
    workers: usize,
    /// `instances[v][i]`: instance `i` of vertex `v` (None where it does not run).
    instances: Vec<Vec<Option<Instance>>>,
    /// (vertex, receiver, edge, sender) -> input channel index of the receiver.
    channels: HashMap<(usize, usize, usize, usize), usize>,
    queue: VecDeque<(usize, usize, usize, Message)>,
    wake_at: Vec<Vec<u64>>,
    now: u64,
    max_batch_delivery: usize,
}

impl LocalRunner {
    /// Instantiates every vertex on `workers` simulated workers; `now` starts the clock.
    pub fn new(
        plan: JobPlan,
        registry: &Registry,
        workers: usize,
        ring: RingConfig,
        scratch_dir: PathBuf,
        now: u64,
    ) -> Result<Self, StreamError> {
        let workers = workers.max(1);
        let routing = Routing::round_robin(ring, workers as u32);
        let mut instances = Vec::new();
        let mut channels = HashMap::new();
        for v in 0..plan.vertices.len() {
            let n = plan.instances(v, workers);
            let mut row = Vec::new();
            for i in 0..n {
                let chans = plan.input_channels(v, i, workers);
                for (c, &(e, sender)) in chans.iter().enumerate() {
                    channels.insert((v, i, e, sender), c);
                }
                let base = InitContext {
                    job: "local".into(),
                    vertex: String::new(),
                    worker: format!("w{i}"),
                    instance: i,
                    instances: n,
                    ring,
                    scratch_dir: scratch_dir.clone(),
                    validate_only: false,
                    extensions: registry.extensions().clone(),
                };
                row.push(Some(instance::build(
                    &plan, registry, v, i, workers, &base, &routing, now,
                )?));
            }
            instances.push(row);
        }
        let wake_at = instances.iter().map(|r| vec![now; r.len()]).collect();
        Ok(LocalRunner {
            plan,
            workers,
            instances,
            channels,
            queue: VecDeque::new(),
            wake_at,
            now,
            max_batch_delivery: usize::MAX,
        })
    }

    /// The simulated clock.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// True when every instance has finished.
    pub fn is_finished(&self) -> bool {
        self.instances.iter().flatten().flatten().all(|i| match i {
            Instance::Operator(o) => o.is_finished(),
            Instance::Source(s) => s.is_finished(),
        })
    }

    fn route(&mut self, v: usize, sender: usize, out: Vec<Outgoing>) {
        for o in out {
            let Some(&e) = self.plan.vertices[v].outputs.get(o.edge) else {
                continue;
            };
            let to = self.plan.edges[e].to;
            if let Some(&chan) = self.channels.get(&(to, o.target, e, sender)) {
                self.queue.push_back((to, o.target, chan, o.msg));
            }
        }
    }

    /// Runs until every instance has finished or `max_ms` of simulated time passed.
    /// Returns whether the job finished.
    pub fn run(&mut self, max_ms: u64) -> Result<bool, StreamError> {
        let deadline = self.now.saturating_add(max_ms);
        let budget = self.plan.spec.settings.batch_size;
        while !self.is_finished() && self.now <= deadline {
            let mut progressed = false;
            // Sources whose wake time has come.
            for v in 0..self.instances.len() {
                for i in 0..self.instances[v].len() {
                    if self.wake_at[v][i] > self.now {
                        continue;
                    }
                    let Some(Instance::Source(src)) = self.instances[v][i].as_mut() else {
                        continue;
                    };
                    if src.is_finished() {
                        continue;
                    }
                    let (out, poll) = src.poll(budget, self.now)?;
                    if !out.is_empty() {
                        progressed = true;
                    }
                    self.wake_at[v][i] = match poll {
                        SourcePoll::More => self.now,
                        SourcePoll::Wait(ms) => self.now + ms.max(1),
                        SourcePoll::Done => u64::MAX,
                    };
                    self.route(v, i, out);
                }
            }
            // Deliver everything queued.
            let mut delivered = 0;
            while let Some((v, i, chan, msg)) = self.queue.pop_front() {
                progressed = true;
                delivered += 1;
                let out = match self.instances[v][i].as_mut() {
                    Some(Instance::Operator(op)) => op.handle(chan, msg, self.now)?,
                    _ => Vec::new(),
                };
                self.route(v, i, out);
                while let Some(Instance::Operator(op)) = self.instances[v][i].as_mut() {
                    if !op.is_draining() {
                        break;
                    }
                    let out = op.drain(self.now)?;
                    self.route(v, i, out);
                }
                if delivered >= self.max_batch_delivery {
                    break;
                }
            }
            if !progressed {
                let next_wake = self
                    .wake_at
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|&t| t > self.now)
                    .min()
                    .unwrap_or(u64::MAX);
                let step = self.plan.spec.settings.linger_ms.max(1);
                self.now = next_wake.min(self.now + step);
                for v in 0..self.instances.len() {
                    for i in 0..self.instances[v].len() {
                        let out = match self.instances[v][i].as_mut() {
                            Some(Instance::Operator(op)) => op.tick(self.now)?,
                            _ => Vec::new(),
                        };
                        self.route(v, i, out);
                    }
                }
            }
        }
        Ok(self.is_finished())
    }

    /// Metrics of every instance, by vertex name.
    pub fn metrics(&mut self) -> Vec<(String, usize, InstanceMetrics)> {
        let mut out = Vec::new();
        for (v, row) in self.instances.iter_mut().enumerate() {
            for (i, inst) in row.iter_mut().enumerate() {
                let m = match inst {
                    Some(Instance::Operator(o)) => o.metrics(),
                    Some(Instance::Source(s)) => s.metrics(),
                    None => continue,
                };
                out.push((self.plan.vertices[v].name.clone(), i, m));
            }
        }
        out
    }

    /// Number of simulated workers.
    pub fn workers(&self) -> usize {
        self.workers
    }
}
