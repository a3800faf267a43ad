//! Errors of the DHT.

use thiserror::Error;

/// Everything the DHT can fail with.
#[derive(Debug, Error)]
pub enum DhtError {
    /// A configuration value is invalid.
    #[error("invalid DHT configuration: {0}")]
    Config(String),
    /// Reading or writing the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Persistent data is damaged beyond the torn tail a crash can leave.
    #[error("corrupt data in {path}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or value exceeds the configured limit.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A peer could not be reached or answered badly.
    #[error("peer: {0}")]
    Peer(String),
    /// Not enough replicas answered: the operation is not acknowledged.
    #[error("no quorum: {0}")]
    Unavailable(String),
    /// The cluster has no owner for a key's partition (no live workers).
    #[error("partition {0} has no owner")]
    NoOwner(u32),
    /// The request was refused by the node.
    #[error("refused: {0}")]
    Refused(String),
    /// A write may or may not have been applied: it reached some replicas (or a request
    /// was sent and its answer was lost) but no quorum acknowledged it in time. Reading
    /// the key tells which; writing it again is safe.
    #[error("outcome unknown, the write may or may not have been applied: {0}")]
    OutcomeUnknown(String),
    /// The store is closed (shutting down, or its writer failed).
    #[error("store closed: {0}")]
    Closed(String),
}

impl DhtError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DhtError::Io {
            context: context.into(),
            source,
        }
    }
}
