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

mod count;
mod stat;
mod top_n;

pub use count::{CountConfig, CountOp};
pub use stat::{Avg, AvgOp, FieldConfig, Max, MaxOp, Min, MinOp, StatKind, StatOp, Sum, SumOp};
pub use top_n::{TopNConfig, TopNOp, MAX_TOP_N};

use ringflow_stream::data::Key;
use ringflow_stream::state::KeyedState;
use ringflow_stream::Registry;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use crate::testkit::{assert_accepted, assert_refused, item, run_job, set_feed, Driver, Step};
    use ringflow_stream::spec::{EdgeKind, JobSpec, VertexSpec};

    #[test]
    fn count_restored_from_a_checkpoint_ends_with_the_counts_of_an_uninterrupted_run() {
        let words = |ws: &[&str]| -> Vec<ringflow_stream::Item<Value>> {
            ws.iter().map(|w| item(Some(w), json!(w))).collect()
        };
        let first = ["a", "b", "a", "c"];
        let second = ["a", "c", "d"];
        let mut whole = Driver::new("count", json!({}));
        whole.push(words(&first));
        whole.push(words(&second));
        whole.end();
        let mut before = Driver::new("count", json!({}));
        before.push(words(&first));
        let snap = before.checkpoint(1);
        assert!(snap.size() > 0, "the counts are in the snapshot");
        // The instance is gone; a new one restores the snapshot and reads the rest.
        let mut after = Driver::new("count", json!({}));
        after.restore(snap);
        after.push(words(&second));
        after.end();
        assert_eq!(after.take_values(), whole.take_values());
    }

    fn run(
        op: &str,
        config: Value,
        items: Vec<ringflow_stream::Item<Value>>,
    ) -> (Vec<ringflow_stream::Item<Value>>, Driver) {
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

    fn recs() -> Vec<ringflow_stream::Item<Value>> {
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
            let mut all: Vec<(f64, String, String, ringflow_stream::Item<Value>)> = items
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
