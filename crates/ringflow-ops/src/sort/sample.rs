//! `sample`: a deterministic reservoir sample of records per instance, and
//! [`splitters`], which turns samples into range bounds for `range_partition`.

use ringflow_ring::rng::SplitMix64;
use serde::Deserialize;
use serde_json::json;

use super::record::{cmp_parts, hex, unhex, SortRecord};
use crate::reservoir::Reservoir;
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};
use ringflow_stream::Value;

/// Configuration of `sample`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Most records kept per instance (default 10000).
    #[serde(default = "default_max")]
    pub max: usize,
    /// The output record's key is this followed by the instance index (default
    /// `"sample:"`).
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Seed of the sampling PRNG (mixed with the instance index; default 1).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_max() -> usize {
    10_000
}

fn default_prefix() -> String {
    "sample:".into()
}

fn default_seed() -> u64 {
    1
}

/// `sample { max, key_prefix, seed }`: keeps a uniform random sample of up to `max` of
/// the records this instance sees (a [`Reservoir`]: algorithm R, with a
/// SplitMix64 PRNG seeded from `seed` and the instance index, so a rerun on the same
/// input picks the same records). At the end it emits one record keyed
/// `<key_prefix><instance>`:
///
/// ```json
/// {"instance": 0, "seen": 123456, "samples": [{"key": "<hex>", "data": "<hex>"}, ...]}
/// ```
///
/// with the samples in record order, key and whole data in lower-case hex. Counter:
/// `records` (seen).
pub struct SampleOp {
    cfg: SampleConfig,
    instance: usize,
    reservoir: Reservoir<SortRecord>,
}

impl Operator for SampleOp {
    type In = SortRecord;
    type Out = Value;
    type Config = SampleConfig;

    fn create(cfg: SampleConfig, init: &InitContext) -> OpResult<Self> {
        if cfg.max == 0 || cfg.max > 10_000_000 {
            return Err("sample: 'max' must be 1..=10000000".into());
        }
        let mut rng =
            SplitMix64(cfg.seed ^ (init.instance as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        rng.next_u64();
        Ok(SampleOp {
            instance: init.instance,
            reservoir: Reservoir::new(cfg.max, rng),
            cfg,
        })
    }

    fn on_batch(&mut self, batch: Batch<SortRecord>, ctx: &mut Context<'_, Value>) -> OpResult {
        ctx.count("records", batch.len() as u64);
        for item in batch {
            self.reservoir.offer(item.value);
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        let mut samples = self.reservoir.take();
        samples.sort_by(super::record::cmp_records);
        let samples: Vec<Value> = samples
            .iter()
            .map(|r| json!({"key": hex(r.key()), "data": hex(&r.data)}))
            .collect();
        ctx.emit_keyed(
            format!("{}{}", self.cfg.key_prefix, self.instance),
            json!({"instance": self.instance, "seen": self.reservoir.seen(), "samples": samples}),
        );
        Ok(())
    }
}

/// A sampled record or a splitter: (key bytes, whole data bytes).
pub type KeyData = (Vec<u8>, Vec<u8>);

/// The samples of one `sample` output value — the value itself, or a `{"key", "value"}`
/// line as `sink.file` writes it — as (key, data) byte pairs.
pub fn samples_from_value(v: &Value) -> Result<Vec<KeyData>, String> {
    let v = match v.get("value") {
        Some(inner) if inner.get("samples").is_some() => inner,
        _ => v,
    };
    let list = v
        .get("samples")
        .and_then(Value::as_array)
        .ok_or("a sample record has a 'samples' array")?;
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let field = |name: &str| -> Result<Vec<u8>, String> {
                let text = s
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("sample {i} has no '{name}' string"))?;
                unhex(text).map_err(|e| format!("sample {i} '{name}': {e}"))
            };
            Ok((field("key")?, field("data")?))
        })
        .collect()
}

/// Sorts `samples` (key, data) by the record order and picks `ranges - 1` evenly spaced
/// splitters: splitter `r` (1-based) is the sample at position `ceil(r × n / ranges) - 1`,
/// so range `r` of `range_partition` gets about `n / ranges` samples. Returns no
/// splitter for `ranges ≤ 1` or no samples; with fewer samples than ranges, splitters
/// repeat (and some ranges stay empty).
pub fn splitters(mut samples: Vec<(Vec<u8>, Vec<u8>)>, ranges: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    if ranges <= 1 || samples.is_empty() {
        return Vec::new();
    }
    samples.sort_by(|a, b| cmp_parts(&a.0, &a.1, &b.0, &b.1));
    let n = samples.len();
    (1..ranges)
        .map(|r| {
            let pos = (r * n).div_ceil(ranges).saturating_sub(1).min(n - 1);
            samples[pos].clone()
        })
        .collect()
}

/// The `range_partition` config of `splitters`: `{"splitters": [{"key", "data"}, ...]}`
/// in hex.
pub fn range_partition_config(splitters: &[(Vec<u8>, Vec<u8>)]) -> Value {
    let list: Vec<Value> = splitters
        .iter()
        .map(|(k, d)| json!({"key": hex(k), "data": hex(d)}))
        .collect();
    json!({ "splitters": list })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;
    use super::*;

    fn rec(i: u32) -> SortRecord {
        SortRecord::new(i.to_be_bytes().to_vec(), 2, 2)
    }

    fn sample(max: usize, seed: u64, n: u32, instance: usize) -> Value {
        let mut h = Harness::<SampleOp>::new(json!({"max": max, "seed": seed}), instance, 1);
        for part in (0..n).collect::<Vec<_>>().chunks(100) {
            h.batch(0, part.iter().map(|&i| rec(i)).collect());
        }
        let out = h.finish();
        assert_eq!(h.emitted.len(), 1);
        assert_eq!(
            h.emitted[0].key.as_deref(),
            Some(format!("sample:{instance}").as_str())
        );
        assert_eq!(h.counter("records"), u64::from(n));
        out.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn reservoirs_are_deterministic_bounded_and_spread() {
        let a = sample(100, 7, 10_000, 0);
        assert_eq!(a, sample(100, 7, 10_000, 0));
        assert_ne!(a, sample(100, 8, 10_000, 0));
        assert_ne!(a, sample(100, 7, 10_000, 1));
        assert_eq!(a["seen"], 10_000);
        assert_eq!(a["instance"], 0);
        let s = samples_from_value(&a).unwrap();
        assert_eq!(s.len(), 100);
        // Uniform: about half the samples come from the first half of the input.
        let low = s
            .iter()
            .filter(|(_, d)| d.as_slice() < &5000u32.to_be_bytes()[..])
            .count();
        assert!((30..=70).contains(&low), "{low}");
        // Keys are the key spans, in sorted order.
        assert_eq!(s[0].0, s[0].1[2..4].to_vec());
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        // Fewer records than `max`: all of them.
        let small = samples_from_value(&sample(100, 7, 30, 2)).unwrap();
        assert_eq!(small.len(), 30);
        // A sink.file line wraps the value.
        let wrapped = json!({"key": "sample:0", "value": a});
        assert_eq!(samples_from_value(&wrapped).unwrap(), s);
        assert!(samples_from_value(&json!({"samples": [{"key": "zz", "data": ""}]})).is_err());
    }

    #[test]
    fn splitters_are_quantiles() {
        let samples: Vec<(Vec<u8>, Vec<u8>)> =
            (0..100u8).rev().map(|i| (vec![i], vec![i])).collect();
        let s = splitters(samples.clone(), 4);
        assert_eq!(
            s,
            vec![
                (vec![24], vec![24]),
                (vec![49], vec![49]),
                (vec![74], vec![74])
            ]
        );
        assert!(splitters(samples.clone(), 1).is_empty());
        assert!(splitters(Vec::new(), 4).is_empty());
        assert_eq!(splitters(samples[..2].to_vec(), 4).len(), 3);
        let cfg = range_partition_config(&s);
        assert_eq!(cfg["splitters"][0], json!({"key": "18", "data": "18"}));
    }

    #[test]
    fn bad_configs_are_refused() {
        let init = InitContext::for_test("s");
        for c in [json!({"max": 0}), json!({"maximum": 3})] {
            let r = serde_json::from_value::<SampleConfig>(c.clone())
                .map_err(|e| e.to_string())
                .and_then(|cfg| SampleOp::create(cfg, &init).map(drop).map_err(|e| e.0));
            assert!(r.is_err(), "{c}");
        }
    }
}
