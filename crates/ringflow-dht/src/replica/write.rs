//! Writes: the primary's quorum write (`Put`: version stamping, replication to the other
//! owners, acknowledgement once a majority has it on disk) and a replica's side
//! (`Replicate`).

use std::rc::Rc;

use ringflow_ring::PartitionId;
use tokio::sync::{mpsc, oneshot};

use super::DhtService;
use crate::store::Write;
use crate::version::is_too_far_ahead;
use crate::wire::{DhtRequest, DhtResponse, Stamps};
use crate::{DhtError, Entry, Version};

/// `items` as store writes with their versions.
fn as_writes(
    p: PartitionId,
    items: &[(Vec<u8>, Option<Vec<u8>>)],
    versions: &[Version],
) -> Vec<Write> {
    items
        .iter()
        .zip(versions)
        .map(|((key, value), version)| Write {
            partition: p,
            key: key.clone(),
            entry: Entry {
                version: *version,
                value: value.clone(),
            },
        })
        .collect()
}

/// An `Unknown` answer, telling the versions the write may have been applied with (for
/// the router's retry).
fn with_stamps(answer: DhtResponse, versions: &[Version]) -> DhtResponse {
    match answer {
        DhtResponse::Unknown { reason, .. } => DhtResponse::Unknown {
            reason,
            stamped: versions.to_vec(),
        },
        other => other,
    }
}

/// How many times a write is stamped again when replicas hold newer versions.
const STAMP_ROUNDS: usize = 3;

/// What one replica said to a `Replicate`.
enum Reply {
    Stored,
    Newer(Version),
    Failed,
}

/// What one stamping round of a write came to.
enum Round {
    /// The answer (`Replicated`: acknowledged by a quorum).
    Done(DhtResponse),
    /// A replica holds this newer version of some key: stamp again above it.
    Superseded(Version),
}
use ringflow_cluster::clock::now_ms;

impl DhtService {
    fn check_sizes<'a>(
        &self,
        keys: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), DhtError> {
        for (k, v) in keys {
            if k.len() > self.cfg.max_key {
                return Err(DhtError::TooLarge {
                    what: "key",
                    len: k.len(),
                    max: self.cfg.max_key,
                });
            }
            if let Some(v) = v {
                if v.len() > self.cfg.max_value {
                    return Err(DhtError::TooLarge {
                        what: "value",
                        len: v.len(),
                        max: self.cfg.max_value,
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) async fn store_write(&self, writes: Vec<Write>) -> Result<Vec<bool>, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.store.write_async(
            writes,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await
            .map_err(|_| DhtError::Closed("store writer stopped".into()))?
    }

    pub(super) async fn put(
        &self,
        partition: u32,
        items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        stamps: Stamps,
    ) -> DhtResponse {
        let Some(place) = self.placement(partition) else {
            return self.moved(partition);
        };
        if place.primary.as_ref() != Some(&self.me) {
            return self.moved(partition);
        }
        if let Err(e) = self.check_sizes(items.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))) {
            return DhtResponse::Error {
                message: e.to_string(),
            };
        }
        if !stamps.versions.is_empty() && stamps.versions.len() != items.len() {
            return DhtResponse::Error {
                message: format!(
                    "a write of {} items carries {} versions",
                    items.len(),
                    stamps.versions.len()
                ),
            };
        }
        if let Some(refusal) = place.below_quorum(partition, "write") {
            return refusal;
        }
        if let Some(refusal) = self.unleased(partition, place.epoch) {
            return refusal;
        }
        let p = PartitionId(partition);
        let max_ahead = self.cfg.max_clock_skew.as_millis() as u64;
        // A primary still catching up on this partition may lack the newest versions:
        // learn them from the other replicas first, so the new versions stamped below
        // supersede every version an earlier primary wrote.
        let mut remote_live: Vec<bool> = vec![false; items.len()];
        let mut known: Vec<Option<Version>> = vec![None; items.len()];
        if self.syncing.borrow().contains(&partition) && !place.others.is_empty() {
            let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
            let req = DhtRequest::ReadReplica {
                partition,
                keys,
                epoch: place.epoch,
                from: self.me.0.clone(),
            };
            for addr in place.others.iter().copied() {
                if let Ok(Ok(DhtResponse::Entries { entries })) = tokio::time::timeout(
                    self.cfg.replica_timeout,
                    self.forward.call(addr, req.clone()),
                )
                .await
                {
                    let mut hlc = self.hlc.borrow_mut();
                    for (i, e) in entries.iter().enumerate().take(items.len()) {
                        if let Some(e) = e {
                            if hlc.observe_within(e.version, now_ms(), max_ahead) {
                                known[i] = known[i].max(Some(e.version));
                            }
                            remote_live[i] |= e.value.is_some();
                        }
                    }
                }
            }
        }
        let mut existed = Vec::with_capacity(items.len());
        {
            let mut hlc = self.hlc.borrow_mut();
            for (i, (key, _)) in items.iter().enumerate() {
                let current = self.store.get(p, key);
                existed.push(current.as_ref().is_some_and(|e| e.value.is_some()) || remote_live[i]);
                if let Some(c) = &current {
                    hlc.observe(c.version);
                    known[i] = known[i].max(Some(c.version));
                }
            }
        }
        if stamps.retry {
            return self
                .put_again(&place, p, &items, stamps.versions, &known, existed)
                .await;
        }
        // A replica holding a newer version of a key than the stamp (this clock is behind,
        // or this node missed a write) says so: stamp again above it, so that the write
        // acknowledged last is the one every replica keeps.
        let mut versions = self.first_stamps(&stamps.versions, &known);
        for round in 0..STAMP_ROUNDS {
            if round > 0 {
                versions = self.stamp(items.len());
            }
            let writes = as_writes(p, &items, &versions);
            match self.replicate_to_quorum(&place, partition, writes).await {
                Round::Done(DhtResponse::Replicated) => return DhtResponse::Written { existed },
                Round::Done(answer) => return with_stamps(answer, &versions),
                Round::Superseded(v) => {
                    tracing::debug!(partition, version = ?v, "a replica holds newer versions: stamping the write again");
                    self.hlc.borrow_mut().observe(v);
                }
            }
        }
        DhtResponse::Unknown {
            reason: format!(
                "replicas kept answering newer versions than {STAMP_ROUNDS} stamps of the write"
            ),
            stamped: versions,
        }
    }

    /// A retry of a write that an earlier attempt may have applied: stored with exactly
    /// the versions it carries, never stamped again (see [`Stamps`]).
    async fn put_again(
        &self,
        place: &super::routing::Placement,
        p: PartitionId,
        items: &[(Vec<u8>, Option<Vec<u8>>)],
        versions: Vec<Version>,
        known: &[Option<Version>],
        existed: Vec<bool>,
    ) -> DhtResponse {
        if versions.is_empty() {
            return DhtResponse::Error {
                message: "a retried write carries no versions".into(),
            };
        }
        let now = now_ms();
        let max_ahead = self.cfg.max_clock_skew.as_millis() as u64;
        if versions
            .iter()
            .any(|v| is_too_far_ahead(*v, now, max_ahead))
        {
            return DhtResponse::Unknown {
                reason: "a retried write carries versions too far ahead of this node's clock: \
                         not stored again"
                    .into(),
                stamped: versions,
            };
        }
        {
            let mut hlc = self.hlc.borrow_mut();
            for v in &versions {
                hlc.observe(*v);
            }
        }
        let newer_here = known
            .iter()
            .zip(&versions)
            .any(|(k, v)| k.is_some_and(|k| k > *v));
        let writes = as_writes(p, items, &versions);
        match self.replicate_to_quorum(place, p.0, writes).await {
            Round::Done(DhtResponse::Replicated) if !newer_here => DhtResponse::Written { existed },
            Round::Done(DhtResponse::Replicated) | Round::Superseded(_) => DhtResponse::Unknown {
                reason: "a newer write of a key arrived while this one was retried: it may \
                         have been applied before that write, or not at all"
                    .into(),
                stamped: versions,
            },
            Round::Done(answer) => with_stamps(answer, &versions),
        }
    }

    /// The versions of a write's first attempt: each proposed one that is newer than every
    /// version known of its key (and not too far ahead of this clock), else a new stamp.
    fn first_stamps(&self, proposed: &[Version], known: &[Option<Version>]) -> Vec<Version> {
        let now = now_ms();
        let max_ahead = self.cfg.max_clock_skew.as_millis() as u64;
        let mut hlc = self.hlc.borrow_mut();
        known
            .iter()
            .enumerate()
            .map(|(i, k)| match proposed.get(i) {
                Some(v) if k.is_none_or(|k| k < *v) && hlc.observe_within(*v, now, max_ahead) => *v,
                _ => hlc.tick(now),
            })
            .collect()
    }

    /// `n` new versions, from this node's clock (also the versions this node proposes
    /// for the writes it routes: see [`Stamps`]).
    pub(super) fn stamp(&self, n: usize) -> Vec<Version> {
        let now = now_ms();
        let mut hlc = self.hlc.borrow_mut();
        (0..n).map(|_| hlc.tick(now)).collect()
    }

    /// Stores stamped writes here and on the other replicas, waiting for a quorum.
    /// `Done(Replicated)` once acknowledged.
    async fn replicate_to_quorum(
        &self,
        place: &super::routing::Placement,
        partition: u32,
        writes: Vec<Write>,
    ) -> Round {
        let replicated: Vec<(Vec<u8>, Entry)> = writes
            .iter()
            .map(|w| (w.key.clone(), w.entry.clone()))
            .collect();
        let needed = place.quorum;
        let (tx, mut rx) = mpsc::channel::<Reply>(place.others.len().max(1));
        let req = Rc::new(DhtRequest::Replicate {
            partition,
            writes: replicated,
            epoch: place.epoch,
            from: self.me.0.clone(),
        });
        let newer_view = Rc::new(std::cell::Cell::new(0u64));
        for addr in place.others.iter().copied() {
            let (forward, req, tx) = (self.forward.clone(), req.clone(), tx.clone());
            let newer_view = newer_view.clone();
            tokio::task::spawn_local(async move {
                let reply = match forward.call(addr, (*req).clone()).await {
                    Ok(DhtResponse::Replicated) => Reply::Stored,
                    Ok(DhtResponse::Superseded { version }) => Reply::Newer(version),
                    r => {
                        if let Ok(DhtResponse::Moved { epoch, .. }) = r {
                            newer_view.set(newer_view.get().max(epoch));
                        }
                        tracing::warn!(%addr, partition, "replica did not store a write");
                        Reply::Failed
                    }
                };
                let _ = tx.send(reply).await;
            });
        }
        drop(tx);
        if let Err(e) = self.store_write(writes).await {
            // The replicas were sent the write already: some may keep it.
            return Round::Done(DhtResponse::Unknown {
                reason: format!("local store failed: {e}"),
                stamped: Vec::new(),
            });
        }
        let mut acks = 1;
        let mut newer: Option<Version> = None;
        let deadline = tokio::time::sleep(self.cfg.replica_timeout);
        tokio::pin!(deadline);
        while acks < needed {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Reply::Stored) => acks += 1,
                    Some(Reply::Newer(v)) => newer = newer.max(Some(v)),
                    Some(Reply::Failed) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        if let Some(v) = newer {
            return Round::Superseded(v);
        }
        if acks < needed {
            let newer = if newer_view.get() > place.epoch {
                // Replicas know a newer table than ours: the client refreshes and retries
                // (with the same versions) at the partition's current primary.
                format!(", and replicas are at epoch {}", newer_view.get())
            } else {
                String::new()
            };
            // Stored here (and maybe elsewhere) but not acknowledged: it may survive.
            return Round::Done(DhtResponse::Unknown {
                reason: format!(
                    "{acks} of {} replicas stored the write, {needed} needed{newer}",
                    place.size
                ),
                stamped: Vec::new(),
            });
        }
        // The lease may have run out while the replicas answered: a successor may be
        // serving already, so this write must not be acknowledged.
        if let Some(why) = self.lease_refusal(place.epoch) {
            return Round::Done(DhtResponse::Unknown {
                reason: format!("stored by a quorum, but {why}"),
                stamped: Vec::new(),
            });
        }
        Round::Done(DhtResponse::Replicated)
    }

    pub(super) async fn replicate(
        &self,
        partition: u32,
        writes: Vec<(Vec<u8>, Entry)>,
    ) -> DhtResponse {
        if let Err(e) = self.check_sizes(
            writes
                .iter()
                .map(|(k, e)| (k.as_slice(), e.value.as_deref())),
        ) {
            return DhtResponse::Error {
                message: e.to_string(),
            };
        }
        let now = now_ms();
        let max_ahead = self.cfg.max_clock_skew.as_millis() as u64;
        if let Some((_, e)) = writes
            .iter()
            .find(|(_, e)| is_too_far_ahead(e.version, now, max_ahead))
        {
            return DhtResponse::Error {
                message: format!(
                    "refused: a version stamped {} ms ahead of this node's clock (at most {max_ahead} ms allowed)",
                    e.version.millis().saturating_sub(now)
                ),
            };
        }
        let p = PartitionId(partition);
        // Newer versions held here than the write carries: the sender must stamp again.
        let newer = writes
            .iter()
            .filter_map(|(k, e)| {
                self.store
                    .get(p, k)
                    .map(|c| c.version)
                    .filter(|v| *v > e.version)
            })
            .max();
        {
            let mut hlc = self.hlc.borrow_mut();
            for (_, e) in &writes {
                hlc.observe(e.version);
            }
        }
        let writes = writes
            .into_iter()
            .map(|(key, entry)| Write {
                partition: p,
                key,
                entry,
            })
            .collect();
        match self.store_write(writes).await {
            Ok(_) => match newer {
                Some(version) => DhtResponse::Superseded { version },
                None => DhtResponse::Replicated,
            },
            Err(e) => DhtResponse::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}
