//! What a sort does ([`SortPlan`]) and the job specs it submits: the sample job and the
//! sort job.

use std::path::PathBuf;

use ringflow_stream::{EdgeKind, JobSpec, VertexSpec};
use serde_json::{json, Value};

use super::ops::KeyData;
use super::samples::RecordSource;

/// Name of the source vertex reading input `i` (`read-0` for client-streamed records).
pub fn read_vertex(i: usize) -> String {
    format!("read-{i}")
}

/// The sort job's sink vertex (part files, or the client port the sorted records are
/// read from).
pub const WRITE_VERTEX: &str = "write";

/// Where the records to sort come from.
pub enum SortInput {
    /// Files, or directories of files, that the workers read themselves
    /// (`source.sortfile`, one source vertex per path). Each is split among the workers
    /// by ranges, unless `local`: then every worker reads every path whole (its own
    /// disk's copy).
    Workers {
        /// The paths, as the workers see them.
        paths: Vec<PathBuf>,
        /// Every worker reads every path whole.
        local: bool,
    },
    /// The client streams the records to the workers (`source.client.records`), after
    /// a first pass of its own over them for the sample.
    Client(Box<dyn RecordSource>),
}

/// Where the sorted records go.
pub enum SortOutput {
    /// Part files `part-<i>.<ext>` in this directory, written by the workers
    /// (`sink.sortfile`): part `i` holds key range `i`.
    Files(PathBuf),
    /// Back to the client, range after range (`sink.client.records`).
    Client,
}

/// How the sample job hands its samples to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleVia {
    /// Through the DHT (`sink.dht`), falling back to files when the workers' `sink.dht`
    /// fails.
    Dht,
    /// As `sink.file` parts under the output directory, which the client must see too.
    Files,
}

/// A sort, resolved: what to read, how records are keyed, where the output goes.
pub struct SortPlan {
    /// `gensort` or `lines`.
    pub format: String,
    /// Lines: the key field (none: the whole line).
    pub key_field: Option<usize>,
    /// Lines: the field delimiter.
    pub delimiter: String,
    /// The records.
    pub input: SortInput,
    /// The sorted records.
    pub output: SortOutput,
    /// Sort memory per worker before it spills runs to disk (bytes).
    pub memory: u64,
    /// Samples per worker (the sample job's reservoir, or the client's sample per
    /// worker).
    pub samples: usize,
    /// How a sample job's samples reach the client.
    pub sample_via: SampleVia,
}

/// Where a sample job leaves its samples for the client.
#[derive(Clone, Debug)]
pub enum SampleChannel {
    /// In the DHT, under `sort:<run>:sample:<instance>` (the normal way).
    Dht,
    /// As `sink.file` parts in this directory (which the client must see too): the
    /// fallback when the workers' `sink.dht` fails.
    Files(PathBuf),
}

impl SampleChannel {
    /// `dht` or `files`, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            SampleChannel::Dht => "dht",
            SampleChannel::Files(_) => "files",
        }
    }
}

impl SortPlan {
    fn source_config(&self, path: &std::path::Path, local: bool) -> Value {
        let mut cfg = json!({
            "path": path.display().to_string(),
            "format": self.format,
            "split": !local,
        });
        if self.format == "lines" {
            cfg["delimiter"] = json!(self.delimiter);
            if let Some(k) = self.key_field {
                cfg["key_field"] = json!(k);
            }
        }
        cfg
    }

    /// The job's source vertices: one `source.sortfile` per path, or the client's port.
    fn with_sources(&self, mut spec: JobSpec) -> JobSpec {
        match &self.input {
            SortInput::Workers { paths, local } => {
                for (i, p) in paths.iter().enumerate() {
                    spec = spec.vertex(
                        VertexSpec::new(read_vertex(i), "source.sortfile")
                            .config(self.source_config(p, *local)),
                    );
                }
                spec
            }
            SortInput::Client(_) => {
                spec.vertex(VertexSpec::new(read_vertex(0), "source.client.records"))
            }
        }
    }

    /// `v` fed by every source vertex.
    fn with_inputs(&self, mut v: VertexSpec) -> VertexSpec {
        let sources = match &self.input {
            SortInput::Workers { paths, .. } => paths.len(),
            SortInput::Client(_) => 1,
        };
        for i in 0..sources {
            v = v.input(read_vertex(i), EdgeKind::Forward);
        }
        v
    }

    /// `source.sortfile → sample → sink.dht | sink.file`: samples under
    /// `sort:<run>:sample:<instance>` in the DHT, or as part files in a directory. Only for
    /// [`SortInput::Workers`] (the client samples what it streams itself).
    pub fn sample_spec(&self, run: &str, channel: &SampleChannel) -> JobSpec {
        let spec = self.with_sources(JobSpec::new(format!("sort-sample-{run}")));
        let store = match channel {
            SampleChannel::Dht => VertexSpec::new("store", "sink.dht")
                .config(json!({ "key_prefix": format!("sort:{run}:") })),
            SampleChannel::Files(dir) => VertexSpec::new("store", "sink.file")
                .config(json!({ "path": dir.display().to_string() })),
        };
        spec.vertex(
            self.with_inputs(VertexSpec::new("sample", "sample").config(json!({
                "max": self.samples,
                "key_prefix": "sample:",
                "seed": 1,
            }))),
        )
        .vertex(store.input("sample", EdgeKind::Forward))
    }

    /// `source → range_partition →direct→ sort → sink.sortfile | sink.client.records`.
    pub fn sort_spec(&self, run: &str, splitters: &[KeyData]) -> JobSpec {
        let splitters: Vec<Value> = splitters
            .iter()
            .map(|(k, d)| json!({ "key": super::ops::hex(k), "data": super::ops::hex(d) }))
            .collect();
        let spec = self.with_sources(JobSpec::new(format!("sort-{run}")));
        let write = match &self.output {
            SortOutput::Files(dir) => {
                VertexSpec::new(WRITE_VERTEX, "sink.sortfile").config(json!({
                    "path": dir.display().to_string(),
                    "format": self.format,
                }))
            }
            SortOutput::Client => VertexSpec::new(WRITE_VERTEX, "sink.client.records"),
        };
        spec.vertex(
            self.with_inputs(
                VertexSpec::new("partition", "range_partition")
                    .config(json!({ "splitters": splitters })),
            ),
        )
        .vertex(
            VertexSpec::new("sort", "sort")
                .config(json!({ "memory_bytes": self.memory }))
                .input("partition", EdgeKind::Direct),
        )
        .vertex(write.input("sort", EdgeKind::Forward))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sort::samples::Values;
    use ringflow_stream::{plan as plan_job, InitContext};

    fn test_plan(format: &str, key_field: Option<usize>, inputs: usize) -> SortPlan {
        SortPlan {
            format: format.into(),
            key_field,
            delimiter: "\t".into(),
            input: SortInput::Workers {
                paths: (0..inputs)
                    .map(|i| PathBuf::from(format!("/data/in-{i}")))
                    .collect(),
                local: false,
            },
            output: SortOutput::Files(PathBuf::from("/data/out")),
            memory: 64 << 20,
            samples: 1000,
            sample_via: SampleVia::Dht,
        }
    }

    /// The specs a sort submits pass the real operators' config checks.
    #[test]
    fn generated_specs_plan_with_the_builtin_operators() {
        let mut registry = ringflow_ops::with_builtins();
        registry.provide(ringflow_ops::client::ClientPorts::default());
        let mut init = InitContext::for_test("check");
        init.validate_only = true;
        for (format, key_field, inputs) in [("gensort", None, 1), ("lines", Some(2), 3)] {
            let p = test_plan(format, key_field, inputs);
            let splitters = vec![(b"k".to_vec(), b"kdata".to_vec()); 2];
            let sort = p.sort_spec("run1", &splitters);
            plan_job(&sort, &registry, &init).unwrap_or_else(|e| panic!("{e}: {sort:?}"));
            let sample = p.sample_spec("run1", &SampleChannel::Files("/data/s".into()));
            plan_job(&sample, &registry, &init).unwrap_or_else(|e| panic!("{e}: {sample:?}"));
            let v: Value = serde_json::from_str(&sort.to_json()).unwrap();
            let vertices = v["vertex"].as_array().unwrap();
            assert_eq!(vertices.len(), inputs + 3);
            let sorter = vertices.iter().find(|v| v["name"] == "sort").unwrap();
            assert_eq!(sorter["inputs"][0]["edge"], "direct");
            assert_eq!(sorter["config"]["memory_bytes"], 64 << 20);
            // The client-streamed variant reads from one client source vertex.
            let fc = SortPlan {
                input: SortInput::Client(Box::new(Values(Vec::new()))),
                ..p
            };
            let fc = fc.sort_spec("run1", &splitters);
            plan_job(&fc, &registry, &init).unwrap_or_else(|e| panic!("{e}: {fc:?}"));
            let sources: Vec<&str> = fc
                .vertices
                .iter()
                .filter(|v| v.operator.starts_with("source."))
                .map(|v| v.operator.as_str())
                .collect();
            assert_eq!(sources, vec!["source.client.records"]);
        }
        // The DHT variant names sink.dht with the run's key prefix.
        let sample = test_plan("gensort", None, 1).sample_spec("r9", &SampleChannel::Dht);
        let store = sample.vertices.iter().find(|v| v.name == "store").unwrap();
        assert_eq!(store.operator, "sink.dht");
        assert_eq!(store.config["key_prefix"], "sort:r9:");
    }

    /// Sorting values for the client: records come from and go back to client ports.
    #[test]
    fn a_client_sort_reads_and_writes_client_ports() {
        let mut registry = ringflow_ops::with_builtins();
        registry.provide(ringflow_ops::client::ClientPorts::default());
        let mut init = InitContext::for_test("check");
        init.validate_only = true;
        let p = SortPlan {
            input: SortInput::Client(Box::new(Values(Vec::new()))),
            output: SortOutput::Client,
            ..test_plan("lines", None, 0)
        };
        let spec = p.sort_spec("run2", &[]);
        plan_job(&spec, &registry, &init).unwrap_or_else(|e| panic!("{e}: {spec:?}"));
        let write = spec
            .vertices
            .iter()
            .find(|v| v.name == WRITE_VERTEX)
            .unwrap();
        assert_eq!(write.operator, "sink.client.records");
    }
}
