//! ringflow's built-in operators and sources, registered by [`register_builtins`].
//!
//! Built-ins work on [`crate::Value`] (JSON-like) records so they compose with each other
//! and with custom operators that use `Value`.

pub mod aggregates;
pub mod client;
pub mod sinks;
pub mod sort;
pub mod sources;
pub mod transforms;
pub mod windows;

use crate::Registry;

/// Registers every built-in under its spec name.
pub fn register_builtins(r: &mut Registry) {
    transforms::register(r);
    client::register(r);
    aggregates::register(r);
    windows::register(r);
    sources::register(r);
    sinks::register(r);
    sort::register(r);
}
