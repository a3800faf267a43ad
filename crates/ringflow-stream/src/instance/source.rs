//! One running source instance: polled for as many records as there is credit for.

use std::collections::BTreeMap;

use super::{InstanceConfig, InstanceMetrics};
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
        }
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
