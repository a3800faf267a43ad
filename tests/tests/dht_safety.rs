//! Regression tests of the DHT's safety rules, each against real processes: quorums over
//! the configured replication, who may send replica traffic, what a paused coordinator
//! does when it resumes, and the primary's lease.

use std::net::SocketAddr;
use std::time::Duration;

use ringflow::ClusterClient;
use ringflow_dht::pool::StreamPool;
use ringflow_dht::wire::{DhtRequest, DhtResponse};
use ringflow_dht::{DhtClient, Entry, SlotMap, Version};
use ringflow_net::{Endpoint, NetConfig, TlsIdentity};
use ringflow_proto::PeerRole;
use ringflow_tests::writer::runtime;
use ringflow_tests::{Client, ClusterOpts, TestCluster};

/// A stream pool that says it is `role` / `node_id` in its hellos, whatever its
/// certificate is.
fn pool(identity: &TlsIdentity, role: PeerRole, node_id: Option<&str>) -> StreamPool {
    let endpoint = Endpoint::client(identity, &NetConfig::default()).expect("endpoint");
    StreamPool::new(
        endpoint,
        role,
        node_id.map(str::to_string),
        "ringflow".into(),
        Duration::from_secs(15),
    )
}

fn refused(resp: &DhtResponse) -> bool {
    matches!(resp, DhtResponse::Error { message } if message.contains("only accepted from workers"))
}

/// Replica traffic (`Replicate`, `ReadReplica`, `Fetch`) is taken only from a node
/// certificate valid for the worker id its hello names, and that id is the sender: a
/// client certificate, or one worker's certificate speaking as another, is refused, also
/// inside a batch (`Multi`), and nothing it sent is stored.
#[test]
fn replica_traffic_needs_a_node_certificate_that_names_its_sender() {
    let c = TestCluster::start(ClusterOpts::default());
    c.wait_healthy(3);
    let certs = c.certs_dir();
    let client_id = TlsIdentity::from_dir(&certs, "client").expect("client identity");
    let rt = runtime();
    let view = view_of(&c, &rt);
    rt.block_on(async {
        let key = b"forged-key".to_vec();
        let partition = SlotMap::new(view.assignment.config.partitions)
            .expect("slot map")
            .partition_of_key(&key);
        let replicas = view.assignment.replicas(partition);
        let primary = replicas[0].clone();
        let follower = replicas[1].clone();
        let follower_addr: SocketAddr = view.socket_addr_of(&follower).expect("follower address");
        // What the partition's primary would send its follower, as far as the request says.
        let forged = || DhtRequest::Replicate {
            partition: partition.0,
            writes: vec![(
                key.clone(),
                Entry {
                    version: Version {
                        ts: u64::MAX >> 1,
                        node: 0,
                    },
                    value: Some(b"forged".to_vec()),
                },
            )],
            epoch: view.epoch(),
            from: primary.0.clone(),
        };
        let read = || DhtRequest::ReadReplica {
            partition: partition.0,
            keys: vec![key.clone()],
            epoch: view.epoch(),
            from: primary.0.clone(),
        };
        let fetch = || DhtRequest::Fetch {
            partitions: vec![partition.0],
            after: None,
            max_bytes: 1 << 20,
        };

        // 1. A client certificate that claims to be the primary, at the top level and
        //    inside a batch beside an ordinary read.
        let liar = pool(&client_id, PeerRole::Worker, Some(&primary.0));
        for req in [forged(), read(), fetch()] {
            let resp = liar.call(follower_addr, &req).await.expect("an answer");
            assert!(
                refused(&resp),
                "{req:?} from a client certificate: {resp:?}"
            );
        }
        let batch = DhtRequest::Multi(vec![
            forged(),
            DhtRequest::Get {
                epoch: view.epoch(),
                partition: partition.0,
                keys: vec![key.clone()],
            },
            fetch(),
        ]);
        match liar.call(follower_addr, &batch).await.expect("an answer") {
            DhtResponse::Multi(answers) => {
                assert_eq!(answers.len(), 3, "{answers:?}");
                assert!(
                    refused(&answers[0]),
                    "Replicate in a batch: {:?}",
                    answers[0]
                );
                assert!(
                    !refused(&answers[1]),
                    "a client's Get is not replica traffic"
                );
                assert!(refused(&answers[2]), "Fetch in a batch: {:?}", answers[2]);
            }
            other => panic!("a batch gets one answer per part: {other:?}"),
        }
        liar.close();

        // 2. A node certificate of another worker speaking as the primary.
        let other = view
            .peers
            .iter()
            .map(|p| p.id.clone())
            .find(|id| *id != primary)
            .expect("a worker that is not the primary");
        let other_id = TlsIdentity::from_dir(&certs, &other.0).expect("worker identity");
        let impostor = pool(&other_id, PeerRole::Worker, Some(&primary.0));
        let resp = impostor
            .call(follower_addr, &DhtRequest::Multi(vec![forged()]))
            .await
            .expect("an answer");
        assert!(
            matches!(&resp, DhtResponse::Multi(a) if a.len() == 1 && refused(&a[0])),
            "{other} speaking as {primary}: {resp:?}"
        );
        impostor.close();

        // Nothing forged was stored: the key reads back as never written.
        let dht = DhtClient::connect(&c.coordinator_addr().to_string(), &client_id, "ringflow")
            .await
            .expect("dht client");
        assert_eq!(dht.get(&key).await.expect("get"), None);
        // And the workers' own replication still works.
        dht.put(&key, b"real").await.expect("put");
        assert_eq!(
            dht.get(&key).await.expect("get").as_deref(),
            Some(&b"real"[..])
        );
        dht.close().await;
    });
}

/// A coordinator that did not run for several failure timeouts (here the whole cluster
/// was stopped, as when a machine is suspended) does not declare its workers dead when it
/// resumes: its own pause is not their silence. Asked right after it resumes (before the
/// workers run again), it still counts every worker live; once they run, the ring has its
/// old epoch and every worker its partitions.
#[test]
fn a_paused_coordinator_does_not_empty_the_ring_when_it_resumes() {
    let opts = ClusterOpts {
        // Slack for a loaded machine between the coordinator's and the workers' resume.
        failure_timeout_ms: 5000,
        ..ClusterOpts::default()
    };
    let pause = Duration::from_millis(opts.failure_timeout_ms * 2 + 1000);
    let mut c = TestCluster::start(opts);
    let before = c.wait_healthy(3);
    let ids: Vec<String> = c.workers.keys().cloned().collect();
    for id in &ids {
        c.workers.get_mut(id).expect("worker").pause();
    }
    c.coordinator.as_mut().expect("coordinator").pause();
    // The fault itself: nothing runs for more than two failure timeouts.
    std::thread::sleep(pause);
    c.coordinator.as_mut().expect("coordinator").resume();
    let resumed = c.status().expect("status right after the resume");
    for id in &ids {
        c.workers.get_mut(id).expect("worker").resume();
    }
    assert!(
        resumed
            .members
            .iter()
            .all(|m| m.state != ringflow::MemberState::Dead),
        "the coordinator declared workers dead for its own pause: {:#?}",
        resumed.members
    );
    let after = c.wait_healthy(3);
    assert_eq!(
        after.epoch,
        before.epoch,
        "the coordinator's pause moved partitions:\n{}",
        c.logs_tail(30)
    );
    for m in &after.members {
        let was = before
            .members
            .iter()
            .find(|b| b.id == m.id)
            .expect("same members");
        assert_eq!(m.partitions, was.partitions, "{}", m.id);
    }
}

/// The recipe from the issue: `SET k OLD`; two of three workers (replication 3) stop
/// (SIGSTOP) and are declared dead; `SET k NEW` through the one left must be refused,
/// since one replica is not a majority of three; then that one is killed (-9) and the
/// other two come back: `GET k` answers `OLD`, and no acknowledged write was lost.
#[test]
fn a_write_with_fewer_live_replicas_than_a_quorum_is_refused() {
    let mut c = TestCluster::start(ClusterOpts::default());
    c.wait_healthy(3);
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let coordinator = c.coordinator_addr().to_string();
    let rt = runtime();
    let connect = || async {
        DhtClient::connect(&coordinator, &client_id, "ringflow")
            .await
            .expect("dht client")
    };
    rt.block_on(async {
        let dht = connect().await;
        dht.put("k", "OLD").await.expect("OLD is acknowledged");
        dht.close().await;
    });
    let stopped = ["worker-1", "worker-2"];
    for id in stopped {
        c.workers.get_mut(id).expect("worker").pause();
    }
    c.wait_for("the two stopped workers are declared dead", |s| {
        stopped.iter().all(|id| {
            ringflow_tests::member(s, id).is_some_and(|m| m.state == ringflow::MemberState::Dead)
        }) && s.unowned.is_empty()
    });
    let refused = rt.block_on(async {
        let dht = connect().await;
        let r = dht.put("k", "NEW").await;
        dht.close().await;
        r
    });
    assert!(
        refused.is_err(),
        "a write acknowledged by one replica of three: {refused:?}"
    );
    c.workers.get_mut("worker-3").expect("worker").kill9();
    for id in stopped {
        c.workers.get_mut(id).expect("worker").resume();
    }
    c.wait_for("the two are back and the third is dead", |s| {
        stopped.iter().all(|id| {
            ringflow_tests::member(s, id).is_some_and(|m| m.state == ringflow::MemberState::Alive)
        }) && ringflow_tests::member(s, "worker-3")
            .is_some_and(|m| m.state == ringflow::MemberState::Dead)
    });
    c.wait_healthy(2);
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    let value = rt.block_on(async {
        let dht = connect().await;
        loop {
            match dht.get("k").await {
                Ok(v) => break v,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "GET k never answered: {e}\n{}",
                        c.logs_tail(30)
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    assert_eq!(value.as_deref(), Some(&b"OLD"[..]));
}

/// One primary at a time: a worker cut off from the coordinator (and only from it: its
/// peers and clients still reach it) stops acknowledging writes when its lease runs out,
/// which is before the coordinator declares it dead and gives its partitions to a
/// successor. Asked directly, it refuses with a reason that names the lease while the
/// coordinator still counts it a member; it never acknowledges a write once it is
/// declared dead. Healed, it serves again.
#[test]
fn a_primary_cut_off_from_the_coordinator_stops_acknowledging_before_its_successor_starts() {
    if let Err(why) = ringflow_tests::netfault::available() {
        eprintln!("SKIPPED a_primary_cut_off_from_the_coordinator_stops_acknowledging_before_its_successor_starts: {why}");
        return;
    }
    let opts = ClusterOpts {
        // Lease 3 s, failure timeout 6 s: seconds of slack for a loaded machine.
        failure_timeout_ms: 6000,
        ..ClusterOpts::default()
    };
    let c = TestCluster::start(opts);
    c.wait_healthy(3);
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let rt = runtime();
    let view = view_of(&c, &rt);
    let key = b"leased-key".to_vec();
    let (partition, replicas, primary_addr) = placement_of(&view, &key);
    let primary = replicas[0].clone();
    let _in_runtime = rt.enter();
    let direct = pool(&client_id, PeerRole::Client, None);
    let put = |i: u64| DhtRequest::Put {
        epoch: view.epoch(),
        partition,
        items: vec![(key.clone(), Some(i.to_string().into_bytes()))],
        stamps: Default::default(),
    };
    let first = rt.block_on(direct.call(primary_addr, &put(0)));
    assert!(
        matches!(first, Ok(DhtResponse::Written { .. })),
        "before the cut: {first:?}"
    );
    let cut =
        ringflow_tests::netfault::UdpCut::between(primary_addr.port(), c.coordinator_addr().port())
            .expect("cutting the primary off from the coordinator");
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    let mut i = 1;
    let refusal = loop {
        let r = rt.block_on(direct.call(primary_addr, &put(i)));
        i += 1;
        match r {
            Ok(DhtResponse::Written { .. }) => {}
            other => break other,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cut-off primary kept acknowledging writes\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = c.status().expect("status");
    let state = ringflow_tests::member(&status, &primary.0).map(|m| m.state);
    assert!(
        matches!(&refusal, Ok(DhtResponse::Unavailable { reason } | DhtResponse::Unknown { reason, .. }) if reason.contains("lease")),
        "the first refusal must name the lease: {refusal:?} (member state {state:?})"
    );
    assert!(
        state.is_some_and(|s| s != ringflow::MemberState::Dead),
        "the primary stopped only after it was declared dead ({state:?})"
    );
    // Once it is declared dead it acknowledges nothing (its successor serves).
    c.wait_for("the cut-off primary is declared dead", |s| {
        ringflow_tests::member(s, &primary.0)
            .is_some_and(|m| m.state == ringflow::MemberState::Dead)
    });
    let late = rt.block_on(direct.call(primary_addr, &put(i)));
    assert!(
        !matches!(late, Ok(DhtResponse::Written { .. })),
        "a primary declared dead acknowledged a write: {late:?}"
    );
    // Healed: it rejoins, renews its lease and the cluster serves the key again.
    drop(cut);
    c.wait_healthy(3);
    rt.block_on(async {
        let dht = DhtClient::connect(&c.coordinator_addr().to_string(), &client_id, "ringflow")
            .await
            .expect("dht client");
        dht.put(&key, b"healed").await.expect("put after the heal");
        assert_eq!(
            dht.get(&key).await.expect("get").as_deref(),
            Some(&b"healed"[..])
        );
        dht.close().await;
    });
    direct.close();
}

/// `GET key`, retried until the cluster answers (a failover may be in progress).
fn get_when_answered(
    rt: &tokio::runtime::Runtime,
    dht: &DhtClient,
    key: &str,
    c: &TestCluster,
) -> Option<Vec<u8>> {
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    loop {
        match rt.block_on(dht.get(key)) {
            Ok(v) => return v,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "GET {key} never answered: {e}\n{}",
                    c.logs_tail(30)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Cuts UDP between two workers' ports (in `view`), both ways, until dropped.
fn cut(view: &ringflow_proto::ClusterView, a: &str, b: &str) -> ringflow_tests::netfault::UdpCut {
    let port = |id: &str| {
        view.socket_addr_of(&ringflow::WorkerId(id.into()))
            .expect("address")
            .port()
    };
    ringflow_tests::netfault::UdpCut::between(port(a), port(b))
        .unwrap_or_else(|e| panic!("cutting {a} off from {b}: {e}"))
}

/// `key`'s partition in `view`, its replicas (primary first) and the primary's address.
fn placement_of(
    view: &ringflow_proto::ClusterView,
    key: &[u8],
) -> (u32, Vec<ringflow::WorkerId>, SocketAddr) {
    let partition = SlotMap::new(view.assignment.config.partitions)
        .expect("slot map")
        .partition_of_key(key);
    let replicas: Vec<ringflow::WorkerId> = view
        .assignment
        .replicas(partition)
        .into_iter()
        .cloned()
        .collect();
    let primary = view.socket_addr_of(&replicas[0]).expect("primary address");
    (partition.0, replicas, primary)
}

/// The current view, as a client sees it.
fn view_of(c: &TestCluster, rt: &tokio::runtime::Runtime) -> ringflow_proto::ClusterView {
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    rt.block_on(async {
        let cc = ClusterClient::connect(&c.coordinator_addr().to_string(), &client_id, "ringflow")
            .await
            .expect("cluster client");
        let view = cc.view().await.expect("view");
        cc.close().await;
        view
    })
}

/// Versions cannot go backwards: a primary whose clock is a minute behind (libfaketime)
/// and that missed the last writes (cut off from the old primary) takes over; the one
/// other replica holds newer versions than it stamps, says so, and the primary stamps
/// again above them. Every acknowledged overwrite reads back; none is hidden behind the
/// older value's later timestamp.
#[test]
fn a_primary_with_a_clock_a_minute_behind_loses_no_acknowledged_overwrite() {
    let Some(faketime) = ringflow_tests::faketime_lib() else {
        eprintln!("SKIPPED a_primary_with_a_clock_a_minute_behind_loses_no_acknowledged_overwrite: libfaketime is not installed (Debian package faketime)");
        return;
    };
    if let Err(why) = ringflow_tests::netfault::available() {
        eprintln!(
            "SKIPPED a_primary_with_a_clock_a_minute_behind_loses_no_acknowledged_overwrite: {why}"
        );
        return;
    }
    let mut c = TestCluster::new(ClusterOpts {
        failure_timeout_ms: 4000,
        ..ClusterOpts::default()
    });
    c.start_coordinator();
    c.start_worker("worker-1");
    c.start_worker("worker-2");
    c.start_worker_env(
        "worker-3",
        &[
            ("LD_PRELOAD".into(), faketime.display().to_string()),
            ("FAKETIME".into(), "-60".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ],
    );
    c.wait_healthy(3);
    let rt = runtime();
    let view = view_of(&c, &rt);
    let slots = SlotMap::new(view.assignment.config.partitions).expect("slot map");
    let old_primary = ringflow::WorkerId("worker-1".into());
    // Keys that worker-1 leads: after it dies, about half of them pass to worker-3.
    let keys: Vec<String> = (0..)
        .map(|i| format!("skew-{i}"))
        .filter(|k| {
            view.assignment
                .primary(slots.partition_of_key(k.as_bytes()))
                == Some(&old_primary)
        })
        .take(100)
        .collect();
    let cut = cut(&view, "worker-1", "worker-3");
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let coordinator = c.coordinator_addr().to_string();
    let put_all = |value: &'static str| {
        let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
        rt.block_on(async {
            let dht = DhtClient::connect(&coordinator, &client_id, "ringflow")
                .await
                .expect("dht client");
            for k in &keys {
                while let Err(e) = dht.put(k, value).await {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{k}={value} never acknowledged: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            dht.close().await;
        })
    };
    // Acknowledged by worker-1 and worker-2; worker-3 never sees them.
    put_all("first");
    c.take_worker("worker-1").kill9();
    drop(cut);
    c.wait_for(
        "worker-1 is declared dead and its partitions are owned",
        |s| {
            ringflow_tests::member(s, "worker-1")
                .is_some_and(|m| m.state == ringflow::MemberState::Dead)
                && s.unowned.is_empty()
        },
    );
    c.wait_healthy(2);
    put_all("second");
    let lost: Vec<String> = rt.block_on(async {
        let dht = DhtClient::connect(&coordinator, &client_id, "ringflow")
            .await
            .expect("dht client");
        let mut lost = Vec::new();
        for k in &keys {
            let v = dht.get(k).await.expect("get");
            if v.as_deref() != Some(&b"second"[..]) {
                lost.push(format!(
                    "{k}={:?}",
                    v.map(|v| String::from_utf8_lossy(&v).into_owned())
                ));
            }
        }
        dht.close().await;
        lost
    });
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged overwrites lost: {lost:?}",
        lost.len(),
        keys.len()
    );
}

/// A version far ahead of the replica's clock is refused, even from a node certificate:
/// it would win over every later write until the clock caught up.
#[test]
fn a_replicated_write_stamped_far_in_the_future_is_refused() {
    let c = TestCluster::start(ClusterOpts::default());
    c.wait_healthy(3);
    let rt = runtime();
    let view = view_of(&c, &rt);
    let key = b"future-key".to_vec();
    let partition = SlotMap::new(view.assignment.config.partitions)
        .expect("slot map")
        .partition_of_key(&key);
    let replicas = view.assignment.replicas(partition);
    let (primary, follower) = (replicas[0].clone(), replicas[1].clone());
    let follower_addr = view.socket_addr_of(&follower).expect("follower address");
    let node_id = TlsIdentity::from_dir(&c.certs_dir(), &primary.0).expect("primary identity");
    let _in_runtime = rt.enter();
    let as_primary = pool(&node_id, PeerRole::Worker, Some(&primary.0));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let replicate = |ahead_ms: u64, value: &[u8]| DhtRequest::Replicate {
        partition: partition.0,
        writes: vec![(
            key.clone(),
            Entry {
                version: Version {
                    ts: (now_ms + ahead_ms) << ringflow_dht::version::LOGICAL_BITS,
                    node: 7,
                },
                value: Some(value.to_vec()),
            },
        )],
        epoch: view.epoch(),
        from: primary.0.clone(),
    };
    let resp = rt
        .block_on(as_primary.call(follower_addr, &replicate(3_600_000, b"from-the-future")))
        .expect("an answer");
    assert!(
        matches!(&resp, DhtResponse::Error { message } if message.contains("ahead of this node's clock")),
        "{resp:?}"
    );
    let read = DhtRequest::ReadReplica {
        partition: partition.0,
        keys: vec![key.clone()],
        epoch: view.epoch(),
        from: primary.0.clone(),
    };
    let held = rt
        .block_on(as_primary.call(follower_addr, &read))
        .expect("an answer");
    assert!(
        matches!(&held, DhtResponse::Entries { entries } if entries == &vec![None]),
        "the refused write was stored: {held:?}"
    );
    // A version within the allowed skew is taken.
    let resp = rt
        .block_on(as_primary.call(follower_addr, &replicate(1_000, b"soon")))
        .expect("an answer");
    assert!(matches!(resp, DhtResponse::Replicated), "{resp:?}");
    as_primary.close();
}

/// Deletes stay deleted: a replica cut off from the primary misses a delete; the
/// tombstone passes its grace period, but the primary cannot hear from that replica, so
/// nobody forgets it. Healed, and with the third replica killed, a majority read of the
/// primary and the replica that missed the delete still answers "no such key".
#[test]
fn a_tombstone_outlives_its_grace_until_every_replica_holds_it() {
    if let Err(why) = ringflow_tests::netfault::available() {
        eprintln!("SKIPPED a_tombstone_outlives_its_grace_until_every_replica_holds_it: {why}");
        return;
    }
    let mut c = TestCluster::new(ClusterOpts::default());
    c.start_coordinator();
    for i in 1..=3 {
        c.start_worker_with(
            &format!("worker-{i}"),
            &c.certs_dir(),
            &["--tombstone-grace-s", "1"],
        );
    }
    c.wait_healthy(3);
    let rt = runtime();
    let view = view_of(&c, &rt);
    let slots = SlotMap::new(view.assignment.config.partitions).expect("slot map");
    let key = (0..)
        .map(|i| format!("deleted-{i}"))
        .find(|k| {
            let r = view
                .assignment
                .replicas(slots.partition_of_key(k.as_bytes()));
            r[0].0 == "worker-1" && r[1].0 == "worker-2"
        })
        .expect("a key worker-1 leads");
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let coordinator = c.coordinator_addr().to_string();
    let dht = rt
        .block_on(DhtClient::connect(&coordinator, &client_id, "ringflow"))
        .expect("dht client");
    rt.block_on(dht.put(&key, "doomed")).expect("put");
    let cut = cut(&view, "worker-1", "worker-3");
    assert!(rt
        .block_on(dht.delete(&key))
        .expect("delete acknowledged by worker-1 and worker-2"));
    // The grace period passes and worker-1 runs a round over its old tombstones.
    let log = c.workers["worker-1"].log.clone();
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("tombstones past their grace")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "worker-1 never looked at its old tombstones\n{}",
            c.logs_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cut);
    c.take_worker("worker-2").kill9();
    c.wait_for(
        "worker-2 is declared dead and its partitions are owned",
        |s| {
            ringflow_tests::member(s, "worker-2")
                .is_some_and(|m| m.state == ringflow::MemberState::Dead)
                && s.unowned.is_empty()
        },
    );
    c.wait_healthy(2);
    let v = get_when_answered(&rt, &dht, &key, &c);
    assert_eq!(v, None, "a deleted value came back");
    rt.block_on(dht.close());
}

/// A replica set that failures shrank below a quorum is not re-planned without the data:
/// a write acknowledged by two replicas (the third was cut off from them) survives the
/// death of those two and the arrival of a new worker. The new worker copies nothing
/// from the one replica that never had the write, the key answers errors rather than
/// "no such key" meanwhile, and once one of the two is back it reads the write.
#[test]
fn a_set_below_quorum_by_failures_is_not_re_planned_onto_a_new_worker() {
    if let Err(why) = ringflow_tests::netfault::available() {
        eprintln!(
            "SKIPPED a_set_below_quorum_by_failures_is_not_re_planned_onto_a_new_worker: {why}"
        );
        return;
    }
    let mut c = TestCluster::start(ClusterOpts::default());
    let rt = runtime();
    let view = view_of(&c, &rt);
    let slots = SlotMap::new(view.assignment.config.partitions).expect("slot map");
    let key = (0..)
        .map(|i| format!("kept-{i}"))
        .find(|k| {
            view.assignment
                .primary(slots.partition_of_key(k.as_bytes()))
                .is_some_and(|p| p.0 == "worker-2")
        })
        .expect("a key worker-2 leads");
    let cuts = [
        cut(&view, "worker-1", "worker-2"),
        cut(&view, "worker-1", "worker-3"),
    ];
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let coordinator = c.coordinator_addr().to_string();
    let dht = rt
        .block_on(DhtClient::connect(&coordinator, &client_id, "ringflow"))
        .expect("dht client");
    rt.block_on(dht.put(&key, "acknowledged"))
        .expect("acknowledged by worker-2 and worker-3");
    c.take_worker("worker-2").kill9();
    c.take_worker("worker-3").kill9();
    drop(cuts);
    c.wait_for("worker-2 and -3 are declared dead", |s| {
        ["worker-2", "worker-3"].iter().all(|id| {
            ringflow_tests::member(s, id).is_some_and(|m| m.state == ringflow::MemberState::Dead)
        })
    });
    c.start_worker("worker-4");
    let s = c.wait_for("worker-4 on the current view", |s| {
        ringflow_tests::member(s, "worker-4")
            .is_some_and(|m| m.state == ringflow::MemberState::Alive && m.member_epoch == s.epoch)
    });
    let w4 = ringflow_tests::member(&s, "worker-4").expect("worker-4");
    assert_eq!(
        w4.partitions, 0,
        "worker-4 was given partitions a quorum of whose replicas are dead"
    );
    // Meanwhile the key is unavailable, never "no such key".
    let meanwhile = rt.block_on(dht.get(&key));
    assert!(
        !matches!(meanwhile, Ok(None)),
        "an acknowledged write reads as missing: {meanwhile:?}"
    );
    c.start_worker("worker-2");
    let value = get_when_answered(&rt, &dht, &key, &c);
    assert_eq!(value.as_deref(), Some(&b"acknowledged"[..]));
    rt.block_on(dht.close());
}

/// A write is applied once: its retry, after an attempt that may have been applied, keeps
/// that attempt's version. The first attempt of `OLD` reaches only its primary (both
/// replicas cut off): `Unknown`. Healed, a read returns `OLD` (read repair copies it to a
/// quorum), and `NEW` is then acknowledged. The retry of `OLD` now finds a newer version
/// than its own and is answered `Unknown`, not stamped again above `NEW`, which would
/// bring `OLD` back after an acknowledged overwrite that followed a read of it.
#[test]
fn a_retried_write_keeps_its_version_and_never_hides_a_later_acknowledged_overwrite() {
    if let Err(why) = ringflow_tests::netfault::available() {
        eprintln!("SKIPPED a_retried_write_keeps_its_version_and_never_hides_a_later_acknowledged_overwrite: {why}");
        return;
    }
    let c = TestCluster::start(ClusterOpts::default());
    c.wait_healthy(3);
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let rt = runtime();
    let view = view_of(&c, &rt);
    let key = b"retried-key".to_vec();
    let (partition, replicas, primary_addr) = placement_of(&view, &key);
    let replicas: Vec<String> = replicas.into_iter().map(|w| w.0).collect();
    assert_eq!(replicas.len(), 3, "replication 3");
    let _in_runtime = rt.enter();
    let direct = pool(&client_id, PeerRole::Client, None);
    let version = || Version {
        ts: (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64)
            << ringflow_dht::version::LOGICAL_BITS,
        node: 7,
    };
    let put = |value: &str, v: Version, retry: bool| DhtRequest::Put {
        epoch: view.epoch(),
        partition,
        items: vec![(key.clone(), Some(value.as_bytes().to_vec()))],
        stamps: ringflow_dht::wire::Stamps {
            versions: vec![v],
            retry,
        },
    };
    let get = DhtRequest::Get {
        epoch: view.epoch(),
        partition,
        keys: vec![key.clone()],
    };
    let old_version = version();
    let first = {
        let _cuts = [
            cut(&view, &replicas[0], &replicas[1]),
            cut(&view, &replicas[0], &replicas[2]),
        ];
        rt.block_on(direct.call(primary_addr, &put("OLD", old_version, false)))
    };
    assert!(
        matches!(&first, Ok(DhtResponse::Unknown { stamped, .. }) if stamped == &vec![old_version]),
        "the first attempt reached only its primary: {first:?}"
    );
    // Healed: the read returns OLD (copied to a quorum first), so OLD took effect.
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    loop {
        match rt.block_on(direct.call(primary_addr, &get)) {
            Ok(DhtResponse::Values { values }) => {
                assert_eq!(
                    values,
                    vec![Some(b"OLD".to_vec())],
                    "the read after the heal"
                );
                break;
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "the read after the heal never answered: {other:?}\n{}",
                c.logs_tail(30)
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = rt.block_on(direct.call(primary_addr, &put("NEW", version(), false)));
    assert!(
        matches!(second, Ok(DhtResponse::Written { .. })),
        "the overwrite: {second:?}"
    );
    let retry = rt.block_on(direct.call(primary_addr, &put("OLD", old_version, true)));
    assert!(
        matches!(retry, Ok(DhtResponse::Unknown { .. })),
        "the retry found a newer write than its own version: {retry:?}"
    );
    let after = rt.block_on(direct.call(primary_addr, &get));
    assert_eq!(
        after.ok(),
        Some(DhtResponse::Values {
            values: vec![Some(b"NEW".to_vec())]
        }),
        "the acknowledged overwrite must stay"
    );
    direct.close();
}

/// An operator can end a wait that would never end: two of three workers die for good,
/// one after the other, so every partition keeps its set and refuses reads and writes. `ringflow
/// forget-worker` without `--accept-data-loss` is refused and changes nothing; with it,
/// for both dead workers, the sets are planned again from the survivor and a new worker
/// (whose handoff, after the first, still waits for the second dead worker's copy), and
/// the DHT serves reads and writes again.
#[test]
fn forgetting_workers_that_died_for_good_lets_the_survivors_serve_again() {
    let mut c = TestCluster::start(ClusterOpts::default());
    c.wait_healthy(3);
    let rt = runtime();
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let coordinator = c.coordinator_addr().to_string();
    let dht = rt
        .block_on(DhtClient::connect(&coordinator, &client_id, "ringflow"))
        .expect("dht client");
    // One after the other: the sets first shrink to {worker-1, worker-3}, then are kept.
    for id in ["worker-2", "worker-3"] {
        c.take_worker(id).kill9();
        c.wait_for(&format!("{id} is declared dead"), |s| {
            ringflow_tests::member(s, id).is_some_and(|m| m.state == ringflow::MemberState::Dead)
        });
    }
    c.start_worker("worker-4");
    c.wait_for("worker-4 is alive", |s| {
        ringflow_tests::member(s, "worker-4")
            .is_some_and(|m| m.state == ringflow::MemberState::Alive)
    });
    let refused = rt.block_on(dht.put("after-the-loss", "x"));
    assert!(refused.is_err(), "a write with one live replica of three");
    let forget = |id: &str, accept: bool| {
        let mut args = vec!["forget-worker".to_string(), id.to_string()];
        if accept {
            args.push("--accept-data-loss".into());
        }
        args.extend(c.client_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ringflow_tests::ringflow(&refs)
    };
    let out = forget("worker-2", false);
    assert!(
        !out.status.success(),
        "forgetting without --accept-data-loss"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--accept-data-loss"),
        "the refusal says what to pass: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = forget("worker-1", true);
    assert!(!live.status.success(), "a live worker cannot be forgotten");
    for id in ["worker-2", "worker-3"] {
        let out = forget(id, true);
        assert!(
            out.status.success(),
            "forget-worker {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let s = c.wait_for("worker-4 holds partitions", |s| {
        ringflow_tests::member(s, "worker-4").is_some_and(|m| m.partitions > 0)
    });
    assert!(
        ringflow_tests::member(&s, "worker-2").is_some_and(|m| m.partitions == 0),
        "the forgotten worker holds nothing"
    );
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    loop {
        match rt.block_on(dht.put("after-the-loss", "served")) {
            Ok(()) => break,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "writes never came back after forgetting: {e}\n{}",
                c.logs_tail(30)
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get_when_answered(&rt, &dht, "after-the-loss", &c).as_deref(),
        Some(&b"served"[..])
    );
    rt.block_on(dht.close());
}
