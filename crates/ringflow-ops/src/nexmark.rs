//! The Nexmark benchmark as ringflow jobs: typed records ([`model`]), a deterministic
//! parallel generator ([`generator`]) behind `source.nexmark`, and the queries as typed
//! operators ([`queries`]). `sink.discard`, `sink.file` and `sink.stdout` take the typed
//! rows too (overloads of the JSON sinks), so a query job carries no JSON from source to
//! sink. Specs: `examples/nexmark/q*.toml`.

pub mod generator;
pub mod model;
pub mod queries;
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
    sinks_for::<model::Event>(r);
    sinks_for::<model::Bid>(r);
    sinks_for::<model::AuctionPrice>(r);
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
    use serde_json::Value;

    use super::generator::{event, GeneratorConfig};
    use super::model::Event;

    /// Runs query `q` over `events` events of seed `seed` on 3 simulated workers into
    /// JSON lines, sorted.
    fn run(q: &str, events: u64, seed: u64, chaining: bool, dir: &Path) -> Vec<String> {
        let out = dir.join(format!("{q}-{chaining}"));
        let spec = JobSpec::from_toml(&format!(
            r#"
name = "{q}"
[settings]
chaining = {chaining}
[[vertex]]
name = "events"
operator = "source.nexmark"
config = {{ events = {events}, seed = {seed} }}
[[vertex]]
name = "query"
operator = "nexmark.{q}"
inputs = ["events"]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["query"]
"#,
            out.display()
        ))
        .unwrap();
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
        let mut lines = Vec::new();
        for e in std::fs::read_dir(&out).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            for l in text.lines() {
                let v: Value = serde_json::from_str(l).unwrap();
                lines.push(v.to_string());
            }
        }
        lines.sort();
        lines
    }

    /// The queries' own semantics, written again over the generator's events.
    fn reference(q: &str, events: u64, seed: u64) -> Vec<String> {
        let cfg = GeneratorConfig {
            seed,
            ..GeneratorConfig::default()
        };
        let mut rows: Vec<String> = (0..events)
            .filter_map(|n| match event(&cfg, n) {
                Event::Bid(b) => Some(b),
                _ => None,
            })
            .filter_map(|b| {
                let v = serde_json::to_value(&b).unwrap();
                match q {
                    "q0" => Some(v),
                    "q1" => {
                        let mut v = v;
                        v["price"] = Value::from((b.price as f64 * 0.908).floor() as u64);
                        Some(v)
                    }
                    "q2" => (b.auction % 123 == 0)
                        .then(|| serde_json::json!({"auction": b.auction, "price": b.price})),
                    _ => unreachable!(),
                }
            })
            .map(|v| v.to_string())
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn stateless_queries_on_three_workers_equal_a_reference() {
        let dir = tempfile::tempdir().unwrap();
        for q in ["q0", "q1", "q2"] {
            let want = reference(q, 20_000, 5);
            assert!(!want.is_empty(), "{q} selects something");
            for chaining in [true, false] {
                let got = run(q, 20_000, 5, chaining, dir.path());
                assert_eq!(got.len(), want.len(), "{q} chaining={chaining}");
                assert!(got == want, "{q} chaining={chaining}: rows differ");
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
