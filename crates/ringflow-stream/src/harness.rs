//! The sans-IO operator harness: one operator or source instance, driven by input
//! messages and a clock passed in, saying what to send where.
//!
//! It merges watermarks (minimum over live, non-idle inputs), fires event-time timers,
//! batches outputs per (edge, target) with a size and a linger time, routes `hash` edges
//! by the ring partition of each record's key, and ends when every input has ended.
//! The runtime moves the returned [`Outgoing`] messages and applies credits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ringflow_ring::RingConfig;

use crate::data::{AnyBatch, Data, EventTime, Item, Key, Message, MAX_TIME, MIN_TIME};
use crate::operator::{Context, Drain, OpError, Operator, Timer};
use crate::source::{Source, SourceOutput, SourcePoll};
use crate::spec::EdgeKind;
use crate::StreamError;

/// Maps a key's ring partition to the index of the instance that owns it.
#[derive(Clone, Debug)]
pub struct Routing {
    ring: RingConfig,
    owner: Arc<[u32]>,
}

impl Routing {
    /// `owner[p]` is the instance index serving partition `p`; its length must be the
    /// ring's partition count.
    pub fn new(ring: RingConfig, owner: Vec<u32>) -> Self {
        Routing {
            ring,
            owner: owner.into(),
        }
    }

    /// Spreads partitions round-robin over `instances` (tests, single process).
    pub fn round_robin(ring: RingConfig, instances: u32) -> Self {
        let n = instances.max(1);
        Routing::new(ring, (0..ring.partitions).map(|p| p % n).collect())
    }

    /// The instance that owns `key`.
    pub fn target_of(&self, key: Option<&str>) -> usize {
        let p = self
            .ring
            .partition_for_key(key.unwrap_or_default().as_bytes());
        self.owner.get(p.0 as usize).copied().unwrap_or(0) as usize
    }
}

/// One outgoing edge as seen by a sending instance.
#[derive(Clone, Debug)]
pub struct OutEdge {
    /// How records are routed.
    pub kind: EdgeKind,
    /// Number of receiving instances.
    pub targets: usize,
    /// This sender's own instance index (the target of `forward` edges).
    pub self_index: usize,
}

/// A message for one target instance of one of this instance's output edges.
#[derive(Debug)]
pub struct Outgoing {
    /// Index into the instance's output edges.
    pub edge: usize,
    /// Receiving instance index.
    pub target: usize,
    /// What to deliver.
    pub msg: Message,
}

/// Typed output buffers of one instance, one per (edge, target).
pub struct Outputs<T> {
    edges: Vec<OutEdge>,
    routing: Option<Routing>,
    buffers: Vec<Vec<Batch<T>>>,
    batch_size: usize,
    ready: Vec<Outgoing>,
    buffered: usize,
    emitted: u64,
}

type Batch<T> = Vec<Item<T>>;

impl<T: Data> Outputs<T> {
    pub(crate) fn new(edges: Vec<OutEdge>, routing: Option<Routing>, batch_size: usize) -> Self {
        let buffers = edges
            .iter()
            .map(|e| (0..e.targets).map(|_| Vec::new()).collect())
            .collect();
        Outputs {
            edges,
            routing,
            buffers,
            batch_size: batch_size.max(1),
            ready: Vec::new(),
            buffered: 0,
            emitted: 0,
        }
    }

    pub(crate) fn push(&mut self, key: Option<Key>, value: T) {
        self.emitted += 1;
        let n_edges = self.edges.len();
        let mut slot = Some(Item { key, value });
        for e in 0..n_edges {
            let last_edge = e + 1 == n_edges;
            let (kind, targets, self_index) = {
                let edge = &self.edges[e];
                (edge.kind, edge.targets, edge.self_index)
            };
            match kind {
                EdgeKind::Forward | EdgeKind::Gather | EdgeKind::Hash | EdgeKind::Direct => {
                    let Some(item) = slot.as_ref() else { return };
                    let target = match kind {
                        EdgeKind::Forward => self_index,
                        EdgeKind::Gather => 0,
                        EdgeKind::Direct => item
                            .key
                            .as_deref()
                            .and_then(|k| k.parse::<usize>().ok())
                            .unwrap_or(0),
                        _ => self
                            .routing
                            .as_ref()
                            .map_or(0, |r| r.target_of(item.key.as_deref())),
                    }
                    .min(targets.saturating_sub(1));
                    let item = if last_edge { slot.take() } else { slot.clone() };
                    if let Some(item) = item {
                        self.put(e, target, item);
                    }
                }
                EdgeKind::Broadcast => {
                    for t in 0..targets {
                        let item = if last_edge && t + 1 == targets {
                            slot.take()
                        } else {
                            slot.clone()
                        };
                        if let Some(item) = item {
                            self.put(e, t, item);
                        }
                    }
                }
            }
        }
    }

    fn put(&mut self, edge: usize, target: usize, item: Item<T>) {
        let Some(buf) = self.buffers.get_mut(edge).and_then(|b| b.get_mut(target)) else {
            return;
        };
        if buf.capacity() == 0 {
            // A sent batch leaves an empty buffer: size the next one once instead of
            // growing it record by record.
            buf.reserve_exact(self.batch_size.min(4096));
        }
        buf.push(item);
        self.buffered += 1;
        if buf.len() >= self.batch_size {
            let batch = std::mem::take(buf);
            self.buffered -= batch.len();
            self.ready.push(Outgoing {
                edge,
                target,
                msg: Message::Batch(AnyBatch::new(batch)),
            });
        }
    }

    fn flush(&mut self) {
        for (e, bufs) in self.buffers.iter_mut().enumerate() {
            for (t, buf) in bufs.iter_mut().enumerate() {
                if !buf.is_empty() {
                    let batch = std::mem::take(buf);
                    self.ready.push(Outgoing {
                        edge: e,
                        target: t,
                        msg: Message::Batch(AnyBatch::new(batch)),
                    });
                }
            }
        }
        self.buffered = 0;
    }

    /// Queues `msg` for every target this instance can reach on every edge
    /// (watermarks, idleness, end): a forward edge reaches only its own instance.
    fn queue_for_all(&mut self, msg: impl Fn() -> Message) {
        for (e, edge) in self.edges.iter().enumerate() {
            let targets = match edge.kind {
                EdgeKind::Forward => {
                    let t = edge.self_index.min(edge.targets.saturating_sub(1));
                    t..t + 1
                }
                _ => 0..edge.targets,
            };
            for t in targets {
                self.ready.push(Outgoing {
                    edge: e,
                    target: t,
                    msg: msg(),
                });
            }
        }
    }
}

/// Everything an instance needs beside its operator.
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    /// Vertex name (for errors).
    pub vertex: String,
    /// Number of input channels (one per upstream sender instance and edge).
    pub inputs: usize,
    /// Output edges.
    pub outputs: Vec<OutEdge>,
    /// Routing of `hash` edges.
    pub routing: Option<Routing>,
    /// Records per batch.
    pub batch_size: usize,
    /// Longest a partial batch waits (ms).
    pub linger_ms: u64,
    /// Quiet time after which an input stops holding back the watermark (ms).
    pub idle_timeout_ms: u64,
}

/// Counters of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceMetrics {
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Current watermark.
    pub watermark: EventTime,
    /// Named counters of the operator (e.g. `late_dropped`).
    pub counters: BTreeMap<String, u64>,
}

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

/// Output buffers with their type erased.
pub(crate) trait ErasedOutputs {
    fn flush(&mut self);
    fn queue_for_all(&mut self, msg: &dyn Fn() -> Message);
    fn take_ready(&mut self) -> Vec<Outgoing>;
    fn buffered(&self) -> usize;
    fn emitted(&self) -> u64;
}

impl<T: Data> ErasedOutputs for Outputs<T> {
    fn flush(&mut self) {
        Outputs::flush(self)
    }
    fn queue_for_all(&mut self, msg: &dyn Fn() -> Message) {
        Outputs::queue_for_all(self, msg)
    }
    fn take_ready(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.ready)
    }
    fn buffered(&self) -> usize {
        self.buffered
    }
    fn emitted(&self) -> u64 {
        self.emitted
    }
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
    last_heard: u64,
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
    pub(crate) fn new(cfg: InstanceConfig, op: Box<dyn DynOperator>, now: u64) -> Self {
        let inputs = vec![
            InputState {
                watermark: MIN_TIME,
                idle: false,
                ended: false,
                last_heard: now,
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
        state.last_heard = now;
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

    /// Flushes batches whose linger time has passed and marks quiet inputs idle.
    pub fn tick(&mut self, now: u64) -> Result<Vec<Outgoing>, StreamError> {
        if self.ended {
            return Ok(Vec::new());
        }
        let mut changed = false;
        for s in &mut self.inputs {
            if !s.ended && !s.idle && now.saturating_sub(s.last_heard) >= self.cfg.idle_timeout_ms {
                s.idle = true;
                changed = true;
            }
        }
        if changed {
            self.advance(now)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{InitContext, OpResult};
    use crate::registry::{Instance, Registry};
    use crate::Value;

    /// Passes records through and counts watermark calls.
    struct Pass;
    impl Operator for Pass {
        type In = Value;
        type Out = Value;
        type Config = serde_json::Map<String, Value>;
        fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> {
            Ok(Pass)
        }
        fn on_batch(&mut self, batch: Vec<Item<Value>>, ctx: &mut Context<'_, Value>) -> OpResult {
            for i in batch {
                ctx.emit_item(i.key, i.value);
            }
            Ok(())
        }
        fn on_watermark(&mut self, _: EventTime, ctx: &mut Context<'_, Value>) -> OpResult {
            ctx.count("watermarks", 1);
            Ok(())
        }
    }

    fn instance(inputs: usize, idle_timeout_ms: u64) -> OperatorInstance {
        let mut r = Registry::new();
        r.operator::<Pass>("pass");
        let cfg = InstanceConfig {
            vertex: "v".into(),
            inputs,
            outputs: vec![OutEdge {
                kind: EdgeKind::Hash,
                targets: 2,
                self_index: 0,
            }],
            routing: Some(Routing::round_robin(RingConfig::new(16, 1).unwrap(), 2)),
            batch_size: 4,
            linger_ms: 10,
            idle_timeout_ms,
        };
        match r
            .instantiate("pass", &Value::Null, &InitContext::for_test("v"), cfg, 0)
            .unwrap()
        {
            Instance::Operator(o) => o,
            Instance::Source(_) => unreachable!(),
        }
    }

    fn watermarks(out: &[Outgoing]) -> Vec<(usize, EventTime)> {
        out.iter()
            .filter_map(|o| match o.msg {
                Message::Watermark(w) => Some((o.target, w)),
                _ => None,
            })
            .collect()
    }

    fn batch(n: usize) -> Message {
        Message::Batch(AnyBatch::new(
            (0..n)
                .map(|i| Item {
                    key: Some(format!("k{i}")),
                    value: Value::from(i as u64),
                })
                .collect(),
        ))
    }

    #[test]
    fn the_watermark_is_the_minimum_over_inputs_and_goes_to_every_target() {
        let mut op = instance(2, 60_000);
        let out = op.handle(0, Message::Watermark(100), 0).unwrap();
        assert!(watermarks(&out).is_empty(), "input 1 still holds it back");
        let out = op.handle(1, Message::Watermark(50), 0).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 50), (1, 50)]);
        let out = op.handle(1, Message::Watermark(40), 0).unwrap();
        assert!(watermarks(&out).is_empty(), "watermarks never go back");
        let out = op.handle(1, Message::Watermark(150), 0).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 100), (1, 100)]);
        assert_eq!(op.watermark(), 100);
    }

    #[test]
    fn a_quiet_input_stops_holding_the_watermark_back_after_the_idle_timeout() {
        let mut op = instance(2, 1_000);
        op.handle(0, Message::Watermark(500), 10).unwrap();
        assert!(watermarks(&op.tick(900).unwrap()).is_empty());
        // Input 0 keeps talking, input 1 has said nothing for the timeout.
        op.handle(0, Message::Watermark(600), 1_050).unwrap();
        let out = op.tick(1_100).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 600), (1, 600)]);
        // When the quiet input speaks again it counts again.
        op.handle(1, Message::Watermark(610), 1_200).unwrap();
        let out = op.handle(0, Message::Watermark(700), 1_300).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 610), (1, 610)]);
        // An explicit Idle message works at once.
        let out = op.handle(1, Message::Idle, 1_400).unwrap();
        assert_eq!(watermarks(&out), vec![(0, 700), (1, 700)]);
    }

    #[test]
    fn batches_fill_by_size_flush_by_linger_and_end_follows_the_last_records() {
        let mut op = instance(1, 60_000);
        let out = op.handle(0, batch(3), 0).unwrap();
        assert!(
            out.is_empty(),
            "3 records over 2 targets: no batch of 4 yet"
        );
        assert!(op.tick(5).unwrap().is_empty(), "linger not over");
        let out = op.tick(10).unwrap();
        let sent: usize = out
            .iter()
            .map(|o| match &o.msg {
                Message::Batch(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(sent, 3);
        op.handle(0, batch(2), 20).unwrap();
        let out = op.handle(0, Message::End, 21).unwrap();
        assert!(op.is_finished());
        // Records first, then the end, on every target.
        let kinds: Vec<&str> = out
            .iter()
            .map(|o| match o.msg {
                Message::Batch(_) => "batch",
                Message::End => "end",
                Message::Watermark(_) => "wm",
                Message::Idle => "idle",
            })
            .collect();
        let last_batch = kinds.iter().rposition(|k| *k == "batch").unwrap();
        let first_end = kinds.iter().position(|k| *k == "end").unwrap();
        assert!(last_batch < first_end, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 2);
        assert_eq!(op.metrics().records_in, 5);
        assert_eq!(op.metrics().records_out, 5);
        assert!(
            op.handle(7, batch(1), 30).unwrap().is_empty(),
            "nothing after the end"
        );
    }

    #[test]
    fn an_unknown_input_is_an_error_not_a_panic() {
        let mut op = instance(1, 60_000);
        assert!(matches!(
            op.handle(3, batch(1), 0),
            Err(StreamError::UnknownInput(3))
        ));
        let wrong = Message::Batch(AnyBatch::new(vec![Item {
            key: None,
            value: 1u8,
        }]));
        assert!(op.handle(0, wrong, 0).is_err());
    }
}
