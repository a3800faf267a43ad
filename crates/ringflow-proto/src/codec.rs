//! Length-prefixed MessagePack framing.
//!
//! A frame is a 4-byte big-endian body length followed by the body, a MessagePack
//! (rmp-serde, named fields) encoding of one message. The decoder is a pure state
//! machine: push bytes in as they arrive, pull complete frames out. It never allocates
//! more than the configured maximum frame size for one frame, whatever a peer announces.

use serde::{de::DeserializeOwned, Serialize};

use crate::ProtoError;

/// Default maximum frame body size: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Size of the length prefix in bytes.
pub const LENGTH_PREFIX: usize = 4;

/// Encodes `msg` as one frame (length prefix included).
///
/// Fails with [`ProtoError::Oversize`] if the body would exceed `max_frame`.
pub fn encode_frame<T: Serialize + ?Sized>(
    msg: &T,
    max_frame: usize,
) -> Result<Vec<u8>, ProtoError> {
    let mut out = vec![0u8; LENGTH_PREFIX];
    rmp_serde::encode::write_named(&mut out, msg).map_err(|e| ProtoError::Encode(e.to_string()))?;
    let len = out.len() - LENGTH_PREFIX;
    if len > max_frame || len > u32::MAX as usize {
        return Err(ProtoError::Oversize {
            len,
            max: max_frame,
        });
    }
    out[..LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one MessagePack body into a message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtoError> {
    rmp_serde::from_slice(body).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Incremental frame decoder (sans-IO).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames whose body exceeds `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_frame,
        }
    }

    /// The configured maximum body size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends bytes received from the transport.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// How many more bytes are needed before the next frame can complete (0 if one is ready).
    ///
    /// Lets a transport read exactly what it needs without over-buffering.
    pub fn wanted(&self) -> usize {
        let avail = self.buffered();
        if avail < LENGTH_PREFIX {
            return LENGTH_PREFIX - avail;
        }
        let len = self.announced().unwrap_or(0);
        (LENGTH_PREFIX + len).saturating_sub(avail)
    }

    fn announced(&self) -> Option<usize> {
        let p = self.buf.get(self.start..self.start + LENGTH_PREFIX)?;
        Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize)
    }

    /// Returns the next complete frame body, `Ok(None)` if more bytes are needed.
    ///
    /// An announced length above the maximum is an error at once, before any of the
    /// body is buffered. After an error the decoder must not be used again.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        let Some(len) = self.announced() else {
            return Ok(None);
        };
        if len > self.max_frame {
            return Err(ProtoError::Oversize {
                len,
                max: self.max_frame,
            });
        }
        let end = self.start + LENGTH_PREFIX + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[self.start + LENGTH_PREFIX..end].to_vec();
        self.start = end;
        Ok(Some(body))
    }

    /// Returns the next complete frame decoded as `T`.
    pub fn decode_next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ProtoError> {
        match self.next_frame()? {
            Some(body) => decode_body(&body).map(Some),
            None => Ok(None),
        }
    }

    /// Call at end of stream: an error if a partial frame is still buffered.
    pub fn finish(&self) -> Result<(), ProtoError> {
        let buffered = self.buffered();
        if buffered == 0 {
            return Ok(());
        }
        let needed = LENGTH_PREFIX + self.announced().unwrap_or(0);
        Err(ProtoError::Truncated { buffered, needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        id: u32,
        name: String,
        data: Vec<u8>,
    }

    fn msg(id: u32) -> Msg {
        Msg {
            id,
            name: format!("m{id}"),
            data: vec![id as u8; id as usize % 50],
        }
    }

    #[test]
    fn roundtrip_in_arbitrary_chunks() {
        let mut wire = Vec::new();
        for i in 0..20 {
            wire.extend(encode_frame(&msg(i), 1024).unwrap());
        }
        for chunk in [1usize, 2, 3, 7, 64, 4096] {
            let mut dec = FrameDecoder::new(1024);
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                dec.push(c);
                while let Some(m) = dec.decode_next::<Msg>().unwrap() {
                    got.push(m);
                }
            }
            dec.finish().unwrap();
            assert_eq!(got, (0..20).map(msg).collect::<Vec<_>>(), "chunk {chunk}");
        }
    }

    #[test]
    fn oversize_announcement_rejected_before_buffering() {
        let mut dec = FrameDecoder::new(100);
        dec.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            dec.next_frame(),
            Err(ProtoError::Oversize {
                len: u32::MAX as usize,
                max: 100
            })
        );
    }

    #[test]
    fn oversize_encode_rejected() {
        let big = Msg {
            id: 1,
            name: String::new(),
            data: vec![0; 200],
        };
        assert!(matches!(
            encode_frame(&big, 100),
            Err(ProtoError::Oversize { .. })
        ));
    }

    #[test]
    fn truncated_stream_detected() {
        let wire = encode_frame(&msg(7), 1024).unwrap();
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire[..wire.len() - 1]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(matches!(dec.finish(), Err(ProtoError::Truncated { .. })));
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire[..2]);
        assert!(matches!(dec.finish(), Err(ProtoError::Truncated { .. })));
    }

    #[test]
    fn garbage_body_is_malformed_not_panic() {
        let mut dec = FrameDecoder::new(1024);
        let body = [0xc1u8, 0xff, 0x00, 0x13, 0x37];
        dec.push(&(body.len() as u32).to_be_bytes());
        dec.push(&body);
        assert!(matches!(
            dec.decode_next::<Msg>(),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn wrong_shape_is_malformed() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&encode_frame(&("not", "a", "msg"), 1024).unwrap());
        assert!(matches!(
            dec.decode_next::<Msg>(),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn empty_frame_is_malformed_message() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&0u32.to_be_bytes());
        assert!(matches!(
            dec.decode_next::<Msg>(),
            Err(ProtoError::Malformed(_))
        ));
    }

    #[test]
    fn wanted_counts_remaining_bytes() {
        let wire = encode_frame(&msg(3), 1024).unwrap();
        let mut dec = FrameDecoder::new(1024);
        assert_eq!(dec.wanted(), 4);
        dec.push(&wire[..4]);
        assert_eq!(dec.wanted(), wire.len() - 4);
        dec.push(&wire[4..]);
        assert_eq!(dec.wanted(), 0);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 0usize..512) {
                let mut dec = FrameDecoder::new(max);
                dec.push(&bytes);
                while let Ok(Some(_)) = dec.decode_next::<Msg>() {}
                let _ = dec.finish();
            }

            #[test]
            fn roundtrip_any_split(ids in proptest::collection::vec(0u32..1000, 0..20), split in 0usize..4096) {
                let mut wire = Vec::new();
                for &i in &ids { wire.extend(encode_frame(&msg(i), 4096).unwrap()); }
                let split = split.min(wire.len());
                let mut dec = FrameDecoder::new(4096);
                let mut got = Vec::new();
                for part in [&wire[..split], &wire[split..]] {
                    dec.push(part);
                    while let Some(m) = dec.decode_next::<Msg>().unwrap() { got.push(m); }
                }
                prop_assert!(dec.finish().is_ok());
                prop_assert_eq!(got, ids.iter().map(|&i| msg(i)).collect::<Vec<_>>());
            }
        }
    }
}
