//! `sink.sortfile`: one part file of sort records per instance, published atomically at
//! the end.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::format::{write_record, Format};
use super::record::{cmp_records, record_checksum, SortRecord};
use super::source::{default_delimiter, default_format};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator};

/// Configuration of `sink.sortfile`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortFileSinkConfig {
    /// Output directory (created at the first write if missing).
    pub path: PathBuf,
    /// `gensort` (default) or `lines`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Accepted for symmetry with `source.sortfile` and checked, but unused: records
    /// carry their key spans.
    #[serde(default)]
    pub key_field: Option<usize>,
    /// As `key_field`: checked, unused.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
}

/// `sink.sortfile { path, format }`: instance `i` writes the records it receives, in
/// arrival order, to `<path>/part-<i:05>.dat` (gensort: raw 100-byte records) or
/// `.txt` (lines: data + `\n`).
///
/// The part is written as `<name>.tmp` through a 256 KiB buffer; at the end it is
/// flushed, fsynced, renamed to its final name and the directory fsynced, so a part
/// under its final name is complete. An instance that received nothing still publishes
/// an empty part. The directory is created at first use (never when only validating).
/// A record the format cannot hold (a gensort record that is not 100 bytes, a line
/// with a newline) fails the job.
///
/// Counters: `records`, `bytes` (record bytes, line endings excluded), `checksum` (as
/// `source.sortfile`'s), `out_of_order` (records smaller than the one before them:
/// 0 behind a `sort`).
pub struct SortFileSink {
    format: Format,
    dir: PathBuf,
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<BufWriter<File>>,
    last: Option<SortRecord>,
}

impl Operator for SortFileSink {
    type In = SortRecord;
    type Out = ();
    type Config = SortFileSinkConfig;

    fn create(cfg: SortFileSinkConfig, init: &InitContext) -> OpResult<Self> {
        let format = Format::parse(&cfg.format, cfg.key_field, &cfg.delimiter)
            .map_err(|e| OpError(format!("sink.sortfile: {e}")))?;
        if cfg.path.as_os_str().is_empty() {
            return Err("sink.sortfile: 'path' is empty".into());
        }
        let name = format!("part-{:05}.{}", init.instance, format.extension());
        Ok(SortFileSink {
            format,
            final_path: cfg.path.join(&name),
            tmp_path: cfg.path.join(format!("{name}.tmp")),
            dir: cfg.path,
            writer: None,
            last: None,
        })
    }

    fn on_batch(&mut self, batch: Batch<SortRecord>, ctx: &mut Context<'_, ()>) -> OpResult {
        let (mut bytes, mut sum, mut disordered) = (0u64, 0u64, 0u64);
        let n = batch.len() as u64;
        self.writer()?;
        for item in batch {
            let rec = item.value;
            if self
                .last
                .as_ref()
                .is_some_and(|last| cmp_records(&rec, last) == Ordering::Less)
            {
                disordered += 1;
            }
            let Some(w) = self.writer.as_mut() else {
                return Err("sink.sortfile: no writer".into());
            };
            if let Err(e) = write_record(w, self.format, &rec) {
                return Err(io_error("writing", &self.tmp_path, e));
            }
            bytes += rec.data.len() as u64;
            sum += u64::from(record_checksum(&rec.data));
            self.last = Some(rec);
        }
        ctx.count("records", n);
        ctx.count("bytes", bytes);
        ctx.count("checksum", sum);
        if disordered > 0 {
            ctx.count("out_of_order", disordered);
        }
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut Context<'_, ()>) -> OpResult {
        self.writer()?;
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| io_error("flushing", &self.tmp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error("syncing", &self.tmp_path, e))?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(|e| {
            OpError(format!(
                "sink.sortfile: renaming '{}' to '{}': {e}",
                self.tmp_path.display(),
                self.final_path.display()
            ))
        })?;
        sync_dir(&self.dir).map_err(|e| io_error("syncing directory", &self.dir, e))
    }
}

impl SortFileSink {
    /// Opens the `.tmp` part (creating the directory) at first use.
    fn writer(&mut self) -> OpResult {
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| io_error("creating directory", &self.dir, e))?;
            let f = File::create(&self.tmp_path)
                .map_err(|e| io_error("creating", &self.tmp_path, e))?;
            self.writer = Some(BufWriter::with_capacity(256 * 1024, f));
        }
        Ok(())
    }
}

fn io_error(doing: &str, path: &Path, e: std::io::Error) -> OpError {
    OpError(format!("sink.sortfile: {doing} '{}': {e}", path.display()))
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
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
    use super::super::testkit::Harness;
    use super::*;
    use serde_json::json;

    fn line(s: &str) -> SortRecord {
        SortRecord::new(s.as_bytes().to_vec(), 0, s.len() as u32)
    }

    #[test]
    fn parts_are_tmp_until_the_end_and_count_disorder() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut h = Harness::<SortFileSink>::new(json!({"path": out, "format": "lines"}), 1, 1);
        h.batch(0, vec![line("a"), line("c"), line("b")]);
        assert!(out.join("part-00001.txt.tmp").exists());
        assert!(!out.join("part-00001.txt").exists());
        h.finish();
        assert!(!out.join("part-00001.txt.tmp").exists());
        assert_eq!(
            std::fs::read(out.join("part-00001.txt")).unwrap(),
            b"a\nc\nb\n"
        );
        assert_eq!(h.counter("records"), 3);
        assert_eq!(h.counter("bytes"), 3);
        assert_eq!(h.counter("out_of_order"), 1);
        let sum: u64 = ["a", "c", "b"]
            .iter()
            .map(|s| u64::from(record_checksum(s.as_bytes())))
            .sum();
        assert_eq!(h.counter("checksum"), sum);
    }

    #[test]
    fn empty_parts_and_bad_records() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = Harness::<SortFileSink>::new(json!({"path": tmp.path()}), 2, 1);
        h.finish();
        assert_eq!(
            std::fs::read(tmp.path().join("part-00002.dat")).unwrap(),
            b""
        );
        let mut h = Harness::<SortFileSink>::new(json!({"path": tmp.path()}), 0, 1);
        let e = h
            .try_call(Some(0), |op, ctx| {
                op.on_batch(
                    vec![ringflow_stream::data::Item {
                        key: None,
                        value: line("short"),
                    }],
                    ctx,
                )
            })
            .unwrap_err();
        assert!(e.0.contains("part-00000.dat.tmp"), "{e}");
    }

    #[test]
    fn validation_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("never");
        let init = InitContext {
            validate_only: true,
            ..InitContext::for_test("s")
        };
        let cfg: SortFileSinkConfig = serde_json::from_value(json!({"path": out})).unwrap();
        SortFileSink::create(cfg, &init).unwrap();
        assert!(!out.exists());
        for bad in [json!({"path": out, "format": "xml"}), json!({"path": ""})] {
            let cfg: SortFileSinkConfig = serde_json::from_value(bad).unwrap();
            assert!(SortFileSink::create(cfg, &init).is_err());
        }
    }
}
