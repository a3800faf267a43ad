//! Errors of the RESP parsers.

use thiserror::Error;

use crate::Reply;

/// Which limit a [`RespError::TooLarge`] exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A bulk string length above [`Limits::max_bulk`](crate::Limits::max_bulk).
    Bulk,
    /// An argument or aggregate element count above [`Limits::max_args`](crate::Limits::max_args).
    Args,
    /// An inline request line (or reply line) above [`Limits::max_inline`](crate::Limits::max_inline).
    Inline,
}

impl LimitKind {
    /// The text Redis sends after `Protocol error: ` when this limit is exceeded.
    pub fn redis_text(self) -> &'static str {
        match self {
            LimitKind::Bulk => "invalid bulk length",
            LimitKind::Args => "invalid multibulk length",
            LimitKind::Inline => "too big inline request",
        }
    }
}

/// A protocol violation. The parser that returned it stays failed (it returns the same error
/// again); the caller sends [`RespError::to_reply`] and closes the connection, as Redis does.
///
/// `Display` is the text Redis uses where one exists, e.g. `Protocol error: invalid bulk length`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RespError {
    /// Malformed input. The string is the part after `Protocol error: `.
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// A declared or received size is above its configured limit.
    #[error("Protocol error: {}", .kind.redis_text())]
    TooLarge {
        /// Which limit.
        kind: LimitKind,
        /// The declared length or count; for a line (whose end was not seen) `limit + 1`.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A reply nests aggregates deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("Protocol error: reply nested deeper than {limit} levels")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
}

impl RespError {
    /// The error reply to send before closing: `-ERR Protocol error: ...`.
    pub fn to_reply(&self) -> Reply {
        Reply::Error(format!("ERR {self}"))
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        RespError::Protocol(msg.into())
    }

    pub(crate) fn too_large(kind: LimitKind, len: u64, limit: usize) -> Self {
        RespError::TooLarge { kind, len, limit }
    }
}

/// A byte shown in an error message: printable ASCII as itself, anything else as `\xHH`,
/// so that a message never carries a raw control byte.
/// Keeps the first error, so that a failed parser keeps failing the same way.
pub(crate) fn remember<T>(
    failed: &mut Option<RespError>,
    res: Result<T, RespError>,
) -> Result<T, RespError> {
    if let Err(e) = &res {
        *failed = Some(e.clone());
    }
    res
}

pub(crate) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        char::from(b).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}
