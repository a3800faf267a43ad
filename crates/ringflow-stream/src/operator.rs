//! The operator trait users implement, and what an operator sees while it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use ringflow_ring::{PartitionId, RingConfig};
use serde::de::DeserializeOwned;

use crate::data::{Batch, Data, EventTime, Key};
use crate::outputs::Outputs;

/// Why an operator or source failed. The job fails with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpError {}

impl From<String> for OpError {
    fn from(s: String) -> Self {
        OpError(s)
    }
}

impl From<&str> for OpError {
    fn from(s: &str) -> Self {
        OpError(s.to_owned())
    }
}

impl From<std::io::Error> for OpError {
    fn from(e: std::io::Error) -> Self {
        OpError(e.to_string())
    }
}

impl From<serde_json::Error> for OpError {
    fn from(e: serde_json::Error) -> Self {
        OpError(e.to_string())
    }
}

/// Result of an operator hook.
pub type OpResult<T = ()> = Result<T, OpError>;

/// What an operator instance learns when it is created.
#[derive(Clone, Debug)]
pub struct InitContext {
    /// The job id.
    pub job: String,
    /// The vertex this instance runs.
    pub vertex: String,
    /// The worker it runs on.
    pub worker: String,
    /// Index of this instance among the vertex's instances (0-based).
    pub instance: usize,
    /// Number of instances of the vertex.
    pub instances: usize,
    /// The ring's shape: key -> partition.
    pub ring: RingConfig,
    /// A directory private to this job on this worker (spill files, scratch).
    pub scratch_dir: PathBuf,
    /// True while a spec is only being validated: do not open files or sockets yet.
    pub validate_only: bool,
    /// Services provided by the hosting program (see [`crate::Registry::provide`]).
    pub extensions: crate::Extensions,
}

impl InitContext {
    /// A context for tests and validation: one instance, default ring.
    pub fn for_test(vertex: &str) -> Self {
        InitContext {
            job: "test".into(),
            vertex: vertex.into(),
            worker: "w0".into(),
            instance: 0,
            instances: 1,
            ring: RingConfig::default(),
            scratch_dir: std::env::temp_dir(),
            validate_only: false,
            extensions: crate::Extensions::default(),
        }
    }

    /// The ring partition of `key`: the key group its state belongs to.
    pub fn partition_of(&self, key: &str) -> PartitionId {
        self.ring.partition_for_key(key.as_bytes())
    }
}

/// An event-time timer that fired: the watermark passed `time`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    /// When it was set to fire.
    pub time: EventTime,
    /// The key it was set for.
    pub key: Key,
}

/// A stream operator: one instance runs on each worker of the job (or one in all for
/// `parallelism = 1`) and serves every partition that worker owns.
///
/// Hooks run one at a time; what they emit through the [`Context`] is batched and sent
/// downstream by the runtime, which stops calling hooks while downstream has no credit.
pub trait Operator: Send + Sized + 'static {
    /// Record type of the input.
    type In: Data;
    /// Record type of the output (`()` for sinks).
    type Out: Data;
    /// Configuration from the job spec (`config = {...}` of the vertex).
    type Config: DeserializeOwned;

    /// Builds an instance; a bad config is refused here, at submit time.
    fn create(config: Self::Config, init: &InitContext) -> OpResult<Self>;

    /// Processes a batch of input records.
    fn on_batch(&mut self, batch: Batch<Self::In>, ctx: &mut Context<'_, Self::Out>) -> OpResult;

    /// The input watermark advanced to `watermark` (after due timers fired).
    fn on_watermark(
        &mut self,
        _watermark: EventTime,
        _ctx: &mut Context<'_, Self::Out>,
    ) -> OpResult {
        Ok(())
    }

    /// A timer set with [`Context::set_timer`] fired.
    fn on_timer(&mut self, _timer: Timer, _ctx: &mut Context<'_, Self::Out>) -> OpResult {
        Ok(())
    }

    /// Every input has ended (after a final watermark at the end of time): flush.
    fn on_end(&mut self, _ctx: &mut Context<'_, Self::Out>) -> OpResult {
        Ok(())
    }

    /// Input channel `input` (see [`Context::input`]) has ended; others may go on.
    fn on_input_end(&mut self, _input: usize, _ctx: &mut Context<'_, Self::Out>) -> OpResult {
        Ok(())
    }

    /// Called after [`Operator::on_end`], again and again until it returns
    /// [`Drain::Done`]: emit the next part of a large final result (a batch or a few per
    /// call). The runtime sends each part downstream, waiting for credit, before the
    /// next call, so a result larger than memory can stream out of, e.g., a spilled sort.
    fn on_drain(&mut self, _ctx: &mut Context<'_, Self::Out>) -> OpResult<Drain> {
        Ok(Drain::Done)
    }

    /// The operator's keyed state, if it keeps one: the runtime snapshots it per ring
    /// partition at checkpoint barriers and restores each partition on the instance that
    /// owns it in a later run. Usually one line: `Some(&mut self.state)`.
    fn keyed_state(&mut self) -> Option<&mut dyn crate::state::PartitionedState> {
        None
    }

    /// The operator's other state at a checkpoint barrier (after every record before
    /// the barrier, before any after), e.g. with [`crate::checkpoint::to_bytes`]; `None`
    /// when it keeps none. The bytes are written out after this returns, while the
    /// operator goes on.
    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Puts back, before any record, the [`Operator::snapshot`]s of the earlier
    /// instances given to this one: its own with the same parallelism, several or none
    /// after a rescale (see [`crate::checkpoint::Restore::for_instance`]).
    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        if states.is_empty() {
            Ok(())
        } else {
            Err("this operator has a snapshot to restore but does not implement restore".into())
        }
    }
}

/// What [`Operator::on_drain`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// More output follows: call again once this part is sent.
    More,
    /// Everything was emitted.
    Done,
}

/// What an operator hook can do: emit records, set timers, read time, count things.
pub struct Context<'a, T> {
    pub(crate) out: &'a mut Outputs<T>,
    pub(crate) timers: &'a mut BTreeSet<Timer>,
    pub(crate) counters: &'a mut BTreeMap<String, u64>,
    pub(crate) watermark: EventTime,
    pub(crate) now: u64,
    pub(crate) own_watermark: &'a mut EventTime,
    pub(crate) input: Option<usize>,
    pub(crate) port: Option<usize>,
    pub(crate) inputs: usize,
}

impl<T: Data> Context<'_, T> {
    /// Declares this operator's own output watermark (watermark assigners): downstream
    /// sees the larger of it and the input watermark. Never moves backwards.
    pub fn emit_watermark(&mut self, time: EventTime) {
        if time > *self.own_watermark {
            *self.own_watermark = time;
        }
    }

    /// Emits an unkeyed record.
    pub fn emit(&mut self, value: T) {
        self.out.push(None, value);
    }

    /// Emits a record with a key (routes it on `hash` edges).
    pub fn emit_keyed(&mut self, key: Key, value: T) {
        self.out.push(Some(key), value);
    }

    /// Emits a record with an optional key.
    pub fn emit_item(&mut self, key: Option<Key>, value: T) {
        self.out.push(key, value);
    }

    /// Sets an event-time timer for `key` that fires once the watermark reaches `time`.
    /// Setting the same (time, key) twice fires once.
    pub fn set_timer(&mut self, time: EventTime, key: Key) {
        self.timers.insert(Timer { time, key });
    }

    /// The input channel the current batch came from (in `on_batch` and
    /// `on_input_end`): one channel per (incoming edge, sending instance), numbered from 0
    /// in a fixed order. Records of one channel arrive in the order they were sent.
    pub fn input(&self) -> Option<usize> {
        self.input
    }

    /// The incoming edge the current batch came by (in `on_batch` and `on_input_end`):
    /// its position in the vertex's `inputs` of the spec, from 0. A vertex with two
    /// inputs of different kinds tells them apart by it (see [`crate::TwoInput`]).
    pub fn input_port(&self) -> Option<usize> {
        self.port
    }

    /// Number of input channels of this instance.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The current input watermark.
    pub fn watermark(&self) -> EventTime {
        self.watermark
    }

    /// Processing time (ms since the Unix epoch) as passed in by the runtime.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Adds `n` to a named counter shown in `ringflow job status`.
    pub fn count(&mut self, name: &str, n: u64) {
        match self.counters.get_mut(name) {
            Some(c) => *c = c.wrapping_add(n),
            None => {
                self.counters.insert(name.to_owned(), n);
            }
        }
    }
}
