//! The one error type of the transport.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ringflow_proto::ProtoError;
use thiserror::Error;

/// Everything that can go wrong in certificate handling, TLS setup and QUIC transport.
///
/// Errors name the file, address or peer they concern. Library types (quinn, rustls,
/// rcgen) are rendered into strings so that they stay out of this crate's public API.
#[derive(Debug, Error)]
pub enum NetError {
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "writing", "creating directory", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file would be overwritten although overwriting was not requested.
    #[error("{} already exists (pass force to overwrite it)", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A certificate, cluster or SAN name is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Generating or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    CertGen(String),
    /// A PEM file does not hold what it should, or its content is unusable.
    #[error("invalid certificate material in {}: {reason}", path.display())]
    InvalidCert {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A [`crate::NetConfig`] value is out of range.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// Building the TLS / QUIC crypto configuration failed.
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    /// The call needs a running tokio runtime and none was found.
    #[error("no tokio runtime: endpoints must be created inside a tokio runtime")]
    NoRuntime,
    /// Binding the UDP socket failed.
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A socket operation on a bound endpoint failed.
    #[error("socket error: {0}")]
    Socket(#[source] std::io::Error),
    /// This endpoint cannot reach the address (wrong family, endpoint closed, ...).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The target address.
        addr: SocketAddr,
        /// Why the attempt could not even start.
        reason: String,
    },
    /// The QUIC / TLS handshake with a peer failed (unknown CA, wrong name, refused, ...).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer address.
        addr: SocketAddr,
        /// The reason reported by QUIC / TLS.
        reason: String,
    },
    /// The handshake with a peer did not complete in time.
    #[error("handshake with {addr} timed out after {after:?}")]
    Timeout {
        /// The peer address.
        addr: SocketAddr,
        /// The time that was allowed.
        after: Duration,
    },
    /// The connection was closed or lost while it was being used.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// A stream failed: reset or stopped by the peer, or already finished locally.
    #[error("stream failed: {0}")]
    Stream(String),
    /// A message could not be encoded into a frame (too large, unserializable).
    #[error("cannot send message: {0}")]
    Encode(#[source] ProtoError),
    /// The peer broke the framing protocol: oversized, truncated or malformed frame.
    ///
    /// The caller should close the connection (see [`NetError::is_protocol_violation`]).
    #[error("protocol violation by peer: {0}")]
    Protocol(#[source] ProtoError),
}

impl NetError {
    /// True when the peer sent bytes that break the framing protocol.
    ///
    /// The receiving side should then close the whole connection, e.g. with
    /// [`crate::Connection::close`] and [`crate::CLOSE_PROTOCOL_VIOLATION`].
    pub fn is_protocol_violation(&self) -> bool {
        matches!(self, NetError::Protocol(_))
    }

    /// True when the error means the connection is gone (closed, reset, timed out).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, NetError::ConnectionLost(_))
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        NetError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_cert(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        NetError::InvalidCert {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<rcgen::Error> for NetError {
    fn from(e: rcgen::Error) -> Self {
        NetError::CertGen(e.to_string())
    }
}

impl From<rustls::Error> for NetError {
    fn from(e: rustls::Error) -> Self {
        NetError::Tls(e.to_string())
    }
}
