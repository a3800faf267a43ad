//! `watermark`: a bounded-out-of-orderness watermark assigner.

use serde::Deserialize;

use crate::values::{check_duration, event_time, FieldPath, TimeUnit};
use ringflow_stream::data::{Batch, EventTime, Value};
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};

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
    use serde_json::json;

    use crate::testkit::{assert_refused, item, Driver, Out};

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
}
