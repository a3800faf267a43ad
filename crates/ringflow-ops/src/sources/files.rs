//! `source.files`: the lines of a file or of the files of a directory, optionally
//! watching the directory for new files.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, Seek};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::io::{decode_line, read_line, LineError, LineRead, DEFAULT_MAX_LINE_BYTES};
use ringflow_stream::operator::{InitContext, OpError, OpResult};
use ringflow_stream::source::{Source, SourceOutput, SourcePoll};
use ringflow_stream::Value;

/// Configuration of `source.files`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// A file, or a directory whose regular files are read in name order
    /// (non-recursive; names starting with `.` or ending in `.tmp` are skipped).
    pub path: PathBuf,
    /// `true` (default): the files are shared (one shared directory); each file is read
    /// by exactly one instance. `false`: every instance reads every file (node-local
    /// disks).
    #[serde(default = "default_true")]
    pub split: bool,
    /// Keep watching: a directory is re-listed every `poll_ms` and new files are read
    /// as they appear; a single file is followed as it grows (like `tail -f`).
    #[serde(default)]
    pub tail: bool,
    /// How often a tailed directory is re-listed, or a followed file re-checked (ms).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// With `tail`: end once nothing new (no new file, no new line) came for this long
    /// (ms). Without it a tailing source never ends.
    #[serde(default)]
    pub stop_after_idle_ms: Option<u64>,
    /// Longest accepted line in bytes (line ending excluded); a longer line fails the
    /// job naming the file and line. Default 1 MiB.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// At most this many lines per second per instance (a replay at a given pace, and
    /// tests that need a job to run for a while).
    #[serde(default)]
    pub max_per_sec: Option<f64>,
}

fn default_true() -> bool {
    true
}

fn default_poll_ms() -> u64 {
    200
}

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// Reads lines from files and emits each as a [`Value::String`] without its line
/// ending (`\n` or `\r\n`). Invalid UTF-8 is replaced by U+FFFD and counted under
/// `invalid_utf8`; a last line without a newline is emitted too.
///
/// Which instance reads which file, with `split = true`: without `tail`, the file at
/// position `p` of the sorted listing goes to instance `p % instances` (balanced; the
/// directory must not change while it is read). With `tail`, files keep arriving and
/// instances list at different moments, so positions are not stable: a file goes to
/// instance `fnv1a(name) % instances` instead, which every instance computes alike. A
/// single file path is a listing of one.
///
/// With `tail` on a directory, a file is taken to be complete when it appears: writers
/// should write `name.tmp` (or a hidden name) and rename it when done. A file is read
/// once per name: one deleted and re-created under the same name is not read again.
/// With `tail` on a single file, appended lines are read as they come (a partial last
/// line waits for its newline); truncation and rotation are not detected.
///
/// Reading is incremental: at most [`SourceOutput::remaining`] lines per poll, from a
/// reader held across polls. Counters: `lines`, `files_listed` (files this instance
/// took on), `files_read`, `invalid_utf8`, `files_vanished` (listed, then deleted
/// before being opened; tail mode only).
pub struct FilesSource {
    cfg: FilesConfig,
    instance: usize,
    instances: usize,
    single_file: bool,
    started: bool,
    queue: VecDeque<PathBuf>,
    seen: BTreeSet<OsString>,
    current: Option<OpenFile>,
    last_list: u64,
    last_activity: u64,
    lossy: u64,
    /// Files this instance read to their end (by name), for checkpoints.
    done: BTreeSet<String>,
    /// From a restored checkpoint: files already read, and where reading files stopped.
    restored: Option<FilesPosition>,
    /// With `max_per_sec`: the pace of the lines emitted.
    pace: crate::io::Pace,
}

/// Where a `source.files` instance is: the files it finished and the offset of the next
/// line of the one it reads.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FilesPosition {
    instance: usize,
    split: bool,
    done: BTreeSet<String>,
    /// (file name, byte offset of the next line, lines read before it).
    reading: BTreeMap<String, (u64, u64)>,
}

struct OpenFile {
    path: PathBuf,
    reader: BufReader<File>,
    partial: Vec<u8>,
    line: u64,
}

impl Source for FilesSource {
    type Out = Value;
    type Config = FilesConfig;

    fn create(cfg: FilesConfig, init: &InitContext) -> OpResult<Self> {
        if cfg.path.as_os_str().is_empty() {
            return Err("source.files: 'path' is empty".into());
        }
        if cfg.poll_ms == 0 || cfg.poll_ms > 3_600_000 {
            return Err("source.files: 'poll_ms' must be 1..=3600000".into());
        }
        if cfg.max_line_bytes == 0 {
            return Err("source.files: 'max_line_bytes' must be positive".into());
        }
        if cfg.max_per_sec.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("source.files: 'max_per_sec' must be a positive number".into());
        }
        if cfg.stop_after_idle_ms.is_some() && !cfg.tail {
            return Err("source.files: 'stop_after_idle_ms' needs 'tail = true'".into());
        }
        let single_file = if init.validate_only {
            false
        } else {
            let meta = std::fs::metadata(&cfg.path).map_err(|e| {
                OpError(format!("source.files: path '{}': {e}", cfg.path.display()))
            })?;
            if !meta.is_file() && !meta.is_dir() {
                return Err(OpError(format!(
                    "source.files: path '{}' is neither a file nor a directory",
                    cfg.path.display()
                )));
            }
            meta.is_file()
        };
        Ok(FilesSource {
            cfg,
            instance: init.instance,
            instances: init.instances.max(1),
            single_file,
            started: false,
            queue: VecDeque::new(),
            seen: BTreeSet::new(),
            current: None,
            last_list: 0,
            last_activity: 0,
            lossy: 0,
            done: BTreeSet::new(),
            restored: None,
            pace: Default::default(),
        })
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        let mut pos = FilesPosition {
            instance: self.instance,
            split: self.cfg.split,
            done: self.done.clone(),
            reading: BTreeMap::new(),
        };
        if let Some(f) = self.current.as_mut() {
            let at = f.reader.get_mut().stream_position().map_err(|e| {
                OpError(format!(
                    "source.files: position in '{}': {e}",
                    f.path.display()
                ))
            })?;
            let offset = at - f.reader.buffer().len() as u64 - f.partial.len() as u64;
            pos.reading.insert(name_of(&f.path), (offset, f.line));
        }
        // Files restored but not reached yet keep their offsets.
        if let Some(r) = &self.restored {
            for (name, at) in &r.reading {
                if !pos.done.contains(name) {
                    pos.reading.entry(name.clone()).or_insert(*at);
                }
            }
        }
        ringflow_stream::checkpoint::to_bytes(&pos).map(Some)
    }

    /// Resumes from earlier positions: with `split`, every earlier instance's (each file
    /// was read by one of them, and files are dealt out again over the instances now);
    /// without it, the one of the earlier instance with this index.
    fn restore(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
        let mut merged = FilesPosition::default();
        for p in positions {
            let p: FilesPosition = ringflow_stream::checkpoint::from_bytes(&p)?;
            if !p.split && p.instance != self.instance {
                continue;
            }
            merged.done.extend(p.done);
            // Every instance carries the offsets it was restored with for files it has
            // not reached (some are read by others): positions only advance, so the
            // furthest one of a file is where its reader was.
            for (name, at) in p.reading {
                let e = merged.reading.entry(name).or_insert(at);
                if at.0 > e.0 {
                    *e = at;
                }
            }
        }
        let done = merged.done.clone();
        merged.reading.retain(|name, _| !done.contains(name));
        self.done = merged.done.clone();
        self.restored = Some(merged);
        Ok(())
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        if let Some(rate) = self.cfg.max_per_sec {
            match self.pace.allowed(rate, out.now()) {
                Ok(left) => out.limit(left as usize),
                Err(wait) => return Ok(SourcePoll::Wait(wait)),
            }
        }
        // Counted once per poll, not per line.
        let before = out.remaining();
        let result = self.read(out);
        let lines = before.saturating_sub(out.remaining()) as u64;
        self.pace.sent(lines);
        if lines > 0 {
            out.count("lines", lines);
        }
        if self.lossy > 0 {
            out.count("invalid_utf8", std::mem::take(&mut self.lossy));
        }
        result
    }
}

impl FilesSource {
    /// Reads up to the credit; see [`FilesSource`].
    fn read(&mut self, out: &mut SourceOutput<'_, Value>) -> OpResult<SourcePoll> {
        let now = out.now();
        if !self.started {
            self.started = true;
            self.last_activity = now;
            self.relist(now, out)?;
        }
        loop {
            if out.remaining() == 0 {
                return Ok(SourcePoll::More);
            }
            if self.current.is_none() {
                let Some(path) = self.queue.pop_front() else {
                    break;
                };
                match File::open(&path) {
                    Ok(mut f) => {
                        // Restored from a checkpoint in the middle of this file.
                        let at = self
                            .restored
                            .as_ref()
                            .and_then(|r| r.reading.get(&name_of(&path)).copied());
                        let (offset, line) = at.unwrap_or((0, 0));
                        if offset > 0 {
                            f.seek(io::SeekFrom::Start(offset)).map_err(|e| {
                                OpError(format!(
                                    "source.files: resuming '{}' at byte {offset}: {e}",
                                    path.display()
                                ))
                            })?;
                        }
                        self.current = Some(OpenFile {
                            path,
                            reader: BufReader::with_capacity(64 * 1024, f),
                            partial: Vec::new(),
                            line,
                        })
                    }
                    Err(e) if self.cfg.tail && e.kind() == io::ErrorKind::NotFound => {
                        out.count("files_vanished", 1);
                    }
                    Err(e) => {
                        return Err(OpError(format!(
                            "source.files: cannot open '{}': {e}",
                            path.display()
                        )))
                    }
                }
                continue;
            }
            let follow = self.cfg.tail && self.single_file;
            let Some(f) = self.current.as_mut() else {
                continue;
            };
            match read_line(&mut f.reader, &mut f.partial, self.cfg.max_line_bytes) {
                Ok(LineRead::Line) => {
                    emit_line(f, &mut self.lossy, out);
                    self.last_activity = now;
                }
                Ok(LineRead::Eof | LineRead::WouldBlock) if follow => {
                    let idle = self
                        .cfg
                        .stop_after_idle_ms
                        .is_some_and(|ms| now.saturating_sub(self.last_activity) >= ms);
                    if !idle {
                        return Ok(SourcePoll::Wait(self.cfg.poll_ms));
                    }
                    if !f.partial.is_empty() {
                        emit_line(f, &mut self.lossy, out);
                    }
                    self.done.insert(name_of(&f.path));
                    self.current = None;
                    out.count("files_read", 1);
                    return Ok(SourcePoll::Done);
                }
                Ok(LineRead::Eof | LineRead::WouldBlock) => {
                    if !f.partial.is_empty() {
                        emit_line(f, &mut self.lossy, out);
                        self.last_activity = now;
                    }
                    self.done.insert(name_of(&f.path));
                    self.current = None;
                    out.count("files_read", 1);
                }
                Err(LineError::TooLong) => {
                    return Err(OpError(format!(
                        "source.files: '{}' line {} is longer than {} bytes",
                        f.path.display(),
                        f.line + 1,
                        self.cfg.max_line_bytes
                    )))
                }
                Err(LineError::Io(e)) => {
                    return Err(OpError(format!(
                        "source.files: reading '{}': {e}",
                        f.path.display()
                    )))
                }
            }
        }
        // Nothing open and nothing queued. A single file this instance does not read
        // will never be its to read.
        if !self.cfg.tail || self.single_file {
            return Ok(SourcePoll::Done);
        }
        if now.saturating_sub(self.last_list) >= self.cfg.poll_ms && self.relist(now, out)? > 0 {
            self.last_activity = now;
            return Ok(SourcePoll::More);
        }
        let mut wait = (self.last_list + self.cfg.poll_ms).saturating_sub(now);
        if let Some(idle) = self.cfg.stop_after_idle_ms {
            let quiet = now.saturating_sub(self.last_activity);
            if quiet >= idle {
                return Ok(SourcePoll::Done);
            }
            wait = wait.min(idle - quiet);
        }
        Ok(SourcePoll::Wait(wait.max(1)))
    }
}

fn emit_line(f: &mut OpenFile, lossy_lines: &mut u64, out: &mut SourceOutput<'_, Value>) {
    let (line, lossy) = decode_line(&f.partial);
    f.partial.clear();
    f.line += 1;
    *lossy_lines += u64::from(lossy);
    out.emit(Value::String(line));
}

/// A file's name, as positions record it.
fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// FNV-1a, 64 bits: a hash every instance computes alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// True for names a directory listing skips: hidden files and files being written.
fn skipped(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp")
}

impl FilesSource {
    /// Whether this instance reads the file at `position` of the sorted listing.
    fn mine(&self, position: usize, name: &OsString) -> bool {
        if !self.cfg.split {
            return true;
        }
        let slot = if self.cfg.tail {
            (fnv1a(name.to_string_lossy().as_bytes()) % self.instances as u64) as usize
        } else {
            position % self.instances
        };
        slot == self.instance
    }

    /// Queues the files this instance has not seen yet; returns how many.
    fn relist(&mut self, now: u64, out: &mut SourceOutput<'_, Value>) -> OpResult<usize> {
        self.last_list = now;
        let listing = if self.single_file {
            let name = self
                .cfg
                .path
                .file_name()
                .map(OsString::from)
                .unwrap_or_default();
            vec![(name, self.cfg.path.clone())]
        } else {
            list_dir(&self.cfg.path)?
        };
        let mut added = 0;
        for (position, (name, path)) in listing.into_iter().enumerate() {
            if self.seen.contains(&name) || !self.mine(position, &name) {
                continue;
            }
            if self.done.contains(name.to_string_lossy().as_ref()) {
                // Read to its end before the checkpoint this instance was restored from.
                self.seen.insert(name);
                continue;
            }
            self.seen.insert(name);
            self.queue.push_back(path);
            added += 1;
        }
        if added > 0 {
            out.count("files_listed", added as u64);
        }
        Ok(added)
    }
}

/// The regular files of `dir` (symlinks followed), sorted by name, skipping hidden and
/// `.tmp` names.
fn list_dir(dir: &Path) -> OpResult<Vec<(OsString, PathBuf)>> {
    let fail = |e: io::Error| OpError(format!("source.files: listing '{}': {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        // A file deleted between the listing and this check is simply not listed.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push((name, path));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{poll_once, strings, Polled};
    use std::collections::BTreeMap;
    use std::io::Write;

    fn config(path: &Path) -> FilesConfig {
        serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
    }

    fn init(instance: usize, instances: usize) -> InitContext {
        InitContext {
            instance,
            instances,
            ..InitContext::for_test("files")
        }
    }

    /// Polls until Done, advancing the clock 1 ms per poll; returns the lines.
    fn drain(src: &mut FilesSource, budget: usize) -> (Vec<String>, BTreeMap<String, u64>) {
        let mut lines = Vec::new();
        let mut counters = BTreeMap::new();
        for now in 0..100_000 {
            let p: Polled = poll_once(src, budget, now, &mut counters).unwrap();
            assert!(p.items.len() <= budget);
            lines.extend(strings(&p.items));
            if p.poll == SourcePoll::Done {
                return (lines, counters);
            }
        }
        panic!("source did not end");
    }

    fn write(dir: &Path, name: &str, content: &[u8]) {
        std::fs::write(dir.join(name), content).unwrap();
    }

    #[test]
    fn restored_from_a_checkpoint_it_reads_exactly_the_lines_after_it_also_on_fewer_instances() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for f in 0..4 {
            let text: String = (0..5).map(|l| format!("f{f}-{l}\n")).collect();
            write(dir.path(), &format!("f{f}.txt"), text.as_bytes());
            all.extend((0..5).map(|l| format!("f{f}-{l}")));
        }
        // Two instances read 7 lines each (files 0, 2 and 1, 3), then checkpoint.
        let mut counters = BTreeMap::new();
        let mut before = Vec::new();
        let mut positions = Vec::new();
        for i in 0..2 {
            let mut src = FilesSource::create(config(dir.path()), &init(i, 2)).unwrap();
            let p = poll_once(&mut src, 7, 0, &mut counters).unwrap();
            before.extend(strings(&p.items));
            positions.push(src.snapshot().unwrap().unwrap());
        }
        assert_eq!(before.len(), 14);
        // One instance now: every earlier position, then the rest of every file.
        let mut src = FilesSource::create(config(dir.path()), &init(0, 1)).unwrap();
        src.restore(positions.clone()).unwrap();
        let (after, _) = drain(&mut src, 3);
        let mut got: Vec<String> = before.iter().chain(&after).cloned().collect();
        got.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(got, want, "every line once");
        // A garbage position is an error, not a silent restart.
        let mut bad = FilesSource::create(config(dir.path()), &init(0, 1)).unwrap();
        assert!(bad.restore(vec![b"\xc1".to_vec()]).is_err());

        // Restored twice: two instances resume, read a line each and checkpoint again
        // (each still carries the offsets it was restored with for the other's files);
        // a third run, whatever the order of the positions, reads every line once.
        let mut second = Vec::new();
        let mut read = before.clone();
        for i in 0..2 {
            let mut src = FilesSource::create(config(dir.path()), &init(i, 2)).unwrap();
            src.restore(positions.clone()).unwrap();
            let p = poll_once(&mut src, 1, 0, &mut counters).unwrap();
            read.extend(strings(&p.items));
            second.push(src.snapshot().unwrap().unwrap());
        }
        for order in [second.clone(), second.iter().rev().cloned().collect()] {
            let mut src = FilesSource::create(config(dir.path()), &init(0, 1)).unwrap();
            src.restore(order).unwrap();
            let (after, _) = drain(&mut src, 3);
            let mut got: Vec<String> = read.iter().chain(&after).cloned().collect();
            got.sort();
            assert_eq!(got, want, "every line once after two restores");
        }
    }

    #[test]
    fn a_single_file_is_read_line_by_line_with_crlf_and_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "in.txt", b"one\r\ntwo\n\nbad\xff\nlast");
        let mut src = FilesSource::create(config(&dir.path().join("in.txt")), &init(0, 1)).unwrap();
        let (lines, counters) = drain(&mut src, 2);
        assert_eq!(lines, ["one", "two", "", "bad\u{fffd}", "last"]);
        assert_eq!(counters.get("invalid_utf8"), Some(&1));
        assert_eq!(counters.get("lines"), Some(&5));
        assert_eq!(counters.get("files_read"), Some(&1));
    }

    #[test]
    fn a_directory_is_read_in_name_order_skipping_hidden_and_tmp_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.log", b"b1\nb2\n");
        write(dir.path(), "a.log", b"a1\n");
        write(dir.path(), ".hidden", b"h\n");
        write(dir.path(), "c.log.tmp", b"t\n");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write(&dir.path().join("sub"), "x", b"x\n");
        let mut src = FilesSource::create(config(dir.path()), &init(0, 1)).unwrap();
        assert_eq!(drain(&mut src, 1).0, ["a1", "b1", "b2"]);
    }

    #[test]
    fn the_credit_bounds_each_poll() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        write(dir.path(), "f", text.as_bytes());
        let mut src = FilesSource::create(config(dir.path()), &init(0, 1)).unwrap();
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 7, 0, &mut counters).unwrap();
        assert_eq!(p.items.len(), 7);
        assert_eq!(p.poll, SourcePoll::More);
        let p = poll_once(&mut src, 0, 1, &mut counters).unwrap();
        assert!(p.items.is_empty());
        let (rest, _) = drain(&mut src, 30);
        assert_eq!(rest.len(), 93);
        assert_eq!(rest[0], "line 7");
    }

    #[test]
    fn split_reading_reads_every_line_exactly_once_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for f in 0..7 {
            let text: String = (0..f * 3 + 1).map(|i| format!("f{f}-{i}\n")).collect();
            expected.extend(text.lines().map(str::to_owned));
            write(dir.path(), &format!("part-{f}"), text.as_bytes());
        }
        let mut got = Vec::new();
        let mut per_instance = Vec::new();
        for i in 0..3 {
            let mut src = FilesSource::create(config(dir.path()), &init(i, 3)).unwrap();
            let (lines, _) = drain(&mut src, 5);
            per_instance.push(lines.len());
            got.extend(lines);
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert!(per_instance.iter().all(|&n| n > 0), "{per_instance:?}");

        // Without split every instance reads everything.
        let mut cfg = config(dir.path());
        cfg.split = false;
        for i in 0..3 {
            let mut src = FilesSource::create(cfg.clone(), &init(i, 3)).unwrap();
            assert_eq!(drain(&mut src, 5).0.len(), expected.len());
        }
    }

    #[test]
    fn tail_split_assigns_each_file_to_one_instance() {
        let names: Vec<OsString> = (0..50).map(|i| format!("file-{i}").into()).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.tail = true;
        let srcs: Vec<FilesSource> = (0..3)
            .map(|i| FilesSource::create(cfg.clone(), &init(i, 3)).unwrap())
            .collect();
        for (p, n) in names.iter().enumerate() {
            let owners = srcs.iter().filter(|s| s.mine(p, n)).count();
            assert_eq!(owners, 1, "{n:?}");
        }
        assert!(srcs.iter().all(|s| (0..50).any(|p| s.mine(p, &names[p]))));
    }

    #[test]
    fn tail_picks_up_files_created_after_start_and_stops_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "00-first", b"first\n");
        let mut cfg = config(dir.path());
        cfg.tail = true;
        cfg.poll_ms = 50;
        cfg.stop_after_idle_ms = Some(1000);
        let mut src = FilesSource::create(cfg, &init(0, 1)).unwrap();
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 10, 0, &mut counters).unwrap();
        assert_eq!(strings(&p.items), ["first"]);
        assert_eq!(p.poll, SourcePoll::Wait(50));
        // A file being written (.tmp) is not read; once renamed it is.
        write(dir.path(), "01-second.tmp", b"second\nthird");
        let p = poll_once(&mut src, 10, 60, &mut counters).unwrap();
        assert!(p.items.is_empty());
        assert!(matches!(p.poll, SourcePoll::Wait(_)));
        std::fs::rename(
            dir.path().join("01-second.tmp"),
            dir.path().join("01-second"),
        )
        .unwrap();
        let p = poll_once(&mut src, 10, 110, &mut counters).unwrap();
        assert_eq!(p.poll, SourcePoll::More);
        let p = poll_once(&mut src, 10, 110, &mut counters).unwrap();
        assert_eq!(strings(&p.items), ["second", "third"]);
        // Quiet for less than the idle limit: still waiting; then done.
        let p = poll_once(&mut src, 10, 900, &mut counters).unwrap();
        assert!(matches!(p.poll, SourcePoll::Wait(w) if w <= 50));
        let p = poll_once(&mut src, 10, 1200, &mut counters).unwrap();
        assert_eq!(p.poll, SourcePoll::Done);
    }

    #[test]
    fn tail_without_idle_limit_never_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.tail = true;
        let mut src = FilesSource::create(cfg, &init(0, 1)).unwrap();
        let mut counters = BTreeMap::new();
        for now in (0..1_000_000).step_by(10_000) {
            let p = poll_once(&mut src, 10, now, &mut counters).unwrap();
            assert!(matches!(p.poll, SourcePoll::Wait(_)));
        }
    }

    #[test]
    fn tail_on_a_single_file_follows_appended_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        write(dir.path(), "log", b"a\npar");
        let mut cfg = config(&path);
        cfg.tail = true;
        cfg.stop_after_idle_ms = Some(500);
        let mut src = FilesSource::create(cfg, &init(0, 1)).unwrap();
        let mut counters = BTreeMap::new();
        let p = poll_once(&mut src, 10, 0, &mut counters).unwrap();
        assert_eq!(strings(&p.items), ["a"]);
        assert_eq!(p.poll, SourcePoll::Wait(200));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"tial\nb\nc").unwrap();
        let p = poll_once(&mut src, 10, 300, &mut counters).unwrap();
        assert_eq!(strings(&p.items), ["partial", "b"]);
        // Idle: the partial last line is emitted and the source ends.
        let p = poll_once(&mut src, 10, 900, &mut counters).unwrap();
        assert_eq!(strings(&p.items), ["c"]);
        assert_eq!(p.poll, SourcePoll::Done);
    }

    #[test]
    fn config_errors_and_missing_paths() {
        let missing = Path::new("/definitely/not/here/ringflow");
        let e = FilesSource::create(config(missing), &init(0, 1))
            .err()
            .unwrap();
        assert!(e.0.contains("/definitely/not/here/ringflow"), "{e}");
        // Validation alone does not look at the disk.
        let mut v = init(0, 1);
        v.validate_only = true;
        assert!(FilesSource::create(config(missing), &v).is_ok());
        let mut cfg = config(missing);
        cfg.poll_ms = 0;
        assert!(FilesSource::create(cfg, &v).is_err());
        let mut cfg = config(missing);
        cfg.stop_after_idle_ms = Some(5);
        assert!(FilesSource::create(cfg, &v).is_err());
        let bad: Result<FilesConfig, _> =
            serde_json::from_value(serde_json::json!({"path": "/x", "tial": true}));
        assert!(bad.is_err());
    }

    #[test]
    fn an_overlong_line_fails_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "f", b"short\nmuch too long\n");
        let mut cfg = config(dir.path());
        cfg.max_line_bytes = 8;
        let mut src = FilesSource::create(cfg, &init(0, 1)).unwrap();
        let mut counters = BTreeMap::new();
        let e = poll_once(&mut src, 10, 0, &mut counters).err().unwrap();
        assert!(e.0.contains("line 2") && e.0.contains('f'), "{e}");
    }
}
