//! The coordinator: sans-IO core, actix actor, QUIC server and the running handle.

mod actor;
mod core;
mod jobs;
mod server;

pub use self::actor::CoordinatorActor;
pub use self::core::{CoordinatorCore, JoinOutcome, Member, PersistedState, Timing, STATE_FORMAT};
pub use self::server::{variant_name, CoordinatorHandle, STATE_FILE};
