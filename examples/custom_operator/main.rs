//! A custom worker binary: ringflow's command line plus two operators of our own.
//!
//! `word-len` turns words (JSON strings) into typed `WordLen` records keyed by length;
//! `len-count` counts words per length in keyed state (per ring partition) and emits one
//! JSON record per length at the end of input. Records between them are typed Rust
//! values, serialized with MessagePack only when they cross workers. `word-tally`
//! keeps state of its own (words seen, longest word) that it snapshots and restores
//! itself, so a checkpointed job survives the loss of a worker: `len-count`'s keyed
//! state is checkpointed per ring partition by the runtime (one line:
//! [`Operator::keyed_state`]).
//!
//! ```text
//! cargo build --release -p ringflow-examples --example custom_operator
//! ./target/release/examples/custom_operator local          # a cluster running this binary
//! ./target/release/examples/custom_operator job submit examples/custom_operator/job.toml --wait
//! ```

use ringflow::stream::{Batch, Context, InitContext, KeyedState, OpResult, Operator, Value};
use serde::{Deserialize, Serialize};

/// A word and its length: the typed record between our two operators.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WordLen {
    /// The word.
    pub word: String,
    /// Its length in characters.
    pub len: usize,
}

/// Config of `word-len`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordLenConfig {
    /// Words shorter than this are dropped.
    #[serde(default)]
    pub min_len: usize,
}

/// `word-len`: JSON string → `WordLen`, keyed by the length.
pub struct WordLenOp {
    min_len: usize,
}

impl Operator for WordLenOp {
    type In = Value;
    type Out = WordLen;
    type Config = WordLenConfig;

    fn create(config: WordLenConfig, _init: &InitContext) -> OpResult<Self> {
        if config.min_len > 1000 {
            return Err("min_len must be at most 1000".into());
        }
        Ok(WordLenOp {
            min_len: config.min_len,
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, WordLen>) -> OpResult {
        for item in batch {
            let Some(word) = item.value.as_str() else {
                ctx.count("not_a_string", 1);
                continue;
            };
            let len = word.chars().count();
            if len < self.min_len {
                continue;
            }
            ctx.emit_keyed(
                len.to_string(),
                WordLen {
                    word: word.to_owned(),
                    len,
                },
            );
        }
        Ok(())
    }
}

/// `len-count`: counts `WordLen` records per key (the length) and emits the totals.
pub struct LenCountOp {
    counts: KeyedState<u64>,
}

impl Operator for LenCountOp {
    type In = WordLen;
    type Out = Value;
    type Config = serde_json::Map<String, Value>;

    fn create(_config: Self::Config, init: &InitContext) -> OpResult<Self> {
        Ok(LenCountOp {
            counts: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<WordLen>, _ctx: &mut Context<'_, Value>) -> OpResult {
        for item in batch {
            let key = item.key.unwrap_or_else(|| item.value.len.to_string());
            *self.counts.entry(&key) += 1;
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn ringflow::stream::PartitionedState> {
        Some(&mut self.counts)
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        for (len, n) in self.counts.drain() {
            ctx.emit(serde_json::json!({ "len": len.parse::<u64>().unwrap_or(0), "count": n }));
        }
        Ok(())
    }
}

/// What `word-tally` keeps: its own state, snapshotted with serde.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Words seen.
    pub words: u64,
    /// The longest word seen (the first of that length, then the smallest).
    pub longest: String,
}

impl Tally {
    /// Whether `word` beats the longest so far (longer, or as long and smaller).
    fn beats(&self, word: &str) -> bool {
        let (a, b) = (word.chars().count(), self.longest.chars().count());
        a > b || (a == b && word < self.longest.as_str())
    }

    fn add(&mut self, word: &str) {
        self.words += 1;
        if self.beats(word) {
            self.longest = word.to_owned();
        }
    }

    fn merge(&mut self, other: Tally) {
        self.words += other.words;
        if self.beats(&other.longest) {
            self.longest = other.longest;
        }
    }
}

/// `word-tally`: counts the words reaching this instance and remembers the longest;
/// emits `{"words", "longest"}` per instance at the end. Not keyed: its state goes
/// through [`Operator::snapshot`] and [`Operator::restore`] (after a rescale one
/// instance may get several earlier instances' tallies, and merges them).
pub struct WordTallyOp {
    tally: Tally,
}

impl Operator for WordTallyOp {
    type In = Value;
    type Out = Value;
    type Config = serde_json::Map<String, Value>;

    fn create(_config: Self::Config, _init: &InitContext) -> OpResult<Self> {
        Ok(WordTallyOp {
            tally: Tally::default(),
        })
    }

    fn on_batch(&mut self, batch: Batch<Value>, _ctx: &mut Context<'_, Value>) -> OpResult {
        for item in batch {
            if let Some(w) = item.value.as_str() {
                self.tally.add(w);
            }
        }
        Ok(())
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        ringflow::stream::checkpoint::to_bytes(&self.tally).map(Some)
    }

    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        for s in states {
            let t: Tally = ringflow::stream::checkpoint::from_bytes(&s)?;
            self.tally.merge(t);
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut Context<'_, Value>) -> OpResult {
        let t = std::mem::take(&mut self.tally);
        ctx.emit(serde_json::json!({ "words": t.words, "longest": t.longest }));
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    ringflow::WorkerBuilder::new()
        .operator::<WordLenOp>("word-len")
        .operator::<LenCountOp>("len-count")
        .operator::<WordTallyOp>("word-tally")
        .run()
}
