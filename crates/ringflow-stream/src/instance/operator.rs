//! One running operator instance: watermarks merged over its inputs, timers, batching
//! and the end of its inputs.

use std::collections::{BTreeMap, BTreeSet};

use super::{InstanceConfig, InstanceMetrics};
use crate::data::{AnyBatch, EventTime, Message, MAX_TIME, MIN_TIME};
use crate::operator::{Context, Drain, OpError, Operator, Timer};
use crate::outputs::{ErasedOutputs, Outgoing, Outputs};
use crate::StreamError;

/// Environment passed to an erased operator hook.
pub(crate) struct Env<'a> {
    pub timers: &'a mut BTreeSet<Timer>,
    pub counters: &'a mut BTreeMap<String, u64>,
    pub watermark: EventTime,
    pub now: u64,
    pub own_watermark: &'a mut EventTime,
    pub input: Option<usize>,
    pub inputs: usize,
}

/// An operator with its types erased.
pub(crate) trait DynOperator: Send {
    fn on_batch(&mut self, batch: AnyBatch, env: Env<'_>) -> Result<(), StreamError>;
    fn on_watermark(&mut self, wm: EventTime, env: Env<'_>) -> Result<(), OpError>;
    fn on_timer(&mut self, timer: Timer, env: Env<'_>) -> Result<(), OpError>;
    fn on_end(&mut self, env: Env<'_>) -> Result<(), OpError>;
    fn on_input_end(&mut self, input: usize, env: Env<'_>) -> Result<(), OpError>;
    fn on_drain(&mut self, env: Env<'_>) -> Result<Drain, OpError>;
    fn outputs_mut(&mut self) -> &mut dyn ErasedOutputs;
}

pub(crate) struct OpBox<O: Operator> {
    pub op: O,
    pub out: Outputs<O::Out>,
}

impl<O: Operator> OpBox<O> {
    fn ctx<'a>(out: &'a mut Outputs<O::Out>, env: Env<'a>) -> Context<'a, O::Out> {
        Context {
            out,
            timers: env.timers,
            counters: env.counters,
            watermark: env.watermark,
            now: env.now,
            own_watermark: env.own_watermark,
            input: env.input,
            inputs: env.inputs,
        }
    }
}

impl<O: Operator> DynOperator for OpBox<O> {
    fn on_batch(&mut self, batch: AnyBatch, env: Env<'_>) -> Result<(), StreamError> {
        let batch = batch.downcast::<O::In>()?;
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op
            .on_batch(batch, &mut ctx)
            .map_err(|e| StreamError::Operator {
                vertex: String::new(),
                reason: e.0,
            })
    }
    fn on_watermark(&mut self, wm: EventTime, env: Env<'_>) -> Result<(), OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_watermark(wm, &mut ctx)
    }
    fn on_timer(&mut self, timer: Timer, env: Env<'_>) -> Result<(), OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_timer(timer, &mut ctx)
    }
    fn on_end(&mut self, env: Env<'_>) -> Result<(), OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_end(&mut ctx)
    }
    fn on_input_end(&mut self, input: usize, env: Env<'_>) -> Result<(), OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_input_end(input, &mut ctx)
    }
    fn on_drain(&mut self, env: Env<'_>) -> Result<Drain, OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_drain(&mut ctx)
    }
    fn outputs_mut(&mut self) -> &mut dyn ErasedOutputs {
        &mut self.out
    }
}

/// The environment of one operator hook: borrows the instance's timers, counters and own
/// watermark (a macro, so the operator itself stays borrowable beside them).
macro_rules! hook_env {
    ($inst:ident, $watermark:expr, $now:expr, $input:expr) => {
        Env {
            timers: &mut $inst.timers,
            counters: &mut $inst.counters,
            watermark: $watermark,
            now: $now,
            own_watermark: &mut $inst.own_watermark,
            input: $input,
            inputs: $inst.cfg.inputs,
        }
    };
}

#[derive(Clone, Copy, Debug)]
struct InputState {
    watermark: EventTime,
    idle: bool,
    ended: bool,
}

/// One running operator instance (sans-IO).
pub struct OperatorInstance {
    cfg: InstanceConfig,
    op: Box<dyn DynOperator>,
    inputs: Vec<InputState>,
    watermark: EventTime,
    timers: BTreeSet<Timer>,
    counters: BTreeMap<String, u64>,
    own_watermark: EventTime,
    sent_watermark: EventTime,
    records_in: u64,
    records_out: u64,
    pending_since: Option<u64>,
    all_idle: bool,
    draining: bool,
    ended: bool,
}

impl OperatorInstance {
    pub(crate) fn new(cfg: InstanceConfig, op: Box<dyn DynOperator>) -> Self {
        let inputs = vec![
            InputState {
                watermark: MIN_TIME,
                idle: false,
                ended: false,
            };
            cfg.inputs
        ];
        OperatorInstance {
            cfg,
            op,
            inputs,
            watermark: MIN_TIME,
            timers: BTreeSet::new(),
            counters: BTreeMap::new(),
            own_watermark: MIN_TIME,
            sent_watermark: MIN_TIME,
            records_in: 0,
            records_out: 0,
            pending_since: None,
            all_idle: false,
            draining: false,
            ended: false,
        }
    }

    /// The vertex this instance runs.
    pub fn vertex(&self) -> &str {
        &self.cfg.vertex
    }

    /// True while the operator is emitting a large result after its end: call
    /// [`OperatorInstance::drain`] (after sending what it returned) until it is false.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// The next part of the operator's final output (see [`Operator::on_drain`]).
    pub fn drain(&mut self, now: u64) -> Result<Vec<Outgoing>, StreamError> {
        if self.draining {
            self.drain_step(now)?;
        }
        Ok(self.take_ready())
    }

    fn drain_step(&mut self, now: u64) -> Result<(), StreamError> {
        let env = hook_env!(self, self.watermark, now, None);
        match self.op.on_drain(env).map_err(|e| self.fail(e))? {
            Drain::More => {}
            Drain::Done => {
                self.draining = false;
                self.op.outputs_mut().flush();
                self.pending_since = None;
                self.op.outputs_mut().queue_for_all(&|| Message::End);
                self.ended = true;
            }
        }
        Ok(())
    }

    /// True once every input has ended and the end was passed on.
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// The merged input watermark.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Counters.
    pub fn metrics(&self) -> InstanceMetrics {
        InstanceMetrics {
            records_in: self.records_in,
            records_out: self.records_out,
            watermark: self.watermark,
            counters: self.counters.clone(),
        }
    }

    fn fail(&self, e: OpError) -> StreamError {
        StreamError::Operator {
            vertex: self.cfg.vertex.clone(),
            reason: e.0,
        }
    }

    /// Handles one message from input channel `input`.
    pub fn handle(
        &mut self,
        input: usize,
        msg: Message,
        now: u64,
    ) -> Result<Vec<Outgoing>, StreamError> {
        if self.ended {
            return Ok(Vec::new());
        }
        let Some(state) = self.inputs.get_mut(input) else {
            return Err(StreamError::UnknownInput(input));
        };
        let was_idle = std::mem::replace(&mut state.idle, false);
        match msg {
            Message::Batch(batch) => {
                self.records_in += batch.len() as u64;
                let env = hook_env!(self, self.watermark, now, Some(input));
                self.op.on_batch(batch, env).map_err(|e| match e {
                    StreamError::Operator { reason, .. } => StreamError::Operator {
                        vertex: self.cfg.vertex.clone(),
                        reason,
                    },
                    other => other,
                })?;
                if self.pending_since.is_none() && self.op.outputs_mut().buffered() > 0 {
                    self.pending_since = Some(now);
                }
                if was_idle {
                    self.all_idle = false;
                }
                self.forward_watermark();
            }
            Message::Watermark(wm) => {
                if wm > state.watermark {
                    state.watermark = wm;
                }
                self.advance(now)?;
            }
            Message::Idle => {
                state.idle = true;
                self.advance(now)?;
            }
            Message::End => {
                state.ended = true;
                state.watermark = MAX_TIME;
                let env = hook_env!(self, self.watermark, now, Some(input));
                self.op.on_input_end(input, env).map_err(|e| self.fail(e))?;
                self.advance(now)?;
            }
        }
        Ok(self.take_ready())
    }

    /// Flushes batches whose linger time has passed.
    ///
    /// A quiet input is never marked idle here: it may be quiet only because its sender
    /// is blocked on credit (a slow or skewed receiver elsewhere), and running the
    /// watermark past it would make its records late (FLINK-35886). Idleness comes from
    /// sources ([`Message::Idle`]) and is forwarded once every input is idle.
    pub fn tick(&mut self, now: u64) -> Result<Vec<Outgoing>, StreamError> {
        if self.ended {
            return Ok(Vec::new());
        }
        if let Some(since) = self.pending_since {
            if now.saturating_sub(since) >= self.cfg.linger_ms {
                self.op.outputs_mut().flush();
                self.pending_since = None;
            }
        }
        Ok(self.take_ready())
    }

    /// Sends every partial batch now.
    pub fn flush(&mut self) -> Vec<Outgoing> {
        self.op.outputs_mut().flush();
        self.pending_since = None;
        self.take_ready()
    }

    fn take_ready(&mut self) -> Vec<Outgoing> {
        let out = self.op.outputs_mut();
        self.records_out = out.emitted();
        out.take_ready()
    }

    /// Recomputes the watermark; fires timers, the watermark hook and the end.
    fn advance(&mut self, now: u64) -> Result<(), StreamError> {
        let all_ended = self.inputs.iter().all(|s| s.ended);
        let live: Vec<&InputState> = self.inputs.iter().filter(|s| !s.ended && !s.idle).collect();
        let candidate = if all_ended {
            Some(MAX_TIME)
        } else {
            live.iter().map(|s| s.watermark).min()
        };
        let now_all_idle = !all_ended && live.is_empty();
        if let Some(wm) = candidate {
            if wm > self.watermark {
                self.watermark = wm;
                self.fire_timers(now)?;
                let env = hook_env!(self, wm, now, None);
                self.op.on_watermark(wm, env).map_err(|e| self.fail(e))?;
            }
        }
        self.forward_watermark();
        if now_all_idle && !self.all_idle {
            self.op.outputs_mut().flush();
            self.pending_since = None;
            self.op.outputs_mut().queue_for_all(&|| Message::Idle);
        }
        self.all_idle = now_all_idle;
        if all_ended && !self.ended && !self.draining {
            let env = hook_env!(self, self.watermark, now, None);
            self.op.on_end(env).map_err(|e| self.fail(e))?;
            self.draining = true;
            self.drain_step(now)?;
        }
        Ok(())
    }

    /// Sends the output watermark (the larger of the input's and the operator's own)
    /// when it moved; records emitted before it go first.
    fn forward_watermark(&mut self) {
        let wm = self.watermark.max(self.own_watermark);
        if wm > self.sent_watermark && wm < MAX_TIME {
            self.sent_watermark = wm;
            self.op.outputs_mut().flush();
            self.pending_since = None;
            self.op
                .outputs_mut()
                .queue_for_all(&|| Message::Watermark(wm));
        }
    }

    fn fire_timers(&mut self, now: u64) -> Result<(), StreamError> {
        loop {
            let due = match self.timers.first() {
                Some(t) if t.time <= self.watermark => t.clone(),
                _ => return Ok(()),
            };
            self.timers.remove(&due);
            let env = hook_env!(self, self.watermark, now, None);
            self.op.on_timer(due, env).map_err(|e| self.fail(e))?;
        }
    }
}
