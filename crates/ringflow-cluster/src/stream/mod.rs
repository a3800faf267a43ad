//! The stream runtime on workers: operator instances as actix actors on their own
//! threads, credit-bounded inputs, one QUIC stream per cross-node (edge, sender,
//! receiver), and the job control stream from the coordinator. The operator logic is
//! `ringflow-stream`'s sans-IO instance executor; this module only moves its messages.

mod actors;
mod credit;
mod job;
mod service;

pub use service::{service, StreamService};

/// Name of the worker service (in hellos).
pub const SERVICE: &str = "stream";
