//! The service's request entry: streams from peers and clients, batches (`Multi`) taken
//! apart and run concurrently, replica traffic fenced by epoch, each request counted and
//! timed, then handed to the write, read or handoff path.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ringflow_cluster::{ClusterError, LocalFuture, WorkerService};
use ringflow_net::{Connection, FramedRecv, FramedSend};
use ringflow_proto::{Hello, PeerRole};
use ringflow_ring::PartitionId;

use super::handoff::PAGE_BYTES;
use super::metrics::{metrics, op_index};
use super::DhtService;
use crate::wire::{DhtRequest, DhtResponse, SERVICE};

/// What replica traffic is refused with when it does not come from a worker.
const NOT_FROM_A_WORKER: &str =
    "replica traffic is only accepted from workers (a node certificate naming the sender)";

/// Lets `req` through as sent by `sender` (the worker a node certificate names), or
/// refuses it. Replica traffic (`Replicate`, `ReadReplica`, `Fetch`) needs a sender, and
/// its `from` is the certificate's name whatever the request says; client requests pass.
fn authorise(req: DhtRequest, sender: Option<&str>) -> Result<DhtRequest, DhtResponse> {
    let refused = || DhtResponse::Error {
        message: NOT_FROM_A_WORKER.into(),
    };
    match (req, sender) {
        (
            DhtRequest::Replicate {
                partition,
                writes,
                epoch,
                ..
            },
            Some(s),
        ) => Ok(DhtRequest::Replicate {
            partition,
            writes,
            epoch,
            from: s.to_owned(),
        }),
        (
            DhtRequest::ReadReplica {
                partition,
                keys,
                epoch,
                ..
            },
            Some(s),
        ) => Ok(DhtRequest::ReadReplica {
            partition,
            keys,
            epoch,
            from: s.to_owned(),
        }),
        (
            DhtRequest::Forget {
                partition,
                tombstones,
                epoch,
                ..
            },
            Some(s),
        ) => Ok(DhtRequest::Forget {
            partition,
            tombstones,
            epoch,
            from: s.to_owned(),
        }),
        (
            DhtRequest::Replicate { .. }
            | DhtRequest::ReadReplica { .. }
            | DhtRequest::Fetch { .. }
            | DhtRequest::Forget { .. },
            None,
        ) => Err(refused()),
        (req, _) => Ok(req),
    }
}

impl DhtService {
    /// Handles a request from a stream: every request, and every part of a `Multi`, is
    /// authorised on its own (see [`authorise`]) before it runs.
    pub(super) async fn handle_from(&self, req: DhtRequest, sender: Option<&str>) -> DhtResponse {
        let DhtRequest::Multi(parts) = req else {
            return self.handle_authorised(req, sender).await;
        };
        if parts.iter().any(|p| matches!(p, DhtRequest::Multi(_))) {
            return DhtResponse::Error {
                message: "a batch request inside a batch request".into(),
            };
        }
        let answers = crate::join::join_all(
            parts
                .into_iter()
                .map(|p| self.handle_authorised(p, sender))
                .collect(),
        )
        .await;
        DhtResponse::Multi(answers)
    }

    async fn handle_authorised(&self, req: DhtRequest, sender: Option<&str>) -> DhtResponse {
        let op = op_index(&req);
        match authorise(req, sender) {
            Ok(req) => self.handle_one(req).await,
            Err(resp) => {
                metrics().record(op, &resp, Duration::ZERO);
                resp
            }
        }
    }

    /// Handles a request of this node's own (routing for a client it serves): authorised
    /// as sent by this worker.
    pub(super) async fn handle(&self, req: DhtRequest) -> DhtResponse {
        self.handle_from(req, Some(self.me.as_str())).await
    }

    /// Handles one request, counting it and timing it.
    async fn handle_one(&self, req: DhtRequest) -> DhtResponse {
        let op = op_index(&req);
        let started = Instant::now();
        let resp = self.dispatch(req).await;
        metrics().record(op, &resp, started.elapsed());
        resp
    }

    async fn dispatch(&self, req: DhtRequest) -> DhtResponse {
        match req {
            // `handle` takes batches apart; one reaching here was nested.
            DhtRequest::Multi(_) => DhtResponse::Error {
                message: "a batch request inside a batch request".into(),
            },
            DhtRequest::Put {
                partition,
                items,
                stamps,
                ..
            } => self.put(partition, items, stamps).await,
            DhtRequest::Get {
                partition, keys, ..
            } => self.get(partition, keys).await,
            DhtRequest::Replicate {
                partition,
                epoch,
                from,
                ..
            }
            | DhtRequest::ReadReplica {
                partition,
                epoch,
                from,
                ..
            }
            | DhtRequest::Forget {
                partition,
                epoch,
                from,
                ..
            } if self.fences(partition, epoch, &from) => self.moved(partition),
            DhtRequest::Forget {
                partition,
                tombstones,
                ..
            } => self.forget(partition, tombstones).await,
            DhtRequest::Replicate {
                partition, writes, ..
            } => self.replicate(partition, writes).await,
            DhtRequest::ReadReplica { partition, .. }
                if self.syncing.borrow().contains(&partition) =>
            {
                DhtResponse::Unavailable {
                    reason: format!("partition {partition} is still catching up"),
                }
            }
            DhtRequest::Fetch {
                partitions,
                after,
                max_bytes,
            } => self.fetch_page(&partitions, after, max_bytes.min(PAGE_BYTES)),
            DhtRequest::ReadReplica {
                partition, keys, ..
            } => {
                let p = PartitionId(partition);
                DhtResponse::Entries {
                    entries: keys.iter().map(|k| self.store.get(p, k)).collect(),
                }
            }
        }
    }
}

impl WorkerService for DhtService {
    fn name(&self) -> &str {
        SERVICE
    }

    fn advertised(&self) -> Vec<(String, String)> {
        self.advertised.clone()
    }

    fn serve(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        mut send: FramedSend,
        mut recv: FramedRecv,
    ) -> LocalFuture<Result<(), ClusterError>> {
        Box::pin(async move {
            // The worker this stream speaks for: a node certificate that is valid for the
            // id its hello names. Replica traffic needs one (see `authorise`).
            let sender = match &hello.node_id {
                Some(id)
                    if conn.peer_is_node()
                        && hello.role == PeerRole::Worker
                        && conn.peer_has_name(id) =>
                {
                    Some(id.clone())
                }
                _ => None,
            };
            while let Some(req) = recv.recv::<DhtRequest>().await? {
                let resp = self.handle_from(req, sender.as_deref()).await;
                send.send(&resp).await?;
            }
            Ok(())
        })
    }

    fn shutdown(self: Rc<Self>) -> LocalFuture<()> {
        Box::pin(async move {
            self.peers.close();
            self.save_clock();
            if let Err(e) = self.store.close() {
                tracing::error!(error = %e, "closing the DHT store");
            }
        })
    }
}
