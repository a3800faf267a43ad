//! The writer thread: group commit of queued requests into the WAL.

use std::collections::{HashMap, HashSet};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringflow_ring::PartitionId;

use crate::{DhtError, Entry};

use super::wal::Segment;
use super::{Shared, Write};

/// A completion callback.
pub(crate) type Callback<T> = Box<dyn FnOnce(Result<T, DhtError>) + Send>;

/// A callback that is called exactly once: by [`Done::complete`], or with
/// [`DhtError::Closed`] when dropped (the writer stopped, or never received the request).
pub(crate) struct Done<T>(Option<Callback<T>>);

impl<T> Done<T> {
    pub(crate) fn new(callback: Callback<T>) -> Self {
        Self(Some(callback))
    }

    pub(crate) fn complete(mut self, result: Result<T, DhtError>) {
        if let Some(callback) = self.0.take() {
            call(callback, result);
        }
    }
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        if let Some(callback) = self.0.take() {
            call(
                callback,
                Err(DhtError::Closed(
                    "the store's writer stopped before completing the request".into(),
                )),
            );
        }
    }
}

/// Runs a callback; a panicking callback must not take the writer thread down.
fn call<T>(callback: Callback<T>, result: Result<T, DhtError>) {
    if catch_unwind(AssertUnwindSafe(move || callback(result))).is_err() {
        tracing::error!("a store completion callback panicked");
    }
}

/// Work for the log.
pub(crate) enum Data {
    /// A batch of writes with their frames pre-encoded (by the caller's thread):
    /// the frame of `writes[i]` is `frames[ends[i - 1]..ends[i]]`.
    Write {
        writes: Vec<Write>,
        frames: Vec<u8>,
        ends: Vec<usize>,
        done: Done<Vec<bool>>,
    },
    /// Forget a partition.
    Drop {
        partition: PartitionId,
        frame: Vec<u8>,
        done: Done<()>,
    },
}

impl Data {
    fn records(&self) -> usize {
        match self {
            Data::Write { writes, .. } => writes.len(),
            Data::Drop { .. } => 1,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Data::Write { frames, .. } => frames.len(),
            Data::Drop { frame, .. } => frame.len(),
        }
    }

    fn fail(self, error: DhtError) {
        match self {
            Data::Write { done, .. } => done.complete(Err(error)),
            Data::Drop { done, .. } => done.complete(Err(error)),
        }
    }
}

/// A message to the writer thread.
pub(crate) enum Request {
    /// Log and apply.
    Data(Data),
    /// Start a new segment; answers its number (everything before it is applied in memory).
    Roll(Done<u64>),
    /// Forget these tombstones of a partition (each only if still that very tombstone);
    /// answers how many.
    Forget(PartitionId, Vec<(Vec<u8>, crate::Version)>, Done<u64>),
    /// Flush and stop.
    Close(Done<()>),
}

/// Settings the writer needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_batch: usize,
    pub max_bytes: usize,
    pub segment_bytes: u64,
    pub sync: bool,
    pub sync_interval: Duration,
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub rx: Receiver<Request>,
    pub segment: Segment,
    pub dir: PathBuf,
    pub limits: Limits,
    /// Set after a failed write or fsync: the log's state is unknown, nothing more is accepted.
    pub failed: Option<String>,
    /// With `sync = false`: when data was first written after the last fsync.
    pub dirty_since: Option<Instant>,
    /// A request received while gathering that did not fit in the group.
    pub carry: Option<Request>,
    pub buf: Vec<u8>,
}

enum Completion {
    Write(Done<Vec<bool>>, Vec<bool>),
    Unit(Done<()>),
}

/// A copy of an error to give to every request of a failed group.
fn copy_error(e: &DhtError) -> DhtError {
    match e {
        DhtError::Io { context, source } => DhtError::Io {
            context: context.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        other => DhtError::Closed(other.to_string()),
    }
}

impl Writer {
    /// The thread's body: runs until a `Close` request or until every sender is gone.
    pub(crate) fn run(mut self) {
        loop {
            let request = match self.carry.take() {
                Some(r) => r,
                None => {
                    // Unsynced data waits at most `sync_interval`, even when idle.
                    let next = match self.dirty_since {
                        Some(t) => self
                            .rx
                            .recv_timeout(self.limits.sync_interval.saturating_sub(t.elapsed())),
                        None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => {
                            self.sync_now();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            if let Err(e) = self.flush() {
                                tracing::error!(error = %e, "flushing the write-ahead log");
                            }
                            break;
                        }
                    }
                }
            };
            match request {
                Request::Data(first) => {
                    let group = self.gather(first);
                    self.commit(group);
                }
                Request::Roll(done) => {
                    let result = self.roll();
                    done.complete(result);
                }
                Request::Forget(partition, tombstones, done) => {
                    done.complete(Ok(self.shared.forget_tombstones(partition, &tombstones)));
                }
                Request::Close(done) => {
                    let result = self.flush();
                    done.complete(result);
                    break;
                }
            }
        }
        // Requests that raced with close: their guards answer `Closed`.
        while let Ok(request) = self.rx.try_recv() {
            drop(request);
        }
    }

    /// Takes every queued request that fits in one group, without waiting.
    fn gather(&mut self, first: Data) -> Vec<Data> {
        let mut records = first.records();
        let mut bytes = first.bytes();
        let mut group = vec![first];
        while records < self.limits.max_batch && bytes < self.limits.max_bytes {
            match self.rx.try_recv() {
                Ok(Request::Data(data))
                    if records + data.records() <= self.limits.max_batch
                        && bytes + data.bytes() <= self.limits.max_bytes =>
                {
                    records += data.records();
                    bytes += data.bytes();
                    group.push(data);
                }
                Ok(other) => {
                    self.carry = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Logs the writes of a group that supersede the current state (one write, one fsync),
    /// applies them in memory, then completes every request.
    fn commit(&mut self, group: Vec<Data>) {
        if let Some(reason) = &self.failed {
            for data in group {
                data.fail(DhtError::Closed(format!(
                    "the store failed earlier: {reason}"
                )));
            }
            return;
        }
        self.buf.clear();
        let mut logged = 0u64;
        let mut decisions = Vec::with_capacity(group.len());
        {
            // What the group itself has written so far, on top of the applied state.
            let mut overlay: HashMap<(PartitionId, &[u8]), &Entry> = HashMap::new();
            let mut dropped: HashSet<PartitionId> = HashSet::new();
            for data in &group {
                match data {
                    Data::Write {
                        writes,
                        frames,
                        ends,
                        ..
                    } => {
                        let mut newer = Vec::with_capacity(writes.len());
                        let mut start = 0;
                        for (w, &end) in writes.iter().zip(ends) {
                            let k = (w.partition, w.key.as_slice());
                            let apply = match overlay.get(&k) {
                                Some(current) => w.entry.supersedes(Some(current)),
                                None if dropped.contains(&w.partition) => true,
                                None => self.shared.supersedes(w),
                            };
                            if apply {
                                overlay.insert(k, &w.entry);
                                self.buf.extend_from_slice(&frames[start..end]);
                                logged += 1;
                            }
                            newer.push(apply);
                            start = end;
                        }
                        decisions.push(newer);
                    }
                    Data::Drop {
                        partition, frame, ..
                    } => {
                        overlay.retain(|(p, _), _| p != partition);
                        dropped.insert(*partition);
                        self.buf.extend_from_slice(frame);
                        logged += 1;
                        decisions.push(Vec::new());
                    }
                }
            }
        }
        if let Err(e) = self.log() {
            tracing::error!(error = %e, "the write-ahead log failed; the store refuses writes from now on");
            self.failed = Some(e.to_string());
            for data in group {
                data.fail(copy_error(&e));
            }
            return;
        }
        self.shared.records.fetch_add(logged, Relaxed);

        let mut completions = Vec::with_capacity(group.len());
        for (data, newer) in group.into_iter().zip(decisions) {
            match data {
                Data::Write { writes, done, .. } => {
                    for (w, &apply) in writes.into_iter().zip(&newer) {
                        if apply {
                            self.shared.insert(w.partition, w.key, w.entry);
                        }
                    }
                    completions.push(Completion::Write(done, newer));
                }
                Data::Drop {
                    partition, done, ..
                } => {
                    self.shared.remove_partition(partition);
                    completions.push(Completion::Unit(done));
                }
            }
        }
        for c in completions {
            match c {
                Completion::Write(done, newer) => done.complete(Ok(newer)),
                Completion::Unit(done) => done.complete(Ok(())),
            }
        }

        if self.segment.len >= self.limits.segment_bytes {
            if let Err(e) = self.roll() {
                tracing::error!(error = %e, "starting a new WAL segment; appending to the current one");
            }
        }
    }

    /// Writes the group's buffer and makes it durable.
    fn log(&mut self) -> Result<(), DhtError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.segment.append(&self.buf)?;
        self.shared
            .wal_bytes
            .fetch_add(self.buf.len() as u64, Relaxed);
        if self.limits.sync {
            self.segment.sync()?;
            self.shared.fsyncs.fetch_add(1, Relaxed);
        } else {
            let since = *self.dirty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.limits.sync_interval {
                self.sync_now();
            }
        }
        Ok(())
    }

    /// The periodic fsync of `sync = false`. A failure is logged and the store refuses
    /// writes from then on (what was acknowledged may not be on disk).
    fn sync_now(&mut self) {
        self.dirty_since = None;
        if self.failed.is_some() {
            return;
        }
        match self.segment.sync() {
            Ok(()) => {
                self.shared.fsyncs.fetch_add(1, Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "fsync of the write-ahead log failed; the store refuses writes from now on");
                self.failed = Some(e.to_string());
            }
        }
    }

    /// Seals the current segment and starts the next one.
    fn roll(&mut self) -> Result<u64, DhtError> {
        if let Some(reason) = &self.failed {
            return Err(DhtError::Closed(format!(
                "the store failed earlier: {reason}"
            )));
        }
        if !self.limits.sync {
            self.segment.sync()?;
        }
        self.segment = Segment::create(&self.dir, self.segment.seq + 1)?;
        Ok(self.segment.seq)
    }

    /// Makes everything written durable (even with `sync: false`).
    fn flush(&mut self) -> Result<(), DhtError> {
        if let Some(reason) = &self.failed {
            return Err(DhtError::Closed(format!(
                "the store failed earlier: {reason}"
            )));
        }
        self.segment.sync()
    }
}
