//! `sink.file`: one part file per instance in a directory, published atomically at the
//! end.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::PathBuf;

use serde::Deserialize;

use super::format::LineFormat;
use super::throttle::Throttle;
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};
use ringflow_stream::Value;

/// Configuration of `sink.file`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Output directory (created at the first write if missing).
    pub path: PathBuf,
    /// Line format: `json` (default) or `text`.
    #[serde(default)]
    pub format: LineFormat,
    /// Flush the write buffer every this many records (and at the end).
    #[serde(default = "default_flush_every")]
    pub flush_every: u64,
    /// Write at most this many records per second (see [`Throttle`]).
    #[serde(default)]
    pub max_per_sec: Option<f64>,
}

fn default_flush_every() -> u64 {
    1000
}

/// Writes the records of instance `i` to `<path>/part-<i:05>.<jsonl|txt>`.
///
/// While the job runs the part is written as `part-<i:05>.<ext>.tmp`; at the end it is
/// flushed, fsynced and renamed to its final name (and the directory fsynced), so a
/// part under its final name is always complete. A job that fails leaves its `.tmp`
/// parts behind (and `source.files` skips `.tmp` names). An existing part of the same
/// name is replaced. An instance that received nothing still publishes an empty part,
/// so every instance's part exists once the job has finished. Counter: `written`.
///
/// Exactly once across restarts: at a checkpoint barrier the part is flushed and synced
/// and its length is the sink's snapshot. A job restored from that checkpoint truncates
/// the `.tmp` part back to that length and appends, so what was written after the
/// checkpoint (and is replayed) is not there twice. Parts of earlier instances that no
/// longer exist (fewer workers now) are truncated likewise and published at the end by
/// the instance that took them over. A part published after the checkpoint (its
/// instance finished before another one failed) is taken back the same way: with
/// checkpoints, parts are final once the job has finished.
pub struct FileSink<T = Value> {
    cfg: FileSinkConfig,
    instance: usize,
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<BufWriter<File>>,
    unflushed: u64,
    throttle: Throttle,
    /// Parts of earlier instances taken over at a restore: (`.tmp` path, final path,
    /// length). They are complete: published with this instance's own part.
    adopted: Vec<(PathBuf, PathBuf, u64)>,
    /// This instance was restored from a checkpoint: a `.tmp` part under its own name
    /// that it did not get back belongs to another instance, and its own part takes a
    /// fresh name.
    restored: bool,
    _records: std::marker::PhantomData<fn(T)>,
}

/// A part's length at a checkpoint: its final file name, and the bytes of its `.tmp`
/// that the checkpoint covers.
#[derive(serde::Serialize, serde::Deserialize)]
struct PartLength {
    name: String,
    bytes: u64,
}

impl<T: ringflow_stream::Data> Operator for FileSink<T> {
    type In = T;
    type Out = ();
    type Config = FileSinkConfig;

    fn create(cfg: FileSinkConfig, init: &InitContext) -> OpResult<Self> {
        if cfg.path.as_os_str().is_empty() {
            return Err("sink.file: 'path' is empty".into());
        }
        if cfg.flush_every == 0 {
            return Err("sink.file: 'flush_every' must be positive".into());
        }
        let throttle =
            Throttle::new(cfg.max_per_sec).map_err(|e| OpError(format!("sink.file: {e}")))?;
        let name = format!("part-{:05}.{}", init.instance, cfg.format.extension());
        let final_path = cfg.path.join(&name);
        let tmp_path = cfg.path.join(format!("{name}.tmp"));
        Ok(FileSink {
            cfg,
            instance: init.instance,
            final_path,
            tmp_path,
            writer: None,
            unflushed: 0,
            throttle,
            adopted: Vec::new(),
            restored: false,
            _records: std::marker::PhantomData,
        })
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        let mut parts = Vec::with_capacity(1 + self.adopted.len());
        if self.writer.is_some() {
            self.flush()?;
            let w = self.writer()?;
            let f = w.get_mut();
            let bytes = f
                .sync_data()
                .and_then(|()| f.stream_position())
                .map_err(|e| self.io_error("syncing", e))?;
            parts.push(PartLength {
                name: file_name(&self.final_path),
                bytes,
            });
        }
        for (_, fin, bytes) in &self.adopted {
            parts.push(PartLength {
                name: file_name(fin),
                bytes: *bytes,
            });
        }
        ringflow_stream::checkpoint::to_bytes(&parts).map(Some)
    }

    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        self.restored = true;
        let own = file_name(&self.final_path);
        for s in states {
            let parts: Vec<PartLength> = ringflow_stream::checkpoint::from_bytes(&s)?;
            for p in parts {
                if p.name.contains('/') || p.name.starts_with('.') {
                    return Err(OpError(format!(
                        "sink.file: bad part name '{}' in the checkpoint",
                        p.name
                    )));
                }
                let tmp = self.cfg.path.join(format!("{}.tmp", p.name));
                let published = self.cfg.path.join(&p.name);
                if !tmp.exists() && published.exists() {
                    // The part was published after the checkpoint (its instance finished
                    // before the failure): it is taken back and cut to the checkpoint, and
                    // published again when this run ends. A part is final only once the
                    // whole job has finished.
                    std::fs::rename(&published, &tmp).map_err(|e| {
                        OpError(format!(
                            "sink.file: taking back '{}': {e}",
                            published.display()
                        ))
                    })?;
                }
                if p.bytes == 0 && !tmp.exists() {
                    // Nothing was written before the checkpoint.
                    continue;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&tmp)
                    .map_err(|e| {
                        OpError(format!(
                            "sink.file: the checkpoint holds {} bytes of '{}': {e}",
                            p.bytes,
                            tmp.display()
                        ))
                    })?;
                f.set_len(p.bytes)
                    .and_then(|()| f.seek(std::io::SeekFrom::End(0)).map(drop))
                    .map_err(|e| {
                        OpError(format!("sink.file: truncating '{}': {e}", tmp.display()))
                    })?;
                if p.name == own && self.writer.is_none() {
                    self.writer = Some(BufWriter::with_capacity(64 * 1024, f));
                } else {
                    f.sync_all().map_err(|e| {
                        OpError(format!("sink.file: syncing '{}': {e}", tmp.display()))
                    })?;
                    self.adopted.push((tmp, published, p.bytes));
                }
            }
        }
        Ok(())
    }

    fn on_batch(&mut self, batch: Batch<T>, ctx: &mut Context<'_, ()>) -> OpResult {
        let n = batch.len() as u64;
        for item in &batch {
            self.throttle.admit();
            let format = self.cfg.format;
            let w = self.writer()?;
            if let Err(e) = format.write_line(w, item) {
                return Err(self.io_error("writing", e));
            }
            self.unflushed += 1;
            if self.unflushed >= self.cfg.flush_every {
                self.flush()?;
            }
        }
        ctx.count("written", n);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut Context<'_, ()>) -> OpResult {
        self.writer()?;
        self.flush()?;
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| self.io_error("flushing", e.into_error()))?;
        file.sync_all().map_err(|e| self.io_error("syncing", e))?;
        drop(file);
        let mut parts = vec![(self.tmp_path.clone(), self.final_path.clone())];
        parts.extend(self.adopted.drain(..).map(|(t, f, _)| (t, f)));
        for (tmp, fin) in parts {
            std::fs::rename(&tmp, &fin).map_err(|e| {
                OpError(format!(
                    "sink.file: renaming '{}' to '{}': {e}",
                    tmp.display(),
                    fin.display()
                ))
            })?;
        }
        sync_dir(&self.cfg.path).map_err(|e| {
            OpError(format!(
                "sink.file: syncing directory '{}': {e}",
                self.cfg.path.display()
            ))
        })
    }
}

impl<T> FileSink<T> {
    /// The writer, opening the `.tmp` part (and creating the directory) at first use.
    fn writer(&mut self) -> OpResult<&mut BufWriter<File>> {
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.cfg.path).map_err(|e| {
                OpError(format!(
                    "sink.file: creating directory '{}': {e}",
                    self.cfg.path.display()
                ))
            })?;
            if self.restored {
                // A `.tmp` under this instance's name that it did not get back is another
                // instance's (taken over after a rescale): write under a fresh name.
                let ext = self.cfg.format.extension();
                let mut n = 1;
                while self.tmp_path.exists() {
                    let name = format!("part-{:05}-{n}.{ext}", self.instance);
                    self.final_path = self.cfg.path.join(&name);
                    self.tmp_path = self.cfg.path.join(format!("{name}.tmp"));
                    n += 1;
                }
            }
            let f = File::create(&self.tmp_path).map_err(|e| self.io_error("creating", e))?;
            self.writer = Some(BufWriter::with_capacity(64 * 1024, f));
        }
        self.writer
            .as_mut()
            .ok_or_else(|| OpError("sink.file: no writer".into()))
    }

    fn flush(&mut self) -> OpResult {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.flush() {
                return Err(self.io_error("flushing", e));
            }
        }
        self.unflushed = 0;
        Ok(())
    }

    fn io_error(&self, doing: &str, e: std::io::Error) -> OpError {
        OpError(format!(
            "sink.file: {doing} '{}': {e}",
            self.tmp_path.display()
        ))
    }
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened).
/// The file name of a part's path.
fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::by_hand::{items, sink_call};
    use ringflow_stream::data::Item;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn make(config: Value, instance: usize, validate_only: bool) -> OpResult<FileSink> {
        let init = InitContext {
            instance,
            instances: 3,
            validate_only,
            ..InitContext::for_test("out")
        };
        FileSink::create(serde_json::from_value(config)?, &init)
    }

    #[test]
    fn parts_are_written_as_tmp_and_renamed_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut sink = make(json!({"path": out, "flush_every": 2}), 1, false).unwrap();
        let mut counters = BTreeMap::new();
        let mut batch = items([json!("a"), json!({"n": 1})]);
        batch.push(Item {
            key: Some("k".into()),
            value: json!(3),
        });
        sink_call(&mut sink, Some(batch), &mut counters).unwrap();
        let tmp = out.join("part-00001.jsonl.tmp");
        let part = out.join("part-00001.jsonl");
        // Flushed every 2 records: the first two are on disk, under the .tmp name.
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "\"a\"\n{\"n\":1}\n");
        assert!(!part.exists());
        sink_call(&mut sink, None, &mut counters).unwrap();
        assert!(!tmp.exists());
        assert_eq!(
            std::fs::read_to_string(&part).unwrap(),
            "\"a\"\n{\"n\":1}\n{\"key\":\"k\",\"value\":3}\n"
        );
        assert_eq!(counters.get("written"), Some(&3));
    }

    #[test]
    fn a_restored_part_is_cut_back_to_its_checkpoint_and_orphans_are_published() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let text =
            |instance| make(json!({"path": out, "format": "text"}), instance, false).unwrap();
        let mut counters = BTreeMap::new();
        // Two instances write, checkpoint, write more, and die.
        let mut states = Vec::new();
        for i in 0..2 {
            let mut s = text(i);
            sink_call(&mut s, Some(items([json!(format!("a{i}"))])), &mut counters).unwrap();
            states.push(s.snapshot().unwrap().unwrap());
            sink_call(
                &mut s,
                Some(items([json!(format!("after{i}"))])),
                &mut counters,
            )
            .unwrap();
            s.flush().unwrap();
        }
        // Instance 1 had finished: its part was published after the checkpoint.
        std::fs::rename(out.join("part-00001.txt.tmp"), out.join("part-00001.txt")).unwrap();
        // One instance now: its own part and the orphan of instance 1.
        let mut s = text(0);
        s.restore(states).unwrap();
        sink_call(&mut s, Some(items([json!("b0")])), &mut counters).unwrap();
        // A checkpoint of the one instance covers the part it took over, too.
        let one = s.snapshot().unwrap().unwrap();
        sink_call(&mut s, Some(items([json!("lost")])), &mut counters).unwrap();
        s.flush().unwrap();
        drop(s);
        // Two instances again: instance 0 gets both parts back; instance 1's name is
        // taken by the part instance 0 holds, so it writes under a fresh one.
        let (mut s0, mut s1) = (text(0), text(1));
        s0.restore(vec![one]).unwrap();
        s1.restore(Vec::new()).unwrap();
        sink_call(&mut s0, Some(items([json!("c0")])), &mut counters).unwrap();
        sink_call(&mut s1, Some(items([json!("c1")])), &mut counters).unwrap();
        sink_call(&mut s0, None, &mut counters).unwrap();
        sink_call(&mut s1, None, &mut counters).unwrap();
        let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(
            read("part-00000.txt"),
            "a0\nb0\nc0\n",
            "written after the checkpoints: not kept"
        );
        assert_eq!(read("part-00001.txt"), "a1\n");
        assert_eq!(read("part-00001-1.txt"), "c1\n");
        let left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A checkpoint that says bytes were written to a part that is gone: refused.
        let mut gone = text(3);
        let lost = ringflow_stream::checkpoint::to_bytes(&vec![PartLength {
            name: "part-00003.txt".into(),
            bytes: 9,
        }])
        .unwrap();
        assert!(gone.restore(vec![lost]).is_err());
    }

    #[test]
    fn text_parts_and_empty_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut counters = BTreeMap::new();
        let mut sink = make(json!({"path": dir.path(), "format": "text"}), 0, false).unwrap();
        sink_call(
            &mut sink,
            Some(items([json!("x y"), json!(2)])),
            &mut counters,
        )
        .unwrap();
        sink_call(&mut sink, None, &mut counters).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-00000.txt")).unwrap(),
            "x y\n2\n"
        );
        let mut idle = make(json!({"path": dir.path(), "format": "text"}), 2, false).unwrap();
        sink_call(&mut idle, None, &mut counters).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-00002.txt")).unwrap(),
            ""
        );
    }

    #[test]
    fn validation_creates_nothing_and_bad_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("never");
        make(json!({"path": out}), 0, true).unwrap();
        assert!(!out.exists());
        assert!(make(json!({"path": out, "flush_every": 0}), 0, true).is_err());
        assert!(make(json!({"path": out, "max_per_sec": 0}), 0, true).is_err());
        assert!(make(json!({"path": out, "format": "xml"}), 0, true).is_err());
        assert!(make(json!({"path": out, "flush": 1}), 0, true).is_err());
    }

    #[test]
    fn write_errors_fail_the_operator() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory should be.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let mut sink = make(json!({"path": blocker}), 0, false).unwrap();
        let mut counters = BTreeMap::new();
        let e = sink_call(&mut sink, Some(items([json!(1)])), &mut counters).unwrap_err();
        assert!(e.0.contains("blocker"), "{e}");
    }
}
