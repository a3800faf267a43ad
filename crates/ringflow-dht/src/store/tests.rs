use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;

use proptest::prelude::*;

use super::codec::{encode_frame, RecordRef};
use super::*;
use crate::Version;

fn entry(ts: u64, value: Option<&[u8]>) -> Entry {
    Entry {
        version: Version { ts, node: 1 },
        value: value.map(<[u8]>::to_vec),
    }
}

fn put(p: u32, key: &[u8], ts: u64, value: Option<&[u8]>) -> Write {
    Write {
        partition: PartitionId(p),
        key: key.to_vec(),
        entry: entry(ts, value),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(StoreOptions::new(dir)).unwrap()
}

type Contents = BTreeMap<(PartitionId, Vec<u8>), Entry>;

fn contents(s: &Store) -> Contents {
    let mut out = BTreeMap::new();
    for p in s.partitions() {
        for (k, e) in s.snapshot_partition(p) {
            out.insert((p, k), e);
        }
    }
    out
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

fn last_segment(dir: &Path) -> PathBuf {
    files(dir, "wal-").pop().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    for f in fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

fn expect_corrupt(dir: &Path) -> (String, String) {
    match Store::open(StoreOptions::new(dir)) {
        Err(DhtError::Corrupt { path, reason }) => (path, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
}

#[test]
fn put_get_overwrite_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.get(PartitionId(1), b"a"), None);
    assert_eq!(
        s.write_blocking(vec![
            put(1, b"a", 1, Some(b"one")),
            put(2, b"b", 1, Some(b"x"))
        ])
        .unwrap(),
        vec![true, true]
    );
    assert_eq!(s.get(PartitionId(1), b"a"), Some(entry(1, Some(b"one"))));
    assert_eq!(s.get(PartitionId(2), b"a"), None);
    assert_eq!(
        s.write_blocking(vec![put(1, b"a", 2, Some(b"two"))])
            .unwrap(),
        vec![true]
    );
    assert_eq!(s.get(PartitionId(1), b"a"), Some(entry(2, Some(b"two"))));
    assert_eq!(
        s.write_blocking(vec![put(1, b"a", 3, None)]).unwrap(),
        vec![true]
    );
    assert_eq!(s.get(PartitionId(1), b"a"), Some(entry(3, None)));
    assert_eq!(s.partitions(), vec![PartitionId(1), PartitionId(2)]);
    assert_eq!(s.partition_len(PartitionId(1)), 1);
    assert_eq!(s.partition_len(PartitionId(9)), 0);
    let st = s.stats();
    assert_eq!((st.keys, st.bytes, st.records_written), (2, 1 + 2, 4));
    assert_eq!(s.write_blocking(vec![]).unwrap(), Vec::<bool>::new());
    s.close().unwrap();
}

#[test]
fn older_versions_never_overwrite_newer_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_blocking(vec![put(1, b"k", 5, Some(b"new"))])
        .unwrap();
    assert_eq!(
        s.write_blocking(vec![
            put(1, b"k", 3, Some(b"old")),
            put(1, b"k", 5, Some(b"tie"))
        ])
        .unwrap(),
        vec![false, false]
    );
    // Within one batch, the later, older write loses to the earlier, newer one.
    assert_eq!(
        s.write_blocking(vec![
            put(1, b"j", 9, Some(b"9")),
            put(1, b"j", 8, Some(b"8"))
        ])
        .unwrap(),
        vec![true, false]
    );
    assert_eq!(s.stats().records_written, 2, "stale writes are not logged");
    s.close().unwrap();
    drop(s);

    // A stale record after a newer one in the log (as from another writer) loses on replay.
    let mut frame = Vec::new();
    let stale = entry(4, Some(b"stale"));
    encode_frame(
        &RecordRef::Put {
            partition: PartitionId(1),
            key: b"k",
            entry: &stale,
        },
        &mut frame,
    )
    .unwrap();
    OpenOptions::new()
        .append(true)
        .open(last_segment(dir.path()))
        .unwrap()
        .write_all(&frame)
        .unwrap();
    let s = open(dir.path());
    assert_eq!(s.get(PartitionId(1), b"k"), Some(entry(5, Some(b"new"))));
    assert_eq!(s.get(PartitionId(1), b"j"), Some(entry(9, Some(b"9"))));
}

#[test]
fn reopen_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 0..100u32 {
        let key = format!("key{i}");
        let value = (i % 7 != 0).then(|| vec![i as u8; i as usize]);
        s.write_blocking(vec![put(
            i % 5,
            key.as_bytes(),
            u64::from(i) + 1,
            value.as_deref(),
        )])
        .unwrap();
    }
    let before = contents(&s);
    let stats = s.stats();
    s.close().unwrap();
    assert!(matches!(
        s.write_blocking(vec![put(1, b"late", 1, None)]),
        Err(DhtError::Closed(_))
    ));
    drop(s);
    let s = open(dir.path());
    assert_eq!(contents(&s), before);
    let st = s.stats();
    assert_eq!(
        (st.keys, st.bytes, st.wal_bytes),
        (stats.keys, stats.bytes, stats.wal_bytes)
    );
}

#[test]
fn a_torn_tail_is_truncated_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let value = vec![0xabu8; 100];
    let s = open(dir.path());
    for i in 0..4u8 {
        s.write_blocking(vec![put(1, &[i], 1, Some(&value))])
            .unwrap();
    }
    let intact = s.stats().wal_bytes;
    s.write_blocking(vec![put(1, b"last", 1, Some(&value))])
        .unwrap();
    let full = s.stats().wal_bytes;
    s.close().unwrap();
    drop(s);
    let name = last_segment(dir.path()).file_name().unwrap().to_owned();
    for cut in intact..full {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let seg = copy.path().join(&name);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let s = open(copy.path());
        for i in 0..4u8 {
            assert!(s.get(PartitionId(1), &[i]).is_some(), "cut {cut}");
        }
        assert_eq!(s.get(PartitionId(1), b"last"), None, "cut {cut}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), intact, "cut {cut}");
        // The log stays usable after the truncation.
        s.write_blocking(vec![put(1, b"after", 1, None)]).unwrap();
        s.close().unwrap();
        drop(s);
        assert!(open(copy.path()).get(PartitionId(1), b"after").is_some());
    }
}

#[test]
fn a_zero_filled_tail_is_torn_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_blocking(vec![put(1, b"a", 1, Some(b"v"))]).unwrap();
    drop(s);
    OpenOptions::new()
        .append(true)
        .open(last_segment(dir.path()))
        .unwrap()
        .write_all(&[0; 4096])
        .unwrap();
    assert!(open(dir.path()).get(PartitionId(1), b"a").is_some());
}

/// Writes five one-record batches; returns where each record ends.
fn five_records(dir: &Path) -> Vec<u64> {
    let s = open(dir);
    let mut ends = vec![0];
    for i in 0..5u8 {
        s.write_blocking(vec![put(1, &[i], 1, Some(&[i; 50]))])
            .unwrap();
        ends.push(s.stats().wal_bytes);
    }
    ends
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_bad_record_followed_by_valid_ones_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let ends = five_records(dir.path());
    let seg = last_segment(dir.path());
    flip(&seg, (ends[1] + ends[2]) / 2);
    let (path, reason) = expect_corrupt(dir.path());
    assert!(path.ends_with("wal-0000000000000001.log"), "{path}");
    assert!(reason.contains(&format!("offset {}", ends[1])), "{reason}");

    // A damaged length that makes a record run past the end of the file, too.
    let dir = tempfile::tempdir().unwrap();
    let ends = five_records(dir.path());
    flip(&last_segment(dir.path()), ends[2] + 3);
    let (_, reason) = expect_corrupt(dir.path());
    assert!(reason.contains(&format!("offset {}", ends[2])), "{reason}");
}

#[test]
fn damage_in_a_sealed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(StoreOptions {
        segment_bytes: 1,
        ..StoreOptions::new(dir.path())
    })
    .unwrap();
    for i in 0..3u8 {
        s.write_blocking(vec![put(1, &[i], 1, Some(b"v"))]).unwrap();
    }
    drop(s);
    let segments = files(dir.path(), "wal-");
    assert_eq!(segments.len(), 4);
    // The last byte of the last record of segment 2: a torn tail anywhere but in the
    // last segment cannot happen.
    let len = fs::metadata(&segments[1]).unwrap().len();
    flip(&segments[1], len - 1);
    let (path, reason) = expect_corrupt(dir.path());
    assert!(path.ends_with("wal-0000000000000002.log"), "{path}");
    assert!(reason.contains("sealed"), "{reason}");

    // A missing segment is corruption too.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(StoreOptions {
        segment_bytes: 1,
        ..StoreOptions::new(dir.path())
    })
    .unwrap();
    for i in 0..3u8 {
        s.write_blocking(vec![put(1, &[i], 1, Some(b"v"))]).unwrap();
    }
    drop(s);
    fs::remove_file(&files(dir.path(), "wal-")[1]).unwrap();
    let (path, _) = expect_corrupt(dir.path());
    assert!(path.ends_with("wal-0000000000000002.log"), "{path}");
}

#[test]
fn concurrent_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..250u32 {
                    let key = format!("{t}-{i}");
                    let applied = s
                        .write_blocking(vec![put(t, key.as_bytes(), 1, Some(&[1; 100]))])
                        .unwrap();
                    assert_eq!(applied, vec![true]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = s.stats();
    assert_eq!(st.records_written, 2000);
    assert!(st.fsyncs < st.records_written, "{st:?}");
    s.close().unwrap();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.stats().keys, 2000);
    for t in 0..8u32 {
        assert_eq!(s.partition_len(PartitionId(t)), 250);
    }
}

#[test]
fn checkpoint_then_more_writes_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 0..100u32 {
        s.write_blocking(vec![put(i % 3, &i.to_be_bytes(), 1, Some(b"first"))])
            .unwrap();
    }
    s.checkpoint().unwrap();
    assert_eq!(files(dir.path(), "snapshot-").len(), 1);
    assert_eq!(
        files(dir.path(), "wal-"),
        vec![dir.path().join("wal-0000000000000002.log")]
    );
    assert_eq!(s.stats().wal_bytes, 0);
    for i in 0..50u32 {
        let value = (i % 2 == 0).then_some(&b"second"[..]);
        s.write_blocking(vec![put(i % 3, &i.to_be_bytes(), 2, value)])
            .unwrap();
    }
    s.write_blocking(vec![put(7, b"new", 1, Some(b"p7"))])
        .unwrap();
    let before = contents(&s);
    let keys = s.stats().keys;
    s.close().unwrap();
    drop(s);

    let s = open(dir.path());
    assert_eq!(contents(&s), before);
    assert_eq!(s.stats().keys, keys);
    s.checkpoint().unwrap();
    s.checkpoint().unwrap();
    assert_eq!(files(dir.path(), "snapshot-").len(), 1);
    assert_eq!(files(dir.path(), "wal-").len(), 1);
    drop(s);
    assert_eq!(contents(&open(dir.path())), before);
}

#[test]
fn checkpoints_while_writing_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        Store::open(StoreOptions {
            segment_bytes: 4096,
            ..StoreOptions::new(dir.path())
        })
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let s = s.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut ts = 0u64;
                while !stop.load(Relaxed) {
                    ts += 1;
                    // Overwrites and tombstones across a few partitions, and a drop.
                    let batch: Vec<Write> = (0..10u64)
                        .map(|k| {
                            let value = (k % 4 != 0).then(|| ts.to_be_bytes().to_vec());
                            put(t, &k.to_be_bytes(), ts, value.as_deref())
                        })
                        .collect();
                    s.write_blocking(batch).unwrap();
                    if t == 0 && ts % 50 == 0 {
                        s.drop_partition(PartitionId(0)).unwrap();
                    }
                }
            })
        })
        .collect();
    for _ in 0..5 {
        thread::sleep(std::time::Duration::from_millis(20));
        s.checkpoint().unwrap();
    }
    stop.store(true, Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let before = contents(&s);
    s.close().unwrap();
    drop(s);
    assert_eq!(contents(&open(dir.path())), before);
}

#[test]
fn dropped_partitions_stay_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_blocking(vec![
        put(1, b"a", 1, Some(b"1")),
        put(2, b"b", 1, Some(b"2")),
    ])
    .unwrap();
    s.drop_partition(PartitionId(1)).unwrap();
    assert_eq!(s.partitions(), vec![PartitionId(2)]);
    assert_eq!(s.stats().keys, 1);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.get(PartitionId(1), b"a"), None);
    assert_eq!(s.partitions(), vec![PartitionId(2)]);
    // Taken back later: an old version is accepted again, and survives a checkpoint.
    s.write_blocking(vec![put(1, b"c", 1, Some(b"3"))]).unwrap();
    s.checkpoint().unwrap();
    s.drop_partition(PartitionId(2)).unwrap();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.partitions(), vec![PartitionId(1)]);
    assert_eq!(s.snapshot_partition(PartitionId(1)).len(), 1);
}

#[test]
fn oversized_batches_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(StoreOptions {
        max_key: 4,
        max_value: 8,
        ..StoreOptions::new(dir.path())
    })
    .unwrap();
    let r = s.write_blocking(vec![
        put(1, b"ok", 1, Some(b"v")),
        put(1, b"toolong", 1, None),
    ]);
    assert!(
        matches!(
            r,
            Err(DhtError::TooLarge {
                what: "key",
                len: 7,
                max: 4
            })
        ),
        "{r:?}"
    );
    let r = s.write_blocking(vec![
        put(1, b"ok", 1, Some(b"v")),
        put(1, b"k", 1, Some(&[0; 9])),
    ]);
    assert!(
        matches!(
            r,
            Err(DhtError::TooLarge {
                what: "value",
                len: 9,
                max: 8
            })
        ),
        "{r:?}"
    );
    assert_eq!(s.get(PartitionId(1), b"ok"), None);
    assert_eq!(s.stats().wal_bytes, 0);
    assert!(s
        .write_blocking(vec![put(1, b"four", 1, Some(&[0; 8]))])
        .is_ok());
}

#[test]
fn async_writes_complete_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    s.write_async(
        vec![put(1, b"a", 1, Some(b"v"))],
        Box::new(move |r| {
            let name = thread::current().name().map(str::to_owned);
            // Visible already, and blocking calls are refused instead of deadlocking.
            let seen = s2.get(PartitionId(1), b"a");
            let nested = s2.write_blocking(vec![put(1, b"b", 1, None)]);
            tx.send((r, name, seen, nested)).unwrap();
        }),
    );
    let (r, name, seen, nested) = rx.recv().unwrap();
    assert_eq!(r.unwrap(), vec![true]);
    assert_eq!(name.as_deref(), Some("ringflow-dht-wal"));
    assert_eq!(seen, Some(entry(1, Some(b"v"))));
    assert!(matches!(nested, Err(DhtError::Refused(_))));

    s.close().unwrap();
    s.close().unwrap();
    let (tx, rx) = mpsc::channel();
    s.write_async(
        vec![put(1, b"c", 1, None)],
        Box::new(move |r| tx.send(r).unwrap()),
    );
    assert!(matches!(rx.recv().unwrap(), Err(DhtError::Closed(_))));
    assert!(matches!(
        s.drop_partition(PartitionId(1)),
        Err(DhtError::Closed(_))
    ));
    assert!(matches!(s.checkpoint(), Err(DhtError::Closed(_))));
    assert!(
        s.get(PartitionId(1), b"a").is_some(),
        "reads work after close"
    );
}

#[test]
fn segments_roll_and_checkpoints_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(StoreOptions {
        segment_bytes: 500,
        ..StoreOptions::new(dir.path())
    })
    .unwrap();
    for i in 0..50u32 {
        s.write_blocking(vec![put(1, &i.to_be_bytes(), 1, Some(&[7; 40]))])
            .unwrap();
    }
    assert!(files(dir.path(), "wal-").len() > 3);
    let before = contents(&s);
    drop(s);
    let s = open(dir.path());
    assert_eq!(contents(&s), before);
    s.checkpoint().unwrap();
    assert_eq!(files(dir.path(), "wal-").len(), 1);
    drop(s);
    assert_eq!(contents(&open(dir.path())), before);
}

#[test]
fn a_damaged_snapshot_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_blocking(vec![put(1, b"a", 1, Some(&[5; 64]))])
        .unwrap();
    s.checkpoint().unwrap();
    drop(s);
    let snap = files(dir.path(), "snapshot-").pop().unwrap();
    let len = fs::metadata(&snap).unwrap().len();
    flip(&snap, len / 2);
    let (path, _) = expect_corrupt(dir.path());
    assert!(path.ends_with("snapshot-0000000000000002.bin"), "{path}");

    // A leftover temporary snapshot of an interrupted checkpoint is ignored and removed.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let tmp = dir.path().join("snapshot-0000000000000002.bin.tmp");
    fs::write(&tmp, b"partial").unwrap();
    drop(open(dir.path()));
    assert!(!tmp.exists());
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        StoreOptions {
            group_commit_max_batch: 0,
            ..StoreOptions::new(dir.path())
        },
        StoreOptions {
            max_value: usize::MAX,
            ..StoreOptions::new(dir.path())
        },
    ] {
        assert!(matches!(Store::open(opts), Err(DhtError::Config(_))));
    }
}

/// A write of the property tests: unique versions (the node is the write's index), so the
/// max-version model is well defined.
fn op_writes(ops: &[(u8, u8, u16, bool)]) -> Vec<Write> {
    ops.iter()
        .enumerate()
        .map(|(i, &(p, k, ts, tomb))| Write {
            partition: PartitionId(u32::from(p)),
            key: vec![k],
            entry: Entry {
                version: Version {
                    ts: u64::from(ts),
                    node: i as u32,
                },
                value: (!tomb).then(|| format!("{ts}/{i}").into_bytes()),
            },
        })
        .collect()
}

fn apply_in_batches(s: &Store, writes: Vec<Write>, batch: usize) {
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() {
        let chunk: Vec<Write> = writes.by_ref().take(batch).collect();
        s.write_blocking(chunk).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_to_the_max_version_per_key(
        (ops, order) in prop::collection::vec((0u8..3, 0u8..6, 0u16..20, any::<bool>()), 1..60)
            .prop_flat_map(|ops| {
                let n = ops.len();
                (Just(ops), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
            }),
        batch_a in 1usize..8,
        batch_b in 1usize..8,
    ) {
        let writes = op_writes(&ops);
        let mut model = Contents::new();
        for w in &writes {
            let k = (w.partition, w.key.clone());
            if w.entry.supersedes(model.get(&k)) {
                model.insert(k, w.entry.clone());
            }
        }
        let opts = |dir: &Path| StoreOptions { sync: false, ..StoreOptions::new(dir) };
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Store::open(opts(da.path())).unwrap();
        let b = Store::open(opts(db.path())).unwrap();
        apply_in_batches(&a, writes.clone(), batch_a);
        apply_in_batches(&b, order.iter().map(|&i| writes[i].clone()).collect(), batch_b);
        prop_assert_eq!(&contents(&a), &model);
        prop_assert_eq!(&contents(&b), &model);
        drop(a);
        drop(b);
        prop_assert_eq!(&contents(&Store::open(opts(da.path())).unwrap()), &model);
        prop_assert_eq!(&contents(&Store::open(opts(db.path())).unwrap()), &model);
    }
}

#[test]
fn without_sync_writes_are_fsynced_within_the_interval_even_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(StoreOptions {
        sync: false,
        sync_interval: std::time::Duration::from_millis(20),
        ..StoreOptions::new(dir.path())
    })
    .unwrap();
    // One write, then none: only the interval can bring its fsync.
    s.write_blocking(vec![put(1, b"first", 1, Some(b"v"))])
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.stats().fsyncs == 0 {
        assert!(std::time::Instant::now() < deadline, "no fsync while idle");
        thread::sleep(std::time::Duration::from_millis(5));
    }
    // Writes are acknowledged without an fsync each.
    for i in 0..200u32 {
        s.write_blocking(vec![put(1, &i.to_be_bytes(), 1, Some(b"v"))])
            .unwrap();
    }
    assert!(s.stats().fsyncs < 100, "{:?}", s.stats());
    drop(s);
    let s = Store::open(StoreOptions::new(dir.path())).unwrap();
    assert_eq!(s.partition_len(PartitionId(1)), 201);
}

#[test]
fn tombstones_are_forgotten_only_as_named_and_leave_the_disk_with_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.write_blocking(vec![
        put(1, b"live", 10, Some(b"v")),
        put(1, b"old-delete", 10, None),
        put(2, b"new-delete", 1000, None),
    ])
    .unwrap();
    assert_eq!(s.stats().keys, 3);
    // Only tombstones older than the cutoff are listed; values stay whatever their age.
    let old = s.tombstones_before(PartitionId(1), 500, 100);
    assert_eq!(old.len(), 1);
    assert!(s.tombstones_before(PartitionId(2), 500, 100).is_empty());
    // A tombstone overwritten since it was listed is not forgotten.
    let stale = vec![(b"old-delete".to_vec(), crate::Version { ts: 9, node: 1 })];
    assert_eq!(s.forget_tombstones(PartitionId(1), stale).unwrap(), 0);
    assert_eq!(s.forget_tombstones(PartitionId(1), old.clone()).unwrap(), 1);
    assert_eq!(s.stats().keys, 2);
    let c = contents(&s);
    assert!(c.contains_key(&(PartitionId(1), b"live".to_vec())));
    assert!(!c.contains_key(&(PartitionId(1), b"old-delete".to_vec())));
    assert!(c.contains_key(&(PartitionId(2), b"new-delete".to_vec())));
    // A write older than the purged tombstone could now apply: that is why purging waits
    // a grace period (every replica has the tombstone long before).
    assert_eq!(s.forget_tombstones(PartitionId(1), old).unwrap(), 0);
    s.checkpoint().unwrap();
    drop(s);
    let s = open(dir.path());
    let c = contents(&s);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(!c.contains_key(&(PartitionId(1), b"old-delete".to_vec())));
}
