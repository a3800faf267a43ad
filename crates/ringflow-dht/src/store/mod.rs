//! The durable, partitioned key-value store of a worker.
//!
//! A [`Store`] holds every entry of every partition the worker has a replica of:
//! `(partition, key) → Entry { version, value }`, where a `None` value is a tombstone. A write
//! is kept only if it [supersedes](Entry::supersedes) the current entry (strictly higher
//! version), so replicas converge whatever order they see writes in.
//!
//! # Memory and durability
//!
//! Entries live in memory (`DashMap<PartitionId, BTreeMap<key, Entry>>`); reads never wait for
//! the disk. Writes go to one writer thread which does group commit: it takes every queued
//! request (up to [`StoreOptions::group_commit_max_batch`] records and
//! [`StoreOptions::group_commit_max_bytes`] bytes), decides which writes supersede the
//! current state, appends those (only) to the write-ahead log with one `write`, makes them
//! durable with one `fdatasync`, applies them in memory, and only then completes the
//! requests. So a read never sees an unacknowledged write, and a read after an
//! acknowledgement sees it (or something newer).
//!
//! # Files
//!
//! In [`StoreOptions::dir`]:
//! - `wal-{seq:016}.log`: WAL segments. A segment is a sequence of frames:
//!   `u32 LE length`, `u32 LE CRC-32 of the payload`, payload = MessagePack (rmp-serde,
//!   compact) of `enum { Put { partition, key, entry }, DropPartition { partition } }` with key
//!   and value as MessagePack `bin` and the entry as `[[ts, node], value | nil]`. A segment is
//!   sealed (fsynced) before the next one is created; the writer rolls to a new one past
//!   [`StoreOptions::segment_bytes`].
//! - `snapshot-{seq:016}.bin`: every entry (tombstones included) as frames
//!   `Header { format: 1, next_segment: seq }`, `Put { partition, key, entry }`…,
//!   `End { entries }`; it makes every segment before `seq` unnecessary. Written as
//!   `….bin.tmp`, fsynced, renamed, directory fsynced.
//!
//! # Recovery
//!
//! [`Store::open`] loads the newest valid snapshot whose following segments are all present
//! (or none, if there is no snapshot, starting at segment 1), then replays the segments after
//! it in order, applying each `Put` only if it supersedes the current entry. A damaged record
//! in the last segment that no intact record follows is the torn tail of a crash mid-write:
//! the segment is truncated there. A damaged record anywhere else, or followed by an intact
//! record, is [`DhtError::Corrupt`] naming the file and the offset.
//!
//! # Checkpoints
//!
//! [`Store::checkpoint`] asks the writer to start segment `n` (everything logged before is
//! applied in memory by then), writes the in-memory state as `snapshot-n`, then deletes older
//! snapshots and segments. Writes continue meanwhile, so the snapshot may also contain some
//! writes of segment `n` and later. Replaying those segments over it still gives the exact
//! state: per key, puts merge by maximum version (idempotent, order-free), and a
//! `DropPartition` erases whatever the snapshot had for the partition before the puts that
//! follow it are replayed.
//!
//! Not handled here: two processes opening the same directory (the store does not lock it;
//! a worker `flock`s its whole data directory). Tombstones stay until
//! [`Store::forget_tombstones`] forgets named ones (the DHT service's primary asks for it
//! for tombstones older than `dht.tombstone_grace_s` that every replica holds), on the
//! writer thread so it cannot race a write.

mod codec;
mod snapshot;
mod wal;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use dashmap::DashMap;
use ringflow_ring::PartitionId;

use crate::{DhtError, Entry};

use codec::{encode_frame, Record, RecordRef, RECORD_OVERHEAD};
use wal::{segment_name, snapshot_name, Segment};
use writer::{Data, Done, Limits, Request, Writer};

/// Options of a [`Store`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Directory of the WAL segments and snapshots (created if missing).
    pub dir: PathBuf,
    /// Largest key accepted, in bytes (default 64 KiB).
    pub max_key: usize,
    /// Largest value accepted, in bytes (default 64 MiB).
    pub max_value: usize,
    /// Most records made durable by one fsync (default 4096). A single larger batch is still
    /// written whole.
    pub group_commit_max_batch: usize,
    /// Most encoded bytes made durable by one fsync (default 8 MiB). A single larger batch is
    /// still written whole.
    pub group_commit_max_bytes: usize,
    /// A new WAL segment is started once the current one is this long (default 64 MiB).
    pub segment_bytes: u64,
    /// Whether writes are fsynced before being acknowledged (default true). With `false`
    /// a write is acknowledged once it is in the OS (it survives kill -9 of the process,
    /// not a crash of the machine) and the log is fsynced every `sync_interval`.
    pub sync: bool,
    /// With `sync = false`: the longest time written data waits for its fsync (default
    /// 100 ms), whether or not more writes come.
    pub sync_interval: std::time::Duration,
}

impl StoreOptions {
    /// Default options for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_key: 64 * 1024,
            max_value: 64 * 1024 * 1024,
            group_commit_max_batch: 4096,
            group_commit_max_bytes: 8 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            sync: true,
            sync_interval: std::time::Duration::from_millis(100),
        }
    }

    fn validate(&self) -> Result<(), DhtError> {
        let bad = |what: &str| Err(DhtError::Config(format!("store: {what}")));
        if self.group_commit_max_batch == 0 {
            return bad("group_commit_max_batch must be at least 1");
        }
        if self.group_commit_max_bytes == 0 {
            return bad("group_commit_max_bytes must be at least 1");
        }
        if self.segment_bytes == 0 {
            return bad("segment_bytes must be at least 1");
        }
        let record = self
            .max_key
            .checked_add(self.max_value)
            .and_then(|n| n.checked_add(RECORD_OVERHEAD));
        if record.is_none_or(|n| n > u32::MAX as usize) {
            return bad("max_key + max_value must stay under 4 GiB (the WAL's record limit)");
        }
        Ok(())
    }
}

/// One write: the entry for a key of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key's partition.
    pub partition: PartitionId,
    /// The key.
    pub key: Vec<u8>,
    /// The versioned value or tombstone.
    pub entry: Entry,
}

/// Counters of a [`Store`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries held, tombstones included.
    pub keys: u64,
    /// Bytes of keys and values held.
    pub bytes: u64,
    /// Bytes of the WAL segments on disk.
    pub wal_bytes: u64,
    /// Group commits made durable (fdatasync calls) since open.
    pub fsyncs: u64,
    /// WAL records written since open (writes that were not newer are not logged).
    pub records_written: u64,
}

/// The in-memory entries: partition → key → entry.
pub(crate) type Partitions = DashMap<PartitionId, BTreeMap<Vec<u8>, Entry>>;

/// State shared by the store's handle and its writer thread. Only the writer thread (or
/// `open`, before it starts) modifies `map`.
pub(crate) struct Shared {
    map: Partitions,
    keys: AtomicU64,
    bytes: AtomicU64,
    wal_bytes: AtomicU64,
    fsyncs: AtomicU64,
    records: AtomicU64,
    /// The highest version timestamp ever applied (replayed or written) since open.
    high_water: AtomicU64,
}

fn size(key: &[u8], entry: &Entry) -> u64 {
    (key.len() + entry.value.as_ref().map_or(0, Vec::len)) as u64
}

impl Shared {
    fn new() -> Self {
        Self {
            map: DashMap::new(),
            keys: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            wal_bytes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        }
    }

    /// Whether `w` supersedes the applied state.
    fn supersedes(&self, w: &Write) -> bool {
        match self.map.get(&w.partition) {
            Some(part) => w.entry.supersedes(part.get(&w.key)),
            None => true,
        }
    }

    /// Stores an entry (the caller has checked it supersedes).
    fn insert(&self, partition: PartitionId, key: Vec<u8>, entry: Entry) {
        let added = size(&key, &entry);
        let key_len = key.len() as u64;
        self.high_water.fetch_max(entry.version.ts, Relaxed);
        let old = self.map.entry(partition).or_default().insert(key, entry);
        match old {
            Some(old) => {
                self.bytes.fetch_sub(key_len + size(&[], &old), Relaxed);
            }
            None => {
                self.keys.fetch_add(1, Relaxed);
            }
        }
        self.bytes.fetch_add(added, Relaxed);
    }

    /// Drops the given tombstones of `partition`, each only if the key still holds that
    /// very tombstone (writer thread only).
    pub(crate) fn forget_tombstones(
        &self,
        partition: PartitionId,
        tombstones: &[(Vec<u8>, crate::Version)],
    ) -> u64 {
        let Some(mut part) = self.map.get_mut(&partition) else {
            return 0;
        };
        let mut removed = 0u64;
        let mut bytes = 0u64;
        for (key, version) in tombstones {
            let same = part
                .get(key)
                .is_some_and(|e| e.value.is_none() && e.version == *version);
            if same {
                part.remove(key);
                removed += 1;
                bytes += key.len() as u64;
            }
        }
        self.keys.fetch_sub(removed, Relaxed);
        self.bytes.fetch_sub(bytes, Relaxed);
        removed
    }

    fn remove_partition(&self, partition: PartitionId) {
        if let Some((_, part)) = self.map.remove(&partition) {
            let bytes: u64 = part.iter().map(|(k, e)| size(k, e)).sum();
            self.keys.fetch_sub(part.len() as u64, Relaxed);
            self.bytes.fetch_sub(bytes, Relaxed);
        }
    }

    /// Applies a replayed WAL record.
    fn replay(&self, record: Record) {
        match record {
            Record::Put {
                partition,
                key,
                entry,
            } => {
                let w = Write {
                    partition,
                    key,
                    entry,
                };
                if self.supersedes(&w) {
                    self.insert(w.partition, w.key, w.entry);
                }
            }
            Record::DropPartition { partition } => self.remove_partition(partition),
        }
    }
}

/// A worker's durable store of DHT entries. `Send + Sync`: share it with an `Arc`.
///
/// Dropping it closes it (see [`Store::close`]).
pub struct Store {
    shared: Arc<Shared>,
    opts: StoreOptions,
    tx: Sender<Request>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_id: ThreadId,
    checkpointing: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.opts.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn corrupt(path: &Path, reason: String) -> DhtError {
    DhtError::Corrupt {
        path: path.display().to_string(),
        reason,
    }
}

fn remove(path: &Path) -> Result<u64, DhtError> {
    let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    fs::remove_file(path).map_err(|e| DhtError::io(format!("deleting {}", path.display()), e))?;
    Ok(len)
}

impl Store {
    /// Opens (or creates) the store in `opts.dir`: loads the newest valid snapshot, replays
    /// the WAL segments after it, truncates a torn tail of the last segment, and starts the
    /// writer thread.
    ///
    /// Errors: [`DhtError::Config`] for invalid options, [`DhtError::Io`], and
    /// [`DhtError::Corrupt`] (naming the file and offset) for damage a crash cannot explain.
    pub fn open(opts: StoreOptions) -> Result<Store, DhtError> {
        opts.validate()?;
        let dir = opts.dir.clone();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)
                .map_err(|e| DhtError::io(format!("creating {}", dir.display()), e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                wal::sync_dir(parent)?;
            }
        }
        let listing = wal::list(&dir)?;
        for tmp in &listing.temporary {
            remove(tmp)?;
        }
        let shared = Shared::new();

        // The newest snapshot that loads and whose following segments are all present.
        let mut base = None;
        let mut first_error = None;
        for &seq in listing.snapshots.iter().rev() {
            let path = dir.join(snapshot_name(seq));
            if listing.segments.binary_search(&seq).is_err() {
                let reason = format!("WAL segment {} is missing", segment_name(seq));
                first_error.get_or_insert_with(|| corrupt(&path, reason));
                continue;
            }
            let mut loaded: HashMap<PartitionId, Vec<(Vec<u8>, Entry)>> = HashMap::new();
            match snapshot::load(&path, seq, |p, k, e| {
                loaded.entry(p).or_default().push((k, e))
            }) {
                Ok(()) => {
                    for (p, entries) in loaded {
                        for (k, e) in &entries {
                            shared.keys.fetch_add(1, Relaxed);
                            shared.bytes.fetch_add(size(k, e), Relaxed);
                        }
                        shared.map.insert(p, entries.into_iter().collect());
                    }
                    base = Some(seq);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unusable snapshot");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let (None, Some(e)) = (base, first_error) {
            return Err(e);
        }
        let start = match base {
            Some(seq) => seq,
            None => match listing.segments.first() {
                None | Some(1) => 1,
                Some(&first) => {
                    let reason = format!("the WAL starts at segment {first} without a snapshot");
                    return Err(corrupt(&dir, reason));
                }
            },
        };
        let segments: Vec<u64> = listing
            .segments
            .iter()
            .copied()
            .filter(|&s| s >= start)
            .collect();
        for (expected, &seq) in (start..).zip(&segments) {
            if seq != expected {
                return Err(corrupt(
                    &dir.join(segment_name(expected)),
                    "WAL segment missing".into(),
                ));
            }
        }
        let mut last_len = 0;
        for (i, &seq) in segments.iter().enumerate() {
            let path = dir.join(segment_name(seq));
            last_len = wal::replay_segment(&path, i + 1 == segments.len(), |r| shared.replay(r))?;
            shared.wal_bytes.fetch_add(last_len, Relaxed);
        }

        // Leftovers of an interrupted checkpoint.
        let mut removed = false;
        for &seq in listing.snapshots.iter().filter(|&&s| s < start) {
            remove(&dir.join(snapshot_name(seq)))?;
            removed = true;
        }
        for &seq in listing.segments.iter().filter(|&&s| s < start) {
            remove(&dir.join(segment_name(seq)))?;
            removed = true;
        }
        if removed {
            wal::sync_dir(&dir)?;
        }

        let segment = match segments.last() {
            Some(&seq) => Segment::open(&dir, seq, last_len)?,
            None => Segment::create(&dir, start)?,
        };
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rx,
            segment,
            dir,
            limits: Limits {
                max_batch: opts.group_commit_max_batch,
                max_bytes: opts.group_commit_max_bytes,
                segment_bytes: opts.segment_bytes,
                sync: opts.sync,
                sync_interval: opts.sync_interval,
            },
            dirty_since: None,
            failed: None,
            carry: None,
            buf: Vec::new(),
        };
        let handle = thread::Builder::new()
            .name("ringflow-dht-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| DhtError::io("starting the store's writer thread", e))?;
        tracing::debug!(
            dir = %opts.dir.display(),
            keys = shared.keys.load(Relaxed),
            snapshot = ?base,
            segments = segments.len(),
            "store opened"
        );
        Ok(Store {
            shared,
            tx,
            closed: AtomicBool::new(false),
            writer_id: handle.thread().id(),
            writer: Mutex::new(Some(handle)),
            checkpointing: Mutex::new(()),
            opts,
        })
    }

    /// The entry of `key` in partition `p` (tombstones included), as of the last
    /// acknowledged write.
    pub fn get(&self, p: PartitionId, key: &[u8]) -> Option<Entry> {
        self.shared.map.get(&p)?.get(key).cloned()
    }

    /// Durably applies a batch; returns, per write, whether it was newer and applied. Blocks
    /// the calling thread until fsynced (group commit: concurrent callers share one fsync).
    ///
    /// The batch is validated whole first ([`DhtError::TooLarge`]: nothing is written). It is
    /// not atomic across a crash: after a failure or crash a prefix of it may survive.
    /// Must not be called from a [`Store::write_async`] callback ([`DhtError::Refused`]).
    pub fn write_blocking(&self, writes: Vec<Write>) -> Result<Vec<bool>, DhtError> {
        self.not_on_writer()?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.write_async(
            writes,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(DhtError::Closed("the store's writer stopped".into())))
    }

    /// Same as [`Store::write_blocking`], non-blocking: `done` is called on the writer thread
    /// once durable and applied (so async callers can complete a oneshot), or at once on the
    /// calling thread if the batch is invalid or the store closed. It is always called exactly
    /// once; it must not block on the store (its writer is waiting for it).
    pub fn write_async(
        &self,
        writes: Vec<Write>,
        done: Box<dyn FnOnce(Result<Vec<bool>, DhtError>) + Send>,
    ) {
        let done = Done::new(done);
        if let Err(e) = self.check_open() {
            return done.complete(Err(e));
        }
        if writes.is_empty() {
            return done.complete(Ok(Vec::new()));
        }
        match self.encode(&writes) {
            Ok((frames, ends)) => self.send(Request::Data(Data::Write {
                writes,
                frames,
                ends,
                done,
            })),
            Err(e) => done.complete(Err(e)),
        }
    }

    /// Checks the limits and encodes the frames of a batch.
    fn encode(&self, writes: &[Write]) -> Result<(Vec<u8>, Vec<usize>), DhtError> {
        let mut bytes = 0;
        for w in writes {
            let value = w.entry.value.as_ref().map_or(0, Vec::len);
            if w.key.len() > self.opts.max_key {
                return Err(DhtError::TooLarge {
                    what: "key",
                    len: w.key.len(),
                    max: self.opts.max_key,
                });
            }
            if value > self.opts.max_value {
                return Err(DhtError::TooLarge {
                    what: "value",
                    len: value,
                    max: self.opts.max_value,
                });
            }
            bytes += w.key.len() + value + 32;
        }
        let mut frames = Vec::with_capacity(bytes);
        let mut ends = Vec::with_capacity(writes.len());
        for w in writes {
            encode_frame(
                &RecordRef::Put {
                    partition: w.partition,
                    key: &w.key,
                    entry: &w.entry,
                },
                &mut frames,
            )?;
            ends.push(frames.len());
        }
        Ok((frames, ends))
    }

    /// Number of entries (tombstones included) held for partition `p`.
    pub fn partition_len(&self, p: PartitionId) -> usize {
        self.shared.map.get(&p).map_or(0, |part| part.len())
    }

    /// The partitions holding at least one entry, ascending.
    pub fn partitions(&self) -> Vec<PartitionId> {
        let mut out: Vec<PartitionId> = self.shared.map.iter().map(|e| *e.key()).collect();
        out.sort_unstable();
        out
    }

    /// A consistent copy of one partition's entries (tombstones included), sorted by key, for
    /// handoff to a new replica.
    pub fn snapshot_partition(&self, p: PartitionId) -> Vec<(Vec<u8>, Entry)> {
        self.shared.map.get(&p).map_or_else(Vec::new, |part| {
            part.iter().map(|(k, e)| (k.clone(), e.clone())).collect()
        })
    }

    /// Durably forgets a partition this worker no longer holds.
    pub fn drop_partition(&self, p: PartitionId) -> Result<(), DhtError> {
        self.not_on_writer()?;
        self.check_open()?;
        let mut frame = Vec::new();
        encode_frame(&RecordRef::DropPartition { partition: p }, &mut frame)?;
        self.call(|done| {
            Request::Data(Data::Drop {
                partition: p,
                frame,
                done,
            })
        })
    }

    /// Writes a full snapshot and deletes the WAL segments and snapshots it makes unnecessary
    /// (compaction). Safe to call while writes continue; concurrent calls run one at a time.
    pub fn checkpoint(&self) -> Result<(), DhtError> {
        self.not_on_writer()?;
        self.check_open()?;
        let _one_at_a_time = self
            .checkpointing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = self.call(Request::Roll)?;
        let dir = &self.opts.dir;
        let entries = snapshot::write(dir, next, &self.shared.map)?;
        let listing = wal::list(dir)?;
        for &seq in listing.snapshots.iter().filter(|&&s| s < next) {
            remove(&dir.join(snapshot_name(seq)))?;
        }
        for &seq in listing.segments.iter().filter(|&&s| s < next) {
            let len = remove(&dir.join(segment_name(seq)))?;
            let _ = self
                .shared
                .wal_bytes
                .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(len)));
        }
        wal::sync_dir(dir)?;
        tracing::debug!(dir = %dir.display(), entries, next_segment = next, "store checkpoint written");
        Ok(())
    }

    /// The tombstones of partition `p` whose version timestamp ([`crate::Version::ts`]) is
    /// below `before_ts`, at most `limit`, with their versions.
    pub fn tombstones_before(
        &self,
        p: PartitionId,
        before_ts: u64,
        limit: usize,
    ) -> Vec<(Vec<u8>, crate::Version)> {
        self.shared.map.get(&p).map_or_else(Vec::new, |part| {
            part.iter()
                .filter(|(_, e)| e.value.is_none() && e.version.ts < before_ts)
                .take(limit)
                .map(|(k, e)| (k.clone(), e.version))
                .collect()
        })
    }

    /// Forgets the given tombstones of partition `p`, each only if the key still holds
    /// that very tombstone (not a newer write); returns how many. The caller has checked
    /// that every replica holds them: after that a forgotten key reads as missing, as it
    /// did deleted. They leave the disk with the next [`Store::checkpoint`] (replaying
    /// the WAL before that brings them back, to be forgotten again).
    pub fn forget_tombstones(
        &self,
        p: PartitionId,
        tombstones: Vec<(Vec<u8>, crate::Version)>,
    ) -> Result<u64, DhtError> {
        self.not_on_writer()?;
        self.check_open()?;
        self.call(|done| Request::Forget(p, tombstones, done))
    }

    /// The highest version timestamp held or applied since open (entries loaded from
    /// disk included): a restarted node's clock starts above it.
    pub fn high_water(&self) -> u64 {
        self.shared.high_water.load(Relaxed)
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let s = &self.shared;
        StoreStats {
            keys: s.keys.load(Relaxed),
            bytes: s.bytes.load(Relaxed),
            wal_bytes: s.wal_bytes.load(Relaxed),
            fsyncs: s.fsyncs.load(Relaxed),
            records_written: s.records.load(Relaxed),
        }
    }

    /// Flushes and stops the writer thread; later writes fail with [`DhtError::Closed`].
    /// Reads keep working. Closing again does nothing.
    pub fn close(&self) -> Result<(), DhtError> {
        self.not_on_writer()?;
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Close(Done::new(Box::new(move |r| {
            let _ = tx.send(r);
        }))));
        self.closed.store(true, Relaxed);
        let flushed = rx
            .recv()
            .unwrap_or_else(|_| Err(DhtError::Closed("the store's writer stopped".into())));
        let joined = handle
            .join()
            .map_err(|_| DhtError::Closed("the store's writer thread panicked".into()));
        flushed.and(joined)
    }

    fn check_open(&self) -> Result<(), DhtError> {
        if self.closed.load(Relaxed) {
            return Err(DhtError::Closed("the store is closed".into()));
        }
        Ok(())
    }

    fn not_on_writer(&self) -> Result<(), DhtError> {
        if thread::current().id() == self.writer_id {
            return Err(DhtError::Refused(
                "a blocking store call from a write_async callback would deadlock".into(),
            ));
        }
        Ok(())
    }

    fn send(&self, request: Request) {
        // If the writer is gone, the request comes back and its guard answers `Closed`.
        if let Err(mpsc::SendError(request)) = self.tx.send(request) {
            drop(request);
        }
    }

    /// Sends a request and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Done<T>) -> Request,
    ) -> Result<T, DhtError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(make(Done::new(Box::new(move |r| {
            let _ = tx.send(r);
        }))));
        rx.recv()
            .unwrap_or_else(|_| Err(DhtError::Closed("the store's writer stopped".into())))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if thread::current().id() == self.writer_id {
            // Dropped by a callback on the writer thread: dropping `tx` stops it.
            return;
        }
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing the store");
        }
    }
}
