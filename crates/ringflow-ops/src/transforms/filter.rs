//! `filter`: keeps the records a predicate holds for.

use super::{
    optional_path, FieldArg, FieldValueArgs, FunctionConfig, OptFieldArg, PrefixArgs, SubstringArgs,
};
use crate::values::{fn_args, json_cmp, json_eq, unknown_function, FieldPath};
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{assert_accepted, assert_refused, Driver};

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
}
