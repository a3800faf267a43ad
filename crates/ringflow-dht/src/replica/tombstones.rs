//! Forgetting deletion tombstones safely: only a partition's primary decides, only for
//! tombstones past `tombstone_grace`, and only once every replica of the configured set
//! holds that very tombstone. A replica that lacks it is repaired first (and the
//! tombstone kept until a later round confirms it), so a replica that missed the delete
//! can never bring the deleted value back. No node forgets a tombstone by its own age
//! alone.

use std::collections::BTreeSet;

use ringflow_ring::PartitionId;

use super::DhtService;
use crate::wire::{DhtRequest, DhtResponse};
use crate::{Entry, Version};
use ringflow_cluster::clock::now_ms;

/// Tombstones looked at per partition and round.
const PER_ROUND: usize = 10_000;

/// What the replicas hold of a primary's old tombstones.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Census {
    /// Held by every replica: safe to forget everywhere.
    pub(super) forget: Vec<(Vec<u8>, Version)>,
    /// Missing (or older) on some replica: repair those, keep the tombstone.
    pub(super) repair: Vec<(usize, Vec<u8>, Entry)>,
}

/// Sans-IO: sorts `tombstones` by what each replica answered (`answers[r][i]`: replica
/// `r`'s entry for tombstone `i`). A key overwritten since (a newer version anywhere) is
/// neither forgotten nor repaired.
pub(super) fn census(tombstones: &[(Vec<u8>, Version)], answers: &[Vec<Option<Entry>>]) -> Census {
    let mut out = Census::default();
    for (i, (key, version)) in tombstones.iter().enumerate() {
        let held: Vec<Option<&Entry>> = answers
            .iter()
            .map(|a| a.get(i).and_then(Option::as_ref))
            .collect();
        if held.iter().flatten().any(|e| e.version > *version) {
            continue;
        }
        let mut all = true;
        for (r, e) in held.iter().enumerate() {
            let same = e.is_some_and(|e| e.version == *version && e.value.is_none());
            if !same {
                all = false;
                out.repair.push((
                    r,
                    key.clone(),
                    Entry {
                        version: *version,
                        value: None,
                    },
                ));
            }
        }
        if all {
            out.forget.push((key.clone(), *version));
        }
    }
    out
}

impl DhtService {
    /// A replica's side of [`DhtRequest::Forget`].
    pub(super) async fn forget(
        &self,
        partition: u32,
        tombstones: Vec<(Vec<u8>, Version)>,
    ) -> DhtResponse {
        match self.forget_local(partition, tombstones).await {
            Ok(n) => DhtResponse::Written {
                existed: vec![n > 0],
            },
            Err(reason) => DhtResponse::Unavailable { reason },
        }
    }

    async fn forget_local(
        &self,
        partition: u32,
        tombstones: Vec<(Vec<u8>, Version)>,
    ) -> Result<u64, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        // The store's calls block: off this thread.
        std::thread::spawn(move || {
            let _ = tx.send(store.forget_tombstones(PartitionId(partition), tombstones));
        });
        rx.await
            .map_err(|_| "the store stopped".to_string())?
            .map_err(|e| e.to_string())
    }

    /// One round over the partitions this node leads: old tombstones that every replica
    /// holds are forgotten everywhere; replicas missing one are repaired.
    pub(super) async fn purge_tombstones(&self) {
        let Some(grace) = self.cfg.tombstone_grace else {
            return;
        };
        let Some(view) = self.view() else {
            return;
        };
        let cutoff_ts =
            now_ms().saturating_sub(grace.as_millis() as u64) << crate::version::LOGICAL_BITS;
        let led: BTreeSet<u32> = view
            .assignment
            .partitions_of(&self.me)
            .into_iter()
            .filter(|p| view.assignment.primary(*p) == Some(&self.me))
            .map(|p| p.0)
            .collect();
        let (mut forgotten, mut repaired, mut kept) = (0u64, 0usize, 0usize);
        for partition in led {
            let old = self
                .store
                .tombstones_before(PartitionId(partition), cutoff_ts, PER_ROUND);
            if old.is_empty() {
                continue;
            }
            let Some(place) = self.placement(partition) else {
                continue;
            };
            // Every replica of the configured set must be there to say it holds them.
            if place.size < view.assignment.config.replication
                || place.others.len() + 1 != place.size
                || self.syncing.borrow().contains(&partition)
            {
                continue;
            }
            let keys: Vec<Vec<u8>> = old.iter().map(|(k, _)| k.clone()).collect();
            let read = DhtRequest::ReadReplica {
                partition,
                keys: keys.clone(),
                epoch: place.epoch,
                from: self.me.0.clone(),
            };
            let mut answers = Vec::with_capacity(place.others.len());
            for addr in &place.others {
                match self.peers.call(*addr, &read).await {
                    Ok(DhtResponse::Entries { entries }) if entries.len() == keys.len() => {
                        answers.push(entries)
                    }
                    _ => break,
                }
            }
            if answers.len() != place.others.len() {
                kept += 1;
                continue;
            }
            let census = census(&old, &answers);
            for (r, addr) in place.others.iter().enumerate() {
                let writes: Vec<(Vec<u8>, Entry)> = census
                    .repair
                    .iter()
                    .filter(|(to, _, _)| *to == r)
                    .map(|(_, k, e)| (k.clone(), e.clone()))
                    .collect();
                if writes.is_empty() {
                    continue;
                }
                repaired += writes.len();
                let req = DhtRequest::Replicate {
                    partition,
                    writes,
                    epoch: place.epoch,
                    from: self.me.0.clone(),
                };
                let _ = self.peers.call(*addr, &req).await;
            }
            if census.forget.is_empty() {
                continue;
            }
            let req = DhtRequest::Forget {
                partition,
                tombstones: census.forget.clone(),
                epoch: place.epoch,
                from: self.me.0.clone(),
            };
            for addr in &place.others {
                let _ = self.peers.call(*addr, &req).await;
            }
            match self.forget_local(partition, census.forget).await {
                Ok(n) => forgotten += n,
                Err(e) => tracing::warn!(partition, error = %e, "forgetting tombstones failed"),
            }
        }
        if forgotten > 0 || repaired > 0 || kept > 0 {
            tracing::info!(
                forgotten,
                repaired,
                partitions_kept = kept,
                "tombstones past their grace period: forgotten where every replica held them, kept where a replica did not answer"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64) -> Version {
        Version { ts, node: 1 }
    }

    fn tomb(ts: u64) -> Option<Entry> {
        Some(Entry {
            version: v(ts),
            value: None,
        })
    }

    #[test]
    fn a_tombstone_is_forgotten_only_when_every_replica_holds_it() {
        let old = vec![
            (b"a".to_vec(), v(5)),
            (b"b".to_vec(), v(5)),
            (b"c".to_vec(), v(5)),
        ];
        let value = Some(Entry {
            version: v(3),
            value: Some(b"deleted".to_vec()),
        });
        let answers = vec![
            vec![tomb(5), tomb(5), tomb(9)],
            // Replica 1 missed the delete of b: it still has the value.
            vec![tomb(5), value, tomb(5)],
        ];
        let c = census(&old, &answers);
        assert_eq!(c.forget, vec![(b"a".to_vec(), v(5))]);
        // b: repaired on replica 1, kept; c: overwritten since, left alone.
        assert_eq!(c.repair.len(), 1);
        assert_eq!(c.repair[0].0, 1);
        assert_eq!(c.repair[0].1, b"b".to_vec());
    }

    #[test]
    fn a_replica_that_never_saw_the_key_is_repaired_too() {
        let old = vec![(b"a".to_vec(), v(5))];
        let c = census(&old, &[vec![None]]);
        assert!(c.forget.is_empty());
        assert_eq!(c.repair.len(), 1);
    }
}
