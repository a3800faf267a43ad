//! Errors of the cluster layer.

use thiserror::Error;

/// Everything the coordinator, the worker or the client can fail with.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The transport failed.
    #[error(transparent)]
    Net(#[from] ringflow_net::NetError),
    /// A protocol rule was broken by the peer.
    #[error(transparent)]
    Proto(#[from] ringflow_proto::ProtoError),
    /// The ring refused the configuration or produced an invalid table.
    #[error(transparent)]
    Ring(#[from] ringflow_ring::RingError),
    /// Reading or writing the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The persisted state could not be read.
    #[error("corrupt state file {path}: {reason}")]
    CorruptState {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The peer answered with an error.
    #[error("peer refused: {0}")]
    Refused(String),
    /// The peer answered something that makes no sense at this point.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// An actor or task this operation needed is gone (the node is shutting down).
    #[error("node is shutting down")]
    ShuttingDown,
    /// A data-plane service failed.
    #[error("{0}")]
    Service(String),
    /// The operation did not complete in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ClusterError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClusterError::Io {
            context: context.into(),
            source,
        }
    }
}
