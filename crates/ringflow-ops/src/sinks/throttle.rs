//! The `max_per_sec` throttle every built-in sink accepts (tests of backpressure).

use std::time::{Duration, Instant};

use ringflow_stream::operator::OpResult;

/// Holds a sink to at most `max_per_sec` records per second by sleeping before a record
/// that would come too early.
///
/// Record `c` (counting from 0) is written no earlier than `c / max_per_sec` seconds
/// after the first one, so the count written by any moment never exceeds
/// `rate * elapsed + 1`, and oversleeping on one record is made up by the next ones (the
/// long-run rate is exact). This is the one place where built-ins read the wall clock
/// ([`Instant`]) and sleep ([`std::thread::sleep`]): a throttled sink must really be
/// slow to push back on its inputs, and sinks run on their own thread in the runtime.
/// Without a rate it does nothing.
#[derive(Debug, Clone)]
pub struct Throttle {
    rate: Option<f64>,
    start: Option<Instant>,
    count: u64,
}

impl Throttle {
    /// A throttle at `max_per_sec` records per second, or none when `None`. Refuses a
    /// rate that is not a positive finite number.
    pub fn new(max_per_sec: Option<f64>) -> OpResult<Self> {
        if let Some(r) = max_per_sec {
            if !r.is_finite() || r <= 0.0 {
                return Err(format!("'max_per_sec' must be a positive number, not {r}").into());
            }
        }
        Ok(Throttle {
            rate: max_per_sec,
            start: None,
            count: 0,
        })
    }

    /// Waits until the next record may be written, then counts it.
    pub fn admit(&mut self) {
        let Some(rate) = self.rate else {
            return;
        };
        let start = *self.start.get_or_insert_with(Instant::now);
        let wait = delay(self.count, rate, start.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.count += 1;
    }

    /// Records admitted so far (counted only when a rate is set).
    pub fn admitted(&self) -> u64 {
        self.count
    }
}

/// How long record `count` must still wait at `rate` records/s when `elapsed` has
/// passed since the first record.
fn delay(count: u64, rate: f64, elapsed: Duration) -> Duration {
    let due = Duration::from_secs_f64(count as f64 / rate);
    due.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_follows_the_schedule() {
        assert_eq!(delay(0, 10.0, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            delay(5, 10.0, Duration::from_millis(100)),
            Duration::from_millis(400)
        );
        assert_eq!(delay(5, 10.0, Duration::from_secs(3)), Duration::ZERO);
    }

    #[test]
    fn a_throttle_holds_the_rate() {
        let mut t = Throttle::new(Some(200.0)).unwrap();
        let start = Instant::now();
        for _ in 0..41 {
            t.admit();
        }
        // 41 records at 200/s: the last one is due 200 ms after the first. Only a
        // lower bound: a slow machine may take longer, never shorter.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(t.admitted(), 41);
    }

    #[test]
    fn no_rate_means_no_wait_and_bad_rates_are_refused() {
        let mut t = Throttle::new(None).unwrap();
        for _ in 0..1000 {
            t.admit();
        }
        assert_eq!(t.admitted(), 0);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Throttle::new(Some(bad)).is_err());
        }
    }
}
