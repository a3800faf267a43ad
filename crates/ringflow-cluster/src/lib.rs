//! Coordinator and worker of a ringflow cluster.
//!
//! The coordinator owns membership, failure detection and the epoch-stamped assignment
//! of ring partitions; workers join it over QUIC, heartbeat, and act on the newest table
//! they were sent. Decisions live in sans-IO cores (`now` passed in), wrapped by actix
//! actors; the QUIC endpoint runs on its own Arbiter so the control plane never waits
//! behind other work.
//!
//! Workers host data-plane services ([`WorkerService`]): the DHT (`ringflow-dht`) and the
//! stream runtime (`ringflow-runtime`) plug in here; the coordinator also runs the job
//! manager that deploys stream jobs to them, and [`ClusterClient`] is the client side.
//!
//! With `metrics_listen` set, a node also serves Prometheus metrics over HTTP
//! ([`metrics`]).

pub mod client;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod lease;
pub mod metrics;
mod net;
mod persist;
pub mod service;
pub mod worker;

pub use client::ClusterClient;
pub use config::{
    CoordinatorConfig, DhtSettings, JobDefaults, Problem, StreamSettings, TlsConfig, WorkerConfig,
};
pub use coordinator::{CoordinatorCore, CoordinatorHandle};
pub use error::ClusterError;
pub use lease::{Lease, LeaseRefusal};
pub use net::open_service_stream;
pub use service::{LocalFuture, ServiceContext, ServiceFactory, WorkerService};
pub use worker::{WorkerCore, WorkerHandle};
