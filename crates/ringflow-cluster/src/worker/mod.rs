//! The worker: sans-IO core, actix actor, control session with the coordinator, and
//! the running handle.

mod actor;
mod core;
mod session;

pub use self::actor::WorkerActor;
pub use self::core::{ViewChange, WorkerCore};
pub(crate) use self::session::resolve as session_resolve;
pub use self::session::WorkerHandle;
