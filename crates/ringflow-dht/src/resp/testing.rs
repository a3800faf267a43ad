//! Fixtures shared by the gateway's unit tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use ringflow_proto::{ClusterView, PeerInfo};
use ringflow_resp::{Command, Reply};
use ringflow_ring::{assign, RingConfig, WorkerId, WorkerSpec};

use super::dispatch::{local_command, Outcome};
use super::session::{Session, Shared};
use super::table::lookup;
use super::Node;
use crate::batch::{copy_error, Router};
use crate::wire::{DhtRequest, DhtResponse};
use crate::{DhtConfig, DhtError, SlotMap};

/// The partition count the fixture routes with (a slot is a partition).
pub(crate) const PARTITIONS: u32 = 16384;

/// A node and a DHT in memory: requests are answered from `data`, except those for a
/// partition in `failing`, which fail with its error.
pub(crate) struct Fixture {
    pub(crate) me: WorkerId,
    pub(crate) view: Option<Arc<ClusterView>>,
    pub(crate) cfg: DhtConfig,
    pub(crate) data: RefCell<HashMap<Vec<u8>, Vec<u8>>>,
    pub(crate) failing: RefCell<HashMap<u32, DhtError>>,
    /// The keys of every `Get` sent, one entry per request.
    pub(crate) gets: RefCell<Vec<Vec<Vec<u8>>>>,
    /// Requests sent.
    pub(crate) requests: Cell<usize>,
}

impl Fixture {
    /// Stores `value` under `key`.
    pub(crate) fn put(&self, key: &[u8], value: &[u8]) {
        self.data.borrow_mut().insert(key.to_vec(), value.to_vec());
    }

    /// Makes requests for `key`'s partition fail with `e`.
    pub(crate) fn fail(&self, key: &[u8], e: DhtError) {
        let p = partition_of(key);
        self.failing.borrow_mut().insert(p, e);
    }
}

/// The fixture's partition of `key`.
pub(crate) fn partition_of(key: &[u8]) -> u32 {
    SlotMap::new(PARTITIONS).unwrap().partition_of_key(key).0
}

impl Router for Fixture {
    fn partition_count(&self) -> Result<u32, DhtError> {
        Ok(PARTITIONS)
    }

    fn propose(&self, n: usize) -> Vec<crate::Version> {
        (0..n as u64)
            .map(|ts| crate::Version { ts, node: 0 })
            .collect()
    }

    async fn send_to_primary(
        &self,
        partition: u32,
        make: impl Fn(u64) -> DhtRequest,
    ) -> Result<DhtResponse, DhtError> {
        self.requests.set(self.requests.get() + 1);
        if let Some(e) = self.failing.borrow().get(&partition) {
            return Err(copy_error(e));
        }
        let mut data = self.data.borrow_mut();
        Ok(match make(1) {
            DhtRequest::Get { keys, .. } => {
                let values = keys.iter().map(|k| data.get(k).cloned()).collect();
                self.gets.borrow_mut().push(keys);
                DhtResponse::Values { values }
            }
            DhtRequest::Put { items, .. } => DhtResponse::Written {
                existed: items
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => data.insert(k, v).is_some(),
                        None => data.remove(&k).is_some(),
                    })
                    .collect(),
            },
            other => DhtResponse::Error {
                message: format!("not in the fixture: {other:?}"),
            },
        })
    }
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
    fn config(&self) -> &DhtConfig {
        &self.cfg
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
        forgotten: Vec::new(),
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
    let s = Shared::new();
    s.clients.set(1);
    s
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
    with_config(view, DhtConfig::default())
}

pub(crate) fn with_config(view: Option<ClusterView>, cfg: DhtConfig) -> Fixture {
    Fixture {
        me: WorkerId("w1".into()),
        view: view.map(Arc::new),
        cfg,
        data: RefCell::default(),
        failing: RefCell::default(),
        gets: RefCell::default(),
        requests: Cell::new(0),
    }
}

/// Runs `cmd` through the whole dispatch (data commands included) on the fixture.
pub(crate) async fn exec(node: &Fixture, args: &[&str]) -> Reply {
    match super::dispatch::execute(node, &shared(), &mut session(), cmd(args)).await {
        Outcome::Reply(r) | Outcome::Close(r) => r,
    }
}
