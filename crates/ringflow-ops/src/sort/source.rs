//! `source.sortfile`: the records of a file or of a directory's files, in a sort format.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::format::{Format, RecordReader, DEFAULT_MAX_LINE_BYTES, GENSORT_RECORD};

/// A gensort record's size as a file offset.
const RECORD_BYTES: u64 = GENSORT_RECORD as u64;
use super::record::{record_checksum, SortRecord};
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};

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
    /// Lines with `split`: files of at least this many bytes are read in parallel, each
    /// instance taking the lines that start in its byte range; smaller files go whole,
    /// round robin (default 4 MiB).
    #[serde(default = "default_split_min_bytes")]
    pub split_min_bytes: u64,
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

fn default_split_min_bytes() -> u64 {
    4 << 20
}

/// Reads [`SortRecord`]s from files and emits them unkeyed, at most the credit per
/// poll, from a reader held across polls (a 64 KiB buffer and one record in memory).
///
/// With `split = true`, gensort input is divided by record ranges (instance `i` of `n`
/// reads records `[i·r/n, (i+1)·r/n)` of every file of `r` records, so even one big file
/// is read in parallel). Lines files of `split_min_bytes` or more are divided by byte
/// ranges: instance `i` reads the lines that *start* in `[i·s/n, (i+1)·s/n)` of a file of
/// `s` bytes (it skips the partial line before its range and finishes the one crossing
/// its end), so every line is read exactly once; smaller files are divided whole: the
/// one at position `p` of the sorted listing is read by instance `p % instances`. A
/// single file path is a listing of one. A missing path fails at create (not when only validating); a
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
    split_min_bytes: u64,
    instance: usize,
    instances: usize,
    listed: bool,
    queue: VecDeque<Slice>,
    current: Option<(PathBuf, RecordReader<Box<dyn Read + Send>>)>,
}

/// A part of a file one instance reads: byte offset and length (`u64::MAX`: to the end).
struct Slice {
    path: PathBuf,
    offset: u64,
    len: u64,
    /// The lines that start in the range (instead of exactly its bytes).
    lines: bool,
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
            split_min_bytes: cfg.split_min_bytes.max(1),
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
                let Some(Slice {
                    path,
                    offset,
                    len,
                    lines,
                }) = self.queue.pop_front()
                else {
                    return Ok(SourcePoll::Done);
                };
                let mut f = File::open(&path).map_err(|e| {
                    OpError(format!(
                        "source.sortfile: cannot open '{}': {e}",
                        path.display()
                    ))
                })?;
                let seek_failed = |e: std::io::Error| {
                    OpError(format!(
                        "source.sortfile: seeking in '{}': {e}",
                        path.display()
                    ))
                };
                let input: Box<dyn Read + Send> = if lines {
                    Box::new(
                        LineRange::open(f, offset, offset.saturating_add(len))
                            .map_err(seek_failed)?,
                    )
                } else {
                    if offset > 0 {
                        f.seek(SeekFrom::Start(offset)).map_err(seek_failed)?;
                    }
                    Box::new(f.take(len))
                };
                let reader =
                    RecordReader::new(input, self.format).with_max_line_bytes(self.max_line_bytes);
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
            lines: false,
        };
        let size_of = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| OpError(format!("source.sortfile: '{}': {e}", path.display())))
        };
        if !self.split {
            return Ok(files.into_iter().map(whole).collect());
        }
        if self.format == Format::Gensort {
            let (i, n) = (self.instance as u64, self.instances as u64);
            let mut slices = Vec::new();
            for path in files {
                let size = size_of(&path)?;
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
                        lines: false,
                    });
                }
            }
            return Ok(slices);
        }
        let (i, n) = (self.instance as u64, self.instances as u64);
        let mut slices = Vec::new();
        let mut small = Vec::new();
        for path in files {
            let size = size_of(&path)?;
            if size < self.split_min_bytes {
                small.push(path);
                continue;
            }
            let (from, to) = (size * i / n, size * (i + 1) / n);
            if to > from {
                slices.push(Slice {
                    path,
                    offset: from,
                    len: to - from,
                    lines: true,
                });
            }
        }
        slices.extend(
            small
                .into_iter()
                .enumerate()
                .filter(|(p, _)| p % self.instances == self.instance)
                .map(|(_, f)| whole(f)),
        );
        Ok(slices)
    }
}

/// The bytes of the lines of a file that start in `[start, end)`: it skips the partial
/// line before `start` (a line starts at 0 or after a `\n`) and finishes the line that
/// crosses `end`, so adjacent ranges read every line exactly once.
struct LineRange {
    file: File,
    /// File offset of the next byte delivered.
    pos: u64,
    end: u64,
    /// Bytes read past the skipped partial line, delivered first.
    pending: Vec<u8>,
    pending_at: usize,
    /// Past `end`: delivering the rest of the line that crosses it.
    tail: bool,
    done: bool,
}

impl LineRange {
    fn open(mut file: File, start: u64, end: u64) -> std::io::Result<Self> {
        let mut pos = start;
        let mut pending = Vec::new();
        let mut done = false;
        if start > 0 {
            // The line starting at `start` is ours only if the byte before it is '\n'.
            file.seek(SeekFrom::Start(start - 1))?;
            pos = start - 1;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    done = true;
                    break;
                }
                if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
                    pos += i as u64 + 1;
                    pending.extend_from_slice(&buf[i + 1..n]);
                    break;
                }
                pos += n as u64;
            }
        }
        Ok(Self {
            file,
            pos,
            end,
            pending,
            pending_at: 0,
            tail: false,
            done: done || pos >= end,
        })
    }
}

impl Read for LineRange {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        let n = if self.pending_at < self.pending.len() {
            let k = out.len().min(self.pending.len() - self.pending_at);
            out[..k].copy_from_slice(&self.pending[self.pending_at..self.pending_at + k]);
            self.pending_at += k;
            k
        } else {
            self.file.read(out)?
        };
        if n == 0 {
            self.done = true;
            return Ok(0);
        }
        let chunk = &out[..n];
        // Deliver up to and including the first '\n' at index >= `from`, then stop.
        let mut finish_at = |from: usize| match chunk[from..].iter().position(|&b| b == b'\n') {
            Some(j) => {
                self.done = true;
                from + j + 1
            }
            None => n,
        };
        let delivered = if self.tail {
            finish_at(0)
        } else {
            let room = self.end - self.pos;
            if (n as u64) < room {
                n
            } else {
                // The byte at `end - 1` is at index room - 1: the last line of the range
                // ends at the first '\n' from there.
                self.tail = true;
                finish_at(room as usize - 1)
            }
        };
        self.pos += delivered as u64;
        Ok(delivered)
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
    use ringflow_stream::testing::HookEnv;
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
        let mut env = HookEnv::<SortRecord>::new();
        let mut recs = Vec::new();
        for _ in 0..100_000 {
            let (poll, emitted, _) = env.poll(budget, |out| src.poll(out));
            let poll = poll?;
            assert!(emitted <= budget);
            recs.extend(env.take_emitted().into_iter().map(|i| i.value));
            if poll == SourcePoll::Done {
                return Ok((recs, env.counters));
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

    /// Reads `text` as one lines file split over `n` instances (every size split).
    fn split_lines(text: &[u8], n: usize) -> Vec<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        std::fs::write(&path, text).unwrap();
        (0..n)
            .map(|i| {
                let cfg = json!({"path": path, "format": "lines", "split_min_bytes": 1});
                let mut src = make(cfg, i, n, false).unwrap();
                let (recs, _) = drain(&mut src, 7).unwrap();
                recs.iter()
                    .map(|r| String::from_utf8_lossy(&r.data).into_owned())
                    .collect()
            })
            .collect()
    }

    fn reference_lines(text: &[u8]) -> Vec<String> {
        let mut r = RecordReader::new(text, Format::parse("lines", None, "\t").unwrap());
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(String::from_utf8_lossy(&rec.data).into_owned());
        }
        out
    }

    #[test]
    fn one_lines_file_is_split_by_byte_ranges_at_line_starts() {
        // Ranges of 9 bytes each over 27: boundaries fall inside a line, on a '\n', and
        // right after one.
        let text = b"aaaa\nbbbbbbbbbbbbbbbbbbb\nc\n";
        let parts = split_lines(text, 3);
        assert_eq!(parts.concat(), ["aaaa", "bbbbbbbbbbbbbbbbbbb", "c"]);
        assert_eq!(parts[0], ["aaaa", "bbbbbbbbbbbbbbbbbbb"]);
        assert!(
            parts[1].is_empty(),
            "no line starts in bytes 9..18: {parts:?}"
        );
        assert_eq!(parts[2], ["c"]);
        // Below split_min_bytes the file goes whole to one instance.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.txt");
        std::fs::write(&path, text).unwrap();
        let counts: Vec<usize> = (0..3)
            .map(|i| {
                let mut src = make(json!({"path": path, "format": "lines"}), i, 3, false).unwrap();
                drain(&mut src, 5).unwrap().0.len()
            })
            .collect();
        assert_eq!(counts, [3, 0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn every_line_is_read_exactly_once_whatever_the_split(
            lines in proptest::collection::vec("[a-c]{0,12}", 0..40),
            crlf in proptest::bool::ANY,
            trailing in proptest::bool::ANY,
            n in 1usize..7,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(eol);
            if trailing && !lines.is_empty() {
                text.push_str(eol);
            }
            let parts = split_lines(text.as_bytes(), n);
            proptest::prop_assert_eq!(parts.concat(), reference_lines(text.as_bytes()));
        }
    }
}
