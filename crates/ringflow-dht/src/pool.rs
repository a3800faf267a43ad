//! Reusable request/response streams to peers, one QUIC connection per peer.
//!
//! A stream is handshaken once and then carries one request at a time; idle streams go
//! back to the pool, so a request costs one round trip. Connections that fail are dropped
//! and reopened on the next call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use ringflow_cluster::open_service_stream;
use ringflow_net::{Connection, Endpoint, FramedRecv, FramedSend};
use ringflow_proto::PeerRole;

use crate::wire::{DhtRequest, DhtResponse, SERVICE};
use crate::DhtError;

type Stream = (FramedSend, FramedRecv);

/// Most idle streams kept per peer.
const MAX_IDLE: usize = 64;

/// A pool of DHT streams to peers.
pub struct StreamPool {
    endpoint: Endpoint,
    role: PeerRole,
    node_id: Option<String>,
    cluster: String,
    timeout: Duration,
    conns: Mutex<HashMap<SocketAddr, Connection>>,
    idle: Mutex<HashMap<SocketAddr, Vec<Stream>>>,
}

impl StreamPool {
    /// A pool that opens connections from `endpoint` as `role`.
    pub fn new(
        endpoint: Endpoint,
        role: PeerRole,
        node_id: Option<String>,
        cluster: String,
        timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            role,
            node_id,
            cluster,
            timeout,
            conns: Mutex::new(HashMap::new()),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint connections leave from.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn connection(&self, addr: SocketAddr) -> Result<Connection, DhtError> {
        if let Some(c) = self.conns.lock().map_err(poisoned)?.get(&addr) {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let conn = self
            .endpoint
            .connect(addr)
            .await
            .map_err(|e| DhtError::Peer(e.to_string()))?;
        self.conns
            .lock()
            .map_err(poisoned)?
            .insert(addr, conn.clone());
        Ok(conn)
    }

    async fn stream(&self, addr: SocketAddr) -> Result<Stream, DhtError> {
        if let Some(s) = self
            .idle
            .lock()
            .map_err(poisoned)?
            .get_mut(&addr)
            .and_then(Vec::pop)
        {
            return Ok(s);
        }
        let conn = self.connection(addr).await?;
        open_service_stream(
            &conn,
            self.role,
            self.node_id.clone(),
            &self.cluster,
            SERVICE,
        )
        .await
        .map_err(|e| DhtError::Peer(e.to_string()))
    }

    fn give_back(&self, addr: SocketAddr, s: Stream) {
        if let Ok(mut idle) = self.idle.lock() {
            let v = idle.entry(addr).or_default();
            if v.len() < MAX_IDLE {
                v.push(s);
            }
        }
    }

    fn forget(&self, addr: SocketAddr) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&addr);
        }
        if let Ok(mut i) = self.idle.lock() {
            i.remove(&addr);
        }
    }

    /// One attempt. `Err((e, true))` means the request never left (safe to retry);
    /// after it was sent, a retry could apply a write twice.
    async fn call_once(
        &self,
        addr: SocketAddr,
        req: &DhtRequest,
    ) -> Result<DhtResponse, (DhtError, bool)> {
        let (mut send, mut recv) = self.stream(addr).await.map_err(|e| (e, true))?;
        send.send(req)
            .await
            .map_err(|e| (DhtError::Peer(e.to_string()), true))?;
        match recv.recv::<DhtResponse>().await {
            Ok(Some(r)) => {
                self.give_back(addr, (send, recv));
                Ok(r)
            }
            Ok(None) => Err((DhtError::Peer(format!("{addr} closed the stream")), false)),
            Err(e) => Err((DhtError::Peer(e.to_string()), false)),
        }
    }

    /// Sends `req` to `addr` and waits for the answer (one retry on a fresh connection if a
    /// pooled one turned out dead), within the pool's timeout.
    pub async fn call(&self, addr: SocketAddr, req: &DhtRequest) -> Result<DhtResponse, DhtError> {
        let attempt = async {
            match self.call_once(addr, req).await {
                Ok(r) => Ok(r),
                Err((first, true)) => {
                    tracing::debug!(%addr, error = %first, "retrying on a fresh connection");
                    self.forget(addr);
                    self.call_once(addr, req).await.map_err(|(e, _)| e)
                }
                Err((e, false)) => Err(e),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => {
                if r.is_err() {
                    self.forget(addr);
                }
                r
            }
            Err(_) => {
                self.forget(addr);
                Err(DhtError::Peer(format!(
                    "{addr} did not answer within {:?}",
                    self.timeout
                )))
            }
        }
    }

    /// Closes every connection.
    pub fn close(&self) {
        if let Ok(mut c) = self.conns.lock() {
            for conn in c.values() {
                conn.close(0, "closing");
            }
            c.clear();
        }
        if let Ok(mut i) = self.idle.lock() {
            i.clear();
        }
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> DhtError {
    DhtError::Closed("stream pool lock poisoned".into())
}
