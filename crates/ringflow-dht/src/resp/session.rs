//! State of a gateway's connections: what they share, and each connection's own.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use ringflow_resp::ProtoVersion;

/// State shared by the connections of one gateway.
pub(crate) struct Shared {
    /// When the gateway started (`INFO`'s uptime).
    pub(crate) started: Instant,
    /// The id the next connection gets.
    pub(crate) next_id: Cell<u64>,
    /// Connections open now (served ones; refused ones are not counted).
    pub(crate) clients: Cell<usize>,
    /// Connections refused because `max_clients` were connected (`INFO stats`).
    pub(crate) rejected: Cell<u64>,
    /// Refused connections still being answered and closed.
    pub(crate) refusing: Cell<usize>,
}

impl Shared {
    /// State for a gateway starting now.
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            next_id: Cell::new(1),
            clients: Cell::new(0),
            rejected: Cell::new(0),
            refusing: Cell::new(0),
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }
}

/// Counts a connection while it lives.
pub(crate) struct ClientGuard(Rc<Shared>);

impl ClientGuard {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        shared.clients.set(shared.clients.get() + 1);
        Self(shared)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.set(self.0.clients.get().saturating_sub(1));
    }
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Session {
    /// `CLIENT ID`.
    pub(crate) id: u64,
    /// The protocol replies are encoded in (RESP2 until `HELLO 3`).
    pub(crate) proto: ProtoVersion,
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<String>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(crate) lib_name: Option<String>,
    /// `CLIENT SETINFO LIB-VER`.
    pub(crate) lib_ver: Option<String>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The address the client connected to.
    pub(crate) local: Option<SocketAddr>,
    /// When the connection was accepted.
    pub(crate) since: Instant,
}

impl Session {
    pub(crate) fn new(id: u64, peer: SocketAddr, local: Option<SocketAddr>) -> Self {
        Self {
            id,
            proto: ProtoVersion::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            peer,
            local,
            since: Instant::now(),
        }
    }
}
