//! Fixtures shared by the gateway's unit tests.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use ringflow_proto::{ClusterView, PeerInfo};
use ringflow_resp::{Command, Reply};
use ringflow_ring::{assign, RingConfig, WorkerId, WorkerSpec};

use super::dispatch::{local_command, Outcome};
use super::session::{Session, Shared};
use super::table::lookup;
use super::Node;

pub(crate) struct Fixture {
    pub(crate) me: WorkerId,
    pub(crate) view: Option<Arc<ClusterView>>,
}

impl Node for Fixture {
    fn id(&self) -> &WorkerId {
        &self.me
    }
    fn view(&self) -> Option<Arc<ClusterView>> {
        self.view.clone()
    }
    fn stored_entries(&self) -> u64 {
        7
    }
}

pub(crate) fn peer(id: &str, quic: &str, resp: Option<&str>) -> PeerInfo {
    PeerInfo {
        id: WorkerId(id.into()),
        addr: quic.into(),
        services: resp
            .map(|r| [("resp".to_string(), r.to_string())].into())
            .unwrap_or_default(),
    }
}

pub(crate) fn view(partitions: u32, replication: usize, peers: Vec<PeerInfo>) -> ClusterView {
    let specs: Vec<WorkerSpec> = peers
        .iter()
        .map(|p| WorkerSpec::new(p.id.clone(), 1))
        .collect();
    let config = RingConfig::new(partitions, replication).unwrap();
    ClusterView {
        assignment: assign(None, &specs, config).unwrap(),
        peers,
    }
}

pub(crate) fn three(partitions: u32, replication: usize) -> ClusterView {
    view(
        partitions,
        replication,
        vec![
            peer("w1", "127.0.0.1:7001", Some("127.0.0.1:6381")),
            peer("w2", "127.0.0.1:7002", Some("127.0.0.1:6382")),
            peer("w3", "127.0.0.1:7003", Some("127.0.0.1:6383")),
        ],
    )
}

pub(crate) fn cmd(args: &[&str]) -> Command {
    Command::new(args.iter().map(|a| a.as_bytes().to_vec()).collect())
}

pub(crate) fn session() -> Session {
    Session::new(
        5,
        "127.0.0.1:50000".parse().unwrap(),
        Some("127.0.0.1:6380".parse().unwrap()),
    )
}

pub(crate) fn shared() -> Shared {
    Shared {
        started: Instant::now(),
        next_id: Cell::new(1),
        clients: Cell::new(1),
    }
}

pub(crate) fn run(node: &Fixture, s: &mut Session, args: &[&str]) -> Outcome {
    let c = cmd(args);
    match lookup(&c) {
        Ok(spec) => local_command(node, &shared(), s, spec.name, &c),
        Err(r) => Outcome::Reply(r),
    }
}

pub(crate) fn reply(node: &Fixture, s: &mut Session, args: &[&str]) -> Reply {
    match run(node, s, args) {
        Outcome::Reply(r) | Outcome::Close(r) => r,
    }
}

pub(crate) fn err(text: &str) -> Reply {
    Reply::Error(text.into())
}

pub(crate) fn fixture(view: Option<ClusterView>) -> Fixture {
    Fixture {
        me: WorkerId("w1".into()),
        view: view.map(Arc::new),
    }
}
