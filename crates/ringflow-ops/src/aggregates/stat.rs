//! `sum`, `min`, `max` and `avg`: one numeric statistic of a field per key.

use std::marker::PhantomData;

use serde::Deserialize;
use serde_json::Map;

use super::sorted;
use crate::stats::Stats;
use crate::values::{FieldPath, Num};
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};
use ringflow_stream::state::KeyedState;

/// Config of `sum`, `min`, `max` and `avg`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// Path of the numeric field (`"."` for records that are numbers).
    pub field: String,
}

/// Which statistic a [`StatOp`] emits: [`Sum`], [`Min`], [`Max`] or [`Avg`].
pub trait StatKind: Send + Sync + 'static {
    /// The output field (and operator) name.
    const NAME: &'static str;
}

/// Marker of `sum`.
#[derive(Debug)]
pub struct Sum;
/// Marker of `min`.
#[derive(Debug)]
pub struct Min;
/// Marker of `max`.
#[derive(Debug)]
pub struct Max;
/// Marker of `avg`.
#[derive(Debug)]
pub struct Avg;

impl StatKind for Sum {
    const NAME: &'static str = "sum";
}

impl StatKind for Min {
    const NAME: &'static str = "min";
}

impl StatKind for Max {
    const NAME: &'static str = "max";
}

impl StatKind for Avg {
    const NAME: &'static str = "avg";
}

/// The statistic named `name` of a non-empty set.
fn stat_result(name: &str, stats: &Stats) -> Value {
    match name {
        "sum" => stats.sum().to_value(),
        "min" => stats.min().map_or(Value::Null, Num::to_value),
        "max" => stats.max().map_or(Value::Null, Num::to_value),
        _ => stats.mean(),
    }
}

/// A per-key statistic of a numeric field, emitted at the end of the input as
/// `{"key": k, <K::NAME>: x, "count": n}`.
#[derive(Debug)]
pub struct StatOp<K: StatKind> {
    field: FieldPath,
    state: KeyedState<Stats>,
    kind: PhantomData<K>,
}

/// `sum { field }`.
pub type SumOp = StatOp<Sum>;
/// `min { field }`.
pub type MinOp = StatOp<Min>;
/// `max { field }`.
pub type MaxOp = StatOp<Max>;
/// `avg { field }`.
pub type AvgOp = StatOp<Avg>;

impl<K: StatKind> Operator for StatOp<K> {
    type In = Value;
    type Out = Value;
    type Config = FieldConfig;

    fn create(config: FieldConfig, init: &InitContext) -> OpResult<Self> {
        Ok(StatOp {
            field: FieldPath::parse("field", &config.field)?,
            state: KeyedState::new(init.ring),
            kind: PhantomData,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut skipped = 0;
        for item in batch {
            match self.field.get(&item.value).and_then(Num::from_value) {
                Some(n) => self
                    .state
                    .entry(item.key.as_deref().unwrap_or_default())
                    .add(n),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            ctx.count("skipped", skipped);
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        for (k, s) in sorted(&mut self.state) {
            let mut rec = Map::new();
            rec.insert("key".into(), Value::String(k.clone()));
            rec.insert(K::NAME.into(), stat_result(K::NAME, &s));
            rec.insert("count".into(), Value::from(s.count()));
            ctx.emit_keyed(k, Value::Object(rec));
        }
        Ok(())
    }
}
