//! `map`: transforms each record by a function.

use serde_json::Map;

use super::{FieldArg, FieldsArg, FunctionConfig, NoArgs, Tally};
use crate::values::{fn_args, unknown_function, FieldPath};
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};

#[derive(Debug)]
enum MapFn {
    Lowercase,
    Uppercase,
    Trim,
    ParseJson,
    ToString,
    Project(Vec<FieldPath>),
    Extract(FieldPath),
}

const MAP_FUNCTIONS: &[&str] = &[
    "lowercase",
    "uppercase",
    "trim",
    "parse_json",
    "to_string",
    "project",
    "extract",
];

/// `map`: transforms each record by a function; keys are kept. Functions:
///
/// - `lowercase`, `uppercase`, `trim`: on string records. Other records pass unchanged
///   and are counted under `not_string`.
/// - `parse_json`: a string holding JSON text becomes that JSON value. Anything else
///   (invalid JSON, a record that is not a string) is dropped and counted under
///   `parse_errors`.
/// - `to_string`: a string stays as it is; any other value becomes its JSON text.
/// - `project { fields = ["a", "b.c"] }`: keeps only the listed fields of an object
///   record, nested paths keeping their nesting (`{"b": {"c": ..}}`); fields the record
///   lacks are left out. Records that are not objects are dropped, counted `not_object`.
/// - `extract { field }`: replaces the record by the value of one field; records lacking
///   it are dropped, counted `missing_field`.
#[derive(Debug)]
pub struct MapOp {
    f: MapFn,
}

impl MapOp {
    fn apply(&self, v: Value, tally: &mut Tally) -> Option<Value> {
        let string_fn = |v: Value, tally: &mut Tally, f: fn(&str) -> String| match v {
            Value::String(s) => Value::String(f(&s)),
            other => {
                tally.add("not_string");
                other
            }
        };
        match &self.f {
            MapFn::Lowercase => Some(string_fn(v, tally, str::to_lowercase)),
            MapFn::Uppercase => Some(string_fn(v, tally, str::to_uppercase)),
            MapFn::Trim => Some(string_fn(v, tally, |s| s.trim().to_owned())),
            MapFn::ParseJson => {
                let parsed = match &v {
                    Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                    _ => None,
                };
                if parsed.is_none() {
                    tally.add("parse_errors");
                }
                parsed
            }
            MapFn::ToString => Some(match v {
                Value::String(s) => Value::String(s),
                other => Value::String(other.to_string()),
            }),
            MapFn::Project(paths) => {
                if !v.is_object() {
                    tally.add("not_object");
                    return None;
                }
                let mut out = Map::new();
                for p in paths {
                    p.copy_into(&v, &mut out);
                }
                Some(Value::Object(out))
            }
            MapFn::Extract(path) => {
                let got = path.get(&v).cloned();
                if got.is_none() {
                    tally.add("missing_field");
                }
                got
            }
        }
    }
}

impl Operator for MapOp {
    type In = Value;
    type Out = Value;
    type Config = FunctionConfig;

    fn create(config: FunctionConfig, _init: &InitContext) -> OpResult<Self> {
        let name = config.function.as_str();
        let args = &config.args;
        let no_args = |f: MapFn| fn_args::<NoArgs>("map", name, args).map(|_| f);
        let f = match name {
            "lowercase" => no_args(MapFn::Lowercase)?,
            "uppercase" => no_args(MapFn::Uppercase)?,
            "trim" => no_args(MapFn::Trim)?,
            "parse_json" => no_args(MapFn::ParseJson)?,
            "to_string" => no_args(MapFn::ToString)?,
            "project" => {
                let a: FieldsArg = fn_args("map", name, args)?;
                if a.fields.is_empty() {
                    return Err("map function 'project': fields must not be empty".into());
                }
                let paths = a
                    .fields
                    .iter()
                    .map(|f| {
                        let p = FieldPath::parse("map function 'project': field", f)?;
                        if p == FieldPath::Whole {
                            return Err(OpError(
                                "map function 'project': field \".\" (the whole record) cannot be projected"
                                    .into(),
                            ));
                        }
                        Ok(p)
                    })
                    .collect::<OpResult<Vec<_>>>()?;
                MapFn::Project(paths)
            }
            "extract" => {
                let a: FieldArg = fn_args("map", name, args)?;
                MapFn::Extract(FieldPath::parse("map function 'extract': field", &a.field)?)
            }
            other => return Err(unknown_function("map", other, MAP_FUNCTIONS)),
        };
        Ok(MapOp { f })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut tally = Tally::default();
        for item in batch {
            if let Some(v) = self.apply(item.value, &mut tally) {
                ctx.emit_item(item.key, v);
            }
        }
        tally.flush(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{assert_accepted, assert_refused, item, Driver};

    fn map(
        config: serde_json::Value,
        input: Vec<serde_json::Value>,
    ) -> (Vec<serde_json::Value>, Driver) {
        let mut d = Driver::new("map", config);
        d.push_values(input);
        (d.take_values(), d)
    }

    #[test]
    fn string_maps_change_strings_and_pass_the_rest() {
        let input = vec![json!(" Hello Wörld "), json!(5), json!({"a": "B"})];
        let (out, d) = map(json!({"function": "lowercase"}), input.clone());
        assert_eq!(
            out,
            vec![json!(" hello wörld "), json!(5), json!({"a": "B"})]
        );
        assert_eq!(d.counter("not_string"), 2);
        let (out, _) = map(json!({"function": "uppercase"}), input.clone());
        assert_eq!(out[0], json!(" HELLO WÖRLD "));
        let (out, _) = map(json!({"function": "trim"}), input);
        assert_eq!(out[0], json!("Hello Wörld"));
    }

    #[test]
    fn map_keeps_keys() {
        let mut d = Driver::new("map", json!({"function": "uppercase"}));
        d.push(vec![item(Some("k1"), json!("a")), item(None, json!("b"))]);
        let out = d.take();
        assert_eq!(
            out,
            vec![item(Some("k1"), json!("A")), item(None, json!("B"))]
        );
    }

    #[test]
    fn parse_json_drops_and_counts_bad_input() {
        let (out, d) = map(
            json!({"function": "parse_json"}),
            vec![
                json!("{\"a\": [1, 2]}"),
                json!("not json"),
                json!("3"),
                json!(7),
                json!("{\"unterminated\": "),
                json!(""),
                json!("[".repeat(10_000)),
            ],
        );
        assert_eq!(out, vec![json!({"a": [1, 2]}), json!(3)]);
        assert_eq!(d.counter("parse_errors"), 5);
    }

    #[test]
    fn to_string_gives_json_text_or_the_string() {
        let (out, _) = map(
            json!({"function": "to_string"}),
            vec![
                json!("x"),
                json!(1.5),
                json!({"b": 1, "a": [true, null]}),
                json!(null),
            ],
        );
        assert_eq!(
            out,
            vec![
                json!("x"),
                json!("1.5"),
                json!("{\"a\":[true,null],\"b\":1}"),
                json!("null")
            ]
        );
    }

    #[test]
    fn project_keeps_listed_fields_with_their_nesting() {
        let (out, d) = map(
            json!({"function": "project", "fields": ["a", "b.c", "x.y", "e.f"]}),
            vec![
                json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4, "z": 0}),
                json!({"z": 0}),
                json!("text"),
                json!({"b": {"c": null}}),
            ],
        );
        assert_eq!(
            out,
            vec![
                json!({"a": 1, "b": {"c": 2}}),
                json!({}),
                json!({"b": {"c": null}})
            ]
        );
        assert_eq!(d.counter("not_object"), 1);
        // Overlapping paths: the wider one wins whatever the order.
        let (out, _) = map(
            json!({"function": "project", "fields": ["b.c", "b"]}),
            vec![json!({"b": {"c": 2, "d": 3}})],
        );
        assert_eq!(out, vec![json!({"b": {"c": 2, "d": 3}})]);
        let (out, _) = map(
            json!({"function": "project", "fields": ["b", "b.c"]}),
            vec![json!({"b": {"c": 2, "d": 3}})],
        );
        assert_eq!(out, vec![json!({"b": {"c": 2, "d": 3}})]);
    }

    #[test]
    fn extract_replaces_the_record_by_a_field() {
        let (out, d) = map(
            json!({"function": "extract", "field": "a.b"}),
            vec![
                json!({"a": {"b": [1]}}),
                json!({"a": 1}),
                json!(null),
                json!({"a": {"b": null}}),
            ],
        );
        assert_eq!(out, vec![json!([1]), json!(null)]);
        assert_eq!(d.counter("missing_field"), 2);
    }

    #[test]
    fn map_configs_are_checked() {
        assert_refused(
            "map",
            json!({"function": "reverse"}),
            "unknown map function 'reverse' (known: lowercase, uppercase, trim, parse_json, to_string, project, extract)",
        );
        assert_refused("map", json!({}), "missing field `function`");
        assert_refused(
            "map",
            json!({"function": "trim", "field": "a"}),
            "unknown field `field`",
        );
        assert_refused(
            "map",
            json!({"function": "project"}),
            "missing field `fields`",
        );
        assert_refused(
            "map",
            json!({"function": "project", "fields": []}),
            "fields must not be empty",
        );
        assert_refused(
            "map",
            json!({"function": "project", "fields": ["a..b"]}),
            "empty segment",
        );
        assert_refused(
            "map",
            json!({"function": "project", "fields": ["."]}),
            "cannot be projected",
        );
        assert_refused(
            "map",
            json!({"function": "extract"}),
            "map function 'extract': missing field `field`",
        );
        assert_refused(
            "map",
            json!({"function": "extract", "field": ""}),
            "must not be empty",
        );
        assert_accepted("map", json!({"function": "extract", "field": "."}));
    }
}
