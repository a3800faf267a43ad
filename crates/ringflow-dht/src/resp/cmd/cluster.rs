//! `CLUSTER ...`: the worker's view described as Redis Cluster does (slot ranges, shards,
//! nodes), with every worker that advertises a RESP address.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ringflow_proto::{ClusterView, PeerInfo};
use ringflow_resp::{Command, Reply};
use ringflow_ring::{PartitionId, WorkerId};

use crate::resp::reply::{bulk, help, text, unknown_command};
use crate::resp::session::Session;
use crate::resp::table::subcommand;
use crate::resp::Node;
use crate::{key_slot, SlotMap, SLOTS};

pub(crate) fn cluster(node: &dyn Node, s: &Session, cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "cluster") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    if sub == "keyslot" {
        return Reply::Integer(i64::from(key_slot(cmd.arg(2).unwrap_or_default())));
    }
    if sub == "myid" {
        return bulk(&node.id().0);
    }
    if sub == "help" {
        return help(&[
            "CLUSTER <subcommand> [<arg> ...]. Subcommands are:",
            "INFO, KEYSLOT <key>, MYID, NODES, SHARDS, SLOTS, HELP",
        ]);
    }
    let view = node.view();
    let topology = view
        .as_deref()
        .map(|v| Topology::new(v, node.id(), s.local.map(|a| a.ip())));
    match (sub, &topology) {
        ("info", _) => text(cluster_info(view.as_deref(), topology.as_ref())),
        (_, None) => Reply::Error("CLUSTERDOWN this worker has not joined the cluster yet".into()),
        ("slots", Some(t)) => cluster_slots(&t.ranges),
        ("shards", Some(t)) => cluster_shards(&t.ranges),
        ("nodes", Some(t)) => text(cluster_nodes(t, node.id(), view.as_deref())),
        _ => unknown_command(cmd),
    }
}

/// A worker serving RESP, as advertised in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RespNode {
    id: String,
    ip: String,
    port: u16,
}

/// A contiguous range of slots (`end` inclusive) and the nodes serving it, primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    nodes: Vec<RespNode>,
}

/// The RESP-serving workers of a view and the slot ranges they serve.
#[derive(Debug)]
struct Topology {
    nodes: BTreeMap<WorkerId, RespNode>,
    ranges: Vec<SlotRange>,
}

impl Topology {
    /// `local_ip` stands in for this worker's own unspecified (`0.0.0.0`) RESP address.
    fn new(view: &ClusterView, me: &WorkerId, local_ip: Option<IpAddr>) -> Self {
        let nodes: BTreeMap<WorkerId, RespNode> = view
            .peers
            .iter()
            .filter_map(|p| Some((p.id.clone(), resp_node(p, me, local_ip)?)))
            .collect();
        let ranges = slot_ranges(view, &nodes);
        Self { nodes, ranges }
    }
}

/// A peer's RESP address (`services["resp"]`), if it has one. An unspecified IP is replaced
/// by the IP of the peer's QUIC address, or for this worker by `local_ip`.
fn resp_node(peer: &PeerInfo, me: &WorkerId, local_ip: Option<IpAddr>) -> Option<RespNode> {
    let addr: SocketAddr = peer.services.get("resp")?.parse().ok()?;
    let mut ip = addr.ip();
    if ip.is_unspecified() {
        let quic = peer
            .addr
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified());
        let local = local_ip.filter(|_| &peer.id == me);
        ip = quic.or(local).unwrap_or(ip);
    }
    Some(RespNode {
        id: peer.id.0.clone(),
        ip: ip.to_string(),
        port: addr.port(),
    })
}

/// Every partition's slots with its replicas that serve RESP (primary first), adjacent
/// ranges with the same node list merged. Slots with no such replica are left out.
fn slot_ranges(view: &ClusterView, nodes: &BTreeMap<WorkerId, RespNode>) -> Vec<SlotRange> {
    let Ok(map) = SlotMap::new(view.assignment.config.partitions) else {
        return Vec::new();
    };
    let mut out: Vec<SlotRange> = Vec::new();
    for p in 0..map.partitions() {
        let slots = map.slots_of(PartitionId(p));
        if slots.is_empty() {
            continue;
        }
        let owners: Vec<&RespNode> = view
            .assignment
            .replicas(PartitionId(p))
            .into_iter()
            .filter_map(|id| nodes.get(id))
            .collect();
        if owners.is_empty() {
            continue;
        }
        let end = slots.end - 1;
        match out.last_mut() {
            Some(last)
                if u32::from(last.end) + 1 == u32::from(slots.start)
                    && last.nodes.iter().eq(owners.iter().copied()) =>
            {
                last.end = end;
            }
            _ => out.push(SlotRange {
                start: slots.start,
                end,
                nodes: owners.into_iter().cloned().collect(),
            }),
        }
    }
    out
}

fn node_entry(n: &RespNode) -> Reply {
    Reply::Array(vec![
        bulk(&n.ip),
        Reply::Integer(i64::from(n.port)),
        bulk(&n.id),
    ])
}

fn cluster_slots(ranges: &[SlotRange]) -> Reply {
    Reply::Array(
        ranges
            .iter()
            .map(|r| {
                let mut entry = vec![
                    Reply::Integer(i64::from(r.start)),
                    Reply::Integer(i64::from(r.end)),
                ];
                entry.extend(r.nodes.iter().map(node_entry));
                Reply::Array(entry)
            })
            .collect(),
    )
}

/// A node list (primary first) and the slot ranges (inclusive) it serves.
type Shard<'a> = (&'a [RespNode], Vec<(u16, u16)>);

/// Ranges grouped by node list (first-seen order): Redis 7's shards.
fn shards(ranges: &[SlotRange]) -> Vec<Shard<'_>> {
    let mut out: Vec<Shard<'_>> = Vec::new();
    let mut index: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
    for r in ranges {
        let key: Vec<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
        let i = *index.entry(key).or_insert_with(|| {
            out.push((&r.nodes, Vec::new()));
            out.len() - 1
        });
        if let Some((_, slots)) = out.get_mut(i) {
            slots.push((r.start, r.end));
        }
    }
    out
}

fn cluster_shards(ranges: &[SlotRange]) -> Reply {
    Reply::Array(
        shards(ranges)
            .into_iter()
            .map(|(nodes, slots)| {
                let slots = slots
                    .iter()
                    .flat_map(|(a, b)| {
                        [Reply::Integer(i64::from(*a)), Reply::Integer(i64::from(*b))]
                    })
                    .collect();
                let nodes = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| shard_node(n, i == 0))
                    .collect();
                Reply::Map(vec![
                    (bulk("slots"), Reply::Array(slots)),
                    (bulk("nodes"), Reply::Array(nodes)),
                ])
            })
            .collect(),
    )
}

fn shard_node(n: &RespNode, primary: bool) -> Reply {
    Reply::Map(vec![
        (bulk("id"), bulk(&n.id)),
        (bulk("port"), Reply::Integer(i64::from(n.port))),
        (bulk("ip"), bulk(&n.ip)),
        (bulk("endpoint"), bulk(&n.ip)),
        (
            bulk("role"),
            bulk(if primary { "master" } else { "replica" }),
        ),
        (bulk("replication-offset"), Reply::Integer(0)),
        (bulk("health"), bulk("online")),
    ])
}

/// `CLUSTER NODES`: every RESP node as a master of the ranges it is primary for.
fn cluster_nodes(t: &Topology, me: &WorkerId, view: Option<&ClusterView>) -> String {
    let epoch = view.map_or(0, ClusterView::epoch);
    let mut out = String::new();
    for (id, n) in &t.nodes {
        let flags = if id == me { "myself,master" } else { "master" };
        out.push_str(&format!(
            "{} {}:{}@0 {flags} - 0 0 {epoch} connected",
            n.id, n.ip, n.port
        ));
        for r in t.ranges.iter().filter(|r| r.nodes.first() == Some(n)) {
            if r.start == r.end {
                out.push_str(&format!(" {}", r.start));
            } else {
                out.push_str(&format!(" {}-{}", r.start, r.end));
            }
        }
        out.push('\n');
    }
    out
}

fn cluster_info(view: Option<&ClusterView>, t: Option<&Topology>) -> String {
    let assigned: u32 = t.map_or(0, |t| {
        t.ranges
            .iter()
            .map(|r| u32::from(r.end) - u32::from(r.start) + 1)
            .sum()
    });
    let primaries: std::collections::BTreeSet<&str> = t
        .map(|t| {
            t.ranges
                .iter()
                .filter_map(|r| r.nodes.first().map(|n| n.id.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let epoch = view.map_or(0, ClusterView::epoch);
    let state = if assigned == SLOTS { "ok" } else { "fail" };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n\
         cluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{epoch}\r\n\
         cluster_my_epoch:{epoch}\r\ncluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        t.map_or(0, |t| t.nodes.len()),
        primaries.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;
    use ringflow_resp::ProtoVersion;

    #[test]
    fn ranges_cover_every_slot_once_with_replicas_primary_first() {
        for (partitions, replication) in [(1, 1), (16, 3), (1024, 2), (16384, 3)] {
            let v = three(partitions, replication);
            let t = Topology::new(&v, &WorkerId("w1".into()), None);
            let mut next = 0u32;
            for r in &t.ranges {
                assert_eq!(u32::from(r.start), next);
                assert!(r.end >= r.start);
                assert_eq!(r.nodes.len(), replication);
                next = u32::from(r.end) + 1;
                let slots = SlotMap::new(partitions).unwrap();
                let p = slots.partition_of_slot(r.start);
                let primary = v.assignment.primary(p).unwrap();
                assert_eq!(r.nodes[0].id, primary.0);
            }
            assert_eq!(next, SLOTS);
            // Merged: no two neighbours share a node list.
            for w in t.ranges.windows(2) {
                assert_ne!(w[0].nodes, w[1].nodes);
            }
        }
    }

    #[test]
    fn one_worker_is_one_range() {
        let v = view(
            1024,
            1,
            vec![peer("solo", "127.0.0.1:7001", Some("127.0.0.1:6380"))],
        );
        let t = Topology::new(&v, &WorkerId("solo".into()), None);
        assert_eq!(
            t.ranges,
            vec![SlotRange {
                start: 0,
                end: 16383,
                nodes: vec![RespNode {
                    id: "solo".into(),
                    ip: "127.0.0.1".into(),
                    port: 6380
                }]
            }]
        );
        let bytes = cluster_slots(&t.ranges).to_bytes(ProtoVersion::Resp2);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:6380\r\n$4\r\nsolo\r\n"
        );
        let nodes = cluster_nodes(&t, &WorkerId("solo".into()), Some(&v));
        assert!(
            nodes.starts_with("solo 127.0.0.1:6380@0 myself,master - 0 0 "),
            "{nodes}"
        );
        assert!(nodes.ends_with(" connected 0-16383\n"), "{nodes}");
        let info = cluster_info(Some(&v), Some(&t));
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
    }

    #[test]
    fn workers_without_a_resp_address_are_skipped() {
        let v = view(
            64,
            2,
            vec![
                peer("a", "127.0.0.1:7001", Some("127.0.0.1:6381")),
                peer("b", "127.0.0.1:7002", None),
            ],
        );
        let t = Topology::new(&v, &WorkerId("a".into()), None);
        assert_eq!(t.nodes.len(), 1);
        // Every partition has `a` among its two replicas: all slots, served by `a` alone.
        assert_eq!(t.ranges.len(), 1);
        assert_eq!((t.ranges[0].start, t.ranges[0].end), (0, 16383));
        assert!(t.ranges[0].nodes.iter().all(|n| n.id == "a"));

        // With replication 1, b's partitions are not served at all: the state is fail.
        let v = view(
            64,
            1,
            vec![
                peer("a", "127.0.0.1:7001", Some("127.0.0.1:6381")),
                peer("b", "127.0.0.1:7002", None),
            ],
        );
        let t = Topology::new(&v, &WorkerId("a".into()), None);
        let served: u32 = t
            .ranges
            .iter()
            .map(|r| u32::from(r.end - r.start) + 1)
            .sum();
        assert!(served > 0 && served < SLOTS);
        assert!(cluster_info(Some(&v), Some(&t)).starts_with("cluster_state:fail\r\n"));
    }

    #[test]
    fn unspecified_resp_ip_uses_the_quic_ip_or_the_local_one() {
        let me = WorkerId("a".into());
        let local = Some("10.0.0.9".parse().unwrap());
        let n = resp_node(
            &peer("a", "10.0.0.1:7001", Some("0.0.0.0:6380")),
            &me,
            local,
        );
        assert_eq!(n.unwrap().ip, "10.0.0.1");
        let n = resp_node(&peer("a", "0.0.0.0:7001", Some("0.0.0.0:6380")), &me, local);
        assert_eq!(n.unwrap().ip, "10.0.0.9");
        let n = resp_node(&peer("b", "0.0.0.0:7001", Some("0.0.0.0:6380")), &me, local);
        assert_eq!(n.unwrap().ip, "0.0.0.0");
        assert!(resp_node(&peer("b", "x", Some("garbage")), &me, local).is_none());
    }

    #[test]
    fn shards_group_ranges_by_node_list() {
        let v = three(16, 3);
        let t = Topology::new(&v, &WorkerId("w1".into()), None);
        let sh = shards(&t.ranges);
        let total: u32 = sh
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum();
        assert_eq!(total, SLOTS);
        for (i, (a, _)) in sh.iter().enumerate() {
            for (b, _) in &sh[i + 1..] {
                assert_ne!(a, b);
            }
        }
        match cluster_shards(&t.ranges) {
            Reply::Array(items) => assert_eq!(items.len(), sh.len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_commands() {
        let mut s = session();
        let down = fixture(None);
        assert!(matches!(
            reply(&down, &mut s, &["cluster", "slots"]),
            Reply::Error(e) if e.starts_with("CLUSTERDOWN")
        ));
        match reply(&down, &mut s, &["cluster", "info"]) {
            Reply::Verbatim { text, .. } => assert!(text.starts_with("cluster_state:fail\r\n")),
            other => panic!("{other:?}"),
        }
        let f = fixture(Some(three(1024, 3)));
        assert_eq!(
            reply(&f, &mut s, &["cluster", "keyslot", "foo"]),
            Reply::Integer(12182)
        );
        assert_eq!(
            reply(&f, &mut s, &["CLUSTER", "MYID"]),
            Reply::Bulk(b"w1".to_vec())
        );
        match reply(&f, &mut s, &["cluster", "slots"]) {
            Reply::Array(items) => assert!(!items.is_empty()),
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["cluster", "nodes"]) {
            Reply::Verbatim { text, .. } => {
                assert_eq!(text.lines().count(), 3, "{text}");
                assert!(
                    text.starts_with("w1 127.0.0.1:6381@0 myself,master "),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["cluster", "info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(text.starts_with("cluster_state:ok\r\n"), "{text}");
                assert!(text.contains("\r\ncluster_known_nodes:3\r\ncluster_size:3\r\n"));
            }
            other => panic!("{other:?}"),
        }
    }
}
