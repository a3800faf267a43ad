//! How sinks render a record as one line of text.

use std::io::{self, Write};

use serde::Deserialize;

use ringflow_stream::data::Item;
use ringflow_stream::Value;

/// How a sink writes a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// One JSON document per line: `{"key": k, "value": v}` for a keyed record, the
    /// value alone otherwise.
    #[default]
    Json,
    /// Strings as they are, other values as JSON text; the key is not written. A string
    /// holding a newline spans several lines.
    Text,
}

impl LineFormat {
    /// File name extension of this format: `jsonl` or `txt`.
    pub fn extension(&self) -> &'static str {
        match self {
            LineFormat::Json => "jsonl",
            LineFormat::Text => "txt",
        }
    }

    /// Writes `item` followed by a newline (any serde record: `Value`, or a typed one).
    pub fn write_line<W: Write, T: serde::Serialize + 'static>(
        &self,
        w: &mut W,
        item: &Item<T>,
    ) -> io::Result<()> {
        match (self, &item.key) {
            (LineFormat::Json, Some(key)) => {
                #[derive(serde::Serialize)]
                struct Keyed<'a, T> {
                    key: &'a str,
                    value: &'a T,
                }
                serde_json::to_writer(
                    &mut *w,
                    &Keyed {
                        key,
                        value: &item.value,
                    },
                )?;
            }
            (LineFormat::Json, None) => serde_json::to_writer(&mut *w, &item.value)?,
            (LineFormat::Text, _) => {
                let any = &item.value as &dyn std::any::Any;
                if let Some(Value::String(s)) = any.downcast_ref::<Value>() {
                    w.write_all(s.as_bytes())?;
                } else if let Some(s) = any.downcast_ref::<String>() {
                    w.write_all(s.as_bytes())?;
                } else {
                    serde_json::to_writer(&mut *w, &item.value)?;
                }
            }
        }
        w.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(f: LineFormat, key: Option<&str>, value: Value) -> String {
        let mut buf = Vec::new();
        let item = Item {
            key: key.map(str::to_owned),
            value,
        };
        f.write_line(&mut buf, &item).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn json_and_text_lines() {
        use LineFormat::*;
        assert_eq!(render(Json, None, json!("a\nb")), "\"a\\nb\"\n");
        assert_eq!(render(Json, None, json!({"n": 1})), "{\"n\":1}\n");
        assert_eq!(
            render(Json, Some("k"), json!([1, 2])),
            "{\"key\":\"k\",\"value\":[1,2]}\n"
        );
        assert_eq!(render(Text, Some("k"), json!("plain text")), "plain text\n");
        assert_eq!(render(Text, None, json!({"n": 1.5})), "{\"n\":1.5}\n");
        assert_eq!(render(Text, None, Value::Null), "null\n");
    }
}
