//! Per-peer traffic counters, exported through the process's metrics registry.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ringflow_metrics::{Counter, CounterVec};

/// Label of every peer that authenticated with a client certificate: clients connect
/// from ephemeral ports, and one series per port would grow without bound.
pub(crate) const CLIENT_PEER: &str = "client";

struct Families {
    frames_sent: CounterVec<1>,
    frames_received: CounterVec<1>,
    bytes_sent: CounterVec<1>,
    bytes_received: CounterVec<1>,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| {
        let r = ringflow_metrics::global();
        Families {
            frames_sent: r.counter(
                "ringflow_frames_sent_total",
                "Frames sent on QUIC streams, by peer (remote address of a node; \"client\" for all clients).",
                ["peer"],
            ),
            frames_received: r.counter(
                "ringflow_frames_received_total",
                "Complete frames received on QUIC streams, by peer.",
                ["peer"],
            ),
            bytes_sent: r.counter(
                "ringflow_bytes_sent_total",
                "Bytes written to QUIC streams (frame headers included), by peer.",
                ["peer"],
            ),
            bytes_received: r.counter(
                "ringflow_bytes_received_total",
                "Bytes read from QUIC streams, by peer.",
                ["peer"],
            ),
        }
    })
}

/// The counters of one peer, shared by a connection and its streams.
#[derive(Debug)]
pub(crate) struct PeerTraffic {
    pub frames_sent: Counter,
    pub frames_received: Counter,
    pub bytes_sent: Counter,
    pub bytes_received: Counter,
}

impl PeerTraffic {
    /// The counters of the peer at `remote` (aggregated under [`CLIENT_PEER`] unless the
    /// peer is a node).
    pub(crate) fn of(remote: SocketAddr, peer_is_node: bool) -> Arc<Self> {
        let label = if peer_is_node {
            remote.to_string()
        } else {
            CLIENT_PEER.to_string()
        };
        let f = families();
        Arc::new(Self {
            frames_sent: f.frames_sent.with([&label]),
            frames_received: f.frames_received.with([&label]),
            bytes_sent: f.bytes_sent.with([&label]),
            bytes_received: f.bytes_received.with([&label]),
        })
    }
}
