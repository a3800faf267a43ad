//! [`LoserTree`]: a tournament tree for k-way merges.

use std::cmp::Ordering;

/// A loser tree (tournament tree) over `k` sorted sources, numbered `0..k`.
///
/// The tree holds only source indices; the caller owns the sources and passes a
/// comparator of their current heads to every call, with an exhausted source
/// comparing greater than any source that still has a head (and equal to another
/// exhausted one). [`LoserTree::winner`] is the source with the smallest head; once
/// the caller has advanced that source (or found it exhausted), [`LoserTree::replay`]
/// restores the tree with about log2(k) comparisons. Equal heads are won by the lower
/// source index, so a merge is stable.
///
/// Leaves sit at positions `k..2k` of an implicit heap, internal nodes `1..k` hold the
/// loser of their match; this works for any `k`, including 1 (no matches) and 0 (no
/// winner).
#[derive(Clone, Debug)]
pub struct LoserTree {
    k: usize,
    losers: Vec<usize>,
    winner: usize,
}

impl LoserTree {
    /// Builds the tree over `k` sources whose heads `cmp(a, b)` compares.
    pub fn new(k: usize, mut cmp: impl FnMut(usize, usize) -> Ordering) -> Self {
        let mut tree = LoserTree {
            k,
            losers: vec![0; k.max(1)],
            winner: 0,
        };
        if k > 0 {
            tree.winner = tree.build(1, &mut cmp);
        }
        tree
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.k
    }

    /// True for a tree over no source.
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }

    /// The source with the smallest head (`None` when there is no source). The caller
    /// checks whether it is exhausted: then every source is.
    pub fn winner(&self) -> Option<usize> {
        (self.k > 0).then_some(self.winner)
    }

    /// After the winner's head changed (it was advanced or ran dry), replays its path to
    /// the root and finds the new winner.
    pub fn replay(&mut self, mut cmp: impl FnMut(usize, usize) -> Ordering) {
        if self.k == 0 {
            return;
        }
        let mut w = self.winner;
        let mut node = (w + self.k) / 2;
        while node >= 1 {
            let other = self.losers[node];
            if beats(other, w, &mut cmp) {
                self.losers[node] = w;
                w = other;
            }
            node /= 2;
        }
        self.winner = w;
    }

    /// Plays the matches of the subtree at `node`; returns its winner.
    fn build(&mut self, node: usize, cmp: &mut impl FnMut(usize, usize) -> Ordering) -> usize {
        if node >= self.k {
            return node - self.k;
        }
        let left = self.build(2 * node, cmp);
        let right = self.build(2 * node + 1, cmp);
        if beats(right, left, cmp) {
            self.losers[node] = left;
            right
        } else {
            self.losers[node] = right;
            left
        }
    }
}

/// True when source `a` wins against `b`: a smaller head, or an equal one and a lower
/// index.
fn beats(a: usize, b: usize, cmp: &mut impl FnMut(usize, usize) -> Ordering) -> bool {
    match cmp(a, b) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => a < b,
    }
}

/// Merges sorted vectors with a [`LoserTree`] (a reference use of the tree; stable).
pub fn merge_sorted<T: Ord>(sources: Vec<Vec<T>>) -> Vec<T> {
    let total = sources.iter().map(Vec::len).sum();
    let mut iters: Vec<std::vec::IntoIter<T>> = sources.into_iter().map(Vec::into_iter).collect();
    let cmp = |iters: &[std::vec::IntoIter<T>], a: usize, b: usize| match (
        iters[a].as_slice().first(),
        iters[b].as_slice().first(),
    ) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let mut out = Vec::with_capacity(total);
    let mut tree = LoserTree::new(iters.len(), |a, b| cmp(&iters, a, b));
    while let Some(w) = tree.winner() {
        match iters[w].next() {
            Some(x) => out.push(x),
            None => break,
        }
        tree.replay(|a, b| cmp(&iters, a, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_cases() {
        assert_eq!(merge_sorted::<u8>(vec![]), Vec::<u8>::new());
        assert_eq!(merge_sorted(vec![vec![1, 2, 3]]), vec![1, 2, 3]);
        assert_eq!(merge_sorted::<u8>(vec![vec![], vec![]]), Vec::<u8>::new());
        assert_eq!(
            merge_sorted(vec![vec![1, 4], vec![], vec![2, 3, 5], vec![0]]),
            vec![0, 1, 2, 3, 4, 5]
        );
        let t = LoserTree::new(0, |_, _| Ordering::Equal);
        assert!(t.is_empty());
        assert_eq!(t.winner(), None);
    }

    #[test]
    fn ties_go_to_the_lower_source() {
        // (value, source): equal values must come out in source order.
        let sources: Vec<Vec<(u8, usize)>> = (0..5).map(|s| vec![(1, s), (1, s), (2, s)]).collect();
        let mut heads = vec![0usize; 5];
        let cmp = |heads: &[usize], a: usize, b: usize| {
            let x = sources[a].get(heads[a]).map(|v| v.0);
            let y = sources[b].get(heads[b]).map(|v| v.0);
            match (x, y) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        };
        let mut tree = LoserTree::new(5, |a, b| cmp(&heads, a, b));
        let mut out = Vec::new();
        while let Some(w) = tree.winner() {
            let Some(&v) = sources[w].get(heads[w]) else {
                break;
            };
            out.push(v);
            heads[w] += 1;
            tree.replay(|a, b| cmp(&heads, a, b));
        }
        // A stable merge: equal values leave in source order, which is the order of
        // the (value, source) pairs.
        let mut expected: Vec<(u8, usize)> = sources.concat();
        expected.sort();
        assert_eq!(out, expected);
    }

    proptest! {
        #[test]
        fn merges_like_a_sort(mut sources in proptest::collection::vec(
            proptest::collection::vec(0u16..50, 0..40), 0..12))
        {
            for s in &mut sources {
                s.sort();
            }
            let mut expected: Vec<u16> = sources.concat();
            expected.sort();
            prop_assert_eq!(merge_sorted(sources), expected);
        }

        #[test]
        fn one_source_passes_through(mut v in proptest::collection::vec(any::<u32>(), 0..100)) {
            v.sort();
            prop_assert_eq!(merge_sorted(vec![v.clone()]), v);
        }
    }
}
