//! Coalesces the requests a worker sends to one peer: forwarded client requests,
//! replication and replica reads. Up to [`LANES`] round trips to a peer are in flight at
//! once. A request that finds a free lane goes out at once, alone and unchanged. Requests
//! that find every lane busy queue up, and the next lane to come free takes the queue as
//! one [`DhtRequest::Multi`]. The peer handles the parts concurrently, so their writes
//! share a group commit, and the many clients of a RESP port cost one stream exchange per
//! batch instead of one each. A slow request (a replica timing out) holds up only its
//! own lane.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::sync::oneshot;

use crate::pool::StreamPool;
use crate::wire::{DhtRequest, DhtResponse};
use crate::DhtError;

/// Round trips in flight to one peer.
const LANES: usize = 4;
/// Most requests in one batch.
const MAX_BATCH: usize = 256;
/// Most key and value bytes in one batch (a frame must hold it).
const MAX_BATCH_BYTES: usize = 1 << 20;

type Reply = oneshot::Sender<Result<DhtResponse, DhtError>>;

#[derive(Default)]
struct PeerQueue {
    /// Round trips in flight.
    in_flight: usize,
    queue: Vec<(DhtRequest, Reply)>,
}

/// Per-peer queues in front of a [`StreamPool`]. Single-threaded: it lives on the
/// worker's network thread and drives each peer's queue with `spawn_local`.
pub(crate) struct Coalescer {
    pool: Rc<StreamPool>,
    peers: RefCell<HashMap<SocketAddr, PeerQueue>>,
}

impl Coalescer {
    pub(crate) fn new(pool: Rc<StreamPool>) -> Rc<Self> {
        Rc::new(Self {
            pool,
            peers: RefCell::new(HashMap::new()),
        })
    }

    /// Sends `req` to `addr` (alone or batched with others) and waits for its answer.
    pub(crate) async fn call(
        self: &Rc<Self>,
        addr: SocketAddr,
        req: DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.peers
            .borrow_mut()
            .entry(addr)
            .or_default()
            .queue
            .push((req, tx));
        self.pump(addr);
        rx.await
            .unwrap_or_else(|_| Err(DhtError::Peer(format!("forwarding to {addr} stopped"))))
    }

    /// Starts a round trip on every free lane while requests are queued.
    fn pump(self: &Rc<Self>, addr: SocketAddr) {
        loop {
            let batch = {
                let mut peers = self.peers.borrow_mut();
                let Some(q) = peers.get_mut(&addr) else {
                    return;
                };
                if q.queue.is_empty() {
                    if q.in_flight == 0 {
                        peers.remove(&addr);
                    }
                    return;
                }
                if q.in_flight >= LANES {
                    return;
                }
                let mut n = 0;
                let mut bytes = 0;
                while n < q.queue.len() && n < MAX_BATCH {
                    bytes += payload_bytes(&q.queue[n].0);
                    if n > 0 && bytes > MAX_BATCH_BYTES {
                        break;
                    }
                    n += 1;
                }
                q.in_flight += 1;
                q.queue.drain(..n).collect::<Vec<_>>()
            };
            let this = self.clone();
            tokio::task::spawn_local(async move {
                this.send(addr, batch).await;
                if let Some(q) = this.peers.borrow_mut().get_mut(&addr) {
                    q.in_flight -= 1;
                }
                this.pump(addr);
            });
        }
    }

    /// One round trip: a lone request as itself, several as one `Multi`.
    async fn send(&self, addr: SocketAddr, mut batch: Vec<(DhtRequest, Reply)>) {
        if batch.len() == 1 {
            if let Some((req, reply)) = batch.pop() {
                let _ = reply.send(self.pool.call(addr, &req).await);
            }
            return;
        }
        let (reqs, replies): (Vec<DhtRequest>, Vec<Reply>) = batch.into_iter().unzip();
        let n = reqs.len();
        tracing::trace!(%addr, requests = n, "sending a batch");
        let why = match self.pool.call(addr, &DhtRequest::Multi(reqs)).await {
            Ok(DhtResponse::Multi(answers)) if answers.len() == n => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
                return;
            }
            Ok(other) => format!("{addr} answered a batch of {n} with {other:?}"),
            Err(e) => e.to_string(),
        };
        for reply in replies {
            let _ = reply.send(Err(DhtError::Peer(why.clone())));
        }
    }
}

/// Key and value bytes a request carries (its share of a frame).
fn payload_bytes(req: &DhtRequest) -> usize {
    match req {
        DhtRequest::Put { items, .. } => items
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 16)
            .sum(),
        DhtRequest::Get { keys, .. } | DhtRequest::ReadReplica { keys, .. } => {
            keys.iter().map(|k| k.len() + 8).sum()
        }
        DhtRequest::Replicate { writes, .. } => writes
            .iter()
            .map(|(k, e)| k.len() + e.value.as_ref().map_or(0, Vec::len) + 32)
            .sum(),
        _ => 64,
    }
}
