//! QUIC endpoints and connections with mutual TLS.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::{ConnectionError, EndpointConfig, VarInt};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::certs::chain_is_node;
use crate::framed::{FramedRecv, FramedSend};
use crate::traffic::PeerTraffic;
use crate::{tls, NetConfig, NetError, TlsIdentity, NODE_SERVER_NAME};

/// The ALPN protocol id every ringflow connection negotiates.
pub const ALPN: &[u8] = b"ringflow/1";

/// Close code: normal close.
pub const CLOSE_NORMAL: u32 = 0;
/// Close / stop code: the peer broke the framing protocol.
pub const CLOSE_PROTOCOL_VIOLATION: u32 = 1;
/// Close code: the endpoint is shutting down.
pub const CLOSE_SHUTDOWN: u32 = 2;

/// A human-readable description of why a connection ended.
pub(crate) fn describe_connection_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            format!("closed by peer (code {}): {reason}", c.error_code)
        }
        ConnectionError::LocallyClosed => "closed locally".to_owned(),
        other => other.to_string(),
    }
}

/// State shared by an endpoint and its connections.
#[derive(Debug)]
struct Shared {
    max_frame: usize,
    timeout: Duration,
    roots: Arc<RootCertStore>,
}

fn runtime() -> Result<Arc<dyn quinn::Runtime>, NetError> {
    tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
    Ok(Arc::new(quinn::TokioRuntime))
}

fn make_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    client: quinn::ClientConfig,
    runtime: Arc<dyn quinn::Runtime>,
) -> Result<quinn::Endpoint, NetError> {
    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
    let mut endpoint = quinn::Endpoint::new(EndpointConfig::default(), server, socket, runtime)
        .map_err(|source| NetError::Bind { addr, source })?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// A QUIC endpoint on one UDP socket, speaking mutual TLS under the cluster CA.
///
/// Cheap to clone; clones share the socket. quinn drives the endpoint and its
/// connections on the tokio runtime that created it: give it a runtime (or actix
/// Arbiter) of its own and keep CPU-heavy work elsewhere, or ACKs and timers starve.
#[derive(Clone)]
pub struct Endpoint {
    /// The bound endpoint; for a client-only endpoint, the IPv4 one.
    primary: quinn::Endpoint,
    /// Client-only endpoints: the IPv6 socket, if the host has IPv6.
    ipv6: Option<quinn::Endpoint>,
    accepts: bool,
    shared: Arc<Shared>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.primary.local_addr().ok())
            .field("accepts", &self.accepts)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds `addr` for accepting and making connections, as a node.
    ///
    /// Incoming connections must present a client certificate issued by the cluster CA;
    /// outgoing ones verify the server against the CA as [`NODE_SERVER_NAME`]. The
    /// identity must be a node certificate ([`TlsIdentity::is_node`]). Must be called
    /// inside a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: &TlsIdentity,
        cfg: &NetConfig,
    ) -> Result<Endpoint, NetError> {
        if !identity.is_node() {
            return Err(NetError::Tls(
                "Endpoint::bind needs a node certificate (issued with Role::Node)".into(),
            ));
        }
        let runtime = runtime()?;
        let transport = Arc::new(cfg.transport()?);
        let server = tls::server_config(identity, transport.clone())?;
        let client = tls::client_config(identity, transport)?;
        let primary = make_endpoint(addr, Some(server), client, runtime)?;
        Ok(Endpoint {
            primary,
            ipv6: None,
            accepts: true,
            shared: Self::shared(identity, cfg),
        })
    }

    /// A connect-only endpoint (e.g. for the CLI), with any identity (node or client).
    ///
    /// Binds `0.0.0.0:0`, and `[::]:0` if the host supports IPv6, so that each
    /// connection leaves from a socket of the target's address family.
    /// [`Endpoint::accept`] returns `None` at once. Must be called inside a tokio runtime.
    pub fn client(identity: &TlsIdentity, cfg: &NetConfig) -> Result<Endpoint, NetError> {
        let runtime = runtime()?;
        let transport = Arc::new(cfg.transport()?);
        let client = tls::client_config(identity, transport)?;
        let primary = make_endpoint(
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            None,
            client.clone(),
            runtime.clone(),
        )?;
        let ipv6 = match make_endpoint((Ipv6Addr::UNSPECIFIED, 0).into(), None, client, runtime) {
            Ok(ep) => Some(ep),
            Err(e) => {
                tracing::debug!(error = %e, "no IPv6 client socket");
                None
            }
        };
        Ok(Endpoint {
            primary,
            ipv6,
            accepts: false,
            shared: Self::shared(identity, cfg),
        })
    }

    fn shared(identity: &TlsIdentity, cfg: &NetConfig) -> Arc<Shared> {
        Arc::new(Shared {
            max_frame: cfg.max_frame,
            timeout: cfg.idle_timeout,
            roots: identity.roots.clone(),
        })
    }

    /// The local socket address (for a client-only endpoint, of its IPv4 socket).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.primary.local_addr().map_err(NetError::Socket)
    }

    /// Waits for the next incoming connection attempt; `None` once the endpoint is
    /// closed, and at once for a client-only endpoint.
    pub async fn accept(&self) -> Option<Incoming> {
        if !self.accepts {
            return None;
        }
        let inner = self.primary.accept().await?;
        Some(Incoming {
            inner,
            shared: self.shared.clone(),
        })
    }

    /// Connects to the node at `addr`, verifying it as [`NODE_SERVER_NAME`] under the
    /// cluster CA; bounded by [`NetConfig::idle_timeout`].
    ///
    /// In TLS 1.3 the server checks the client certificate after the client considers
    /// the handshake done: a node that refuses this endpoint's certificate makes the
    /// connection fail on first use rather than here.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connection, NetError> {
        let endpoint = match (&self.ipv6, addr) {
            (Some(v6), SocketAddr::V6(_)) => v6,
            (None, SocketAddr::V6(_)) if !self.accepts => {
                return Err(NetError::Connect {
                    addr,
                    reason: "this host has no IPv6 client socket".into(),
                })
            }
            _ => &self.primary,
        };
        let connecting =
            endpoint
                .connect(addr, NODE_SERVER_NAME)
                .map_err(|e| NetError::Connect {
                    addr,
                    reason: e.to_string(),
                })?;
        finish_handshake(connecting, addr, &self.shared, "connected").await
    }

    /// Closes every connection and the endpoint, then waits (bounded by
    /// [`NetConfig::idle_timeout`]) until peers were told. Pending accepts return `None`.
    pub async fn shutdown(&self) {
        let endpoints = std::iter::once(&self.primary).chain(self.ipv6.as_ref());
        for ep in endpoints.clone() {
            ep.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"endpoint shutdown");
        }
        let wait = async {
            for ep in endpoints {
                ep.wait_idle().await;
            }
        };
        if tokio::time::timeout(self.shared.timeout, wait)
            .await
            .is_err()
        {
            tracing::debug!("endpoint shutdown: wait_idle timed out");
        }
    }

    /// Number of connections currently open on this endpoint.
    pub fn open_connections(&self) -> usize {
        self.primary.open_connections() + self.ipv6.as_ref().map_or(0, |e| e.open_connections())
    }
}

/// An incoming connection attempt, not yet handshaken.
#[derive(Debug)]
pub struct Incoming {
    inner: quinn::Incoming,
    shared: Arc<Shared>,
}

impl Incoming {
    /// The peer's address (not yet authenticated).
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// Runs the handshake; bounded by [`NetConfig::idle_timeout`].
    ///
    /// Fails for this connection only, e.g. when the peer has no certificate or one
    /// from another CA; the endpoint keeps accepting.
    pub async fn accept(self) -> Result<Connection, NetError> {
        let addr = self.inner.remote_address();
        let connecting = self.inner.accept().map_err(|e| NetError::Handshake {
            addr,
            reason: describe_connection_error(&e),
        })?;
        finish_handshake(connecting, addr, &self.shared, "accepted").await
    }

    /// Refuses the attempt without a handshake.
    pub fn refuse(self) {
        self.inner.refuse();
    }
}

/// An established, mutually authenticated connection. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: quinn::Connection,
    max_frame: usize,
    peer_is_node: bool,
    traffic: Arc<PeerTraffic>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.stable_id())
            .field("remote", &self.inner.remote_address())
            .field("peer_is_node", &self.peer_is_node)
            .finish()
    }
}

impl Connection {
    fn new(inner: quinn::Connection, shared: &Shared) -> Self {
        let peer_is_node = inner
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .is_some_and(|chain| chain_is_node(&shared.roots, &chain));
        let traffic = PeerTraffic::of(inner.remote_address(), peer_is_node);
        Self {
            inner,
            max_frame: shared.max_frame,
            peer_is_node,
            traffic,
        }
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// True when the peer authenticated with a node certificate: valid under the
    /// cluster CA for server authentication as [`NODE_SERVER_NAME`]. False for
    /// client certificates.
    pub fn peer_is_node(&self) -> bool {
        self.peer_is_node
    }

    /// True when the peer's certificate (already verified under the cluster CA by the TLS
    /// handshake) is valid for the DNS name `name`: binds an identity such as a worker id
    /// to the certificate that presents it.
    pub fn peer_has_name(&self, name: &str) -> bool {
        let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.to_string()) else {
            return false;
        };
        self.inner
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| {
                let ee = chain.first()?;
                let parsed = rustls::server::ParsedCertificate::try_from(ee).ok()?;
                Some(rustls::client::verify_server_name(&parsed, &server_name).is_ok())
            })
            .unwrap_or(false)
    }

    /// An id unique among this process's live connections.
    pub fn stable_id(&self) -> usize {
        self.inner.stable_id()
    }

    /// Opens a bidirectional framed stream.
    ///
    /// Waits while the peer's stream limit is reached. The peer only learns of the
    /// stream (its [`Connection::accept_bi`] returns) once the first frame is sent.
    pub async fn open_bi(&self) -> Result<(FramedSend, FramedRecv), NetError> {
        let (send, recv) = self.inner.open_bi().await.map_err(lost)?;
        Ok((
            FramedSend::new(send, self.max_frame, self.traffic.clone()),
            FramedRecv::new(recv, self.max_frame, self.traffic.clone()),
        ))
    }

    /// Waits for the peer to open a bidirectional stream; `Ok(None)` when the
    /// connection was closed deliberately (by either side).
    pub async fn accept_bi(&self) -> Result<Option<(FramedSend, FramedRecv)>, NetError> {
        match self.inner.accept_bi().await {
            Ok((send, recv)) => Ok(Some((
                FramedSend::new(send, self.max_frame, self.traffic.clone()),
                FramedRecv::new(recv, self.max_frame, self.traffic.clone()),
            ))),
            Err(e) if closed_cleanly(&e) => Ok(None),
            Err(e) => Err(lost(e)),
        }
    }

    /// Opens a unidirectional framed stream (one per data edge is the intended use).
    ///
    /// Like [`Connection::open_bi`], the peer learns of it with the first frame.
    pub async fn open_uni(&self) -> Result<FramedSend, NetError> {
        let send = self.inner.open_uni().await.map_err(lost)?;
        Ok(FramedSend::new(send, self.max_frame, self.traffic.clone()))
    }

    /// Waits for the peer to open a unidirectional stream; `Ok(None)` when the
    /// connection was closed deliberately (by either side).
    pub async fn accept_uni(&self) -> Result<Option<FramedRecv>, NetError> {
        match self.inner.accept_uni().await {
            Ok(recv) => Ok(Some(FramedRecv::new(
                recv,
                self.max_frame,
                self.traffic.clone(),
            ))),
            Err(e) if closed_cleanly(&e) => Ok(None),
            Err(e) => Err(lost(e)),
        }
    }

    /// Closes the connection at once with an application `code` and `reason` (at most
    /// a few hundred bytes are sent); unfinished streams are abandoned.
    pub fn close(&self, code: u32, reason: &str) {
        self.inner.close(VarInt::from_u32(code), reason.as_bytes());
    }

    /// Waits until the connection is closed and returns why.
    pub async fn closed(&self) -> String {
        describe_connection_error(&self.inner.closed().await)
    }

    /// Why the connection closed, or `None` while it is open.
    pub fn close_reason(&self) -> Option<String> {
        self.inner
            .close_reason()
            .map(|e| describe_connection_error(&e))
    }

    /// The current round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.inner.rtt()
    }
}

fn closed_cleanly(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed
    )
}

fn lost(e: ConnectionError) -> NetError {
    NetError::ConnectionLost(describe_connection_error(&e))
}

/// Completes a TLS handshake (either side) within the idle timeout.
async fn finish_handshake(
    connecting: quinn::Connecting,
    addr: SocketAddr,
    shared: &Shared,
    what: &'static str,
) -> Result<Connection, NetError> {
    let after = shared.timeout;
    let conn = tokio::time::timeout(after, connecting)
        .await
        .map_err(|_| NetError::Timeout { addr, after })?
        .map_err(|e| NetError::Handshake {
            addr,
            reason: describe_connection_error(&e),
        })?;
    tracing::debug!(%addr, id = conn.stable_id(), "{what}");
    Ok(Connection::new(conn, shared))
}
