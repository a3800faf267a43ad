//! Shared helpers: certificate directories, an echo server that reports what it sees.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringflow_net::{certs, Connection, Endpoint, NetConfig, NetError, Role, TlsIdentity};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Upper bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub seq: u32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub seq: u32,
    pub text: String,
    /// What the server's `peer_is_node` said about the sender.
    pub from_node: bool,
}

/// What the echo server observed.
#[derive(Debug)]
pub enum Event {
    Accepted { peer_is_node: bool },
    HandshakeFailed(NetError),
    StreamError(NetError),
}

pub fn cfg() -> NetConfig {
    NetConfig {
        idle_timeout: Duration::from_secs(5),
        keep_alive: Duration::from_secs(1),
        ..NetConfig::default()
    }
}

/// A CA in `dir` with node certs `n1`, `n2` and client cert `c1`.
pub fn cluster(dir: &Path, name: &str) {
    certs::init_ca(dir, name, false).expect("init_ca");
    certs::issue(dir, "n1", Role::Node, &[]).expect("issue n1");
    certs::issue(
        dir,
        "n2",
        Role::Node,
        &["10.0.0.7".into(), "node2.example".into()],
    )
    .expect("issue n2");
    certs::issue(dir, "c1", Role::Client, &[]).expect("issue c1");
}

pub fn identity(dir: &Path, name: &str) -> TlsIdentity {
    TlsIdentity::from_dir(dir, name).expect("load identity")
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

pub async fn timed<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("test step timed out")
}

/// Starts an echo server: every bidi stream answers each `Ping` with a `Pong`.
/// Handshake failures and stream errors are reported, never fatal to the server.
pub fn echo_server(id: &TlsIdentity) -> (Endpoint, SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let ep = Endpoint::bind(localhost(), id, &cfg()).expect("bind");
    let addr = ep.local_addr().expect("local_addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let server = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                match incoming.accept().await {
                    Ok(conn) => {
                        let _ = tx.send(Event::Accepted {
                            peer_is_node: conn.peer_is_node(),
                        });
                        serve_conn(conn, tx).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Event::HandshakeFailed(e));
                    }
                }
            });
        }
    });
    (ep, addr, rx)
}

async fn serve_conn(conn: Connection, tx: mpsc::UnboundedSender<Event>) {
    while let Ok(Some((mut send, mut recv))) = conn.accept_bi().await {
        let tx = tx.clone();
        let from_node = conn.peer_is_node();
        tokio::spawn(async move {
            loop {
                match recv.recv::<Ping>().await {
                    Ok(Some(p)) => {
                        let pong = Pong {
                            seq: p.seq,
                            text: p.text.to_uppercase(),
                            from_node,
                        };
                        if send.send(&pong).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => {
                        let _ = send.finish();
                        break;
                    }
                    Err(e) => {
                        // Report only; this test server keeps the connection open so
                        // that tests can show other streams are unaffected.
                        let _ = tx.send(Event::StreamError(e));
                        break;
                    }
                }
            }
        });
    }
}

/// One Ping / Pong round trip on a fresh stream.
pub async fn round_trip(conn: &Connection, seq: u32) -> Result<Option<Pong>, NetError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.send(&Ping {
        seq,
        text: format!("hello {seq}"),
    })
    .await?;
    let pong = recv.recv::<Pong>().await?;
    send.finish()?;
    Ok(pong)
}

/// Next event that is not `Accepted`.
pub async fn next_problem(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    loop {
        match timed(rx.recv()).await.expect("server event channel closed") {
            Event::Accepted { .. } => continue,
            other => return other,
        }
    }
}
