//! Both halves of a data edge between operator instances: the sending side (an
//! instance's [`Outlets`], which hand local targets their messages and encode batches
//! for remote ones on the sending operator's thread), the QUIC writer that spends the
//! receiver's credits, and the QUIC reader on the receiving worker, which passes batches
//! on still encoded (the receiving operator decodes them on its own thread, not the
//! network thread) and returns credit once they are in the receiver's bounded queue.
//!
//! One QUIC stream per (edge, sending instance, receiving instance): a full receiver
//! stops reading that stream and stalls that sender alone.

use std::sync::Arc;

use ringflow_net::{Connection, FramedRecv, FramedSend};
use ringflow_proto::{EdgeOpen, PeerRole, StreamOpen, STREAM_SERVICE};
use ringflow_stream::instance::ChainOutgoing;
use ringflow_stream::wire::DataFrame;
use ringflow_stream::{Message as StreamMsg, PortType};
use tokio::sync::mpsc;

use crate::credit::{CreditSender, EncodedBatch, Inbound};
use crate::job::JobEvent;
use ringflow_cluster::open_service_stream;

/// Frames queued per outgoing edge before its writer (on the network thread) catches up.
const EDGE_FRAMES: usize = 8;

/// Where one (output edge, target instance) goes.
pub(crate) enum Target {
    /// An instance on this worker.
    Local(CreditSender),
    /// An instance on another worker: frames to the edge's QUIC writer task.
    Remote {
        tx: mpsc::Sender<DataFrame>,
        port: PortType,
    },
}

/// Every target of every output edge of each member of one chain:
/// `targets[member][edge][target]` (none for the edges inside the chain).
pub(crate) struct Outlets {
    pub targets: Vec<Vec<Vec<Option<Target>>>>,
}

impl Outlets {
    /// Delivers messages in order, waiting for credit; serializes batches for remote
    /// targets here, on the operator's thread.
    pub(crate) async fn send_all(self: Arc<Self>, out: Vec<ChainOutgoing>) -> Result<(), String> {
        for ChainOutgoing { member, out: o } in out {
            let Some(Some(target)) = self
                .targets
                .get(member)
                .and_then(|m| m.get(o.edge))
                .and_then(|t| t.get(o.target))
            else {
                return Err(format!(
                    "no route for edge {} target {} of chain member {member}",
                    o.edge, o.target
                ));
            };
            match target {
                Target::Local(s) => s
                    .send(o.msg)
                    .await
                    .map_err(|_| "a downstream instance on this worker stopped".to_string())?,
                Target::Remote { tx, port } => {
                    let frame = match o.msg {
                        StreamMsg::Batch(b) => DataFrame::Batch {
                            records: u32::try_from(b.len()).unwrap_or(u32::MAX),
                            bytes: port.encode(&b).map_err(|e| e.to_string())?,
                        },
                        StreamMsg::Watermark(w) => DataFrame::Watermark(w),
                        StreamMsg::Idle => DataFrame::Idle,
                        StreamMsg::End => DataFrame::End,
                        StreamMsg::Barrier(c) => DataFrame::Barrier(c),
                    };
                    tx.send(frame)
                        .await
                        .map_err(|_| "an outgoing edge to another worker closed".to_string())?;
                }
            }
        }
        Ok(())
    }
}

/// Opens the QUIC stream of one outgoing edge on `conn` and spawns its writer (on the
/// current arbiter, the worker's network thread). Returns the sender that the
/// instance's [`Target::Remote`] feeds, and the writer task.
pub(crate) async fn open(
    conn: &Connection,
    open: EdgeOpen,
    worker_id: &str,
    cluster: &str,
    peer: String,
    credits: usize,
    events: mpsc::UnboundedSender<JobEvent>,
) -> Result<(mpsc::Sender<DataFrame>, tokio::task::JoinHandle<()>), String> {
    let (mut fsend, frecv) = open_service_stream(
        conn,
        PeerRole::Worker,
        Some(worker_id.to_owned()),
        cluster,
        STREAM_SERVICE,
    )
    .await
    .map_err(|e| format!("opening an edge to {peer}: {e}"))?;
    fsend
        .send(&StreamOpen::Edge(open))
        .await
        .map_err(|e| format!("opening an edge to {peer}: {e}"))?;
    let (tx, rx) = mpsc::channel(EDGE_FRAMES);
    let limit = u32::try_from(credits).unwrap_or(u32::MAX);
    let task = actix_rt::spawn(write(fsend, frecv, rx, events, peer, limit));
    Ok((tx, task))
}

/// Writes one outgoing edge's frames to its QUIC stream. At most `limit` records are in
/// transit: a batch waits for the receiver's `Credit` frames, which it sends once the
/// records are in the receiving instance's own bounded queue. So a cross-node edge holds
/// at most `2 × edge_credits` records whatever the QUIC windows are.
async fn write(
    mut send: FramedSend,
    mut recv: FramedRecv,
    mut rx: mpsc::Receiver<DataFrame>,
    events: mpsc::UnboundedSender<JobEvent>,
    peer: String,
    limit: u32,
) {
    let mut credits = limit;
    while let Some(frame) = rx.recv().await {
        let end = matches!(frame, DataFrame::End);
        let cost = match &frame {
            DataFrame::Batch { records, .. } => (*records).clamp(1, limit),
            _ => 0,
        };
        while credits < cost {
            match recv.recv::<DataFrame>().await {
                Ok(Some(DataFrame::Credit(n))) => credits = credits.saturating_add(n).min(limit),
                Ok(Some(_)) => {
                    let _ = events.send(JobEvent::Failed(format!(
                        "edge to {peer}: unexpected frame from the receiver"
                    )));
                    return;
                }
                Ok(None) | Err(_) => {
                    let _ = events.send(JobEvent::Failed(format!(
                        "edge to {peer}: the receiver went away"
                    )));
                    return;
                }
            }
        }
        credits -= cost;
        if let Err(e) = send.send(&frame).await {
            let _ = events.send(JobEvent::Failed(format!("edge to {peer}: {e}")));
            return;
        }
        if end {
            let _ = send.finish();
            let _ = events.send(JobEvent::Done(None));
            return;
        }
    }
    // The sending instance stopped without an end: the job is being torn down.
    let _ = send.reset(0);
}

/// Feeds one incoming data edge into the local instance's input channel; stops reading
/// (so QUIC flow control stalls the sender) while that channel has no credit. Batches
/// stay encoded: the receiving operator decodes them on its own thread. `from` names the
/// edge and the sending worker in failure reasons.
pub(crate) async fn read(
    input: CreditSender,
    port: PortType,
    from: String,
    events: mpsc::UnboundedSender<JobEvent>,
    mut send: FramedSend,
    mut recv: FramedRecv,
) {
    let from: Arc<str> = from.into();
    let mut credit_closed = false;
    loop {
        let frame = match recv.recv::<DataFrame>().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                let _ = events.send(JobEvent::Failed(format!("{from}: closed before its end")));
                return;
            }
            Err(e) => {
                let _ = events.send(JobEvent::Failed(format!("{from}: {e}")));
                return;
            }
        };
        let mut grant = 0;
        let (msg, end) = match frame {
            DataFrame::Batch { bytes, records } => {
                grant = records.max(1);
                let batch = EncodedBatch {
                    bytes,
                    records,
                    port,
                    from: from.clone(),
                };
                (Inbound::Encoded(batch), false)
            }
            DataFrame::Watermark(w) => (Inbound::Decoded(StreamMsg::Watermark(w)), false),
            DataFrame::Idle => (Inbound::Decoded(StreamMsg::Idle), false),
            DataFrame::End => (Inbound::Decoded(StreamMsg::End), true),
            DataFrame::Barrier(c) => (Inbound::Decoded(StreamMsg::Barrier(c)), false),
            DataFrame::Credit(_) => {
                let _ = events.send(JobEvent::Failed(format!(
                    "{from}: credit frame from a sender"
                )));
                return;
            }
        };
        if input.send(msg).await.is_err() {
            return;
        }
        // The sender stops reading credits once it has sent its end (and may have
        // dropped its half already): a failed grant is not an error.
        if grant > 0 && !credit_closed && send.send(&DataFrame::Credit(grant)).await.is_err() {
            credit_closed = true;
        }
        if end {
            return;
        }
    }
}
