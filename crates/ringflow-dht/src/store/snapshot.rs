//! Snapshots: every entry of the store, and the first WAL segment they do not cover.
//!
//! A snapshot is a sequence of frames (see `codec`): `Header { format, next_segment }`, one
//! `Put` per entry (partitions ascending, keys ascending, tombstones included), then
//! `End { entries }`, and nothing after. It is written to `snapshot-N.bin.tmp`, fsynced,
//! renamed to `snapshot-N.bin` and the directory fsynced, so a visible snapshot is complete.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write as _};
use std::path::Path;

use ringflow_ring::PartitionId;

use crate::{DhtError, Entry};

use super::codec::{
    decode_snapshot_record, encode_frame, header, SnapshotRecord, SnapshotRecordRef, FRAME_HEADER,
};
use super::wal::{snapshot_name, sync_dir, TMP_SUFFIX};
use super::Partitions;

/// Format version written in the header.
const FORMAT: u32 = 1;

/// Writes the snapshot covering segments before `next_segment` from the live map.
///
/// Partitions are copied one at a time under their shard's read lock, so writes continue;
/// entries newer than segment `next_segment` may be included, which replay tolerates (applying
/// a record twice, or over a newer state, changes nothing: see the module docs of `store`).
/// Returns the number of entries written.
pub(crate) fn write(dir: &Path, next_segment: u64, map: &Partitions) -> Result<u64, DhtError> {
    let name = snapshot_name(next_segment);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let result = write_tmp(&tmp, next_segment, map);
    let entries = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let path = dir.join(&name);
    fs::rename(&tmp, &path).map_err(|e| DhtError::io(format!("renaming {}", tmp.display()), e))?;
    sync_dir(dir)?;
    Ok(entries)
}

fn write_tmp(tmp: &Path, next_segment: u64, map: &Partitions) -> Result<u64, DhtError> {
    let io = |e| DhtError::io(format!("writing {}", tmp.display()), e);
    let file = File::create(tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    encode_frame(
        &SnapshotRecordRef::Header {
            format: FORMAT,
            next_segment,
        },
        &mut buf,
    )?;
    let mut partitions: Vec<PartitionId> = map.iter().map(|e| *e.key()).collect();
    partitions.sort_unstable();
    let mut entries = 0u64;
    for partition in partitions {
        if let Some(part) = map.get(&partition) {
            for (key, entry) in part.iter() {
                encode_frame(
                    &SnapshotRecordRef::Put {
                        partition,
                        key,
                        entry,
                    },
                    &mut buf,
                )?;
                entries += 1;
            }
        }
        out.write_all(&buf).map_err(io)?;
        buf.clear();
    }
    encode_frame(&SnapshotRecordRef::End { entries }, &mut buf)?;
    out.write_all(&buf).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(entries)
}

/// Reads and checks the whole snapshot at `path` (expected to cover segments before
/// `next_segment`), passing every entry to `put`. Any damage is [`DhtError::Corrupt`].
pub(crate) fn load(
    path: &Path,
    next_segment: u64,
    mut put: impl FnMut(PartitionId, Vec<u8>, Entry),
) -> Result<(), DhtError> {
    let corrupt = |offset: u64, reason: String| DhtError::Corrupt {
        path: path.display().to_string(),
        reason: format!("at offset {offset}: {reason}"),
    };
    let io = |e| DhtError::io(format!("reading {}", path.display()), e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let mut payload = Vec::new();
    let mut entries = 0u64;
    let mut first = true;
    loop {
        if pos == file_len {
            return Err(corrupt(pos, "missing end record".into()));
        }
        let mut head = [0u8; FRAME_HEADER];
        if file_len - pos < FRAME_HEADER as u64 {
            return Err(corrupt(pos, "incomplete frame header".into()));
        }
        input.read_exact(&mut head).map_err(io)?;
        let (len, crc) = header(&head);
        if len == 0 || u64::from(len) > file_len - pos - FRAME_HEADER as u64 {
            return Err(corrupt(pos, format!("bad frame length {len}")));
        }
        payload.resize(len as usize, 0);
        input.read_exact(&mut payload).map_err(io)?;
        if crc32fast::hash(&payload) != crc {
            return Err(corrupt(pos, "checksum mismatch".into()));
        }
        let record = decode_snapshot_record(&payload)
            .map_err(|e| corrupt(pos, format!("undecodable: {e}")))?;
        let at = pos;
        pos += FRAME_HEADER as u64 + u64::from(len);
        match (first, record) {
            (
                true,
                SnapshotRecord::Header {
                    format,
                    next_segment: n,
                },
            ) => {
                if format != FORMAT {
                    return Err(corrupt(at, format!("unknown snapshot format {format}")));
                }
                if n != next_segment {
                    return Err(corrupt(
                        at,
                        format!("header covers segments before {n}, the name says {next_segment}"),
                    ));
                }
            }
            (
                false,
                SnapshotRecord::Put {
                    partition,
                    key,
                    entry,
                },
            ) => {
                put(partition, key, entry);
                entries += 1;
            }
            (false, SnapshotRecord::End { entries: n }) => {
                if n != entries {
                    return Err(corrupt(
                        at,
                        format!("end record counts {n} entries, found {entries}"),
                    ));
                }
                if pos != file_len {
                    return Err(corrupt(pos, "data after the end record".into()));
                }
                return Ok(());
            }
            (_, other) => {
                let what = match other {
                    SnapshotRecord::Header { .. } => "header",
                    SnapshotRecord::Put { .. } => "entry",
                    SnapshotRecord::End { .. } => "end",
                };
                return Err(corrupt(at, format!("unexpected {what} record")));
            }
        }
        first = false;
    }
}
