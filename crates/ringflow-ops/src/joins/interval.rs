//! The interval join, sans-IO: a left record at `tl` and a right record at `tr` of the
//! same key match when `tl + lower <= tr <= tl + upper` (both bounds inclusive, as in
//! Flink's interval join). A pair is produced as soon as its second record arrives. A
//! left record is kept until the watermark reaches `tl + upper`, a right one until it
//! reaches `tr - lower`: after that no record still to come can match it. A record at or
//! behind the watermark is late and refused (its partners may be gone already).

use ringflow_ring::RingConfig;
use ringflow_stream::data::EventTime;
use ringflow_stream::state::KeyedState;
use ringflow_stream::{OpError, OpResult};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use super::window::Admit;

/// Records of one side of one key, with their times.
pub type SideState<T> = KeyedState<Vec<(EventTime, T)>>;

/// The state of an interval join: one keyed state per side.
pub struct IntervalJoin<L, R> {
    lower: EventTime,
    upper: EventTime,
    /// `(left, right)`: what [`ringflow_stream::TwoInput::keyed_state`] returns.
    pub sides: (SideState<L>, SideState<R>),
}

impl<L, R> IntervalJoin<L, R>
where
    L: Serialize + DeserializeOwned + Clone,
    R: Serialize + DeserializeOwned + Clone,
{
    /// A join of right records within `[tl + lower, tl + upper]` of each left record.
    pub fn new(lower: EventTime, upper: EventTime, ring: RingConfig) -> OpResult<Self> {
        if lower > upper {
            return Err(OpError(format!(
                "lower_ms ({lower}) must not be above upper_ms ({upper})"
            )));
        }
        Ok(IntervalJoin {
            lower,
            upper,
            sides: (KeyedState::new(ring), KeyedState::new(ring)),
        })
    }

    fn matches(&self, tl: EventTime, tr: EventTime) -> bool {
        tl.saturating_add(self.lower) <= tr && tr <= tl.saturating_add(self.upper)
    }

    /// Offers a left record; `emit` gets each right record it matches now.
    pub fn left(
        &mut self,
        key: &str,
        time: EventTime,
        value: L,
        watermark: EventTime,
        mut emit: impl FnMut(&L, &R),
    ) -> Admit {
        if time <= watermark {
            return Admit::Late;
        }
        if let Some(rights) = self.sides.1.get(key) {
            for (tr, r) in rights {
                if self.matches(time, *tr) {
                    emit(&value, r);
                }
            }
        }
        let expires = time.saturating_add(self.upper);
        self.sides
            .0
            .entry_or_insert_with(key, Vec::new)
            .push((time, value));
        Admit::Kept(expires)
    }

    /// Offers a right record; `emit` gets each left record it matches now.
    pub fn right(
        &mut self,
        key: &str,
        time: EventTime,
        value: R,
        watermark: EventTime,
        mut emit: impl FnMut(&L, &R),
    ) -> Admit {
        if time <= watermark {
            return Admit::Late;
        }
        if let Some(lefts) = self.sides.0.get(key) {
            for (tl, l) in lefts {
                if self.matches(*tl, time) {
                    emit(l, &value);
                }
            }
        }
        let expires = time.saturating_sub(self.lower);
        self.sides
            .1
            .entry_or_insert_with(key, Vec::new)
            .push((time, value));
        Admit::Kept(expires)
    }

    /// Forgets the records of `key` no record after `watermark` can match.
    pub fn expire(&mut self, key: &str, watermark: EventTime) {
        let (lower, upper) = (self.lower, self.upper);
        if let Some(lefts) = self.sides.0.get_mut(key) {
            lefts.retain(|(tl, _)| tl.saturating_add(upper) > watermark);
            if lefts.is_empty() {
                self.sides.0.remove(key);
            }
        }
        if let Some(rights) = self.sides.1.get_mut(key) {
            rights.retain(|(tr, _)| tr.saturating_sub(lower) > watermark);
            if rights.is_empty() {
                self.sides.1.remove(key);
            }
        }
    }

    /// Records kept (both sides).
    pub fn len(&self) -> usize {
        self.sides.0.iter().map(|(_, v)| v.len()).sum::<usize>()
            + self.sides.1.iter().map(|(_, v)| v.len()).sum::<usize>()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.sides.0.is_empty() && self.sides.1.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_within_the_bounds_match_either_way_round_and_expire() {
        let mut j: IntervalJoin<u32, u32> =
            IntervalJoin::new(-2, 5, RingConfig::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            j.left("k", 10, 1, 0, |l, r| out.push((*l, *r))),
            Admit::Kept(15)
        );
        j.right("k", 8, 2, 0, |l, r| out.push((*l, *r)));
        j.right("k", 15, 3, 0, |l, r| out.push((*l, *r)));
        j.right("k", 16, 4, 0, |l, r| out.push((*l, *r)));
        j.right("k", 7, 5, 0, |l, r| out.push((*l, *r)));
        assert_eq!(out, vec![(1, 2), (1, 3)]);
        // A later left at 11 matches rights in [9, 16].
        out.clear();
        j.left("k", 11, 6, 0, |l, r| out.push((*l, *r)));
        assert_eq!(out, vec![(6, 3), (6, 4)]);
        j.expire("k", 15);
        // The left at 10 is gone (10 + 5 <= 15); the one at 11 stays.
        assert_eq!(j.sides.0.get("k").map(Vec::len), Some(1));
        assert_eq!(j.left("k", 15, 7, 15, |_, _| unreachable!()), Admit::Late);
        j.expire("k", i64::MAX);
        assert!(j.is_empty());
        assert!(IntervalJoin::<u8, u8>::new(3, 2, RingConfig::default()).is_err());
    }
}
