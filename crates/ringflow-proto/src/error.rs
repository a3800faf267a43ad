//! Errors of the wire protocol.

use thiserror::Error;

/// Everything that can go wrong while encoding, decoding or negotiating.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// A frame's length prefix announced more than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    Oversize {
        /// Announced (or encoded) length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {buffered} bytes buffered, {needed} needed")]
    Truncated {
        /// Bytes that were buffered when the stream ended.
        buffered: usize,
        /// Bytes the current frame needed in total (prefix included).
        needed: usize,
    },
    /// The frame body is not a valid MessagePack encoding of the expected message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The versioned handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
}
