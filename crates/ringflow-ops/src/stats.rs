//! Running numeric statistics shared by the aggregates and the windows: count, exact
//! integer sums (falling back to compensated float sums once a float is seen), min, max,
//! mean, and exact nearest-rank percentiles.

use crate::values::{float_value, Num};
use ringflow_stream::data::Value;

/// Neumaier's compensated float sum: accurate even for values of mixed magnitude.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct FloatSum {
    sum: f64,
    compensation: f64,
}

impl FloatSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Count, sum, min and max of a set of numbers.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stats {
    count: u64,
    int_sum: i128,
    float_sum: FloatSum,
    has_float: bool,
    min: Option<Num>,
    max: Option<Num>,
}

impl Stats {
    /// Adds one number.
    pub(crate) fn add(&mut self, n: Num) {
        self.count += 1;
        match n {
            Num::Int(i) => match self.int_sum.checked_add(i) {
                Some(s) => self.int_sum = s,
                None => {
                    // Beyond i128: the sum cannot stay exact anyway.
                    self.float_sum.add(i as f64);
                    self.has_float = true;
                }
            },
            Num::Float(f) => {
                self.float_sum.add(f);
                self.has_float = true;
            }
        }
        if self.min.is_none_or(|m| n.cmp_num(&m).is_lt()) {
            self.min = Some(n);
        }
        if self.max.is_none_or(|m| n.cmp_num(&m).is_gt()) {
            self.max = Some(n);
        }
    }

    /// Adds every number of `other`.
    pub(crate) fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        match self.int_sum.checked_add(other.int_sum) {
            Some(s) => self.int_sum = s,
            None => {
                self.float_sum.add(other.int_sum as f64);
                self.has_float = true;
            }
        }
        if other.has_float {
            self.float_sum.add(other.float_sum.sum);
            self.float_sum.add(other.float_sum.compensation);
            self.has_float = true;
        }
        if let Some(m) = other.min {
            if self.min.is_none_or(|s| m.cmp_num(&s).is_lt()) {
                self.min = Some(m);
            }
        }
        if let Some(m) = other.max {
            if self.max.is_none_or(|s| m.cmp_num(&s).is_gt()) {
                self.max = Some(m);
            }
        }
    }

    /// Number of values added.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The sum: exact when every value was an integer, a float otherwise.
    pub(crate) fn sum(&self) -> Num {
        if self.has_float {
            let mut s = self.float_sum;
            s.add(self.int_sum as f64);
            Num::Float(s.total())
        } else {
            Num::Int(self.int_sum)
        }
    }

    /// The arithmetic mean (`null` when empty).
    pub(crate) fn mean(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        float_value(self.sum().as_f64() / self.count as f64)
    }

    /// The smallest value.
    pub(crate) fn min(&self) -> Option<Num> {
        self.min
    }

    /// The largest value.
    pub(crate) fn max(&self) -> Option<Num> {
        self.max
    }
}

/// The `p`-th percentile (`1..=100`) of `sorted` (ascending) by the nearest-rank
/// method: the value at 1-based rank `ceil(p / 100 * n)`. Always one of the values.
pub(crate) fn nearest_rank(sorted: &[Num], p: u32) -> Option<Num> {
    let n = sorted.len() as u128;
    if n == 0 {
        return None;
    }
    let rank = (u128::from(p) * n).div_ceil(100).clamp(1, n);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(values: &[Value]) -> Stats {
        let mut s = Stats::default();
        for v in values {
            s.add(Num::from_value(v).unwrap());
        }
        s
    }

    #[test]
    fn integer_sums_are_exact_and_floats_switch_to_float() {
        let s = stats(&[json!(u64::MAX), json!(u64::MAX), json!(i64::MIN)]);
        let exact = 2 * i128::from(u64::MAX) + i128::from(i64::MIN);
        assert!(matches!(s.sum(), Num::Int(v) if v == exact));
        assert_eq!(s.min().unwrap().to_value(), json!(i64::MIN));
        assert_eq!(s.max().unwrap().to_value(), json!(u64::MAX));
        let s = stats(&[json!(1), json!(0.5), json!(2)]);
        assert_eq!(s.sum().to_value(), json!(3.5));
        assert_eq!(s.mean(), json!(3.5 / 3.0));
        // Compensated: 1e16 + 1 + 1 - 1e16 = 2, which a naive f64 sum gets wrong.
        let s = stats(&[json!(1e16), json!(1.0), json!(1.0), json!(-1e16)]);
        assert_eq!(s.sum().to_value(), json!(2.0));
        assert_eq!(Stats::default().mean(), Value::Null);
    }

    #[test]
    fn merging_equals_adding_everything() {
        let a = [json!(3), json!(-7), json!(2.5)];
        let b = [json!(10), json!(-8.25)];
        let mut m = stats(&a);
        m.merge(&stats(&b));
        let all = stats(&[a.to_vec(), b.to_vec()].concat());
        assert_eq!(m.count(), all.count());
        assert_eq!(m.sum().to_value(), all.sum().to_value());
        assert_eq!(m.min().unwrap().to_value(), json!(-8.25));
        assert_eq!(m.max().unwrap().to_value(), json!(10));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Num> = (1..=10).map(|i| Num::Int(i * 10)).collect();
        let p = |p| nearest_rank(&sorted, p).unwrap().to_value();
        assert_eq!(p(1), json!(10));
        assert_eq!(p(10), json!(10));
        assert_eq!(p(11), json!(20));
        assert_eq!(p(50), json!(50));
        assert_eq!(p(51), json!(60));
        assert_eq!(p(90), json!(90));
        assert_eq!(p(95), json!(100));
        assert_eq!(p(100), json!(100));
        assert!(nearest_rank(&[], 50).is_none());
        assert_eq!(
            nearest_rank(&[Num::Float(2.5)], 99).unwrap().to_value(),
            json!(2.5)
        );
    }
}
