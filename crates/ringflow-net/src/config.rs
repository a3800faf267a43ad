//! Transport limits and timers.

use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};
use ringflow_proto::DEFAULT_MAX_FRAME;

use crate::NetError;

/// Limits and timers of the QUIC transport, applied to both sides of every connection.
///
/// quinn's defaults (100 streams per direction, 1.25 MB stream window, unbounded
/// connection window) are too small for one stream per data edge and unbounded for
/// memory; these defaults are sized for ringflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Largest frame body accepted or sent, in bytes (default 16 MiB).
    pub max_frame: usize,
    /// A connection with no traffic for this long is dead (default 10 s). Also bounds
    /// [`crate::Endpoint::connect`] and the wait in [`crate::Endpoint::shutdown`].
    pub idle_timeout: Duration,
    /// Interval of keep-alive pings on idle connections (default 2 s, 0 = off); must be
    /// below `idle_timeout`.
    pub keep_alive: Duration,
    /// Concurrent bidirectional streams a peer may open (default 1024).
    pub max_bi_streams: u32,
    /// Concurrent unidirectional streams a peer may open (default 1024).
    pub max_uni_streams: u32,
    /// Per-stream receive window in bytes: unread data buffered per stream (default 4 MiB).
    pub stream_window: u64,
    /// Per-connection receive window and send buffer in bytes (default 32 MiB).
    pub conn_window: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            max_bi_streams: 1024,
            max_uni_streams: 1024,
            stream_window: 4 * 1024 * 1024,
            conn_window: 32 * 1024 * 1024,
        }
    }
}

impl NetConfig {
    /// Checks the values for consistency.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.max_frame == 0 || self.max_frame > u32::MAX as usize {
            return Err(NetError::Config(format!(
                "max_frame must be in 1..=4294967295, got {}",
                self.max_frame
            )));
        }
        if self.idle_timeout.is_zero() {
            return Err(NetError::Config("idle_timeout must not be zero".into()));
        }
        if !self.keep_alive.is_zero() && self.keep_alive >= self.idle_timeout {
            return Err(NetError::Config(format!(
                "keep_alive ({:?}) must be below idle_timeout ({:?})",
                self.keep_alive, self.idle_timeout
            )));
        }
        if self.stream_window == 0 || self.conn_window == 0 {
            return Err(NetError::Config(
                "stream_window and conn_window must not be zero".into(),
            ));
        }
        Ok(())
    }

    /// The quinn transport configuration for these values.
    pub(crate) fn transport(&self) -> Result<TransportConfig, NetError> {
        self.validate()?;
        let varint = |what: &str, v: u64| {
            VarInt::from_u64(v).map_err(|_| NetError::Config(format!("{what} too large: {v}")))
        };
        let idle = IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            NetError::Config(format!("idle_timeout too large: {:?}", self.idle_timeout))
        })?;
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_bi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_uni_streams))
            .stream_receive_window(varint("stream_window", self.stream_window)?)
            .receive_window(varint("conn_window", self.conn_window)?)
            .send_window(self.conn_window)
            .max_idle_timeout(Some(idle))
            .keep_alive_interval((!self.keep_alive.is_zero()).then_some(self.keep_alive))
            // Datagrams are unreliable and dropped under load: never offered.
            .datagram_receive_buffer_size(None);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_builds() {
        let cfg = NetConfig::default();
        cfg.validate().expect("valid");
        cfg.transport().expect("transport");
    }

    #[test]
    fn bad_values_rejected() {
        let mut cfg = NetConfig {
            keep_alive: Duration::from_secs(20),
            ..NetConfig::default()
        };
        assert!(cfg.validate().is_err());
        cfg.keep_alive = Duration::ZERO;
        assert!(cfg.validate().is_ok());
        cfg.max_frame = 0;
        assert!(cfg.validate().is_err());
        cfg.max_frame = 1;
        cfg.stream_window = u64::MAX;
        assert!(cfg.transport().is_err());
    }
}
