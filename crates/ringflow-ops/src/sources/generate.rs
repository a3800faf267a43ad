//! `source.generate`: deterministic synthetic records (sequences, words, host metrics)
//! at a controlled rate, with event times and watermarks: benchmarks and tests.

use ringflow_ring::rng::{mix, unit_f64, SplitMix64};
use serde::Deserialize;
use serde_json::json;

use ringflow_stream::data::EventTime;
use ringflow_stream::operator::{InitContext, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};
use ringflow_stream::Value;

/// What `source.generate` produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerateKind {
    /// `{"n": i, "instance": k, "ts": t}` with `i` counting from 0 per instance.
    #[default]
    Sequence,
    /// A string of 1 to 8 words drawn from a fixed vocabulary of 200 words.
    Words,
    /// `{"host": "host-<j>", "cpu": <0..100>, "ts": t}`, hosts round-robin, each with
    /// its own base load, and an occasional spike above 90.
    Metrics,
}

/// Configuration of `source.generate`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Most records per second, per instance (fractions allowed); unlimited when absent.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Records per instance before the source ends; unbounded when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// What to generate.
    #[serde(default)]
    pub kind: GenerateKind,
    /// Seed of the generator; with the instance index it fixes every record.
    #[serde(default)]
    pub seed: u64,
    /// Number of hosts of `metrics` (1..=1000000).
    #[serde(default = "default_hosts")]
    pub hosts: u64,
    /// Event time of the first record (ms); default: processing time at the first poll.
    #[serde(default)]
    pub start_time_ms: Option<EventTime>,
    /// Event-time step between consecutive records of one instance (ms, >= 0).
    #[serde(default = "default_interval")]
    pub interval_ms: i64,
}

fn default_hosts() -> u64 {
    8
}

fn default_interval() -> i64 {
    1
}

/// Tokens a rate-limited generator may save up: 100 ms worth (at least one record).
const BURST_SECONDS: f64 = 0.1;

/// Generates records; see [`GenerateKind`].
///
/// Rate control is a token bucket fed by the processing time passed to `poll` (never
/// the clock): it starts with one token and holds at most 100 ms worth, so over any
/// stretch of `t` ms at most `rate * t / 1000 + 1` records come out, and a stall does
/// not turn into a burst. Event time: record `i` has `ts = start + i * interval_ms`;
/// after each poll that emitted, the source declares the watermark `ts` of its last
/// record (`ts - 1` when `interval_ms = 0`, as the next record shares its time).
/// Records of one seed and instance are always the same; instances differ.
pub struct GenerateSource {
    cfg: GenerateConfig,
    instance: usize,
    rng: SplitMix64,
    next: u64,
    start: Option<EventTime>,
    bucket: Option<(f64, u64)>,
}

impl Source for GenerateSource {
    type Out = Value;
    type Config = GenerateConfig;

    fn create(cfg: GenerateConfig, init: &InitContext) -> OpResult<Self> {
        if let Some(r) = cfg.rate_per_sec {
            if !r.is_finite() || r <= 0.0 || r > 1e9 {
                return Err("source.generate: 'rate_per_sec' must be in (0, 1e9]".into());
            }
        }
        if cfg.hosts == 0 || cfg.hosts > 1_000_000 {
            return Err("source.generate: 'hosts' must be 1..=1000000".into());
        }
        if cfg.interval_ms < 0 {
            return Err("source.generate: 'interval_ms' must not be negative".into());
        }
        let instance = init.instance;
        let stream = (instance as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        Ok(GenerateSource {
            rng: SplitMix64::new(cfg.seed ^ stream),
            instance,
            next: 0,
            start: cfg.start_time_ms,
            bucket: None,
            cfg,
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        let now = out.now();
        let start = *self
            .start
            .get_or_insert(EventTime::try_from(now).unwrap_or(EventTime::MAX));
        let left = self
            .cfg
            .count
            .map_or(u64::MAX, |c| c.saturating_sub(self.next));
        if left == 0 {
            return Ok(SourcePoll::Done);
        }
        let mut n = (out.remaining() as u64).min(left);
        let mut wait = None;
        if let Some(rate) = self.cfg.rate_per_sec {
            let capacity = (rate * BURST_SECONDS).max(1.0);
            let (tokens, last) = self.bucket.get_or_insert((1.0, now));
            let elapsed = now.saturating_sub(*last) as f64;
            *tokens = (*tokens + rate * elapsed / 1000.0).min(capacity);
            *last = now;
            // The epsilon keeps float rounding (0.9999999) from costing a whole token.
            n = n.min((*tokens + 1e-9).floor() as u64);
            *tokens -= n as f64;
            if *tokens + 1e-9 < 1.0 {
                // Time until the next whole token.
                wait = Some((((1.0 - *tokens) * 1000.0 / rate).ceil() as u64).max(1));
            }
        }
        let mut last_ts = None;
        for _ in 0..n {
            let ts = start.saturating_add((self.next as i64).saturating_mul(self.cfg.interval_ms));
            let v = self.record(ts);
            out.emit(v);
            self.next += 1;
            last_ts = Some(ts);
        }
        if let Some(ts) = last_ts {
            out.watermark(if self.cfg.interval_ms > 0 { ts } else { ts - 1 });
        }
        if self.cfg.count.is_some_and(|c| self.next >= c) {
            return Ok(SourcePoll::Done);
        }
        Ok(match wait {
            Some(ms) => SourcePoll::Wait(ms),
            None => SourcePoll::More,
        })
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        self.position().map(Some)
    }

    fn restore(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
        self.resume(positions)
    }
}

/// Where a generator is: restored, it emits exactly what it would have emitted next.
#[derive(serde::Serialize, serde::Deserialize)]
struct GeneratePosition {
    instance: usize,
    next: u64,
    rng: u64,
    start: Option<EventTime>,
}

impl GenerateSource {
    /// Its position at a checkpoint.
    pub(crate) fn position(&self) -> OpResult<Vec<u8>> {
        ringflow_stream::checkpoint::to_bytes(&GeneratePosition {
            instance: self.instance,
            next: self.next,
            rng: self.rng.0,
            start: self.start,
        })
    }

    /// Resumes from the position of the earlier instance with this one's index (every
    /// earlier position is offered; an instance that did not exist before starts anew).
    pub(crate) fn resume(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
        for p in positions {
            let p: GeneratePosition = ringflow_stream::checkpoint::from_bytes(&p)?;
            if p.instance == self.instance {
                self.next = p.next;
                self.rng = SplitMix64(p.rng);
                self.start = p.start;
            }
        }
        Ok(())
    }

    fn record(&mut self, ts: EventTime) -> Value {
        match self.cfg.kind {
            GenerateKind::Sequence => json!({"n": self.next, "instance": self.instance, "ts": ts}),
            GenerateKind::Words => {
                let n = 1 + self.rng.below(8);
                let words: Vec<&str> = (0..n)
                    .map(|_| WORDS[self.rng.below(WORDS.len() as u64) as usize])
                    .collect();
                Value::String(words.join(" "))
            }
            GenerateKind::Metrics => {
                let host = self.next % self.cfg.hosts;
                // Each host has a base load fixed by the seed, plus noise.
                let base = 5.0 + 60.0 * unit_f64(mix(self.cfg.seed ^ mix(host)));
                let cpu = if self.rng.below(50) == 0 {
                    90.0 + 9.99 * self.rng.unit()
                } else {
                    (base + 20.0 * (self.rng.unit() - 0.5)).clamp(0.0, 89.99)
                };
                let cpu = (cpu * 100.0).round() / 100.0;
                json!({"host": format!("host-{host}"), "cpu": cpu, "ts": ts})
            }
        }
    }
}

/// The vocabulary of `words` (200 words).
const WORDS: [&str; 200] = [
    "the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "with", "as",
    "be", "at", "one", "have", "this", "from", "or", "had", "by", "word", "but", "what", "some",
    "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how",
    "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about",
    "many", "then", "them", "write", "would", "like", "so", "these", "her", "long", "make",
    "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come", "did",
    "number", "sound", "no", "most", "people", "my", "over", "know", "water", "than", "call",
    "first", "who", "may", "down", "side", "been", "now", "find", "any", "new", "work", "part",
    "take", "get", "place", "made", "live", "where", "after", "back", "little", "only", "round",
    "man", "year", "came", "show", "every", "good", "me", "give", "our", "under", "name", "very",
    "through", "just", "form", "sentence", "great", "think", "say", "help", "low", "line",
    "differ", "turn", "cause", "much", "mean", "before", "move", "right", "boy", "old", "too",
    "same", "tell", "does", "set", "three", "want", "air", "well", "also", "play", "small", "end",
    "put", "home", "read", "hand", "port", "large", "spell", "add", "even", "land", "here", "must",
    "big", "high", "such", "follow", "act", "why", "ask", "men", "change", "went", "light", "kind",
    "off", "need", "house", "picture", "try", "us", "again", "animal", "point", "mother", "world",
    "near", "build", "self", "earth", "father", "head", "stand", "own", "page", "should",
    "country", "found",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{poll_once, strings};
    use std::collections::{BTreeMap, BTreeSet};

    fn make(config: Value, instance: usize) -> GenerateSource {
        let init = InitContext {
            instance,
            instances: 4,
            ..InitContext::for_test("gen")
        };
        GenerateSource::create(serde_json::from_value(config).unwrap(), &init).unwrap()
    }

    fn take(src: &mut GenerateSource, n: usize) -> Vec<Value> {
        let mut counters = BTreeMap::new();
        let p = poll_once(src, n, 0, &mut counters).unwrap();
        p.items.into_iter().map(|i| i.value).collect()
    }

    #[test]
    fn the_vocabulary_has_200_distinct_words() {
        assert_eq!(WORDS.iter().collect::<BTreeSet<_>>().len(), 200);
    }

    #[test]
    fn sequences_count_with_event_times_and_end_after_count() {
        let mut src = make(
            json!({"count": 5, "start_time_ms": 1000, "interval_ms": 10}),
            2,
        );
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 3, 77, &mut counters).unwrap();
        assert_eq!(p.poll, SourcePoll::More);
        assert_eq!(p.items[0].value, json!({"n": 0, "instance": 2, "ts": 1000}));
        assert_eq!(p.items[2].value, json!({"n": 2, "instance": 2, "ts": 1020}));
        assert_eq!(p.watermark, Some(1020));
        let p = poll_once(&mut src, 100, 78, &mut counters).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.poll, SourcePoll::Done);
        assert_eq!(p.watermark, Some(1040));
        let p = poll_once(&mut src, 100, 79, &mut counters).unwrap();
        assert!(p.items.is_empty());
        assert_eq!(p.poll, SourcePoll::Done);
    }

    #[test]
    fn event_time_starts_at_the_first_poll_by_default() {
        let mut src = make(json!({"interval_ms": 0}), 0);
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 2, 5000, &mut counters).unwrap();
        assert!(p.items.iter().all(|i| i.value["ts"] == 5000));
        assert_eq!(p.watermark, Some(4999));
    }

    #[test]
    fn output_is_fixed_by_seed_and_instance() {
        for kind in ["words", "metrics"] {
            let a = take(&mut make(json!({"kind": kind, "seed": 7}), 0), 200);
            let b = take(&mut make(json!({"kind": kind, "seed": 7}), 0), 200);
            let c = take(&mut make(json!({"kind": kind, "seed": 8}), 0), 200);
            let d = take(&mut make(json!({"kind": kind, "seed": 7}), 1), 200);
            assert_eq!(a, b, "{kind}");
            assert_ne!(a, c, "{kind}");
            assert_ne!(a, d, "{kind}");
        }
    }

    #[test]
    fn words_are_one_to_eight_vocabulary_words() {
        let mut src = make(json!({"kind": "words", "seed": 3}), 0);
        let mut counters = BTreeMap::new();
        let lines = strings(&poll_once(&mut src, 2000, 0, &mut counters).unwrap().items);
        let mut lengths = BTreeSet::new();
        for l in &lines {
            let words: Vec<&str> = l.split(' ').collect();
            lengths.insert(words.len());
            assert!(words.iter().all(|w| WORDS.contains(w)), "{l}");
        }
        assert_eq!(lengths, (1..=8).collect());
    }

    #[test]
    fn metrics_go_round_robin_over_hosts_with_occasional_spikes() {
        let values = take(&mut make(json!({"kind": "metrics", "hosts": 3}), 0), 3000);
        let mut spikes = 0;
        for (i, v) in values.iter().enumerate() {
            assert_eq!(v["host"], format!("host-{}", i % 3));
            let cpu = v["cpu"].as_f64().unwrap();
            assert!((0.0..100.0).contains(&cpu), "{cpu}");
            if cpu > 90.0 {
                spikes += 1;
            }
            assert_eq!(v["ts"].as_i64(), Some(i as i64));
        }
        assert!(spikes > 10 && spikes < 200, "{spikes} spikes");
    }

    #[test]
    fn the_rate_is_never_exceeded_in_simulated_time() {
        let mut src = make(json!({"rate_per_sec": 1000}), 0);
        let mut counters = BTreeMap::new();
        let mut total = 0usize;
        let mut now = 10_000u64;
        let start = now;
        let mut polls = 0;
        while now <= start + 250 {
            let p = poll_once(&mut src, 64, now, &mut counters).unwrap();
            total += p.items.len();
            assert!(
                total as u64 <= (now - start) + 1,
                "{total} by {}",
                now - start
            );
            now += match p.poll {
                SourcePoll::Wait(ms) => ms,
                SourcePoll::More => 0,
                SourcePoll::Done => panic!("unbounded source ended"),
            };
            polls += 1;
        }
        assert!((240..=251).contains(&total), "{total} records in 250 ms");
        assert!(polls < 1000);

        // A slow rate waits for its next token; a stall does not turn into a burst.
        let mut src = make(json!({"rate_per_sec": 2.5}), 0);
        let p = poll_once(&mut src, 64, 0, &mut counters).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.poll, SourcePoll::Wait(400));
        assert!(poll_once(&mut src, 64, 399, &mut counters)
            .unwrap()
            .items
            .is_empty());
        assert_eq!(
            poll_once(&mut src, 64, 400, &mut counters)
                .unwrap()
                .items
                .len(),
            1
        );
        assert_eq!(
            poll_once(&mut src, 64, 1_000_000, &mut counters)
                .unwrap()
                .items
                .len(),
            1
        );
    }

    #[test]
    fn an_unlimited_generator_fills_the_credit() {
        let mut src = make(json!({}), 0);
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 500, 0, &mut counters).unwrap();
        assert_eq!(p.items.len(), 500);
        assert_eq!(p.poll, SourcePoll::More);
    }

    #[test]
    fn bad_configs_are_refused() {
        let init = InitContext::for_test("gen");
        for bad in [
            json!({"rate_per_sec": 0}),
            json!({"rate_per_sec": -1}),
            json!({"hosts": 0}),
            json!({"interval_ms": -1}),
        ] {
            let cfg: GenerateConfig = serde_json::from_value(bad.clone()).unwrap();
            assert!(GenerateSource::create(cfg, &init).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<GenerateConfig>(json!({"kind": "nope"})).is_err());
        assert!(serde_json::from_value::<GenerateConfig>(json!({"rte": 1})).is_err());
    }
}
