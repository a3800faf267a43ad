//! Built-in stream-stream joins on event time, two-input operators (see
//! [`ringflow_stream::TwoInput`]) whose vertex takes exactly two inputs, both `hash`
//! edges keyed by the join key (so both sides of a key meet on one instance):
//!
//! ```toml
//! [[vertex]]
//! name = "joined"
//! operator = "join.window"          # or "join.interval"
//! inputs = [{ from = "clicks_by_user", edge = "hash" }, { from = "views_by_user", edge = "hash" }]
//! config = { size_ms = 10000, time_field = "ts" }
//! ```
//!
//! - `join.window`: inner join of records with the same key in the same tumbling window
//!   `[start, start + size_ms)` (start a multiple of `size_ms`). A window's pairs are
//!   emitted once the watermark closes it (`W >= start + size_ms - 1`), as
//!   `{"key", "window_start", "window_end", "left", "right"}` keyed by the key, one per
//!   (left, right) pair; then its state is dropped.
//! - `join.interval`: inner join of a left record at `tl` with each right record of the
//!   same key at `tr` with `tl + lower_ms <= tr <= tl + upper_ms` (inclusive, `lower_ms`
//!   may be negative). A pair is emitted as soon as its second record arrives, as
//!   `{"key", "left", "right"}`. A left record is kept until `W >= tl + upper_ms`, a right
//!   one until `W >= tr - lower_ms`.
//!
//! The time of a record is the number at `time_field` (or `left_time_field` /
//! `right_time_field` per side) in `unit` (`"ms"`, default, or `"s"`); records without
//! one are dropped and counted under `missing_time`. Late records (`join.window`: their
//! window has closed; `join.interval`: at or behind the watermark) are dropped and
//! counted under `late_dropped`. Records without a key join under the key `""`. Both
//! sides' state is keyed state: snapshotted per ring partition at checkpoints.

pub mod interval;
pub mod window;

use serde::Deserialize;
use serde_json::json;

use crate::values::{check_duration, event_time, FieldPath, TimeUnit, MAX_DURATION_MS};
use interval::IntervalJoin;
use ringflow_stream::data::{Batch, EventTime, Value};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Timer};
use ringflow_stream::state::PartitionedState;
use ringflow_stream::{Registry, TwoInput};
use window::{Admit, WindowJoin};

/// Registers `join.window` and `join.interval`.
pub fn register(r: &mut Registry) {
    r.two_input::<WindowJoinOp>("join.window");
    r.two_input::<IntervalJoinOp>("join.interval");
}

/// The paths of both sides' event time: per side, or `time_field` for both.
fn time_paths(
    time_field: &Option<String>,
    left: &Option<String>,
    right: &Option<String>,
) -> OpResult<(FieldPath, FieldPath)> {
    let pick = |side: &Option<String>, what: &str| -> OpResult<FieldPath> {
        match side.as_ref().or(time_field.as_ref()) {
            Some(p) => FieldPath::parse(what, p),
            None => Err(OpError(format!(
                "{what} (or time_field) is needed: the path of the event time"
            ))),
        }
    };
    Ok((
        pick(left, "left_time_field")?,
        pick(right, "right_time_field")?,
    ))
}

/// Config of `join.window`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowJoinConfig {
    /// Window length (ms).
    pub size_ms: i64,
    /// Path of the event-time field of both sides.
    #[serde(default)]
    pub time_field: Option<String>,
    /// Path of the left side's time field (default: `time_field`).
    #[serde(default)]
    pub left_time_field: Option<String>,
    /// Path of the right side's time field (default: `time_field`).
    #[serde(default)]
    pub right_time_field: Option<String>,
    /// Unit of the time fields: `"ms"` (default) or `"s"`.
    #[serde(default)]
    pub unit: TimeUnit,
}

/// `join.window`: the windowed stream-stream join of JSON records.
pub struct WindowJoinOp {
    join: WindowJoin<Value, Value>,
    times: (FieldPath, FieldPath),
    unit: TimeUnit,
}

/// Offers each record of `batch` to `admit` with its key and time, counting what is
/// dropped and setting the timers `admit` asks for.
fn offer(
    batch: Batch<Value>,
    path: &FieldPath,
    unit: TimeUnit,
    ctx: &mut Context<'_, Value>,
    mut admit: impl FnMut(&str, EventTime, Value, &mut Context<'_, Value>) -> Admit,
) {
    let (mut missing, mut late) = (0, 0);
    for item in batch {
        let Some(t) = event_time(&item.value, path, unit) else {
            missing += 1;
            continue;
        };
        let key = item.key.unwrap_or_default();
        match admit(&key, t, item.value, ctx) {
            Admit::Kept(at) => ctx.set_timer(at, key),
            Admit::Late => late += 1,
        }
    }
    if missing > 0 {
        ctx.count("missing_time", missing);
    }
    if late > 0 {
        ctx.count("late_dropped", late);
    }
}

impl TwoInput for WindowJoinOp {
    type Left = Value;
    type Right = Value;
    type Out = Value;
    type Config = WindowJoinConfig;

    fn create(config: WindowJoinConfig, init: &InitContext) -> OpResult<Self> {
        let size = check_duration("size_ms", config.size_ms, true)?;
        Ok(WindowJoinOp {
            join: WindowJoin::new(size, init.ring)?,
            times: time_paths(
                &config.time_field,
                &config.left_time_field,
                &config.right_time_field,
            )?,
            unit: config.unit,
        })
    }

    fn on_left(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let join = &mut self.join;
        offer(batch, &self.times.0, self.unit, ctx, |k, t, v, ctx| {
            join.left(k, t, v, ctx.watermark())
        });
        Ok(())
    }

    fn on_right(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let join = &mut self.join;
        offer(batch, &self.times.1, self.unit, ctx, |k, t, v, ctx| {
            join.right(k, t, v, ctx.watermark())
        });
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, Value>) -> OpResult {
        let wm = ctx.watermark().max(timer.time);
        let key = timer.key;
        let mut rows = Vec::new();
        let span = self.join.size();
        self.join.close(&key, wm, |start, ls, rs| {
            for l in ls {
                for r in rs {
                    rows.push(json!({
                        "key": key,
                        "window_start": start,
                        "window_end": start.saturating_add(span),
                        "left": l,
                        "right": r,
                    }));
                }
            }
        });
        for row in rows {
            ctx.emit_keyed(key.clone(), row);
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.join.sides)
    }
}

/// Config of `join.interval`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalJoinConfig {
    /// Earliest right time relative to the left record's (ms, may be negative).
    pub lower_ms: i64,
    /// Latest right time relative to the left record's (ms, at least `lower_ms`).
    pub upper_ms: i64,
    /// Path of the event-time field of both sides.
    #[serde(default)]
    pub time_field: Option<String>,
    /// Path of the left side's time field (default: `time_field`).
    #[serde(default)]
    pub left_time_field: Option<String>,
    /// Path of the right side's time field (default: `time_field`).
    #[serde(default)]
    pub right_time_field: Option<String>,
    /// Unit of the time fields: `"ms"` (default) or `"s"`.
    #[serde(default)]
    pub unit: TimeUnit,
}

/// `join.interval`: the interval join of JSON records.
pub struct IntervalJoinOp {
    join: IntervalJoin<Value, Value>,
    times: (FieldPath, FieldPath),
    unit: TimeUnit,
}

fn pair(key: &str, l: &Value, r: &Value) -> Value {
    json!({ "key": key, "left": l, "right": r })
}

impl TwoInput for IntervalJoinOp {
    type Left = Value;
    type Right = Value;
    type Out = Value;
    type Config = IntervalJoinConfig;

    fn create(config: IntervalJoinConfig, init: &InitContext) -> OpResult<Self> {
        for (name, v) in [("lower_ms", config.lower_ms), ("upper_ms", config.upper_ms)] {
            if v.abs() > MAX_DURATION_MS {
                return Err(OpError(format!(
                    "{name} must be within ±{MAX_DURATION_MS} (got {v})"
                )));
            }
        }
        Ok(IntervalJoinOp {
            join: IntervalJoin::new(config.lower_ms, config.upper_ms, init.ring)?,
            times: time_paths(
                &config.time_field,
                &config.left_time_field,
                &config.right_time_field,
            )?,
            unit: config.unit,
        })
    }

    fn on_left(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let join = &mut self.join;
        offer(batch, &self.times.0, self.unit, ctx, |k, t, v, ctx| {
            let mut rows = Vec::new();
            let admit = join.left(k, t, v, ctx.watermark(), |l, r| rows.push(pair(k, l, r)));
            for row in rows {
                ctx.emit_keyed(k.to_owned(), row);
            }
            admit
        });
        Ok(())
    }

    fn on_right(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let join = &mut self.join;
        offer(batch, &self.times.1, self.unit, ctx, |k, t, v, ctx| {
            let mut rows = Vec::new();
            let admit = join.right(k, t, v, ctx.watermark(), |l, r| rows.push(pair(k, l, r)));
            for row in rows {
                ctx.emit_keyed(k.to_owned(), row);
            }
            admit
        });
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, Value>) -> OpResult {
        self.join
            .expire(&timer.key, ctx.watermark().max(timer.time));
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.join.sides)
    }
}

#[cfg(test)]
mod tests;
