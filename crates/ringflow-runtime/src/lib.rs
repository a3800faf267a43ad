//! ringflow's stream runtime on workers, a worker service like the DHT: it runs the
//! parts of stream jobs that the coordinator deploys to this worker.
//!
//! Operator and source instances (the sans-IO executors of `ringflow-stream`) run as
//! actix actors, each on a thread of its own; their inputs are credit-bounded queues
//! counted in records ([`credit`](self)); across workers each (edge, sender, receiver)
//! has its own QUIC stream (both halves in `edge`); the coordinator drives each job over
//! a control stream (`service`). This crate only moves messages: the operator logic is
//! `ringflow-stream`'s and the built-ins are `ringflow-ops`'.

mod actors;
mod checkpoints;
mod credit;
mod dir_store;
mod edge;
mod job;
mod metrics;
mod service;

pub use dir_store::DirStore;
pub use ringflow_proto::STREAM_SERVICE as SERVICE;
pub use service::{service, service_with, StreamService};
