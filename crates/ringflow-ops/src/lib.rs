//! ringflow's built-in operators and sources, registered by [`register_builtins`].
//!
//! Stateless transforms, aggregates, event-time windows, sources and sinks of files and
//! TCP sockets (these do I/O), client ports, and the stages of the distributed sort, all
//! written against the `ringflow-stream` traits. Built-ins work on
//! [`ringflow_stream::Value`] (JSON-like) records so they compose with each other and
//! with custom operators that use `Value`; the sort stages work on raw sort records, and
//! the Nexmark source and queries ([`nexmark`]) on typed records end to end.

#![warn(missing_docs)]

pub mod aggregates;
pub mod client;
pub(crate) mod io;
pub mod joins;
pub mod nexmark;
pub mod reservoir;
pub mod sinks;
pub mod sort;
pub mod sources;
pub(crate) mod stats;
#[cfg(test)]
pub(crate) mod testkit;
pub mod transforms;
pub(crate) mod values;
pub mod windows;

pub use reservoir::Reservoir;
use ringflow_stream::Registry;

/// Registers every built-in under its spec name.
pub fn register_builtins(r: &mut Registry) {
    transforms::register(r);
    client::register(r);
    aggregates::register(r);
    windows::register(r);
    joins::register(r);
    sources::register(r);
    sinks::register(r);
    sort::register(r);
    nexmark::register(r);
}

/// A registry holding ringflow's built-in operators and sources (what
/// `ringflow_stream::Registry::with_builtins` was).
pub fn with_builtins() -> Registry {
    let mut r = Registry::new();
    register_builtins(&mut r);
    r
}
