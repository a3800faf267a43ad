//! One running source instance: polled for as many records as there is credit for.

use std::collections::BTreeMap;

use super::{InstanceConfig, InstanceMetrics};
use crate::checkpoint::{CheckpointId, InstanceSnapshot, Restore};
use crate::data::{EventTime, Message, MIN_TIME};
use crate::operator::OpError;
use crate::outputs::{ErasedOutputs, Outgoing, Outputs};
use crate::source::{Source, SourceOutput, SourcePoll};
use crate::StreamError;

/// A source with its types erased.
pub(crate) trait DynSource: Send {
    fn poll(
        &mut self,
        budget: usize,
        now: u64,
        counters: &mut BTreeMap<String, u64>,
    ) -> Result<(SourcePoll, Option<EventTime>, usize), OpError>;
    fn outputs_mut(&mut self) -> &mut dyn ErasedOutputs;
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, OpError>;
    fn restore(&mut self, positions: Vec<Vec<u8>>) -> Result<(), OpError>;
}

pub(crate) struct SrcBox<S: Source> {
    pub src: S,
    pub out: Outputs<S::Out>,
}

impl<S: Source> DynSource for SrcBox<S> {
    fn poll(
        &mut self,
        budget: usize,
        now: u64,
        counters: &mut BTreeMap<String, u64>,
    ) -> Result<(SourcePoll, Option<EventTime>, usize), OpError> {
        let mut out = SourceOutput {
            out: &mut self.out,
            budget,
            emitted: 0,
            watermark: None,
            counters,
            now,
        };
        let poll = self.src.poll(&mut out)?;
        Ok((poll, out.watermark, out.emitted))
    }
    fn outputs_mut(&mut self) -> &mut dyn ErasedOutputs {
        &mut self.out
    }
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        self.src.snapshot()
    }
    fn restore(&mut self, positions: Vec<Vec<u8>>) -> Result<(), OpError> {
        self.src.restore(positions)
    }
}

/// One running source instance (sans-IO).
pub struct SourceInstance {
    cfg: InstanceConfig,
    src: Box<dyn DynSource>,
    watermark: EventTime,
    counters: BTreeMap<String, u64>,
    pending_since: Option<u64>,
    last_emit: u64,
    idle: bool,
    done: bool,
    snapshots: Vec<InstanceSnapshot>,
}

impl SourceInstance {
    pub(crate) fn new(cfg: InstanceConfig, src: Box<dyn DynSource>, now: u64) -> Self {
        SourceInstance {
            cfg,
            src,
            watermark: MIN_TIME,
            counters: BTreeMap::new(),
            pending_since: None,
            last_emit: now,
            idle: false,
            done: false,
            snapshots: Vec::new(),
        }
    }

    /// Starts checkpoint `checkpoint` here: records the source's position (taken by
    /// [`SourceInstance::take_snapshots`]) and sends the barrier on every output, after
    /// every record emitted before. A finished source has nothing to add: it sends
    /// nothing (its end already went out).
    pub fn barrier(&mut self, checkpoint: CheckpointId) -> Result<Vec<Outgoing>, StreamError> {
        if self.done {
            return Ok(Vec::new());
        }
        let position = self.src.snapshot().map_err(|e| {
            StreamError::Checkpoint(format!(
                "vertex '{}': snapshot of checkpoint {checkpoint}: {}",
                self.cfg.vertex, e.0
            ))
        })?;
        self.snapshots.push(InstanceSnapshot {
            checkpoint,
            vertex: self.cfg.vertex.clone(),
            instance: self.cfg.instance,
            partitions: Default::default(),
            operator: position.map(serde_bytes::ByteBuf::from),
        });
        let out = self.src.outputs_mut();
        out.flush();
        self.pending_since = None;
        out.queue_for_all(&|| Message::Barrier(checkpoint));
        Ok(out.take_ready())
    }

    /// The position of a source that is done (checkpoint 0): kept by the worker for the
    /// checkpoints taken after it finished, so a restore knows it read everything.
    pub fn final_position(&mut self) -> Result<InstanceSnapshot, StreamError> {
        let position = self.src.snapshot().map_err(|e| {
            StreamError::Checkpoint(format!(
                "vertex '{}': final position: {}",
                self.cfg.vertex, e.0
            ))
        })?;
        Ok(InstanceSnapshot {
            checkpoint: 0,
            vertex: self.cfg.vertex.clone(),
            instance: self.cfg.instance,
            partitions: Default::default(),
            operator: position.map(serde_bytes::ByteBuf::from),
        })
    }

    /// Sends the partial batches of output edge `edge` now (see
    /// [`OperatorInstance::flush_edge`](super::OperatorInstance::flush_edge)).
    pub fn flush_edge(&mut self, edge: usize) -> Vec<Outgoing> {
        let out = self.src.outputs_mut();
        out.flush_edge(edge);
        out.take_ready()
    }

    /// The snapshots taken since the last call, oldest first.
    pub fn take_snapshots(&mut self) -> Vec<InstanceSnapshot> {
        std::mem::take(&mut self.snapshots)
    }

    /// Resumes from a checkpoint (before the first poll): the positions `restore` gives
    /// this instance.
    pub fn restore(&mut self, restore: Restore) -> Result<(), StreamError> {
        self.src.restore(restore.operator).map_err(|e| {
            StreamError::Checkpoint(format!("vertex '{}': restore: {}", self.cfg.vertex, e.0))
        })
    }

    /// The vertex this instance runs.
    pub fn vertex(&self) -> &str {
        &self.cfg.vertex
    }

    /// True once the source ended and the end was passed on.
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Counters.
    pub fn metrics(&mut self) -> InstanceMetrics {
        InstanceMetrics {
            records_in: 0,
            records_out: self.src.outputs_mut().emitted(),
            watermark: self.watermark,
            counters: self.counters.clone(),
        }
    }

    /// Polls the source for up to `budget` records.
    pub fn poll(
        &mut self,
        budget: usize,
        now: u64,
    ) -> Result<(Vec<Outgoing>, SourcePoll), StreamError> {
        if self.done {
            return Ok((Vec::new(), SourcePoll::Done));
        }
        let (poll, wm, emitted) = self
            .src
            .poll(budget, now, &mut self.counters)
            .map_err(|e| StreamError::Operator {
                vertex: self.cfg.vertex.clone(),
                reason: e.0,
            })?;
        let out = self.src.outputs_mut();
        if emitted > 0 {
            self.last_emit = now;
            self.idle = false;
            if self.pending_since.is_none() && out.buffered() > 0 {
                self.pending_since = Some(now);
            }
        }
        if let Some(wm) = wm {
            if wm > self.watermark {
                self.watermark = wm;
                out.flush();
                self.pending_since = None;
                out.queue_for_all(&|| Message::Watermark(wm));
            }
        }
        match poll {
            SourcePoll::Done => {
                out.flush();
                out.queue_for_all(&|| Message::End);
                self.done = true;
            }
            _ => {
                if let Some(since) = self.pending_since {
                    if now.saturating_sub(since) >= self.cfg.linger_ms {
                        out.flush();
                        self.pending_since = None;
                    }
                }
                if !self.idle
                    && emitted == 0
                    && now.saturating_sub(self.last_emit) >= self.cfg.idle_timeout_ms
                {
                    out.flush();
                    self.pending_since = None;
                    out.queue_for_all(&|| Message::Idle);
                    self.idle = true;
                }
            }
        }
        Ok((out.take_ready(), poll))
    }
}
