//! Test helpers of the sort operators: drive one operator's hooks by hand, generate
//! records and gensort-like data.

use std::path::Path;

use super::format::GENSORT_RECORD;
use super::record::SortRecord;
use ringflow_ring::rng::SplitMix64;
use ringflow_stream::data::Item;
use ringflow_stream::operator::{Context, Drain, InitContext, OpResult, Operator};
use ringflow_stream::testing::HookEnv;
use ringflow_stream::Value;

/// One operator instance whose hooks a test calls directly, collecting what it emits.
pub(crate) struct Harness<O: Operator> {
    pub op: O,
    env: HookEnv<O::Out>,
    inputs: usize,
    /// Everything emitted so far.
    pub emitted: Vec<Item<O::Out>>,
    /// Drain calls made by [`Harness::finish`].
    pub drain_calls: usize,
    /// Most records one drain call emitted.
    pub max_drain_emit: usize,
    _dir: Option<tempfile::TempDir>,
}

impl<O: Operator> Harness<O> {
    /// Instance `instance` of 3 (or more) with `inputs` input channels and a scratch
    /// directory of its own.
    pub fn new(config: Value, instance: usize, inputs: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Self::with_scratch(config, instance, inputs, dir.path());
        h._dir = Some(dir);
        h
    }

    /// As [`Harness::new`], spilling under `scratch`.
    pub fn with_scratch(config: Value, instance: usize, inputs: usize, scratch: &Path) -> Self {
        let init = InitContext {
            instance,
            instances: (instance + 1).max(3),
            scratch_dir: scratch.to_path_buf(),
            ..InitContext::for_test("v")
        };
        let cfg = serde_json::from_value(config).expect("config");
        let op = O::create(cfg, &init).expect("create");
        Harness {
            op,
            env: HookEnv::new(),
            inputs,
            emitted: Vec::new(),
            drain_calls: 0,
            max_drain_emit: 0,
            _dir: None,
        }
    }

    /// Calls a hook; returns its result and how many records it emitted.
    pub fn try_call<R>(
        &mut self,
        input: Option<usize>,
        f: impl FnOnce(&mut O, &mut Context<'_, O::Out>) -> OpResult<R>,
    ) -> OpResult<(R, usize)> {
        let mut ctx = self.env.context(input, self.inputs);
        let r = f(&mut self.op, &mut ctx)?;
        let mut n = 0;
        for item in self.env.take_emitted() {
            n += 1;
            self.emitted.push(item);
        }
        Ok((r, n))
    }

    fn call<R>(
        &mut self,
        input: Option<usize>,
        f: impl FnOnce(&mut O, &mut Context<'_, O::Out>) -> OpResult<R>,
    ) -> (R, usize) {
        match self.try_call(input, f) {
            Ok(r) => r,
            Err(e) => panic!("hook failed: {e}"),
        }
    }

    /// Delivers unkeyed `values` on input channel `input`.
    pub fn batch(&mut self, input: usize, values: Vec<O::In>) {
        let b = values
            .into_iter()
            .map(|value| Item { key: None, value })
            .collect();
        self.call(Some(input), |op, ctx| op.on_batch(b, ctx));
    }

    /// Input channel `input` ends.
    pub fn input_end(&mut self, input: usize) {
        self.call(Some(input), |op, ctx| op.on_input_end(input, ctx));
    }

    /// Calls `on_end`, then `on_drain` until it is done; returns every value emitted
    /// (since the start).
    pub fn finish(&mut self) -> Vec<O::Out> {
        self.try_finish()
            .unwrap_or_else(|e| panic!("hook failed: {e}"))
    }

    /// As [`Harness::finish`], returning an error of a hook.
    pub fn try_finish(&mut self) -> OpResult<Vec<O::Out>> {
        self.try_call(None, |op, ctx| op.on_end(ctx))?;
        loop {
            let (d, n) = self.try_call(None, |op, ctx| op.on_drain(ctx))?;
            self.drain_calls += 1;
            self.max_drain_emit = self.max_drain_emit.max(n);
            assert!(self.drain_calls < 10_000_000, "drain never ends");
            if d == Drain::Done {
                break;
            }
        }
        Ok(self.emitted.iter().map(|i| i.value.clone()).collect())
    }

    /// A counter's value (0 when never counted).
    pub fn counter(&self, name: &str) -> u64 {
        self.env.counters.get(name).copied().unwrap_or_default()
    }
}

/// `n` random records of up to `max_len` bytes from a small alphabet (many ties), with
/// random key spans inside the data.
pub(crate) fn recs(n: usize, seed: u64, max_len: u64) -> Vec<SortRecord> {
    let mut rng = SplitMix64(seed);
    const ALPHABET: &[u8] = b"ab\0\xff\n";
    (0..n)
        .map(|_| {
            let len = rng.below(max_len + 1) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
                .collect();
            let off = rng.below(len as u64 + 1);
            let klen = rng.below(len as u64 - off + 1);
            SortRecord::new(data, off as u32, klen as u32)
        })
        .collect()
}

/// `n` gensort-like 100-byte records: a 10-byte key (random, or skewed: `skew` of 4
/// records share a 2-byte prefix, another share one exact key), then the row number
/// and filler, so every record differs.
pub(crate) fn gensort_bytes(n: usize, seed: u64, skew: bool) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(n * GENSORT_RECORD);
    for row in 0..n {
        let mut rec = [0u8; GENSORT_RECORD];
        for b in &mut rec[..10] {
            *b = rng.next_u64() as u8;
        }
        if skew {
            match row % 4 {
                0 => rec[..2].copy_from_slice(b"ZZ"),
                1 => rec[..10].copy_from_slice(b"SAME_KEY!!"),
                _ => {}
            }
        }
        rec[10] = 0;
        rec[11] = 0x11;
        rec[12..28].copy_from_slice(&(row as u128).to_be_bytes());
        for (i, b) in rec[28..].iter_mut().enumerate() {
            *b = b'A' + ((row + i) % 26) as u8;
        }
        // Spread the row number to the payload's end too, so ties on the key are
        // broken by data that is not simply increasing with the row.
        rec[96..100].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
        out.extend_from_slice(&rec);
    }
    out
}

/// Asserts that `out` is `input` sorted: the same records (spans included) and, record
/// by record, the same bytes as a reference sort (records equal in the order have equal
/// bytes, so only their key spans may come in another order).
pub(crate) fn assert_sorted_like(out: &[SortRecord], input: &[SortRecord], what: &str) {
    let mut expected = input.to_vec();
    expected.sort_by(super::record::cmp_records);
    assert_eq!(out.len(), expected.len(), "{what}: record count");
    for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
        assert!(
            a.data == b.data && a.key() == b.key(),
            "{what}: record {i} differs"
        );
    }
    let mut x = out.to_vec();
    let mut y = input.to_vec();
    x.sort();
    y.sort();
    assert!(x == y, "{what}: not the same records");
}
