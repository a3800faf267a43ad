//! The source trait: poll-driven, so the runtime only asks for records it has credit for.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::data::{Data, EventTime, Key};
use crate::operator::{InitContext, OpResult};
use crate::outputs::Outputs;

/// What a poll says about the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// More is available now: poll again as soon as there is credit.
    More,
    /// Nothing now: poll again after this many milliseconds (or earlier).
    Wait(u64),
    /// The source has ended.
    Done,
}

/// A source of records: files, sockets, generators.
pub trait Source: Send + Sized + 'static {
    /// Record type it produces.
    type Out: Data;
    /// Configuration from the job spec.
    type Config: DeserializeOwned;

    /// Builds an instance; a bad config is refused here, at submit time. When
    /// `init.validate_only` is set, check the config but open nothing.
    fn create(config: Self::Config, init: &InitContext) -> OpResult<Self>;

    /// Emits up to [`SourceOutput::remaining`] records and says when to poll again.
    fn poll(&mut self, out: &mut SourceOutput<'_, Self::Out>) -> OpResult<SourcePoll>;

    /// The position to resume from, at a checkpoint barrier (after every record emitted
    /// so far), e.g. with [`crate::checkpoint::to_bytes`]; `None` when the source cannot
    /// replay (a socket): a job restored from a checkpoint then loses or repeats what it
    /// read since.
    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Resumes from the positions of the earlier instances given to this one (see
    /// [`crate::checkpoint::Restore::for_instance`]), before the first poll.
    fn restore(&mut self, positions: Vec<Vec<u8>>) -> OpResult {
        if positions.is_empty() {
            Ok(())
        } else {
            Err("this source has a position to restore but does not implement restore".into())
        }
    }
}

/// Where a source's poll puts its records and watermarks.
pub struct SourceOutput<'a, T> {
    pub(crate) out: &'a mut Outputs<T>,
    pub(crate) budget: usize,
    pub(crate) emitted: usize,
    pub(crate) watermark: Option<EventTime>,
    pub(crate) counters: &'a mut BTreeMap<String, u64>,
    pub(crate) now: u64,
}

impl<T: Data> SourceOutput<'_, T> {
    /// Emits an unkeyed record.
    pub fn emit(&mut self, value: T) {
        self.emitted += 1;
        self.out.push(None, value);
    }

    /// Emits a keyed record.
    pub fn emit_keyed(&mut self, key: Key, value: T) {
        self.emitted += 1;
        self.out.push(Some(key), value);
    }

    /// Promises that no record at or before `time` will follow.
    pub fn watermark(&mut self, time: EventTime) {
        self.watermark = Some(self.watermark.map_or(time, |w| w.max(time)));
    }

    /// Lets this poll emit at most `n` more records (a source that paces itself).
    pub fn limit(&mut self, n: usize) {
        self.budget = self.budget.min(self.emitted.saturating_add(n));
    }

    /// How many more records this poll may emit (the credit the runtime has).
    pub fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.emitted)
    }

    /// Processing time (ms since the Unix epoch), passed in by the runtime.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Adds `n` to a named counter shown in `ringflow job status`.
    pub fn count(&mut self, name: &str, n: u64) {
        match self.counters.get_mut(name) {
            Some(c) => *c = c.wrapping_add(n),
            None => {
                self.counters.insert(name.to_owned(), n);
            }
        }
    }
}
