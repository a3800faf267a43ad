//! Handoff: a node that gains replicas of partitions pulls them (`Fetch`, paged) from the
//! previous owners and current co-replicas and merges them by version; it serves those
//! pages to others, and pushes a partition's entries to other replicas in pages.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringflow_proto::ClusterView;
use ringflow_ring::{PartitionId, WorkerId};

use super::DhtService;
use crate::store::Write;
use crate::wire::{DhtRequest, DhtResponse};
use crate::{DhtError, Entry};

/// When a handoff has caught up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Need {
    /// Complete copies needed in one round: enough copies to meet every write quorum
    /// (`spread`), less this node's own durable copy if it has one (a restart).
    pub(super) complete: usize,
    /// Copies that every write quorum meets: `R - (⌊R/2⌋ + 1) + 1` for the configured
    /// replication `R` (2 of 3, 1 of 2).
    pub(super) spread: usize,
    /// This node holds data of every partition of the group.
    pub(super) own: bool,
}

impl Need {
    /// What is needed once `lost` of the previous owners are gone for good (an operator
    /// forgot them and accepted losing what only they held): that many fewer copies, but
    /// always one.
    pub(super) fn without(self, lost: usize) -> Need {
        Need {
            complete: self.complete.saturating_sub(lost).max(1),
            spread: self.spread.saturating_sub(lost).max(1),
            own: self.own,
        }
    }

    /// Sans-IO: caught up once `complete` sources with complete copies answered, or when
    /// every current co-replica answered though all are catching up too (every replica
    /// restarted at once: each has its own durable data, together everything) provided
    /// they and this node are enough copies to meet every write quorum.
    pub(super) fn met(&self, complete: usize, current: usize, current_answered: usize) -> bool {
        complete >= self.complete
            || (current > 0
                && current_answered == current
                && current + usize::from(self.own) >= self.spread)
    }
}

/// Byte budget of one handoff page.
pub(super) const PAGE_BYTES: usize = 4 * 1024 * 1024;

fn unexpected(r: DhtResponse) -> DhtError {
    DhtError::Peer(format!("unexpected answer: {r:?}"))
}

impl DhtService {
    /// One page of a handoff: entries of `partitions` after the cursor.
    pub(super) fn fetch_page(
        &self,
        partitions: &[u32],
        after: Option<(u32, Vec<u8>)>,
        max_bytes: usize,
    ) -> DhtResponse {
        // A copy that is catching up itself may be incomplete: say so.
        let partial = partitions.iter().any(|p| self.syncing.borrow().contains(p));
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for &partition in partitions {
            if let Some((ap, _)) = &after {
                if partition < *ap {
                    continue;
                }
            }
            for (key, entry) in self.store.snapshot_partition(PartitionId(partition)) {
                if let Some((ap, ak)) = &after {
                    if partition == *ap && key.as_slice() <= ak.as_slice() {
                        continue;
                    }
                }
                let size = key.len() + entry.value.as_ref().map_or(0, Vec::len) + 32;
                if bytes + size > max_bytes && !entries.is_empty() {
                    let next = entries
                        .last()
                        .map(|(p, k, _): &(u32, Vec<u8>, Entry)| (*p, k.clone()));
                    return DhtResponse::Page {
                        entries,
                        next,
                        partial,
                    };
                }
                bytes += size;
                entries.push((partition, key, entry));
            }
        }
        DhtResponse::Page {
            entries,
            next: None,
            partial,
        }
    }

    /// The addresses of `partition`'s replicas in `view`, without this node.
    pub(super) fn replica_addrs(&self, view: &ClusterView, partition: u32) -> Vec<SocketAddr> {
        view.assignment
            .replicas(PartitionId(partition))
            .into_iter()
            .filter(|id| **id != self.me)
            .filter_map(|id| view.socket_addr_of(id))
            .collect()
    }

    /// Sends every entry this node has of `partition` to `targets` (in pages); Ok only if
    /// every target stored all of it.
    pub(super) async fn push_partition(
        &self,
        partition: u32,
        targets: &[SocketAddr],
    ) -> Result<usize, DhtError> {
        let entries = self.store.snapshot_partition(PartitionId(partition));
        let total = entries.len();
        let mut page: Vec<(Vec<u8>, Entry)> = Vec::new();
        let mut bytes = 0usize;
        let mut pages = Vec::new();
        for (k, e) in entries {
            let size = k.len() + e.value.as_ref().map_or(0, Vec::len) + 32;
            if bytes + size > PAGE_BYTES && !page.is_empty() {
                pages.push(std::mem::take(&mut page));
                bytes = 0;
            }
            bytes += size;
            page.push((k, e));
        }
        if !page.is_empty() {
            pages.push(page);
        }
        for writes in pages {
            let req = DhtRequest::Replicate {
                partition,
                writes,
                epoch: self.current_epoch(),
                from: self.me.0.clone(),
            };
            for addr in targets {
                match self.peers.call(*addr, &req).await? {
                    // Newer versions there: nothing of ours to add for those keys.
                    DhtResponse::Replicated | DhtResponse::Superseded { .. } => {}
                    other => return Err(unexpected(other)),
                }
            }
        }
        Ok(total)
    }

    /// Pulls the gained partitions from their other replicas (previous owners first).
    pub(super) fn start_handoff(
        self: &Rc<Self>,
        gained: &[u32],
        previous: Option<&ClusterView>,
        current: &ClusterView,
    ) {
        let addr_of = |id: &WorkerId| current.socket_addr_of(id);
        // Partitions with the same sources (and the same previous owners) are copied
        // together.
        let mut groups: BTreeMap<(Vec<WorkerId>, Vec<WorkerId>), Vec<u32>> = BTreeMap::new();
        for &partition in gained {
            let p = PartitionId(partition);
            let mut sources: Vec<WorkerId> = Vec::new();
            let candidates = previous
                .map(|v| v.assignment.replicas(p))
                .unwrap_or_default()
                .into_iter()
                .chain(current.assignment.replicas(p));
            for id in candidates {
                if *id != self.me && addr_of(id).is_some() && !sources.contains(id) {
                    sources.push(id.clone());
                }
            }
            // Every previous owner, reachable or not: those an operator forgets (now or
            // while this handoff waits) are no longer waited for.
            let owners: Vec<WorkerId> = previous
                .map(|v| v.assignment.replicas(p))
                .unwrap_or_default()
                .into_iter()
                .filter(|id| **id != self.me)
                .cloned()
                .collect();
            if !sources.is_empty() {
                groups.entry((sources, owners)).or_default().push(partition);
            }
        }
        if groups.is_empty() {
            return;
        }
        let total: usize = groups.values().map(Vec::len).sum();
        self.syncing
            .borrow_mut()
            .extend(groups.values().flatten().copied());
        tracing::info!(
            partitions = total,
            groups = groups.len(),
            "handoff: catching up on gained partitions"
        );
        let replication = current.assignment.config.replication;
        // Sources that every write quorum meets: R - quorum + 1.
        let spread = replication - (replication / 2 + 1) + 1;
        for ((sources, owners), partitions) in groups {
            // Complete copies needed: enough to meet every write quorum, this node's own
            // durable copy counting as one (a restart) if it holds every partition.
            let own = partitions
                .iter()
                .all(|&p| self.store.partition_len(PartitionId(p)) > 0);
            let need = Need {
                complete: spread.saturating_sub(usize::from(own)).max(1),
                spread,
                own,
            };
            let this = self.clone();
            tokio::task::spawn_local(async move {
                this.sync_from(sources, owners, partitions, need).await;
            });
        }
    }

    /// Copies `partitions` from every source that answers (previous owners first) and
    /// merges them by version, so that an acknowledged write held by any reachable old
    /// replica arrives. Retries until enough sources answered in a round (see [`Need`]),
    /// or the partitions are no longer ours.
    async fn sync_from(
        self: Rc<Self>,
        sources: Vec<WorkerId>,
        owners: Vec<WorkerId>,
        partitions: Vec<u32>,
        need: Need,
    ) {
        let mut round = 0usize;
        loop {
            let partitions: Vec<u32> = partitions
                .iter()
                .copied()
                .filter(|p| self.syncing.borrow().contains(p))
                .collect();
            if partitions.is_empty() {
                return;
            }
            // Sources at their addresses in the newest view (a restarted peer has a new
            // one), plus the current co-replicas.
            let Some(view) = self.view() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let addr_of = |id: &WorkerId| view.socket_addr_of(id);
            let current: BTreeSet<SocketAddr> = partitions
                .iter()
                .flat_map(|&p| self.replica_addrs(&view, p))
                .collect();
            let mut round_sources: Vec<SocketAddr> = sources.iter().filter_map(addr_of).collect();
            for a in &current {
                if !round_sources.contains(a) {
                    round_sources.push(*a);
                }
            }
            let this: &DhtService = &self;
            let attempts = round_sources.iter().map(|source| {
                let parts = partitions.clone();
                async move { (*source, this.copy_partitions(*source, &parts).await) }
            });
            let mut copied = 0usize;
            let (mut complete, mut partial) = (0usize, 0usize);
            let mut current_answered = 0usize;
            for (source, result) in crate::join::join_all(attempts.collect()).await {
                match result {
                    Ok((n, is_partial)) => {
                        if is_partial {
                            partial += 1;
                        } else {
                            complete += 1;
                        }
                        if current.contains(&source) {
                            current_answered += 1;
                        }
                        copied += n;
                    }
                    Err(e) => {
                        tracing::debug!(%source, error = %e, "handoff: source did not answer");
                    }
                }
            }
            let answered = complete + partial;
            let lost = owners
                .iter()
                .filter(|id| view.forgotten.contains(id))
                .count();
            if need
                .without(lost)
                .met(complete, current.len(), current_answered)
            {
                {
                    let mut syncing = self.syncing.borrow_mut();
                    for p in &partitions {
                        syncing.remove(p);
                    }
                }
                // What this node had before (a restart, an earlier ownership) may be
                // newer than what its co-replicas hold: push it to them.
                if let Some(view) = self.view() {
                    for &p in &partitions {
                        if self.store.partition_len(PartitionId(p)) > 0 {
                            let targets = self.replica_addrs(&view, p);
                            if let Err(e) = self.push_partition(p, &targets).await {
                                tracing::debug!(partition = p, error = %e, "pushing local data to co-replicas failed");
                            }
                        }
                    }
                }
                tracing::info!(
                    partitions = partitions.len(),
                    sources = answered,
                    entries = copied,
                    "handoff: caught up"
                );
                return;
            }
            round += 1;
            tracing::warn!(
                partitions = partitions.len(),
                round,
                "handoff: no source answered; retrying"
            );
            tokio::time::sleep(Duration::from_millis(200 * round.min(10) as u64)).await;
        }
    }

    /// Copies the partitions from `source`: entries copied, and whether the source said
    /// its copy may be incomplete (it is catching up itself).
    async fn copy_partitions(
        &self,
        source: SocketAddr,
        partitions: &[u32],
    ) -> Result<(usize, bool), DhtError> {
        let wanted: BTreeSet<u32> = partitions.iter().copied().collect();
        let mut after: Option<(u32, Vec<u8>)> = None;
        let mut copied = 0;
        let mut any_partial = false;
        loop {
            let req = DhtRequest::Fetch {
                partitions: partitions.to_vec(),
                after: after.clone(),
                max_bytes: PAGE_BYTES,
            };
            match self.peers.call(source, &req).await? {
                DhtResponse::Page {
                    entries,
                    next,
                    partial,
                } => {
                    any_partial |= partial;
                    copied += entries.len();
                    // Only what was asked for, and a cursor that moves forward.
                    if entries.iter().any(|(p, _, _)| !wanted.contains(p)) {
                        return Err(DhtError::Peer(format!(
                            "{source} sent partitions it was not asked for"
                        )));
                    }
                    if let (Some(prev), Some(cur)) = (&after, &next) {
                        if cur <= prev {
                            return Err(DhtError::Peer(format!(
                                "{source} sent a cursor that does not advance"
                            )));
                        }
                    }
                    let cursor = next.clone();
                    if !entries.is_empty() {
                        let writes = entries
                            .into_iter()
                            .map(|(p, key, entry)| Write {
                                partition: PartitionId(p),
                                key,
                                entry,
                            })
                            .collect();
                        self.store_write(writes).await?;
                    }
                    match cursor {
                        Some(c) => after = Some(c),
                        None => return Ok((copied, any_partial)),
                    }
                }
                other => {
                    return Err(DhtError::Peer(format!(
                        "unexpected answer to a fetch: {other:?}"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Need;

    #[test]
    fn forgotten_owners_are_not_waited_for_but_one_copy_always_is() {
        let need = Need {
            complete: 2,
            spread: 2,
            own: false,
        };
        // One complete source of the survivors: not enough while both others may return.
        assert!(!need.met(1, 1, 1));
        assert!(need.without(1).met(1, 1, 1));
        // Forgetting more owners than copies needed still needs one copy.
        let none = need.without(5);
        assert_eq!((none.complete, none.spread), (1, 1));
        assert!(!none.met(0, 1, 0));
    }

    #[test]
    fn a_new_replica_needs_complete_copies_that_meet_every_write_quorum() {
        // Replication 3: quorum 2, so any 2 copies meet every quorum.
        let new = Need {
            complete: 2,
            spread: 2,
            own: false,
        };
        assert!(
            !new.met(1, 2, 1),
            "one complete source may lack a write two others had"
        );
        assert!(new.met(2, 2, 2));
        // The set kept with dead members: only one co-replica left, catching up or not.
        assert!(
            !new.met(0, 1, 1),
            "one live co-replica and an empty copy are not enough"
        );
        let restarted = Need {
            complete: 1,
            spread: 2,
            own: true,
        };
        assert!(
            restarted.met(1, 2, 1),
            "its own copy and one complete source"
        );
        assert!(
            restarted.met(0, 1, 1),
            "all restarted at once: its copy and the other's"
        );
        // Replication 2: quorum 2, every acknowledged write is on both; one copy suffices.
        let rf2 = Need {
            complete: 1,
            spread: 1,
            own: false,
        };
        assert!(rf2.met(1, 1, 1));
    }
}
