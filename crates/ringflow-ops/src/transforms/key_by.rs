//! `key_by`: sets each record's key from a field.

use serde::Deserialize;

use super::Tally;
use crate::values::FieldPath;
use ringflow_stream::data::{Batch, Value};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{assert_refused, item, Driver};

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
}
