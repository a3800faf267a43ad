//! Errors of metric registration.

use thiserror::Error;

/// Why a metric family could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricsError {
    /// The metric name is not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
    /// A label name is not `[a-zA-Z_][a-zA-Z0-9_]*`, starts with `__`, is repeated, or is
    /// reserved (`le` on a histogram).
    #[error("invalid label name {label:?} for metric {metric:?}")]
    InvalidLabel {
        /// The metric.
        metric: String,
        /// The offending label name.
        label: String,
    },
    /// Histogram bucket bounds must be finite and strictly increasing (and at least one).
    #[error("invalid buckets for histogram {0:?}: bounds must be finite and strictly increasing")]
    InvalidBuckets(String),
    /// A family of that name exists with another type, label names or buckets.
    #[error("metric {name:?} is already registered differently: {reason}")]
    Conflict {
        /// The metric.
        name: String,
        /// What differs.
        reason: String,
    },
}
