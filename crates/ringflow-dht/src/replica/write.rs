//! Writes: the primary's quorum write (`Put`: version stamping, replication to the other
//! owners, acknowledgement once a majority has it on disk) and a replica's side
//! (`Replicate`).

use std::rc::Rc;

use ringflow_ring::PartitionId;
use tokio::sync::{mpsc, oneshot};

use super::DhtService;
use crate::store::Write;
use crate::wire::{DhtRequest, DhtResponse};
use crate::{DhtError, Entry};
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
        if let Some(refusal) = place.below_quorum(partition, "write") {
            return refusal;
        }
        if let Some(refusal) = self.unleased(partition, place.epoch) {
            return refusal;
        }
        let p = PartitionId(partition);
        // A primary still catching up on this partition may lack the newest versions:
        // learn them from the other replicas first, so the new versions stamped below
        // supersede every version an earlier primary wrote.
        let mut remote_live: Vec<bool> = vec![false; items.len()];
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
                            hlc.observe(e.version);
                            remote_live[i] |= e.value.is_some();
                        }
                    }
                }
            }
        }
        let mut existed = Vec::with_capacity(items.len());
        let mut writes = Vec::with_capacity(items.len());
        let now = now_ms();
        {
            let mut hlc = self.hlc.borrow_mut();
            for (i, (key, value)) in items.into_iter().enumerate() {
                let current = self.store.get(p, &key);
                existed.push(current.as_ref().is_some_and(|e| e.value.is_some()) || remote_live[i]);
                if let Some(c) = &current {
                    hlc.observe(c.version);
                }
                let entry = Entry {
                    version: hlc.tick(now),
                    value,
                };
                writes.push(Write {
                    partition: p,
                    key,
                    entry,
                });
            }
        }
        let replicated: Vec<(Vec<u8>, Entry)> = writes
            .iter()
            .map(|w| (w.key.clone(), w.entry.clone()))
            .collect();
        let needed = place.quorum;
        let (tx, mut rx) = mpsc::channel::<bool>(place.others.len().max(1));
        let req = Rc::new(DhtRequest::Replicate {
            partition,
            writes: replicated,
            epoch: place.epoch,
            from: self.me.0.clone(),
        });
        let newer_view = Rc::new(std::cell::Cell::new(0u64));
        for addr in place.others {
            let (forward, req, tx) = (self.forward.clone(), req.clone(), tx.clone());
            let newer_view = newer_view.clone();
            tokio::task::spawn_local(async move {
                let r = forward.call(addr, (*req).clone()).await;
                let ok = matches!(r, Ok(DhtResponse::Replicated));
                if let Ok(DhtResponse::Moved { epoch, .. }) = r {
                    newer_view.set(newer_view.get().max(epoch));
                }
                if !ok {
                    tracing::warn!(%addr, partition, "replica did not store a write");
                }
                let _ = tx.send(ok).await;
            });
        }
        drop(tx);
        if let Err(e) = self.store_write(writes).await {
            // The replicas were sent the write already: some may keep it.
            return DhtResponse::Unknown {
                reason: format!("local store failed: {e}"),
            };
        }
        let mut acks = 1;
        let deadline = tokio::time::sleep(self.cfg.replica_timeout);
        tokio::pin!(deadline);
        while acks < needed {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(true) => acks += 1,
                    Some(false) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        if acks < needed {
            if newer_view.get() > place.epoch {
                // Replicas know a newer table than ours: the client refreshes and retries
                // with the partition's current primary.
                return DhtResponse::Moved {
                    partition,
                    epoch: newer_view.get(),
                    primary: None,
                };
            }
            // Stored here (and maybe elsewhere) but not acknowledged: it may survive.
            return DhtResponse::Unknown {
                reason: format!(
                    "{acks} of {} replicas stored the write, {needed} needed",
                    place.size
                ),
            };
        }
        // The lease may have run out while the replicas answered: a successor may be
        // serving already, so this write must not be acknowledged.
        if let Some(why) = self.lease_refusal(place.epoch) {
            return DhtResponse::Unknown {
                reason: format!("stored by a quorum, but {why}"),
            };
        }
        DhtResponse::Written { existed }
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
        let p = PartitionId(partition);
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
            Ok(_) => DhtResponse::Replicated,
            Err(e) => DhtResponse::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}
