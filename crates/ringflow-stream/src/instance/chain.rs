//! A chain of instances run as one (sans-IO): a head (a source or an operator with
//! inputs) and the operators chained after it, each fed directly with what the one
//! before emits on their forward edge, as Flink chains tasks. No queue, credit, actor
//! or thread lies between members; only the head has inputs from outside, and only the
//! edges that leave the chain produce [`ChainOutgoing`] messages for the runtime.
//!
//! Records on a chained edge go on at the end of every step (never after a linger
//! time); barriers, watermarks and ends pass through in order with them, and a
//! follower's single input aligns a barrier at once.

use super::{InstanceMetrics, OperatorInstance, Outgoing, SourceInstance};
use crate::checkpoint::{CheckpointId, InstanceSnapshot};
use crate::data::Message;
use crate::registry::Instance;
use crate::source::SourcePoll;
use crate::StreamError;

/// A message for an edge that leaves the chain, from the chain's `member`-th instance.
#[derive(Debug)]
pub struct ChainOutgoing {
    /// Index of the sending member (0: the head).
    pub member: usize,
    /// The message, with the edge index among that member's outputs.
    pub out: Outgoing,
}

/// What a chain's members did that the job must know.
#[derive(Debug)]
pub enum ChainEvent {
    /// A member took its snapshot of a checkpoint.
    Snapshot {
        /// The member's vertex.
        vertex: usize,
        /// The snapshot.
        snapshot: InstanceSnapshot,
        /// How long its barriers took to align (ms).
        alignment_ms: u64,
    },
    /// A member ended and passed its end on; a source head adds its final position.
    Finished(usize, Option<InstanceSnapshot>),
}

/// The head of a chain.
enum Head {
    Source(SourceInstance),
    Operator(OperatorInstance),
}

/// One chain's instances on one worker.
pub struct Chain {
    /// Vertex of each member, head first.
    vertices: Vec<usize>,
    head: Head,
    /// `links[i]`: the output edge (index among member `i`'s outputs) feeding member
    /// `i + 1`.
    links: Vec<usize>,
    followers: Vec<OperatorInstance>,
    reported: Vec<bool>,
    events: Vec<ChainEvent>,
}

impl Chain {
    /// A chain of `members` (vertex, instance) pairs, head first, where member `i + 1`'s
    /// only input is output edge `links[i]` of member `i`. Every member after the head
    /// must be an operator.
    pub fn new(members: Vec<(usize, Instance)>, links: Vec<usize>) -> Result<Self, StreamError> {
        if members.is_empty() || links.len() + 1 != members.len() {
            return Err(StreamError::Chain(format!(
                "{} members need {} links, got {}",
                members.len(),
                members.len().saturating_sub(1),
                links.len()
            )));
        }
        let mut it = members.into_iter();
        let Some((head_vertex, head)) = it.next() else {
            return Err(StreamError::Chain("an empty chain".into()));
        };
        let head = match head {
            Instance::Source(s) => Head::Source(s),
            Instance::Operator(o) => Head::Operator(o),
        };
        let mut vertices = vec![head_vertex];
        let mut followers = Vec::new();
        for (v, inst) in it {
            match inst {
                Instance::Operator(o) => followers.push(o),
                Instance::Source(s) => {
                    return Err(StreamError::Chain(format!(
                        "source '{}' cannot follow another vertex",
                        s.vertex()
                    )))
                }
            }
            vertices.push(v);
        }
        let n = vertices.len();
        Ok(Chain {
            vertices,
            head,
            links,
            followers,
            reported: vec![false; n],
            events: Vec::new(),
        })
    }

    /// The members' vertices, head first.
    pub fn vertices(&self) -> &[usize] {
        &self.vertices
    }

    /// True when the head is a source (polled, and where checkpoints start).
    pub fn is_source(&self) -> bool {
        matches!(self.head, Head::Source(_))
    }

    /// Whether the head's `input` is blocked by a checkpoint barrier.
    pub fn is_blocked(&self, input: usize) -> bool {
        match &self.head {
            Head::Operator(o) => o.is_blocked(input),
            Head::Source(_) => false,
        }
    }

    /// Handles one message from the head's input channel `input`.
    pub fn handle(
        &mut self,
        input: usize,
        msg: Message,
        now: u64,
    ) -> Result<Vec<ChainOutgoing>, StreamError> {
        let out = match &mut self.head {
            Head::Operator(o) => o.handle(input, msg, now)?,
            Head::Source(s) => {
                return Err(StreamError::Chain(format!(
                    "source '{}' has no inputs",
                    s.vertex()
                )))
            }
        };
        self.step(out, now)
    }

    /// Polls a source head for up to `budget` records.
    pub fn poll(
        &mut self,
        budget: usize,
        now: u64,
    ) -> Result<(Vec<ChainOutgoing>, SourcePoll), StreamError> {
        let (out, poll) = match &mut self.head {
            Head::Source(s) => s.poll(budget, now)?,
            Head::Operator(_) => return Ok((Vec::new(), SourcePoll::Done)),
        };
        Ok((self.step(out, now)?, poll))
    }

    /// Starts checkpoint `id` at a source head (see [`SourceInstance::barrier`]).
    pub fn barrier(
        &mut self,
        id: CheckpointId,
        now: u64,
    ) -> Result<Vec<ChainOutgoing>, StreamError> {
        let out = match &mut self.head {
            Head::Source(s) => s.barrier(id)?,
            Head::Operator(_) => Vec::new(),
        };
        self.step(out, now)
    }

    /// Flushes batches whose linger time has passed, member by member.
    pub fn tick(&mut self, now: u64) -> Result<Vec<ChainOutgoing>, StreamError> {
        let mut ext = Vec::new();
        if let Head::Operator(o) = &mut self.head {
            let out = o.tick(now)?;
            self.route(0, out, now, &mut ext)?;
        }
        for i in 0..self.followers.len() {
            let out = self.followers[i].tick(now)?;
            self.route(i + 1, out, now, &mut ext)?;
        }
        self.settle(now, &mut ext)?;
        Ok(ext)
    }

    /// True while a member is emitting a large result after its end: call
    /// [`Chain::drain`] (after sending what it returned) until it is false.
    pub fn is_draining(&self) -> bool {
        matches!(&self.head, Head::Operator(o) if o.is_draining())
            || self.followers.iter().any(OperatorInstance::is_draining)
    }

    /// The next part of the first draining member's final output.
    pub fn drain(&mut self, now: u64) -> Result<Vec<ChainOutgoing>, StreamError> {
        let mut ext = Vec::new();
        if let Head::Operator(o) = &mut self.head {
            if o.is_draining() {
                let out = o.drain(now)?;
                self.route(0, out, now, &mut ext)?;
                self.settle(now, &mut ext)?;
                return Ok(ext);
            }
        }
        if let Some(i) = self
            .followers
            .iter()
            .position(OperatorInstance::is_draining)
        {
            let out = self.followers[i].drain(now)?;
            self.route(i + 1, out, now, &mut ext)?;
        }
        self.settle(now, &mut ext)?;
        Ok(ext)
    }

    /// True once every member ended and passed its end on.
    pub fn is_finished(&self) -> bool {
        let head = match &self.head {
            Head::Source(s) => s.is_finished(),
            Head::Operator(o) => o.is_finished(),
        };
        head && self.followers.iter().all(OperatorInstance::is_finished)
    }

    /// Snapshots taken and members finished since the last call, in order.
    pub fn take_events(&mut self) -> Vec<ChainEvent> {
        std::mem::take(&mut self.events)
    }

    /// Counters of member `i` (0: the head).
    pub fn metrics(&mut self, i: usize) -> Option<InstanceMetrics> {
        if i == 0 {
            return Some(match &mut self.head {
                Head::Source(s) => s.metrics(),
                Head::Operator(o) => o.metrics(),
            });
        }
        self.followers.get(i - 1).map(OperatorInstance::metrics)
    }

    /// What member `from` emitted: messages on its chained edge run the next member at
    /// once (recursively); the rest leave the chain.
    fn route(
        &mut self,
        from: usize,
        out: Vec<Outgoing>,
        now: u64,
        ext: &mut Vec<ChainOutgoing>,
    ) -> Result<(), StreamError> {
        let link = self.links.get(from).copied();
        for o in out {
            if Some(o.edge) == link {
                let more = self.followers[from].handle(0, o.msg, now)?;
                self.route(from + 1, more, now, ext)?;
            } else {
                ext.push(ChainOutgoing {
                    member: from,
                    out: o,
                });
            }
        }
        Ok(())
    }

    /// After a step: the chained edges' partial batches go on, member by member; then
    /// the snapshots and ends it produced become events.
    fn step(&mut self, out: Vec<Outgoing>, now: u64) -> Result<Vec<ChainOutgoing>, StreamError> {
        let mut ext = Vec::new();
        self.route(0, out, now, &mut ext)?;
        self.settle(now, &mut ext)?;
        Ok(ext)
    }

    fn settle(&mut self, now: u64, ext: &mut Vec<ChainOutgoing>) -> Result<(), StreamError> {
        for i in 0..self.links.len() {
            let link = self.links[i];
            let out = if i == 0 {
                match &mut self.head {
                    Head::Source(s) => s.flush_edge(link),
                    Head::Operator(o) => o.flush_edge(link),
                }
            } else {
                self.followers[i - 1].flush_edge(link)
            };
            self.route(i, out, now, ext)?;
        }
        self.collect_events()
    }

    fn collect_events(&mut self) -> Result<(), StreamError> {
        match &mut self.head {
            Head::Source(s) => {
                for snapshot in s.take_snapshots() {
                    self.events.push(ChainEvent::Snapshot {
                        vertex: self.vertices[0],
                        snapshot,
                        alignment_ms: 0,
                    });
                }
                if s.is_finished() && !self.reported[0] {
                    self.reported[0] = true;
                    let last = s.final_position()?;
                    self.events
                        .push(ChainEvent::Finished(self.vertices[0], Some(last)));
                }
            }
            Head::Operator(o) => {
                let alignment_ms = o.last_alignment_ms();
                for snapshot in o.take_snapshots() {
                    self.events.push(ChainEvent::Snapshot {
                        vertex: self.vertices[0],
                        snapshot,
                        alignment_ms,
                    });
                }
                if o.is_finished() && !self.reported[0] {
                    self.reported[0] = true;
                    self.events
                        .push(ChainEvent::Finished(self.vertices[0], None));
                }
            }
        }
        for (i, f) in self.followers.iter_mut().enumerate() {
            let alignment_ms = f.last_alignment_ms();
            for snapshot in f.take_snapshots() {
                self.events.push(ChainEvent::Snapshot {
                    vertex: self.vertices[i + 1],
                    snapshot,
                    alignment_ms,
                });
            }
            if f.is_finished() && !self.reported[i + 1] {
                self.reported[i + 1] = true;
                self.events
                    .push(ChainEvent::Finished(self.vertices[i + 1], None));
            }
        }
        Ok(())
    }
}
