//! The cluster core, end to end: real `ringflow` processes over mutual-TLS QUIC on loopback.

use std::time::{Duration, Instant};

use ringflow_tests::{member, ringflow, Client, ClusterOpts, MemberState, TestCluster};

#[test]
fn coordinator_and_three_workers_own_every_partition_with_n_replicas() {
    let opts = ClusterOpts::default();
    let c = TestCluster::start(opts.clone());
    let s = c.wait_healthy(3);
    assert_eq!(s.partitions, opts.partitions);
    assert_eq!(s.replication, 3);
    assert!(s.unowned.is_empty(), "unowned: {:?}", s.unowned);
    assert_eq!(s.under_replicated, 0);
    // RF 3 over 3 workers: everyone holds a replica of every partition, primaries split evenly.
    for m in &s.members {
        assert_eq!(m.partitions, opts.partitions, "{m:?}");
        let fair = opts.partitions / 3;
        assert!(
            m.primaries >= fair - 1 && m.primaries <= fair + 2,
            "primaries unbalanced: {m:?}"
        );
    }
    assert_eq!(
        s.members.iter().map(|m| m.primaries).sum::<u32>(),
        opts.partitions
    );
    // Every worker acts on the coordinator's epoch, as the worker itself reports it.
    for (id, w) in &c.workers {
        let info = c.node_info(w.addr).expect("node info");
        assert_eq!(info.id, *id);
        assert_eq!(info.epoch, s.epoch, "{id} acts on a stale table");
        assert_eq!(info.partitions, opts.partitions);
        assert!(info.connected);
    }
    // The human table names every member too.
    let mut args = vec!["status".to_string()];
    args.extend(c.client_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ringflow(&refs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for id in c.workers.keys() {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(text.contains("unowned partitions: none"), "{text}");
}

#[test]
fn killed_worker_is_detected_reassigned_and_rejoins() {
    let opts = ClusterOpts {
        workers: 4,
        replication: 2,
        failure_timeout_ms: 2000,
        ..ClusterOpts::default()
    };
    let mut c = TestCluster::start(opts.clone());
    let before = c.wait_healthy(4);
    let victim_share = member(&before, "worker-4").expect("worker-4").partitions;
    assert!(victim_share > 0);

    let mut victim = c.take_worker("worker-4");
    let killed_at = Instant::now();
    victim.kill9();
    let after = c.wait_for(
        "worker-4 dead and its partitions reassigned to live workers",
        |s| {
            let dead = member(s, "worker-4")
                .is_some_and(|m| m.state == MemberState::Dead && m.partitions == 0);
            let live_current = s
                .members
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .all(|m| m.member_epoch == s.epoch);
            dead && live_current
                && s.unowned.is_empty()
                && s.under_replicated == 0
                && s.epoch > before.epoch
        },
    );
    let detected_in = killed_at.elapsed();
    // Detection is driven by the configured timeout (plus polling); on a very slow machine
    // allow a wide margin, but it must not take an order of magnitude longer.
    assert!(
        detected_in < Duration::from_millis(opts.failure_timeout_ms) + Duration::from_secs(20),
        "took {detected_in:?}"
    );
    assert_eq!(
        after
            .members
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .count(),
        3
    );
    assert_eq!(
        after.members.iter().map(|m| m.partitions).sum::<u32>(),
        opts.partitions * 2,
        "every partition keeps 2 replicas"
    );

    // Start it again: it rejoins under the same id and gets partitions back.
    c.start_worker("worker-4");
    let back = c.wait_for("worker-4 alive with partitions again", |s| {
        member(s, "worker-4").is_some_and(|m| m.state == MemberState::Alive && m.partitions > 0)
            && s.members
                .iter()
                .all(|m| m.state != MemberState::Alive || m.member_epoch == s.epoch)
            && s.under_replicated == 0
    });
    assert!(back.epoch > after.epoch);
    let share = member(&back, "worker-4").expect("worker-4").partitions;
    let fair = opts.partitions * 2 / 4;
    assert!(
        share >= fair * 9 / 10,
        "rejoined worker got {share}, fair share {fair}"
    );
}

#[test]
fn graceful_stop_hands_partitions_back_at_once() {
    let opts = ClusterOpts {
        workers: 3,
        replication: 2,
        // A long timeout: only the explicit leave can explain a quick reassignment.
        failure_timeout_ms: 60_000,
        ..ClusterOpts::default()
    };
    let mut c = TestCluster::start(opts);
    let before = c.wait_healthy(3);
    let mut w = c.take_worker("worker-2");
    let status = w.terminate();
    assert!(status.success(), "worker exited with {status}");
    let s = c.wait_for("worker-2 left and owns nothing", |s| {
        member(s, "worker-2").is_some_and(|m| m.state == MemberState::Left && m.partitions == 0)
            && s.under_replicated == 0
            && s.unowned.is_empty()
    });
    assert!(s.epoch > before.epoch);
}

#[test]
fn coordinator_restart_keeps_epoch_and_assignment() {
    let mut c = TestCluster::start(ClusterOpts::default());
    let before = c.wait_healthy(3);
    let state_file = c.dir().join("coordinator").join("coordinator-state.json");
    let read_assignment = || -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_file).expect("state file"))
                .expect("state JSON");
        v["assignment"].clone()
    };
    let assignment_before = read_assignment();

    let mut coord = c.coordinator.take().expect("coordinator");
    coord.kill9();
    // Workers notice and keep retrying; the cluster comes back on the same address.
    c.start_coordinator();
    let after = c.wait_for(
        "all workers reconnected to the restarted coordinator",
        |s| {
            s.members.len() == 3
                && s.members.iter().all(|m| {
                    m.state == MemberState::Alive
                        && m.last_heartbeat_ms_ago.is_some()
                        && m.member_epoch == s.epoch
                })
        },
    );
    assert_eq!(
        after.epoch, before.epoch,
        "nothing is reassigned needlessly"
    );
    for m in &before.members {
        let a = member(&after, &m.id.0).expect("member survives");
        assert_eq!(
            (a.partitions, a.primaries),
            (m.partitions, m.primaries),
            "{}",
            m.id.0
        );
    }
    assert_eq!(
        read_assignment(),
        assignment_before,
        "the persisted table is unchanged"
    );

    // A clean restart (SIGTERM) recovers the same way.
    let mut coord = c.coordinator.take().expect("coordinator");
    assert!(coord.terminate().success());
    c.start_coordinator();
    let again = c.wait_healthy(3);
    assert_eq!(again.epoch, before.epoch);
}

#[test]
fn worker_with_a_foreign_ca_cannot_join() {
    let mut c = TestCluster::start(ClusterOpts {
        workers: 1,
        replication: 1,
        ..ClusterOpts::default()
    });
    // A complete, valid PKI of another cluster.
    let foreign = c.dir().join("foreign-certs");
    let f = foreign.display().to_string();
    ringflow_tests::ringflow_ok(&["certs", "init", "--dir", &f]);
    ringflow_tests::ringflow_ok(&["certs", "issue", "--dir", &f, "--name", "intruder"]);
    ringflow_tests::ringflow_ok(&[
        "certs", "issue", "--dir", &f, "--name", "client", "--client",
    ]);
    c.start_worker_with("intruder", &foreign, &[]);
    // Wait until the intruder has tried and failed at least twice.
    let log = c.workers["intruder"].log.clone();
    let deadline = Instant::now() + ringflow_tests::DEADLINE;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .matches("control session with the coordinator lost")
            .count()
            >= 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "intruder never reported a refusal:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = c.status().expect("cluster still serves");
    assert!(member(&s, "intruder").is_none(), "intruder joined: {s:#?}");
    assert_eq!(s.members.len(), 1);
    // A client holding the foreign CA's certificate is refused too.
    let out = ringflow(&[
        "status",
        "--cluster",
        &c.coordinator_addr().to_string(),
        "--certs",
        &f,
        "--cert-name",
        "client",
    ]);
    assert!(!out.status.success(), "foreign client got a status");
    // A client certificate of the right CA cannot run a worker: refused at start-up.
    let out = ringflow(&[
        "worker",
        "--id",
        "sneaky",
        "--coordinator",
        &c.coordinator_addr().to_string(),
        "--certs",
        &c.certs_dir().display().to_string(),
        "--name",
        "client",
        "--data-dir",
        &c.dir().join("sneaky").display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node certificate"), "{err}");
    // And on the wire, a client certificate that claims to be a worker is forbidden.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        use ringflow_proto::{ControlMsg, ErrorCode, Hello, HelloReply, JoinRequest, PeerRole};
        let id = ringflow_net::TlsIdentity::from_dir(&c.certs_dir(), "client").expect("identity");
        let ep = ringflow_net::Endpoint::client(&id, &ringflow_net::NetConfig::default())
            .expect("endpoint");
        let conn = ep.connect(c.coordinator_addr()).await.expect("connect");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        send.send(&Hello::new(
            PeerRole::Worker,
            Some("sneaky".into()),
            "ringflow",
        ))
        .await
        .expect("hello");
        let r: Option<HelloReply> = recv.recv().await.expect("reply");
        assert!(matches!(r, Some(HelloReply::Accepted { .. })));
        let join = ControlMsg::Join(JoinRequest {
            id: "sneaky".into(),
            addr: "127.0.0.1:9".into(),
            capacity: 1,
            known_epoch: 0,
            services: Default::default(),
        });
        let _ = send.send(&join).await;
        match recv.recv::<ControlMsg>().await {
            Ok(Some(ControlMsg::Error(e))) => assert_eq!(e.code, ErrorCode::Forbidden),
            other => panic!("expected Forbidden, got {other:?}"),
        }
        conn.close(0, "done");
        ep.shutdown().await;
    });
    let s = c.status().expect("status");
    assert!(
        member(&s, "sneaky").is_none(),
        "client cert joined as a worker"
    );
}
