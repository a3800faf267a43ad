//! The versioned handshake that opens every stream.
//!
//! The opener sends a [`Hello`] with the range of protocol versions it speaks; the
//! acceptor answers with a [`HelloReply`] naming the highest common version, or a
//! rejection with a reason. Both sides then speak that version until the stream ends.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// Magic bytes that start every hello, so that a stray client is recognised at once.
pub const MAGIC: [u8; 4] = *b"RFLW";

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// What the opener of a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRole {
    /// A worker node (control session with the coordinator, or data traffic with peers).
    Worker,
    /// The coordinator.
    Coordinator,
    /// A client: the CLI or an application using the client library.
    Client,
}

/// First frame of every stream, sent by the side that opened it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`MAGIC`].
    pub magic: [u8; 4],
    /// Oldest version the opener speaks.
    pub min_version: u16,
    /// Newest version the opener speaks.
    pub max_version: u16,
    /// What the opener is.
    pub role: PeerRole,
    /// The opener's node id, if it has one.
    pub node_id: Option<String>,
    /// Name of the cluster the opener believes it talks to (guards against cross-wiring).
    pub cluster: String,
    /// The service the stream is for: empty for the control plane, else a data-plane
    /// service hosted by workers (e.g. `"dht"`).
    #[serde(default)]
    pub service: String,
}

/// Answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Accepted; both sides now speak `version`.
    Accepted {
        /// The negotiated version.
        version: u16,
        /// The acceptor's role.
        role: PeerRole,
        /// The acceptor's node id, if any.
        node_id: Option<String>,
    },
    /// Refused, with the reason.
    Rejected {
        /// Why the hello was refused.
        reason: String,
    },
}

impl Hello {
    /// A hello for this build's supported versions.
    pub fn new(role: PeerRole, node_id: Option<String>, cluster: impl Into<String>) -> Self {
        Self {
            magic: MAGIC,
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            role,
            node_id,
            cluster: cluster.into(),
            service: String::new(),
        }
    }

    /// The same hello, for a data-plane service's stream.
    pub fn for_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Chooses the version to speak, given what the acceptor supports and its cluster name.
    pub fn negotiate(
        &self,
        supported: RangeInclusive<u16>,
        cluster: &str,
    ) -> Result<u16, ProtoError> {
        if self.magic != MAGIC {
            return Err(ProtoError::Handshake(format!(
                "bad magic {:02x?}",
                self.magic
            )));
        }
        if self.min_version > self.max_version {
            return Err(ProtoError::Handshake(format!(
                "empty version range {}..={}",
                self.min_version, self.max_version
            )));
        }
        if self.cluster != cluster {
            return Err(ProtoError::Handshake(format!(
                "peer belongs to cluster {:?}, this node to {cluster:?}",
                self.cluster
            )));
        }
        let high = self.max_version.min(*supported.end());
        let low = self.min_version.max(*supported.start());
        if high < low {
            return Err(ProtoError::Handshake(format!(
                "no common protocol version: peer speaks {}..={}, this node {}..={}",
                self.min_version,
                self.max_version,
                supported.start(),
                supported.end()
            )));
        }
        Ok(high)
    }

    /// The acceptor's side of the handshake: the reply to send, and the version if accepted.
    pub fn answer(
        &self,
        role: PeerRole,
        node_id: Option<String>,
        cluster: &str,
    ) -> (HelloReply, Result<u16, ProtoError>) {
        match self.negotiate(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION, cluster) {
            Ok(version) => (
                HelloReply::Accepted {
                    version,
                    role,
                    node_id,
                },
                Ok(version),
            ),
            Err(e) => (
                HelloReply::Rejected {
                    reason: e.to_string(),
                },
                Err(e),
            ),
        }
    }
}

impl HelloReply {
    /// The opener's view of the reply: the negotiated version or the acceptor's reason.
    pub fn into_version(self) -> Result<u16, ProtoError> {
        match self {
            HelloReply::Accepted { version, .. }
                if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) =>
            {
                Ok(version)
            }
            HelloReply::Accepted { version, .. } => Err(ProtoError::Handshake(format!(
                "peer chose unsupported version {version}"
            ))),
            HelloReply::Rejected { reason } => {
                Err(ProtoError::Handshake(format!("rejected by peer: {reason}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_build_agrees_on_newest() {
        let h = Hello::new(PeerRole::Worker, Some("w1".into()), "c");
        let (reply, v) = h.answer(PeerRole::Coordinator, None, "c");
        assert_eq!(v, Ok(PROTOCOL_VERSION));
        assert_eq!(reply.into_version(), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn picks_highest_common_version() {
        let mut h = Hello::new(PeerRole::Client, None, "c");
        h.min_version = 1;
        h.max_version = 9;
        assert_eq!(h.negotiate(1..=3, "c"), Ok(3));
        h.max_version = 2;
        assert_eq!(h.negotiate(1..=3, "c"), Ok(2));
    }

    #[test]
    fn disjoint_versions_rejected() {
        let mut h = Hello::new(PeerRole::Client, None, "c");
        h.min_version = 5;
        h.max_version = 7;
        let (reply, v) = h.answer(PeerRole::Coordinator, None, "c");
        assert!(v.is_err());
        assert!(matches!(reply, HelloReply::Rejected { .. }));
        assert!(reply.into_version().is_err());
    }

    #[test]
    fn bad_magic_and_inverted_range_and_wrong_cluster_rejected() {
        let mut h = Hello::new(PeerRole::Client, None, "c");
        h.magic = *b"HTTP";
        assert!(h.negotiate(1..=1, "c").is_err());
        let mut h = Hello::new(PeerRole::Client, None, "c");
        h.min_version = 3;
        h.max_version = 1;
        assert!(h.negotiate(1..=5, "c").is_err());
        let h = Hello::new(PeerRole::Client, None, "other");
        assert!(h.negotiate(1..=1, "c").is_err());
    }

    #[test]
    fn accepted_with_unknown_version_is_an_error() {
        let r = HelloReply::Accepted {
            version: 999,
            role: PeerRole::Coordinator,
            node_id: None,
        };
        assert!(r.into_version().is_err());
    }
}
