//! The planner: computes the next assignment from the previous one and the live workers.
//!
//! Phases (all deterministic, integer-only):
//! 1. **Quotas.** Replica slots `partitions * min(replication, workers)` are apportioned
//!    to workers in proportion to capacity by largest remainder (ties by worker id),
//!    capped at one slot per partition (water-filling the excess onto the others).
//! 2. **Keep.** Every previous placement on a live worker is kept (in previous rank order).
//! 3. **Fill.** A fresh cluster (nothing kept) is seeded by capacity-weighted rendezvous
//!    hashing of (partition, worker), so the layout is not striped and replica sets mix
//!    evenly. Otherwise each empty slot (a removed worker's, or a wider replication) goes
//!    to the most under-quota worker not already in that replica set (a max-heap).
//! 4. **Rebalance.** Each under-quota worker takes slots directly from over-quota members
//!    of partitions it is not in, scanning partitions in a worker-specific pseudo-random
//!    order; leftovers that no direct move can fix go along augmenting paths (BFS), which
//!    also settle the distinctness corner cases. Placements made in this plan (no data
//!    yet) are handed over first, then retained ones (non-primary before primary), so
//!    only over-quota excess and removed workers' slots move.
//! 5. **Primaries.** Primary quotas are apportioned the same way (capped by each worker's
//!    slot count). The previous primary is kept when still in the set and within quota;
//!    the rest go to the member with the largest deficit, then direct switches and
//!    augmenting paths within replica sets balance them. Primaries never move data.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::assignment::{Assignment, NO_OWNER};
use crate::rng::mix;
use crate::{RingConfig, RingError, WorkerId, WorkerSpec};

/// Seed for the per-worker hash that drives rendezvous scores and scan orders.
const WORKER_SEED: u64 = 0x7269_6e67_2d77_6b72; // "ring-wkr"

/// Upper bound on augmenting-path searches per phase (each fixes one unit of imbalance).
const MAX_AUGMENTATIONS: usize = 1 << 16;

const NONE: u32 = NO_OWNER;

/// Compute the next assignment.
///
/// `previous` may be `None` (fresh cluster) or the current table (possibly holding workers
/// no longer in `workers`: those are dead or left and lose everything). The result's epoch
/// is `previous.epoch + 1` if anything changed, else `previous.epoch` and the table is
/// identical to `previous`. Deterministic: the same inputs give the same output,
/// independent of the order of `workers`.
///
/// Errors: invalid `config`, an invalid `previous` table, a `previous` with another
/// partition count, duplicate or empty worker ids, zero capacities.
pub fn assign(
    previous: Option<&Assignment>,
    workers: &[WorkerSpec],
    config: RingConfig,
) -> Result<Assignment, RingError> {
    config.validate()?;
    if let Some(prev) = previous {
        prev.validate()?;
        if prev.config.partitions != config.partitions {
            return Err(RingError::PartitionCountMismatch {
                previous: prev.config.partitions,
                requested: config.partitions,
            });
        }
    }
    let mut specs: Vec<&WorkerSpec> = workers.iter().collect();
    specs.sort_by(|a, b| a.id.cmp(&b.id));
    for s in &specs {
        if s.id.0.is_empty() {
            return Err(RingError::EmptyWorkerId);
        }
        if s.capacity == 0 {
            return Err(RingError::ZeroCapacity(s.id.clone()));
        }
    }
    if let Some(w) = specs.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(RingError::DuplicateWorker(w[0].id.clone()));
    }
    if specs.len() >= NONE as usize {
        return Err(RingError::TooManyWorkers(specs.len()));
    }

    let base_epoch = previous.map_or(0, |a| a.epoch);
    let mut next = if specs.is_empty() {
        let mut a = Assignment::empty(config);
        a.epoch = base_epoch;
        a
    } else {
        Planner::new(previous, &specs, config).run(base_epoch)
    };

    let unchanged = match previous {
        Some(prev) => *prev == next,
        None => next == Assignment::empty(config),
    };
    if !unchanged {
        next.epoch = base_epoch.checked_add(1).ok_or(RingError::EpochOverflow)?;
    }
    Ok(next)
}

/// Rendezvous score of (partition, worker).
fn score(p: usize, worker_hash: u64) -> u64 {
    mix(worker_hash ^ (p as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Integer fixed-point log2, for platform-independent weighted rendezvous scores.
struct Log2 {
    /// `log2(1 + i / 4096)` in Q32 for `i` in `0..=4096`.
    table: Vec<u64>,
}

impl Log2 {
    const BITS: u32 = 12;

    fn new() -> Self {
        let size = 1u64 << Self::BITS;
        let table = (0..=size)
            .map(|i| {
                // Bit-by-bit log2 of y in [1, 2], y in Q62: square, and a result bit
                // is set whenever the square reaches 2.
                let one = 1u128 << 62;
                let mut y = (u128::from(size + i) << 62) / u128::from(size);
                if y >= 2 * one {
                    return 1u64 << 32;
                }
                let mut r = 0u64;
                for bit in (0..32).rev() {
                    y = (y * y) >> 62;
                    if y >= 2 * one {
                        y >>= 1;
                        r |= 1 << bit;
                    }
                }
                r
            })
            .collect();
        Log2 { table }
    }

    /// `-log2(u)` in Q32 for `u = (top 53 bits of h + 1) / 2^53` in `(0, 1]`: `< 54 * 2^32`.
    fn neg_log2_unit(&self, h: u64) -> u64 {
        let m = (h >> 11) + 1;
        let e = 63 - u64::from(m.leading_zeros());
        let t = m << (63 - e); // top bit set
        let idx = ((t >> (63 - Self::BITS)) & ((1 << Self::BITS) - 1)) as usize;
        let rest = (t >> (63 - Self::BITS - 20)) & ((1 << 20) - 1);
        let lo = self.table[idx];
        let hi = self.table[idx + 1];
        let frac = lo + (((hi - lo) * rest) >> 20);
        (53u64 << 32).saturating_sub((e << 32) + frac)
    }
}

/// Apportions `total` units in proportion to `caps` by largest remainder (ties to the
/// lower index), with `q[i] <= bounds[i]`: workers over their bound are clamped and the
/// rest is re-apportioned among the others. Requires `total <= sum(bounds)` for an exact
/// split; otherwise hands out as much as the bounds allow.
fn apportion(total: u64, caps: &[u64], bounds: &[u64]) -> Vec<i64> {
    let n = caps.len();
    let mut q = vec![0u64; n];
    let mut active: Vec<usize> = (0..n).filter(|&i| bounds[i] > 0 && caps[i] > 0).collect();
    let mut remaining = total;
    while !active.is_empty() && remaining > 0 {
        let sum: u128 = active.iter().map(|&i| u128::from(caps[i])).sum();
        let mut assigned = 0u64;
        let mut rems: Vec<(u128, usize)> = Vec::with_capacity(active.len());
        for &i in &active {
            let num = u128::from(remaining) * u128::from(caps[i]);
            // num / sum <= remaining, which fits in u64.
            q[i] = u64::try_from(num / sum).unwrap_or(u64::MAX);
            assigned += q[i];
            rems.push((num % sum, i));
        }
        let mut left = remaining.saturating_sub(assigned);
        rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, i) in &rems {
            if left == 0 {
                break;
            }
            q[i] += 1;
            left -= 1;
        }
        let over: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| q[i] > bounds[i])
            .collect();
        if over.is_empty() {
            break;
        }
        for &i in &over {
            q[i] = bounds[i];
            remaining = remaining.saturating_sub(bounds[i]);
        }
        active.retain(|i| !over.contains(i));
        for &i in &active {
            q[i] = 0;
        }
    }
    q.into_iter()
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
        .collect()
}

struct Planner<'a> {
    config: RingConfig,
    specs: &'a [&'a WorkerSpec],
    /// Partitions.
    np: usize,
    /// Effective replica-set width: min(replication, workers).
    k: usize,
    /// Workers (sorted by id; indexes below are into this order).
    n: usize,
    hashes: Vec<u64>,
    /// `np x k` worker indexes, `NONE` = empty.
    slots: Vec<u32>,
    /// Whether the placement in a slot is new in this plan (holds no data yet).
    fresh: Vec<bool>,
    count: Vec<i64>,
    quota: Vec<i64>,
    /// Previous primary of each partition if it is still alive, else `NONE`.
    prev_primary: Vec<u32>,
    retained: usize,
}

impl<'a> Planner<'a> {
    fn new(previous: Option<&Assignment>, specs: &'a [&'a WorkerSpec], config: RingConfig) -> Self {
        let np = config.partitions as usize;
        let n = specs.len();
        let k = config.replication.min(n);
        let hashes = specs
            .iter()
            .map(|s| xxhash_rust::xxh3::xxh3_64_with_seed(s.id.0.as_bytes(), WORKER_SEED))
            .collect();
        let mut planner = Planner {
            config,
            specs,
            np,
            k,
            n,
            hashes,
            slots: vec![NONE; np * k],
            fresh: vec![false; np * k],
            count: vec![0; n],
            quota: Vec::new(),
            prev_primary: vec![NONE; np],
            retained: 0,
        };
        if let Some(prev) = previous {
            planner.keep(prev);
        }
        let caps: Vec<u64> = specs.iter().map(|s| u64::from(s.capacity)).collect();
        let bounds = vec![np as u64; n];
        planner.quota = apportion((np * k) as u64, &caps, &bounds);
        planner
    }

    fn row(&self, p: usize) -> &[u32] {
        &self.slots[p * self.k..(p + 1) * self.k]
    }

    fn in_row(&self, p: usize, w: u32) -> bool {
        self.row(p).contains(&w)
    }

    /// Phase 2: keep previous placements of live workers, in previous rank order.
    fn keep(&mut self, prev: &Assignment) {
        // Map previous worker indexes to ours (both lists are sorted).
        let mut map = vec![NONE; prev.workers().len()];
        let (mut i, mut j) = (0, 0);
        while i < prev.workers().len() && j < self.n {
            match prev.workers()[i].cmp(&self.specs[j].id) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    map[i] = j as u32;
                    i += 1;
                    j += 1;
                }
            }
        }
        for p in 0..self.np {
            let prev_row = prev.row(crate::PartitionId(p as u32));
            let mut filled = 0;
            for (rank, &ix) in prev_row.iter().take_while(|&&ix| ix != NONE).enumerate() {
                let Some(&w) = map.get(ix as usize) else {
                    continue;
                };
                if w == NONE {
                    continue;
                }
                if rank == 0 {
                    self.prev_primary[p] = w;
                }
                if filled < self.k {
                    self.slots[p * self.k + filled] = w;
                    self.count[w as usize] += 1;
                    self.retained += 1;
                    filled += 1;
                }
            }
        }
    }

    fn run(mut self, epoch: u64) -> Assignment {
        if self.retained == 0 {
            self.seed_rendezvous();
        } else {
            self.fill_holes();
        }
        // Placements made in this plan hold no data yet: hand those over first.
        self.rebalance_direct(true);
        self.rebalance_paths(true);
        self.rebalance_direct(false);
        self.rebalance_paths(false);
        let primary = self.choose_primaries();
        self.finish(epoch, &primary)
    }

    /// Phase 3 (fresh cluster): top-k weighted rendezvous hashing per partition.
    ///
    /// Worker `w` scores `-ln(u) / capacity` for a uniform `u` drawn from the hash of
    /// (partition, w); the `k` lowest scores win, so a partition's first replica lands
    /// on a worker with probability proportional to capacity. Integer-only (fixed-point
    /// log2), so identical on every platform. With equal capacities the order is simply
    /// by hash.
    fn seed_rendezvous(&mut self) {
        let k = self.k;
        let weighted = self
            .specs
            .windows(2)
            .any(|w| w[0].capacity != w[1].capacity);
        let log2 = weighted.then(Log2::new);
        // 2^40 / capacity, so that `cost * inv >> 32` fits a u64 (cost < 2^38).
        let inv: Vec<u64> = self
            .specs
            .iter()
            .map(|s| (1u64 << 40) / u64::from(s.capacity.max(1)))
            .collect();
        let mut top: Vec<(u64, u32)> = Vec::with_capacity(k + 1);
        for p in 0..self.np {
            top.clear();
            for (w, &h) in self.hashes.iter().enumerate() {
                let s = score(p, h);
                // Higher key wins.
                let key = match &log2 {
                    None => s,
                    Some(log2) => {
                        let cost = (u128::from(log2.neg_log2_unit(s)) * u128::from(inv[w])) >> 32;
                        u64::MAX - u64::try_from(cost).unwrap_or(u64::MAX)
                    }
                };
                if top.len() == k {
                    if top[k - 1].0 >= key {
                        continue;
                    }
                    top.pop();
                }
                let pos = top.iter().position(|&(t, _)| t < key).unwrap_or(top.len());
                top.insert(pos, (key, w as u32));
            }
            for (j, &(_, w)) in top.iter().enumerate() {
                self.slots[p * k + j] = w;
                self.fresh[p * k + j] = true;
                self.count[w as usize] += 1;
            }
        }
    }

    /// Phase 3: each empty slot to the most under-quota worker not in the set.
    fn fill_holes(&mut self) {
        let k = self.k;
        let mut heap: BinaryHeap<(i64, Reverse<u32>)> = (0..self.n)
            .map(|w| (self.quota[w] - self.count[w], Reverse(w as u32)))
            .collect();
        let mut aside = Vec::with_capacity(k);
        for p in 0..self.np {
            for j in 0..k {
                if self.slots[p * k + j] != NONE {
                    continue;
                }
                while let Some((d, Reverse(w))) = heap.pop() {
                    if self.in_row(p, w) {
                        aside.push((d, Reverse(w)));
                        continue;
                    }
                    self.slots[p * k + j] = w;
                    self.fresh[p * k + j] = true;
                    self.count[w as usize] += 1;
                    heap.push((d - 1, Reverse(w)));
                    break;
                }
                heap.extend(aside.drain(..));
            }
        }
    }

    fn total_excess(&self) -> i64 {
        self.count
            .iter()
            .zip(&self.quota)
            .map(|(c, q)| (c - q).max(0))
            .sum()
    }

    /// Phase 4: under-quota workers take slots from over-quota members directly
    /// (only from placements made in this plan when `only_fresh`).
    fn rebalance_direct(&mut self, only_fresh: bool) {
        let k = self.k;
        let mask = self.np - 1;
        let mut excess = self.total_excess();
        for u in 0..self.n {
            if excess == 0 {
                break;
            }
            if self.count[u] >= self.quota[u] {
                continue;
            }
            let h = mix(self.hashes[u]);
            let start = h as usize & mask;
            let stride = ((h >> 32) as usize & mask) | 1;
            for i in 0..self.np {
                // Odd stride over a power of two: a permutation of the partitions.
                let p = start.wrapping_add(i.wrapping_mul(stride)) & mask;
                if self.in_row(p, u as u32) {
                    continue;
                }
                // Best donor: a placement made in this plan, then a non-primary slot,
                // then the most over-quota worker.
                let mut best: Option<((bool, bool, i64), usize)> = None;
                for j in 0..k {
                    let o = self.slots[p * k + j];
                    if o == NONE {
                        continue;
                    }
                    let over = self.count[o as usize] - self.quota[o as usize];
                    if over <= 0 || (only_fresh && !self.fresh[p * k + j]) {
                        continue;
                    }
                    let key = (self.fresh[p * k + j], o != self.prev_primary[p], over);
                    if best.is_none_or(|(b, _)| key > b) {
                        best = Some((key, j));
                    }
                }
                if let Some((_, j)) = best {
                    let o = self.slots[p * k + j] as usize;
                    self.slots[p * k + j] = u as u32;
                    self.fresh[p * k + j] = true;
                    self.count[o] -= 1;
                    self.count[u] += 1;
                    excess -= 1;
                    if self.count[u] >= self.quota[u] || excess == 0 {
                        break;
                    }
                }
            }
        }
    }

    /// Phase 4, corner cases: move one slot along a path of workers
    /// `over -> ... -> under`, where each step hands a partition's slot from a worker
    /// in it to a worker not in it; intermediate workers keep their counts. With
    /// `only_fresh`, only placements made in this plan are handed on (no data moves).
    fn rebalance_paths(&mut self, only_fresh: bool) {
        let k = self.k;
        for _ in 0..MAX_AUGMENTATIONS {
            if self.total_excess() == 0 {
                return;
            }
            let mut members: Vec<Vec<u32>> = vec![Vec::new(); self.n];
            for p in 0..self.np {
                for (j, &w) in self.row(p).iter().enumerate() {
                    if w != NONE && (!only_fresh || self.fresh[p * k + j]) {
                        members[w as usize].push(p as u32);
                    }
                }
            }
            let mut parent: Vec<Option<(u32, u32)>> = vec![None; self.n];
            let mut visited = vec![false; self.n];
            let mut queue = VecDeque::new();
            for (w, seen) in visited.iter_mut().enumerate() {
                if self.count[w] > self.quota[w] {
                    *seen = true;
                    queue.push_back(w as u32);
                }
            }
            let mut unvisited: Vec<u32> = (0..self.n as u32)
                .filter(|&w| !visited[w as usize])
                .collect();
            let mut target = None;
            'bfs: while let Some(x) = queue.pop_front() {
                for &p in &members[x as usize] {
                    if unvisited.is_empty() {
                        break 'bfs;
                    }
                    let mut i = 0;
                    while i < unvisited.len() {
                        let y = unvisited[i];
                        if self.in_row(p as usize, y) {
                            i += 1;
                            continue;
                        }
                        unvisited.swap_remove(i);
                        visited[y as usize] = true;
                        parent[y as usize] = Some((x, p));
                        if self.count[y as usize] < self.quota[y as usize] {
                            target = Some(y);
                            break 'bfs;
                        }
                        queue.push_back(y);
                    }
                }
            }
            let Some(target) = target else {
                return;
            };
            // Path from target back to its over-quota root.
            let mut steps = Vec::new();
            let mut y = target;
            while let Some((x, p)) = parent[y as usize] {
                steps.push((x, y, p as usize));
                y = x;
            }
            let root = y;
            // Apply, checking each step against the current state (a partition may
            // repeat along the path); undo everything if one step became invalid.
            let mut applied: Vec<(usize, u32, bool)> = Vec::new();
            let mut ok = true;
            for &(x, y, p) in steps.iter().rev() {
                let pos = self.row(p).iter().position(|&w| w == x);
                match pos {
                    Some(j) if !self.in_row(p, y) => {
                        applied.push((p * k + j, x, self.fresh[p * k + j]));
                        self.slots[p * k + j] = y;
                        self.fresh[p * k + j] = true;
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                for (slot, x, fresh) in applied.into_iter().rev() {
                    self.slots[slot] = x;
                    self.fresh[slot] = fresh;
                }
                return;
            }
            self.count[root as usize] -= 1;
            self.count[target as usize] += 1;
        }
    }

    /// Phase 5: one primary per partition, balanced to capacity-proportional quotas.
    fn choose_primaries(&self) -> Vec<u32> {
        let (np, n) = (self.np, self.n);
        let caps: Vec<u64> = self.specs.iter().map(|s| u64::from(s.capacity)).collect();
        let bounds: Vec<u64> = self.count.iter().map(|&c| c.max(0) as u64).collect();
        let pq = apportion(np as u64, &caps, &bounds);
        let mut primary = vec![NONE; np];
        let mut pcount = vec![0i64; n];

        // Keep the previous primary while within quota.
        for (p, lead) in primary.iter_mut().enumerate() {
            let w = self.prev_primary[p];
            if w != NONE && self.in_row(p, w) && pcount[w as usize] < pq[w as usize] {
                *lead = w;
                pcount[w as usize] += 1;
            }
        }
        // The rest: the member with the largest deficit (ties: earlier slot).
        for (p, lead) in primary.iter_mut().enumerate() {
            if *lead != NONE {
                continue;
            }
            let mut best: Option<(i64, u32)> = None;
            for &w in self.row(p) {
                if w == NONE {
                    continue;
                }
                let d = pq[w as usize] - pcount[w as usize];
                if best.is_none_or(|(bd, _)| d > bd) {
                    best = Some((d, w));
                }
            }
            if let Some((_, w)) = best {
                *lead = w;
                pcount[w as usize] += 1;
            }
        }

        let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
        for p in 0..np {
            for &w in self.row(p) {
                if w != NONE {
                    members[w as usize].push(p as u32);
                }
            }
        }
        let excess =
            |pcount: &[i64]| -> i64 { pcount.iter().zip(&pq).map(|(c, q)| (c - q).max(0)).sum() };

        // Direct switches within replica sets.
        let mut left = excess(&pcount);
        for u in 0..n {
            if left == 0 {
                break;
            }
            for &p in &members[u] {
                if pcount[u] >= pq[u] {
                    break;
                }
                let o = primary[p as usize];
                if o != NONE && o != u as u32 && pcount[o as usize] > pq[o as usize] {
                    primary[p as usize] = u as u32;
                    pcount[o as usize] -= 1;
                    pcount[u] += 1;
                    left -= 1;
                }
            }
        }

        // Augmenting paths: over -> (partition it leads, member of that set) -> ... -> under.
        for _ in 0..MAX_AUGMENTATIONS {
            if excess(&pcount) == 0 {
                break;
            }
            let mut led: Vec<Vec<u32>> = vec![Vec::new(); n];
            for (p, &w) in primary.iter().enumerate() {
                if w != NONE {
                    led[w as usize].push(p as u32);
                }
            }
            let mut parent: Vec<Option<(u32, u32)>> = vec![None; n];
            let mut visited = vec![false; n];
            let mut queue = VecDeque::new();
            for w in 0..n {
                if pcount[w] > pq[w] {
                    visited[w] = true;
                    queue.push_back(w as u32);
                }
            }
            let mut target = None;
            'bfs: while let Some(x) = queue.pop_front() {
                for &p in &led[x as usize] {
                    for &y in self.row(p as usize) {
                        if y == NONE || visited[y as usize] {
                            continue;
                        }
                        visited[y as usize] = true;
                        parent[y as usize] = Some((x, p));
                        if pcount[y as usize] < pq[y as usize] {
                            target = Some(y);
                            break 'bfs;
                        }
                        queue.push_back(y);
                    }
                }
            }
            let Some(target) = target else {
                break;
            };
            // Each step's partition is led by a distinct worker, so the steps are independent.
            let mut y = target;
            while let Some((x, p)) = parent[y as usize] {
                primary[p as usize] = y;
                y = x;
            }
            pcount[y as usize] -= 1;
            pcount[target as usize] += 1;
        }
        primary
    }

    /// Builds the compact table: primary first, then the other members in slot order.
    fn finish(&self, epoch: u64, primary: &[u32]) -> Assignment {
        let width = self.config.replication;
        let mut compact = vec![NONE; self.n];
        let mut workers: Vec<WorkerId> = Vec::new();
        for (w, slot) in compact.iter_mut().enumerate() {
            if self.count[w] > 0 {
                *slot = workers.len() as u32;
                workers.push(self.specs[w].id.clone());
            }
        }
        let mut owners = vec![NONE; self.np * width];
        for p in 0..self.np {
            let out = &mut owners[p * width..(p + 1) * width];
            let mut j = 0;
            let lead = primary[p];
            if lead != NONE {
                out[j] = compact[lead as usize];
                j += 1;
            }
            for &w in self.row(p) {
                if w != NONE && w != lead {
                    out[j] = compact[w as usize];
                    j += 1;
                }
            }
        }
        Assignment::from_parts_unchecked(epoch, self.config, workers, owners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{diff, moved_fraction, PartitionId};

    fn specs(n: usize) -> Vec<WorkerSpec> {
        (0..n)
            .map(|i| WorkerSpec::new(format!("w{i:04}"), 1))
            .collect()
    }

    #[test]
    fn fixed_point_log2() {
        let l = Log2::new();
        assert_eq!(l.table[0], 0);
        assert_eq!(l.table[4096], 1 << 32);
        assert_eq!(l.table[2048], 0x95c0_1a39); // log2(1.5) = 0.58496250072...
        for h in [
            0u64,
            1 << 40,
            u64::MAX / 3,
            u64::MAX >> 1,
            u64::MAX - (1 << 11),
        ] {
            let m = ((h >> 11) + 1) as f64;
            let exact = -(m / 2f64.powi(53)).log2();
            let got = l.neg_log2_unit(h) as f64 / 2f64.powi(32);
            assert!((exact - got).abs() < 1e-6, "{h}: {exact} vs {got}");
        }
        assert_eq!(l.neg_log2_unit(u64::MAX), 0);
    }

    #[test]
    fn apportion_basics() {
        assert_eq!(apportion(10, &[1, 1, 1], &[10, 10, 10]), vec![4, 3, 3]);
        assert_eq!(apportion(7, &[1, 2, 4], &[10, 10, 10]), vec![1, 2, 4]);
        // Capped: the big one can hold at most 4, the rest is shared.
        assert_eq!(apportion(12, &[1, 1, 10], &[4, 4, 4]), vec![4, 4, 4]);
        assert_eq!(apportion(9, &[1, 1, 10], &[4, 4, 4]), vec![3, 2, 4]);
        assert_eq!(apportion(0, &[1], &[4]), vec![0]);
    }

    #[test]
    fn errors() {
        let c = RingConfig::new(64, 3).expect("config");
        let dup = vec![WorkerSpec::new("a", 1), WorkerSpec::new("a", 2)];
        assert_eq!(
            assign(None, &dup, c),
            Err(RingError::DuplicateWorker(WorkerId::from("a")))
        );
        assert_eq!(
            assign(None, &[WorkerSpec::new("a", 0)], c),
            Err(RingError::ZeroCapacity(WorkerId::from("a")))
        );
        assert_eq!(
            assign(None, &[WorkerSpec::new("", 1)], c),
            Err(RingError::EmptyWorkerId)
        );
        let a = assign(None, &specs(3), c).expect("plan");
        let other = RingConfig::new(128, 3).expect("config");
        assert!(matches!(
            assign(Some(&a), &specs(3), other),
            Err(RingError::PartitionCountMismatch { .. })
        ));
        let bad = RingConfig {
            partitions: 6,
            replication: 3,
        };
        assert_eq!(
            assign(None, &specs(3), bad),
            Err(RingError::InvalidPartitions(6))
        );
    }

    #[test]
    fn empty_and_epochs() {
        let c = RingConfig::new(64, 3).expect("config");
        let e = assign(None, &[], c).expect("plan");
        assert_eq!(e, Assignment::empty(c));
        let a = assign(None, &specs(5), c).expect("plan");
        assert_eq!(a.epoch(), 1);
        let same = assign(Some(&a), &specs(5), c).expect("plan");
        assert_eq!(same, a);
        let b = assign(Some(&a), &specs(6), c).expect("plan");
        assert_eq!(b.epoch(), 2);
        let gone = assign(Some(&b), &[], c).expect("plan");
        assert_eq!(gone.epoch(), 3);
        assert_eq!(gone.unowned().len(), 64);
    }

    #[test]
    fn small_clusters_fully_replicated() {
        let c = RingConfig::new(256, 3).expect("config");
        for n in 1..=5 {
            let a = assign(None, &specs(n), c).expect("plan");
            a.validate().expect("valid");
            assert!(a.unowned().is_empty());
            assert!(a.under_replicated(n.min(3)).is_empty());
        }
    }

    #[test]
    fn default_size_balance_and_join() {
        let c = RingConfig::default();
        let a = assign(None, &specs(10), c).expect("plan");
        let counts = a.counts();
        let total = 16384 * 3;
        for (slots, prim) in counts.values() {
            assert!(slots * 10 <= total + 10);
            assert!(prim * 10 <= 16384 + 10);
        }
        let b = assign(Some(&a), &specs(11), c).expect("plan");
        let f = moved_fraction(&a, &b);
        assert!(f <= 1.10 / 11.0, "moved {f}");
        // Only the new worker receives data.
        for m in diff(&a, &b) {
            assert_eq!(m.to, Some(WorkerId::from("w0010")));
        }
        assert!(b.primary(PartitionId(0)).is_some());
    }
}
