//! Chains of instances (see [`Chain`]) as actix actors, spread over the job's bounded
//! set of Arbiters (threads), none on the QUIC endpoint's thread, so a CPU-heavy operator
//! never delays the network.
//!
//! An operator actor (a chain headed by an operator) reads its credit-bounded [`InputQueue`] as a stream (decoding the
//! batches that came encoded from other workers); while it waits
//! for downstream credit (`ctx.wait`) it reads nothing, so its own input fills and its
//! senders wait in turn: backpressure reaches the sources, which are only polled when
//! their previous output has been accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use ringflow_cluster::clock::now_ms;
use ringflow_proto::VertexStatus;
use ringflow_stream::checkpoint::{CheckpointId, InstanceSnapshot};
use ringflow_stream::instance::{Chain, ChainEvent, ChainOutgoing, InstanceMetrics};
use ringflow_stream::SourcePoll;
use tokio::sync::mpsc;

use crate::credit::{Delivery, InputQueue, QueueGauge};
use crate::edge::Outlets;

/// What instances tell their job.
#[derive(Debug)]
pub(crate) enum InstanceEvent {
    /// The instance of vertex `.0` ended and passed the end on; a source's final
    /// position (`.1`) stands in for it in the checkpoints taken after.
    Finished(usize, Option<ringflow_stream::checkpoint::InstanceSnapshot>),
    /// The instance failed.
    Failed(String),
    /// The instance of a vertex took its snapshot of a checkpoint.
    Snapshot {
        /// The vertex.
        vertex: usize,
        /// The snapshot.
        snapshot: InstanceSnapshot,
        /// How long its barriers took to align (ms).
        alignment_ms: u64,
    },
}

/// Shared counters of one instance, read by the job's progress reports.
pub(crate) type SharedStatus = Arc<Mutex<VertexStatus>>;

fn publish(status: &SharedStatus, m: &InstanceMetrics, gauge: Option<&QueueGauge>, done: bool) {
    if let Ok(mut s) = status.lock() {
        s.records_in = m.records_in;
        s.records_out = m.records_out;
        s.watermark = m.watermark;
        s.counters = m.counters.clone();
        s.finished = u32::from(done);
        if let Some(g) = gauge {
            s.queued = g.queued();
            s.queue_capacity = g.capacity();
        }
    }
}

/// Publishes every member's counters (the head's with its queue).
fn publish_chain(chain: &mut Chain, statuses: &[SharedStatus], gauge: Option<&QueueGauge>) {
    let done = chain.is_finished();
    for (i, status) in statuses.iter().enumerate() {
        if let Some(m) = chain.metrics(i) {
            publish(status, &m, if i == 0 { gauge } else { None }, done);
        }
    }
}

/// Tells the job what the chain's members did (snapshots, ends). Counters are
/// published before an end is reported: the job's final status is read once every
/// instance has ended.
fn report(
    chain: &mut Chain,
    events: &mpsc::UnboundedSender<InstanceEvent>,
    statuses: &[SharedStatus],
    gauge: Option<&QueueGauge>,
) {
    let evs = chain.take_events();
    if evs.iter().any(|e| matches!(e, ChainEvent::Finished(..))) {
        publish_chain(chain, statuses, gauge);
    }
    for ev in evs {
        let _ = events.send(match ev {
            ChainEvent::Snapshot {
                vertex,
                snapshot,
                alignment_ms,
            } => InstanceEvent::Snapshot {
                vertex,
                snapshot,
                alignment_ms,
            },
            ChainEvent::Finished(v, last) => InstanceEvent::Finished(v, last),
        });
    }
}

/// A chain headed by an operator, as an actor.
pub(crate) struct OperatorActor {
    pub inst: Chain,
    /// Deliveries from inputs blocked by a checkpoint barrier, with their credit still
    /// taken (so those senders wait), until the barrier is aligned.
    pub stash: std::collections::VecDeque<Delivery>,
    pub input: Option<InputQueue>,
    pub gauge: QueueGauge,
    pub outlets: Arc<Outlets>,
    /// One per member, head first.
    pub statuses: Vec<SharedStatus>,
    pub events: mpsc::UnboundedSender<InstanceEvent>,
    pub tick: Duration,
    pub failed: bool,
}

impl OperatorActor {
    fn forward(
        &mut self,
        out: Result<Vec<ChainOutgoing>, ringflow_stream::StreamError>,
        ctx: &mut Context<Self>,
    ) {
        let mut out = match out {
            Ok(o) => o,
            Err(e) => return self.fail(e.to_string(), ctx),
        };
        self.report_snapshots();
        // A barrier just aligned: what its inputs sent meanwhile runs now, in order
        // (messages of an input blocked again by the next barrier stay stashed).
        if !self.stash.is_empty() {
            let stash = std::mem::take(&mut self.stash);
            for d in stash {
                if self.inst.is_blocked(d.chan) {
                    self.stash.push_back(d);
                    continue;
                }
                match self.deliver(d) {
                    Ok(more) => out.extend(more),
                    Err(e) => return self.fail(e, ctx),
                }
                self.report_snapshots();
            }
        }
        if out.is_empty() {
            return self.after_send(ctx);
        }
        let fut = self.outlets.clone().send_all(out);
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(()) => act.after_send(ctx),
            Err(e) => act.fail(e, ctx),
        }));
    }

    /// Continues a drain (a large final output, one part per step) or checks for the end.
    fn after_send(&mut self, ctx: &mut Context<Self>) {
        if self.inst.is_draining() {
            ctx.notify(DrainStep);
        } else {
            self.check_done(ctx);
        }
    }

    fn check_done(&mut self, ctx: &mut Context<Self>) {
        publish_chain(&mut self.inst, &self.statuses, Some(&self.gauge));
        if self.inst.is_finished() {
            ctx.stop();
        }
    }

    /// Sends what the chain's members did to the job.
    fn report_snapshots(&mut self) {
        report(
            &mut self.inst,
            &self.events,
            &self.statuses,
            Some(&self.gauge),
        );
    }

    /// Hands one delivery to the instance; its credit returns once it is handled.
    fn deliver(&mut self, d: Delivery) -> Result<Vec<ChainOutgoing>, String> {
        let Delivery { chan, msg, permit } = d;
        let msg = msg.into_message()?;
        let out = self
            .inst
            .handle(chan, msg, now_ms())
            .map_err(|e| e.to_string());
        drop(permit);
        out
    }

    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        if !self.failed {
            self.failed = true;
            let _ = self.events.send(InstanceEvent::Failed(reason));
        }
        ctx.stop();
    }
}

impl Actor for OperatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(input) = self.input.take() {
            ctx.add_stream(input);
        }
        ctx.run_interval(self.tick, |act, ctx| {
            let out = act.inst.tick(now_ms());
            act.forward(out, ctx);
        });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct DrainStep;

impl Handler<DrainStep> for OperatorActor {
    type Result = ();

    fn handle(&mut self, _: DrainStep, ctx: &mut Context<Self>) {
        let out = self.inst.drain(now_ms());
        self.forward(out, ctx);
    }
}

impl StreamHandler<Delivery> for OperatorActor {
    fn handle(&mut self, d: Delivery, ctx: &mut Context<Self>) {
        if self.inst.is_blocked(d.chan) {
            self.stash.push_back(d);
            return;
        }
        match self.deliver(d) {
            Ok(out) => self.forward(Ok(out), ctx),
            Err(reason) => self.fail(reason, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // Every sender is gone: the job is being torn down, or an upstream vanished
        // without an end.
        if !self.inst.is_finished() {
            self.fail(
                "the inputs of a vertex closed before their end".to_string(),
                ctx,
            );
        }
    }
}

/// A chain headed by a source, as an actor.
pub(crate) struct SourceActor {
    pub inst: Chain,
    pub outlets: Arc<Outlets>,
    /// One per member, head first.
    pub statuses: Vec<SharedStatus>,
    pub events: mpsc::UnboundedSender<InstanceEvent>,
    pub budget: usize,
    pub max_wait: Duration,
    pub failed: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

impl SourceActor {
    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        let _ = self.events.send(InstanceEvent::Failed(reason));
        self.failed = true;
        ctx.stop();
    }

    /// Reports what the chain did, sends `out` (the actor handles nothing else
    /// meanwhile), then goes on with [`SourceActor::next`].
    fn send_then(&mut self, out: Vec<ChainOutgoing>, poll: SourcePoll, ctx: &mut Context<Self>) {
        report(&mut self.inst, &self.events, &self.statuses, None);
        let fut = self.outlets.clone().send_all(out);
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => act.next(poll, ctx),
            Err(e) => act.fail(e, ctx),
        }));
    }

    /// Sends a draining member's next part, until none drains; then polls again or ends.
    fn next(&mut self, poll: SourcePoll, ctx: &mut Context<Self>) {
        if self.inst.is_draining() {
            let out = match self.inst.drain(now_ms()) {
                Ok(out) => out,
                Err(e) => return self.fail(e.to_string(), ctx),
            };
            return self.send_then(out, poll, ctx);
        }
        publish_chain(&mut self.inst, &self.statuses, None);
        match poll {
            SourcePoll::More => {
                ctx.notify(Poll);
            }
            SourcePoll::Wait(ms) => {
                ctx.notify_later(Poll, Duration::from_millis(ms).min(self.max_wait));
            }
            SourcePoll::Done => {
                if self.inst.is_finished() {
                    ctx.stop();
                } else {
                    // A chained member still has output to give: its linger time.
                    ctx.notify_later(Poll, self.max_wait);
                }
            }
        }
    }
}

impl Actor for SourceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Poll);
    }
}

impl Handler<Poll> for SourceActor {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Context<Self>) {
        let now = now_ms();
        let (mut out, poll) = match self.inst.poll(self.budget, now) {
            Ok(r) => r,
            Err(e) => return self.fail(e.to_string(), ctx),
        };
        // Chained members flush their partial batches after their linger time.
        match self.inst.tick(now) {
            Ok(more) => out.extend(more),
            Err(e) => return self.fail(e.to_string(), ctx),
        }
        self.send_then(out, poll, ctx);
    }
}

/// Starts a checkpoint at a source: its position, then the barrier downstream.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct InjectBarrier(pub CheckpointId);

impl Handler<InjectBarrier> for SourceActor {
    type Result = ();

    fn handle(&mut self, msg: InjectBarrier, ctx: &mut Context<Self>) {
        let out = match self.inst.barrier(msg.0, now_ms()) {
            Ok(out) => out,
            Err(e) => return self.fail(e.to_string(), ctx),
        };
        report(&mut self.inst, &self.events, &self.statuses, None);
        // Sent before the next poll's records (ctx.wait holds the actor's other messages).
        let fut = self.outlets.clone().send_all(out);
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                act.fail(e, ctx);
            }
        }));
    }
}
