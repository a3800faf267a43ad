//! The network plumbing shared by coordinator and worker: running work on the network
//! Arbiter, the accept loop, and per-stream handshakes.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend, NetError};
use ringflow_proto::{ControlMsg, ErrorCode, ErrorReply, Hello, HelloReply, PeerRole};
use tokio::sync::{mpsc, oneshot, watch};

use crate::ClusterError;

/// Runs `f` on `arbiter` (its own thread and event loop) and returns its result.
pub(crate) async fn on_arbiter<F, Fut, T>(
    arbiter: &actix_rt::ArbiterHandle,
    f: F,
) -> Result<T, ClusterError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let sent = arbiter.spawn_fn(move || {
        actix_rt::spawn(async move {
            let _ = tx.send(f().await);
        });
    });
    if !sent {
        return Err(ClusterError::ShuttingDown);
    }
    rx.await.map_err(|_| ClusterError::ShuttingDown)
}

/// What a node does with one accepted, handshaken stream.
pub(crate) trait StreamHandler: 'static {
    /// Handles the stream until it ends. Errors that are protocol violations close the
    /// whole connection; the node goes on serving everyone else.
    fn handle(
        self: Rc<Self>,
        conn: Connection,
        hello: Hello,
        send: FramedSend,
        recv: FramedRecv,
    ) -> impl Future<Output = Result<(), ClusterError>>;
}

/// Accepts connections until `shutdown` flips, handing each stream to `handler` after
/// the versioned handshake. Must run on the endpoint's arbiter.
pub(crate) async fn accept_loop<H: StreamHandler>(
    endpoint: Endpoint,
    handler: Rc<H>,
    role: PeerRole,
    node_id: Option<String>,
    cluster: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = shutdown.changed() => break,
        };
        let Some(incoming) = incoming else { break };
        let handler = handler.clone();
        let node_id = node_id.clone();
        let cluster = cluster.clone();
        actix_rt::spawn(async move {
            let conn = match incoming.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "refused an incoming connection");
                    return;
                }
            };
            tracing::debug!(peer = %conn.remote_addr(), "connection accepted");
            loop {
                let (send, recv) = match conn.accept_bi().await {
                    Ok(Some(s)) => s,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(peer = %conn.remote_addr(), error = %e, "connection ended");
                        break;
                    }
                };
                let handler = handler.clone();
                let conn = conn.clone();
                let node_id = node_id.clone();
                let cluster = cluster.clone();
                actix_rt::spawn(async move {
                    let peer = conn.remote_addr();
                    let result = async {
                        let (hello, send, recv) =
                            answer_hello(send, recv, role, node_id, &cluster).await?;
                        handler.handle(conn.clone(), hello, send, recv).await
                    }
                    .await;
                    if let Err(e) = result {
                        if is_violation(&e) {
                            tracing::error!(%peer, error = %e, "protocol violation: closing the connection");
                            conn.close(
                                ringflow_net::CLOSE_PROTOCOL_VIOLATION,
                                "protocol violation",
                            );
                        } else if matches!(&e, ClusterError::Net(n) if n.is_connection_lost()) {
                            tracing::debug!(%peer, error = %e, "stream ended");
                        } else {
                            tracing::warn!(%peer, error = %e, "stream failed");
                        }
                    }
                });
            }
        });
    }
    endpoint.shutdown().await;
}

/// Whether an error means the peer broke the protocol (as opposed to going away).
pub(crate) fn is_violation(e: &ClusterError) -> bool {
    match e {
        // A refused handshake was answered with its reason; the stream just ends.
        ClusterError::Proto(ringflow_proto::ProtoError::Handshake(_)) => false,
        ClusterError::Proto(_) => true,
        ClusterError::Net(n) => n.is_protocol_violation(),
        _ => false,
    }
}

async fn answer_hello(
    mut send: FramedSend,
    mut recv: FramedRecv,
    role: PeerRole,
    node_id: Option<String>,
    cluster: &str,
) -> Result<(Hello, FramedSend, FramedRecv), ClusterError> {
    let hello = tokio::time::timeout(Duration::from_secs(10), recv.recv::<Hello>())
        .await
        .map_err(|_| ClusterError::Timeout("no hello within 10 s".into()))??
        .ok_or_else(|| ClusterError::Unexpected("stream closed before hello".into()))?;
    let (reply, version) = hello.answer(role, node_id, cluster);
    send.send(&reply).await?;
    version?;
    Ok((hello, send, recv))
}

/// Opens a control-plane stream on `conn` and performs the opener's side of the handshake.
pub(crate) async fn open_stream(
    conn: &Connection,
    role: PeerRole,
    node_id: Option<String>,
    cluster: &str,
) -> Result<(FramedSend, FramedRecv), ClusterError> {
    open_service_stream(conn, role, node_id, cluster, "").await
}

/// Opens a stream for `service` (empty: the control plane) and handshakes.
pub async fn open_service_stream(
    conn: &Connection,
    role: PeerRole,
    node_id: Option<String>,
    cluster: &str,
    service: &str,
) -> Result<(FramedSend, FramedRecv), ClusterError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.send(&Hello::new(role, node_id, cluster).for_service(service))
        .await?;
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.recv::<HelloReply>())
        .await
        .map_err(|_| ClusterError::Timeout("no hello reply within 10 s".into()))??
        .ok_or_else(|| ClusterError::Unexpected("stream closed before hello reply".into()))?;
    reply.into_version()?;
    Ok((send, recv))
}

/// Reads frames on a task of their own and hands them over a bounded channel, so that a
/// session can `select!` on incoming messages without cancelling a half-read frame.
/// The channel ends with `Err` on a protocol violation, or simply closes at end of stream.
pub(crate) fn spawn_reader(mut recv: FramedRecv) -> mpsc::Receiver<Result<ControlMsg, NetError>> {
    let (tx, rx) = mpsc::channel(16);
    actix_rt::spawn(async move {
        loop {
            match recv.recv::<ControlMsg>().await {
                Ok(Some(m)) => {
                    if tx.send(Ok(m)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    rx
}

/// An error reply.
pub(crate) fn error_msg(code: ErrorCode, message: impl Into<String>) -> ControlMsg {
    ControlMsg::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

/// Milliseconds elapsed since `origin`: the monotonic clock handed to the sans-IO cores.
pub(crate) fn millis_since(origin: std::time::Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}
