//! `range_partition`: keys each record with the index of the key range it falls in, for
//! a `direct` edge.

use std::cmp::Ordering;

use serde::Deserialize;

use super::record::{cmp_parts, unhex, SortRecord};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};

/// One range bound of `range_partition`, in hex.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitterSpec {
    /// The bound's key bytes, hex.
    pub key: String,
    /// The bound's whole record bytes, hex (default empty: the smallest record with
    /// that key).
    #[serde(default)]
    pub data: String,
}

/// Configuration of `range_partition`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangePartitionConfig {
    /// The range bounds in non-decreasing record order (see [`super::splitters`]); `n`
    /// splitters make `n + 1` ranges. None: every record goes to range 0.
    #[serde(default)]
    pub splitters: Vec<SplitterSpec>,
}

/// `range_partition { splitters }`: emits each record keyed with the index (`"0"`,
/// `"1"`, ...) of its range, so a `direct` edge sends range `r` to instance `r`. Range
/// `r` holds the records with `splitter[r-1] < record <= splitter[r]` in the
/// [`SortRecord`] order on (key, data), found by binary search. Because ties on a key
/// are broken by the whole data, a key shared by many records still spreads over
/// several ranges when the sample put splitters inside it.
///
/// There should be as many ranges as downstream instances: a `direct` edge sends keys
/// past the last instance to the last instance. Unsorted splitters or bad hex are
/// refused at create. Counter: `records`.
pub struct RangePartitionOp {
    splitters: Vec<(Vec<u8>, Vec<u8>)>,
    names: Vec<String>,
}

impl Operator for RangePartitionOp {
    type In = SortRecord;
    type Out = SortRecord;
    type Config = RangePartitionConfig;

    fn create(cfg: RangePartitionConfig, _init: &InitContext) -> OpResult<Self> {
        let mut splitters = Vec::with_capacity(cfg.splitters.len());
        for (i, s) in cfg.splitters.iter().enumerate() {
            let bad = |what: &str, e: String| {
                OpError(format!("range_partition: splitter {i} '{what}': {e}"))
            };
            let key = unhex(&s.key).map_err(|e| bad("key", e))?;
            let data = unhex(&s.data).map_err(|e| bad("data", e))?;
            splitters.push((key, data));
        }
        if let Some(i) = splitters
            .windows(2)
            .position(|w| cmp_parts(&w[0].0, &w[0].1, &w[1].0, &w[1].1) == Ordering::Greater)
        {
            return Err(OpError(format!(
                "range_partition: splitters are not sorted: {} is greater than {}",
                i,
                i + 1
            )));
        }
        let names = (0..=splitters.len()).map(|r| r.to_string()).collect();
        Ok(RangePartitionOp { splitters, names })
    }

    fn on_batch(
        &mut self,
        batch: Batch<SortRecord>,
        ctx: &mut Context<'_, SortRecord>,
    ) -> OpResult {
        ctx.count("records", batch.len() as u64);
        for item in batch {
            let r = self.range_of(&item.value);
            ctx.emit_keyed(self.names[r].clone(), item.value);
        }
        Ok(())
    }
}

impl RangePartitionOp {
    /// The range of `rec`: the number of splitters smaller than it.
    pub fn range_of(&self, rec: &SortRecord) -> usize {
        let (key, data) = (rec.key(), rec.data.as_slice());
        self.splitters
            .partition_point(|(sk, sd)| cmp_parts(sk, sd, key, data) == Ordering::Less)
    }

    /// Number of ranges (splitters + 1).
    pub fn ranges(&self) -> usize {
        self.splitters.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{Format, RecordReader};
    use super::super::sample::{range_partition_config, samples_from_value, splitters, SampleOp};
    use super::super::testkit::{gensort_bytes, Harness};
    use super::*;
    use serde_json::json;

    fn op(cfg: serde_json::Value) -> OpResult<RangePartitionOp> {
        let cfg: RangePartitionConfig =
            serde_json::from_value(cfg).map_err(|e| OpError(e.to_string()))?;
        RangePartitionOp::create(cfg, &InitContext::for_test("p"))
    }

    #[test]
    fn ranges_are_left_open_right_closed() {
        let p = op(json!({"splitters": [{"key": "62", "data": "62"}, {"key": "64"}]})).unwrap();
        assert_eq!(p.ranges(), 3);
        let r = |data: &[u8]| p.range_of(&SortRecord::new(data.to_vec(), 0, 1));
        assert_eq!(r(b"a"), 0);
        assert_eq!(r(b"b"), 0);
        assert_eq!(r(b"b0"), 1);
        assert_eq!(r(b"c"), 1);
        assert_eq!(r(b"d"), 2); // ("d","d") > ("d","")
        assert_eq!(r(b"z"), 2);
        let none = op(json!({})).unwrap();
        assert_eq!(none.range_of(&SortRecord::new(b"x".to_vec(), 0, 1)), 0);
    }

    #[test]
    fn records_are_keyed_with_their_range() {
        let mut h = Harness::<RangePartitionOp>::new(
            json!({"splitters": [{"key": "6d", "data": "6d"}]}),
            0,
            1,
        );
        let recs: Vec<SortRecord> = ["a", "z", "m"]
            .iter()
            .map(|s| SortRecord::new(s.as_bytes().to_vec(), 0, 1))
            .collect();
        h.batch(0, recs);
        let keys: Vec<Option<String>> = h.emitted.iter().map(|i| i.key.clone()).collect();
        assert_eq!(keys, [Some("0".into()), Some("1".into()), Some("0".into())]);
        assert_eq!(h.counter("records"), 3);
    }

    #[test]
    fn unsorted_splitters_and_bad_hex_are_refused() {
        let e = op(json!({"splitters": [{"key": "02"}, {"key": "01"}]}))
            .err()
            .unwrap();
        assert!(e.0.contains("not sorted"), "{e}");
        assert!(op(json!({"splitters": [{"key": "0"}]})).is_err());
        assert!(op(json!({"splitters": [{"key": "00", "data": "xy"}]})).is_err());
        assert!(op(json!({"splitters": [{"key": "00", "other": ""}]})).is_err());
        // Equal splitters are allowed (an empty range between them).
        assert!(op(json!({"splitters": [{"key": "01"}, {"key": "01"}]})).is_ok());
    }

    /// Splitters from a 1000-record sample of skewed gensort data (a quarter of the
    /// records share a 2-byte key prefix, another quarter one exact key): the largest of
    /// 4 ranges holds at most 1.5 × the mean.
    #[test]
    fn sampled_splitters_balance_skewed_keys() {
        let n = 40_000;
        let bytes = gensort_bytes(n, 11, true);
        let records: Vec<SortRecord> = RecordReader::new(&bytes[..], Format::Gensort)
            .collect::<Result<_, _>>()
            .unwrap();
        // Sampled on 2 instances, as a job would.
        let mut samples = Vec::new();
        for (i, part) in records.chunks(n / 2).enumerate() {
            let mut h = Harness::<SampleOp>::new(json!({"max": 500}), i, 1);
            for b in part.chunks(512) {
                h.batch(0, b.to_vec());
            }
            samples.extend(samples_from_value(&h.finish()[0]).unwrap());
        }
        assert_eq!(samples.len(), 1000);
        let split = splitters(samples, 4);
        let p = op(range_partition_config(&split)).unwrap();
        let mut counts = [0usize; 4];
        for r in &records {
            counts[p.range_of(r)] += 1;
        }
        let mean = n / 4;
        let largest = counts.iter().copied().max().unwrap_or(0);
        assert!(largest * 2 <= mean * 3, "ranges {counts:?}");
        // The exact key alone is a quarter of the records: it was split by its data.
        let same: Vec<usize> = records
            .iter()
            .filter(|r| r.key() == b"SAME_KEY!!")
            .map(|r| p.range_of(r))
            .collect();
        assert_eq!(same.len(), n / 4);
        assert!(
            same.iter().any(|&r| r != same[0]),
            "one range holds the whole key"
        );
    }
}
