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
        let mine = best.clone();
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
            // A newest version that fewer than a quorum hold (a write whose outcome was
            // unknown) is written to a quorum before it is returned: once read, it must
            // not be lost to a later read.
            let counted: Vec<&[Option<Entry>]> = (local == 1)
                .then_some(mine.as_slice())
                .into_iter()
                .chain(answers.iter().map(|(_, e)| e.as_slice()))
                .collect();
            let held = holders(&best, &counted);
            // Repairs are awaited (replicas that answered are live, and lagging ones are
            // rare): a value short of a quorum must be copied before it is returned.
            let gained = self
                .read_repair(partition, &keys, &best, &answers, local == 1)
                .await;
            let short = held
                .iter()
                .zip(&gained)
                .filter(|(h, g)| **h + **g < needed)
                .count();
            if short > 0 {
                return DhtResponse::Unavailable {
                    reason: format!(
                        "{short} key(s) have a newest version that fewer than {needed} replicas hold and it could not be copied in time: not returned"
                    ),
                };
            }
        }
        DhtResponse::Values {
            values: best.into_iter().map(|e| e.and_then(|e| e.value)).collect(),
        }
    }

    /// Sends the winning entries to replicas (and this node) that were behind and waits
    /// for them (each at most `replica_timeout`): per key, how many more copies of the
    /// winner there are now (this node's counted only if `local_counts`: a copy still
    /// catching up does not).
    async fn read_repair(
        &self,
        partition: u32,
        keys: &[Vec<u8>],
        best: &[Option<Entry>],
        answers: &[(SocketAddr, Vec<Option<Entry>>)],
        local_counts: bool,
    ) -> Vec<usize> {
        let p = PartitionId(partition);
        let behind = |have: Option<&Entry>, want: &Option<Entry>| match want {
            Some(w) => w.supersedes(have),
            None => false,
        };
        let mut gained = vec![0usize; keys.len()];
        let local: Vec<(usize, Write)> = keys
            .iter()
            .zip(best)
            .enumerate()
            .filter(|(_, (k, b))| behind(self.store.get(p, k).as_ref(), b))
            .filter_map(|(i, (k, b))| {
                b.clone().map(|entry| {
                    (
                        i,
                        Write {
                            partition: p,
                            key: k.clone(),
                            entry,
                        },
                    )
                })
            })
            .collect();
        let local_repair = async {
            if local.is_empty() {
                return Vec::new();
            }
            let idx: Vec<usize> = local.iter().map(|(i, _)| *i).collect();
            let writes = local.into_iter().map(|(_, w)| w).collect();
            match self.store_write(writes).await {
                Ok(_) => idx,
                Err(_) => Vec::new(),
            }
        };
        let remote = answers.iter().filter_map(|(addr, entries)| {
            let (idx, writes): (Vec<usize>, Vec<(Vec<u8>, Entry)>) = keys
                .iter()
                .zip(best.iter().zip(entries))
                .enumerate()
                .filter(|(_, (_, (b, have)))| behind(have.as_ref(), b))
                .filter_map(|(i, (k, (b, _)))| b.clone().map(|e| (i, (k.clone(), e))))
                .unzip();
            if writes.is_empty() {
                return None;
            }
            let req = DhtRequest::Replicate {
                partition,
                writes,
                epoch: self.current_epoch(),
                from: self.me.0.clone(),
            };
            let addr = *addr;
            Some(async move {
                let r = tokio::time::timeout(self.cfg.replica_timeout, self.peers.call(addr, &req))
                    .await;
                match r {
                    Ok(Ok(DhtResponse::Replicated | DhtResponse::Superseded { .. })) => idx,
                    other => {
                        tracing::debug!(%addr, answer = ?other, "read repair failed");
                        Vec::new()
                    }
                }
            })
        });
        let remote: Vec<_> = remote.collect();
        let (mine, theirs) = tokio::join!(local_repair, crate::join::join_all(remote));
        let mine = if local_counts { mine } else { Vec::new() };
        for i in mine.into_iter().chain(theirs.into_iter().flatten()) {
            gained[i] += 1;
        }
        gained
    }
}

/// Sans-IO: per key, how many of the `counted` copies (this node's, if it counts, and
/// each replica's answer) hold exactly the winning version `best`.
pub(super) fn holders(best: &[Option<Entry>], counted: &[&[Option<Entry>]]) -> Vec<usize> {
    best.iter()
        .enumerate()
        .map(|(i, b)| match b {
            None => counted.len(),
            Some(b) => counted
                .iter()
                .filter(|c| {
                    c.get(i)
                        .and_then(Option::as_ref)
                        .is_some_and(|e| e.version == b.version)
                })
                .count(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    fn e(ts: u64) -> Option<Entry> {
        Some(Entry {
            version: Version { ts, node: 1 },
            value: Some(b"v".to_vec()),
        })
    }

    #[test]
    fn a_winner_only_one_copy_holds_is_short_of_a_quorum() {
        let best = vec![e(5), e(3), None];
        let primary = vec![e(5), e(3), None];
        let replica = vec![e(4), e(3), None];
        let held = holders(&best, &[&primary, &replica]);
        // Key 0: only the primary has version 5 (an unknown-outcome write): 1 of 2.
        assert_eq!(held, vec![1, 2, 2]);
    }
}
