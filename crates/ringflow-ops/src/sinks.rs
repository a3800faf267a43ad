//! Built-in sinks: operators with a [`ringflow_stream::Value`] input and no output.
//!
//! - `sink.file`: one part file per instance, published atomically at the end
//!   ([`file::FileSink`]);
//! - `sink.stdout`: lines on standard output ([`stdout::StdoutSink`]);
//! - `sink.tcp`: lines to a TCP server ([`tcp::TcpSink`]);
//! - `sink.discard`: counts and drops ([`discard::DiscardSink`]).
//!
//! Records are rendered with a [`LineFormat`] (`json` or `text`). Every sink accepts
//! `max_per_sec`, a [`Throttle`] that makes it write no faster than that (to test
//! backpressure). Sinks write in `on_batch` and flush and close in `on_end`; a failed
//! write is returned as an error, which fails the job with that reason.

pub mod discard;
pub mod file;
pub mod format;
pub mod stdout;
pub mod tcp;
pub mod throttle;

pub use discard::{DiscardSink, DiscardSinkConfig};
pub use file::{FileSink, FileSinkConfig};
pub use format::LineFormat;
pub use stdout::{StdoutSink, StdoutSinkConfig};
pub use tcp::{TcpSink, TcpSinkConfig};
pub use throttle::Throttle;

use ringflow_stream::Registry;

/// Registers the built-in sinks: `sink.file`, `sink.stdout`, `sink.tcp`, `sink.discard`.
pub fn register(r: &mut Registry) {
    r.operator::<FileSink>("sink.file");
    r.operator::<StdoutSink>("sink.stdout");
    r.operator::<TcpSink>("sink.tcp");
    r.operator::<DiscardSink>("sink.discard");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringflow_ring::RingConfig;
    use ringflow_stream::operator::InitContext;
    use ringflow_stream::spec::{EdgeKind, JobSettings, JobSpec, VertexSpec};
    use ringflow_stream::{plan, LocalRunner};
    use serde_json::json;
    use std::path::Path;

    fn registry() -> Registry {
        let mut r = Registry::new();
        crate::sources::register(&mut r);
        register(&mut r);
        r
    }

    fn run(spec: JobSpec, workers: usize, scratch: &Path) -> LocalRunner {
        let reg = registry();
        let plan = plan(&spec, &reg, &InitContext::for_test("check")).unwrap();
        let mut runner = LocalRunner::new(
            plan,
            &reg,
            workers,
            RingConfig::default(),
            scratch.into(),
            0,
        )
        .unwrap();
        assert!(runner.run(600_000).unwrap(), "the job did not finish");
        runner
    }

    /// Every line of every file in `dir`, sorted.
    fn all_lines(dir: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.sort();
        lines
    }

    #[test]
    fn every_builtin_is_registered_with_its_kind() {
        let r = registry();
        for s in ["source.files", "source.tcp", "source.generate"] {
            assert!(r.get(s).is_some_and(|e| e.is_source()), "{s}");
        }
        for s in ["sink.file", "sink.stdout", "sink.tcp", "sink.discard"] {
            assert!(r.get(s).is_some_and(|e| !e.is_source()), "{s}");
        }
    }

    #[test]
    fn files_to_file_parts_on_three_workers_keeps_every_line_once() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        let output = tmp.path().join("out");
        std::fs::create_dir(&input).unwrap();
        let mut expected = Vec::new();
        for f in 0..5 {
            let mut text = String::new();
            for i in 0..(200 * f + 3) {
                // Repeated lines: the comparison is of multisets.
                let line = format!("line {} of {f}", i % 50);
                text.push_str(&line);
                text.push('\n');
                expected.push(line);
            }
            std::fs::write(input.join(format!("{f}.log")), text).unwrap();
        }
        expected.sort();
        let spec = JobSpec::new("copy")
            .settings(JobSettings {
                batch_size: 64,
                ..JobSettings::default()
            })
            .vertex(VertexSpec::new("read", "source.files").config(json!({ "path": input })))
            .vertex(
                VertexSpec::new("write", "sink.file")
                    .config(json!({"path": output, "format": "text", "flush_every": 10}))
                    .input("read", EdgeKind::Forward),
            );
        let mut runner = run(spec, 3, tmp.path());
        let names: Vec<String> = {
            let mut n: Vec<String> = std::fs::read_dir(&output)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names,
            ["part-00000.txt", "part-00001.txt", "part-00002.txt"]
        );
        assert_eq!(all_lines(&output), expected);
        let read: u64 = runner
            .metrics()
            .iter()
            .filter(|(v, _, _)| v == "read")
            .map(|(_, _, m)| m.records_out)
            .sum();
        assert_eq!(read as usize, expected.len());
    }

    #[test]
    fn a_generated_stream_ends_after_its_count_on_every_worker() {
        let tmp = tempfile::tempdir().unwrap();
        let output = tmp.path().join("out");
        let spec = JobSpec::new("gen")
            .vertex(
                VertexSpec::new("gen", "source.generate")
                    .config(json!({"count": 100, "rate_per_sec": 1000, "start_time_ms": 0})),
            )
            .vertex(
                VertexSpec::new("write", "sink.file")
                    .config(json!({ "path": output }))
                    .input("gen", EdgeKind::Forward),
            );
        run(spec, 2, tmp.path());
        let lines = all_lines(&output);
        assert_eq!(lines.len(), 200);
        let values: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for k in 0..2 {
            let mut ns: Vec<u64> = values
                .iter()
                .filter(|v| v["instance"] == k)
                .map(|v| v["n"].as_u64().unwrap())
                .collect();
            ns.sort();
            assert_eq!(ns, (0..100).collect::<Vec<_>>());
        }
    }

    #[test]
    fn configs_are_checked_when_a_spec_is_planned() {
        let reg = registry();
        let init = InitContext::for_test("check");
        let spec = JobSpec::new("bad")
            .vertex(VertexSpec::new("src", "source.tcp").config(json!({"address": "nope"})))
            .vertex(VertexSpec::new("out", "sink.discard").input("src", EdgeKind::Forward));
        let e = plan(&spec, &reg, &init).unwrap_err();
        assert!(e.to_string().contains("src"), "{e}");
        // Planning does not touch the disk: a path that exists only on workers is fine.
        let spec = JobSpec::new("ok")
            .vertex(
                VertexSpec::new("src", "source.files").config(json!({"path": "/only/on/workers"})),
            )
            .vertex(
                VertexSpec::new("out", "sink.file")
                    .config(json!({"path": "/only/on/workers/out"}))
                    .input("src", EdgeKind::Forward),
            );
        assert!(plan(&spec, &reg, &init).is_ok());
        assert!(!Path::new("/only/on/workers").exists());
    }
}
