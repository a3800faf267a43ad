//! ringflow's stream model, free of sockets and actors (sans-IO).
//!
//! Users write [`Operator`]s and [`Source`]s against these traits and register them by
//! name in a [`Registry`]; a [`JobSpec`] names a graph of them and [`plan()`] validates it
//! into a [`JobPlan`]. [`instance`] drives one operator or source instance from input
//! messages, watermarks and a clock passed in, and says what to send where (batched in
//! [`outputs`], routed by [`routing`]): the runtime in `ringflow-runtime` only moves
//! those messages between actors and over QUIC. The built-in operators live in the
//! `ringflow-ops` crate.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod extensions;
pub mod instance;
pub mod local;
pub mod operator;
pub mod outputs;
pub mod plan;
pub mod registry;
pub mod routing;
pub mod source;
pub mod spec;
pub mod state;
pub mod testing;
pub mod two_input;
pub mod wire;

pub use data::{AnyBatch, Batch, Data, EventTime, Item, Key, Message, PortType, Value};
pub use error::{SpecError, StreamError};
pub use extensions::Extensions;
pub use local::LocalRunner;
pub use operator::{Context, Drain, InitContext, OpError, OpResult, Operator, Timer};
pub use plan::{plan, EdgePlan, JobPlan, VertexPlan};
pub use registry::Registry;
pub use source::{Source, SourceOutput, SourcePoll};
pub use spec::{EdgeKind, InputSpec, JobSettings, JobSpec, RescaleMode, VertexSpec};
pub use state::{KeyedState, PartitionedState};
pub use two_input::{Side, TwoInput};
