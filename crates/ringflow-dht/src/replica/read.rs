//! Reads: the primary's quorum read (`Get`: local copy plus `ReadReplica` from the others,
//! highest version wins) and read repair of the replicas that were behind.

use std::net::SocketAddr;
use std::rc::Rc;

use ringflow_ring::PartitionId;
use tokio::sync::mpsc;

use super::DhtService;
use crate::store::Write;
use crate::wire::{DhtRequest, DhtResponse};
use crate::Entry;

impl DhtService {
    pub(super) async fn get(&self, partition: u32, keys: Vec<Vec<u8>>) -> DhtResponse {
        let Some(place) = self.placement(partition) else {
            return self.moved(partition);
        };
        if place.primary.as_ref() != Some(&self.me) {
            return self.moved(partition);
        }
        if let Some(refusal) = place.below_quorum(partition, "read") {
            return refusal;
        }
        if let Some(refusal) = self.unleased(partition, place.epoch) {
            return refusal;
        }
        let p = PartitionId(partition);
        let mut best: Vec<Option<Entry>> = keys.iter().map(|k| self.store.get(p, k)).collect();
        let needed = place.quorum;
        // A copy still catching up does not count towards the quorum.
        let local = usize::from(!self.syncing.borrow().contains(&partition));
        if needed > local {
            let (tx, mut rx) = mpsc::channel::<(SocketAddr, Option<Vec<Option<Entry>>>)>(
                place.others.len().max(1),
            );
            let req = Rc::new(DhtRequest::ReadReplica {
                partition,
                keys: keys.clone(),
                epoch: place.epoch,
                from: self.me.0.clone(),
            });
            let newer_view = Rc::new(std::cell::Cell::new(0u64));
            for addr in place.others.iter().copied() {
                let (forward, req, tx) = (self.forward.clone(), req.clone(), tx.clone());
                let newer_view = newer_view.clone();
                tokio::task::spawn_local(async move {
                    let r = match forward.call(addr, (*req).clone()).await {
                        Ok(DhtResponse::Entries { entries }) => Some(entries),
                        Ok(DhtResponse::Moved { epoch, .. }) => {
                            newer_view.set(newer_view.get().max(epoch));
                            None
                        }
                        _ => None,
                    };
                    let _ = tx.send((addr, r)).await;
                });
            }
            drop(tx);
            let mut answers: Vec<(SocketAddr, Vec<Option<Entry>>)> = Vec::new();
            let deadline = tokio::time::sleep(self.cfg.replica_timeout);
            tokio::pin!(deadline);
            while local + answers.len() < needed {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some((addr, Some(entries))) if entries.len() == keys.len() => answers.push((addr, entries)),
                        Some(_) => {}
                        None => break,
                    },
                    _ = &mut deadline => break,
                }
            }
            if local + answers.len() < needed {
                if newer_view.get() > place.epoch {
                    return DhtResponse::Moved {
                        partition,
                        epoch: newer_view.get(),
                        primary: None,
                    };
                }
                return DhtResponse::Unavailable {
                    reason: format!(
                        "{} of {} replicas answered, {needed} needed",
                        local + answers.len(),
                        place.size
                    ),
                };
            }
            for (_, entries) in &answers {
                for (b, e) in best.iter_mut().zip(entries) {
                    if let Some(e) = e {
                        if e.supersedes(b.as_ref()) {
                            *b = Some(e.clone());
                        }
                    }
                }
            }
            self.read_repair(partition, &keys, &best, &answers);
        }
        DhtResponse::Values {
            values: best.into_iter().map(|e| e.and_then(|e| e.value)).collect(),
        }
    }

    /// Sends the winning entries to replicas (and this node) that were behind.
    fn read_repair(
        &self,
        partition: u32,
        keys: &[Vec<u8>],
        best: &[Option<Entry>],
        answers: &[(SocketAddr, Vec<Option<Entry>>)],
    ) {
        let p = PartitionId(partition);
        let behind = |have: Option<&Entry>, want: &Option<Entry>| match want {
            Some(w) => w.supersedes(have),
            None => false,
        };
        let local: Vec<Write> = keys
            .iter()
            .zip(best)
            .filter(|(k, b)| behind(self.store.get(p, k).as_ref(), b))
            .filter_map(|(k, b)| {
                b.clone().map(|entry| Write {
                    partition: p,
                    key: k.clone(),
                    entry,
                })
            })
            .collect();
        if !local.is_empty() {
            self.store.write_async(local, Box::new(|_| {}));
        }
        for (addr, entries) in answers {
            let writes: Vec<(Vec<u8>, Entry)> = keys
                .iter()
                .zip(best.iter().zip(entries))
                .filter(|(_, (b, have))| behind(have.as_ref(), b))
                .filter_map(|(k, (b, _))| b.clone().map(|e| (k.clone(), e)))
                .collect();
            if writes.is_empty() {
                continue;
            }
            let (peers, addr) = (self.peers.clone(), *addr);
            let (epoch, from) = (self.current_epoch(), self.me.0.clone());
            tokio::task::spawn_local(async move {
                let req = DhtRequest::Replicate {
                    partition,
                    writes,
                    epoch,
                    from,
                };
                if let Err(e) = peers.call(addr, &req).await {
                    tracing::debug!(%addr, error = %e, "read repair failed");
                }
            });
        }
    }
}
