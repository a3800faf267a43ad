//! Property tests of the planner: validity, determinism, idempotence, minimal movement
//! on joins and leaves, and capacity-weighted shares.

use std::collections::BTreeSet;

use proptest::prelude::*;
use ringflow_ring::{assign, diff, Assignment, PartitionId, RingConfig, WorkerId, WorkerSpec};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn cluster() -> impl Strategy<Value = (RingConfig, Vec<WorkerSpec>)> {
    (
        prop::sample::select(vec![64u32, 256, 1024]),
        1usize..=4,
        prop::collection::vec(1u32..=4, 1..40),
    )
        .prop_map(|(partitions, replication, caps)| {
            let config = RingConfig::new(partitions, replication).expect("valid config");
            let specs = caps
                .into_iter()
                .enumerate()
                .map(|(i, c)| WorkerSpec::new(format!("w{i}"), c))
                .collect();
            (config, specs)
        })
}

/// Slots every worker should hold: `partitions * width * cap / sum(caps)` (no worker
/// may exceed one slot per partition; returns None when that cap binds).
fn exact_shares(total: usize, partitions: u32, specs: &[WorkerSpec]) -> Option<Vec<f64>> {
    let caps: f64 = specs.iter().map(|s| f64::from(s.capacity)).sum();
    let shares: Vec<f64> = specs
        .iter()
        .map(|s| total as f64 * f64::from(s.capacity) / caps)
        .collect();
    if shares.iter().any(|&x| x > f64::from(partitions)) {
        None
    } else {
        Some(shares)
    }
}

/// Whether every worker's share stays well below one slot per partition, so that the
/// planner has room to move only what it must.
fn roomy(specs: &[WorkerSpec], config: RingConfig) -> bool {
    let total = config.partitions as usize * config.replication.min(specs.len());
    exact_shares(total, config.partitions, specs)
        .is_some_and(|s| s.iter().all(|&x| x <= 0.8 * f64::from(config.partitions)))
}

fn check_table(a: &Assignment, specs: &[WorkerSpec], config: RingConfig) {
    a.validate().expect("valid table");
    let width = config.replication.min(specs.len());
    for p in (0..config.partitions).map(PartitionId) {
        let r = a.replicas(p);
        assert_eq!(r.len(), width, "partition {p} has {} replicas", r.len());
        let distinct: BTreeSet<_> = r.iter().collect();
        assert_eq!(distinct.len(), r.len());
        assert_eq!(a.primary(p), r.first().copied());
    }
    assert!(a.unowned().is_empty());
    assert!(a.under_replicated(width).is_empty());
    let known: BTreeSet<&WorkerId> = specs.iter().map(|s| &s.id).collect();
    assert!(a.workers().iter().all(|w| known.contains(w)));
}

fn check_shares(a: &Assignment, specs: &[WorkerSpec], config: RingConfig) {
    let counts = a.counts();
    let width = config.replication.min(specs.len());
    let total = config.partitions as usize * width;
    let get = |s: &WorkerSpec| counts.get(&s.id).copied().unwrap_or((0, 0));
    for s in specs {
        assert!(get(s).0 <= config.partitions as usize);
    }
    if let Some(shares) = exact_shares(total, config.partitions, specs) {
        for (s, exact) in specs.iter().zip(shares) {
            let c = get(s).0 as f64;
            assert!((c - exact).abs() < 1.0, "{}: {c} slots vs {exact}", s.id);
        }
    }
    if let Some(shares) = exact_shares(config.partitions as usize, config.partitions, specs) {
        for (s, exact) in specs.iter().zip(shares) {
            let c = get(s).1 as f64;
            // Primaries are chosen within replica sets, so exactness is best effort: with
            // a handful of partitions per worker, a group of workers can hold every
            // replica of more partitions than its primary quota, and one of them must lead.
            let tolerance = if exact >= 8.0 {
                1.0 + 0.02 * exact
            } else {
                2.0
            };
            assert!(
                (c - exact).abs() <= tolerance,
                "{}: {c} primaries vs {exact}",
                s.id
            );
        }
    }
}

proptest! {
    // Modest by default so debug runs take a few seconds; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn fresh_plans_are_valid_and_weighted((config, specs) in cluster()) {
        let a = assign(None, &specs, config).expect("plan");
        prop_assert_eq!(a.epoch(), 1);
        check_table(&a, &specs, config);
        check_shares(&a, &specs, config);
    }

    #[test]
    fn deterministic_under_shuffle((config, specs) in cluster(), seed in any::<u64>()) {
        let a = assign(None, &specs, config).expect("plan");
        let mut shuffled = specs.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let b = assign(None, &shuffled, config).expect("plan");
        prop_assert_eq!(&a, &b);
        let joined: Vec<WorkerSpec> =
            shuffled.iter().cloned().chain([WorkerSpec::new("new", 2)]).collect();
        let mut joined_rev = joined.clone();
        joined_rev.reverse();
        prop_assert_eq!(
            assign(Some(&a), &joined, config).expect("plan"),
            assign(Some(&b), &joined_rev, config).expect("plan")
        );
    }

    #[test]
    fn idempotent((config, specs) in cluster()) {
        let a = assign(None, &specs, config).expect("plan");
        let b = assign(Some(&a), &specs, config).expect("plan");
        prop_assert_eq!(&a, &b);
        // Also after a change.
        let fewer = &specs[..specs.len().div_ceil(2)];
        let c = assign(Some(&a), fewer, config).expect("plan");
        let d = assign(Some(&c), fewer, config).expect("plan");
        prop_assert_eq!(c.epoch(), d.epoch());
        prop_assert_eq!(c, d);
    }

    #[test]
    fn join_moves_about_the_ideal((config, specs) in cluster(), cap in 1u32..=4) {
        // Keep the replica-set width unchanged by the join.
        let replication = config.replication.min(specs.len());
        let config = RingConfig::new(config.partitions, replication).expect("config");
        let a = assign(None, &specs, config).expect("plan");
        let mut joined = specs.clone();
        joined.push(WorkerSpec::new("joiner", cap));
        let b = assign(Some(&a), &joined, config).expect("plan");
        // The joiner may be apportioned nothing (tiny share), then nothing changes.
        prop_assert!(b.epoch() == a.epoch() + 1 || b == a);
        check_table(&b, &joined, config);
        check_shares(&b, &joined, config);
        let total = config.partitions as usize * config.replication;
        // Ideal: the joiner's share; when the one-slot-per-partition cap binds, the
        // shares are re-apportioned, so use what the joiner actually holds.
        let ideal = match exact_shares(total, config.partitions, &joined) {
            Some(shares) => shares[shares.len() - 1],
            None => b.partitions_of(&WorkerId::from("joiner")).len() as f64,
        };
        let moves = diff(&a, &b);
        let slack = joined.len() as f64 + 2.0;
        prop_assert!(
            moves.len() as f64 <= ideal * 1.1 + slack,
            "moved {} vs ideal {ideal}", moves.len()
        );
        // Only the joiner receives data, up to rebalancing slack.
        let to_others = moves.iter().filter(|m| m.to != Some(WorkerId::from("joiner"))).count();
        prop_assert!(to_others as f64 <= slack, "{to_others} moves to old workers");
    }

    #[test]
    fn leave_moves_only_the_leavers_slots((config, specs) in cluster(), pick in any::<prop::sample::Index>()) {
        prop_assume!(specs.len() >= 2);
        let a = assign(None, &specs, config).expect("plan");
        let gone = pick.index(specs.len());
        let gone_id = specs[gone].id.clone();
        let held = a.partitions_of(&gone_id).len();
        let mut left = specs.clone();
        left.remove(gone);
        let b = assign(Some(&a), &left, config).expect("plan");
        check_table(&b, &left, config);
        check_shares(&b, &left, config);
        prop_assert!(b.partitions_of(&gone_id).is_empty());
        let moves = diff(&a, &b);
        let from_gone = moves.iter().filter(|m| m.from.as_ref() == Some(&gone_id)).count();
        prop_assert_eq!(from_gone, held);
        let slack = left.len() + 2;
        if roomy(&left, config) {
            prop_assert!(moves.len() <= held + slack, "moved {} vs held {held}", moves.len());
        } else {
            // A worker that must sit in (nearly) every partition forces extra moves.
            prop_assert!(moves.len() <= 2 * held + slack, "moved {} vs held {held}", moves.len());
        }
    }

    #[test]
    fn random_histories_stay_valid(
        (config, specs) in cluster(),
        ops in prop::collection::vec((0u8..4, any::<prop::sample::Index>(), 1u32..=4), 1..6),
    ) {
        let mut live = specs;
        let mut table = assign(None, &live, config).expect("plan");
        let mut next_id = 0;
        for (op, ix, cap) in ops {
            match op {
                0 => {
                    live.push(WorkerSpec::new(format!("j{next_id}"), cap));
                    next_id += 1;
                }
                1 if live.len() > 1 => {
                    live.remove(ix.index(live.len()));
                }
                2 => {
                    let i = ix.index(live.len());
                    live[i].capacity = cap;
                }
                _ => {
                    // Lose several workers at once.
                    let keep = live.len().div_ceil(2);
                    live.truncate(keep.max(1));
                }
            }
            let next = assign(Some(&table), &live, config).expect("plan");
            prop_assert!(next.epoch() >= table.epoch());
            check_table(&next, &live, config);
            check_shares(&next, &live, config);
            table = next;
        }
        // A replication change keeps the table valid too.
        let wider = RingConfig::new(config.partitions, config.replication % 4 + 1).expect("config");
        let resized = assign(Some(&table), &live, wider).expect("plan");
        check_table(&resized, &live, wider);
        check_shares(&resized, &live, wider);
    }
}
