//! Spill files of the sort operators: length-prefixed records with their key spans,
//! written and read through bounded buffers, and the per-instance scratch directory.
//!
//! A record on disk is a 12-byte header — data length, key offset, key length, each a
//! little-endian `u32` — followed by the data. Files are private to one operator
//! instance and are read back by the same process, so there is no version header.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::record::SortRecord;
use ringflow_stream::operator::{OpError, OpResult};

/// Bytes of a record header on disk.
pub(crate) const HEADER: usize = 12;
/// Longest record a spill file may hold (a sanity bound against corrupt files).
const MAX_SPILLED_RECORD: usize = 1 << 30;

/// The scratch subdirectory of one operator instance, created at first use and removed
/// (best effort) when dropped, if it was created.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
    created: bool,
    next: u64,
    op: &'static str,
}

impl ScratchDir {
    /// `<scratch>/<op>-<vertex>-<instance>` (vertex names are path-safe).
    pub fn new(op: &'static str, scratch: &Path, vertex: &str, instance: usize) -> Self {
        ScratchDir {
            path: scratch.join(format!("{op}-{vertex}-{instance}")),
            created: false,
            next: 0,
            op,
        }
    }

    /// A fresh file path in the directory (created if needed) named `<stem>-<n>.spill`.
    pub fn file(&mut self, stem: &str) -> OpResult<PathBuf> {
        if !self.created {
            std::fs::create_dir_all(&self.path).map_err(|e| {
                OpError(format!(
                    "{}: creating spill directory '{}': {e}",
                    self.op,
                    self.path.display()
                ))
            })?;
            self.created = true;
        }
        self.next += 1;
        Ok(self.path.join(format!("{stem}-{:06}.spill", self.next)))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A spill-file I/O error naming the operator and the file.
pub(crate) fn io_err(op: &str, doing: &str, path: &Path, e: impl std::fmt::Display) -> OpError {
    OpError(format!(
        "{op}: {doing} spill file '{}': {e}",
        path.display()
    ))
}

/// A finished spill file: its path and contents.
#[derive(Debug)]
pub(crate) struct Run {
    pub path: PathBuf,
    pub records: u64,
}

impl Run {
    /// Deletes the file (best effort: the job's scratch directory goes at its end).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Appends records to a spill file.
pub(crate) struct RunWriter {
    w: BufWriter<File>,
    path: PathBuf,
    op: &'static str,
    records: u64,
    bytes: u64,
}

impl RunWriter {
    /// Creates (truncates) `path` with a write buffer of `buf` bytes.
    pub fn create(op: &'static str, path: PathBuf, buf: usize) -> OpResult<Self> {
        let f = File::create(&path).map_err(|e| io_err(op, "creating", &path, e))?;
        Ok(RunWriter {
            w: BufWriter::with_capacity(buf, f),
            path,
            op,
            records: 0,
            bytes: 0,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, data: &[u8], key_off: u32, key_len: u32) -> OpResult {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&l| l as usize <= MAX_SPILLED_RECORD)
            .ok_or_else(|| {
                io_err(
                    self.op,
                    "writing",
                    &self.path,
                    format!("record of {} bytes is too large", data.len()),
                )
            })?;
        let mut header = [0u8; HEADER];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&key_off.to_le_bytes());
        header[8..12].copy_from_slice(&key_len.to_le_bytes());
        self.w
            .write_all(&header)
            .and_then(|()| self.w.write_all(data))
            .map_err(|e| io_err(self.op, "writing", &self.path, e))?;
        self.records += 1;
        self.bytes += (HEADER + data.len()) as u64;
        Ok(())
    }

    /// Appends a [`SortRecord`].
    pub fn write_record(&mut self, r: &SortRecord) -> OpResult {
        self.write(&r.data, r.key_off, r.key_len)
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes written so far (headers included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the buffer to the file (so a reader sees every record written).
    pub fn flush(&mut self) -> OpResult {
        self.w
            .flush()
            .map_err(|e| io_err(self.op, "writing", &self.path, e))
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> OpResult<Run> {
        self.flush()?;
        Ok(Run {
            path: self.path,
            records: self.records,
        })
    }
}

/// Reads records from a spill file through a buffer of bounded size; reads exactly the
/// number of records it is told exist, so a short file is an error, not a silent end.
pub(crate) struct RunReader {
    r: BufReader<File>,
    path: PathBuf,
    op: &'static str,
}

impl RunReader {
    /// Opens `path` with a read buffer of `buf` bytes.
    pub fn open(op: &'static str, path: &Path, buf: usize) -> OpResult<Self> {
        let f = File::open(path).map_err(|e| io_err(op, "opening", path, e))?;
        Ok(RunReader {
            r: BufReader::with_capacity(buf, f),
            path: path.to_path_buf(),
            op,
        })
    }

    /// Reads the next record, which must exist.
    pub fn read(&mut self) -> OpResult<SortRecord> {
        let mut header = [0u8; HEADER];
        self.r
            .read_exact(&mut header)
            .map_err(|e| io_err(self.op, "reading", &self.path, e))?;
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let len = word(0) as usize;
        if len > MAX_SPILLED_RECORD {
            return Err(io_err(
                self.op,
                "reading",
                &self.path,
                format!("corrupt record length {len}"),
            ));
        }
        let mut data = vec![0u8; len];
        self.r
            .read_exact(&mut data)
            .map_err(|e| io_err(self.op, "reading", &self.path, e))?;
        Ok(SortRecord::new(data, word(4), word(8)))
    }
}

/// A sorted run being merged: its reader and current head.
pub(crate) struct RunCursor {
    reader: RunReader,
    run: Run,
    left: u64,
    head: Option<SortRecord>,
}

impl RunCursor {
    /// Opens `run` and reads its first record.
    pub fn open(op: &'static str, run: Run, buf: usize) -> OpResult<Self> {
        let reader = RunReader::open(op, &run.path, buf)?;
        let mut c = RunCursor {
            reader,
            left: run.records,
            run,
            head: None,
        };
        c.advance()?;
        Ok(c)
    }

    /// The current record (`None` once the run is exhausted).
    pub fn head(&self) -> Option<&SortRecord> {
        self.head.as_ref()
    }

    /// Takes the current record and reads the next one; deletes the file at its end.
    pub fn take(&mut self) -> OpResult<Option<SortRecord>> {
        let rec = self.head.take();
        if rec.is_some() {
            self.advance()?;
        }
        Ok(rec)
    }

    fn advance(&mut self) -> OpResult {
        if self.left == 0 {
            self.head = None;
            self.run.remove();
            return Ok(());
        }
        self.left -= 1;
        self.head = Some(self.reader.read()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_short_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = ScratchDir::new("sort", tmp.path(), "v", 0);
        let path = dir.file("run").unwrap();
        let mut w = RunWriter::create("sort", path.clone(), 64).unwrap();
        let recs: Vec<SortRecord> = (0..100u32)
            .map(|i| SortRecord::new(vec![i as u8; i as usize], i, 3))
            .collect();
        for r in &recs {
            w.write_record(r).unwrap();
        }
        assert_eq!(w.records(), 100);
        let run = w.finish().unwrap();
        let mut c = RunCursor::open("sort", run, 16).unwrap();
        let mut back = Vec::new();
        while let Some(r) = c.take().unwrap() {
            back.push(r);
        }
        assert_eq!(back, recs);
        // The file is gone once read to its end.
        assert!(!path.exists());

        let path = dir.file("run").unwrap();
        let mut w = RunWriter::create("sort", path.clone(), 64).unwrap();
        w.write(b"abc", 0, 1).unwrap();
        let mut run = w.finish().unwrap();
        run.records = 2;
        let mut c = RunCursor::open("sort", run, 16).unwrap();
        let e = c.take().unwrap_err();
        assert!(e.0.contains(&path.display().to_string()), "{e}");
        let root = tmp.path().join("sort-v-0");
        assert!(root.exists());
        drop(dir);
        assert!(!root.exists());
    }
}
