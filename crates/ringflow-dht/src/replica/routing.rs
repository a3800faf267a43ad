//! Routing: where a partition's replicas are in this node's view, the `Moved` redirect, and
//! sending a request to a partition's primary (this node or a peer) for callers that may
//! not own the keys (the RESP gateway, `route_put` / `route_get`).

use std::net::SocketAddr;
use std::time::Duration;

use ringflow_ring::{PartitionId, WorkerId};

use super::DhtService;
use crate::wire::{DhtRequest, DhtResponse};
use crate::DhtError;

/// Where a partition's replicas are, in this node's view.
pub(super) struct Placement {
    /// The view's epoch.
    pub(super) epoch: u64,
    /// The partition's primary.
    pub(super) primary: Option<WorkerId>,
    /// The other replicas' addresses (this node left out).
    pub(super) others: Vec<SocketAddr>,
    /// The live members of the replica set, this node included.
    pub(super) size: usize,
    /// Replicas a write or read needs: a majority of the *configured* replication, not
    /// of the live replica set, so a set shrunk by failures cannot acknowledge alone
    /// what the replicas it lost never saw.
    pub(super) quorum: usize,
}

impl Placement {
    /// A refusal when fewer replicas are live than a quorum needs: nothing is read or
    /// written (so a client may retry, as with Cassandra's `QUORUM` below a quorum).
    pub(super) fn below_quorum(&self, partition: u32, what: &str) -> Option<DhtResponse> {
        (self.size < self.quorum).then(|| DhtResponse::Unavailable {
            reason: format!(
                "partition {partition} has {} live replica(s) and a {what} needs {} \
                 (a majority of the configured replication): refused, nothing was done",
                self.size, self.quorum
            ),
        })
    }
}

impl DhtService {
    pub(super) fn placement(&self, partition: u32) -> Option<Placement> {
        let view = self.views.borrow().clone()?;
        let p = PartitionId(partition);
        if partition >= view.assignment.config.partitions {
            return None;
        }
        let replicas: Vec<WorkerId> = view.assignment.replicas(p).into_iter().cloned().collect();
        let addr_of = |id: &WorkerId| view.socket_addr_of(id);
        let others: Vec<SocketAddr> = replicas
            .iter()
            .filter(|id| **id != self.me)
            .filter_map(addr_of)
            .collect();
        // Live members only: a set the coordinator keeps with dead members (below a
        // quorum by failures) lists workers that are not in the view.
        let size = others.len() + usize::from(replicas.contains(&self.me));
        Some(Placement {
            epoch: view.epoch(),
            primary: replicas.first().cloned(),
            others,
            size,
            quorum: view.assignment.config.replication / 2 + 1,
        })
    }

    /// Why this node may not act as a primary for a view of `epoch` now (its lease from
    /// the coordinator ran out, or the coordinator is at a newer epoch), if it may not.
    pub(super) fn lease_refusal(&self, epoch: u64) -> Option<ringflow_cluster::LeaseRefusal> {
        self.lease.check(epoch, std::time::Instant::now()).err()
    }

    /// A refusal (nothing was done) when this node's lease does not let it act as the
    /// primary of `partition` now.
    pub(super) fn unleased(&self, partition: u32, epoch: u64) -> Option<DhtResponse> {
        self.lease_refusal(epoch)
            .map(|why| DhtResponse::Unavailable {
                reason: format!("partition {partition}: {why}; refused, nothing was done"),
            })
    }

    pub(super) fn current_epoch(&self) -> u64 {
        self.views.borrow().as_ref().map_or(0, |v| v.epoch())
    }

    /// Whether replica traffic for `partition` from `sender` (routed with `epoch`) must be
    /// refused: see [`crate::wire::fenced_out`].
    pub(super) fn fences(&self, partition: u32, epoch: u64, sender: &str) -> bool {
        let Some(view) = self.views.borrow().clone() else {
            return false;
        };
        let p = PartitionId(partition);
        let replicas = view.assignment.replicas(p);
        crate::wire::fenced_out(
            view.epoch(),
            replicas.first().map(|w| w.as_str()),
            replicas.iter().any(|w| **w == self.me),
            epoch,
            sender,
        )
    }

    pub(super) fn moved(&self, partition: u32) -> DhtResponse {
        let view = self.views.borrow().clone();
        let (epoch, primary) = match &view {
            Some(v) => {
                let primary = v
                    .assignment
                    .primary(PartitionId(partition))
                    .and_then(|id| v.addr_of(id).map(str::to_owned));
                (v.epoch(), primary)
            }
            None => (0, None),
        };
        DhtResponse::Moved {
            partition,
            epoch,
            primary,
        }
    }

    /// Writes (value `None` deletes) from a node that may not own the keys: each
    /// partition's batch goes to its primary (this node or a peer). Per item, whether a
    /// value existed before.
    pub async fn route_put(
        &self,
        items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<bool>, DhtError> {
        crate::batch::write(self, items).await
    }

    /// Reads from a node that may not own the keys; values in the order of `keys`.
    pub async fn route_get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, DhtError> {
        crate::batch::read(self, keys).await
    }

    /// Sends one partition's request to its primary (handled here if that is this node),
    /// waiting for a newer view and retrying while the answer is a redirect.
    async fn route(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        let mut views = self.views.clone();
        let mut last = DhtError::NoOwner(partition);
        let mut attempts = crate::batch::Attempts::default();
        for _ in 0..8 {
            let Some(view) = views.borrow_and_update().clone() else {
                return Err(DhtError::Unavailable(
                    "this worker has not joined the cluster yet".into(),
                ));
            };
            let req = attempts.prepare(make(view.epoch()));
            let primary = view.assignment.primary(PartitionId(partition)).cloned();
            let resp = match primary {
                None => Err(DhtError::NoOwner(partition)),
                Some(id) if id == self.me => Ok(self.handle(req.clone()).await),
                Some(id) => match view.socket_addr_of(&id) {
                    Some(addr) => self.forward.call(addr, req.clone()).await,
                    // Nothing was sent: a refusal, not an unknown outcome.
                    None => Err(DhtError::Unavailable(format!("no address for {id}"))),
                },
            };
            match attempts.settle(&req, resp, partition) {
                Ok(done) => return done,
                Err(retry) => last = retry,
            }
            // Wait (briefly) for a newer view before retrying.
            let _ = tokio::time::timeout(Duration::from_millis(500), views.changed()).await;
        }
        Err(attempts.give_up(last))
    }
}

impl crate::batch::Router for DhtService {
    fn partition_count(&self) -> Result<u32, DhtError> {
        self.view()
            .map(|v| v.assignment.config.partitions)
            .ok_or_else(|| {
                DhtError::Unavailable("this worker has not joined the cluster yet".into())
            })
    }

    async fn send_to_primary(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        self.route(partition, make).await
    }

    fn propose(&self, n: usize) -> Vec<crate::Version> {
        self.stamp(n)
    }
}
