//! Records and their framing, shared by WAL segments and snapshots.
//!
//! A frame is `u32 LE payload length`, `u32 LE CRC-32 (IEEE, crc32fast) of the payload`, then
//! the payload: a MessagePack (rmp-serde, compact) encoding of a record. Keys and values are
//! MessagePack `bin` (not arrays of integers), an entry is `[[ts, node], value | nil]`.

use std::fmt;
use std::io;

use ringflow_ring::PartitionId;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::{DhtError, Entry, Version};

/// Bytes of a frame header (length + CRC).
pub(crate) const FRAME_HEADER: usize = 8;

/// Room left for the record envelope around a key and a value (generous).
pub(crate) const RECORD_OVERHEAD: usize = 256;

/// A WAL record, decoded.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum Record {
    /// A write that superseded the entry before it.
    Put {
        partition: PartitionId,
        #[serde(deserialize_with = "de_bytes")]
        key: Vec<u8>,
        #[serde(deserialize_with = "de_entry")]
        entry: Entry,
    },
    /// The partition was dropped: every entry before this record is forgotten.
    DropPartition { partition: PartitionId },
}

/// A WAL record to encode (borrows; same wire shape as [`Record`]).
#[derive(Serialize)]
pub(crate) enum RecordRef<'a> {
    Put {
        partition: PartitionId,
        #[serde(serialize_with = "ser_bytes")]
        key: &'a [u8],
        #[serde(serialize_with = "ser_entry")]
        entry: &'a Entry,
    },
    DropPartition {
        partition: PartitionId,
    },
}

/// A snapshot record, decoded.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum SnapshotRecord {
    /// First record: format version and the first WAL segment not covered.
    Header { format: u32, next_segment: u64 },
    /// One entry (same shape as [`Record::Put`]).
    Put {
        partition: PartitionId,
        #[serde(deserialize_with = "de_bytes")]
        key: Vec<u8>,
        #[serde(deserialize_with = "de_entry")]
        entry: Entry,
    },
    /// Last record: how many entries precede it.
    End { entries: u64 },
}

/// A snapshot record to encode (same wire shape as [`SnapshotRecord`]).
#[derive(Serialize)]
pub(crate) enum SnapshotRecordRef<'a> {
    Header {
        format: u32,
        next_segment: u64,
    },
    Put {
        partition: PartitionId,
        #[serde(serialize_with = "ser_bytes")]
        key: &'a [u8],
        #[serde(serialize_with = "ser_entry")]
        entry: &'a Entry,
    },
    End {
        entries: u64,
    },
}

/// Appends one framed record to `out`.
pub(crate) fn encode_frame<T: Serialize>(record: &T, out: &mut Vec<u8>) -> Result<(), DhtError> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    let encoded = rmp_serde::encode::write(out, record)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            u32::try_from(out.len() - start - FRAME_HEADER)
                .map_err(|_| "record longer than 4 GiB".to_string())
        });
    let len = match encoded {
        Ok(len) => len,
        Err(reason) => {
            out.truncate(start);
            return Err(DhtError::io(
                "encoding a store record",
                io::Error::new(io::ErrorKind::InvalidInput, reason),
            ));
        }
    };
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What is found at an offset of a buffer of frames.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A frame whose CRC matches; the next frame starts at `next`.
    Ok { payload: &'a [u8], next: usize },
    /// The end of the buffer, exactly.
    End,
    /// Not a whole, intact frame.
    Bad(&'static str),
}

/// Reads the 8-byte frame header: (length, crc).
pub(crate) fn header(bytes: &[u8; FRAME_HEADER]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, h] = *bytes;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// The frame starting at `pos` of `buf`.
pub(crate) fn frame_at(buf: &[u8], pos: usize) -> Frame<'_> {
    let rest = buf.get(pos..).unwrap_or_default();
    if rest.is_empty() {
        return Frame::End;
    }
    let Some(head) = rest.first_chunk::<FRAME_HEADER>() else {
        return Frame::Bad("incomplete frame header");
    };
    let (len, crc) = header(head);
    if len == 0 {
        return Frame::Bad("zero-length frame");
    }
    let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len as usize) else {
        return Frame::Bad("frame runs past the end of the file");
    };
    if crc32fast::hash(payload) != crc {
        return Frame::Bad("checksum mismatch");
    }
    Frame::Ok {
        payload,
        next: pos + FRAME_HEADER + len as usize,
    }
}

/// The first offset after `from` where an intact frame that decodes as a [`Record`] starts.
///
/// Used to tell a torn tail (nothing valid follows) from corruption (valid records follow).
pub(crate) fn next_valid_record(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(FRAME_HEADER)).find(|&pos| match frame_at(buf, pos) {
        Frame::Ok { payload, .. } => decode_record(payload).is_ok(),
        _ => false,
    })
}

/// Decodes a WAL record payload.
pub(crate) fn decode_record(payload: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
    rmp_serde::from_slice(payload)
}

/// Decodes a snapshot record payload.
pub(crate) fn decode_snapshot_record(
    payload: &[u8],
) -> Result<SnapshotRecord, rmp_serde::decode::Error> {
    rmp_serde::from_slice(payload)
}

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

fn ser_bytes<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

fn ser_entry<S: Serializer>(entry: &&Entry, s: S) -> Result<S::Ok, S::Error> {
    let mut t = s.serialize_tuple(2)?;
    t.serialize_element(&entry.version)?;
    t.serialize_element(&entry.value.as_deref().map(Bytes))?;
    t.end()
}

/// Owned bytes that decode from MessagePack `bin` (or, leniently, an array of integers).
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    ByteBuf::deserialize(d).map(|b| b.0)
}

fn de_entry<'de, D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
    let (version, value) = <(Version, Option<ByteBuf>)>::deserialize(d)?;
    Ok(Entry {
        version,
        value: value.map(|b| b.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: u64, value: Option<&[u8]>) -> Entry {
        Entry {
            version: Version { ts, node: 7 },
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn records_round_trip_and_bytes_are_compact() {
        let e = entry(u64::MAX, Some(&[0xff; 100]));
        let mut buf = Vec::new();
        encode_frame(
            &RecordRef::Put {
                partition: PartitionId(3),
                key: b"k\xff",
                entry: &e,
            },
            &mut buf,
        )
        .unwrap();
        // 100 value bytes of 0xff as `bin` take ~102 bytes, not ~200 as an int array would.
        assert!(buf.len() < 150, "{}", buf.len());
        let tomb = entry(1, None);
        encode_frame(
            &RecordRef::Put {
                partition: PartitionId(4),
                key: b"",
                entry: &tomb,
            },
            &mut buf,
        )
        .unwrap();
        encode_frame(
            &RecordRef::DropPartition {
                partition: PartitionId(5),
            },
            &mut buf,
        )
        .unwrap();
        let mut pos = 0;
        let mut got = Vec::new();
        while let Frame::Ok { payload, next } = frame_at(&buf, pos) {
            got.push(decode_record(payload).unwrap());
            pos = next;
        }
        assert_eq!(frame_at(&buf, pos), Frame::End);
        assert_eq!(
            got,
            vec![
                Record::Put {
                    partition: PartitionId(3),
                    key: b"k\xff".to_vec(),
                    entry: e
                },
                Record::Put {
                    partition: PartitionId(4),
                    key: vec![],
                    entry: tomb
                },
                Record::DropPartition {
                    partition: PartitionId(5)
                },
            ]
        );
    }

    #[test]
    fn snapshot_records_round_trip() {
        let e = entry(9, Some(b"v"));
        let mut buf = Vec::new();
        for r in [
            SnapshotRecordRef::Header {
                format: 1,
                next_segment: 12,
            },
            SnapshotRecordRef::Put {
                partition: PartitionId(1),
                key: b"a",
                entry: &e,
            },
            SnapshotRecordRef::End { entries: 1 },
        ] {
            encode_frame(&r, &mut buf).unwrap();
        }
        let mut pos = 0;
        let mut got = Vec::new();
        while let Frame::Ok { payload, next } = frame_at(&buf, pos) {
            got.push(decode_snapshot_record(payload).unwrap());
            pos = next;
        }
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[1],
            SnapshotRecord::Put {
                partition: PartitionId(1),
                key: b"a".to_vec(),
                entry: e
            }
        );
    }

    #[test]
    fn damaged_frames_are_bad() {
        let mut buf = Vec::new();
        encode_frame(
            &RecordRef::DropPartition {
                partition: PartitionId(1),
            },
            &mut buf,
        )
        .unwrap();
        for cut in 1..buf.len() {
            assert!(matches!(frame_at(&buf[..cut], 0), Frame::Bad(_)), "{cut}");
        }
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(frame_at(&flipped, 0), Frame::Bad("checksum mismatch"));
        assert_eq!(frame_at(&[0; 64], 0), Frame::Bad("zero-length frame"));
        assert_eq!(next_valid_record(&[0; 64], 0), None);
        let mut two = vec![1, 2, 3];
        two.extend_from_slice(&buf);
        assert_eq!(next_valid_record(&two, 0), Some(3));
    }
}
