//! Runs a planned job on simulated workers in one thread, deterministically: the same
//! operators and instance executor as the cluster, with in-memory queues instead of actors and
//! QUIC, and a simulated clock. Unit tests and the single-process reference use it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use ringflow_ring::RingConfig;

use crate::instance::{self, Chain, ChainOutgoing, InstanceMetrics, Routing};
use crate::operator::InitContext;
use crate::plan::JobPlan;
use crate::registry::Registry;
use crate::source::SourcePoll;
use crate::{Message, StreamError};

/// A job running on `workers` simulated workers in this thread.
pub struct LocalRunner {
    plan: JobPlan,
    workers: usize,
    /// `chains[c][i]`: instance `i` of chain `c` (as [`JobPlan::chains`] lists them).
    chains: Vec<Vec<Chain>>,
    /// Chain of each vertex.
    chain_of: Vec<usize>,
    /// (head vertex, receiver, edge, sender) -> input channel index of the receiver.
    channels: HashMap<(usize, usize, usize, usize), usize>,
    queue: VecDeque<(usize, usize, usize, Message)>,
    wake_at: Vec<Vec<u64>>,
    now: u64,
    max_batch_delivery: usize,
}

impl LocalRunner {
    /// Instantiates every vertex on `workers` simulated workers, chained as the plan
    /// says; `now` starts the clock.
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
        let mut channels = HashMap::new();
        let mut chain_of = vec![0; plan.vertices.len()];
        let mut chains = Vec::new();
        for (c, members) in plan.chains().into_iter().enumerate() {
            let head = members[0];
            let n = plan.instances(head, workers);
            let mut row = Vec::new();
            for i in 0..n {
                let chans = plan.input_channels(head, i, workers);
                for (ch, &(e, sender)) in chans.iter().enumerate() {
                    channels.insert((head, i, e, sender), ch);
                }
                let mut built = Vec::new();
                let mut links = Vec::new();
                for &v in &members {
                    if let Some(e) = plan.chained_input(v) {
                        let up = plan.edges[e].from;
                        let pos = plan.vertices[up].outputs.iter().position(|&o| o == e);
                        links.push(pos.unwrap_or(usize::MAX));
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
                    let inst =
                        instance::build(&plan, registry, v, i, workers, &base, &routing, now)?;
                    built.push((v, inst));
                }
                row.push(Chain::new(built, links)?);
            }
            for &v in &members {
                chain_of[v] = c;
            }
            chains.push(row);
        }
        let wake_at = chains.iter().map(|r| vec![now; r.len()]).collect();
        Ok(LocalRunner {
            plan,
            workers,
            chains,
            chain_of,
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
        self.chains.iter().flatten().all(Chain::is_finished)
    }

    fn route(&mut self, c: usize, sender: usize, out: Vec<ChainOutgoing>) {
        for ChainOutgoing { member, out: o } in out {
            let v = self.chains[c][sender].vertices()[member];
            let Some(&e) = self.plan.vertices[v].outputs.get(o.edge) else {
                continue;
            };
            let to = self.plan.edges[e].to;
            if let Some(&chan) = self.channels.get(&(to, o.target, e, sender)) {
                self.queue
                    .push_back((self.chain_of[to], o.target, chan, o.msg));
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
            for c in 0..self.chains.len() {
                for i in 0..self.chains[c].len() {
                    let chain = &mut self.chains[c][i];
                    if self.wake_at[c][i] > self.now || !chain.is_source() || chain.is_finished() {
                        continue;
                    }
                    let (out, poll) = chain.poll(budget, self.now)?;
                    chain.take_events();
                    if !out.is_empty() {
                        progressed = true;
                    }
                    self.wake_at[c][i] = match poll {
                        SourcePoll::More => self.now,
                        SourcePoll::Wait(ms) => self.now + ms.max(1),
                        SourcePoll::Done => u64::MAX,
                    };
                    self.route(c, i, out);
                    self.drain(c, i)?;
                }
            }
            // Deliver everything queued.
            let mut delivered = 0;
            while let Some((c, i, chan, msg)) = self.queue.pop_front() {
                progressed = true;
                delivered += 1;
                let out = self.chains[c][i].handle(chan, msg, self.now)?;
                self.chains[c][i].take_events();
                self.route(c, i, out);
                self.drain(c, i)?;
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
                for c in 0..self.chains.len() {
                    for i in 0..self.chains[c].len() {
                        let out = self.chains[c][i].tick(self.now)?;
                        self.chains[c][i].take_events();
                        self.route(c, i, out);
                    }
                }
            }
        }
        Ok(self.is_finished())
    }

    fn drain(&mut self, c: usize, i: usize) -> Result<(), StreamError> {
        while self.chains[c][i].is_draining() {
            let out = self.chains[c][i].drain(self.now)?;
            self.chains[c][i].take_events();
            self.route(c, i, out);
        }
        Ok(())
    }

    /// Metrics of every instance, by vertex name.
    pub fn metrics(&mut self) -> Vec<(String, usize, InstanceMetrics)> {
        let mut out = Vec::new();
        for row in self.chains.iter_mut() {
            for (i, chain) in row.iter_mut().enumerate() {
                let vertices = chain.vertices().to_vec();
                for (m, v) in vertices.into_iter().enumerate() {
                    if let Some(metrics) = chain.metrics(m) {
                        out.push((v, i, metrics));
                    }
                }
            }
        }
        out.sort_by_key(|a| (a.0, a.1));
        out.into_iter()
            .map(|(v, i, m)| (self.plan.vertices[v].name.clone(), i, m))
            .collect()
    }

    /// Number of simulated workers.
    pub fn workers(&self) -> usize {
        self.workers
    }
}
