//! `sort`: an external merge sort of one instance's input, streamed out after its end.

use std::cmp::Ordering;
use std::collections::VecDeque;

use serde::Deserialize;

use super::loser_tree::LoserTree;
use super::record::{cmp_parts, cmp_records, key_slice, SortRecord};
use super::run::{Run, RunCursor, RunWriter, ScratchDir};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, Drain, InitContext, OpResult, Operator};

/// Configuration of `sort`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortConfig {
    /// Memory budget of the record buffer in bytes (record bytes + index), default
    /// 256 MiB. Over it, the buffer is sorted and spilled as a run.
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// Most runs merged at once (≥ 2, default 64); more runs are first merged in
    /// groups of `fan_in` into bigger runs (multi-level merge).
    #[serde(default = "default_fan_in")]
    pub fan_in: usize,
    /// Records emitted per drain call (default 4096).
    #[serde(default = "default_chunk")]
    pub chunk: usize,
}

fn default_memory() -> u64 {
    256 << 20
}

fn default_fan_in() -> usize {
    64
}

fn default_chunk() -> usize {
    4096
}

/// One buffered record: where its bytes are in the arena, its key span and the first
/// 8 key bytes (big-endian, zero-padded) for fast comparisons.
#[derive(Clone, Copy, Debug)]
struct Entry {
    prefix: u64,
    off: usize,
    len: u32,
    key_off: u32,
    key_len: u32,
}

const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
/// Records processed per drain call of an intermediate merge level.
const LEVEL_STEP: usize = 65_536;
/// Write buffer of a spilled run.
const WRITE_BUF: usize = 256 * 1024;

/// The first 8 bytes of `key` as a big-endian number, zero-padded: `prefix(a) <
/// prefix(b)` implies `a < b`, so equal prefixes fall back to the full comparison.
fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// The records buffered in memory: their bytes back to back and a compact index.
#[derive(Default)]
struct Arena {
    data: Vec<u8>,
    index: Vec<Entry>,
}

impl Arena {
    /// Bytes held: the capacity of both vectors.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.data.capacity() + self.index.capacity() * ENTRY_BYTES
    }

    fn bytes_of(&self, e: &Entry) -> &[u8] {
        &self.data[e.off..e.off + e.len as usize]
    }

    fn cmp(&self, a: &Entry, b: &Entry) -> Ordering {
        a.prefix.cmp(&b.prefix).then_with(|| {
            let (da, db) = (self.bytes_of(a), self.bytes_of(b));
            cmp_parts(
                key_slice(da, a.key_off, a.key_len),
                da,
                key_slice(db, b.key_off, b.key_len),
                db,
            )
        })
    }

    fn sort(&mut self) {
        let mut index = std::mem::take(&mut self.index);
        index.sort_unstable_by(|a, b| self.cmp(a, b));
        self.index = index;
    }

    fn record(&self, e: &Entry) -> SortRecord {
        SortRecord::new(self.bytes_of(e).to_vec(), e.key_off, e.key_len)
    }
}

/// The capacity to grow a vector of `cap` elements to so it holds `need`: doubling (from
/// at least `min`), up to its share `target` of the budget; past its share (the record
/// sizes changed), up to `room`, all that is left. `None` when `need` exceeds `room`.
fn grown(cap: usize, need: usize, target: usize, room: usize, min: usize) -> Option<usize> {
    if need <= cap {
        return Some(cap);
    }
    if need > room {
        return None;
    }
    let doubled = cap.saturating_mul(2).max(min);
    let limit = if need <= target { target } else { room };
    Some(doubled.min(limit).max(need))
}

/// A k-way merge of runs through a [`LoserTree`].
struct RunMerge {
    cursors: Vec<RunCursor>,
    tree: LoserTree,
}

fn cmp_heads(cursors: &[RunCursor], a: usize, b: usize) -> Ordering {
    match (cursors[a].head(), cursors[b].head()) {
        (Some(x), Some(y)) => cmp_records(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl RunMerge {
    fn open(runs: Vec<Run>, buf: usize) -> OpResult<Self> {
        let mut cursors = Vec::with_capacity(runs.len());
        for run in runs {
            cursors.push(RunCursor::open("sort", run, buf)?);
        }
        let tree = LoserTree::new(cursors.len(), |a, b| cmp_heads(&cursors, a, b));
        Ok(RunMerge { cursors, tree })
    }

    /// The next record in order, `None` when every run is exhausted.
    fn next(&mut self) -> OpResult<Option<SortRecord>> {
        let Some(w) = self.tree.winner() else {
            return Ok(None);
        };
        let Some(rec) = self.cursors[w].take()? else {
            return Ok(None);
        };
        let cursors = &self.cursors;
        self.tree.replay(|a, b| cmp_heads(cursors, a, b));
        Ok(Some(rec))
    }
}

/// Where a `sort` instance is.
enum Phase {
    /// Taking input.
    Collecting,
    /// Emitting the sorted buffer (nothing was spilled) from this index position.
    Memory(usize),
    /// Runs are spilled: decide the next merge level or the final merge.
    Plan,
    /// Merging groups of `fan_in` runs of `pending` into the bigger runs of `done`.
    Level {
        pending: VecDeque<Run>,
        done: Vec<Run>,
        current: Option<(RunMerge, RunWriter)>,
    },
    /// The final merge, streaming out.
    Final(RunMerge),
    /// Everything was emitted.
    Done,
}

/// `sort { memory_bytes, fan_in, chunk }`: sorts its input by the [`SortRecord`] order
/// and emits it, after its end, in non-decreasing order, unkeyed.
///
/// Records are buffered in an arena: their bytes back to back in one `Vec<u8>` and an
/// index of 32-byte entries (offset, length, key span, first 8 key bytes as a `u64` for
/// fast comparisons). Memory is counted as the capacity of both vectors: they grow by
/// doubling, each within its share of `memory_bytes` (shared in the proportion of the
/// average record size to the entry size), so together they never hold more than the
/// budget. A record that does not fit makes the buffer spill: the index is sorted
/// (`sort_unstable_by`, prefix first) and the records written as a sorted run to
/// `<scratch>/sort-<vertex>-<instance>/run-<n>.spill` through a 256 KiB buffer (a
/// record larger than the whole budget is taken alone). The buffers keep their
/// capacity for the next run.
///
/// At the end, with nothing spilled, the buffer is sorted and emitted `chunk` records
/// per drain call. Otherwise the rest is spilled too, the buffer freed, and runs are
/// merged with a [`LoserTree`]: while there are more than `fan_in` runs, groups of
/// `fan_in` are merged into bigger runs (one level per pass, 65536 records per
/// drain call); the final merge streams out `chunk` records per drain call. Each open
/// run reads through a buffer of `memory_bytes / fan_in` bytes clamped to 4..64 KiB, so
/// a merge holds at most about `max(memory_bytes, fan_in × 4 KiB)` whatever the run
/// count. Run files are deleted once merged, the directory when the instance is dropped.
///
/// Counters: `records` (taken in), `spilled_runs` (runs spilled from memory),
/// `spilled_bytes` (bytes written to spill files, intermediate merge levels included),
/// `merged_runs` (runs written by intermediate levels), `merge_passes` (merge levels
/// including the final merge: 0 for an in-memory sort; for `r` spilled runs, the
/// number of times `r → ceil(r / fan_in)` applies until `r ≤ fan_in`, plus one).
pub struct SortOp {
    cfg: SortConfig,
    budget: usize,
    read_buf: usize,
    arena: Arena,
    runs: Vec<Run>,
    dir: ScratchDir,
    phase: Phase,
}

impl Operator for SortOp {
    type In = SortRecord;
    type Out = SortRecord;
    type Config = SortConfig;

    fn create(cfg: SortConfig, init: &InitContext) -> OpResult<Self> {
        if cfg.memory_bytes == 0 {
            return Err("sort: 'memory_bytes' must be positive".into());
        }
        if cfg.fan_in < 2 || cfg.fan_in > 4096 {
            return Err("sort: 'fan_in' must be 2..=4096".into());
        }
        if cfg.chunk == 0 || cfg.chunk > 1 << 20 {
            return Err("sort: 'chunk' must be 1..=1048576".into());
        }
        let budget = usize::try_from(cfg.memory_bytes).unwrap_or(usize::MAX);
        let read_buf = (budget / cfg.fan_in).clamp(4 << 10, 64 << 10);
        Ok(SortOp {
            budget,
            read_buf,
            arena: Arena::default(),
            runs: Vec::new(),
            dir: ScratchDir::new("sort", &init.scratch_dir, &init.vertex, init.instance),
            phase: Phase::Collecting,
            cfg,
        })
    }

    fn on_batch(
        &mut self,
        batch: Batch<SortRecord>,
        ctx: &mut Context<'_, SortRecord>,
    ) -> OpResult {
        let n = batch.len() as u64;
        for item in batch {
            self.add(&item.value, ctx)?;
        }
        ctx.count("records", n);
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        if self.runs.is_empty() {
            self.arena.sort();
            self.phase = Phase::Memory(0);
        } else {
            if !self.arena.index.is_empty() {
                self.spill(ctx)?;
            }
            self.arena = Arena::default();
            self.phase = Phase::Plan;
        }
        Ok(())
    }

    fn on_drain(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult<Drain> {
        match &mut self.phase {
            Phase::Collecting | Phase::Done => Ok(Drain::Done),
            Phase::Memory(pos) => {
                let end = (*pos + self.cfg.chunk).min(self.arena.index.len());
                for e in &self.arena.index[*pos..end] {
                    ctx.emit(self.arena.record(e));
                }
                *pos = end;
                if end < self.arena.index.len() {
                    return Ok(Drain::More);
                }
                self.arena = Arena::default();
                self.phase = Phase::Done;
                Ok(Drain::Done)
            }
            Phase::Plan => {
                ctx.count("merge_passes", 1);
                let runs = std::mem::take(&mut self.runs);
                if runs.len() <= self.cfg.fan_in {
                    self.phase = Phase::Final(RunMerge::open(runs, self.read_buf)?);
                } else {
                    self.phase = Phase::Level {
                        pending: runs.into(),
                        done: Vec::new(),
                        current: None,
                    };
                }
                Ok(Drain::More)
            }
            Phase::Level {
                pending,
                done,
                current,
            } => {
                if current.is_none() {
                    let take = self.cfg.fan_in.min(pending.len());
                    let group: Vec<Run> = pending.drain(..take).collect();
                    if group.len() <= 1 {
                        // A lone run left over is carried to the next level as it is.
                        done.extend(group);
                    } else {
                        let path = self.dir.file("run")?;
                        let writer = RunWriter::create("sort", path, WRITE_BUF)?;
                        *current = Some((RunMerge::open(group, self.read_buf)?, writer));
                    }
                }
                if let Some((merge, writer)) = current {
                    let before = writer.bytes();
                    let mut finished = false;
                    for _ in 0..LEVEL_STEP {
                        match merge.next()? {
                            Some(rec) => writer.write_record(&rec)?,
                            None => {
                                finished = true;
                                break;
                            }
                        }
                    }
                    ctx.count("spilled_bytes", writer.bytes() - before);
                    if finished {
                        if let Some((_, writer)) = current.take() {
                            done.push(writer.finish()?);
                            ctx.count("merged_runs", 1);
                        }
                    }
                }
                if current.is_none() && pending.is_empty() {
                    self.runs = std::mem::take(done);
                    self.phase = Phase::Plan;
                }
                Ok(Drain::More)
            }
            Phase::Final(merge) => {
                for _ in 0..self.cfg.chunk {
                    match merge.next()? {
                        Some(rec) => ctx.emit(rec),
                        None => {
                            self.phase = Phase::Done;
                            return Ok(Drain::Done);
                        }
                    }
                }
                Ok(Drain::More)
            }
        }
    }
}

impl SortOp {
    /// Buffers one record, spilling first when it does not fit the budget.
    fn add(&mut self, rec: &SortRecord, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        let len = u32::try_from(rec.data.len())
            .map_err(|_| format!("sort: record of {} bytes is too large", rec.data.len()))?;
        if !self.fits(rec.data.len()) && !self.arena.index.is_empty() {
            self.spill(ctx)?;
        }
        self.reserve(rec.data.len());
        // The span is kept as it came (one outside the data is an empty key, here as
        // everywhere), so records come out exactly as they went in.
        self.arena.index.push(Entry {
            prefix: key_prefix(rec.key()),
            off: self.arena.data.len(),
            len,
            key_off: rec.key_off,
            key_len: rec.key_len,
        });
        self.arena.data.extend_from_slice(&rec.data);
        Ok(())
    }

    /// Whether a record of `len` bytes fits the budget (growing the vectors as
    /// [`SortOp::reserve`] would).
    fn fits(&self, len: usize) -> bool {
        self.growth(len).is_some()
    }

    /// The capacities (data bytes, index entries) to hold one more record of `len`
    /// bytes within the budget. The budget is shared between the two vectors in the
    /// proportion of the average record size to the index entry size, so that neither
    /// takes the room the other will need.
    fn growth(&self, len: usize) -> Option<(usize, usize)> {
        let a = &self.arena;
        let (n, bytes) = (a.index.len() + 1, a.data.len() + len);
        let avg = (bytes / n).max(1);
        let index_target = self.budget / (avg + ENTRY_BYTES);
        let data_target = index_target * avg;
        let data_cap = grown(
            a.data.capacity(),
            bytes,
            data_target,
            self.budget.saturating_sub(a.index.capacity() * ENTRY_BYTES),
            4096,
        )?;
        let index_cap = grown(
            a.index.capacity(),
            n,
            index_target,
            self.budget.saturating_sub(data_cap) / ENTRY_BYTES,
            64,
        )?;
        Some((data_cap, index_cap))
    }

    /// Grows the vectors for one more record of `len` bytes: within the budget when it
    /// fits, else exactly (a record alone larger than the budget).
    fn reserve(&mut self, len: usize) {
        let (data_cap, index_cap) = self
            .growth(len)
            .unwrap_or((self.arena.data.len() + len, self.arena.index.len() + 1));
        let a = &mut self.arena;
        if data_cap > a.data.capacity() {
            a.data.reserve_exact(data_cap - a.data.len());
        }
        if index_cap > a.index.capacity() {
            a.index.reserve_exact(index_cap - a.index.len());
        }
    }

    /// Sorts the buffer and writes it as a run; the buffer keeps its capacity.
    fn spill(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        self.arena.sort();
        let path = self.dir.file("run")?;
        let mut w = RunWriter::create("sort", path, WRITE_BUF)?;
        for e in &self.arena.index {
            w.write(self.arena.bytes_of(e), e.key_off, e.key_len)?;
        }
        ctx.count("spilled_bytes", w.bytes());
        ctx.count("spilled_runs", 1);
        self.runs.push(w.finish()?);
        self.arena.data.clear();
        self.arena.index.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{assert_sorted_like, recs, Harness};
    use super::*;
    use serde_json::json;

    fn prefix_is_monotone(a: &[u8], b: &[u8]) {
        if key_prefix(a) < key_prefix(b) {
            assert!(a < b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn key_prefixes_agree_with_the_byte_order() {
        let keys: [&[u8]; 8] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\x01",
            b"abcdefgh",
            b"abcdefghi",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for a in keys {
            for b in keys {
                prefix_is_monotone(a, b);
            }
        }
    }

    #[test]
    fn growth_stays_in_the_budget() {
        assert_eq!(grown(10, 5, 50, 100, 4), Some(10));
        assert_eq!(grown(10, 11, 50, 100, 4), Some(20));
        assert_eq!(grown(10, 11, 15, 100, 4), Some(15));
        // Past its share, a vector may take what is left, no more.
        assert_eq!(grown(15, 16, 15, 100, 4), Some(30));
        assert_eq!(grown(15, 16, 15, 20, 4), Some(20));
        assert_eq!(grown(10, 21, 15, 20, 4), None);
        assert_eq!(grown(0, 1, 100, 100, 64), Some(64));
    }

    #[test]
    fn the_buffer_fills_its_budget_and_spills_before_passing_it() {
        let mut h = Harness::<SortOp>::new(json!({"memory_bytes": 1 << 20}), 0, 1);
        let rec = SortRecord::new(vec![7; 100], 0, 10);
        let mut most = 0;
        for _ in 0..30_000 {
            h.batch(0, vec![rec.clone()]);
            most = most.max(h.op.arena.held());
            assert!(h.op.arena.held() <= 1 << 20);
        }
        // Runs are full: the buffer held at least 80% of the budget at its largest.
        assert!(most * 5 >= (1 << 20) * 4, "{most}");
        let per_run = (1 << 20) / (100 + ENTRY_BYTES);
        assert!(h.counter("spilled_runs") <= (30_000 / (per_run * 4 / 5)) as u64);
        assert_eq!(h.finish().len(), 30_000);
    }

    /// Sorts `input` with `config`; returns the output and the counters.
    fn sort(config: serde_json::Value, input: &[SortRecord]) -> (Vec<SortRecord>, Harness<SortOp>) {
        let mut h = Harness::<SortOp>::new(config, 0, 1);
        for part in input.chunks(97) {
            h.batch(0, part.to_vec());
        }
        let out = h.finish();
        (out, h)
    }

    /// Passes a multi-level merge of `runs` runs makes.
    fn expected_passes(mut runs: u64, fan_in: u64) -> u64 {
        let mut passes = 1;
        while runs > fan_in {
            runs = runs.div_ceil(fan_in);
            passes += 1;
        }
        passes
    }

    #[test]
    fn an_in_memory_sort_equals_a_reference_sort() {
        let input = recs(5000, 3, 12);
        let (out, h) = sort(json!({"chunk": 100}), &input);
        assert_sorted_like(&out, &input, "in memory");
        assert_eq!(h.counter("records"), 5000);
        assert_eq!(h.counter("spilled_runs"), 0);
        assert_eq!(h.counter("merge_passes"), 0);
        assert!(h.max_drain_emit <= 100);
        assert_eq!(h.drain_calls, 50);
    }

    #[test]
    fn spilled_sorts_merge_in_one_or_many_levels() {
        let input = recs(20_000, 7, 40);
        for fan_in in [2u64, 3, 64] {
            let tmp = tempfile::tempdir().unwrap();
            let mut h = Harness::<SortOp>::with_scratch(
                json!({"memory_bytes": 16384, "fan_in": fan_in, "chunk": 333}),
                0,
                1,
                tmp.path(),
            );
            for part in input.chunks(500) {
                h.batch(0, part.to_vec());
            }
            let out = h.finish();
            assert_sorted_like(&out, &input, &format!("fan_in {fan_in}"));
            let runs = h.counter("spilled_runs");
            // About 16 KiB / (20 + 32) bytes = 315 records per run.
            assert!((20..=150).contains(&runs), "{runs} runs");
            assert_eq!(h.counter("merge_passes"), expected_passes(runs, fan_in));
            assert!(h.counter("spilled_bytes") > 0);
            if fan_in == 2 {
                assert!(h.counter("merge_passes") >= 5);
                // Each binary merge takes one run off, until two are left for the final merge.
                assert_eq!(h.counter("merged_runs"), runs - 2);
            }
            assert!(h.max_drain_emit <= 333);
            drop(h);
            // The instance's spill directory is gone with it.
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn duplicates_empty_records_and_bad_key_spans() {
        let mut input = vec![
            SortRecord::new(Vec::new(), 0, 0),
            SortRecord::new(b"zz".to_vec(), 5, 9),
            SortRecord::new(b"zz".to_vec(), 0, 1),
            SortRecord::new(b"a".to_vec(), 0, 1),
        ];
        for _ in 0..3 {
            input.extend(input.clone());
        }
        let (out, _) = sort(json!({"memory_bytes": 100, "fan_in": 2}), &input);
        assert_eq!(out.len(), input.len());
        for w in out.windows(2) {
            assert_ne!(cmp_records(&w[0], &w[1]), Ordering::Greater);
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let init = InitContext::for_test("s");
        for c in [
            json!({"memory_bytes": 0}),
            json!({"fan_in": 1}),
            json!({"chunk": 0}),
            json!({"memory": 5}),
        ] {
            let r = serde_json::from_value::<SortConfig>(c.clone())
                .map_err(|e| e.to_string())
                .and_then(|cfg| SortOp::create(cfg, &init).map(drop).map_err(|e| e.0));
            assert!(r.is_err(), "{c}");
        }
    }

    #[test]
    fn an_empty_input_sorts_to_nothing() {
        let (out, h) = sort(json!({}), &[]);
        assert!(out.is_empty());
        assert_eq!(h.counter("merge_passes"), 0);
    }
}
