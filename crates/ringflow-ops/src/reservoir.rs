//! [`Reservoir`]: a bounded, uniform random sample of a stream of unknown length
//! (reservoir sampling, Vitter's algorithm R), deterministic for a given generator seed.

use ringflow_ring::rng::SplitMix64;

/// Keeps a uniform random sample of up to `max` of the items offered to it.
///
/// The first `max` items are kept; after that the `n`-th item offered (1-based) replaces
/// a kept one with probability `max / n`. Memory is bounded by `max`; the result
/// depends only on the items, their order and the generator's seed.
#[derive(Clone, Debug)]
pub struct Reservoir<T> {
    max: usize,
    rng: SplitMix64,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    /// An empty reservoir of at most `max` items, drawing from `rng`.
    pub fn new(max: usize, rng: SplitMix64) -> Self {
        Reservoir {
            max,
            rng,
            seen: 0,
            items: Vec::new(),
        }
    }

    /// Offers one item.
    pub fn offer(&mut self, item: T) {
        self.offer_with(|| item);
    }

    /// Offers one item, built by `make` only if it is kept.
    pub fn offer_with(&mut self, make: impl FnOnce() -> T) {
        if self.items.len() < self.max {
            self.items.push(make());
        } else {
            let j = self.rng.below(self.seen + 1) as usize;
            if j < self.max {
                self.items[j] = make();
            }
        }
        self.seen += 1;
    }

    /// How many items were offered.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The items kept so far, in no particular order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Takes the items kept so far, leaving the reservoir empty (the count of items
    /// seen stays).
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_below_max_then_stays_bounded() {
        let mut r = Reservoir::new(10, SplitMix64::new(1));
        (0..5).for_each(|i| r.offer(i));
        assert_eq!(r.items(), &[0, 1, 2, 3, 4]);
        (5..1000).for_each(|i| r.offer(i));
        assert_eq!(r.items().len(), 10);
        assert_eq!(r.seen(), 1000);
        let mut again = Reservoir::new(10, SplitMix64::new(1));
        (0..1000).for_each(|i| again.offer_with(|| i));
        assert_eq!(again.take(), r.items());
        assert!(again.items().is_empty());
        assert_eq!(again.seen(), 1000);
    }
}
