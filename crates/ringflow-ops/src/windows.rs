//! Built-in event-time windows: `window`, tumbling, sliding or session windows per record
//! key, fired by the watermark, with allowed lateness and updates.
//!
//! ```toml
//! [[vertex]]
//! name = "per_minute"
//! operator = "window"
//! inputs = [{ from = "with_watermarks", edge = "hash" }]
//! config = { kind = "tumbling", size_ms = 60000, time_field = "ts", field = "latency",
//!            aggregates = ["count", "mean", "p99"], allowed_lateness_ms = 5000 }
//! ```
//!
//! Semantics, with `W` the input watermark ("every event at or before `W` has arrived"):
//!
//! - **tumbling**: windows `[start, start + size_ms)` with `start` a multiple of
//!   `size_ms` (Euclidean division, so negative times work too).
//! - **sliding**: windows of length `size_ms` starting at every multiple of `slide_ms`
//!   (`slide_ms <= size_ms`); an event belongs to every window covering it: `size_ms /
//!   slide_ms` of them, rounded up or down when `slide_ms` does not divide `size_ms`.
//! - **session**: per key, events closer than `gap_ms` to each other form one session
//!   `[first event, last event + gap_ms)`; an event that bridges two sessions merges them.
//! - A window `[s, e)` **fires** when `W >= e - 1`: one record per key and window
//!   `{"key", "window_start": s, "window_end": e, "count", <aggregates>}`, keyed by the key.
//! - Its state is kept until `W >= e - 1 + allowed_lateness_ms`. An event for a window
//!   that fired but is still kept updates it and re-emits it (right after the batch)
//!   with `"update": true`; it is counted under `late_accepted`. Once `W >= e - 1 +
//!   allowed_lateness_ms`, an event for that window is dropped and counted under
//!   `late_dropped`, once per window it is excluded from (for sliding windows an event may
//!   be dropped from some windows and kept in others). Late data is never merged silently.
//! - For session windows, an event at `t` is late (dropped, `late_dropped`) when the
//!   session it would open on its own is beyond the lateness (`W >= t + gap_ms - 1 +
//!   allowed_lateness_ms`), even if it falls inside a session still kept, or when `t`
//!   lies before the end of a session of its key that was already dropped (it would have
//!   joined that session). So a session never grows over one already dropped. Otherwise
//!   it joins (and merges) the kept sessions it overlaps; when a merge involves a session
//!   that was already emitted, the merged session is emitted with `"update": true` and
//!   supersedes the emitted sessions it overlaps.
//! - Records without a valid time (a number in `unit` within ±2^62 ms) are dropped and
//!   counted under `missing_time`; with `field` set, records whose field is missing or not
//!   a number are dropped and counted under `skipped`.
//! - Records without a key are windowed under the key `""`, as `hash` edges route them.
//!
//! Aggregates: `count` (always present in the output), `sum` (exact for integers),
//! `min`, `max` (the original numbers), `mean` (float), and percentiles `p1`..`p100`
//! (e.g. `p50`, `p90`, `p95`, `p99`), exact by the **nearest-rank** method: the value at
//! 1-based rank `ceil(p / 100 * n)` of the window's values sorted ascending (so always
//! one of the values). Percentiles keep every value of a window in memory; the others
//! keep a constant-size summary.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Map;

use crate::stats::{nearest_rank, Stats};
use crate::values::TimeUnit;
use crate::values::{check_duration, event_time, FieldPath, Num};
use ringflow_stream::data::{Batch, EventTime, Key, Value};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator, Timer};
use ringflow_stream::state::KeyedState;
use ringflow_stream::Registry;

/// Registers `window`.
pub fn register(r: &mut Registry) {
    r.operator::<WindowOp>("window");
}

/// Most windows one event may belong to (`size_ms / slide_ms` of sliding windows).
pub const MAX_WINDOWS_PER_EVENT: i64 = 10_000;

/// The shape of the windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumbling,
    /// Windows of `size_ms` every `slide_ms`.
    Sliding,
    /// Per-key sessions closed by `gap_ms` without events.
    Session,
}

fn default_aggregates() -> Vec<String> {
    vec!["count".to_owned()]
}

/// Config of `window`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `"tumbling"`, `"sliding"` or `"session"`.
    pub kind: WindowKind,
    /// Window length (ms); tumbling and sliding windows.
    #[serde(default)]
    pub size_ms: Option<i64>,
    /// Distance between window starts (ms); sliding windows only, at most `size_ms`.
    #[serde(default)]
    pub slide_ms: Option<i64>,
    /// Largest gap (ms, exclusive) between events of one session; session windows only.
    #[serde(default)]
    pub gap_ms: Option<i64>,
    /// Path of the event-time field.
    pub time_field: String,
    /// Unit of the time field: `"ms"` (default) or `"s"`.
    #[serde(default)]
    pub unit: TimeUnit,
    /// How long (ms of event time) a fired window is kept for late events; default 0.
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// Path of the numeric field the value aggregates use; needed by every aggregate but
    /// `count`.
    #[serde(default)]
    pub field: Option<String>,
    /// Aggregates to emit, default `["count"]`: `count`, `sum`, `min`, `max`, `mean`,
    /// `p1`..`p100`.
    #[serde(default = "default_aggregates")]
    pub aggregates: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tumbling { size: i64 },
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Mean,
    Percentile(u32),
}

const KNOWN_AGGREGATES: &str = "count, sum, min, max, mean, p1..p100 (e.g. p50, p90, p95, p99)";

impl Agg {
    fn parse(name: &str) -> Option<Agg> {
        Some(match name {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "mean" => Agg::Mean,
            _ => {
                let digits = name.strip_prefix('p')?;
                if digits.is_empty()
                    || digits.starts_with('0')
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let p: u32 = digits.parse().ok()?;
                if !(1..=100).contains(&p) {
                    return None;
                }
                Agg::Percentile(p)
            }
        })
    }
}

/// What a window accumulates.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Acc {
    count: u64,
    stats: Stats,
    /// Every value, when percentiles are requested.
    values: Vec<Num>,
}

impl Acc {
    fn add(&mut self, value: Option<Num>, keep_values: bool) {
        self.count += 1;
        if let Some(n) = value {
            self.stats.add(n);
            if keep_values {
                self.values.push(n);
            }
        }
    }

    fn merge(&mut self, other: Acc) {
        self.count += other.count;
        self.stats.merge(&other.stats);
        self.values.extend(other.values);
    }
}

/// One window of one key.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Win {
    end: EventTime,
    acc: Acc,
    /// A version of this window was emitted: the next emission is an update.
    emitted: bool,
    /// It changed since it was last emitted.
    pending: bool,
}

impl Win {
    fn new(end: EventTime) -> Self {
        Win {
            end,
            acc: Acc::default(),
            emitted: false,
            pending: true,
        }
    }
}

/// The windows of one key, by start. They never overlap for sessions, and have one
/// length otherwise, so ends grow with starts.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct KeyWindows {
    wins: BTreeMap<EventTime, Win>,
    /// Sessions only: the largest end of a session already dropped. An event before it
    /// would have joined a dropped session (or is late on its own), so it is late. Kept
    /// until the watermark makes every such event late by its own session anyway.
    horizon: Option<EventTime>,
}

/// What is fixed by the config.
#[derive(Debug)]
struct Shape {
    kind: Kind,
    time: FieldPath,
    unit: TimeUnit,
    lateness: i64,
    field: Option<FieldPath>,
    aggs: Vec<Agg>,
    keep_values: bool,
}

impl Shape {
    /// Starts of the tumbling or sliding windows holding `t`, ascending.
    fn starts(&self, t: EventTime) -> Vec<EventTime> {
        match self.kind {
            Kind::Tumbling { size } => vec![t - t.rem_euclid(size)],
            Kind::Sliding { size, slide } => {
                let mut starts = Vec::new();
                let mut s = t - t.rem_euclid(slide);
                while s + size > t {
                    starts.push(s);
                    s -= slide;
                }
                starts.reverse();
                starts
            }
            Kind::Session { .. } => Vec::new(),
        }
    }

    /// The watermark at which a window ending at `end` is dropped.
    fn cleanup_time(&self, end: EventTime) -> EventTime {
        end.saturating_sub(1).saturating_add(self.lateness)
    }

    /// The watermark from which a session horizon is no longer needed: any event before
    /// it then has a session of its own beyond the allowed lateness.
    fn forget_time(&self, horizon: EventTime) -> EventTime {
        match self.kind {
            Kind::Session { gap } => self.cleanup_time(horizon).saturating_add(gap),
            _ => EventTime::MIN,
        }
    }

    /// Emits the window `[start, w.end)` of `key` and marks it emitted.
    fn emit(&self, key: &str, start: EventTime, w: &mut Win, ctx: &mut Context<'_, Value>) {
        let mut rec = Map::new();
        rec.insert("key".into(), Value::String(key.to_owned()));
        rec.insert("window_start".into(), Value::from(start));
        rec.insert("window_end".into(), Value::from(w.end));
        rec.insert("count".into(), Value::from(w.acc.count));
        if w.emitted {
            rec.insert("update".into(), Value::Bool(true));
        }
        if self.keep_values {
            w.acc.values.sort_unstable_by(Num::cmp_num);
        }
        let stats = &w.acc.stats;
        let num = |n: Option<Num>| n.map_or(Value::Null, Num::to_value);
        for agg in &self.aggs {
            match *agg {
                Agg::Count => {}
                Agg::Sum => {
                    rec.insert("sum".into(), stats.sum().to_value());
                }
                Agg::Min => {
                    rec.insert("min".into(), num(stats.min()));
                }
                Agg::Max => {
                    rec.insert("max".into(), num(stats.max()));
                }
                Agg::Mean => {
                    rec.insert("mean".into(), stats.mean());
                }
                Agg::Percentile(p) => {
                    rec.insert(format!("p{p}"), num(nearest_rank(&w.acc.values, p)));
                }
            }
        }
        ctx.emit_keyed(key.to_owned(), Value::Object(rec));
        w.emitted = true;
        w.pending = false;
    }

    /// Emits every pending window of `kw` whose end - 1 is at or before `upto`.
    fn emit_due(
        &self,
        key: &str,
        kw: &mut KeyWindows,
        upto: EventTime,
        ctx: &mut Context<'_, Value>,
    ) {
        for (&start, w) in kw.wins.iter_mut() {
            if w.end - 1 > upto {
                break;
            }
            if w.pending {
                self.emit(key, start, w, ctx);
            }
        }
    }
}

/// What one batch collects: the watermark it runs at, its counters, and the keys whose
/// complete windows it changed.
struct Pass {
    wm: EventTime,
    counts: Counts,
    dirty: BTreeSet<Key>,
}

/// Per-batch counters.
#[derive(Default)]
struct Counts {
    missing_time: u64,
    skipped: u64,
    late_dropped: u64,
    late_accepted: u64,
}

impl Counts {
    fn flush(self, ctx: &mut Context<'_, Value>) {
        for (name, n) in [
            ("missing_time", self.missing_time),
            ("skipped", self.skipped),
            ("late_dropped", self.late_dropped),
            ("late_accepted", self.late_accepted),
        ] {
            if n > 0 {
                ctx.count(name, n);
            }
        }
    }
}

/// `window`: event-time tumbling, sliding or session windows per key (see the module
/// docs for the exact semantics and output). Window state lives in [`KeyedState`], so it
/// is grouped by the ring partition of each key.
#[derive(Debug)]
pub struct WindowOp {
    shape: Shape,
    state: KeyedState<KeyWindows>,
}

fn positive(kind: &str, name: &str, v: Option<i64>) -> OpResult<i64> {
    match v {
        None => Err(OpError(format!("{kind} windows need {name}"))),
        Some(v) => check_duration(name, v, true),
    }
}

fn unused(kind: &str, name: &str, v: Option<i64>, hint: &str) -> OpResult {
    match v {
        None => Ok(()),
        Some(_) => Err(OpError(format!(
            "{name} is not used by {kind} windows ({hint})"
        ))),
    }
}

impl WindowOp {
    fn parse_kind(c: &WindowConfig) -> OpResult<Kind> {
        Ok(match c.kind {
            WindowKind::Tumbling => {
                let size = positive("tumbling", "size_ms", c.size_ms)?;
                unused("tumbling", "slide_ms", c.slide_ms, "use kind = \"sliding\"")?;
                unused("tumbling", "gap_ms", c.gap_ms, "use kind = \"session\"")?;
                Kind::Tumbling { size }
            }
            WindowKind::Sliding => {
                let size = positive("sliding", "size_ms", c.size_ms)?;
                let slide = positive("sliding", "slide_ms", c.slide_ms)?;
                unused("sliding", "gap_ms", c.gap_ms, "use kind = \"session\"")?;
                if slide > size {
                    return Err(OpError(format!(
                        "slide_ms ({slide}) must be at most size_ms ({size})"
                    )));
                }
                if (size + slide - 1) / slide > MAX_WINDOWS_PER_EVENT {
                    return Err(OpError(format!(
                        "size_ms / slide_ms must be at most {MAX_WINDOWS_PER_EVENT} (windows per event); got {size} / {slide}"
                    )));
                }
                Kind::Sliding { size, slide }
            }
            WindowKind::Session => {
                let gap = positive("session", "gap_ms", c.gap_ms)?;
                unused("session", "size_ms", c.size_ms, "sessions end after gap_ms")?;
                unused(
                    "session",
                    "slide_ms",
                    c.slide_ms,
                    "sessions end after gap_ms",
                )?;
                Kind::Session { gap }
            }
        })
    }

    fn parse_aggs(c: &WindowConfig) -> OpResult<Vec<Agg>> {
        let mut aggs = Vec::new();
        for name in &c.aggregates {
            let agg = Agg::parse(name).ok_or_else(|| {
                OpError(format!(
                    "unknown aggregate '{name}' (known: {KNOWN_AGGREGATES})"
                ))
            })?;
            if aggs.contains(&agg) {
                return Err(OpError(format!("aggregate '{name}' is listed twice")));
            }
            if agg != Agg::Count && c.field.is_none() {
                return Err(OpError(format!(
                    "aggregate '{name}' needs `field` (the numeric field to aggregate)"
                )));
            }
            aggs.push(agg);
        }
        Ok(aggs)
    }

    /// Adds one event to its tumbling or sliding windows.
    fn add_fixed(
        &mut self,
        key: &Key,
        t: EventTime,
        value: Option<Num>,
        pass: &mut Pass,
        ctx: &mut Context<'_, Value>,
    ) {
        let wm = pass.wm;
        let size = match self.shape.kind {
            Kind::Tumbling { size } | Kind::Sliding { size, .. } => size,
            Kind::Session { .. } => return,
        };
        let mut starts = self.shape.starts(t);
        let before = starts.len();
        starts.retain(|&s| self.shape.cleanup_time(s + size) > wm);
        pass.counts.late_dropped += (before - starts.len()) as u64;
        if starts.is_empty() {
            return;
        }
        let kw = self.state.entry(key);
        for s in starts {
            let end = s + size;
            let w = match kw.wins.entry(s) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    if end - 1 > wm {
                        ctx.set_timer(end - 1, key.clone());
                    }
                    if self.shape.lateness > 0 {
                        ctx.set_timer(self.shape.cleanup_time(end), key.clone());
                    }
                    v.insert(Win::new(end))
                }
            };
            w.acc.add(value, self.shape.keep_values);
            w.pending = true;
            if end - 1 <= wm {
                pass.counts.late_accepted += 1;
                pass.dirty.insert(key.clone());
            }
        }
    }

    /// Adds one event to the sessions of its key, merging the sessions it bridges.
    fn add_session(
        &mut self,
        key: &Key,
        t: EventTime,
        value: Option<Num>,
        pass: &mut Pass,
        ctx: &mut Context<'_, Value>,
    ) {
        let wm = pass.wm;
        let Kind::Session { gap } = self.shape.kind else {
            return;
        };
        let (mut start, mut end) = (t, t + gap);
        // Late when the session the event would open on its own is beyond the lateness,
        // or when it falls before the end of a dropped session of its key (it would have
        // joined that session). So no session ever grows over a dropped one.
        let late_alone = self.shape.cleanup_time(end) <= wm;
        let before_horizon = self
            .state
            .get(key)
            .and_then(|kw| kw.horizon)
            .is_some_and(|h| t < h);
        if late_alone || before_horizon {
            pass.counts.late_dropped += 1;
            return;
        }
        let mut overlapping = Vec::new();
        if let Some(kw) = self.state.get(key) {
            // Sessions are disjoint and sorted: those overlapping [t, t + gap) start
            // before t + gap and end after t, and are contiguous.
            for (&s, w) in kw.wins.range(..t + gap).rev() {
                if w.end <= t {
                    break;
                }
                overlapping.push(s);
                start = start.min(s);
                end = end.max(w.end);
            }
        }
        // The merged session ends no earlier than the event's own: not late either.
        let cleanup = self.shape.cleanup_time(end);
        let kw = self.state.entry(key);
        let mut merged = Win::new(end);
        for s in &overlapping {
            if let Some(w) = kw.wins.remove(s) {
                merged.emitted |= w.emitted;
                merged.acc.merge(w.acc);
            }
        }
        merged.acc.add(value, self.shape.keep_values);
        kw.wins.insert(start, merged);
        if end - 1 <= wm {
            pass.counts.late_accepted += 1;
            pass.dirty.insert(key.clone());
        } else {
            ctx.set_timer(end - 1, key.clone());
        }
        if self.shape.lateness > 0 {
            ctx.set_timer(cleanup, key.clone());
        }
    }
}

impl Operator for WindowOp {
    type In = Value;
    type Out = Value;
    type Config = WindowConfig;

    fn create(config: WindowConfig, init: &InitContext) -> OpResult<Self> {
        let kind = Self::parse_kind(&config)?;
        let lateness = check_duration("allowed_lateness_ms", config.allowed_lateness_ms, false)?;
        let time = FieldPath::parse("time_field", &config.time_field)?;
        let field = match &config.field {
            None => None,
            Some(f) => Some(FieldPath::parse("field", f)?),
        };
        let aggs = Self::parse_aggs(&config)?;
        let keep_values = aggs.iter().any(|a| matches!(a, Agg::Percentile(_)));
        Ok(WindowOp {
            shape: Shape {
                kind,
                time,
                unit: config.unit,
                lateness,
                field,
                aggs,
                keep_values,
            },
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut pass = Pass {
            wm: ctx.watermark(),
            counts: Counts::default(),
            dirty: BTreeSet::new(),
        };
        for item in batch {
            let Some(t) = event_time(&item.value, &self.shape.time, self.shape.unit) else {
                pass.counts.missing_time += 1;
                continue;
            };
            let value = match &self.shape.field {
                None => None,
                Some(path) => match path.get(&item.value).and_then(Num::from_value) {
                    Some(n) => Some(n),
                    None => {
                        pass.counts.skipped += 1;
                        continue;
                    }
                },
            };
            let key = item.key.unwrap_or_default();
            match self.shape.kind {
                Kind::Session { .. } => self.add_session(&key, t, value, &mut pass, ctx),
                _ => self.add_fixed(&key, t, value, &mut pass, ctx),
            }
        }
        // Late events within the allowed lateness: emit the complete windows they changed.
        for key in std::mem::take(&mut pass.dirty) {
            let kw = self.state.entry(&key);
            self.shape.emit_due(&key, kw, pass.wm, ctx);
        }
        pass.counts.flush(ctx);
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, Value>) -> OpResult {
        if self.state.get(&timer.key).is_none() {
            return Ok(());
        }
        let kw = self.state.entry(&timer.key);
        self.shape.emit_due(&timer.key, kw, timer.time, ctx);
        let mut dropped_end = None;
        while let Some(first) = kw.wins.first_entry() {
            if self.shape.cleanup_time(first.get().end) > timer.time {
                break;
            }
            dropped_end = Some(first.remove().end);
        }
        if let (Kind::Session { .. }, Some(end)) = (self.shape.kind, dropped_end) {
            let horizon = kw.horizon.map_or(end, |h| h.max(end));
            kw.horizon = Some(horizon);
            let forget = self.shape.forget_time(horizon);
            if forget > timer.time {
                ctx.set_timer(forget, timer.key.clone());
            }
        }
        let forgotten = kw
            .horizon
            .is_none_or(|h| self.shape.forget_time(h) <= timer.time);
        if kw.wins.is_empty() && forgotten {
            self.state.remove(&timer.key);
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        // Every timer fired at the final watermark; emit anything still pending anyway.
        let mut rest: Vec<(Key, KeyWindows)> = self.state.drain().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, mut kw) in rest {
            self.shape.emit_due(&key, &mut kw, EventTime::MAX, ctx);
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn ringflow_stream::PartitionedState> {
        Some(&mut self.state)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use crate::testkit::{
        assert_accepted, assert_refused, item, run_job, set_feed, Driver, Out, Step,
    };
    use ringflow_stream::data::Item;
    use ringflow_stream::spec::{EdgeKind, JobSpec, VertexSpec};

    const ALL: [&str; 9] = [
        "count", "sum", "min", "max", "mean", "p50", "p90", "p95", "p99",
    ];

    fn ev(key: &str, t: i64, v: i64) -> Item<Value> {
        item(Some(key), json!({"t": t, "v": v}))
    }

    fn window(config: Value) -> Driver {
        Driver::new("window", config)
    }

    /// The records emitted so far, as values.
    fn emitted(d: &mut Driver) -> Vec<Value> {
        d.take_values()
    }

    #[test]
    fn tumbling_windows_fire_when_the_watermark_reaches_their_end() {
        let mut d = window(json!({
            "kind": "tumbling", "size_ms": 10, "time_field": "t", "field": "v",
            "aggregates": ["count", "sum", "min", "max", "mean"]
        }));
        d.push(vec![
            ev("a", 1, 4),
            ev("a", 9, -2),
            ev("b", 5, 7),
            ev("a", 10, 1),
            ev("a", -3, 5),
        ]);
        // [-10, 0) (a negative time) is due first.
        d.watermark(8);
        assert_eq!(
            emitted(&mut d),
            vec![
                json!({"key": "a", "window_start": -10, "window_end": 0, "count": 1,
                        "sum": 5, "min": 5, "max": 5, "mean": 5.0})
            ]
        );
        d.watermark(9);
        let mut out = d.take();
        out.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(
            out,
            vec![
                item(
                    Some("a"),
                    json!({"key": "a", "window_start": 0, "window_end": 10, "count": 2,
                           "sum": 2, "min": -2, "max": 4, "mean": 1.0})
                ),
                item(
                    Some("b"),
                    json!({"key": "b", "window_start": 0, "window_end": 10, "count": 1,
                           "sum": 7, "min": 7, "max": 7, "mean": 7.0})
                ),
            ]
        );
        d.end();
        let out = emitted(&mut d);
        assert_eq!(
            out,
            vec![
                json!({"key": "a", "window_start": 10, "window_end": 20, "count": 1,
                        "sum": 1, "min": 1, "max": 1, "mean": 1.0})
            ]
        );
    }

    #[test]
    fn windows_restored_from_a_checkpoint_fire_once_with_every_event() {
        let config = json!({
            "kind": "tumbling", "size_ms": 10, "time_field": "t", "field": "v",
            "aggregates": ["count", "sum", "max", "p50"]
        });
        let first = vec![ev("a", 1, 4), ev("b", 5, 7), ev("a", 12, 1)];
        let second = vec![ev("a", 3, 2), ev("b", 14, 3), ev("a", 18, 9)];
        let mut whole = window(config.clone());
        whole.push(first.clone());
        whole.watermark(2);
        whole.push(second.clone());
        whole.end();
        let mut before = window(config.clone());
        before.push(first);
        before.watermark(2);
        // Killed between its windows' first events and their firing.
        let snap = before.checkpoint(1);
        assert!(emitted(&mut before).is_empty(), "nothing fired yet");
        let mut after = window(config);
        after.restore(snap);
        after.push(second);
        after.end();
        assert_eq!(emitted(&mut after), emitted(&mut whole));
    }

    #[test]
    fn negative_times_use_euclidean_alignment() {
        let mut d = window(json!({"kind": "tumbling", "size_ms": 10, "time_field": "t"}));
        d.push(vec![ev("a", -1, 0), ev("a", -10, 0), ev("a", -11, 0)]);
        d.end();
        let got: Vec<(i64, i64, u64)> = emitted(&mut d)
            .iter()
            .map(|v| {
                (
                    v["window_start"].as_i64().unwrap(),
                    v["window_end"].as_i64().unwrap(),
                    v["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, vec![(-20, -10, 1), (-10, 0, 2)]);
    }

    #[test]
    fn windows_fire_in_time_order_at_the_watermark() {
        let mut d = window(json!({"kind": "tumbling", "size_ms": 10, "time_field": "t"}));
        d.push(vec![
            ev("b", 25, 0),
            ev("a", 5, 0),
            ev("b", 3, 0),
            ev("a", 15, 0),
        ]);
        d.watermark(100);
        let got: Vec<(String, i64)> = emitted(&mut d)
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["window_start"].as_i64().unwrap(),
                )
            })
            .collect();
        let s = |k: &str, t| (k.to_owned(), t);
        assert_eq!(got, vec![s("a", 0), s("b", 0), s("a", 10), s("b", 20)]);
    }

    #[test]
    fn sliding_windows_hold_each_event_size_over_slide_times() {
        let mut d = window(json!({
            "kind": "sliding", "size_ms": 10, "slide_ms": 5, "time_field": "t", "field": "v",
            "aggregates": ["sum"]
        }));
        d.push(vec![ev("a", 7, 1), ev("a", -1, 10), ev("a", 12, 100)]);
        d.end();
        let got: Vec<(i64, i64, i64)> = emitted(&mut d)
            .iter()
            .map(|v| {
                (
                    v["window_start"].as_i64().unwrap(),
                    v["window_end"].as_i64().unwrap(),
                    v["sum"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (-10, 0, 10),
                (-5, 5, 10),
                (0, 10, 1),
                (5, 15, 101),
                (10, 20, 100)
            ]
        );
        // A slide that does not divide the size: 3 or 2 windows per event.
        let mut d =
            window(json!({"kind": "sliding", "size_ms": 10, "slide_ms": 4, "time_field": "t"}));
        d.push(vec![ev("a", 9, 0)]);
        d.end();
        assert_eq!(emitted(&mut d).len(), 3);
        let mut d =
            window(json!({"kind": "sliding", "size_ms": 10, "slide_ms": 4, "time_field": "t"}));
        d.push(vec![ev("a", 11, 0)]);
        d.end();
        let starts: Vec<i64> = emitted(&mut d)
            .iter()
            .map(|v| v["window_start"].as_i64().unwrap())
            .collect();
        assert_eq!(starts, vec![4, 8]);
    }

    #[test]
    fn late_events_update_within_lateness_and_are_dropped_beyond() {
        let mut d = window(json!({
            "kind": "tumbling", "size_ms": 10, "time_field": "t", "allowed_lateness_ms": 5,
            "field": "v", "aggregates": ["count", "sum"]
        }));
        d.push(vec![ev("a", 1, 1), ev("a", 2, 2)]);
        d.watermark(9);
        assert_eq!(
            emitted(&mut d),
            vec![json!({"key": "a", "window_start": 0, "window_end": 10, "count": 2, "sum": 3})]
        );
        // Within lateness (9 < 9 + 5): the window is updated and re-emitted at once.
        d.push(vec![ev("a", 3, 10), ev("a", 4, 20)]);
        assert_eq!(
            emitted(&mut d),
            vec![
                json!({"key": "a", "window_start": 0, "window_end": 10, "count": 4,
                        "sum": 33, "update": true})
            ]
        );
        assert_eq!(d.counter("late_accepted"), 2);
        d.watermark(13);
        d.push(vec![ev("a", 0, 100)]);
        assert_eq!(emitted(&mut d).len(), 1);
        // At 14 = end - 1 + lateness the window is gone: late events are dropped.
        d.watermark(14);
        d.push(vec![ev("a", 5, 1000), ev("b", 9, 1000), ev("a", 12, 1)]);
        assert!(emitted(&mut d).is_empty());
        assert_eq!(d.counter("late_dropped"), 2);
        d.end();
        assert_eq!(
            emitted(&mut d),
            vec![json!({"key": "a", "window_start": 10, "window_end": 20, "count": 1, "sum": 1})]
        );
        assert_eq!(d.counter("late_dropped"), 2);
    }

    #[test]
    fn without_lateness_an_event_for_a_fired_window_is_dropped() {
        let mut d = window(json!({"kind": "tumbling", "size_ms": 10, "time_field": "t"}));
        d.push(vec![ev("a", 9, 0)]);
        d.watermark(9);
        assert_eq!(emitted(&mut d).len(), 1);
        d.push(vec![ev("a", 9, 0), ev("a", 10, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        d.end();
        let out = emitted(&mut d);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["window_start"], json!(10));
    }

    #[test]
    fn a_first_late_event_within_lateness_fires_its_window_at_once() {
        let mut d = window(json!({
            "kind": "tumbling", "size_ms": 10, "time_field": "t", "allowed_lateness_ms": 100
        }));
        d.watermark(50);
        d.push(vec![ev("a", 12, 0)]);
        // Never emitted before: no "update".
        assert_eq!(
            emitted(&mut d),
            vec![json!({"key": "a", "window_start": 10, "window_end": 20, "count": 1})]
        );
        d.push(vec![ev("a", 13, 0)]);
        assert_eq!(emitted(&mut d)[0]["update"], json!(true));
        // Cleaned at 119: nothing more at the end.
        d.watermark(119);
        d.push(vec![ev("a", 14, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        d.end();
        assert!(emitted(&mut d).is_empty());
    }

    #[test]
    fn a_sliding_event_can_be_late_for_some_windows_only() {
        let mut d =
            window(json!({"kind": "sliding", "size_ms": 10, "slide_ms": 5, "time_field": "t"}));
        d.watermark(9);
        d.push(vec![ev("a", 7, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        d.end();
        let starts: Vec<i64> = emitted(&mut d)
            .iter()
            .map(|v| v["window_start"].as_i64().unwrap())
            .collect();
        assert_eq!(starts, vec![5]);
    }

    fn session_spans(out: &[Value]) -> Vec<(i64, i64, u64, bool)> {
        out.iter()
            .map(|v| {
                (
                    v["window_start"].as_i64().unwrap(),
                    v["window_end"].as_i64().unwrap(),
                    v["count"].as_u64().unwrap(),
                    v.get("update").is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn sessions_merge_events_closer_than_the_gap() {
        let mut d = window(json!({
            "kind": "session", "gap_ms": 10, "time_field": "t", "field": "v",
            "aggregates": ["sum"]
        }));
        // 0 and 18 are two sessions; 9 bridges them; 28 is exactly gap away from 18 and
        // so a new session; 40 joins nothing.
        d.push(vec![
            ev("a", 0, 1),
            ev("a", 18, 2),
            ev("b", 5, 7),
            ev("a", 28, 4),
        ]);
        d.push(vec![ev("a", 9, 8), ev("a", 40, 16)]);
        d.end();
        let out = emitted(&mut d);
        let a: Vec<_> = out
            .iter()
            .filter(|v| v["key"] == json!("a"))
            .cloned()
            .collect();
        assert_eq!(
            session_spans(&a),
            vec![(0, 28, 3, false), (28, 38, 1, false), (40, 50, 1, false)]
        );
        assert_eq!(a[0]["sum"], json!(11));
        let b: Vec<_> = out
            .iter()
            .filter(|v| v["key"] == json!("b"))
            .cloned()
            .collect();
        assert_eq!(session_spans(&b), vec![(5, 15, 1, false)]);
    }

    #[test]
    fn a_late_bridge_merges_emitted_sessions_into_an_update() {
        let mut d = window(json!({
            "kind": "session", "gap_ms": 10, "time_field": "t", "allowed_lateness_ms": 50
        }));
        d.push(vec![ev("a", 0, 0), ev("a", 18, 0)]);
        d.watermark(30);
        assert_eq!(
            session_spans(&emitted(&mut d)),
            vec![(0, 10, 1, false), (18, 28, 1, false)]
        );
        d.push(vec![ev("a", 9, 0)]);
        assert_eq!(session_spans(&emitted(&mut d)), vec![(0, 28, 3, true)]);
        // An event that extends a session past the watermark: re-emitted when due.
        d.push(vec![ev("a", 35, 0)]);
        assert!(emitted(&mut d).is_empty());
        d.push(vec![ev("a", 27, 0)]);
        assert!(emitted(&mut d).is_empty());
        d.watermark(44);
        assert_eq!(session_spans(&emitted(&mut d)), vec![(0, 45, 5, true)]);
        // Beyond lateness: 44 + 50 = 94. The session is dropped; an event inside it is
        // late even though a session of its own, [40, 50), would still be kept.
        d.watermark(94);
        d.push(vec![ev("a", 40, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        // After the dropped session's end, events start new sessions...
        d.push(vec![ev("a", 46, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        // ...and before it they stay late until their own sessions would be.
        d.watermark(200);
        d.push(vec![ev("a", 44, 0)]);
        assert_eq!(d.counter("late_dropped"), 2);
        d.end();
        assert_eq!(session_spans(&emitted(&mut d)), vec![(46, 56, 1, false)]);
    }

    #[test]
    fn a_session_event_is_late_by_its_own_session() {
        let mut d = window(json!({"kind": "session", "gap_ms": 10, "time_field": "t"}));
        d.push(vec![ev("a", 0, 0), ev("a", 8, 0), ev("a", 16, 0)]);
        d.watermark(20);
        // Alone, 4 would be a complete session [4, 14): late, even inside the open one.
        d.push(vec![ev("a", 4, 0), ev("b", 4, 0)]);
        assert_eq!(d.counter("late_dropped"), 2);
        // 12 opens [12, 22), not complete: it joins.
        d.push(vec![ev("a", 12, 0)]);
        assert_eq!(d.counter("late_dropped"), 2);
        d.end();
        assert_eq!(session_spans(&emitted(&mut d)), vec![(0, 26, 4, false)]);
    }

    #[test]
    fn no_session_grows_over_a_dropped_one() {
        // The case found by `late_sessions_stay_consistent`: [14, 29) is emitted and
        // dropped; later 37 opens a session and 28 (late on its own) must not extend it
        // back over [14, 29).
        let mut d = window(json!({
            "kind": "session", "gap_ms": 15, "time_field": "t", "allowed_lateness_ms": 9
        }));
        d.push(vec![ev("a", 14, 0)]);
        d.watermark(52);
        assert_eq!(session_spans(&emitted(&mut d)), vec![(14, 29, 1, false)]);
        d.push(vec![ev("a", 37, 0), ev("a", 49, 0), ev("a", 28, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        assert_eq!(session_spans(&emitted(&mut d)), vec![]);
        // Before the horizon (29) but not late alone: still late.
        let mut d = window(json!({
            "kind": "session", "gap_ms": 15, "time_field": "t", "allowed_lateness_ms": 9
        }));
        d.push(vec![ev("a", 14, 0)]);
        d.watermark(37);
        d.push(vec![ev("a", 25, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        d.push(vec![ev("a", 29, 0)]);
        assert_eq!(d.counter("late_dropped"), 1);
        d.end();
        assert_eq!(
            session_spans(&emitted(&mut d)),
            vec![(14, 29, 1, false), (29, 44, 1, false)]
        );
    }

    #[test]
    fn records_without_time_or_value_are_counted_and_unkeyed_ones_share_a_key() {
        let mut d = window(json!({
            "kind": "tumbling", "size_ms": 1000, "time_field": "ts", "unit": "s",
            "field": "m.v", "aggregates": ["max"]
        }));
        d.push(vec![
            item(None, json!({"ts": 1.5, "m": {"v": 3}})),
            item(None, json!({"ts": 1.9, "m": {"v": 4.5}})),
            item(None, json!({"ts": "1", "m": {"v": 3}})),
            item(None, json!({"m": {"v": 3}})),
            item(None, json!({"ts": 1, "m": {"v": "3"}})),
            item(None, json!({"ts": 1})),
            item(None, json!("junk")),
            item(None, json!({"ts": 1e300, "m": {"v": 1}})),
        ]);
        assert_eq!(d.counter("missing_time"), 4);
        assert_eq!(d.counter("skipped"), 2);
        d.end();
        assert_eq!(
            d.take(),
            vec![item(
                Some(""),
                json!({"key": "", "window_start": 1000, "window_end": 2000, "count": 2, "max": 4.5})
            )]
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut d = window(json!({
            "kind": "sliding", "size_ms": 1i64 << 50, "slide_ms": 1i64 << 49,
            "time_field": "t", "allowed_lateness_ms": 1i64 << 50
        }));
        let edge = 1i64 << 62;
        d.push(vec![
            ev("a", edge, 0),
            ev("a", -edge, 0),
            ev("a", edge + 1, 0),
        ]);
        d.watermark(i64::MAX - 1);
        d.push(vec![ev("a", 0, 0)]);
        d.end();
        assert_eq!(emitted(&mut d).len(), 4);
        assert_eq!(d.counter("missing_time"), 1);
        assert_eq!(d.counter("late_dropped"), 2);
        let mut d = window(json!({
            "kind": "session", "gap_ms": 1i64 << 50, "time_field": "t",
            "allowed_lateness_ms": 1i64 << 50
        }));
        d.push(vec![ev("a", edge, 0), ev("a", -edge, 0)]);
        d.end();
        assert_eq!(emitted(&mut d).len(), 2);
    }

    #[test]
    fn window_configs_are_checked() {
        let base = |extra: Value| {
            let mut c = json!({"time_field": "t"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let bad = |extra: Value, needle: &str| assert_refused("window", base(extra), needle);
        bad(
            json!({"kind": "tumbling", "size_ms": 0}),
            "size_ms must be positive",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": -5}),
            "size_ms must be positive",
        );
        bad(json!({"kind": "tumbling"}), "tumbling windows need size_ms");
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "slide_ms": 5}),
            "slide_ms is not used by tumbling windows",
        );
        bad(
            json!({"kind": "sliding", "size_ms": 10}),
            "sliding windows need slide_ms",
        );
        bad(
            json!({"kind": "sliding", "size_ms": 10, "slide_ms": 0}),
            "slide_ms must be positive",
        );
        bad(
            json!({"kind": "sliding", "size_ms": 10, "slide_ms": 20}),
            "slide_ms (20) must be at most size_ms (10)",
        );
        bad(
            json!({"kind": "sliding", "size_ms": 100000, "slide_ms": 1}),
            "size_ms / slide_ms must be at most 10000",
        );
        bad(json!({"kind": "session"}), "session windows need gap_ms");
        bad(
            json!({"kind": "session", "gap_ms": -1}),
            "gap_ms must be positive",
        );
        bad(
            json!({"kind": "session", "gap_ms": 5, "size_ms": 10}),
            "size_ms is not used by session windows",
        );
        bad(
            json!({"kind": "hopping", "size_ms": 10}),
            "unknown variant `hopping`, expected one of `tumbling`, `sliding`, `session`",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 1i64 << 51}),
            "size_ms must be at most",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "allowed_lateness_ms": -1}),
            "allowed_lateness_ms must not be negative",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "field": "v", "aggregates": ["median"]}),
            "unknown aggregate 'median' (known: count, sum, min, max, mean, p1..p100",
        );
        for p in ["p0", "p101", "p050", "p", "p+5", "P50"] {
            bad(
                json!({"kind": "tumbling", "size_ms": 10, "field": "v", "aggregates": [p]}),
                &format!("unknown aggregate '{p}'"),
            );
        }
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "aggregates": ["count", "sum"]}),
            "aggregate 'sum' needs `field`",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "field": "v", "aggregates": ["p99", "p99"]}),
            "aggregate 'p99' is listed twice",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "size": 10}),
            "unknown field `size`",
        );
        bad(
            json!({"kind": "tumbling", "size_ms": 10, "time_field": ""}),
            "time_field must not be empty",
        );
        assert_refused(
            "window",
            json!({"kind": "tumbling", "size_ms": 10}),
            "missing field `time_field`",
        );
        assert_accepted("window", base(json!({"kind": "tumbling", "size_ms": 10})));
        assert_accepted(
            "window",
            base(
                json!({"kind": "sliding", "size_ms": 10, "slide_ms": 10, "field": "v",
                        "aggregates": ALL, "allowed_lateness_ms": 0, "unit": "s"}),
            ),
        );
        assert_accepted(
            "window",
            base(json!({"kind": "session", "gap_ms": 1, "aggregates": []})),
        );
    }

    // ---- references -----------------------------------------------------------------

    #[derive(Clone, Copy, Debug)]
    enum RefKind {
        Sliding { size: i64, slide: i64 },
        Session { gap: i64 },
    }

    fn config_of(kind: RefKind, lateness: i64) -> Value {
        let mut c = json!({"time_field": "t", "field": "v", "aggregates": ALL,
                           "allowed_lateness_ms": lateness});
        match kind {
            RefKind::Sliding { size, slide } if size == slide => {
                c["kind"] = json!("tumbling");
                c["size_ms"] = json!(size);
            }
            RefKind::Sliding { size, slide } => {
                c["kind"] = json!("sliding");
                c["size_ms"] = json!(size);
                c["slide_ms"] = json!(slide);
            }
            RefKind::Session { gap } => {
                c["kind"] = json!("session");
                c["gap_ms"] = json!(gap);
            }
        }
        c
    }

    /// The windows (start, end) of a fixed-shape kind holding `t`, by brute force.
    fn ref_windows(size: i64, slide: i64, t: i64) -> Vec<(i64, i64)> {
        let lo = (t - size).div_euclid(slide) - 1;
        let hi = t.div_euclid(slide) + 1;
        (lo..=hi)
            .map(|k| (k * slide, k * slide + size))
            .filter(|&(s, e)| s <= t && t < e)
            .collect()
    }

    fn ref_record(key: &str, s: i64, e: i64, values: &[i64]) -> Value {
        let mut sorted = values.to_vec();
        sorted.sort();
        let n = sorted.len();
        let sum: i64 = sorted.iter().sum();
        let pct = |p: usize| sorted[((p * n).div_ceil(100)).max(1) - 1];
        json!({
            "key": key, "window_start": s, "window_end": e, "count": n,
            "sum": sum, "min": sorted[0], "max": sorted[n - 1],
            "mean": sum as f64 / n as f64,
            "p50": pct(50), "p90": pct(90), "p95": pct(95), "p99": pct(99),
        })
    }

    /// Every window of every key of `events` (key, time, value), sorted by key and start.
    fn reference(kind: RefKind, events: &[(String, i64, i64)]) -> Vec<Value> {
        let mut wins: BTreeMap<(String, i64, i64), Vec<i64>> = BTreeMap::new();
        match kind {
            RefKind::Sliding { size, slide } => {
                for (k, t, v) in events {
                    for (s, e) in ref_windows(size, slide, *t) {
                        wins.entry((k.clone(), s, e)).or_default().push(*v);
                    }
                }
            }
            RefKind::Session { gap } => {
                let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
                for (k, t, v) in events {
                    by_key.entry(k).or_default().push((*t, *v));
                }
                for (k, mut evs) in by_key {
                    evs.sort();
                    let mut cur: Vec<i64> = Vec::new();
                    let (mut start, mut last) = (evs[0].0, evs[0].0);
                    for (t, v) in evs {
                        if t - last >= gap {
                            wins.insert(
                                (k.to_owned(), start, last + gap),
                                std::mem::take(&mut cur),
                            );
                            start = t;
                        }
                        last = t;
                        cur.push(v);
                    }
                    wins.insert((k.to_owned(), start, last + gap), cur);
                }
            }
        }
        wins.iter()
            .map(|((k, s, e), vs)| ref_record(k, *s, *e, vs))
            .collect()
    }

    fn sort_windows(mut v: Vec<Value>) -> Vec<Value> {
        v.sort_by_key(|r| {
            (
                r["key"].as_str().unwrap_or("").to_owned(),
                r["window_start"].as_i64(),
            )
        });
        v
    }

    fn kind_strategy() -> impl Strategy<Value = RefKind> {
        prop_oneof![
            (1i64..60).prop_map(|size| RefKind::Sliding { size, slide: size }),
            (1i64..60, 1i64..60).prop_map(|(a, b)| RefKind::Sliding {
                size: a.max(b),
                slide: a.min(b)
            }),
            (1i64..40).prop_map(|gap| RefKind::Session { gap }),
        ]
    }

    /// Events (key, time, value) with an arrival delay each.
    fn events_strategy() -> impl Strategy<Value = Vec<(String, i64, i64, i64)>> {
        proptest::collection::vec((0u8..3, -200i64..200, -50i64..50, 0i64..=1000), 1..80).prop_map(
            |v| {
                v.into_iter()
                    .map(|(k, t, x, d)| (format!("k{k}"), t, x, d))
                    .collect()
            },
        )
    }

    /// Feeds `batches` through `watermark` then `window`, like a pipeline on one worker.
    fn through_watermark_and_window(
        window_config: Value,
        max_delay: i64,
        batches: &[Vec<Item<Value>>],
    ) -> (Vec<Value>, Driver) {
        let mut wm = Driver::new(
            "watermark",
            json!({"time_field": "t", "max_delay_ms": max_delay}),
        );
        let mut win = Driver::new("window", window_config);
        for b in batches {
            wm.push(b.clone());
            pipe(&mut wm, &mut win);
        }
        wm.end();
        pipe(&mut wm, &mut win);
        (win.take_values(), win)
    }

    fn pipe(from: &mut Driver, to: &mut Driver) {
        let mut recs = Vec::new();
        for o in std::mem::take(&mut from.out) {
            match o {
                Out::Rec(i) => recs.push(i),
                other => {
                    if !recs.is_empty() {
                        to.push(std::mem::take(&mut recs));
                    }
                    match other {
                        Out::Wm(t) => to.watermark(t),
                        Out::End => to.end(),
                        _ => {}
                    }
                }
            }
        }
        if !recs.is_empty() {
            to.push(recs);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Out-of-order events, each at most `max_delay` behind the latest event seen:
        /// none is late, and every window equals the reference computed directly.
        #[test]
        fn shuffled_events_within_the_delay_give_the_reference_windows(
            kind in kind_strategy(),
            events in events_strategy(),
            max_delay in 0i64..60,
            lateness in 0i64..30,
            batch in 1usize..6,
        ) {
            // Arrival order: by time plus a delay of at most max_delay.
            let mut arrivals: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, (k, t, v, d))| (t + d % (max_delay + 1), i, k.clone(), *t, *v))
                .collect();
            arrivals.sort();
            let items: Vec<Item<Value>> =
                arrivals.iter().map(|(_, _, k, t, v)| ev(k, *t, *v)).collect();
            let batches: Vec<_> = items.chunks(batch).map(<[_]>::to_vec).collect();
            let (out, win) =
                through_watermark_and_window(config_of(kind, lateness), max_delay, &batches);
            prop_assert_eq!(win.counter("late_dropped"), 0);
            prop_assert!(out.iter().all(|r| r.get("update").is_none()));
            let plain: Vec<_> = events.iter().map(|(k, t, v, _)| (k.clone(), *t, *v)).collect();
            prop_assert_eq!(sort_windows(out), reference(kind, &plain));
        }

        /// Events delayed by more than the watermark allows: those whose window is beyond
        /// the allowed lateness are counted and excluded, the others update their windows;
        /// the last emission of each window equals the reference over accepted events.
        #[test]
        fn late_events_are_dropped_or_update_exactly_as_the_lateness_says(
            size_slide in (1i64..40, 1i64..40),
            events in events_strategy(),
            max_delay in 0i64..20,
            lateness in 0i64..40,
        ) {
            let (size, slide) = (size_slide.0.max(size_slide.1), size_slide.0.min(size_slide.1));
            let kind = RefKind::Sliding { size, slide };
            // Arrival order: time plus delays up to 1000, far beyond max_delay.
            let mut arrivals: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, (k, t, v, d))| (t + d, i, k.clone(), *t, *v))
                .collect();
            arrivals.sort();
            // One event per batch: each sees the watermark of the events before it.
            let mut accepted: Vec<(String, i64, i64)> = Vec::new();
            let mut dropped = 0u64;
            let mut max_seen: Option<i64> = None;
            for (_, _, k, t, v) in &arrivals {
                let wm = max_seen.map_or(i64::MIN, |m| m - max_delay - 1);
                for (s, e) in ref_windows(size, slide, *t) {
                    if e - 1 + lateness <= wm {
                        dropped += 1;
                    } else {
                        // Accepted into this one window: keep it as its own event.
                        accepted.push((format!("{k}|{s}"), *t, *v));
                    }
                }
                max_seen = Some(max_seen.map_or(*t, |m| m.max(*t)));
            }
            let batches: Vec<_> = arrivals.iter().map(|(_, _, k, t, v)| vec![ev(k, *t, *v)]).collect();
            let (out, win) =
                through_watermark_and_window(config_of(kind, lateness), max_delay, &batches);
            prop_assert_eq!(win.counter("late_dropped"), dropped);
            // Updates only for windows emitted before.
            let mut seen = BTreeMap::new();
            for r in &out {
                let id = (r["key"].as_str().unwrap().to_owned(), r["window_start"].as_i64().unwrap());
                let was = seen.insert(id, r.clone()).is_some();
                prop_assert_eq!(r.get("update").is_some(), was, "{}", r);
            }
            let last: Vec<Value> = seen
                .into_values()
                .map(|mut r| {
                    r.as_object_mut().unwrap().remove("update");
                    r
                })
                .collect();
            // Reference: each accepted (event, window) pair in that window only.
            let mut want: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
            for (kw, t, v) in &accepted {
                let (k, s) = kw.split_once('|').unwrap();
                let s: i64 = s.parse().unwrap();
                prop_assert!(ref_windows(size, slide, *t).contains(&(s, s + size)));
                want.entry((k.to_owned(), s)).or_default().push(*v);
            }
            let want: Vec<Value> = want
                .iter()
                .map(|((k, s), vs)| ref_record(k, *s, *s + size, vs))
                .collect();
            prop_assert_eq!(sort_windows(last), want);
        }

        /// Sessions with late events: every update supersedes sessions emitted before,
        /// a first emission overlaps none, the final sessions are disjoint and hold every
        /// event that was not counted as late.
        #[test]
        fn late_sessions_stay_consistent(
            gap in 1i64..30,
            events in events_strategy(),
            max_delay in 0i64..20,
            lateness in 0i64..40,
            batch in 1usize..4,
        ) {
            let mut arrivals: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, (k, t, v, d))| (t + d / 4, i, k.clone(), *t, *v))
                .collect();
            arrivals.sort();
            let items: Vec<_> = arrivals.iter().map(|(_, _, k, t, v)| ev(k, *t, *v)).collect();
            let batches: Vec<_> = items.chunks(batch).map(<[_]>::to_vec).collect();
            let (out, win) = through_watermark_and_window(
                config_of(RefKind::Session { gap }, lateness),
                max_delay,
                &batches,
            );
            let mut current: BTreeMap<String, Vec<(i64, i64, u64, i64)>> = BTreeMap::new();
            for r in &out {
                let k = r["key"].as_str().unwrap().to_owned();
                let (s, e) = (r["window_start"].as_i64().unwrap(), r["window_end"].as_i64().unwrap());
                let cur = current.entry(k).or_default();
                let before = cur.len();
                cur.retain(|&(s2, e2, _, _)| e2 <= s || e <= s2);
                let superseded = before - cur.len();
                if r.get("update").is_some() {
                    prop_assert!(superseded >= 1, "update without an earlier session: {}", r);
                } else {
                    prop_assert_eq!(superseded, 0, "overlaps an emitted session: {}", r);
                }
                cur.push((s, e, r["count"].as_u64().unwrap(), r["sum"].as_i64().unwrap()));
            }
            let mut total = 0;
            for cur in current.values_mut() {
                cur.sort();
                for pair in cur.windows(2) {
                    prop_assert!(pair[0].1 <= pair[1].0, "sessions overlap: {:?}", pair);
                }
                total += cur.iter().map(|c| c.2).sum::<u64>();
            }
            prop_assert_eq!(total + win.counter("late_dropped"), events.len() as u64);
            if max_delay >= 1000 / 4 {
                prop_assert_eq!(win.counter("late_dropped"), 0);
            }
        }

        /// Percentiles equal nearest-rank on the sorted values, floats and ties included.
        #[test]
        fn percentiles_match_a_sorted_reference(
            values in proptest::collection::vec(prop_oneof![
                (-20i64..20).prop_map(|i| json!(i)),
                (-20i64..20).prop_map(|i| json!(i as f64 / 4.0)),
            ], 1..200),
        ) {
            let aggs: Vec<String> = (1..=100).map(|p| format!("p{p}")).collect();
            let mut d = window(json!({
                "kind": "tumbling", "size_ms": 1000, "time_field": "t", "field": "v",
                "aggregates": aggs
            }));
            d.push(values.iter().map(|v| item(Some("k"), json!({"t": 1, "v": v}))).collect());
            d.end();
            let out = d.take_values();
            prop_assert_eq!(out.len(), 1);
            let mut sorted: Vec<f64> = values.iter().map(|v| v.as_f64().unwrap()).collect();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            for p in 1..=100usize {
                let want = sorted[(p * n).div_ceil(100) - 1];
                let got = out[0][format!("p{p}")].as_f64().unwrap();
                prop_assert_eq!(got, want, "p{}", p);
            }
        }
    }

    /// Source (3 instances) -> key_by -> watermark -> window (hash) -> collect.
    fn windowed_job(name: &str, config: Value, max_delay: i64) -> JobSpec {
        JobSpec::new(name)
            .vertex(VertexSpec::new("src", "test.feed").config(json!({"name": name})))
            .vertex(
                VertexSpec::new("keyed", "key_by")
                    .config(json!({"field": "k"}))
                    .input("src", EdgeKind::Forward),
            )
            .vertex(
                VertexSpec::new("wm", "watermark")
                    .config(json!({"time_field": "t", "max_delay_ms": max_delay}))
                    .input("keyed", EdgeKind::Forward),
            )
            .vertex(
                VertexSpec::new("win", "window")
                    .config(config)
                    .input("wm", EdgeKind::Hash),
            )
            .vertex(
                VertexSpec::new("out", "test.collect")
                    .config(json!({"name": name}))
                    .input("win", EdgeKind::Forward),
            )
    }

    #[test]
    fn windows_on_three_workers_equal_the_reference() {
        for (i, kind) in [
            RefKind::Sliding {
                size: 50,
                slide: 50,
            },
            RefKind::Sliding {
                size: 60,
                slide: 20,
            },
            RefKind::Session { gap: 7 },
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("win-three-{i}");
            let max_delay = 40;
            let mut feeds = vec![Vec::new(); 3];
            let mut events = Vec::new();
            let mut x: u64 = 0x2545_f491_4f6c_dd1d + i as u64;
            for n in 0..1500i64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("k{}", x % 11);
                let t = n / 2;
                let v = (x % 1000) as i64 - 500;
                let delay = ((x >> 20) % (max_delay as u64 + 1)) as i64;
                events.push((key, t, v, delay));
            }
            let mut arrivals: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(j, (k, t, v, d))| (t + d, j, k.clone(), *t, *v))
                .collect();
            arrivals.sort();
            for (j, (_, _, k, t, v)) in arrivals.iter().enumerate() {
                feeds[j % 3].push(Step::Rec(None, json!({"k": k, "t": t, "v": v})));
            }
            set_feed(&name, feeds);
            let res = run_job(windowed_job(&name, config_of(kind, 0), max_delay), 3);
            assert_eq!(res.counter("win", "late_dropped"), 0);
            for r in &res.records {
                assert_eq!(r.key.as_deref(), r.value["key"].as_str());
            }
            let got = sort_windows(res.records.into_iter().map(|r| r.value).collect());
            let plain: Vec<_> = events
                .iter()
                .map(|(k, t, v, _)| (k.clone(), *t, *v))
                .collect();
            assert_eq!(got, reference(kind, &plain), "{kind:?}");
        }
    }

    #[test]
    fn late_events_on_three_workers_are_counted_and_updates_emitted() {
        let name = "win-late-three";
        let rec = |k: &str, t: i64| Step::Rec(None, json!({"k": k, "t": t, "v": 1}));
        // One source instance feeds every window instance through a single watermark
        // instance, so the order of records and watermarks is fixed.
        set_feed(
            name,
            vec![vec![
                rec("a", 1),
                rec("b", 2),
                rec("c", 3),
                rec("a", 105), // watermark 105 - 0 - 1 = 104: [0, 100) fires
                rec("a", 50),  // within lateness (99 + 10 > 104): update
                rec("b", 120), // watermark 119 >= 99 + 10: [0, 100) is gone
                rec("b", 60),  // late: dropped
                rec("c", 99),  // late: dropped
            ]],
        );
        let spec = JobSpec::new(name)
            .vertex(
                VertexSpec::new("src", "test.feed")
                    .config(json!({"name": name}))
                    .single(),
            )
            .vertex(
                VertexSpec::new("keyed", "key_by")
                    .config(json!({"field": "k"}))
                    .input("src", EdgeKind::Forward)
                    .single(),
            )
            .vertex(
                VertexSpec::new("wm", "watermark")
                    .config(json!({"time_field": "t", "max_delay_ms": 0}))
                    .input("keyed", EdgeKind::Forward)
                    .single(),
            )
            .vertex(
                VertexSpec::new("win", "window")
                    .config(
                        json!({"kind": "tumbling", "size_ms": 100, "time_field": "t",
                                   "allowed_lateness_ms": 10}),
                    )
                    .input("wm", EdgeKind::Hash),
            )
            .vertex(
                VertexSpec::new("out", "test.collect")
                    .config(json!({"name": name}))
                    .input("win", EdgeKind::Forward),
            );
        let mut settings = spec.settings.clone();
        settings.batch_size = 1;
        settings.edge_credits = 16;
        let spec = spec.settings(settings);
        let res = run_job(spec, 3);
        assert_eq!(res.counter("win", "late_dropped"), 2);
        assert_eq!(res.counter("win", "late_accepted"), 1);
        let got = sort_windows(res.records.into_iter().map(|r| r.value).collect());
        let w = |k: &str, s: i64, n: u64| json!({"key": k, "window_start": s, "window_end": s + 100, "count": n});
        let mut a_update = w("a", 0, 2);
        a_update["update"] = json!(true);
        let mut want = vec![
            w("a", 0, 1),
            a_update,
            w("a", 100, 1),
            w("b", 0, 1),
            w("b", 100, 1),
            w("c", 0, 1),
        ];
        want = sort_windows(want);
        assert_eq!(got, want);
    }
}
