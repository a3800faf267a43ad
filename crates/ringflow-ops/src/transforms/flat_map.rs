//! `flat_map`: turns each record into zero or more records.

use super::{FieldArg, FunctionConfig, NoArgs, SplitArgs, Tally};
use crate::values::{fn_args, unknown_function, FieldPath};
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};

#[derive(Debug)]
enum FlatFn {
    SplitWords,
    Split { separator: String, skip_empty: bool },
    Explode(FieldPath),
}

const FLAT_MAP_FUNCTIONS: &[&str] = &["split_words", "split", "explode"];

/// `flat_map`: turns each record into zero or more records; every output keeps the key
/// of its input. Functions:
///
/// - `split_words`: splits a string on every character that is not alphanumeric
///   (Unicode), lowercases each word and drops empty ones.
/// - `split { separator, skip_empty = false }`: splits a string on `separator`
///   (non-empty), keeping empty parts unless `skip_empty`.
/// - `explode { field }`: for an array field, one record per element: a copy of the
///   record with the field replaced by the element (with `field = "."` an array record
///   becomes its elements). Records lacking the field are counted `missing_field`,
///   records whose field is not an array `not_array`; both are dropped.
///
/// `split_words` and `split` drop records that are not strings, counted `not_string`.
#[derive(Debug)]
pub struct FlatMapOp {
    f: FlatFn,
}

impl FlatMapOp {
    fn apply(
        &self,
        item: ringflow_stream::Item<Value>,
        tally: &mut Tally,
        ctx: &mut Context<'_, Value>,
    ) {
        let key = item.key;
        match &self.f {
            FlatFn::SplitWords => {
                let Value::String(s) = &item.value else {
                    tally.add("not_string");
                    return;
                };
                for w in s.split(|c: char| !c.is_alphanumeric()) {
                    if !w.is_empty() {
                        ctx.emit_item(key.clone(), Value::String(w.to_lowercase()));
                    }
                }
            }
            FlatFn::Split {
                separator,
                skip_empty,
            } => {
                let Value::String(s) = &item.value else {
                    tally.add("not_string");
                    return;
                };
                for part in s.split(separator.as_str()) {
                    if !(*skip_empty && part.is_empty()) {
                        ctx.emit_item(key.clone(), Value::String(part.to_owned()));
                    }
                }
            }
            FlatFn::Explode(path) => {
                let elements = match path.get(&item.value) {
                    None => {
                        tally.add("missing_field");
                        return;
                    }
                    Some(Value::Array(a)) => a.clone(),
                    Some(_) => {
                        tally.add("not_array");
                        return;
                    }
                };
                for e in elements {
                    if *path == FieldPath::Whole {
                        ctx.emit_item(key.clone(), e);
                        continue;
                    }
                    let mut record = item.value.clone();
                    if let Some(slot) = path.get_mut(&mut record) {
                        *slot = e;
                    }
                    ctx.emit_item(key.clone(), record);
                }
            }
        }
    }
}

impl Operator for FlatMapOp {
    type In = Value;
    type Out = Value;
    type Config = FunctionConfig;

    fn create(config: FunctionConfig, _init: &InitContext) -> OpResult<Self> {
        let name = config.function.as_str();
        let args = &config.args;
        let f = match name {
            "split_words" => {
                fn_args::<NoArgs>("flat_map", name, args).map(|_| FlatFn::SplitWords)?
            }
            "split" => {
                let a: SplitArgs = fn_args("flat_map", name, args)?;
                if a.separator.is_empty() {
                    return Err("flat_map function 'split': separator must not be empty".into());
                }
                FlatFn::Split {
                    separator: a.separator,
                    skip_empty: a.skip_empty,
                }
            }
            "explode" => {
                let a: FieldArg = fn_args("flat_map", name, args)?;
                FlatFn::Explode(FieldPath::parse(
                    "flat_map function 'explode': field",
                    &a.field,
                )?)
            }
            other => return Err(unknown_function("flat_map", other, FLAT_MAP_FUNCTIONS)),
        };
        Ok(FlatMapOp { f })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut tally = Tally::default();
        for item in batch {
            self.apply(item, &mut tally, ctx);
        }
        tally.flush(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{assert_refused, item, Driver};

    #[test]
    fn split_words_lowercases_and_drops_empties() {
        let mut d = Driver::new("flat_map", json!({"function": "split_words"}));
        d.push(vec![
            item(
                Some("k"),
                json!("Hello, hello -- World! 42x  Ünïcode_wörds"),
            ),
            item(None, json!("")),
            item(None, json!("...")),
            item(None, json!(3)),
        ]);
        let out = d.take();
        let words: Vec<_> = out.iter().map(|i| i.value.clone()).collect();
        assert_eq!(
            words,
            vec![
                json!("hello"),
                json!("hello"),
                json!("world"),
                json!("42x"),
                json!("ünïcode"),
                json!("wörds")
            ]
        );
        assert!(out.iter().all(|i| i.key.as_deref() == Some("k")));
        assert_eq!(d.counter("not_string"), 1);
    }

    #[test]
    fn split_keeps_or_skips_empty_parts() {
        let mut d = Driver::new("flat_map", json!({"function": "split", "separator": ", "}));
        d.push_values(vec![json!("a, b, , c"), json!(", ")]);
        assert_eq!(
            d.take_values(),
            vec![
                json!("a"),
                json!("b"),
                json!(""),
                json!("c"),
                json!(""),
                json!("")
            ]
        );
        let mut d = Driver::new(
            "flat_map",
            json!({"function": "split", "separator": ",", "skip_empty": true}),
        );
        d.push_values(vec![json!(",a,,b,"), json!(false)]);
        assert_eq!(d.take_values(), vec![json!("a"), json!("b")]);
        assert_eq!(d.counter("not_string"), 1);
    }

    #[test]
    fn explode_emits_one_record_per_element() {
        let mut d = Driver::new(
            "flat_map",
            json!({"function": "explode", "field": "o.tags"}),
        );
        d.push(vec![
            item(Some("k"), json!({"id": 1, "o": {"tags": ["a", {"b": 2}]}})),
            item(None, json!({"id": 2, "o": {"tags": []}})),
            item(None, json!({"id": 3, "o": {"tags": "a"}})),
            item(None, json!({"id": 4})),
        ]);
        assert_eq!(
            d.take(),
            vec![
                item(Some("k"), json!({"id": 1, "o": {"tags": "a"}})),
                item(Some("k"), json!({"id": 1, "o": {"tags": {"b": 2}}})),
            ]
        );
        assert_eq!(d.counter("not_array"), 1);
        assert_eq!(d.counter("missing_field"), 1);
        let mut d = Driver::new("flat_map", json!({"function": "explode", "field": "."}));
        d.push_values(vec![json!([1, [2]]), json!({"a": 1})]);
        assert_eq!(d.take_values(), vec![json!(1), json!([2])]);
        assert_eq!(d.counter("not_array"), 1);
    }

    #[test]
    fn flat_map_configs_are_checked() {
        assert_refused(
            "flat_map",
            json!({"function": "words"}),
            "unknown flat_map function 'words' (known: split_words, split, explode)",
        );
        assert_refused(
            "flat_map",
            json!({"function": "split", "separator": ""}),
            "separator must not be empty",
        );
        assert_refused(
            "flat_map",
            json!({"function": "split"}),
            "missing field `separator`",
        );
        assert_refused(
            "flat_map",
            json!({"function": "explode"}),
            "missing field `field`",
        );
        assert_refused(
            "flat_map",
            json!({"function": "split_words", "lowercase": false}),
            "unknown field `lowercase`",
        );
    }
}
