//! `top_n`: the `n` largest records by a numeric field.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::json;

use crate::values::{FieldPath, Num};
use ringflow_stream::data::{Batch, Item, Key, Value};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};

/// Config of `top_n`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopNConfig {
    /// How many records to keep: `1..=1_000_000`.
    pub n: i64,
    /// Path of the numeric field to rank by (`"."` for records that are numbers).
    pub by: String,
}

/// Most records `top_n` keeps.
pub const MAX_TOP_N: i64 = 1_000_000;

/// One candidate of `top_n`, ordered best first.
#[derive(Debug)]
struct Ranked {
    by: Num,
    key: Key,
    text: String,
    seq: u64,
    item: Item<Value>,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .by
            .cmp_num(&self.by)
            .then_with(|| self.key.cmp(&other.key))
            .then_with(|| self.text.cmp(&other.text))
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// `top_n { n, by }`: keeps the `n` records with the largest numeric field `by` and,
/// at the end of the input, emits them best first, each with its original key, as the
/// original record plus `"rank": i` (1-based; a record that is not an object is wrapped
/// as `{"value": record, "rank": i}`; an existing `"rank"` field is replaced).
///
/// Ties on `by` are broken by key (ascending, a missing key counting as `""`), then by
/// the record's JSON text (ascending), so the result does not depend on arrival order.
/// Records without a numeric `by` are skipped and counted under `skipped`.
///
/// It ranks everything one instance receives: run it with `parallelism = 1` behind a
/// `gather` edge for a global top n (on several instances each emits its own top n).
/// Memory is bounded by `n` records.
#[derive(Debug)]
pub struct TopNOp {
    n: usize,
    by: FieldPath,
    best: BTreeSet<Ranked>,
    seq: u64,
}

impl Operator for TopNOp {
    type In = Value;
    type Out = Value;
    type Config = TopNConfig;

    fn create(config: TopNConfig, _init: &InitContext) -> OpResult<Self> {
        if config.n <= 0 || config.n > MAX_TOP_N {
            return Err(OpError(format!(
                "n must be between 1 and {MAX_TOP_N} (got {})",
                config.n
            )));
        }
        Ok(TopNOp {
            n: usize::try_from(config.n).map_err(|e| OpError(e.to_string()))?,
            by: FieldPath::parse("by", &config.by)?,
            best: BTreeSet::new(),
            seq: 0,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut skipped = 0;
        for item in batch {
            let Some(by) = self.by.get(&item.value).and_then(Num::from_value) else {
                skipped += 1;
                continue;
            };
            // Cheap rejection before serializing the record for the tie-break.
            if self.best.len() >= self.n {
                if let Some(worst) = self.best.last() {
                    if by.cmp_num(&worst.by).is_lt() {
                        continue;
                    }
                }
            }
            self.seq += 1;
            let candidate = Ranked {
                by,
                key: item.key.clone().unwrap_or_default(),
                text: item.value.to_string(),
                seq: self.seq,
                item,
            };
            self.best.insert(candidate);
            if self.best.len() > self.n {
                self.best.pop_last();
            }
        }
        if skipped > 0 {
            ctx.count("skipped", skipped);
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        for (i, r) in std::mem::take(&mut self.best).into_iter().enumerate() {
            let rank = Value::from(i as u64 + 1);
            let value = match r.item.value {
                Value::Object(mut m) => {
                    m.insert("rank".into(), rank);
                    Value::Object(m)
                }
                other => json!({"value": other, "rank": rank}),
            };
            ctx.emit_item(r.item.key, value);
        }
        Ok(())
    }
}
