//! The ringflow wire protocol, sans-IO.
//!
//! Length-prefixed MessagePack frames with a configured maximum size, a versioned
//! handshake, and the typed control-plane messages exchanged by coordinators, workers
//! and clients. No sockets, no clocks, no actors: the transport feeds bytes in and
//! takes bytes out, which keeps this crate deterministic and fuzzable.

pub mod codec;
pub mod error;
pub mod handshake;
pub mod jobs;
pub mod messages;

pub use codec::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME, LENGTH_PREFIX};
pub use error::ProtoError;
pub use handshake::{Hello, HelloReply, PeerRole, MAGIC, PROTOCOL_VERSION};
pub use jobs::*;
pub use messages::*;
