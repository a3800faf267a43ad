//! Operators with two inputs of different record types: the left input is the vertex's
//! first incoming edge in the spec, the right input its second. Joins are written
//! against [`TwoInput`]; the runtime tells the inputs apart by edge (see
//! [`crate::Context::input_port`]), so each side keeps its own type end to end.
//!
//! Everything else is as for [`crate::Operator`]: watermarks are merged over both inputs,
//! timers, checkpoints (barriers are aligned over both inputs) and keyed state per ring
//! partition. A pair of [`crate::KeyedState`]s, one per side, is itself a
//! [`PartitionedState`], so `keyed_state` can return `Some(&mut self.sides)`.

use serde::de::DeserializeOwned;

use crate::data::{AnyBatch, Batch, Data, EventTime};
use crate::instance::Env;
use crate::operator::{Context, Drain, InitContext, OpError, OpResult, Timer};
use crate::outputs::{ErasedOutputs, Outputs};
use crate::state::PartitionedState;
use crate::StreamError;

/// Which input a hook is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The vertex's first input in the spec.
    Left,
    /// The vertex's second input.
    Right,
}

impl Side {
    /// The side of input port `port` (0 left, 1 right).
    pub fn of_port(port: usize) -> Option<Side> {
        match port {
            0 => Some(Side::Left),
            1 => Some(Side::Right),
            _ => None,
        }
    }
}

/// A stream operator with two inputs (register it with [`crate::Registry::two_input`]).
/// A spec gives its vertex exactly two inputs: the first feeds [`TwoInput::on_left`],
/// the second [`TwoInput::on_right`]. Keyed joins take both on `hash` edges keyed by the
/// join key, so both sides of a key meet on one instance.
pub trait TwoInput: Send + Sized + 'static {
    /// Record type of the left (first) input.
    type Left: Data;
    /// Record type of the right (second) input.
    type Right: Data;
    /// Record type of the output.
    type Out: Data;
    /// Configuration from the job spec.
    type Config: DeserializeOwned;

    /// Builds an instance; a bad config is refused here, at submit time.
    fn create(config: Self::Config, init: &InitContext) -> OpResult<Self>;

    /// Processes a batch from the left input.
    fn on_left(&mut self, batch: Batch<Self::Left>, ctx: &mut Context<'_, Self::Out>) -> OpResult;

    /// Processes a batch from the right input.
    fn on_right(&mut self, batch: Batch<Self::Right>, ctx: &mut Context<'_, Self::Out>)
        -> OpResult;

    /// The watermark (minimum over both inputs) advanced to `watermark`.
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

    /// Every channel of input `side` has ended; the other may go on.
    fn on_side_end(&mut self, _side: Side, _ctx: &mut Context<'_, Self::Out>) -> OpResult {
        Ok(())
    }

    /// Both inputs have ended (after a final watermark at the end of time): flush.
    fn on_end(&mut self, _ctx: &mut Context<'_, Self::Out>) -> OpResult {
        Ok(())
    }

    /// As [`crate::Operator::on_drain`].
    fn on_drain(&mut self, _ctx: &mut Context<'_, Self::Out>) -> OpResult<Drain> {
        Ok(Drain::Done)
    }

    /// As [`crate::Operator::keyed_state`]; a `(left, right)` pair of keyed states works.
    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        None
    }

    /// As [`crate::Operator::snapshot`].
    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// As [`crate::Operator::restore`].
    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        if states.is_empty() {
            Ok(())
        } else {
            Err("this operator has a snapshot to restore but does not implement restore".into())
        }
    }
}

/// A [`TwoInput`] operator behind the erased operator interface.
pub(crate) struct TwoBox<J: TwoInput> {
    pub op: J,
    pub out: Outputs<J::Out>,
    /// Channels still open per side, to call `on_side_end` once a side is done.
    pub open: [usize; 2],
    /// Side of each input channel.
    pub sides: Vec<Side>,
}

impl<J: TwoInput> TwoBox<J> {
    /// Sides of `inputs` channels by their ports (see [`crate::instance::InstanceConfig`]).
    pub fn new(op: J, out: Outputs<J::Out>, ports: &[usize], inputs: usize) -> Self {
        let sides: Vec<Side> = (0..inputs)
            .map(|c| {
                if ports.get(c).copied().unwrap_or(0) == 1 {
                    Side::Right
                } else {
                    Side::Left
                }
            })
            .collect();
        let open = [
            sides.iter().filter(|s| **s == Side::Left).count(),
            sides.iter().filter(|s| **s == Side::Right).count(),
        ];
        TwoBox {
            op,
            out,
            open,
            sides,
        }
    }

    fn ctx<'a>(out: &'a mut Outputs<J::Out>, env: Env<'a>) -> Context<'a, J::Out> {
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

impl<J: TwoInput> crate::instance::DynOperator for TwoBox<J> {
    fn on_batch(&mut self, batch: AnyBatch, env: Env<'_>) -> Result<(), StreamError> {
        let side = match env.port {
            Some(1) => Side::Right,
            _ => Side::Left,
        };
        let fail = |e: OpError| StreamError::Operator {
            vertex: String::new(),
            reason: e.0,
        };
        match side {
            Side::Left => {
                let batch = batch.downcast::<J::Left>()?;
                let mut ctx = Self::ctx(&mut self.out, env);
                self.op.on_left(batch, &mut ctx).map_err(fail)
            }
            Side::Right => {
                let batch = batch.downcast::<J::Right>()?;
                let mut ctx = Self::ctx(&mut self.out, env);
                self.op.on_right(batch, &mut ctx).map_err(fail)
            }
        }
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
        let side = self.sides.get(input).copied().unwrap_or(Side::Left);
        let slot = match side {
            Side::Left => 0,
            Side::Right => 1,
        };
        if self.open[slot] == 0 {
            return Ok(());
        }
        self.open[slot] -= 1;
        if self.open[slot] > 0 {
            return Ok(());
        }
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_side_end(side, &mut ctx)
    }
    fn on_drain(&mut self, env: Env<'_>) -> Result<Drain, OpError> {
        let mut ctx = Self::ctx(&mut self.out, env);
        self.op.on_drain(&mut ctx)
    }
    fn outputs_mut(&mut self) -> &mut dyn ErasedOutputs {
        &mut self.out
    }
    fn keyed_snapshot(&mut self) -> Result<std::collections::BTreeMap<u32, Vec<u8>>, OpError> {
        match self.op.keyed_state() {
            Some(s) => s.snapshot_partitions(),
            None => Ok(Default::default()),
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
