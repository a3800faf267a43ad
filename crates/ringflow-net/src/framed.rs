//! Framed QUIC streams: one MessagePack message per length-prefixed frame.

use quinn::{ReadError, VarInt, WriteError};
use ringflow_proto::{encode_frame, FrameDecoder};
use serde::de::DeserializeOwned;
use serde::Serialize;

use std::sync::Arc;

use crate::traffic::PeerTraffic;
use crate::{describe_connection_error, NetError, CLOSE_PROTOCOL_VIOLATION};

/// Largest chunk read from a stream at once; bounds over-buffering past the current frame.
const READ_CHUNK: usize = 64 * 1024;

fn write_error(e: WriteError) -> NetError {
    match e {
        WriteError::ConnectionLost(e) => NetError::ConnectionLost(describe_connection_error(&e)),
        WriteError::Stopped(code) => NetError::Stream(format!("stopped by peer with code {code}")),
        other => NetError::Stream(other.to_string()),
    }
}

fn read_error(e: ReadError) -> NetError {
    match e {
        ReadError::ConnectionLost(e) => NetError::ConnectionLost(describe_connection_error(&e)),
        ReadError::Reset(code) => NetError::Stream(format!("reset by peer with code {code}")),
        other => NetError::Stream(other.to_string()),
    }
}

/// The sending half of a framed stream.
///
/// Dropping it finishes the stream gracefully, like [`FramedSend::finish`].
#[derive(Debug)]
pub struct FramedSend {
    inner: quinn::SendStream,
    max_frame: usize,
    traffic: Arc<PeerTraffic>,
}

impl FramedSend {
    pub(crate) fn new(
        inner: quinn::SendStream,
        max_frame: usize,
        traffic: Arc<PeerTraffic>,
    ) -> Self {
        Self {
            inner,
            max_frame,
            traffic,
        }
    }

    /// Encodes `msg` as one frame and writes it.
    ///
    /// Waits while the peer's flow-control window is full (that is the backpressure).
    /// Fails with [`NetError::Encode`] for a message larger than `max_frame`, without
    /// writing anything; the stream stays usable.
    ///
    /// Not cancel-safe: a future dropped midway may leave a partial frame, which the
    /// peer reports as truncated; [`FramedSend::reset`] the stream in that case.
    pub async fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), NetError> {
        let frame = encode_frame(msg, self.max_frame).map_err(NetError::Encode)?;
        self.inner.write_all(&frame).await.map_err(write_error)?;
        self.traffic.frames_sent.inc();
        self.traffic.bytes_sent.inc_by(frame.len() as u64);
        Ok(())
    }

    /// Writes raw bytes, bypassing the framing. For tests and fault injection only.
    /// Counted as bytes sent, not as frames.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.inner.write_all(bytes).await.map_err(write_error)?;
        self.traffic.bytes_sent.inc_by(bytes.len() as u64);
        Ok(())
    }

    /// Ends the stream: the peer's [`FramedRecv::recv`] returns `Ok(None)` after the
    /// frames already written. Does not wait for delivery.
    pub fn finish(&mut self) -> Result<(), NetError> {
        self.inner
            .finish()
            .map_err(|e| NetError::Stream(e.to_string()))
    }

    /// Abandons the stream: unsent data is discarded and the peer's reads fail with
    /// `code`.
    pub fn reset(&mut self, code: u32) -> Result<(), NetError> {
        self.inner
            .reset(VarInt::from_u32(code))
            .map_err(|e| NetError::Stream(e.to_string()))
    }

    /// The QUIC stream id, unique within the connection.
    pub fn id(&self) -> u64 {
        self.inner.id().into()
    }
}

/// The receiving half of a framed stream.
#[derive(Debug)]
pub struct FramedRecv {
    inner: quinn::RecvStream,
    decoder: FrameDecoder,
    failed: bool,
    ended: bool,
    traffic: Arc<PeerTraffic>,
}

impl FramedRecv {
    pub(crate) fn new(
        inner: quinn::RecvStream,
        max_frame: usize,
        traffic: Arc<PeerTraffic>,
    ) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(max_frame),
            failed: false,
            ended: false,
            traffic,
        }
    }

    /// Receives the next message.
    ///
    /// `Ok(None)` when the peer finished the stream cleanly after a complete frame.
    /// Fails with a protocol violation ([`NetError::is_protocol_violation`]) when the
    /// peer announces a frame above `max_frame` (detected from the 4-byte prefix, before
    /// any of the body is buffered), sends a body that does not decode as `T`, or ends
    /// the stream inside a frame. After such an error the stream is stopped and every
    /// further call fails; the caller should close the connection.
    ///
    /// Cancel-safe: dropping the future loses no data, so it can sit in `tokio::select!`.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, NetError> {
        if self.failed {
            return Err(NetError::Stream(
                "stream already failed a protocol check".into(),
            ));
        }
        loop {
            match self.decoder.decode_next::<T>() {
                Ok(Some(msg)) => {
                    self.traffic.frames_received.inc();
                    return Ok(Some(msg));
                }
                Ok(None) => {}
                Err(e) => return Err(self.violation(e)),
            }
            if self.ended {
                return Ok(None);
            }
            match self.inner.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => {
                    self.traffic.bytes_received.inc_by(chunk.bytes.len() as u64);
                    self.decoder.push(&chunk.bytes);
                }
                Ok(None) => {
                    self.ended = true;
                    return match self.decoder.finish() {
                        Ok(()) => Ok(None),
                        Err(e) => Err(self.violation(e)),
                    };
                }
                Err(e) => return Err(read_error(e)),
            }
        }
    }

    fn violation(&mut self, e: ringflow_proto::ProtoError) -> NetError {
        self.failed = true;
        // Tell the sender to stop; ignore "already closed".
        let _ = self.inner.stop(VarInt::from_u32(CLOSE_PROTOCOL_VIOLATION));
        NetError::Protocol(e)
    }

    /// Tells the peer to stop sending on this stream, with `code`.
    pub fn stop(&mut self, code: u32) -> Result<(), NetError> {
        self.inner
            .stop(VarInt::from_u32(code))
            .map_err(|e| NetError::Stream(e.to_string()))
    }

    /// The QUIC stream id, unique within the connection.
    pub fn id(&self) -> u64 {
        self.inner.id().into()
    }
}
