//! One running operator instance: watermarks merged over its inputs, timers, batching
//! and the end of its inputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{InstanceConfig, InstanceMetrics};
use crate::checkpoint::{
    Aligner, BarrierOutcome, CheckpointId, InstanceSnapshot, PartitionSnapshot, Restore,
};
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
    pub port: Option<usize>,
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
    fn keyed_snapshot(&mut self) -> Result<BTreeMap<u32, Vec<u8>>, OpError>;
    fn restore_partition(&mut self, partition: u32, bytes: &[u8]) -> Result<(), OpError>;
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, OpError>;
    fn restore(&mut self, states: Vec<Vec<u8>>) -> Result<(), OpError>;
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
            port: env.port,
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
    fn keyed_snapshot(&mut self) -> Result<BTreeMap<u32, Vec<u8>>, OpError> {
        match self.op.keyed_state() {
            Some(s) => s.snapshot_partitions(),
            None => Ok(BTreeMap::new()),
        }
    }
    fn restore_partition(&mut self, partition: u32, bytes: &[u8]) -> Result<(), OpError> {
        match self.op.keyed_state() {
            Some(s) => s.restore_partition(partition, bytes),
            None => Err("a snapshot holds keyed state but this operator keeps none".into()),
        }
    }
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        self.op.snapshot()
    }
    fn restore(&mut self, states: Vec<Vec<u8>>) -> Result<(), OpError> {
        self.op.restore(states)
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
            port: $input.map(|c: usize| $inst.cfg.port_of(c)),
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
    aligner: Aligner,
    /// Messages from inputs blocked by a barrier, in arrival order, until it is aligned.
    held: VecDeque<(usize, Message)>,
    snapshots: Vec<InstanceSnapshot>,
    /// Time spent aligning the last checkpoint (ms).
    last_alignment_ms: u64,
}

impl OperatorInstance {
    pub(crate) fn new(cfg: InstanceConfig, op: Box<dyn DynOperator>) -> Self {
        let cfg_inputs = cfg.inputs;
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
            aligner: Aligner::new(cfg_inputs),
            held: VecDeque::new(),
            snapshots: Vec::new(),
            last_alignment_ms: 0,
        }
    }

    /// Whether `input` is blocked by a checkpoint barrier: deliver nothing more from it
    /// until it is not (what is delivered anyway is held, in order).
    pub fn is_blocked(&self, input: usize) -> bool {
        self.aligner.is_blocked(input)
    }

    /// The snapshots taken since the last call, oldest first.
    pub fn take_snapshots(&mut self) -> Vec<InstanceSnapshot> {
        std::mem::take(&mut self.snapshots)
    }

    /// How long the last checkpoint's barriers took to align (ms).
    pub fn last_alignment_ms(&self) -> u64 {
        self.last_alignment_ms
    }

    /// Puts back state from a checkpoint, before any message: the keyed state and timers
    /// of the partitions this instance serves, and the operator's own state.
    pub fn restore(&mut self, restore: Restore) -> Result<(), StreamError> {
        let vertex = self.cfg.vertex.clone();
        let fail = |what: String| StreamError::Checkpoint(format!("vertex '{vertex}': {what}"));
        for (p, part) in restore.partitions {
            if !part.state.is_empty() {
                self.op
                    .restore_partition(p, &part.state)
                    .map_err(|e| fail(format!("restoring partition {p}: {}", e.0)))?;
            }
            for (time, key) in part.timers {
                self.timers.insert(Timer { time, key });
            }
        }
        self.op
            .restore(restore.operator)
            .map_err(|e| fail(format!("restore: {}", e.0)))
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
        self.process(input, msg, now)?;
        Ok(self.take_ready())
    }

    fn process(&mut self, input: usize, msg: Message, now: u64) -> Result<(), StreamError> {
        if self.ended {
            return Ok(());
        }
        if input >= self.inputs.len() {
            return Err(StreamError::UnknownInput(input));
        }
        if self.aligner.is_blocked(input) {
            self.held.push_back((input, msg));
            return Ok(());
        }
        if let Message::Barrier(checkpoint) = msg {
            let ended: Vec<bool> = self.inputs.iter().map(|s| s.ended).collect();
            let outcome = self.aligner.on_barrier(input, checkpoint, &ended, now)?;
            return self.after_barrier(outcome, now);
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
                // An input that ends while a barrier is being aligned brought everything
                // it will send: the checkpoint may be complete without it. Its end is
                // handled after the snapshot (a restored sender ends again).
                let ended: Vec<bool> = self.inputs.iter().map(|s| s.ended).collect();
                let outcome = self.aligner.on_end(&ended, now);
                self.after_barrier(outcome, now)?;
                let env = hook_env!(self, self.watermark, now, Some(input));
                self.op.on_input_end(input, env).map_err(|e| self.fail(e))?;
                self.advance(now)?;
            }
            Message::Barrier(_) => {}
        }
        Ok(())
    }

    /// Once a barrier is aligned: the snapshot, the barrier on every output, then the
    /// messages held meanwhile, in order.
    fn after_barrier(&mut self, outcome: BarrierOutcome, now: u64) -> Result<(), StreamError> {
        let BarrierOutcome::Aligned {
            checkpoint,
            alignment_ms,
        } = outcome
        else {
            return Ok(());
        };
        self.last_alignment_ms = alignment_ms;
        let snapshot = self.snapshot(checkpoint)?;
        self.snapshots.push(snapshot);
        let out = self.op.outputs_mut();
        out.flush();
        self.pending_since = None;
        out.queue_for_all(&|| Message::Barrier(checkpoint));
        // What was held may bring the next barrier and block its input again: such
        // messages are held again, behind it, in order.
        let held = std::mem::take(&mut self.held);
        for (input, msg) in held {
            self.process(input, msg, now)?;
        }
        Ok(())
    }

    /// This instance's state now: keyed state and timers by ring partition, and the
    /// operator's own.
    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<InstanceSnapshot, StreamError> {
        let vertex = self.cfg.vertex.clone();
        let fail = |e: OpError| {
            StreamError::Checkpoint(format!(
                "vertex '{vertex}': snapshot of checkpoint {checkpoint}: {}",
                e.0
            ))
        };
        let mut partitions: BTreeMap<u32, PartitionSnapshot> = self
            .op
            .keyed_snapshot()
            .map_err(&fail)?
            .into_iter()
            .map(|(p, state)| {
                (
                    p,
                    PartitionSnapshot {
                        state,
                        timers: Vec::new(),
                    },
                )
            })
            .collect();
        let ring = self
            .cfg
            .routing
            .as_ref()
            .map(|r| r.ring())
            .unwrap_or_default();
        for t in &self.timers {
            let p = ring.partition_for_key(t.key.as_bytes()).0;
            partitions
                .entry(p)
                .or_default()
                .timers
                .push((t.time, t.key.clone()));
        }
        let operator = self.op.snapshot().map_err(&fail)?;
        Ok(InstanceSnapshot {
            checkpoint,
            vertex: self.cfg.vertex.clone(),
            instance: self.cfg.instance,
            partitions,
            operator: operator.map(serde_bytes::ByteBuf::from),
        })
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

    /// Sends the partial batches of output edge `edge` now (a chained edge: its
    /// follower runs at once, not after the linger time).
    pub fn flush_edge(&mut self, edge: usize) -> Vec<Outgoing> {
        self.op.outputs_mut().flush_edge(edge);
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
