//! Versions that order writes to a key across replicas: hybrid logical clock timestamps
//! with the writer's node number as tie-breaker. The highest version wins everywhere, so
//! replicas converge whatever order they see writes in, and a stale copy never wins.

use serde::{Deserialize, Serialize};

/// A write's version. Totally ordered: by `ts`, then by `node`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Hybrid logical clock: physical milliseconds << 16 | logical counter.
    pub ts: u64,
    /// Number of the node that assigned it (tie-breaker).
    pub node: u32,
}

/// Bits of the logical counter in [`Version::ts`].
pub const LOGICAL_BITS: u32 = 16;

impl Version {
    /// The physical-time part, in milliseconds.
    pub fn millis(&self) -> u64 {
        self.ts >> LOGICAL_BITS
    }
}

/// A hybrid logical clock (sans-IO: the caller passes wall-clock milliseconds in).
///
/// Versions it issues are strictly increasing, never behind any version it has observed,
/// and close to physical time while clocks are sane.
#[derive(Clone, Debug)]
pub struct Hlc {
    last: u64,
    node: u32,
}

impl Hlc {
    /// A clock for node number `node`.
    pub fn new(node: u32) -> Self {
        Self { last: 0, node }
    }

    /// The next version, at wall-clock time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Version {
        let physical = now_ms << LOGICAL_BITS;
        self.last = if physical > self.last {
            physical
        } else {
            self.last.saturating_add(1)
        };
        Version {
            ts: self.last,
            node: self.node,
        }
    }

    /// Moves the clock past a version seen from elsewhere.
    pub fn observe(&mut self, v: Version) {
        self.last = self.last.max(v.ts);
    }

    /// Like [`Hlc::observe`], unless `v` is more than `max_ahead_ms` ahead of `now_ms`
    /// (such a version is not followed: the clock would jump into the future). Whether
    /// it was observed.
    pub fn observe_within(&mut self, v: Version, now_ms: u64, max_ahead_ms: u64) -> bool {
        if is_too_far_ahead(v, now_ms, max_ahead_ms) {
            return false;
        }
        self.observe(v);
        true
    }

    /// The highest timestamp issued or observed (to persist: a restarted clock observes
    /// it again so that it never issues a version below one it issued before).
    pub fn high_water(&self) -> u64 {
        self.last
    }

    /// Moves the clock to at least the raw timestamp `ts` (a persisted high-water mark).
    pub fn observe_ts(&mut self, ts: u64) {
        self.last = self.last.max(ts);
    }
}

/// Whether `v` is stamped more than `max_ahead_ms` after `now_ms`.
pub fn is_too_far_ahead(v: Version, now_ms: u64, max_ahead_ms: u64) -> bool {
    v.millis() > now_ms.saturating_add(max_ahead_ms)
}

/// A stored value or a deletion marker, with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Version of the write that produced this entry.
    pub version: Version,
    /// The value; `None` is a tombstone (the key was deleted).
    pub value: Option<Vec<u8>>,
}

impl Entry {
    /// Whether `self` should replace `current` (strictly newer).
    pub fn supersedes(&self, current: Option<&Entry>) -> bool {
        current.is_none_or(|c| self.version > c.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_is_strictly_increasing_even_when_time_goes_back() {
        let mut c = Hlc::new(1);
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(500);
        assert!(a < b && b < d);
        assert_eq!(a.millis(), 1000);
    }

    #[test]
    fn hlc_observes_remote_versions() {
        let mut c = Hlc::new(1);
        let remote = Version {
            ts: 5000 << LOGICAL_BITS,
            node: 2,
        };
        c.observe(remote);
        assert!(c.tick(10) > remote);
    }

    #[test]
    fn versions_far_ahead_of_the_clock_are_not_followed() {
        let mut c = Hlc::new(1);
        let ahead = |ms: u64| Version {
            ts: ms << LOGICAL_BITS,
            node: 2,
        };
        assert!(!c.observe_within(ahead(10_000 + 60_001), 10_000, 60_000));
        assert!(c.tick(10_000).millis() == 10_000);
        assert!(c.observe_within(ahead(10_000 + 59_000), 10_000, 60_000));
        assert!(c.tick(10_000) > ahead(69_000));
        let mut restarted = Hlc::new(1);
        restarted.observe_ts(c.high_water());
        assert!(restarted.tick(0).ts > c.high_water());
    }

    #[test]
    fn newer_entries_supersede_and_ties_break_by_node() {
        let e = |ts, node| Entry {
            version: Version { ts, node },
            value: None,
        };
        assert!(e(2, 0).supersedes(Some(&e(1, 9))));
        assert!(e(1, 2).supersedes(Some(&e(1, 1))));
        assert!(!e(1, 1).supersedes(Some(&e(1, 1))));
        assert!(e(0, 0).supersedes(None));
    }
}
