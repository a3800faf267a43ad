//! The windowed stream-stream join, sans-IO: records of two sides meet when they have
//! the same key and fall in the same tumbling window `[start, start + size)`; a window's
//! pairs are produced once the watermark closes it (`W >= start + size - 1`), and its
//! state goes with it. A record whose window has already closed is late: it is refused
//! (the caller counts it), never joined silently into a result already emitted.

use std::collections::BTreeMap;

use ringflow_ring::RingConfig;
use ringflow_stream::data::EventTime;
use ringflow_stream::state::KeyedState;
use ringflow_stream::{OpError, OpResult};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Records of one side of one key, by window start.
pub type SideState<T> = KeyedState<BTreeMap<EventTime, Vec<T>>>;

/// The state of a windowed join: one keyed state per side.
pub struct WindowJoin<L, R> {
    size: EventTime,
    /// `(left, right)`: what [`ringflow_stream::TwoInput::keyed_state`] returns.
    pub sides: (SideState<L>, SideState<R>),
}

/// What became of a record offered to a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Kept: set a timer for its key at this time (when its window closes or its state
    /// expires).
    Kept(EventTime),
    /// Late: its window closed, or the watermark passed it; dropped.
    Late,
}

impl<L, R> WindowJoin<L, R>
where
    L: Serialize + DeserializeOwned + Clone,
    R: Serialize + DeserializeOwned + Clone,
{
    /// A join over tumbling windows of `size_ms` (positive).
    pub fn new(size_ms: EventTime, ring: RingConfig) -> OpResult<Self> {
        if size_ms <= 0 {
            return Err(OpError(format!("size_ms must be positive (got {size_ms})")));
        }
        Ok(WindowJoin {
            size: size_ms,
            sides: (KeyedState::new(ring), KeyedState::new(ring)),
        })
    }

    /// The window length (ms).
    pub fn size(&self) -> EventTime {
        self.size
    }

    /// The start of the window holding `time`.
    pub fn window_start(&self, time: EventTime) -> EventTime {
        time.div_euclid(self.size) * self.size
    }

    /// The time its window closes at: the last instant it covers.
    fn close_time(&self, start: EventTime) -> EventTime {
        start.saturating_add(self.size - 1)
    }

    /// Offers a left record of `key` at `time`, the watermark being `watermark`.
    pub fn left(&mut self, key: &str, time: EventTime, value: L, watermark: EventTime) -> Admit {
        let start = self.window_start(time);
        let close = self.close_time(start);
        if close <= watermark {
            return Admit::Late;
        }
        self.sides
            .0
            .entry_or_insert_with(key, BTreeMap::new)
            .entry(start)
            .or_default()
            .push(value);
        Admit::Kept(close)
    }

    /// Offers a right record (see [`WindowJoin::left`]).
    pub fn right(&mut self, key: &str, time: EventTime, value: R, watermark: EventTime) -> Admit {
        let start = self.window_start(time);
        let close = self.close_time(start);
        if close <= watermark {
            return Admit::Late;
        }
        self.sides
            .1
            .entry_or_insert_with(key, BTreeMap::new)
            .entry(start)
            .or_default()
            .push(value);
        Admit::Kept(close)
    }

    /// Closes the windows of `key` that end at or before `watermark`: calls `emit` with
    /// the window start and both sides' records of each (in arrival order, for a window
    /// with records on both sides only) and forgets them.
    pub fn close(
        &mut self,
        key: &str,
        watermark: EventTime,
        mut emit: impl FnMut(EventTime, &[L], &[R]),
    ) {
        let last_start = watermark.saturating_sub(self.size - 1);
        let lefts = take_until(&mut self.sides.0, key, last_start);
        let mut rights = take_until(&mut self.sides.1, key, last_start);
        for (start, ls) in lefts {
            if let Some(rs) = rights.remove(&start) {
                emit(start, &ls, &rs);
            }
        }
    }

    /// Keys with open windows (both sides).
    pub fn len(&self) -> usize {
        self.sides.0.len() + self.sides.1.len()
    }

    /// True when no window is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes and returns the windows of `key` starting at or before `last_start`.
fn take_until<T>(
    side: &mut KeyedState<BTreeMap<EventTime, Vec<T>>>,
    key: &str,
    last_start: EventTime,
) -> BTreeMap<EventTime, Vec<T>> {
    let Some(windows) = side.get_mut(key) else {
        return BTreeMap::new();
    };
    let later = match last_start.checked_add(1) {
        Some(next) => windows.split_off(&next),
        None => BTreeMap::new(),
    };
    let closed = std::mem::replace(windows, later);
    if windows.is_empty() {
        side.remove(key);
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_out_when_the_window_closes_and_late_records_are_refused() {
        let mut j: WindowJoin<u32, u32> = WindowJoin::new(10, RingConfig::default()).unwrap();
        assert_eq!(j.left("k", 3, 1, i64::MIN), Admit::Kept(9));
        assert_eq!(j.right("k", 9, 2, i64::MIN), Admit::Kept(9));
        assert_eq!(j.right("k", 10, 3, i64::MIN), Admit::Kept(19));
        assert_eq!(j.right("x", 4, 4, i64::MIN), Admit::Kept(9));
        let mut out = Vec::new();
        j.close("k", 8, |s, l, r| out.push((s, l.to_vec(), r.to_vec())));
        assert!(out.is_empty(), "window [0, 10) is still open at 8");
        j.close("k", 9, |s, l, r| out.push((s, l.to_vec(), r.to_vec())));
        assert_eq!(out, vec![(0, vec![1], vec![2])]);
        assert_eq!(j.left("k", 5, 9, 9), Admit::Late);
        assert_eq!(j.left("k", -1, 9, i64::MIN), Admit::Kept(-1));
        assert_eq!(j.window_start(-1), -10);
        assert!(WindowJoin::<u8, u8>::new(0, RingConfig::default()).is_err());
    }
}
