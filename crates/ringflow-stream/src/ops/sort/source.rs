//! `source.sortfile`: the records of a file or of a directory's files, in a sort format.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::format::{Format, RecordReader, DEFAULT_MAX_LINE_BYTES, GENSORT_RECORD};

/// A gensort record's size as a file offset.
const RECORD_BYTES: u64 = GENSORT_RECORD as u64;
use super::record::{record_checksum, SortRecord};
use crate::operator::{InitContext, OpError, OpResult};
use crate::source::{Source, SourceOutput, SourcePoll};

/// Configuration of `source.sortfile`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortFileSourceConfig {
    /// A file, or a directory whose regular files are read in name order
    /// (non-recursive; names starting with `.` or ending in `.tmp` are skipped).
    pub path: PathBuf,
    /// `gensort` (default) or `lines`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Lines only: the 0-based key field (default: the whole line is the key).
    #[serde(default)]
    pub key_field: Option<usize>,
    /// Lines only: the field delimiter, one byte (default tab).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// `true` (default): each file is read by one instance (a shared directory);
    /// `false`: every instance reads every file (worker-local disks).
    #[serde(default = "default_true")]
    pub split: bool,
    /// Lines only: longest accepted line in bytes (default 1 MiB).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
}

pub(crate) fn default_format() -> String {
    "gensort".into()
}

pub(crate) fn default_delimiter() -> String {
    "\t".into()
}

fn default_true() -> bool {
    true
}

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// Reads [`SortRecord`]s from files and emits them unkeyed, at most the credit per
/// poll, from a reader held across polls (a 64 KiB buffer and one record in memory).
///
/// With `split = true`, gensort input is divided by record ranges (instance `i` of `n`
/// reads records `[i·r/n, (i+1)·r/n)` of every file of `r` records, so even one big file
/// is read in parallel); lines input is divided by whole files: the file at position `p`
/// of the sorted listing is read by instance `p % instances`. A single file path is a
/// listing of one. A missing path fails at create (not when only validating); a
/// trailing partial gensort record, a too-long line or a read error fails the job
/// naming the file.
///
/// Counters: `records`, `bytes` (record bytes: for lines without their line endings),
/// `checksum` (the sum of [`record_checksum`] of every record as `u64`; exact below
/// 2^32 records per instance), `files_read`.
pub struct SortFileSource {
    format: Format,
    path: PathBuf,
    split: bool,
    max_line_bytes: usize,
    instance: usize,
    instances: usize,
    listed: bool,
    queue: VecDeque<Slice>,
    current: Option<(PathBuf, RecordReader<std::io::Take<File>>)>,
}

/// A part of a file one instance reads: byte offset and length (`u64::MAX`: to the end).
struct Slice {
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl Source for SortFileSource {
    type Out = SortRecord;
    type Config = SortFileSourceConfig;

    fn create(cfg: SortFileSourceConfig, init: &InitContext) -> OpResult<Self> {
        let format = Format::parse(&cfg.format, cfg.key_field, &cfg.delimiter)
            .map_err(|e| OpError(format!("source.sortfile: {e}")))?;
        if cfg.path.as_os_str().is_empty() {
            return Err("source.sortfile: 'path' is empty".into());
        }
        if cfg.max_line_bytes == 0 {
            return Err("source.sortfile: 'max_line_bytes' must be positive".into());
        }
        if !init.validate_only {
            let meta = std::fs::metadata(&cfg.path).map_err(|e| {
                OpError(format!(
                    "source.sortfile: path '{}': {e}",
                    cfg.path.display()
                ))
            })?;
            if !meta.is_file() && !meta.is_dir() {
                return Err(OpError(format!(
                    "source.sortfile: path '{}' is neither a file nor a directory",
                    cfg.path.display()
                )));
            }
        }
        Ok(SortFileSource {
            format,
            path: cfg.path,
            split: cfg.split,
            max_line_bytes: cfg.max_line_bytes,
            instance: init.instance,
            instances: init.instances.max(1),
            listed: false,
            queue: VecDeque::new(),
            current: None,
        })
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, SortRecord>) -> OpResult<SourcePoll> {
        let (mut records, mut bytes, mut sum) = (0u64, 0u64, 0u64);
        let result = self.read(out, &mut |r: &SortRecord| {
            records += 1;
            bytes += r.data.len() as u64;
            sum += u64::from(record_checksum(&r.data));
        });
        if records > 0 {
            out.count("records", records);
            out.count("bytes", bytes);
            out.count("checksum", sum);
        }
        result
    }
}

impl SortFileSource {
    fn read(
        &mut self,
        out: &mut SourceOutput<'_, SortRecord>,
        seen: &mut dyn FnMut(&SortRecord),
    ) -> OpResult<SourcePoll> {
        if !self.listed {
            self.listed = true;
            self.queue = self.listing()?.into();
        }
        while out.remaining() > 0 {
            let Some((path, reader)) = self.current.as_mut() else {
                let Some(Slice { path, offset, len }) = self.queue.pop_front() else {
                    return Ok(SourcePoll::Done);
                };
                let mut f = File::open(&path).map_err(|e| {
                    OpError(format!(
                        "source.sortfile: cannot open '{}': {e}",
                        path.display()
                    ))
                })?;
                if offset > 0 {
                    use std::io::{Seek, SeekFrom};
                    f.seek(SeekFrom::Start(offset)).map_err(|e| {
                        OpError(format!(
                            "source.sortfile: seeking in '{}': {e}",
                            path.display()
                        ))
                    })?;
                }
                let reader = RecordReader::new(std::io::Read::take(f, len), self.format)
                    .with_max_line_bytes(self.max_line_bytes);
                self.current = Some((path, reader));
                continue;
            };
            match reader.next_record() {
                Ok(Some(rec)) => {
                    seen(&rec);
                    out.emit(rec);
                }
                Ok(None) => {
                    self.current = None;
                    out.count("files_read", 1);
                }
                Err(e) => {
                    return Err(OpError(format!(
                        "source.sortfile: reading '{}': {e}",
                        path.display()
                    )))
                }
            }
        }
        if self.current.is_none() && self.queue.is_empty() {
            return Ok(SourcePoll::Done);
        }
        Ok(SourcePoll::More)
    }

    /// The parts of files this instance reads, in order. Split gensort input is divided
    /// by record ranges (every instance reads its share of every file, so one big file is
    /// read in parallel); split lines are divided by whole files.
    fn listing(&self) -> OpResult<Vec<Slice>> {
        let files = if std::fs::metadata(&self.path).is_ok_and(|m| m.is_dir()) {
            list_dir(&self.path)?
        } else {
            vec![self.path.clone()]
        };
        let whole = |path: PathBuf| Slice {
            path,
            offset: 0,
            len: u64::MAX,
        };
        if !self.split {
            return Ok(files.into_iter().map(whole).collect());
        }
        if self.format == Format::Gensort {
            let (i, n) = (self.instance as u64, self.instances as u64);
            let mut slices = Vec::new();
            for path in files {
                let size = std::fs::metadata(&path)
                    .map_err(|e| OpError(format!("source.sortfile: '{}': {e}", path.display())))?
                    .len();
                let records = size / RECORD_BYTES;
                let (from, to) = (records * i / n, records * (i + 1) / n);
                // The last instance also reads a trailing partial record, to report it.
                let end = if i + 1 == n { size } else { to * RECORD_BYTES };
                let offset = from * RECORD_BYTES;
                if end > offset {
                    slices.push(Slice {
                        path,
                        offset,
                        len: end - offset,
                    });
                }
            }
            return Ok(slices);
        }
        Ok(files
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % self.instances == self.instance)
            .map(|(_, f)| whole(f))
            .collect())
    }
}

/// The regular files of `dir` (symlinks followed), sorted by name, skipping hidden and
/// `.tmp` names.
pub(crate) fn list_dir(dir: &Path) -> OpResult<Vec<PathBuf>> {
    let fail =
        |e: std::io::Error| OpError(format!("source.sortfile: listing '{}': {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push((entry.file_name(), path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{ErasedOutputs, OutEdge, Outputs};
    use crate::spec::EdgeKind;
    use crate::Message;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn make(
        cfg: serde_json::Value,
        instance: usize,
        instances: usize,
        validate_only: bool,
    ) -> OpResult<SortFileSource> {
        let init = InitContext {
            instance,
            instances,
            validate_only,
            ..InitContext::for_test("src")
        };
        let cfg = serde_json::from_value(cfg).map_err(|e| OpError(e.to_string()))?;
        SortFileSource::create(cfg, &init)
    }

    /// Polls with `budget` until done; returns the records and counters.
    fn drain(
        src: &mut SortFileSource,
        budget: usize,
    ) -> OpResult<(Vec<SortRecord>, BTreeMap<String, u64>)> {
        let mut counters = BTreeMap::new();
        let mut recs = Vec::new();
        for _ in 0..100_000 {
            let edge = OutEdge {
                kind: EdgeKind::Forward,
                targets: 1,
                self_index: 0,
            };
            let mut outputs = Outputs::<SortRecord>::new(vec![edge], None, usize::MAX);
            let mut out = SourceOutput {
                out: &mut outputs,
                budget,
                emitted: 0,
                watermark: None,
                counters: &mut counters,
                now: 0,
            };
            let poll = src.poll(&mut out)?;
            assert!(out.emitted <= budget);
            ErasedOutputs::flush(&mut outputs);
            for o in outputs.take_ready() {
                if let Message::Batch(b) = o.msg {
                    recs.extend(
                        b.downcast::<SortRecord>()
                            .unwrap()
                            .into_iter()
                            .map(|i| i.value),
                    );
                }
            }
            if poll == SourcePoll::Done {
                return Ok((recs, counters));
            }
        }
        panic!("the source never ended");
    }

    #[test]
    fn files_split_over_instances_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("b.txt", "b1\tx\nb2\ty\n"),
            ("a.txt", "a1\tz\r\n"),
            ("c.txt", "c1\n"),
            (".hidden", "no\n"),
            ("d.txt.tmp", "no\n"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let cfg = json!({"path": dir.path(), "format": "lines", "key_field": 1});
        let mut all = Vec::new();
        let mut total = 0;
        for i in 0..2 {
            let mut src = make(cfg.clone(), i, 2, false).unwrap();
            let (recs, counters) = drain(&mut src, 1).unwrap();
            total += counters["records"];
            all.push(recs);
        }
        let data = |v: &[SortRecord]| -> Vec<String> {
            v.iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                .collect()
        };
        // a.txt and c.txt (positions 0 and 2) go to instance 0, b.txt to instance 1.
        assert_eq!(data(&all[0]), ["a1\tz", "c1"]);
        assert_eq!(data(&all[1]), ["b1\tx", "b2\ty"]);
        assert_eq!(all[0][0].key(), b"z");
        assert_eq!(all[0][1].key(), b"");
        assert_eq!(total, 4);
        // Not split: each instance reads everything.
        let mut src = make(
            json!({"path": dir.path(), "format": "lines", "split": false}),
            1,
            2,
            false,
        )
        .unwrap();
        let (recs, counters) = drain(&mut src, 3).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(counters["files_read"], 3);
        let sum: u64 = recs
            .iter()
            .map(|r| u64::from(record_checksum(&r.data)))
            .sum();
        assert_eq!(counters["checksum"], sum);
        assert_eq!(
            counters["bytes"],
            recs.iter().map(|r| r.data.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn gensort_files_and_hostile_input() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.dat");
        std::fs::write(&good, vec![7u8; 300]).unwrap();
        let mut src = make(json!({"path": good}), 0, 1, false).unwrap();
        let (recs, counters) = drain(&mut src, 2).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key(), &[7u8; 10]);
        assert_eq!(counters["bytes"], 300);
        let empty = dir.path().join("empty.dat");
        std::fs::write(&empty, b"").unwrap();
        let (recs, _) = drain(&mut make(json!({"path": empty}), 0, 1, false).unwrap(), 5).unwrap();
        assert!(recs.is_empty());
        let partial = dir.path().join("partial.dat");
        std::fs::write(&partial, vec![1u8; 150]).unwrap();
        let e = drain(&mut make(json!({"path": partial}), 0, 1, false).unwrap(), 5).unwrap_err();
        assert!(
            e.0.contains("partial.dat") && e.0.contains("partial gensort"),
            "{e}"
        );
    }

    #[test]
    fn configs_are_checked_and_validation_opens_nothing() {
        let missing = json!({"path": "/nonexistent/sortfile/input"});
        assert!(make(missing.clone(), 0, 1, true).is_ok());
        let e = make(missing, 0, 1, false).err().unwrap();
        assert!(e.0.contains("/nonexistent/sortfile/input"), "{e}");
        for bad in [
            json!({"path": "/x", "format": "csv"}),
            json!({"path": "/x", "format": "gensort", "key_field": 1}),
            json!({"path": "/x", "format": "lines", "delimiter": "::"}),
            json!({"path": ""}),
            json!({"path": "/x", "colour": "red"}),
        ] {
            assert!(make(bad.clone(), 0, 1, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_gensort_file_is_split_by_record_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.dat");
        let bytes: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..3 {
            let mut src = make(json!({"path": path, "format": "gensort"}), i, 3, false).unwrap();
            let (recs, _) = drain(&mut src, 4).unwrap();
            sizes.push(recs.len());
            all.extend(recs.into_iter().map(|r| r.data[0]));
        }
        assert_eq!(sizes, vec![3, 3, 4]);
        assert_eq!(all, (0..10u8).collect::<Vec<_>>());
    }
}
