//! Typed errors of the stream model.

use thiserror::Error;

/// An error while running an operator or moving its data.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A batch held a record type other than the one the port expects.
    #[error("batch holds another record type than {expected}")]
    TypeMismatch {
        /// The type the port expected.
        expected: &'static str,
    },
    /// A batch could not be (de)serialized.
    #[error("batch codec: {0}")]
    Codec(String),
    /// An operator failed; the job fails with this reason.
    #[error("operator '{vertex}' failed: {reason}")]
    Operator {
        /// The vertex name.
        vertex: String,
        /// Why.
        reason: String,
    },
    /// A message named an input or edge this instance does not have.
    #[error("unknown input {0}")]
    UnknownInput(usize),
    /// I/O error of a source or sink.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Checkpoint barriers broke their order, or a snapshot could not be taken or
    /// restored.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A chain of instances was built wrong (a bug in its caller).
    #[error("chain: {0}")]
    Chain(String),
}

/// Why a job spec was refused; names the vertex when one is at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// The spec text could not be parsed.
    #[error("cannot parse job spec: {0}")]
    Parse(String),
    /// Something about the job as a whole.
    #[error("job: {0}")]
    Job(String),
    /// Something about one vertex.
    #[error("vertex '{vertex}': {reason}")]
    Vertex {
        /// The vertex name.
        vertex: String,
        /// Why.
        reason: String,
    },
}

impl SpecError {
    /// A vertex error.
    pub fn vertex(vertex: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Vertex {
            vertex: vertex.into(),
            reason: reason.into(),
        }
    }
}
