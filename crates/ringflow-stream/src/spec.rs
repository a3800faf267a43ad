//! Job specs: a graph of named vertices (an operator and its config) joined by edges.
//! Written as TOML or JSON, or built in Rust; both produce the same [`JobSpec`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Value;
use crate::SpecError;

/// How records move along an edge from the instances of one vertex to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// To the instance on the same worker (no network).
    #[default]
    Forward,
    /// To the worker that owns the ring partition of the record's key.
    Hash,
    /// To every instance.
    Broadcast,
    /// To the single instance of a `parallelism = 1` vertex.
    Gather,
    /// To the instance whose index is the record's key (`"0"`, `"1"`, ...): range
    /// partitioning, where the sender decides the target.
    Direct,
}

impl EdgeKind {
    /// The spec spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EdgeKind::Forward => "forward",
            EdgeKind::Hash => "hash",
            EdgeKind::Broadcast => "broadcast",
            EdgeKind::Gather => "gather",
            EdgeKind::Direct => "direct",
        }
    }
}

/// One input of a vertex: the upstream vertex and the edge kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InputRepr", into = "InputRepr")]
pub struct InputSpec {
    /// Name of the upstream vertex.
    pub from: String,
    /// How records are routed.
    pub edge: EdgeKind,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum InputRepr {
    Name(String),
    Full {
        from: String,
        #[serde(default)]
        edge: EdgeKind,
    },
}

impl From<InputRepr> for InputSpec {
    fn from(r: InputRepr) -> Self {
        match r {
            InputRepr::Name(from) => InputSpec {
                from,
                edge: EdgeKind::Forward,
            },
            InputRepr::Full { from, edge } => InputSpec { from, edge },
        }
    }
}

impl From<InputSpec> for InputRepr {
    fn from(s: InputSpec) -> Self {
        InputRepr::Full {
            from: s.from,
            edge: s.edge,
        }
    }
}

/// One vertex: an operator (or source) by registered name, with its config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexSpec {
    /// Unique name within the job (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Registered operator name, e.g. `source.files`, `flat_map`, `count`, `my-op`.
    pub operator: String,
    /// Operator configuration (deserialized into the operator's `Config`).
    #[serde(default = "empty_config")]
    pub config: Value,
    /// Upstream vertices; empty for sources.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Omitted: one instance per worker. `1`: a single instance (on the job's first worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// `false`: never chain this vertex to its input or its outputs (it gets its own
    /// actor and queue); see [`JobSettings::chaining`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
}

fn empty_config() -> Value {
    Value::Object(Default::default())
}

impl VertexSpec {
    /// A vertex with an empty config and no inputs.
    pub fn new(name: impl Into<String>, operator: impl Into<String>) -> Self {
        VertexSpec {
            name: name.into(),
            operator: operator.into(),
            config: empty_config(),
            inputs: Vec::new(),
            parallelism: None,
            chain: None,
        }
    }

    /// Sets the config.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Adds an input.
    pub fn input(mut self, from: impl Into<String>, edge: EdgeKind) -> Self {
        self.inputs.push(InputSpec {
            from: from.into(),
            edge,
        });
        self
    }

    /// Runs a single instance.
    pub fn single(mut self) -> Self {
        self.parallelism = Some(1);
        self
    }
}

/// Tuning shared by every edge of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Records per batch.
    pub batch_size: usize,
    /// Longest a partly filled batch waits before it is sent (ms).
    pub linger_ms: u64,
    /// Records in flight per edge and receiver (the credit window): bounds memory.
    pub edge_credits: usize,
    /// A source that reads nothing for this long says it is idle, and stops holding back
    /// the watermark downstream until it emits again (ms). Operators never count a quiet
    /// input idle: its sender may only be blocked on credit.
    pub idle_timeout_ms: u64,
    /// Take a checkpoint this often (ms); 0: never; unset: the cluster's default
    /// (`[jobs] checkpoint_interval_ms` of the coordinator). A checkpointed job is
    /// restarted from its last checkpoint when one of its workers is lost.
    pub checkpoint_interval_ms: Option<u64>,
    /// Restarts of a checkpointed job after failures before it fails for good.
    pub restart_attempts: u32,
    /// Wait before a restart (ms).
    pub restart_backoff_ms: u64,
    /// `manual` (default): the job keeps its workers until `ringflow job rescale`;
    /// `auto`: when a worker joins or leaves, the job is stopped with a checkpoint and
    /// restored on the new membership (needs checkpoints).
    pub rescale: RescaleMode,
    /// A checkpointed job with a source that cannot replay (`source.tcp`,
    /// `source.client`) loses what that source read after the last checkpoint when it
    /// restarts. It is refused unless this says so (`true`: at-most-once for those records).
    pub accept_at_most_once: bool,
    /// Chain operators (default `true`): a vertex whose only input is a forward edge
    /// from a vertex of the same parallelism runs in that vertex's actor, called
    /// directly with its output (no queue, credit or thread hop between them).
    pub chaining: bool,
}

/// When a job moves to a new membership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RescaleMode {
    /// Only on `ringflow job rescale`.
    #[default]
    Manual,
    /// Whenever the membership changes.
    Auto,
}

impl JobSettings {
    /// The checkpoint interval in effect (0: no checkpoints).
    pub fn checkpoint_interval(&self) -> u64 {
        self.checkpoint_interval_ms.unwrap_or(0)
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            batch_size: 512,
            linger_ms: 20,
            edge_credits: 4096,
            idle_timeout_ms: 5_000,
            checkpoint_interval_ms: None,
            restart_attempts: 3,
            restart_backoff_ms: 1_000,
            rescale: RescaleMode::Manual,
            accept_at_most_once: false,
            chaining: true,
        }
    }
}

/// A job: a name, settings and a graph of vertices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Human-readable job name.
    pub name: String,
    /// Batching and flow-control settings.
    #[serde(default)]
    pub settings: JobSettings,
    /// The vertices (`[[vertex]]` tables in TOML).
    #[serde(rename = "vertex", default)]
    pub vertices: Vec<VertexSpec>,
}

impl JobSpec {
    /// An empty job.
    pub fn new(name: impl Into<String>) -> Self {
        JobSpec {
            name: name.into(),
            settings: JobSettings::default(),
            vertices: Vec::new(),
        }
    }

    /// Adds a vertex.
    pub fn vertex(mut self, v: VertexSpec) -> Self {
        self.vertices.push(v);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, s: JobSettings) -> Self {
        self.settings = s;
        self
    }

    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        toml::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))
    }

    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        serde_json::from_str(text).map_err(|e| SpecError::Parse(e.to_string()))
    }

    /// Reads a `.toml` or `.json` file (by extension; TOML otherwise).
    pub fn from_path(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecError::Parse(format!("{}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// The spec as JSON (how it travels to the coordinator and workers).
    pub fn to_json(&self) -> String {
        // A JobSpec holds only strings, numbers and JSON values: always serializable.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WORDCOUNT: &str = r#"
name = "wordcount"

[settings]
batch_size = 256

[[vertex]]
name = "lines"
operator = "source.files"
config = { path = "/tmp/corpus" }

[[vertex]]
name = "words"
operator = "flat_map"
config = { function = "split_words" }
inputs = ["lines"]

[[vertex]]
name = "count"
operator = "count"
inputs = [{ from = "words", edge = "hash" }]
"#;

    #[test]
    fn toml_json_and_builder_give_the_same_spec() {
        let from_toml = JobSpec::from_toml(WORDCOUNT).unwrap();
        let built = JobSpec::new("wordcount")
            .settings(JobSettings {
                batch_size: 256,
                ..JobSettings::default()
            })
            .vertex(VertexSpec::new("lines", "source.files").config(json!({"path": "/tmp/corpus"})))
            .vertex(
                VertexSpec::new("words", "flat_map")
                    .config(json!({"function": "split_words"}))
                    .input("lines", EdgeKind::Forward),
            )
            .vertex(VertexSpec::new("count", "count").input("words", EdgeKind::Hash));
        assert_eq!(from_toml, built);
        let from_json = JobSpec::from_json(&built.to_json()).unwrap();
        assert_eq!(from_json, built);
    }

    #[test]
    fn unknown_fields_and_edge_kinds_are_refused() {
        let bad = WORDCOUNT.replace("batch_size", "batch_sise");
        assert!(matches!(JobSpec::from_toml(&bad), Err(SpecError::Parse(_))));
        let bad = WORDCOUNT.replace("\"hash\"", "\"random\"");
        assert!(JobSpec::from_toml(&bad).is_err());
    }
}
