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

pub(crate) mod fn_value;

#[cfg(test)]
pub(crate) mod fn_testkit;

use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::data::{Batch, EventTime, Value};
use crate::operator::{Context, InitContext, OpError, OpResult, Operator};
use crate::Registry;

use fn_value::{
    check_duration, event_time, fn_args, json_cmp, json_eq, unknown_function, FieldPath,
};

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

/// The unit of an event-time field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Milliseconds since the Unix epoch (the default).
    #[default]
    Ms,
    /// Seconds since the Unix epoch (may be fractional).
    S,
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

    fn flush<T: crate::Data>(self, ctx: &mut Context<'_, T>) {
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

// ---------------------------------------------------------------------------------------
// map

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

// ---------------------------------------------------------------------------------------
// filter

#[derive(Debug)]
enum Pred {
    NonEmpty(FieldPath),
    Exists(FieldPath),
    Equals(FieldPath, Value),
    NotEquals(FieldPath, Value),
    GreaterThan(FieldPath, Value),
    LessThan(FieldPath, Value),
    Contains(FieldPath, String),
    StartsWith(FieldPath, String),
}

const FILTER_FUNCTIONS: &[&str] = &[
    "non_empty",
    "exists",
    "equals",
    "not_equals",
    "greater_than",
    "less_than",
    "contains",
    "starts_with",
];

/// `filter`: keeps the records a predicate holds for; keys are kept. Predicates:
///
/// - `non_empty { field = "." }`: the value is present and not `null`, `""`, `[]` or `{}`.
/// - `exists { field }`: the field is present and not `null`.
/// - `equals { field, value }`: the field equals `value` (JSON equality; numbers compare
///   by value, so `1` equals `1.0`).
/// - `not_equals { field, value }`: the negation of `equals` (a record lacking the field
///   is kept).
/// - `greater_than { field, value }`, `less_than { field, value }`: `value` is a number or
///   a string; the field must be of the same kind (numbers compare by value, strings
///   byte-wise); other records are dropped.
/// - `contains { field = ".", substring }`: the value is a string containing `substring`.
/// - `starts_with { field = ".", prefix }`: the value is a string starting with `prefix`.
#[derive(Debug)]
pub struct FilterOp {
    pred: Pred,
}

impl FilterOp {
    fn keep(&self, v: &Value) -> bool {
        match &self.pred {
            Pred::NonEmpty(p) => match p.get(v) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            },
            Pred::Exists(p) => !matches!(p.get(v), None | Some(Value::Null)),
            Pred::Equals(p, x) => p.get(v).is_some_and(|f| json_eq(f, x)),
            Pred::NotEquals(p, x) => !p.get(v).is_some_and(|f| json_eq(f, x)),
            Pred::GreaterThan(p, x) => p
                .get(v)
                .and_then(|f| json_cmp(f, x))
                .is_some_and(|o| o.is_gt()),
            Pred::LessThan(p, x) => p
                .get(v)
                .and_then(|f| json_cmp(f, x))
                .is_some_and(|o| o.is_lt()),
            Pred::Contains(p, s) => p
                .get(v)
                .and_then(Value::as_str)
                .is_some_and(|f| f.contains(s.as_str())),
            Pred::StartsWith(p, s) => p
                .get(v)
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with(s.as_str())),
        }
    }
}

impl Operator for FilterOp {
    type In = Value;
    type Out = Value;
    type Config = FunctionConfig;

    fn create(config: FunctionConfig, _init: &InitContext) -> OpResult<Self> {
        let name = config.function.as_str();
        let args = &config.args;
        let what = format!("filter function '{name}': field");
        let field_value = || -> OpResult<(FieldPath, Value)> {
            let a: FieldValueArgs = fn_args("filter", name, args)?;
            Ok((FieldPath::parse(&what, &a.field)?, a.value))
        };
        let pred = match name {
            "non_empty" => {
                let a: OptFieldArg = fn_args("filter", name, args)?;
                Pred::NonEmpty(optional_path(&what, a.field)?)
            }
            "exists" => {
                let a: FieldArg = fn_args("filter", name, args)?;
                Pred::Exists(FieldPath::parse(&what, &a.field)?)
            }
            "equals" => {
                let (p, v) = field_value()?;
                Pred::Equals(p, v)
            }
            "not_equals" => {
                let (p, v) = field_value()?;
                Pred::NotEquals(p, v)
            }
            "greater_than" | "less_than" => {
                let (p, v) = field_value()?;
                if !(v.is_number() || v.is_string()) {
                    return Err(OpError(format!(
                        "filter function '{name}': value must be a number or a string (got {v})"
                    )));
                }
                if name == "greater_than" {
                    Pred::GreaterThan(p, v)
                } else {
                    Pred::LessThan(p, v)
                }
            }
            "contains" => {
                let a: SubstringArgs = fn_args("filter", name, args)?;
                Pred::Contains(optional_path(&what, a.field)?, a.substring)
            }
            "starts_with" => {
                let a: PrefixArgs = fn_args("filter", name, args)?;
                Pred::StartsWith(optional_path(&what, a.field)?, a.prefix)
            }
            other => return Err(unknown_function("filter", other, FILTER_FUNCTIONS)),
        };
        Ok(FilterOp { pred })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        for item in batch {
            if self.keep(&item.value) {
                ctx.emit_item(item.key, item.value);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// flat_map

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
    fn apply(&self, item: crate::Item<Value>, tally: &mut Tally, ctx: &mut Context<'_, Value>) {
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

// ---------------------------------------------------------------------------------------
// key_by

/// Config of `key_by`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyByConfig {
    /// Path of the field whose value becomes the key; `"."` for the whole record.
    pub field: String,
}

/// `key_by { field }`: sets each record's key to the field's value: a string as it is,
/// any other value (number, bool, array, object) as its JSON text (so `1` and `1.0` are
/// different keys). Records lacking the field, or where it is `null`, are dropped and
/// counted under `missing_key`. The record itself is unchanged.
#[derive(Debug)]
pub struct KeyByOp {
    path: FieldPath,
}

impl Operator for KeyByOp {
    type In = Value;
    type Out = Value;
    type Config = KeyByConfig;

    fn create(config: KeyByConfig, _init: &InitContext) -> OpResult<Self> {
        Ok(KeyByOp {
            path: FieldPath::parse("field", &config.field)?,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut tally = Tally::default();
        for item in batch {
            let key = match self.path.get(&item.value) {
                None | Some(Value::Null) => {
                    tally.add("missing_key");
                    continue;
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            ctx.emit_keyed(key, item.value);
        }
        tally.flush(ctx);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// watermark

/// Config of `watermark`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// Path of the event-time field (a number in `unit`).
    pub time_field: String,
    /// How far (ms) an event may lag behind the latest event time seen and still be on
    /// time; `0..=2^50`.
    pub max_delay_ms: i64,
    /// Unit of the time field: `"ms"` (default) or `"s"`.
    #[serde(default)]
    pub unit: TimeUnit,
}

/// `watermark { time_field, max_delay_ms, unit = "ms" }`: a bounded-out-of-orderness
/// watermark assigner. Passes records through unchanged (with their keys), tracks the
/// largest event time seen (converted to ms), and after each batch declares the
/// watermark `max_seen - max_delay_ms - 1`: an event no more than `max_delay_ms` behind
/// the latest one seen is never late downstream. Records without a valid time (a number
/// within ±2^62 ms) are dropped and counted under `missing_time`. Each instance tracks
/// its own input; downstream merges the instances' watermarks (minimum).
#[derive(Debug)]
pub struct WatermarkOp {
    time: FieldPath,
    unit: TimeUnit,
    max_delay: i64,
    max_seen: Option<EventTime>,
}

impl Operator for WatermarkOp {
    type In = Value;
    type Out = Value;
    type Config = WatermarkConfig;

    fn create(config: WatermarkConfig, _init: &InitContext) -> OpResult<Self> {
        Ok(WatermarkOp {
            time: FieldPath::parse("time_field", &config.time_field)?,
            unit: config.unit,
            max_delay: check_duration("max_delay_ms", config.max_delay_ms, false)?,
            max_seen: None,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut missing = 0;
        for item in batch {
            let Some(t) = event_time(&item.value, &self.time, self.unit) else {
                missing += 1;
                continue;
            };
            self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
            ctx.emit_item(item.key, item.value);
        }
        if missing > 0 {
            ctx.count("missing_time", missing);
        }
        if let Some(m) = self.max_seen {
            // |m| <= 2^62 and max_delay <= 2^50: no overflow.
            ctx.emit_watermark(m - self.max_delay - 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::fn_testkit::{
        assert_accepted, assert_refused, item, run_job, set_feed, Driver, Out, Step,
    };
    use crate::spec::{EdgeKind, JobSettings, JobSpec, VertexSpec};

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

    fn filter(config: serde_json::Value, input: &[serde_json::Value]) -> Vec<serde_json::Value> {
        let mut d = Driver::new("filter", config);
        d.push_values(input.to_vec());
        d.take_values()
    }

    #[test]
    fn filter_predicates() {
        let recs = [
            json!({"n": 5, "s": "apple pie", "o": {"x": 1}}),
            json!({"n": 5.0, "s": "banana", "o": {}}),
            json!({"n": 10, "s": "", "o": null}),
            json!({"n": "7", "s": ["apple"]}),
            json!("apple"),
            json!(null),
            json!(""),
        ];
        let f = |c| filter(c, &recs);
        assert_eq!(
            f(json!({"function": "non_empty"})),
            vec![
                recs[0].clone(),
                recs[1].clone(),
                recs[2].clone(),
                recs[3].clone(),
                recs[4].clone()
            ]
        );
        assert_eq!(
            f(json!({"function": "non_empty", "field": "o"})),
            vec![recs[0].clone()]
        );
        assert_eq!(f(json!({"function": "non_empty", "field": "s"})).len(), 3);
        assert_eq!(f(json!({"function": "exists", "field": "o"})).len(), 2);
        assert_eq!(
            f(json!({"function": "exists", "field": "o.x"})),
            vec![recs[0].clone()]
        );
        assert_eq!(
            f(json!({"function": "equals", "field": "n", "value": 5})),
            vec![recs[0].clone(), recs[1].clone()]
        );
        assert_eq!(
            f(json!({"function": "equals", "field": "n", "value": "7"})),
            vec![recs[3].clone()]
        );
        assert_eq!(
            f(json!({"function": "equals", "field": ".", "value": "apple"})),
            vec![recs[4].clone()]
        );
        assert_eq!(
            f(json!({"function": "not_equals", "field": "n", "value": 5})),
            recs[2..].to_vec()
        );
        assert_eq!(
            f(json!({"function": "greater_than", "field": "n", "value": 5})),
            vec![recs[2].clone()]
        );
        assert_eq!(
            f(json!({"function": "greater_than", "field": "n", "value": 4.5})),
            recs[..3].to_vec()
        );
        assert_eq!(
            f(json!({"function": "less_than", "field": "n", "value": 10})),
            recs[..2].to_vec()
        );
        assert_eq!(
            f(json!({"function": "less_than", "field": "s", "value": "b"})),
            vec![recs[0].clone(), recs[2].clone()]
        );
        assert_eq!(
            f(json!({"function": "contains", "field": "s", "substring": "an"})),
            vec![recs[1].clone()]
        );
        assert_eq!(
            f(json!({"function": "contains", "substring": "pp"})),
            vec![recs[4].clone()]
        );
        assert_eq!(
            f(json!({"function": "starts_with", "field": "s", "prefix": "apple"})),
            vec![recs[0].clone()]
        );
        assert_eq!(
            f(json!({"function": "starts_with", "prefix": ""})),
            vec![recs[4].clone(), recs[6].clone()]
        );
    }

    #[test]
    fn filter_configs_are_checked() {
        assert_refused(
            "filter",
            json!({"function": "matches"}),
            "unknown filter function 'matches' (known: non_empty, exists, equals, not_equals, greater_than, less_than, contains, starts_with)",
        );
        assert_refused(
            "filter",
            json!({"function": "equals", "field": "a"}),
            "missing field `value`",
        );
        assert_refused(
            "filter",
            json!({"function": "greater_than", "field": "a", "value": [1]}),
            "value must be a number or a string",
        );
        assert_refused(
            "filter",
            json!({"function": "contains", "field": "a"}),
            "missing field `substring`",
        );
        assert_refused(
            "filter",
            json!({"function": "starts_with", "substring": "a"}),
            "unknown field `substring`",
        );
        assert_refused(
            "filter",
            json!({"function": "exists"}),
            "missing field `field`",
        );
        assert_accepted(
            "filter",
            json!({"function": "equals", "field": "a", "value": null}),
        );
    }

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

    #[test]
    fn key_by_uses_strings_as_is_and_json_text_otherwise() {
        let mut d = Driver::new("key_by", json!({"field": "u.id"}));
        d.push_values(vec![
            json!({"u": {"id": "alice"}}),
            json!({"u": {"id": 42}}),
            json!({"u": {"id": 1.5}}),
            json!({"u": {"id": true}}),
            json!({"u": {"id": [1, "a"]}}),
            json!({"u": {"id": null}}),
            json!({"u": {}}),
            json!("str"),
        ]);
        let keys: Vec<_> = d.take().into_iter().map(|i| i.key).collect();
        let s = |k: &str| Some(k.to_owned());
        assert_eq!(
            keys,
            vec![s("alice"), s("42"), s("1.5"), s("true"), s("[1,\"a\"]")]
        );
        assert_eq!(d.counter("missing_key"), 3);

        let mut d = Driver::new("key_by", json!({"field": "."}));
        d.push(vec![item(Some("old"), json!("w")), item(None, json!(7))]);
        assert_eq!(
            d.take(),
            vec![item(Some("w"), json!("w")), item(Some("7"), json!(7))]
        );
        assert_refused("key_by", json!({}), "missing field `field`");
        assert_refused("key_by", json!({"field": "a", "x": 1}), "unknown field `x`");
        assert_refused("key_by", json!({"field": ""}), "field must not be empty");
    }

    #[test]
    fn watermark_trails_the_max_time_by_the_delay() {
        let mut d = Driver::new("watermark", json!({"time_field": "t", "max_delay_ms": 100}));
        d.push(vec![
            item(Some("a"), json!({"t": 1000})),
            item(None, json!({"t": 900})),
            item(None, json!({"x": 1})),
            item(None, json!({"t": "1000"})),
        ]);
        assert_eq!(
            d.out,
            vec![
                Out::Rec(item(Some("a"), json!({"t": 1000}))),
                Out::Rec(item(None, json!({"t": 900}))),
                Out::Wm(899),
            ]
        );
        assert_eq!(d.counter("missing_time"), 2);
        d.out.clear();
        // An older event does not move the watermark back (and nothing is sent).
        d.push_values(vec![json!({"t": 950})]);
        assert_eq!(d.out, vec![Out::Rec(item(None, json!({"t": 950})))]);
        d.out.clear();
        d.push_values(vec![json!({"t": 1500})]);
        assert_eq!(d.out.last(), Some(&Out::Wm(1399)));
        // The input watermark wins when it is ahead.
        d.watermark(2000);
        assert_eq!(d.out.last(), Some(&Out::Wm(2000)));
        d.end();
        assert_eq!(d.out.last(), Some(&Out::End));
    }

    #[test]
    fn watermark_in_seconds() {
        let mut d = Driver::new(
            "watermark",
            json!({"time_field": "ts", "max_delay_ms": 0, "unit": "s"}),
        );
        d.push_values(vec![json!({"ts": 12.5}), json!({"ts": 3})]);
        assert_eq!(d.out.last(), Some(&Out::Wm(12_499)));
        assert_refused(
            "watermark",
            json!({"time_field": "t", "max_delay_ms": -1}),
            "max_delay_ms must not be negative",
        );
        assert_refused(
            "watermark",
            json!({"time_field": "t", "max_delay_ms": 1, "unit": "min"}),
            "unknown variant `min`, expected `ms` or `s`",
        );
        assert_refused(
            "watermark",
            json!({"time_field": "t"}),
            "missing field `max_delay_ms`",
        );
        assert_refused(
            "watermark",
            json!({"time_field": "t", "max_delay_ms": 1i64 << 60}),
            "max_delay_ms must be at most",
        );
    }

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
