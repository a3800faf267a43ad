//! The Nexmark generator alone, on one thread: the reference of
//! `scripts/bench-nexmark.sh` (the most events per second a core can generate, so the
//! bound of any query whose rate counts generation).
//!
//!   nexmark-gen EVENTS [RUNS]   -> {"events", "bids", "median_secs", "secs": [...]}

use std::time::Instant;

use ringflow::ops::nexmark::generator::{event, GeneratorConfig};
use ringflow::ops::nexmark::model::Event;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let cfg = GeneratorConfig::default();
    let mut secs = Vec::new();
    let mut bids = 0u64;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        bids = 0;
        let mut check = 0u64;
        for n in 0..events {
            // The events are built as the source builds them, then dropped.
            if let Event::Bid(b) = event(&cfg, n) {
                bids += 1;
                check = check.wrapping_add(b.price);
            }
        }
        std::hint::black_box(check);
        secs.push(start.elapsed().as_secs_f64());
    }
    let mut sorted = secs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({"events": events, "bids": bids, "median_secs": median, "secs": secs})
    );
}
