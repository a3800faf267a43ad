//! Ring simulator: plans tables for clusters of 3..=1000 workers and checks balance and
//! movement against the targets (load and primaries max/mean <= 1.05, moved slots on a
//! join <= 1.10 x the ideal 1/(N+1)).
//!
//! ```text
//! cargo run --release -p ringflow-examples --example ring-sim -- [--partitions P] [--replication R] [--max N]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use ringflow_ring::{
    assign, moved_fraction, Assignment, RingConfig, RingError, WorkerSpec, DEFAULT_PARTITIONS,
    DEFAULT_REPLICATION,
};

const SIZES: [usize; 16] = [
    3, 4, 5, 8, 10, 16, 32, 50, 64, 100, 128, 200, 256, 500, 512, 1000,
];
const MAX_LOAD_RATIO: f64 = 1.05;
const MAX_MOVE_RATIO: f64 = 1.10;

struct Args {
    partitions: u32,
    replication: usize,
    max: usize,
}

fn usage() -> &'static str {
    "usage: ring-sim [--partitions P] [--replication R] [--max N]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        partitions: DEFAULT_PARTITIONS,
        replication: DEFAULT_REPLICATION,
        max: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage().to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}\n{}", usage());
        match flag.as_str() {
            "--partitions" => args.partitions = value.parse().map_err(bad)?,
            "--replication" => args.replication = value.parse().map_err(bad)?,
            "--max" => args.max = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown argument {flag}\n{}", usage())),
        }
    }
    Ok(args)
}

fn workers(n: usize) -> Vec<WorkerSpec> {
    (0..n)
        .map(|i| WorkerSpec::new(format!("worker-{i:05}"), 1))
        .collect()
}

/// (replica slots max/mean, primaries max/mean) per unit of capacity over `specs`.
fn balance(a: &Assignment, specs: &[WorkerSpec]) -> (f64, f64) {
    let counts = a.counts();
    let caps: f64 = specs.iter().map(|s| f64::from(s.capacity)).sum();
    let slots = a.assigned_slots() as f64;
    let prims = f64::from(a.partitions()) - a.unowned().len() as f64;
    let (mut load, mut prim) = (0.0f64, 0.0f64);
    for s in specs {
        let (c, p) = counts.get(&s.id).copied().unwrap_or((0, 0));
        let share = f64::from(s.capacity) / caps;
        load = load.max(c as f64 / (slots * share));
        prim = prim.max(p as f64 / (prims * share));
    }
    (load, prim)
}

fn run(args: &Args) -> Result<bool, RingError> {
    let config = RingConfig::new(args.partitions, args.replication)?;
    println!(
        "ring-sim: {} partitions, replication {}",
        config.partitions, config.replication
    );
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>8} {:>8}",
        "N",
        "load",
        "primary",
        "join",
        "ideal",
        "ratio",
        "leave",
        "ideal",
        "ratio",
        "plan ms",
        "join ms"
    );
    let mut pass = true;
    for &n in SIZES.iter().filter(|&&n| n <= args.max) {
        let specs = workers(n);
        let t = Instant::now();
        let fresh = assign(None, &specs, config)?;
        let plan_ms = t.elapsed().as_secs_f64() * 1e3;
        fresh.validate()?;
        let (load, prim) = balance(&fresh, &specs);

        let joined_specs = workers(n + 1);
        let t = Instant::now();
        let joined = assign(Some(&fresh), &joined_specs, config)?;
        let join_ms = t.elapsed().as_secs_f64() * 1e3;
        joined.validate()?;
        let join = moved_fraction(&fresh, &joined);
        let join_ideal = 1.0 / (n + 1) as f64;
        let join_ratio = join / join_ideal;

        let mut left_specs = specs.clone();
        left_specs.remove(n / 2);
        let left = assign(Some(&fresh), &left_specs, config)?;
        left.validate()?;
        let leave = moved_fraction(&fresh, &left);
        let leave_ideal = 1.0 / n as f64;

        let ok = load <= MAX_LOAD_RATIO && prim <= MAX_LOAD_RATIO && join_ratio <= MAX_MOVE_RATIO;
        pass &= ok;
        println!(
            "{:>5} {:>9.4} {:>9.4} {:>9.5} {:>9.5} {:>7.3} {:>9.5} {:>9.5} {:>7.3} {:>8.1} {:>8.1}{}",
            n,
            load,
            prim,
            join,
            join_ideal,
            join_ratio,
            leave,
            leave_ideal,
            leave / leave_ideal,
            plan_ms,
            join_ms,
            if ok { "" } else { "  <- FAIL" }
        );
    }

    // Mixed capacities: 10 workers with capacities 1, 2, 4.
    let mixed: Vec<WorkerSpec> = (0..10)
        .map(|i| WorkerSpec::new(format!("mixed-{i:02}"), [1, 2, 4][i % 3]))
        .collect();
    let a = assign(None, &mixed, config)?;
    a.validate()?;
    let counts = a.counts();
    let total_cap: u32 = mixed.iter().map(|s| s.capacity).sum();
    let slots = a.assigned_slots() as f64;
    let prims = f64::from(a.partitions());
    println!(
        "\nmixed capacities (10 workers: caps {:?}), load max/mean per capacity {:.4}, primaries {:.4}",
        mixed.iter().map(|s| s.capacity).collect::<Vec<_>>(),
        balance(&a, &mixed).0,
        balance(&a, &mixed).1
    );
    println!(
        "{:>5} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "cap", "workers", "slot share", "expected", "prim share", "expected"
    );
    for cap in [1u32, 2, 4] {
        let class: Vec<&WorkerSpec> = mixed.iter().filter(|s| s.capacity == cap).collect();
        let (c, p) = class.iter().fold((0usize, 0usize), |acc, s| {
            let (c, p) = counts.get(&s.id).copied().unwrap_or((0, 0));
            (acc.0 + c, acc.1 + p)
        });
        let expected = f64::from(cap) * class.len() as f64 / f64::from(total_cap);
        println!(
            "{:>5} {:>8} {:>11.4} {:>11.4} {:>11.4} {:>11.4}",
            cap,
            class.len(),
            c as f64 / slots,
            expected,
            p as f64 / prims,
            expected
        );
    }
    let (mixed_load, mixed_prim) = balance(&a, &mixed);
    pass &= mixed_load <= MAX_LOAD_RATIO && mixed_prim <= MAX_LOAD_RATIO;
    Ok(pass)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => {
            println!(
                "\nPASS: load and primaries max/mean <= {MAX_LOAD_RATIO}, join moved/ideal <= {MAX_MOVE_RATIO} at every size"
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "\nFAIL: some size exceeds load or primaries max/mean {MAX_LOAD_RATIO} or join moved/ideal {MAX_MOVE_RATIO}"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ring-sim: {e}");
            ExitCode::from(2)
        }
    }
}
