//! Helpers shared by the built-in operators for reading untrusted JSON records: field
//! paths, exact numbers, event times, and the `{ function = "...", ...args }` configs.
//!
//! Nothing here panics on odd records: every accessor returns `Option` and callers count
//! what they skip.

use std::cmp::Ordering;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number};

use ringflow_stream::data::{EventTime, Value};
use ringflow_stream::operator::{OpError, OpResult};

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

/// Event times (in ms) accepted by the built-ins: `|t| <= MAX_ABS_TIME_MS` (2^62 ms,
/// about 146 million years), so window arithmetic never overflows.
pub(crate) const MAX_ABS_TIME_MS: i64 = 1 << 62;

/// Largest accepted duration in a config (window size, slide, gap, lateness, delay):
/// 2^50 ms, about 35,700 years.
pub(crate) const MAX_DURATION_MS: i64 = 1 << 50;

/// A field of a record: `.` is the whole record, `a.b.c` descends into objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldPath {
    /// The record itself.
    Whole,
    /// Object keys, outermost first.
    Keys(Vec<String>),
}

impl FieldPath {
    /// Parses a path; `what` names the config field in the error.
    pub(crate) fn parse(what: &str, path: &str) -> OpResult<Self> {
        if path == "." {
            return Ok(FieldPath::Whole);
        }
        if path.is_empty() {
            return Err(OpError(format!(
                "{what} must not be empty (use \".\" for the whole record)"
            )));
        }
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        if keys.iter().any(String::is_empty) {
            return Err(OpError(format!(
                "{what} '{path}' has an empty segment (paths look like \"a\" or \"a.b.c\")"
            )));
        }
        Ok(FieldPath::Keys(keys))
    }

    /// The value at this path, when every step is an object holding the next key.
    pub(crate) fn get<'v>(&self, record: &'v Value) -> Option<&'v Value> {
        match self {
            FieldPath::Whole => Some(record),
            FieldPath::Keys(keys) => keys
                .iter()
                .try_fold(record, |v, k| v.as_object().and_then(|o| o.get(k))),
        }
    }

    /// A mutable reference to the value at this path, when present.
    pub(crate) fn get_mut<'v>(&self, record: &'v mut Value) -> Option<&'v mut Value> {
        match self {
            FieldPath::Whole => Some(record),
            FieldPath::Keys(keys) => keys
                .iter()
                .try_fold(record, |v, k| v.as_object_mut().and_then(|o| o.get_mut(k))),
        }
    }

    /// Copies the value at this path from `from` into `into` at the same path, creating
    /// intermediate objects. Does nothing when `from` lacks the path.
    pub(crate) fn copy_into(&self, from: &Value, into: &mut Map<String, Value>) {
        let FieldPath::Keys(keys) = self else {
            return;
        };
        let Some(value) = self.get(from) else {
            return;
        };
        let Some((last, parents)) = keys.split_last() else {
            return;
        };
        let mut target = into;
        for k in parents {
            let slot = target
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(m) => target = m,
                _ => return,
            }
        }
        target.insert(last.clone(), value.clone());
    }
}

/// A JSON number held exactly: integers (from i64 or u64) as `i128`, the rest as `f64`.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Num {
    /// An integer.
    Int(i128),
    /// A float (always finite: JSON has no NaN or infinity).
    Float(f64),
}

impl Num {
    /// The number in `v`, if `v` is a JSON number.
    pub(crate) fn from_value(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => Num::from_number(n),
            _ => None,
        }
    }

    /// The number `n` as a `Num`.
    pub(crate) fn from_number(n: &Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
        }
    }

    /// As a float (rounded for huge integers).
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The JSON form: integers that fit i64 or u64 stay integers.
    pub(crate) fn to_value(self) -> Value {
        match self {
            Num::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(i) {
                    Value::from(v)
                } else {
                    float_value(i as f64)
                }
            }
            Num::Float(f) => float_value(f),
        }
    }

    /// Exact numeric order (an integer and a float compare by their real values), a
    /// total preorder, so sorting by it never misbehaves.
    pub(crate) fn cmp_num(&self, other: &Num) -> Ordering {
        match (*self, *other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

/// A float as JSON (`null` if it is not finite, which JSON cannot hold).
pub(crate) fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Compares an integer with a finite float exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    // 2^127 as f64 is exact; floats at or beyond it lie outside i128.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() {
        return Ordering::Equal;
    }
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let floor = f.floor();
    // Integral and within range: the conversion is exact.
    let fi = floor as i128;
    match i.cmp(&fi) {
        Ordering::Equal if f > floor => Ordering::Less,
        other => other,
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (Num::from_value(a), Num::from_value(b)) {
        (Some(x), Some(y)) => x.cmp_num(&y) == Ordering::Equal,
        _ => a == b,
    }
}

/// Orders two values that are both numbers or both strings; `None` otherwise.
pub(crate) fn json_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => Some(Num::from_value(a)?.cmp_num(&Num::from_value(b)?)),
    }
}

/// Reads an event time in ms from the field at `path`: an integer or a finite float
/// (floored) in `unit`, within `±MAX_ABS_TIME_MS` once converted to ms.
pub(crate) fn event_time(record: &Value, path: &FieldPath, unit: TimeUnit) -> Option<EventTime> {
    let n = Num::from_value(path.get(record)?)?;
    let scale: i128 = match unit {
        TimeUnit::Ms => 1,
        TimeUnit::S => 1000,
    };
    let ms: i128 = match n {
        Num::Int(i) => i.checked_mul(scale)?,
        Num::Float(f) => {
            let ms = (f * scale as f64).floor();
            if ms.is_nan() || ms.abs() > MAX_ABS_TIME_MS as f64 {
                return None;
            }
            ms as i128
        }
    };
    if ms.abs() > i128::from(MAX_ABS_TIME_MS) {
        return None;
    }
    i64::try_from(ms).ok()
}

/// Checks a duration from a config: `0..=MAX_DURATION_MS`, or positive when `positive`.
pub(crate) fn check_duration(name: &str, value: i64, positive: bool) -> OpResult<i64> {
    if positive && value <= 0 {
        return Err(OpError(format!("{name} must be positive (got {value})")));
    }
    if value < 0 {
        return Err(OpError(format!(
            "{name} must not be negative (got {value})"
        )));
    }
    if value > MAX_DURATION_MS {
        return Err(OpError(format!(
            "{name} must be at most {MAX_DURATION_MS} (got {value})"
        )));
    }
    Ok(value)
}

/// Deserializes the arguments of `function` of operator `op`, naming both in errors.
pub(crate) fn fn_args<T: DeserializeOwned>(
    op: &str,
    function: &str,
    args: &Map<String, Value>,
) -> OpResult<T> {
    serde_json::from_value(Value::Object(args.clone()))
        .map_err(|e| OpError(format!("{op} function '{function}': {e}")))
}

/// The error for an unknown function name, listing the known ones.
pub(crate) fn unknown_function(op: &str, function: &str, known: &[&str]) -> OpError {
    OpError(format!(
        "unknown {op} function '{function}' (known: {})",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_descend_into_objects_only() {
        let r = json!({"a": {"b": {"c": 1}}, "l": [1, 2], "s": "x"});
        let p = FieldPath::parse("field", "a.b.c").unwrap();
        assert_eq!(p.get(&r), Some(&json!(1)));
        assert_eq!(FieldPath::parse("field", ".").unwrap().get(&r), Some(&r));
        assert_eq!(FieldPath::parse("f", "l.0").unwrap().get(&r), None);
        assert_eq!(FieldPath::parse("f", "s.x").unwrap().get(&r), None);
        assert_eq!(FieldPath::parse("f", "zz").unwrap().get(&json!(5)), None);
        let e = FieldPath::parse("field", "a..b").unwrap_err();
        assert!(e.0.contains("empty segment"), "{e}");
        let e = FieldPath::parse("field", "").unwrap_err();
        assert!(e.0.contains("field must not be empty"), "{e}");
        assert!(FieldPath::parse("field", "a.").is_err());
    }

    #[test]
    fn numbers_compare_exactly_across_ints_and_floats() {
        let n = |v: Value| Num::from_value(&v).unwrap();
        assert_eq!(n(json!(1)).cmp_num(&n(json!(1.0))), Ordering::Equal);
        assert_eq!(n(json!(1)).cmp_num(&n(json!(1.5))), Ordering::Less);
        assert_eq!(n(json!(-1)).cmp_num(&n(json!(-1.5))), Ordering::Greater);
        assert_eq!(
            n(json!(u64::MAX)).cmp_num(&n(json!(i64::MIN))),
            Ordering::Greater
        );
        // 2^53 + 1 is not representable as f64: compare exactly anyway.
        let big = (1i64 << 53) + 1;
        assert_eq!(
            n(json!(big)).cmp_num(&n(json!(9007199254740992.0))),
            Ordering::Greater
        );
        assert_eq!(
            n(json!(1e300)).cmp_num(&n(json!(u64::MAX))),
            Ordering::Greater
        );
        assert_eq!(n(json!(-0.0)).cmp_num(&n(json!(0))), Ordering::Equal);
        assert_eq!(n(json!(u64::MAX)).to_value(), json!(u64::MAX));
        assert_eq!(Num::Int(i128::MAX).to_value(), json!(i128::MAX as f64));
        assert!(json_eq(&json!(2), &json!(2.0)));
        assert!(!json_eq(&json!("2"), &json!(2)));
        assert_eq!(json_cmp(&json!("a"), &json!("b")), Some(Ordering::Less));
        assert_eq!(json_cmp(&json!("a"), &json!(1)), None);
    }

    #[test]
    fn event_times_are_checked_and_converted() {
        let p = FieldPath::parse("time_field", "t").unwrap();
        let t = |v: Value, u| event_time(&json!({ "t": v }), &p, u);
        assert_eq!(t(json!(1500), TimeUnit::Ms), Some(1500));
        assert_eq!(t(json!(1.5), TimeUnit::S), Some(1500));
        assert_eq!(t(json!(-1.5), TimeUnit::Ms), Some(-2));
        assert_eq!(t(json!(2), TimeUnit::S), Some(2000));
        assert_eq!(t(json!("1500"), TimeUnit::Ms), None);
        assert_eq!(t(json!(null), TimeUnit::Ms), None);
        assert_eq!(t(json!(u64::MAX), TimeUnit::Ms), None);
        assert_eq!(t(json!(i64::MIN), TimeUnit::Ms), None);
        assert_eq!(t(json!(1e300), TimeUnit::Ms), None);
        assert_eq!(t(json!(1i64 << 61), TimeUnit::S), None);
        assert_eq!(event_time(&json!(5), &p, TimeUnit::Ms), None);
    }
}
