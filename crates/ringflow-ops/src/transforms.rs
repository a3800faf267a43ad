//! Built-in transforms: stateless record-at-a-time operators on [`Value`] records, and
//! the `watermark` assigner.
//!
//! | name        | config                                              | does                                   |
//! |-------------|-----------------------------------------------------|----------------------------------------|
//! | `map`       | `{ function, ...args }` ([`MapOp`])                 | one record in, at most one out          |
//! | `filter`    | `{ function, ...args }` ([`FilterOp`])              | keeps records matching a predicate      |
//! | `flat_map`  | `{ function, ...args }` ([`FlatMapOp`])             | one record in, any number out           |
//! | `key_by`    | `{ field }` ([`KeyByOp`])                           | sets the record key from a field        |
//! | `watermark` | `{ time_field, max_delay_ms, unit }` ([`WatermarkOp`]) | emits event-time watermarks          |
//!
//! Fields are named by paths: `"."` is the whole record, `"a.b.c"` descends into objects
//! (array elements and keys holding a `.` cannot be addressed). Records are untrusted:
//! a record an operator cannot handle is dropped (or passed on unchanged, as documented
//! per function) and counted under a named counter, never a failure. Every operator here
//! keeps each record's key unless documented otherwise.

mod filter;
mod flat_map;
mod key_by;
mod map;
mod watermark;

pub use filter::FilterOp;
pub use flat_map::FlatMapOp;
pub use key_by::{KeyByConfig, KeyByOp};
pub use map::MapOp;
pub use watermark::{WatermarkConfig, WatermarkOp};

use serde::Deserialize;
use serde_json::Map;

use ringflow_stream::data::Value;
use ringflow_stream::operator::{Context, OpResult};
use ringflow_stream::Registry;

use crate::values::FieldPath;
pub use crate::values::TimeUnit;

/// Registers `map`, `filter`, `flat_map`, `key_by` and `watermark`.
pub fn register(r: &mut Registry) {
    r.operator::<MapOp>("map");
    r.operator::<FilterOp>("filter");
    r.operator::<FlatMapOp>("flat_map");
    r.operator::<KeyByOp>("key_by");
    r.operator::<WatermarkOp>("watermark");
}

/// The config of `map`, `filter` and `flat_map`: a function name and its arguments,
/// written flat, e.g. `{ function = "project", fields = ["a", "b.c"] }`.
#[derive(Clone, Debug, Deserialize)]
pub struct FunctionConfig {
    /// The function name.
    pub function: String,
    /// Its arguments (every other field of the config).
    #[serde(flatten)]
    pub args: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldArg {
    field: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptFieldArg {
    #[serde(default)]
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsArg {
    fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldValueArgs {
    field: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubstringArgs {
    #[serde(default)]
    field: Option<String>,
    substring: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixArgs {
    #[serde(default)]
    field: Option<String>,
    prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitArgs {
    separator: String,
    #[serde(default)]
    skip_empty: bool,
}

/// Per-batch counters, added to the context once per batch.
#[derive(Default)]
struct Tally(Vec<(&'static str, u64)>);

impl Tally {
    fn add(&mut self, name: &'static str) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => self.0.push((name, 1)),
        }
    }

    fn flush<T: ringflow_stream::Data>(self, ctx: &mut Context<'_, T>) {
        for (name, n) in self.0 {
            ctx.count(name, n);
        }
    }
}

fn optional_path(what: &str, path: Option<String>) -> OpResult<FieldPath> {
    match path {
        None => Ok(FieldPath::Whole),
        Some(p) => FieldPath::parse(what, &p),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use crate::testkit::{run_job, set_feed, Step};
    use ringflow_stream::spec::{EdgeKind, JobSettings, JobSpec, VertexSpec};

    /// Splits `lines` over `workers` source instances round-robin.
    fn spread(lines: &[String], workers: usize) -> Vec<Vec<Step>> {
        let mut feeds = vec![Vec::new(); workers];
        for (i, l) in lines.iter().enumerate() {
            feeds[i % workers].push(Step::Rec(None, json!(l)));
        }
        feeds
    }

    fn wordcount_spec(name: &str, batch_size: usize) -> JobSpec {
        JobSpec::new(name)
            .settings(JobSettings {
                batch_size,
                edge_credits: 4096,
                ..JobSettings::default()
            })
            .vertex(VertexSpec::new("lines", "test.feed").config(json!({"name": name})))
            .vertex(
                VertexSpec::new("words", "flat_map")
                    .config(json!({"function": "split_words"}))
                    .input("lines", EdgeKind::Forward),
            )
            .vertex(
                VertexSpec::new("keyed", "key_by")
                    .config(json!({"field": "."}))
                    .input("words", EdgeKind::Forward),
            )
            .vertex(VertexSpec::new("count", "count").input("keyed", EdgeKind::Hash))
            .vertex(
                VertexSpec::new("out", "test.collect")
                    .config(json!({"name": name}))
                    .input("count", EdgeKind::Forward),
            )
    }

    fn reference_wordcount(lines: &[String]) -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for l in lines {
            for w in l
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *m.entry(w.to_lowercase()).or_default() += 1;
            }
        }
        m
    }

    fn check_wordcount(name: &str, lines: Vec<String>, workers: usize, batch_size: usize) {
        set_feed(name, spread(&lines, workers));
        let res = run_job(wordcount_spec(name, batch_size), workers);
        let mut got = HashMap::new();
        for it in &res.records {
            let word = it.value["key"].as_str().expect("key").to_owned();
            assert_eq!(it.key.as_deref(), Some(word.as_str()));
            let n = it.value["count"].as_u64().expect("count");
            assert!(
                got.insert(word, n).is_none(),
                "a word was counted on two workers"
            );
        }
        assert_eq!(got, reference_wordcount(&lines));
    }

    #[test]
    fn word_count_on_three_workers_equals_a_hashmap_reference() {
        let text = "The quick brown fox jumps over the lazy dog. THE DOG barks; the fox runs!\n\
                    Über straße, naïve café — 42 times 42 times; end.";
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // A bigger generated corpus with a skewed vocabulary.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..600 {
            let mut line = String::new();
            for _ in 0..(x % 13) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let w = (x % 97) * (x % 97) % 211;
                line.push_str(&format!("w{w} "));
                if x % 5 == 0 {
                    line.push_str("-- ");
                }
            }
            lines.push(line);
        }
        check_wordcount("wc-three", lines.clone(), 3, 7);
        check_wordcount("wc-one", lines, 1, 512);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn word_count_matches_the_reference_for_any_text(
            lines in proptest::collection::vec("[a-cA-C ,.!é]{0,20}", 0..40),
            batch in 1usize..16,
        ) {
            check_wordcount("wc-prop", lines, 3, batch);
        }
    }
}
