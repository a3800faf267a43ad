//! The DHT end to end: real worker processes, the real CLI and the Rust client.

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_tests::writer::{lost_writes, runtime, LoadWriter};
use ringflow_tests::{ringflow, Client, ClusterOpts, TestCluster};

fn cli(c: &TestCluster, args: &[&str]) -> std::process::Output {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend(c.client_args());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ringflow(&refs)
}

async fn client(c: &TestCluster) -> DhtClient {
    let id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    DhtClient::connect(&c.coordinator_addr().to_string(), &id, "ringflow")
        .await
        .expect("dht client")
}

#[test]
fn put_get_delete_through_the_cli() {
    let c = TestCluster::start(ClusterOpts::default());
    let out = cli(&c, &["put", "greeting", "hello world"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&c, &["get", "greeting"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    let out = cli(&c, &["get", "no-such-key"]);
    assert_eq!(out.status.code(), Some(1), "a missing key exits 1");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.is_empty(),
        "a missing key is not an error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&c, &["del", "greeting"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    let out = cli(&c, &["del", "greeting"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    assert_eq!(cli(&c, &["get", "greeting"]).status.code(), Some(1));
}

#[test]
fn acknowledged_writes_survive_a_killed_worker_and_a_full_restart() {
    let mut c = TestCluster::start(ClusterOpts::default());
    let rt = runtime();
    let n = 500;
    let key = |i: usize| format!("key-{i}");
    let value = |i: usize, gen: usize| format!("value-{i}-{gen}");
    rt.block_on(async {
        let dht = client(&c).await;
        dht.put_many((0..n).map(|i| (key(i), value(i, 0))))
            .await
            .expect("put_many");
        // Overwrite half, one by one, and delete a tenth.
        for i in (0..n).step_by(2) {
            dht.put(key(i), value(i, 1)).await.expect("put");
        }
        assert_eq!(
            dht.delete_many((0..n).step_by(10).map(key))
                .await
                .expect("delete"),
            n / 10
        );
        dht.close().await;
    });
    let expected = |i: usize| -> Option<String> {
        if i % 10 == 0 {
            None
        } else if i % 2 == 0 {
            Some(value(i, 1))
        } else {
            Some(value(i, 0))
        }
    };
    let check = |c: &TestCluster| {
        rt.block_on(async {
            let dht = client(c).await;
            let got = dht.get_many((0..n).map(key)).await.expect("get_many");
            for (i, v) in got.into_iter().enumerate() {
                assert_eq!(
                    v.map(|v| String::from_utf8(v).expect("utf-8")),
                    expected(i),
                    "key {i}"
                );
            }
            dht.close().await;
        })
    };
    check(&c);

    // kill -9 one of three workers (RF 3): every acknowledged write still reads back.
    let mut victim = c.take_worker("worker-2");
    victim.kill9();
    c.wait_for("worker-2 declared dead", |s| {
        ringflow_tests::member(s, "worker-2")
            .is_some_and(|m| m.state == ringflow_tests::MemberState::Dead)
    });
    check(&c);

    // Restart every process: the data is on disk.
    c.start_worker("worker-2");
    c.wait_healthy(3);
    let ids: Vec<String> = c.workers.keys().cloned().collect();
    for id in &ids {
        let mut w = c.take_worker(id);
        w.kill9();
    }
    let mut coord = c.coordinator.take().expect("coordinator");
    coord.kill9();
    c.start_coordinator();
    for id in &ids {
        c.start_worker(id);
    }
    c.wait_healthy(3);
    check(&c);
}

#[test]
fn writes_under_load_survive_a_join_and_a_leave() {
    let mut c = TestCluster::start(ClusterOpts::default());
    let writer = LoadWriter::start(c.coordinator_addr().to_string(), c.certs_dir(), "load", 300);
    writer.wait_progress(100);
    c.start_worker("worker-4");
    c.wait_healthy(4);
    writer.wait_progress(150);
    let mut leaving = c.take_worker("worker-1");
    assert!(leaving.terminate().success());
    c.wait_healthy(3);
    writer.wait_progress(50);
    let (stats, log) = writer.stop();
    assert!(stats.acked > 300, "only {stats:?}");
    let lost = lost_writes(&c.coordinator_addr().to_string(), &c.certs_dir(), &log);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:#?}",
        lost.len()
    );
}

#[test]
fn data_follows_its_partitions_after_every_worker_left_and_came_back_in_another_order() {
    // RF 1: each key lives on exactly one worker, so placement after the restart matters.
    let mut c = TestCluster::start(ClusterOpts {
        replication: 1,
        ..ClusterOpts::default()
    });
    let rt = runtime();
    let n = 300;
    rt.block_on(async {
        let dht = client(&c).await;
        dht.put_many((0..n).map(|i| (format!("k{i}"), format!("v{i}"))))
            .await
            .expect("put_many");
        dht.close().await;
    });
    // Every worker stops gracefully (leaves), one after the other.
    for id in ["worker-1", "worker-2", "worker-3"] {
        let mut w = c.take_worker(id);
        assert!(w.terminate().success());
    }
    // They come back in another order; the assignment is planned afresh.
    for id in ["worker-3", "worker-1", "worker-2"] {
        c.start_worker(id);
    }
    c.wait_healthy(3);
    let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
    loop {
        let missing = rt.block_on(async {
            let dht = client(&c).await;
            let got = dht
                .get_many((0..n).map(|i| format!("k{i}")))
                .await
                .expect("get_many");
            dht.close().await;
            got.iter()
                .enumerate()
                .filter(|(i, v)| v.as_deref() != Some(format!("v{i}").as_bytes()))
                .count()
        });
        if missing == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} of {n} keys never came back\n{}",
            c.logs_tail(20)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn a_client_outlives_a_coordinator_restart_and_follows_the_new_views() {
    let mut c = TestCluster::start(ClusterOpts::default());
    let rt = runtime();
    rt.block_on(async {
        let dht = client(&c).await;
        dht.put("before", "1")
            .await
            .expect("put before the restart");
        // The coordinator restarts, then the assignment changes: the client must fetch
        // views from the new coordinator process over a new connection.
        assert!(c.coordinator.take().expect("running").terminate().success());
        c.start_coordinator();
        c.wait_healthy(3);
        c.start_worker("worker-4");
        c.wait_healthy(4);
        let mut leaving = c.take_worker("worker-1");
        assert!(leaving.terminate().success());
        c.wait_healthy(3);
        dht.put_many((0..200).map(|i| (format!("after-{i}"), format!("v{i}"))))
            .await
            .expect("writes after the restart and two view changes");
        let got = dht
            .get_many((0..200).map(|i| format!("after-{i}")))
            .await
            .expect("reads");
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()), "after-{i}");
        }
        assert_eq!(
            dht.get("before").await.expect("get").as_deref(),
            Some(&b"1"[..])
        );
        dht.close().await;
    });
}
