//! The DHT end to end: real worker processes, the real CLI and the Rust client.

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_tests::{ringflow, ClusterOpts, TestCluster};

fn cli(c: &TestCluster, args: &[&str]) -> std::process::Output {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend(c.client_args());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ringflow(&refs)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
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
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let mut c = TestCluster::start(ClusterOpts::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Per key: the last acknowledged value, and values attempted since (which may or may
    // not have been applied when their write failed).
    type Log = HashMap<String, (Option<String>, Vec<String>)>;
    let log: Arc<Mutex<Log>> = Arc::new(Mutex::new(HashMap::new()));
    let (certs, addr) = (c.certs_dir(), c.coordinator_addr().to_string());
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let id = TlsIdentity::from_dir(&certs, "client").expect("identity");
                let dht = DhtClient::connect(&addr, &id, "ringflow")
                    .await
                    .expect("client");
                let (mut n, mut acked, mut failed) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("load-{}", n % 300);
                    let value = format!("v{n}");
                    log.lock()
                        .unwrap()
                        .entry(key.clone())
                        .or_default()
                        .1
                        .push(value.clone());
                    match dht.put(&key, &value).await {
                        Ok(()) => {
                            acked += 1;
                            log.lock().unwrap().insert(key, (Some(value), Vec::new()));
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("write {n} not acknowledged: {e}");
                        }
                    }
                    n += 1;
                }
                dht.close().await;
                (acked, failed)
            })
        })
    };
    let wait_writes = |min: usize| {
        let deadline = std::time::Instant::now() + ringflow_tests::DEADLINE;
        while log
            .lock()
            .unwrap()
            .values()
            .filter(|(a, _)| a.is_some())
            .count()
            < min
        {
            assert!(
                std::time::Instant::now() < deadline,
                "writer makes no progress"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_writes(100);
    c.start_worker("worker-4");
    c.wait_healthy(4);
    wait_writes(250);
    let mut leaving = c.take_worker("worker-1");
    assert!(leaving.terminate().success());
    c.wait_healthy(3);
    wait_writes(300);
    stop.store(true, Ordering::Relaxed);
    let (acked, failed) = writer.join().expect("writer");
    assert!(
        acked > 300,
        "only {acked} writes acknowledged ({failed} failed)"
    );

    let log = log.lock().unwrap().clone();
    let rt = runtime();
    rt.block_on(async {
        let dht = client(&c).await;
        let keys: Vec<String> = log.keys().cloned().collect();
        let got = dht.get_many(keys.iter().cloned()).await.expect("get_many");
        for (key, value) in keys.iter().zip(got) {
            let (last_acked, attempted_since) = &log[key];
            let value = value.map(|v| String::from_utf8(v).expect("utf-8"));
            let ok = value == *last_acked || value.as_ref().is_some_and(|v| attempted_since.contains(v));
            assert!(ok, "{key}: read {value:?}, last acknowledged {last_acked:?}, attempted since {attempted_since:?}");
        }
        dht.close().await;
    });
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
