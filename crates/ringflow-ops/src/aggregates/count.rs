//! `count`: the number of records per key.

use serde::Deserialize;
use serde_json::json;

use super::sorted;
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};
use ringflow_stream::state::KeyedState;

/// Config of `count`: nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountConfig {}

/// `count`: the number of records per key, emitted at the end of the input as
/// `{"key": k, "count": n}`.
#[derive(Debug)]
pub struct CountOp {
    state: KeyedState<u64>,
}

impl Operator for CountOp {
    type In = Value;
    type Out = Value;
    type Config = CountConfig;

    fn create(_config: CountConfig, init: &InitContext) -> OpResult<Self> {
        Ok(CountOp {
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, _ctx: &mut Context<'_, Value>) -> OpResult {
        for item in batch {
            *self.state.entry(item.key.as_deref().unwrap_or_default()) += 1;
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        for (k, n) in sorted(&mut self.state) {
            ctx.emit_keyed(k.clone(), json!({"key": k, "count": n}));
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn ringflow_stream::PartitionedState> {
        Some(&mut self.state)
    }
}
