//! Nexmark queries on a real 3-worker cluster (`ringflow nexmark run`), against a
//! single-threaded reference written here over the same generated events.

use std::collections::BTreeMap;

use ringflow::ops::nexmark::generator::{event, GeneratorConfig};
use ringflow::ops::nexmark::model::Event;
use ringflow_tests::{Client, ClusterOpts, TestCluster};
use serde_json::{json, Value};

const EVENTS: u64 = 30_000;
const SEED: u64 = 9;

/// The rows of a query, computed here from the query's definition, as sorted JSON text.
fn reference(q: &str) -> Vec<String> {
    let cfg = GeneratorConfig {
        seed: SEED,
        ..GeneratorConfig::default()
    };
    let mut rows = Vec::new();
    for n in 0..EVENTS {
        let Event::Bid(b) = event(&cfg, n) else {
            continue;
        };
        let row = match q {
            // SELECT * FROM bid
            "q0" => serde_json::to_value(&b).expect("bid"),
            // SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid
            "q1" => json!({
                "auction": b.auction, "bidder": b.bidder,
                "price": (b.price as f64 * 0.908).floor() as u64,
                "channel": b.channel, "url": b.url, "date_time": b.date_time, "extra": b.extra,
            }),
            // SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0
            "q2" if b.auction % 123 == 0 => json!({"auction": b.auction, "price": b.price}),
            _ => continue,
        };
        rows.push(row.to_string());
    }
    rows.sort();
    rows
}

fn read_rows(dir: &std::path::Path) -> Vec<String> {
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir).expect("output dir") {
        let p = e.expect("entry").path();
        assert!(
            !p.display().to_string().ends_with(".tmp"),
            "unfinished {p:?}"
        );
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            rows.push(v.to_string());
        }
    }
    rows.sort();
    rows
}

#[test]
fn stateless_queries_on_three_workers_equal_the_reference() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let mut per_query = BTreeMap::new();
    for q in ["q0", "q1", "q2"] {
        let out = c.dir().join(format!("out-{q}"));
        let o = c.cli(&[
            "nexmark",
            "run",
            "--query",
            q,
            "--events",
            "30K",
            "--seed",
            &SEED.to_string(),
            "--out",
            &out.display().to_string(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{q}: {stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains(&format!("{q}: {EVENTS} events in")) && stdout.contains("events/s"),
            "{stdout}"
        );
        let want = reference(q);
        let got = read_rows(&out);
        assert_eq!(got.len(), want.len(), "{q}: row count");
        assert!(got == want, "{q}: rows differ from the reference");
        per_query.insert(q, got.len());
    }
    assert!(per_query["q2"] > 0 && per_query["q2"] < per_query["q0"]);
    // An unknown query is refused with the list of known ones.
    let o = c.cli(&["nexmark", "run", "--query", "q99"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("known: q0, q1, q2"));
}
