//! `merge`: a k-way merge of input channels that are each sorted already.

use std::cmp::Ordering;
use std::collections::VecDeque;

use serde::Deserialize;

use super::loser_tree::LoserTree;
use super::record::{cmp_records, SortRecord};
use super::run::{io_err, RunReader, RunWriter, ScratchDir};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, Drain, InitContext, OpResult, Operator};

/// Configuration of `merge`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Budget of the records queued in memory (default 64 MiB); over it, the tails of
    /// the largest queues move to spill files.
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// Records emitted per drain call, and the base of how many one input batch may
    /// release (default 4096).
    #[serde(default = "default_chunk")]
    pub chunk: usize,
}

fn default_memory() -> u64 {
    64 << 20
}

fn default_chunk() -> usize {
    4096
}

/// Memory counted per queued record beside its bytes (the record and its queue slot).
const RECORD_OVERHEAD: usize = std::mem::size_of::<SortRecord>() + 16;
/// Buffer of a spill file's writer and of its reader.
const FIFO_BUF: usize = 16 << 10;

fn held(r: &SortRecord) -> usize {
    r.data.len() + RECORD_OVERHEAD
}

/// Records of one input that wait on disk, in arrival order: appended at the end, read
/// from the front.
struct DiskFifo {
    writer: RunWriter,
    reader: Option<RunReader>,
    read: u64,
    dirty: bool,
}

impl DiskFifo {
    fn unread(&self) -> u64 {
        self.writer.records() - self.read
    }
}

/// One input channel: records queued in memory, then (when spilled) more on disk in
/// arrival order; records arriving while some wait on disk go to disk too.
#[derive(Default)]
struct InputQueue {
    mem: VecDeque<SortRecord>,
    mem_bytes: usize,
    disk: Option<DiskFifo>,
    ended: bool,
    /// The last record received, to check the input's own order.
    last: Option<SortRecord>,
}

impl InputQueue {
    fn head(&self) -> Option<&SortRecord> {
        self.mem.front()
    }
}

fn cmp_heads(queues: &[InputQueue], a: usize, b: usize) -> Ordering {
    match (queues[a].head(), queues[b].head()) {
        (Some(x), Some(y)) => cmp_records(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// `merge { memory_bytes, chunk }`: merges its input channels, each sorted by the
/// [`SortRecord`] order (e.g. the instances of a `sort` behind a `gather` edge), into one
/// sorted stream of unkeyed records.
///
/// Every input channel has a queue. Whenever each input that has not ended has a record
/// queued, the smallest head goes out (a [`LoserTree`] over the heads; equal heads leave
/// in channel order), at most `chunk + 2 × batch size` records per input batch; the
/// rest goes out `chunk` records per drain call once every input has ended.
///
/// Memory stays bounded when one input runs far ahead of another: when the queued
/// records (bytes + 48 per record) exceed `memory_bytes`, the largest queues keep a
/// front of `memory_bytes / (2 × inputs)` bytes (4 KiB..64 KiB, at least one record) in
/// memory and move the rest to a spill file
/// `<scratch>/merge-<vertex>-<instance>/in<input>-<n>.spill`, until half the budget is
/// used; records arriving for such an input are appended to its file, and the front is
/// refilled from it in order as it drains (FIFO per input). A file is deleted once
/// read.
///
/// An input that sends a record smaller than its previous one breaks its own order: the
/// record is still merged (the output is then out of order too) and counted under
/// `out_of_order_input`. Other counters: `records` (taken in), `spilled_records`,
/// `spilled_bytes` (written to spill files).
pub struct MergeOp {
    cfg: MergeConfig,
    budget: usize,
    queues: Vec<InputQueue>,
    queued_bytes: usize,
    tree: Option<LoserTree>,
    /// The input whose head went out last, its new head not yet replayed in the tree.
    stale: Option<usize>,
    dir: ScratchDir,
}

impl Operator for MergeOp {
    type In = SortRecord;
    type Out = SortRecord;
    type Config = MergeConfig;

    fn create(cfg: MergeConfig, init: &InitContext) -> OpResult<Self> {
        if cfg.memory_bytes == 0 {
            return Err("merge: 'memory_bytes' must be positive".into());
        }
        if cfg.chunk == 0 || cfg.chunk > 1 << 20 {
            return Err("merge: 'chunk' must be 1..=1048576".into());
        }
        Ok(MergeOp {
            budget: usize::try_from(cfg.memory_bytes).unwrap_or(usize::MAX),
            cfg,
            queues: Vec::new(),
            queued_bytes: 0,
            tree: None,
            stale: None,
            dir: ScratchDir::new("merge", &init.scratch_dir, &init.vertex, init.instance),
        })
    }

    fn on_batch(
        &mut self,
        batch: Batch<SortRecord>,
        ctx: &mut Context<'_, SortRecord>,
    ) -> OpResult {
        let input = ctx.input().unwrap_or(0);
        self.ensure_inputs(ctx.inputs().max(input + 1));
        let n = batch.len();
        let q = &mut self.queues[input];
        let mut disordered = 0;
        let mut prev = q.last.as_ref();
        for item in &batch {
            if prev.is_some_and(|p| cmp_records(&item.value, p) == Ordering::Less) {
                disordered += 1;
            }
            prev = Some(&item.value);
        }
        if let Some(last) = batch.last() {
            q.last = Some(last.value.clone());
        }
        for item in batch {
            let rec = item.value;
            let q = &mut self.queues[input];
            match q.disk.as_mut() {
                Some(d) => {
                    d.writer.write_record(&rec)?;
                    d.dirty = true;
                    ctx.count("spilled_records", 1);
                    ctx.count(
                        "spilled_bytes",
                        (super::run::HEADER + rec.data.len()) as u64,
                    );
                }
                None => {
                    let h = held(&rec);
                    q.mem_bytes += h;
                    self.queued_bytes += h;
                    q.mem.push_back(rec);
                }
            }
        }
        ctx.count("records", n as u64);
        if disordered > 0 {
            ctx.count("out_of_order_input", disordered);
        }
        if self.queued_bytes > self.budget {
            self.spill(ctx)?;
        }
        self.pump(ctx, self.cfg.chunk.saturating_add(2 * n))?;
        Ok(())
    }

    fn on_input_end(&mut self, input: usize, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        self.ensure_inputs(ctx.inputs().max(input + 1));
        self.queues[input].ended = true;
        self.pump(ctx, self.cfg.chunk)?;
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        self.ensure_inputs(ctx.inputs());
        for q in &mut self.queues {
            q.ended = true;
        }
        Ok(())
    }

    fn on_drain(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult<Drain> {
        let chunk = self.cfg.chunk;
        if self.pump(ctx, chunk)? < chunk {
            return Ok(Drain::Done);
        }
        Ok(Drain::More)
    }
}

impl MergeOp {
    fn ensure_inputs(&mut self, n: usize) {
        if self.queues.len() < n {
            self.queues.resize_with(n, InputQueue::default);
            // A new input changes the tournament.
            self.tree = None;
            self.stale = None;
        }
    }

    /// The bytes of records an input keeps in memory when it spills.
    fn front_bytes(&self) -> usize {
        (self.budget / (2 * self.queues.len().max(1))).clamp(4 << 10, 64 << 10)
    }

    /// Emits records in order while every unfinished input has one queued, at most
    /// `budget` of them; returns how many went out.
    fn pump(&mut self, ctx: &mut Context<'_, SortRecord>, budget: usize) -> OpResult<usize> {
        let mut emitted = 0;
        loop {
            if self.tree.is_none() {
                if self.queues.iter().any(|q| !q.ended && q.mem.is_empty()) {
                    return Ok(emitted);
                }
                let queues = &self.queues;
                self.tree = Some(LoserTree::new(queues.len(), |a, b| cmp_heads(queues, a, b)));
                self.stale = None;
            }
            let Some(tree) = self.tree.as_mut() else {
                return Ok(emitted);
            };
            if let Some(s) = self.stale {
                if self.queues[s].mem.is_empty() && !self.queues[s].ended {
                    // Its next record decides what goes out next: wait for it.
                    return Ok(emitted);
                }
                let queues = &self.queues;
                tree.replay(|a, b| cmp_heads(queues, a, b));
                self.stale = None;
            }
            let Some(w) = tree.winner() else {
                return Ok(emitted);
            };
            if emitted >= budget || self.queues[w].mem.is_empty() {
                // Out of budget, or the smallest head is none: every input is done.
                return Ok(emitted);
            }
            let q = &mut self.queues[w];
            let Some(rec) = q.mem.pop_front() else {
                return Ok(emitted);
            };
            let h = held(&rec);
            q.mem_bytes -= h;
            self.queued_bytes -= h;
            if q.mem.is_empty() && q.disk.is_some() {
                let front = self.front_bytes();
                self.refill(w, front)?;
            }
            self.stale = Some(w);
            ctx.emit(rec);
            emitted += 1;
        }
    }

    /// Reads up to `front` bytes (at least one record) of input `i`'s spill file back
    /// into memory; deletes the file once it is read to its end.
    fn refill(&mut self, i: usize, front: usize) -> OpResult {
        let q = &mut self.queues[i];
        let Some(d) = q.disk.as_mut() else {
            return Ok(());
        };
        if d.dirty {
            d.writer.flush()?;
            d.dirty = false;
        }
        if d.reader.is_none() {
            d.reader = Some(RunReader::open("merge", d.writer.path(), FIFO_BUF)?);
        }
        let mut got = 0;
        while d.unread() > 0 && (got == 0 || q.mem_bytes < front) {
            let Some(reader) = d.reader.as_mut() else {
                break;
            };
            let rec = reader.read()?;
            d.read += 1;
            let h = held(&rec);
            q.mem_bytes += h;
            self.queued_bytes += h;
            q.mem.push_back(rec);
            got += 1;
        }
        if d.unread() == 0 {
            let path = d.writer.path().to_path_buf();
            q.disk = None;
            std::fs::remove_file(&path).map_err(|e| io_err("merge", "removing", &path, e))?;
        }
        Ok(())
    }

    /// Moves the tails of the largest in-memory queues to spill files until at most
    /// half the budget is queued (or nothing more can move).
    fn spill(&mut self, ctx: &mut Context<'_, SortRecord>) -> OpResult {
        let front = self.front_bytes();
        while self.queued_bytes > self.budget / 2 {
            // The largest queue that has no spill file (one with a file holds only its
            // front in memory).
            let Some(i) = (0..self.queues.len())
                .filter(|&i| self.queues[i].disk.is_none() && self.queues[i].mem.len() > 1)
                .max_by_key(|&i| self.queues[i].mem_bytes)
            else {
                return Ok(());
            };
            let path = self.dir.file(&format!("in{i}"))?;
            let mut writer = RunWriter::create("merge", path, FIFO_BUF)?;
            let q = &mut self.queues[i];
            // Keep a front of `front` bytes (at least one record) in memory.
            let mut keep = 0;
            let mut kept_bytes = 0;
            for r in &q.mem {
                if keep > 0 && kept_bytes + held(r) > front {
                    break;
                }
                kept_bytes += held(r);
                keep += 1;
            }
            let mut moved_bytes = 0;
            for r in q.mem.drain(keep..) {
                moved_bytes += held(&r);
                writer.write_record(&r)?;
            }
            q.mem_bytes -= moved_bytes;
            self.queued_bytes -= moved_bytes;
            ctx.count("spilled_records", writer.records());
            ctx.count("spilled_bytes", writer.bytes());
            q.disk = Some(DiskFifo {
                writer,
                reader: None,
                read: 0,
                dirty: true,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{assert_sorted_like, recs, Harness};
    use super::*;
    use serde_json::json;

    /// `k` sorted inputs cut from one random set.
    fn sorted_inputs(k: usize, n: usize, seed: u64) -> Vec<Vec<SortRecord>> {
        let all = recs(n, seed, 30);
        let mut inputs: Vec<Vec<SortRecord>> = vec![Vec::new(); k];
        for (i, r) in all.into_iter().enumerate() {
            // Uneven shares: input j gets about (j + 1) parts.
            let j = (i * 7 + i / 3) % (k * (k + 1) / 2);
            let j = (0..k).find(|&x| j < (x + 1) * (x + 2) / 2).unwrap_or(0);
            inputs[j].push(r);
        }
        for v in &mut inputs {
            v.sort_by(cmp_records);
        }
        inputs
    }

    /// Feeds `inputs` in batches of `batch`, interleaved round-robin (or one input
    /// after the other with `sequential`); returns the harness after the drain.
    fn run_merge(
        config: serde_json::Value,
        inputs: &[Vec<SortRecord>],
        batch: usize,
        sequential: bool,
    ) -> (Vec<SortRecord>, Harness<MergeOp>) {
        let k = inputs.len();
        let mut h = Harness::<MergeOp>::new(config, 0, k);
        let mut chunks: Vec<std::slice::Chunks<'_, SortRecord>> =
            inputs.iter().map(|v| v.chunks(batch)).collect();
        if sequential {
            for (i, c) in chunks.iter_mut().enumerate() {
                for part in c {
                    h.batch(i, part.to_vec());
                }
                h.input_end(i);
            }
        } else {
            let mut live = vec![true; k];
            while live.iter().any(|&l| l) {
                for i in 0..k {
                    if !live[i] {
                        continue;
                    }
                    match chunks[i].next() {
                        Some(part) => h.batch(i, part.to_vec()),
                        None => {
                            live[i] = false;
                            h.input_end(i);
                        }
                    }
                }
            }
        }
        let out = h.finish();
        (out, h)
    }

    #[test]
    fn merges_sorted_inputs_into_their_sorted_union() {
        for k in [1, 2, 3, 8] {
            let inputs = sorted_inputs(k, 3000, k as u64);
            let all: Vec<SortRecord> = inputs.concat();
            for sequential in [false, true] {
                let (out, h) = run_merge(json!({"chunk": 64}), &inputs, 50, sequential);
                assert_sorted_like(&out, &all, &format!("k {k}"));
                assert_eq!(h.counter("records"), 3000);
                assert_eq!(h.counter("out_of_order_input"), 0);
                assert_eq!(h.counter("spilled_records"), 0);
                assert!(h.max_drain_emit <= 64);
            }
        }
    }

    #[test]
    fn records_go_out_as_soon_as_every_input_has_one() {
        let inputs = sorted_inputs(2, 200, 9);
        let mut h = Harness::<MergeOp>::new(json!({}), 0, 2);
        h.batch(0, inputs[0].clone());
        assert!(
            h.emitted.is_empty(),
            "input 1 may still send smaller records"
        );
        h.batch(1, inputs[1][..1].to_vec());
        assert!(!h.emitted.is_empty());
        h.input_end(1);
        // Input 1 has ended: input 0 alone goes on.
        assert_eq!(h.emitted.len(), inputs[0].len() + 1);
        h.input_end(0);
        assert_eq!(h.finish().len(), inputs[0].len() + 1);
    }

    #[test]
    fn a_tiny_budget_spills_an_input_that_runs_ahead_and_reads_it_back_in_order() {
        let inputs = sorted_inputs(3, 6000, 4);
        let all: Vec<SortRecord> = inputs.concat();
        for sequential in [true, false] {
            let (out, h) = run_merge(json!({"memory_bytes": 8192}), &inputs, 40, sequential);
            assert_sorted_like(&out, &all, "tiny budget");
            if sequential {
                assert!(h.counter("spilled_records") > 1000);
            }
            assert!(h.op.queued_bytes == 0);
            assert!(h.op.queues.iter().all(|q| q.disk.is_none()));
        }
        // While input 2 sends nothing, input 0 runs far ahead but memory stays bounded.
        let mut h = Harness::<MergeOp>::new(json!({"memory_bytes": 8192}), 0, 3);
        h.batch(1, inputs[1][..1].to_vec());
        for part in inputs[0].chunks(40) {
            h.batch(0, part.to_vec());
            assert!(h.op.queued_bytes <= 8192 + 40 * (30 + RECORD_OVERHEAD));
        }
        assert!(h.counter("spilled_records") > 0);
    }

    #[test]
    fn an_input_out_of_its_own_order_is_counted_not_fatal() {
        let mut h = Harness::<MergeOp>::new(json!({}), 0, 2);
        let r = |s: &str| SortRecord::new(s.as_bytes().to_vec(), 0, 1);
        h.batch(0, vec![r("b"), r("a"), r("c")]);
        h.batch(1, vec![r("a")]);
        h.input_end(0);
        h.input_end(1);
        let out = h.finish();
        assert_eq!(out.len(), 4);
        assert_eq!(h.counter("out_of_order_input"), 1);
    }

    #[test]
    fn no_input_at_all_and_bad_configs() {
        let mut h = Harness::<MergeOp>::new(json!({}), 0, 0);
        assert!(h.finish().is_empty());
        let init = InitContext::for_test("m");
        for c in [
            json!({"memory_bytes": 0}),
            json!({"chunk": 0}),
            json!({"x": 1}),
        ] {
            let r = serde_json::from_value::<MergeConfig>(c.clone())
                .map_err(|e| e.to_string())
                .and_then(|cfg| MergeOp::create(cfg, &init).map(drop).map_err(|e| e.0));
            assert!(r.is_err(), "{c}");
        }
    }
}
