//! Prometheus metrics for ringflow nodes.
//!
//! - [`Counter`], [`Gauge`] and [`Histogram`] (fixed buckets, e.g. [`LATENCY_BUCKETS`])
//!   are handles on atomics: cheap to clone and to update from any thread.
//! - A [`Family`] groups the metrics of one name by label values ([`CounterVec`],
//!   [`GaugeVec`], [`HistogramVec`]); the number of label names is part of its type.
//! - A [`Registry`] renders every family in the Prometheus text exposition format
//!   (`# HELP`, `# TYPE`, escaped label values). Each process has one [`global()`]
//!   registry, which is what a node serves.
//! - [`http`] is a minimal HTTP/1.1 endpoint for scrapes (`GET /metrics`) on tokio.
//!
//! ```
//! let r = ringflow_metrics::Registry::new();
//! let sent = r.counter("demo_frames_sent_total", "Frames sent, by peer.", ["peer"]);
//! let to_a = sent.with(["10.0.0.1:7400"]); // look up once, keep the handle
//! to_a.inc();
//! assert!(r.render().contains("demo_frames_sent_total{peer=\"10.0.0.1:7400\"} 1\n"));
//! ```
//!
//! Several nodes in one process (tests) share the global registry: a series without a
//! node label then shows the last writer's value.

#![warn(missing_docs)]

mod error;
pub mod http;
mod metric;
mod registry;
pub mod text;

pub use error::MetricsError;
pub use metric::{Counter, Gauge, Histogram, HistogramSnapshot, LATENCY_BUCKETS};
pub use registry::{CounterVec, Family, GaugeVec, HistogramVec, Kind, Metric, Registry};

/// The process-wide registry that nodes export.
pub fn global() -> &'static Registry {
    static GLOBAL: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}
