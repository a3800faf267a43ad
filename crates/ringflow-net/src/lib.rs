//! QUIC transport of ringflow: the only crate that touches quinn, rustls and rcgen.
//!
//! It manages the cluster CA and the node / client certificates it issues ([`certs`]),
//! runs QUIC endpoints with mutual TLS under that CA ([`Endpoint`], [`Connection`]), and
//! carries MessagePack messages over length-prefixed frames on QUIC streams
//! ([`FramedSend`], [`FramedRecv`]) using the sans-IO codec of `ringflow-proto`.
//!
//! Framed streams count frames and bytes per peer in the process's metrics registry
//! (`ringflow_{frames,bytes}_{sent,received}_total{peer}`, see `ringflow-metrics`): the
//! peer is the remote address of a node, or `client` for every client-certificate peer.
//!
//! # Trust model
//!
//! Every party holds a certificate issued by the cluster CA. Servers require a client
//! certificate (rustls `WebPkiClientVerifier`); clients verify servers as the fixed name
//! [`NODE_SERVER_NAME`], carried by every node certificate, so nodes can be reached at
//! any address. [`Connection::peer_is_node`] tells nodes from clients (CLI, apps).
//!
//! # Crypto provider
//!
//! All rustls configurations are built with `builder_with_provider` and the ring
//! provider; no process-wide default provider is installed or needed.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(dir: &std::path::Path) -> Result<(), ringflow_net::NetError> {
//! use ringflow_net::{certs, Endpoint, NetConfig, Role, TlsIdentity};
//! certs::init_ca(dir, "demo", false)?;
//! certs::issue(dir, "node1", Role::Node, &[])?;
//! let id = TlsIdentity::from_dir(dir, "node1")?;
//! let ep = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &id, &NetConfig::default())?;
//! let conn = ep.connect("127.0.0.1:7100".parse().unwrap()).await?;
//! let (mut send, mut recv) = conn.open_bi().await?;
//! send.send(&"ping").await?;
//! let reply: Option<String> = recv.recv().await?;
//! # let _ = reply; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod certs;
mod config;
mod endpoint;
mod error;
mod framed;
mod tls;
mod traffic;

pub use certs::{
    init_ca, issue, CaFiles, IssuedFiles, Role, TlsIdentity, CLIENT_SAN, NODE_SERVER_NAME,
};
pub use config::NetConfig;
pub(crate) use endpoint::describe_connection_error;
pub use endpoint::{
    Connection, Endpoint, Incoming, ALPN, CLOSE_NORMAL, CLOSE_PROTOCOL_VIOLATION, CLOSE_SHUTDOWN,
};
pub use error::NetError;
pub use framed::{FramedRecv, FramedSend};
