//! Upkeep: following the worker's views (handoff of gained partitions, anti-entropy push of
//! partitions no longer owned, retried every 3 s), compaction of the write-ahead log, and
//! a round of forgetting tombstones past `tombstone_grace` every minute (see `tombstones`).

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringflow_proto::ClusterView;
use ringflow_ring::PartitionId;

use super::DhtService;

impl DhtService {
    /// Follows the worker's views: starts a handoff for every partition this node gains.
    pub(super) async fn follow_views(self: Rc<Self>) {
        let mut views = self.views.clone();
        let mut previous: Option<Arc<ClusterView>> = None;
        let mut last_purge = Instant::now();
        loop {
            let Some(current) = views.borrow_and_update().clone() else {
                if views.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let mine = |v: &ClusterView| -> BTreeSet<u32> {
                v.assignment
                    .partitions_of(&self.me)
                    .into_iter()
                    .map(|p| p.0)
                    .collect()
            };
            let now = mine(&current);
            let before = previous.as_deref().map(mine).unwrap_or_default();
            let gained: Vec<u32> = now.difference(&before).copied().collect();
            {
                let mut syncing = self.syncing.borrow_mut();
                syncing.retain(|p| now.contains(p));
            }
            if !gained.is_empty() {
                self.start_handoff(&gained, previous.as_deref(), &current);
            }
            self.push_orphans(&current, &now);
            previous = Some(current);
            // Wake on a new view, or after a while to retry hand-overs that failed.
            loop {
                match tokio::time::timeout(Duration::from_secs(3), views.changed()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        if let Some(v) = views.borrow().clone() {
                            let mine = mine(&v);
                            self.push_orphans(&v, &mine);
                        }
                        self.maybe_checkpoint();
                        self.save_clock();
                        // A round every minute, or twice per grace period if shorter.
                        let round = self
                            .cfg
                            .tombstone_grace
                            .map_or(Duration::from_secs(60), |g| {
                                (g / 2).min(Duration::from_secs(60))
                            });
                        if last_purge.elapsed() >= round {
                            last_purge = Instant::now();
                            self.purge_tombstones().await;
                        }
                    }
                }
            }
        }
    }

    /// Compacts the write-ahead log (on a thread of its own) once it is much larger than
    /// the live data.
    fn maybe_checkpoint(&self) {
        let stats = self.store.stats();
        if stats.wal_bytes < 64 * 1024 * 1024 || stats.wal_bytes < 2 * stats.bytes {
            return;
        }
        let store = self.store.clone();
        std::thread::spawn(move || {
            if let Err(e) = store.checkpoint() {
                tracing::warn!(error = %e, "checkpoint of the DHT store failed");
            }
        });
    }

    /// Hands the data of partitions this node no longer owns to their owners, then forgets
    /// it (anti-entropy for data left behind by leaves, failures and restarts).
    fn push_orphans(self: &Rc<Self>, view: &Arc<ClusterView>, mine: &BTreeSet<u32>) {
        let orphans: Vec<u32> = self
            .store
            .partitions()
            .into_iter()
            .map(|p| p.0)
            .filter(|p| !mine.contains(p) && !self.pushing.borrow().contains(p))
            .filter(|p| !view.assignment.replicas(PartitionId(*p)).is_empty())
            .collect();
        if orphans.is_empty() {
            return;
        }
        self.pushing.borrow_mut().extend(orphans.iter().copied());
        let (this, view) = (self.clone(), view.clone());
        tokio::task::spawn_local(async move {
            let (mut moved, mut kept) = (0usize, 0usize);
            for partition in orphans {
                let targets = this.replica_addrs(&view, partition);
                let still_orphan = this.views.borrow().as_ref().is_some_and(|v| {
                    !v.assignment
                        .partitions_of(&this.me)
                        .contains(&PartitionId(partition))
                });
                if targets.is_empty() || !still_orphan {
                    this.pushing.borrow_mut().remove(&partition);
                    continue;
                }
                match this.push_partition(partition, &targets).await {
                    Ok(n) => {
                        // Ownership may have come back while the push ran: then keep it.
                        let regained = this.views.borrow().as_ref().is_some_and(|v| {
                            v.assignment
                                .partitions_of(&this.me)
                                .contains(&PartitionId(partition))
                        });
                        if regained {
                            this.pushing.borrow_mut().remove(&partition);
                            continue;
                        }
                        if let Err(e) = this.store.drop_partition(PartitionId(partition)) {
                            tracing::warn!(partition, error = %e, "could not forget a handed-over partition");
                        }
                        moved += n;
                    }
                    Err(e) => {
                        kept += 1;
                        tracing::warn!(partition, error = %e, "handing a partition to its owners failed; will retry");
                    }
                }
                this.pushing.borrow_mut().remove(&partition);
            }
            if moved > 0 || kept > 0 {
                tracing::info!(
                    entries = moved,
                    partitions_kept = kept,
                    "handed data of partitions no longer owned to their owners"
                );
            }
        });
    }
}
