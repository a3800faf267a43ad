//! Every Nexmark query on a real 3-worker cluster (`ringflow nexmark run`), against the
//! single-threaded reference of `ringflow::ops::nexmark::reference` (plain loops over
//! the generated events, sharing no code with the query operators).

use std::collections::BTreeMap;

use ringflow::ops::nexmark::generator::GeneratorConfig;
use ringflow::ops::nexmark::reference::{expected, normalize, QUERIES};
use ringflow_tests::{Client, ClusterOpts, TestCluster};
use serde_json::Value;

const EVENTS: u64 = 30_000;
const SEED: u64 = 9;
/// Events per second of event time: 30 s of it, so several windows per query.
const EVENT_RATE: f64 = 1000.0;

/// Each part file's rows, in the order written.
fn read_parts(dir: &std::path::Path) -> Vec<Vec<Value>> {
    let mut parts = Vec::new();
    for e in std::fs::read_dir(dir).expect("output dir") {
        let p = e.expect("entry").path();
        assert!(
            !p.display().to_string().ends_with(".tmp"),
            "unfinished {p:?}"
        );
        let text = std::fs::read_to_string(&p).expect("part");
        parts.push(
            text.lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect(),
        );
    }
    parts
}

#[test]
fn every_query_on_three_workers_equals_the_reference() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let cfg = GeneratorConfig {
        seed: SEED,
        event_rate: EVENT_RATE,
        ..GeneratorConfig::default()
    };
    let mut per_query = BTreeMap::new();
    for q in QUERIES {
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
            "--event-rate",
            &EVENT_RATE.to_string(),
            "--out",
            &out.display().to_string(),
            "--check",
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
        assert!(stdout.contains("check passed"), "{stdout}");
        let want = expected(q, &cfg, EVENTS).expect("a known query");
        assert!(!want.is_empty(), "{q}: the reference selects something");
        let got = normalize(q, &read_parts(&out));
        assert_eq!(got.len(), want.len(), "{q}: row count");
        assert!(got == want, "{q}: rows differ from the reference");
        per_query.insert(q, got.len());
    }
    assert!(per_query["q2"] > 0 && per_query["q2"] < per_query["q0"]);
    // A run whose rows differ from the reference fails its check: q1's rows against a
    // reference with another seed.
    let out = c.dir().join("out-q1-other");
    let o = c.cli(&[
        "nexmark",
        "run",
        "--query",
        "q1",
        "--events",
        "2K",
        "--seed",
        "1",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success());
    let cfg = GeneratorConfig {
        seed: 2,
        ..GeneratorConfig::default()
    };
    assert_ne!(
        normalize("q1", &read_parts(&out)),
        expected("q1", &cfg, 2_000).unwrap()
    );
    // An unknown query is refused with the list of known ones.
    let o = c.cli(&["nexmark", "run", "--query", "q99"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("known: q0, q1, q2, q3"));
}
