//! A job's checkpoints on one worker (sans-IO): collecting the local instances'
//! snapshots of each checkpoint, and cutting them into chunks for the checkpoint store.
//!
//! A checkpoint is ready here once every local instance took its snapshot of it or has
//! finished. A finished operator adds nothing (its output is all sent before its end);
//! a finished source adds its final position, so a restore does not read again what it
//! read to the end. Snapshots
//! of a checkpoint may arrive before this worker's own sources were told to start it:
//! barriers from other workers' sources travel faster than control messages.

use std::collections::{BTreeMap, BTreeSet};

use ringflow_proto::CheckpointPart;
use ringflow_stream::checkpoint::{CheckpointId, InstanceSnapshot};

/// Largest chunk of a part stored under one key (below the DHT's value cap).
pub(crate) const CHUNK_BYTES: usize = 512 * 1024;

/// The snapshots of one checkpoint taken here so far.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Per local vertex.
    pub snapshots: BTreeMap<usize, InstanceSnapshot>,
    /// The longest alignment among them (ms).
    pub alignment_ms: u64,
}

/// Checkpoints in progress on this worker.
#[derive(Debug)]
pub(crate) struct LocalCheckpoints {
    local: Vec<usize>,
    finished: BTreeSet<usize>,
    /// Final positions of finished sources, by vertex.
    finals: BTreeMap<usize, InstanceSnapshot>,
    pending: BTreeMap<CheckpointId, Collected>,
}

impl LocalCheckpoints {
    /// For a job whose instances here are those of `local` vertices.
    pub fn new(local: Vec<usize>) -> Self {
        LocalCheckpoints {
            local,
            finished: BTreeSet::new(),
            finals: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// The local instance of `vertex` finished (a source with its final position);
    /// checkpoints it completes, oldest first.
    pub fn finished(
        &mut self,
        vertex: usize,
        last: Option<InstanceSnapshot>,
    ) -> Vec<(CheckpointId, Collected)> {
        self.finished.insert(vertex);
        if let Some(s) = last {
            self.finals.insert(vertex, s);
        }
        self.take_ready()
    }

    /// The local instance of `vertex` took `snapshot`; checkpoints it completes.
    pub fn snapshot(
        &mut self,
        vertex: usize,
        snapshot: InstanceSnapshot,
        alignment_ms: u64,
    ) -> Vec<(CheckpointId, Collected)> {
        let c = self.pending.entry(snapshot.checkpoint).or_default();
        c.alignment_ms = c.alignment_ms.max(alignment_ms);
        c.snapshots.insert(vertex, snapshot);
        self.take_ready()
    }

    /// A checkpoint the coordinator started: ready at once if nothing here still runs.
    pub fn started(&mut self, id: CheckpointId) -> Vec<(CheckpointId, Collected)> {
        self.pending.entry(id).or_default();
        self.take_ready()
    }

    fn take_ready(&mut self) -> Vec<(CheckpointId, Collected)> {
        let ready: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, c)| {
                self.local
                    .iter()
                    .all(|v| c.snapshots.contains_key(v) || self.finished.contains(v))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(ready.len());
        for id in ready {
            let Some(mut c) = self.pending.remove(&id) else {
                continue;
            };
            for (v, last) in &self.finals {
                c.snapshots.entry(*v).or_insert_with(|| InstanceSnapshot {
                    checkpoint: id,
                    ..last.clone()
                });
            }
            out.push((id, c));
        }
        out
    }
}

/// One key and value for the checkpoint store.
pub(crate) type Write = (Vec<u8>, Vec<u8>);

/// Key prefix of one instance's part of a checkpoint in the store.
pub(crate) fn part_key(job: &str, id: CheckpointId, vertex: &str, instance: usize) -> String {
    format!("ringflow/checkpoints/{job}/{id}/{vertex}/{instance}")
}

/// The store writes of one snapshot (MessagePack, in chunks of at most `chunk` bytes,
/// under `KEY/0`, `KEY/1`, ...) and its record.
pub(crate) fn chunks(
    job: &str,
    snapshot: &InstanceSnapshot,
    chunk: usize,
) -> Result<(Vec<Write>, CheckpointPart), String> {
    let bytes = rmp_serde::to_vec_named(snapshot)
        .map_err(|e| format!("encoding the snapshot of '{}': {e}", snapshot.vertex))?;
    let key = part_key(
        job,
        snapshot.checkpoint,
        &snapshot.vertex,
        snapshot.instance,
    );
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[][..]]
    } else {
        bytes.chunks(chunk.max(1)).collect()
    };
    let writes = pieces
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{key}/{i}").into_bytes(), c.to_vec()))
        .collect::<Vec<_>>();
    let part = CheckpointPart {
        vertex: snapshot.vertex.clone(),
        instance: snapshot.instance as u32,
        key,
        chunks: writes.len() as u32,
        bytes: bytes.len() as u64,
        checksum: xxhash_rust::xxh3::xxh3_64(&bytes),
        stateful: snapshot.operator.is_some() || !snapshot.partitions.is_empty(),
    };
    Ok((writes, part))
}

/// The store keys of a part's chunks.
pub(crate) fn chunk_keys(part: &CheckpointPart) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..part.chunks).map(move |i| format!("{}/{i}", part.key).into_bytes())
}

/// Snapshots of a checkpoint, by vertex name (every earlier instance's).
pub(crate) type Restored = BTreeMap<String, Vec<InstanceSnapshot>>;

/// Reads the parts of `vertices` from the store and checks each against its length and
/// checksum: a missing chunk or a corrupt part is an error naming it, never a wrong state.
pub(crate) fn fetch(
    store: &dyn ringflow_stream::checkpoint::CheckpointStore,
    parts: &[CheckpointPart],
    vertices: &BTreeSet<String>,
) -> Result<Restored, String> {
    let wanted: Vec<&CheckpointPart> = parts
        .iter()
        .filter(|p| vertices.contains(&p.vertex))
        .collect();
    let keys: Vec<Vec<u8>> = wanted.iter().flat_map(|p| chunk_keys(p)).collect();
    let mut values = store.get(keys)?.into_iter();
    let mut out = Restored::new();
    for p in wanted {
        let mut bytes = Vec::with_capacity(p.bytes as usize);
        for i in 0..p.chunks {
            match values.next().flatten() {
                Some(chunk) => bytes.extend(chunk),
                None => return Err(format!("checkpoint part {}/{i} is missing", p.key)),
            }
        }
        if bytes.len() as u64 != p.bytes || xxhash_rust::xxh3::xxh3_64(&bytes) != p.checksum {
            return Err(format!(
                "checkpoint part {} is corrupt ({} bytes, checksum mismatch)",
                p.key,
                bytes.len()
            ));
        }
        let snapshot: InstanceSnapshot =
            rmp_serde::from_slice(&bytes).map_err(|e| format!("checkpoint part {}: {e}", p.key))?;
        out.entry(p.vertex.clone()).or_default().push(snapshot);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: u64, vertex: &str) -> InstanceSnapshot {
        InstanceSnapshot {
            checkpoint: id,
            vertex: vertex.into(),
            instance: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_checkpoint_is_ready_once_every_local_instance_snapshotted_or_finished() {
        let mut c = LocalCheckpoints::new(vec![0, 1, 2]);
        // A snapshot from a barrier that came from another worker, before the start.
        assert!(c.snapshot(1, snap(4, "b"), 3).is_empty());
        assert!(c.started(4).is_empty());
        assert!(c.snapshot(0, snap(4, "a"), 7).is_empty());
        let done = c.finished(2, None);
        assert_eq!(done.len(), 1);
        let (id, got) = &done[0];
        assert_eq!(*id, 4);
        assert_eq!(got.snapshots.len(), 2);
        assert_eq!(got.alignment_ms, 7);
        // Vertex 2 stays finished for later checkpoints.
        c.snapshot(0, snap(5, "a"), 0);
        assert_eq!(c.snapshot(1, snap(5, "b"), 0).len(), 1);
        // Nothing runs here any more: a new checkpoint is ready at once.
        c.finished(0, None);
        c.finished(1, None);
        assert_eq!(c.started(6).len(), 1);
    }

    #[test]
    fn a_finished_source_stands_in_with_its_final_position() {
        let mut c = LocalCheckpoints::new(vec![0, 1]);
        let mut last = snap(0, "src");
        last.operator = Some(serde_bytes::ByteBuf::from(b"at the end".to_vec()));
        assert!(c.finished(0, Some(last)).is_empty());
        let ready = c.snapshot(1, snap(4, "count"), 0);
        assert_eq!(ready.len(), 1);
        let (id, got) = &ready[0];
        let src = &got.snapshots[&0];
        assert_eq!((*id, src.checkpoint), (4, 4));
        assert_eq!(
            src.operator.as_ref().map(|b| b.to_vec()),
            Some(b"at the end".to_vec())
        );
        // And in every later one.
        let again = c.snapshot(1, snap(5, "count"), 0);
        assert_eq!(again[0].1.snapshots[&0].checkpoint, 5);
    }

    /// A store in memory.
    struct Mem(std::sync::Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);
    impl ringflow_stream::checkpoint::CheckpointStore for Mem {
        fn put(&self, items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
            self.0.lock().unwrap().extend(items);
            Ok(())
        }
        fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String> {
            let m = self.0.lock().unwrap();
            Ok(keys.iter().map(|k| m.get(k).cloned()).collect())
        }
        fn delete(&self, keys: Vec<Vec<u8>>) -> Result<(), String> {
            let mut m = self.0.lock().unwrap();
            for k in keys {
                m.remove(&k);
            }
            Ok(())
        }
    }

    #[test]
    fn parts_read_back_and_a_corrupt_or_missing_one_is_refused() {
        use ringflow_stream::checkpoint::CheckpointStore;
        let store = Mem(Default::default());
        let mut s = snap(2, "count");
        s.operator = Some(serde_bytes::ByteBuf::from(vec![1u8; 3000]));
        let (writes, part) = chunks("j", &s, 1024).unwrap();
        store.put(writes).unwrap();
        let vertices: BTreeSet<String> = ["count".to_string()].into();
        let got = fetch(&store, std::slice::from_ref(&part), &vertices).unwrap();
        assert_eq!(got["count"], vec![s]);
        // Other vertices' parts are not read.
        assert!(fetch(&store, std::slice::from_ref(&part), &BTreeSet::new())
            .unwrap()
            .is_empty());
        let key = format!("{}/1", part.key).into_bytes();
        store.put(vec![(key.clone(), vec![9u8; 1024])]).unwrap();
        let e = fetch(&store, std::slice::from_ref(&part), &vertices).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        store.0.lock().unwrap().remove(&key);
        let e = fetch(&store, &[part], &vertices).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn a_snapshot_is_cut_into_chunks_under_its_key_with_a_checksum() {
        let mut s = snap(3, "count");
        s.operator = Some(serde_bytes::ByteBuf::from(vec![7u8; 2500]));
        let (writes, part) = chunks("job-1", &s, 1000).unwrap();
        assert_eq!(part.key, "ringflow/checkpoints/job-1/3/count/1");
        assert_eq!(part.chunks as usize, writes.len());
        assert!(writes.len() >= 3);
        let joined: Vec<u8> = writes.iter().flat_map(|(_, v)| v.clone()).collect();
        assert_eq!(joined.len() as u64, part.bytes);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(&joined), part.checksum);
        let back: InstanceSnapshot = rmp_serde::from_slice(&joined).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            writes[1].0,
            b"ringflow/checkpoints/job-1/3/count/1/1".to_vec()
        );
    }
}
