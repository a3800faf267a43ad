//! Driving an operator's hooks or a source's poll by hand, without an instance, for unit
//! tests of operators (the built-ins' tests use it): [`HookEnv`] lends the [`Context`] or
//! [`SourceOutput`] a hook needs and collects what it emits.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::{Data, EventTime, Item, Message, MIN_TIME};
use crate::operator::{Context, Timer};
use crate::outputs::{ErasedOutputs, Outputs};
use crate::routing::OutEdge;
use crate::source::SourceOutput;
use crate::spec::EdgeKind;

/// What an operator hook sees beside its own state, owned by a test.
pub struct HookEnv<T> {
    out: Outputs<T>,
    /// Timers the hooks set.
    pub timers: BTreeSet<Timer>,
    /// Named counters the hooks added to.
    pub counters: BTreeMap<String, u64>,
    /// The operator's own output watermark (see [`Context::emit_watermark`]).
    pub own_watermark: EventTime,
    /// The input watermark hooks see (initially the start of time).
    pub watermark: EventTime,
    /// The processing time hooks see (initially 0).
    pub now: u64,
}

impl<T: Data> Default for HookEnv<T> {
    fn default() -> Self {
        HookEnv::new()
    }
}

impl<T: Data> HookEnv<T> {
    /// An environment with one output (never batched by size: records wait for
    /// [`HookEnv::take_emitted`]), no timers and no counters.
    pub fn new() -> Self {
        let edge = OutEdge {
            kind: EdgeKind::Forward,
            targets: 1,
            self_index: 0,
        };
        HookEnv {
            out: Outputs::new(vec![edge], None, usize::MAX),
            timers: BTreeSet::new(),
            counters: BTreeMap::new(),
            own_watermark: MIN_TIME,
            watermark: MIN_TIME,
            now: 0,
        }
    }

    /// The context of one operator hook called on input channel `input` (see
    /// [`Context::input`]) of `inputs`.
    pub fn context(&mut self, input: Option<usize>, inputs: usize) -> Context<'_, T> {
        Context {
            out: &mut self.out,
            timers: &mut self.timers,
            counters: &mut self.counters,
            watermark: self.watermark,
            now: self.now,
            own_watermark: &mut self.own_watermark,
            input,
            port: input.map(|_| 0),
            inputs,
        }
    }

    /// Runs `poll` (a source's poll) with `budget` credit; returns its result, how many
    /// records it emitted and the watermark it promised, if any.
    pub fn poll<R>(
        &mut self,
        budget: usize,
        poll: impl FnOnce(&mut SourceOutput<'_, T>) -> R,
    ) -> (R, usize, Option<EventTime>) {
        let mut out = SourceOutput {
            out: &mut self.out,
            budget,
            emitted: 0,
            watermark: None,
            counters: &mut self.counters,
            now: self.now,
        };
        let r = poll(&mut out);
        (r, out.emitted, out.watermark)
    }

    /// Every record emitted since the last call, in order.
    pub fn take_emitted(&mut self) -> Vec<Item<T>> {
        ErasedOutputs::flush(&mut self.out);
        let mut items = Vec::new();
        for o in self.out.take_ready() {
            if let Message::Batch(b) = o.msg {
                // The buffers hold `T` only: a batch of another type cannot occur.
                if let Ok(b) = b.downcast::<T>() {
                    items.extend(b);
                }
            }
        }
        items
    }
}
