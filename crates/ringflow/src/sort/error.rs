//! Errors of a distributed sort.

use crate::{ClusterError, DhtError};

/// Why a sort did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    /// The cluster refused a job of the sort (its message).
    #[error("{0}")]
    Refused(String),
    /// A job failed, or the sort could not go on (a message for the user).
    #[error("{0}")]
    Failed(String),
    /// Talking to the coordinator or a worker failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Submitting a job failed for another reason than a refusal.
    #[error("submitting a job: {0}")]
    Submit(ClusterError),
    /// Reading the samples from the DHT failed.
    #[error("{what}: {source}")]
    Dht {
        /// What was being done.
        what: &'static str,
        /// The DHT's error.
        source: DhtError,
    },
    /// An input file could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being read (`opening PATH`, `reading PATH`).
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Input that cannot be sorted as asked (a bad format, samples that do not parse).
    #[error("{0}")]
    Invalid(String),
}

impl SortError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SortError::Io {
            what: what.into(),
            source,
        }
    }
}
