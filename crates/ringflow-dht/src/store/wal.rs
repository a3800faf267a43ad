//! Write-ahead log segments: naming, the directory listing, replay and appending.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::DhtError;

use super::codec::{decode_record, frame_at, next_valid_record, Frame, Record};

/// File name of WAL segment `seq`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016}.log")
}

/// File name of the snapshot covering every segment before `seq`.
pub(crate) fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:016}.bin")
}

/// Suffix of a snapshot being written.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

fn parse_seq(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() >= 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The store's files in a directory.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// WAL segment numbers, ascending.
    pub segments: Vec<u64>,
    /// Snapshot numbers, ascending.
    pub snapshots: Vec<u64>,
    /// Leftover temporary files of interrupted checkpoints.
    pub temporary: Vec<PathBuf>,
}

/// Lists the store's files in `dir` (other files are ignored).
pub(crate) fn list(dir: &Path) -> Result<Listing, DhtError> {
    let mut out = Listing::default();
    let entries =
        fs::read_dir(dir).map_err(|e| DhtError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DhtError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_seq(name, "wal-", ".log") {
            out.segments.push(seq);
        } else if let Some(seq) = parse_seq(name, "snapshot-", ".bin") {
            out.snapshots.push(seq);
        } else if name.starts_with("snapshot-") && name.ends_with(TMP_SUFFIX) {
            out.temporary.push(entry.path());
        }
    }
    out.segments.sort_unstable();
    out.snapshots.sort_unstable();
    Ok(out)
}

/// Fsyncs a directory, so that files created, renamed or deleted in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), DhtError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DhtError::io(format!("syncing directory {}", dir.display()), e))
}

/// Replays one segment through `apply`, returning its valid length.
///
/// In the last segment, a damaged record that no intact record follows is a torn tail (a crash
/// mid-write): the file is truncated there. Anywhere else a damaged record is corruption.
pub(crate) fn replay_segment(
    path: &Path,
    last: bool,
    mut apply: impl FnMut(Record),
) -> Result<u64, DhtError> {
    let buf = fs::read(path).map_err(|e| DhtError::io(format!("reading {}", path.display()), e))?;
    let corrupt = |reason: String| DhtError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let mut pos = 0;
    loop {
        let why = match frame_at(&buf, pos) {
            Frame::End => return Ok(pos as u64),
            Frame::Ok { payload, next } => match decode_record(payload) {
                Ok(record) => {
                    apply(record);
                    pos = next;
                    continue;
                }
                // The checksum matched, so this was written like this: not a torn write.
                Err(e) => return Err(corrupt(format!("undecodable record at offset {pos}: {e}"))),
            },
            Frame::Bad(why) => why,
        };
        if !last {
            return Err(corrupt(format!(
                "bad record at offset {pos} ({why}) in a sealed segment"
            )));
        }
        if let Some(valid) = next_valid_record(&buf, pos + 1) {
            return Err(corrupt(format!(
                "bad record at offset {pos} ({why}) followed by a valid record at offset {valid}"
            )));
        }
        tracing::warn!(
            path = %path.display(),
            offset = pos,
            dropped = buf.len() - pos,
            reason = why,
            "truncating the torn tail of the write-ahead log"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(pos as u64).and_then(|()| f.sync_all()))
            .map_err(|e| DhtError::io(format!("truncating {}", path.display()), e));
        file?;
        return Ok(pos as u64);
    }
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Segment {
    file: File,
    path: PathBuf,
    /// Its number.
    pub seq: u64,
    /// Bytes written to it.
    pub len: u64,
}

impl Segment {
    /// Creates segment `seq` (which must not exist) and makes its creation durable.
    pub(crate) fn create(dir: &Path, seq: u64) -> Result<Self, DhtError> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| DhtError::io(format!("creating {}", path.display()), e))?;
        sync_dir(dir)?;
        Ok(Self {
            file,
            path,
            seq,
            len: 0,
        })
    }

    /// Opens existing segment `seq`, `len` bytes long, to append to it.
    pub(crate) fn open(dir: &Path, seq: u64, len: u64) -> Result<Self, DhtError> {
        let path = dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| DhtError::io(format!("opening {}", path.display()), e))?;
        Ok(Self {
            file,
            path,
            seq,
            len,
        })
    }

    /// Appends bytes (not yet durable).
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), DhtError> {
        self.file
            .write_all(bytes)
            .map_err(|e| DhtError::io(format!("writing {}", self.path.display()), e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything appended durable (fdatasync).
    pub(crate) fn sync(&self) -> Result<(), DhtError> {
        self.file
            .sync_data()
            .map_err(|e| DhtError::io(format!("syncing {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(segment_name(7), "wal-0000000000000007.log");
        assert_eq!(parse_seq(&segment_name(7), "wal-", ".log"), Some(7));
        assert_eq!(
            parse_seq(&snapshot_name(u64::MAX), "snapshot-", ".bin"),
            Some(u64::MAX)
        );
        assert_eq!(parse_seq("wal-7.log", "wal-", ".log"), None);
        assert_eq!(parse_seq("wal-000000000000000x.log", "wal-", ".log"), None);
    }
}
