//! The Nexmark benchmark as ringflow jobs: typed records ([`model`]), a deterministic
//! parallel generator ([`generator`]) behind `source.nexmark`, and the queries as typed
//! operators: the stateless q0-q2 ([`queries`]), the selections that key one kind of
//! event for a `hash` edge ([`select`]), the joins q3, q8 and the winning bids of q4/q6
//! ([`joins`], two-input operators) and the windowed aggregations q4-q7
//! ([`aggregates`]). `sink.discard`, `sink.file` and `sink.stdout` take the typed
//! rows too (overloads of the JSON sinks), so a query job carries no JSON from source to
//! sink. Specs: `examples/nexmark/q*.toml`.

pub mod aggregates;
pub mod generator;
pub mod joins;
pub mod model;
pub mod queries;
pub mod reference;
pub mod select;
pub mod source;

use ringflow_stream::{Data, Registry};

use crate::sinks::{DiscardSink, FileSink, StdoutSink};

/// Registers `source.nexmark`, the query operators, and the typed overloads of the
/// sinks (after [`crate::sinks::register`]).
pub fn register(r: &mut Registry) {
    r.source::<source::NexmarkSource>("source.nexmark");
    r.operator::<queries::Q0>("nexmark.q0");
    r.operator::<queries::Q1>("nexmark.q1");
    r.operator::<queries::Q2>("nexmark.q2");
    r.operator::<select::Persons>("nexmark.persons");
    r.operator::<select::Auctions>("nexmark.auctions");
    r.operator::<select::Bids>("nexmark.bids");
    r.two_input::<joins::Q3>("nexmark.q3");
    r.two_input::<joins::WinningBids>("nexmark.winning_bids");
    r.operator::<aggregates::Q4>("nexmark.q4");
    r.operator::<aggregates::Q5Count>("nexmark.q5_count");
    r.operator::<aggregates::Q5>("nexmark.q5");
    r.operator::<aggregates::Q6>("nexmark.q6");
    r.operator::<aggregates::Q7Local>("nexmark.q7_local");
    r.operator::<aggregates::Q7>("nexmark.q7");
    r.two_input::<joins::Q8>("nexmark.q8");
    sinks_for::<model::Event>(r);
    sinks_for::<model::Bid>(r);
    sinks_for::<model::AuctionPrice>(r);
    sinks_for::<model::Person>(r);
    sinks_for::<model::Auction>(r);
    sinks_for::<model::SellerItem>(r);
    sinks_for::<model::WinningBid>(r);
    sinks_for::<model::CategoryPrice>(r);
    sinks_for::<model::AuctionCount>(r);
    sinks_for::<model::HotItem>(r);
    sinks_for::<model::SellerPrice>(r);
    sinks_for::<model::NewSeller>(r);
}

fn sinks_for<T: Data>(r: &mut Registry) {
    r.overload::<DiscardSink<T>>("sink.discard");
    r.overload::<FileSink<T>>("sink.file");
    r.overload::<StdoutSink<T>>("sink.stdout");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ringflow_ring::RingConfig;
    use ringflow_stream::operator::InitContext;
    use ringflow_stream::{plan, JobSpec, LocalRunner};
    use serde_json::{json, Value};

    use super::generator::GeneratorConfig;
    use super::reference::{expected, normalize, QUERIES};

    /// The spec of `examples/nexmark/{q}.toml`.
    fn example(q: &str) -> &'static str {
        match q {
            "q0" => include_str!("../../../examples/nexmark/q0.toml"),
            "q1" => include_str!("../../../examples/nexmark/q1.toml"),
            "q2" => include_str!("../../../examples/nexmark/q2.toml"),
            "q3" => include_str!("../../../examples/nexmark/q3.toml"),
            "q4" => include_str!("../../../examples/nexmark/q4.toml"),
            "q5" => include_str!("../../../examples/nexmark/q5.toml"),
            "q6" => include_str!("../../../examples/nexmark/q6.toml"),
            "q7" => include_str!("../../../examples/nexmark/q7.toml"),
            "q8" => include_str!("../../../examples/nexmark/q8.toml"),
            _ => unreachable!("no query {q}"),
        }
    }

    /// Runs the example spec of query `q` over `events` events of seed `seed` on 3
    /// simulated workers into JSON lines: each part's rows in the order written.
    fn run(q: &str, events: u64, seed: u64, chaining: bool, dir: &Path) -> Vec<Vec<Value>> {
        let out = dir.join(format!("{q}-{chaining}"));
        let mut spec = JobSpec::from_toml(example(q)).unwrap();
        spec.settings.chaining = chaining;
        for v in &mut spec.vertices {
            if v.operator == "source.nexmark" {
                v.config = json!({ "events": events, "seed": seed, "event_rate": 1000.0 });
            }
            if v.name == "out" {
                v.operator = "sink.file".into();
                v.config = json!({ "path": out });
            }
        }
        let reg = crate::with_builtins();
        let planned = plan(&spec, &reg, &InitContext::for_test("x")).unwrap();
        let mut runner = LocalRunner::new(
            planned,
            &reg,
            3,
            RingConfig::new(64, 1).unwrap(),
            dir.into(),
            0,
        )
        .unwrap();
        assert!(runner.run(60_000_000).unwrap(), "{q} did not finish");
        let mut parts = Vec::new();
        for e in std::fs::read_dir(&out).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            parts.push(
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            );
        }
        parts
    }

    #[test]
    fn every_query_on_three_workers_equals_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let (events, seed) = (60_000, 5);
        // 1,000 events per second of event time: 60 s, so a few windows of each query.
        let cfg = GeneratorConfig {
            seed,
            event_rate: 1000.0,
            ..GeneratorConfig::default()
        };
        for q in QUERIES {
            let want = expected(q, &cfg, events).unwrap();
            assert!(!want.is_empty(), "{q} selects something");
            eprintln!("{q}: {} rows", want.len());
            for chaining in [true, false] {
                let got = normalize(q, &run(q, events, seed, chaining, dir.path()));
                assert_eq!(got.len(), want.len(), "{q} chaining={chaining}");
                if got != want {
                    let first = got.iter().zip(&want).find(|(g, w)| g != w);
                    panic!("{q} chaining={chaining}: rows differ, first: {first:?}");
                }
            }
        }
    }

    #[test]
    fn a_restore_needs_the_same_parallelism() {
        use ringflow_stream::source::Source;
        let cfg: super::source::NexmarkConfig =
            serde_json::from_value(serde_json::json!({})).expect("defaults");
        let mut init = InitContext::for_test("x");
        init.instances = 3;
        let mut three = super::source::NexmarkSource::create(cfg.clone(), &init).unwrap();
        let pos = three.snapshot().unwrap().unwrap();
        init.instances = 2;
        let mut two = super::source::NexmarkSource::create(cfg, &init).unwrap();
        let err = two.restore(vec![pos]).unwrap_err();
        assert!(err.0.contains("3 instances"), "{}", err.0);
    }
}
