//! Built-in aggregates over a whole (bounded) input, emitted when the input ends.
//!
//! `count`, `sum`, `min`, `max` and `avg` aggregate per record key (put a `hash` edge in
//! front so each key lives on one worker) and emit one record per key, in key order, as
//! `{"key": k, ...}` keyed by `k`. Records without a key are aggregated under the key
//! `""`, as `hash` edges route them. `top_n` ranks records globally (per instance).
//!
//! | name    | config        | output per key                                   |
//! |---------|---------------|--------------------------------------------------|
//! | `count` | –             | `{"key", "count"}`                               |
//! | `sum`   | `{ field }`   | `{"key", "sum", "count"}`                        |
//! | `min`   | `{ field }`   | `{"key", "min", "count"}`                        |
//! | `max`   | `{ field }`   | `{"key", "max", "count"}`                        |
//! | `avg`   | `{ field }`   | `{"key", "avg", "count"}`                        |
//! | `top_n` | `{ n, by }`   | the `n` largest records by `by`, each + `"rank"` |
//!
//! Numbers stay exact where they can: integer inputs are summed as `i128` and emitted as
//! integers; once a float is seen the sum is a compensated `f64` sum. `min`/`max` emit
//! the original number. A record whose field is missing or not a JSON number (strings
//! are not parsed) is skipped and counted under `skipped`; `"count"` in the output is
//! the number of values aggregated, and a key with no numeric value emits nothing.

pub(crate) mod fn_stats;

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::marker::PhantomData;

use serde::Deserialize;
use serde_json::{json, Map};

use crate::data::{Batch, Item, Key, Value};
use crate::operator::{Context, InitContext, OpError, OpResult, Operator};
use crate::ops::transforms::fn_value::{FieldPath, Num};
use crate::state::KeyedState;
use crate::Registry;

use fn_stats::Stats;

/// Registers `count`, `sum`, `min`, `max`, `avg` and `top_n`.
pub fn register(r: &mut Registry) {
    r.operator::<CountOp>("count");
    r.operator::<SumOp>("sum");
    r.operator::<MinOp>("min");
    r.operator::<MaxOp>("max");
    r.operator::<AvgOp>("avg");
    r.operator::<TopNOp>("top_n");
}

/// Emits `(key, state)` pairs sorted by key.
fn sorted<S>(state: &mut KeyedState<S>) -> Vec<(Key, S)> {
    let mut all: Vec<(Key, S)> = state.drain().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

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
}

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use crate::ops::transforms::fn_testkit::{
        assert_accepted, assert_refused, item, run_job, set_feed, Driver, Step,
    };
    use crate::spec::{EdgeKind, JobSpec, VertexSpec};

    fn run(
        op: &str,
        config: Value,
        items: Vec<crate::Item<Value>>,
    ) -> (Vec<crate::Item<Value>>, Driver) {
        let mut d = Driver::new(op, config);
        d.push(items);
        assert!(d.take().is_empty(), "{op} emitted before the end");
        d.end();
        (d.take(), d)
    }

    #[test]
    fn count_per_key_in_key_order() {
        let (out, _) = run(
            "count",
            json!({}),
            vec![
                item(Some("b"), json!(1)),
                item(Some("a"), json!("x")),
                item(Some("b"), json!(null)),
                item(None, json!(1)),
            ],
        );
        assert_eq!(
            out,
            vec![
                item(Some(""), json!({"key": "", "count": 1})),
                item(Some("a"), json!({"key": "a", "count": 1})),
                item(Some("b"), json!({"key": "b", "count": 2})),
            ]
        );
        let (out, _) = run("count", Value::Null, vec![]);
        assert!(out.is_empty());
        assert_refused("count", json!({"field": "x"}), "unknown field `field`");
    }

    fn recs() -> Vec<crate::Item<Value>> {
        vec![
            item(Some("a"), json!({"v": 3})),
            item(Some("a"), json!({"v": -10})),
            item(Some("a"), json!({"v": "7"})),
            item(Some("b"), json!({"v": 2.5})),
            item(Some("b"), json!({"v": 1})),
            item(Some("b"), json!({"w": 1})),
            item(Some("c"), json!({"v": null})),
            item(Some("d"), json!({"v": u64::MAX})),
            item(Some("d"), json!({"v": u64::MAX})),
        ]
    }

    #[test]
    fn numeric_aggregates_per_key() {
        let field = json!({"field": "v"});
        let (out, d) = run("sum", field.clone(), recs());
        assert_eq!(
            out,
            vec![
                item(Some("a"), json!({"key": "a", "sum": -7, "count": 2})),
                item(Some("b"), json!({"key": "b", "sum": 3.5, "count": 2})),
                // Beyond u64: emitted as a float.
                item(
                    Some("d"),
                    json!({"key": "d", "sum": 2.0 * u64::MAX as f64, "count": 2})
                ),
            ]
        );
        assert_eq!(d.counter("skipped"), 3);
        let vals = |op: &str| -> Vec<Value> {
            run(op, field.clone(), recs())
                .0
                .into_iter()
                .map(|i| i.value[op].clone())
                .collect()
        };
        assert_eq!(vals("min"), vec![json!(-10), json!(1), json!(u64::MAX)]);
        assert_eq!(vals("max"), vec![json!(3), json!(2.5), json!(u64::MAX)]);
        assert_eq!(
            vals("avg"),
            vec![json!(-3.5), json!(1.75), json!(u64::MAX as f64)]
        );
    }

    #[test]
    fn integer_sums_stay_exact() {
        let big = (1i64 << 53) + 1;
        let (out, _) = run(
            "sum",
            json!({"field": "."}),
            vec![
                item(None, json!(big)),
                item(None, json!(big)),
                item(None, json!(-1)),
            ],
        );
        assert_eq!(out[0].value["sum"], json!(2 * big - 1));
    }

    #[test]
    fn aggregate_configs_are_checked() {
        for op in ["sum", "min", "max", "avg"] {
            assert_refused(op, json!({}), "missing field `field`");
            assert_refused(op, json!({"field": "a", "by": "b"}), "unknown field `by`");
            assert_refused(op, json!({"field": "a..b"}), "empty segment");
            assert_accepted(op, json!({"field": "a.b"}));
        }
        assert_refused(
            "top_n",
            json!({"n": 0, "by": "v"}),
            "n must be between 1 and 1000000 (got 0)",
        );
        assert_refused("top_n", json!({"n": -3, "by": "v"}), "n must be between 1");
        assert_refused(
            "top_n",
            json!({"n": 2_000_000, "by": "v"}),
            "n must be between 1",
        );
        assert_refused("top_n", json!({"n": 3}), "missing field `by`");
        assert_refused(
            "top_n",
            json!({"n": 1.5, "by": "v"}),
            "invalid type: floating point",
        );
    }

    #[test]
    fn top_n_ranks_with_deterministic_ties() {
        let input = vec![
            item(Some("x"), json!({"id": 1, "score": 5})),
            item(Some("b"), json!({"id": 2, "score": 9})),
            item(Some("a"), json!({"id": 3, "score": 9.0})),
            item(Some("a"), json!({"id": 4, "score": 9})),
            item(None, json!({"id": 5, "score": 1})),
            item(Some("z"), json!({"id": 6, "score": "100"})),
            item(Some("y"), json!({"id": 7, "score": 7, "rank": "old"})),
        ];
        let (out, d) = run("top_n", json!({"n": 4, "by": "score"}), input.clone());
        assert_eq!(
            out,
            vec![
                item(Some("a"), json!({"id": 3, "score": 9.0, "rank": 1})),
                item(Some("a"), json!({"id": 4, "score": 9, "rank": 2})),
                item(Some("b"), json!({"id": 2, "score": 9, "rank": 3})),
                item(Some("y"), json!({"id": 7, "score": 7, "rank": 4})),
            ]
        );
        assert_eq!(d.counter("skipped"), 1);
        // Same result for the input reversed.
        let mut rev = input;
        rev.reverse();
        let (out2, _) = run("top_n", json!({"n": 4, "by": "score"}), rev);
        assert_eq!(out2, out);
        // Non-object records are wrapped; fewer records than n.
        let (out, _) = run(
            "top_n",
            json!({"n": 10, "by": "."}),
            vec![
                item(None, json!(2)),
                item(None, json!(3.5)),
                item(None, json!("x")),
            ],
        );
        assert_eq!(
            out,
            vec![
                item(None, json!({"value": 3.5, "rank": 1})),
                item(None, json!({"value": 2, "rank": 2})),
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn top_n_equals_sorting_everything(
            scores in proptest::collection::vec((0u8..4, -5i64..5, any::<bool>()), 0..60),
            n in 1i64..10,
            batch in 1usize..8,
        ) {
            let items: Vec<_> = scores
                .iter()
                .enumerate()
                .map(|(i, (k, s, f))| {
                    let score = if *f { json!(*s as f64 + 0.5) } else { json!(s) };
                    item(Some(&format!("k{k}")), json!({"i": i % 3, "s": score}))
                })
                .collect();
            let mut d = Driver::new("top_n", json!({"n": n, "by": "s"}));
            for chunk in items.chunks(batch) {
                d.push(chunk.to_vec());
            }
            d.end();
            let got = d.take();
            let mut all: Vec<(f64, String, String, crate::Item<Value>)> = items
                .iter()
                .map(|it| {
                    (
                        it.value["s"].as_f64().unwrap(),
                        it.key.clone().unwrap(),
                        it.value.to_string(),
                        it.clone(),
                    )
                })
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let want: Vec<_> = all
                .into_iter()
                .take(n as usize)
                .enumerate()
                .map(|(i, (_, _, _, mut it))| {
                    it.value["rank"] = json!(i + 1);
                    it
                })
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn sums_on_three_workers_behind_a_hash_edge_match_a_reference() {
        let name = "agg-sum-three";
        let mut feeds = vec![Vec::new(); 3];
        let mut want: BTreeMap<String, (i64, u64)> = BTreeMap::new();
        for i in 0..900i64 {
            let k = format!("user{}", (i * 7) % 23);
            let v = (i * 31) % 101 - 50;
            feeds[(i % 3) as usize].push(Step::Rec(None, json!({"user": k, "v": v})));
            let e = want.entry(k).or_default();
            e.0 += v;
            e.1 += 1;
        }
        set_feed(name, feeds);
        let spec = JobSpec::new(name)
            .vertex(VertexSpec::new("src", "test.feed").config(json!({"name": name})))
            .vertex(
                VertexSpec::new("keyed", "key_by")
                    .config(json!({"field": "user"}))
                    .input("src", EdgeKind::Forward),
            )
            .vertex(
                VertexSpec::new("sum", "sum")
                    .config(json!({"field": "v"}))
                    .input("keyed", EdgeKind::Hash),
            )
            .vertex(
                VertexSpec::new("top", "top_n")
                    .config(json!({"n": 3, "by": "sum"}))
                    .input("sum", EdgeKind::Gather)
                    .single(),
            )
            .vertex(
                VertexSpec::new("out", "test.collect")
                    .config(json!({"name": name}))
                    .input("top", EdgeKind::Forward)
                    .single(),
            );
        let res = run_job(spec, 3);
        let mut ranked: Vec<(String, i64, u64)> =
            want.into_iter().map(|(k, (s, c))| (k, s, c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let expect: Vec<Value> = ranked
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, (k, s, c))| json!({"key": k, "sum": s, "count": c, "rank": i + 1}))
            .collect();
        let got: Vec<Value> = res.records.into_iter().map(|i| i.value).collect();
        assert_eq!(got, expect);
    }
}
