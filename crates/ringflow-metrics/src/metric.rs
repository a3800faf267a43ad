//! The three metric types: handles on atomics, cheap to clone and to update from any
//! thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Latency buckets in seconds, from 100 µs to 10 s (upper bounds, `le`).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A monotonically increasing count. Clones share the same value.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter at zero, not registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n` (wrapping at `u64::MAX`, which no real count reaches).
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (an `f64` kept as bits in an atomic). Clones share the
/// same value.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicU64>);

impl Default for Gauge {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(0f64.to_bits())))
    }
}

impl Gauge {
    /// A gauge at zero, not registered anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Sets the value from an integer (exact up to 2^53).
    pub fn set_u64(&self, v: u64) {
        self.set(v as f64);
    }

    /// Adds `d` (may be negative).
    pub fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct HistogramCore {
    /// Upper bounds, finite and strictly increasing; `+Inf` is implicit.
    bounds: Arc<[f64]>,
    /// Per bucket (not cumulative), `bounds.len() + 1` of them: the last is above every
    /// bound.
    counts: Box<[AtomicU64]>,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
}

/// Counts observations in fixed buckets (and their sum). Clones share the same data.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

/// A consistent-enough copy of a histogram: the count is the sum of the buckets read.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)` for every bound, then `(+Inf, count)`.
    pub buckets: Vec<(f64, u64)>,
    /// Number of observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with `bounds` (the caller guarantees they are finite and strictly
    /// increasing; [`crate::Registry`] checks this), not registered anywhere.
    pub(crate) fn with_bounds(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self(Arc::new(HistogramCore {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one observation. The value lands in the first bucket whose upper bound is
    /// `>=` it. NaN is ignored.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.0.bounds.partition_point(|&b| b < v);
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut cur = self.0.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .sum
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The upper bounds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.0.bounds
    }

    /// Cumulative bucket counts, count and sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.0.counts.len());
        let mut total = 0u64;
        for (i, c) in self.0.counts.iter().enumerate() {
            total = total.wrapping_add(c.load(Ordering::Relaxed));
            let bound = self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, total));
        }
        HistogramSnapshot {
            buckets,
            count: total,
            sum: f64::from_bits(self.0.sum.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_gauge_move() {
        let c = Counter::new();
        c.inc();
        c.clone().inc_by(4);
        assert_eq!(c.get(), 5);
        let g = Gauge::new();
        g.set(2.5);
        g.inc();
        g.dec();
        g.add(-0.5);
        assert_eq!(g.get(), 2.0);
        g.set_u64(7);
        assert_eq!(g.get(), 7.0);
    }

    #[test]
    fn histogram_buckets_are_upper_bounds_inclusive() {
        let h = Histogram::with_bounds(Arc::from(vec![0.1, 1.0, 10.0]));
        for v in [0.05, 0.1, 0.5, 1.0, 1.5, 10.0, 11.0, -3.0, f64::NAN] {
            h.observe(v);
        }
        let s = h.snapshot();
        // <= 0.1: 0.05, 0.1, -3 | <= 1: +0.5, 1.0 | <= 10: +1.5, 10 | +Inf: +11
        assert_eq!(
            s.buckets,
            vec![(0.1, 3), (1.0, 5), (10.0, 7), (f64::INFINITY, 8)]
        );
        assert_eq!(s.count, 8);
        assert!((s.sum - (0.05 + 0.1 + 0.5 + 1.0 + 1.5 + 10.0 + 11.0 - 3.0)).abs() < 1e-9);
    }

    #[test]
    fn latency_buckets_span_100us_to_10s() {
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.0001));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&10.0));
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        let h = Histogram::with_bounds(Arc::from(LATENCY_BUCKETS));
        h.observe_duration(Duration::from_micros(300));
        let s = h.snapshot();
        // 300 µs is above 250 µs and within 500 µs.
        assert_eq!(s.buckets[1], (0.00025, 0));
        assert_eq!(s.buckets[2], (0.0005, 1));
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let c = Counter::new();
        let h = Histogram::with_bounds(Arc::from(vec![1.0]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, h) = (c.clone(), h.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.inc();
                        h.observe(0.5);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(c.get(), 40_000);
        let s = h.snapshot();
        assert_eq!(s.count, 40_000);
        assert_eq!(s.sum, 20_000.0);
    }
}
