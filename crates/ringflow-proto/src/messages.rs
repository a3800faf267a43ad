//! Control-plane messages between workers, clients and the coordinator.
//!
//! After the handshake, a stream carries [`ControlMsg`] frames. A worker's control
//! session sends `Join` then `Heartbeat`s; the coordinator answers with `Welcome`,
//! `HeartbeatAck`s and pushes a `View` whenever the assignment's epoch changes. A client
//! sends `StatusRequest` and gets `Status`.

use std::collections::BTreeMap;

use ringflow_ring::{Assignment, WorkerId};
use serde::{Deserialize, Serialize};

/// A worker asks to join (or rejoin) the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Stable id of the worker (survives restarts).
    pub id: WorkerId,
    /// Address where the worker accepts QUIC connections from peers.
    pub addr: String,
    /// Capacity weight (>= 1): its share of partitions is proportional to it.
    pub capacity: u32,
    /// The epoch of the newest table the worker knows (0 if none).
    pub known_epoch: u64,
    /// Addresses of the data-plane services it hosts, by name (e.g. `"resp"` for the
    /// Redis-compatible port), published to peers and clients in views.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
}

/// Periodic liveness signal from a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The sender.
    pub id: WorkerId,
    /// Epoch of the table the worker currently acts on.
    pub epoch: u64,
    /// Sequence number, echoed in the ack.
    pub seq: u64,
}

/// Acknowledgement of a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// Echo of [`Heartbeat::seq`].
    pub seq: u64,
    /// The coordinator's current epoch; a worker behind it gets a `View` too.
    pub epoch: u64,
}

/// A member as it appears in a published view: enough for peers to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Worker id.
    pub id: WorkerId,
    /// QUIC address of the worker.
    pub addr: String,
    /// Addresses of the services it hosts, by name.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
}

/// The assignment table with the addresses of its owners: what every worker acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The assignment (it carries the epoch).
    pub assignment: Assignment,
    /// Live members and their addresses.
    pub peers: Vec<PeerInfo>,
    /// Workers an operator declared gone for good (`ringflow forget-worker`): a new
    /// replica does not wait for copies only they held.
    #[serde(default)]
    pub forgotten: Vec<WorkerId>,
}

impl ClusterView {
    /// The epoch of this view.
    pub fn epoch(&self) -> u64 {
        self.assignment.epoch()
    }

    /// The live member `id`, if it is in this view.
    pub fn peer(&self, id: &WorkerId) -> Option<&PeerInfo> {
        self.peers.iter().find(|p| &p.id == id)
    }

    /// Whether `id` is a live member in this view.
    pub fn has_peer(&self, id: &WorkerId) -> bool {
        self.peer(id).is_some()
    }

    /// The QUIC address of the live member `id`, as announced.
    pub fn addr_of(&self, id: &WorkerId) -> Option<&str> {
        self.peer(id).map(|p| p.addr.as_str())
    }

    /// The QUIC address of the live member `id`, parsed; `None` if it is not in this
    /// view or announced an address that does not parse.
    pub fn socket_addr_of(&self, id: &WorkerId) -> Option<std::net::SocketAddr> {
        self.addr_of(id).and_then(|a| a.parse().ok())
    }
}

/// The coordinator's answer to a successful join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Current view, to act on at once.
    pub view: ClusterView,
    /// How often the worker must send heartbeats.
    pub heartbeat_interval_ms: u64,
    /// After how long without a heartbeat the worker is declared dead.
    pub failure_timeout_ms: u64,
    /// How long each heartbeat's answer (and this welcome) lets the worker act as a
    /// primary, counted from when it sent the heartbeat: shorter than the failure timeout.
    /// 0 (an older coordinator): half the failure timeout.
    #[serde(default)]
    pub lease_ms: u64,
}

/// Liveness state of a member as the coordinator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Known from the persisted state after a coordinator restart; not heard from yet.
    Recovering,
    /// Heartbeats arrive in time.
    Alive,
    /// Missed heartbeats for more than half the failure timeout.
    Suspect,
    /// Missed heartbeats for longer than the failure timeout: owns nothing.
    Dead,
    /// Left the cluster on purpose: owns nothing.
    Left,
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            MemberState::Recovering => "recovering",
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        };
        f.write_str(s)
    }
}

/// One row of the status report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Worker id.
    pub id: WorkerId,
    /// QUIC address.
    pub addr: String,
    /// Capacity weight.
    pub capacity: u32,
    /// Liveness state.
    pub state: MemberState,
    /// Partitions it holds a replica of (any rank).
    pub partitions: u32,
    /// Partitions it is primary for.
    pub primaries: u32,
    /// Milliseconds since its last heartbeat, if it ever sent one to this coordinator.
    pub last_heartbeat_ms_ago: Option<u64>,
    /// Epoch the member last reported acting on.
    pub member_epoch: u64,
    /// Addresses of the services it hosts, by name.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
}

/// The whole cluster as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub cluster: String,
    /// Current epoch of the assignment.
    pub epoch: u64,
    /// Fixed partition count.
    pub partitions: u32,
    /// Configured replication factor.
    pub replication: u32,
    /// Every known member, whatever its state.
    pub members: Vec<MemberStatus>,
    /// Partitions with no owner at all.
    pub unowned: Vec<u32>,
    /// Number of partitions with fewer replicas than min(replication, live members).
    pub under_replicated: u32,
}

/// A node's own description of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id (worker id, or the coordinator's certificate name).
    pub id: String,
    /// What the node is.
    pub role: crate::PeerRole,
    /// Epoch of the table the node acts on.
    pub epoch: u64,
    /// Partitions it holds a replica of.
    pub partitions: u32,
    /// Partitions it is primary for.
    pub primaries: u32,
    /// Whether its control session with the coordinator is up (always true on the coordinator).
    pub connected: bool,
}

/// Error codes carried by [`ErrorReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request was not valid (bad field, wrong state).
    BadRequest,
    /// The peer is not allowed to do this (e.g. a client certificate trying to join).
    Forbidden,
    /// Something failed inside the node.
    Internal,
    /// The sender is not a live member (declared dead, left, or unknown): it must join again.
    NotMember,
    /// Another session has joined with the same worker id since: this one is stale and
    /// must back off (the same worker is probably running twice).
    Superseded,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Machine-readable class.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Every message of the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    /// Worker → coordinator: join or rejoin.
    Join(JoinRequest),
    /// Worker → coordinator: liveness.
    Heartbeat(Heartbeat),
    /// Worker → coordinator: leaving on purpose; hand my partitions to others.
    Leave {
        /// The leaving worker.
        id: WorkerId,
    },
    /// Client → coordinator: report the cluster's status.
    StatusRequest,
    /// Client → coordinator: send the current view (for routing requests to owners).
    ViewRequest,
    /// Anyone → any node: describe yourself.
    NodeInfoRequest,
    /// Node → asker: what this node is and which table it acts on.
    NodeInfo(NodeInfo),
    /// Coordinator → worker: join accepted.
    Welcome(Welcome),
    /// Coordinator → worker: a new table (newer epoch).
    View(ClusterView),
    /// Coordinator → worker: heartbeat received.
    HeartbeatAck(HeartbeatAck),
    /// Coordinator → client: the status report.
    Status(ClusterStatus),
    /// Either direction: the request failed.
    Error(ErrorReply),
    /// Either direction: orderly end of the session.
    Bye,
    /// Client → coordinator: submit a stream job.
    JobSubmit(crate::JobSubmit),
    /// Client → coordinator: list jobs.
    JobList,
    /// Client → coordinator: one job's status.
    JobStatusRequest {
        /// Job id.
        id: String,
    },
    /// Client → coordinator: cancel a job.
    JobCancel {
        /// Job id.
        id: String,
    },
    /// Client → coordinator: take a savepoint of a running job (and then cancel it if
    /// `stop`). Answered with `Savepoint` once the savepoint is complete.
    JobSavepoint {
        /// Job id.
        id: String,
        /// Cancel the job once the savepoint is complete.
        stop: bool,
    },
    /// Client → coordinator: move a running job to the current membership now (stop it
    /// with a checkpoint, restore it on the live workers). Answered with `Job` once it
    /// runs again.
    JobRescale {
        /// Job id.
        id: String,
    },
    /// Client → coordinator: list savepoints. Answered with `Savepoints`.
    SavepointList,
    /// Client → coordinator: delete a savepoint (its parts are deleted from the store).
    /// Answered with `Savepoints`.
    SavepointDelete {
        /// Savepoint id.
        id: String,
    },
    /// Coordinator → client: a savepoint.
    Savepoint(crate::SavepointInfo),
    /// Coordinator → client: every savepoint.
    Savepoints(Vec<crate::SavepointInfo>),
    /// Coordinator → client: the job's status (answer to submit, status and cancel).
    Job(crate::JobInfo),
    /// Coordinator → client: every job.
    Jobs(Vec<crate::JobInfo>),
    /// Client → coordinator (an operator's decision): a dead worker will not come back.
    /// It is counted as having left, so replica sets it kept below a quorum are planned
    /// again from the survivors (writes only it and other lost members held are lost).
    /// Answered with `Status`.
    ForgetWorker {
        /// The dead worker.
        id: WorkerId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec::decode_body, encode_frame, FrameDecoder, DEFAULT_MAX_FRAME};
    use ringflow_ring::{assign, RingConfig, WorkerSpec};

    #[test]
    fn view_with_full_table_roundtrips_and_is_compact() {
        let cfg = RingConfig::default();
        let workers: Vec<WorkerSpec> = (0..3)
            .map(|i| WorkerSpec {
                id: WorkerId(format!("worker-{i}")),
                capacity: 1,
            })
            .collect();
        let assignment = assign(None, &workers, cfg).expect("plan");
        let view = ClusterView {
            peers: workers
                .iter()
                .map(|w| PeerInfo {
                    id: w.id.clone(),
                    addr: "127.0.0.1:1".into(),
                    services: Default::default(),
                })
                .collect(),
            assignment,
            forgotten: Vec::new(),
        };
        let msg = ControlMsg::View(view.clone());
        let frame = encode_frame(&msg, DEFAULT_MAX_FRAME).unwrap();
        assert!(
            frame.len() < 256 * 1024,
            "view frame is {} bytes",
            frame.len()
        );
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        dec.push(&frame);
        assert_eq!(dec.decode_next::<ControlMsg>().unwrap(), Some(msg));
        dec.finish().unwrap();
    }

    #[test]
    fn a_view_answers_where_its_members_are() {
        let cfg = RingConfig::new(8, 1).unwrap();
        let workers = [WorkerSpec {
            id: WorkerId("w1".into()),
            capacity: 1,
        }];
        let view = ClusterView {
            assignment: assign(None, &workers, cfg).expect("plan"),
            peers: vec![
                PeerInfo {
                    id: WorkerId("w1".into()),
                    addr: "127.0.0.1:7401".into(),
                    services: Default::default(),
                },
                PeerInfo {
                    id: WorkerId("w2".into()),
                    addr: "not an address".into(),
                    services: Default::default(),
                },
            ],
            forgotten: Vec::new(),
        };
        let (w1, w2, w3) = (
            WorkerId("w1".into()),
            WorkerId("w2".into()),
            WorkerId("w3".into()),
        );
        assert!(view.has_peer(&w1) && view.has_peer(&w2) && !view.has_peer(&w3));
        assert_eq!(view.addr_of(&w1), Some("127.0.0.1:7401"));
        assert_eq!(
            view.socket_addr_of(&w1),
            Some("127.0.0.1:7401".parse().unwrap())
        );
        assert_eq!(view.addr_of(&w2), Some("not an address"));
        assert_eq!(view.socket_addr_of(&w2), None);
        assert_eq!(view.addr_of(&w3), None);
    }

    #[test]
    fn every_variant_roundtrips() {
        let msgs = vec![
            ControlMsg::Join(JoinRequest {
                id: "w".into(),
                addr: "127.0.0.1:9".into(),
                capacity: 2,
                known_epoch: 4,
                services: Default::default(),
            }),
            ControlMsg::Heartbeat(Heartbeat {
                id: "w".into(),
                epoch: 3,
                seq: 9,
            }),
            ControlMsg::Leave { id: "w".into() },
            ControlMsg::StatusRequest,
            ControlMsg::HeartbeatAck(HeartbeatAck { seq: 1, epoch: 2 }),
            ControlMsg::Error(ErrorReply {
                code: ErrorCode::BadRequest,
                message: "no".into(),
            }),
            ControlMsg::Bye,
        ];
        for m in msgs {
            let f = encode_frame(&m, 1024).unwrap();
            assert_eq!(decode_body::<ControlMsg>(&f[4..]).unwrap(), m);
        }
    }

    #[test]
    fn hostile_bodies_are_errors() {
        // A valid msgpack map that names an unknown variant, nested garbage, huge array headers.
        let cases: Vec<Vec<u8>> = vec![
            vec![0x81, 0xa3, b'F', b'o', b'o', 0xc0],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff],
            vec![0x91; 1000],
            vec![],
        ];
        for body in cases {
            assert!(decode_body::<ControlMsg>(&body).is_err(), "{body:02x?}");
        }
    }
}
