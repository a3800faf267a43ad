//! Sans-IO RESP codec for ringflow's Redis-compatible gateway: bytes in, values out.
//! [`RequestParser`] turns client bytes (RESP arrays or inline lines) into [`Command`]s and
//! [`Reply::encode`] writes RESP2/RESP3 replies; [`ReplyParser`] and [`encode_command`] are the client side.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod buf;
mod error;
mod reply;
mod reply_parser;
mod request;

pub use error::{LimitKind, RespError};
pub use reply::{format_double, ProtoVersion, Reply};
pub use reply_parser::ReplyParser;
pub use request::{encode_command, Command, RequestParser};

/// Size limits applied by the parsers to untrusted input.
///
/// Nothing is allocated from a declared length before the bytes arrive: a limit bounds what
/// a peer may send, and memory grows only with bytes actually received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (and verbatim string / blob error) length, like Redis
    /// `proto-max-bulk-len`. Default 512 MiB.
    pub max_bulk: usize,
    /// Largest number of arguments in a request, and of elements (or pairs, for maps) in a
    /// reply aggregate. Default 1 048 576.
    pub max_args: usize,
    /// Longest inline request line, and longest reply line (simple string, error, number),
    /// without its line terminator. Default 64 KiB, like Redis `PROTO_INLINE_MAX_SIZE`.
    pub max_inline: usize,
    /// Deepest nesting of aggregates in a reply ([`ReplyParser`] only; requests are flat).
    /// Default 64.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: 64 * 1024,
            max_depth: 64,
        }
    }
}
