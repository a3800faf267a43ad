//! The Redis-compatible gateway end to end: real workers started with `--resp-listen`, the
//! `redis` crate (plain and cluster clients), raw sockets, and redis-cli when installed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use redis::{Commands, Value};
use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_tests::redis_client::{connect, error_text};
use ringflow_tests::{pseudo_random, ringflow, Client, ClusterOpts, TestCluster};

fn start() -> (TestCluster, BTreeMap<String, SocketAddr>) {
    let c = TestCluster::start(ClusterOpts {
        resp: true,
        ..ClusterOpts::default()
    });
    let addrs = c.resp_addrs();
    assert_eq!(addrs.len(), 3, "every worker serves RESP: {addrs:?}");
    (c, addrs)
}

fn url(addr: SocketAddr) -> String {
    format!("redis://{addr}/")
}

fn cli(c: &TestCluster, args: &[&str]) -> std::process::Output {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend(c.client_args());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ringflow(&refs)
}

#[test]
fn redis_client_reads_and_writes_through_any_node() {
    let (c, addrs) = start();
    let mut one = connect(addrs["worker-1"]);

    // Connection and server commands.
    let pong: String = redis::cmd("PING").query(&mut one).expect("PING");
    assert_eq!(pong, "PONG");
    let info: redis::InfoDict = redis::cmd("INFO").query(&mut one).expect("INFO");
    assert_eq!(
        info.get::<String>("redis_version").as_deref(),
        Some("7.2.0")
    );
    assert_eq!(info.get::<String>("redis_mode").as_deref(), Some("cluster"));

    // Strings.
    let () = one.set("greeting", "hello").expect("SET");
    let v: Option<String> = one.get("greeting").expect("GET");
    assert_eq!(v.as_deref(), Some("hello"));
    let v: Option<String> = one.get("no-such-key").expect("GET missing");
    assert_eq!(v, None);
    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\n\0end").collect();
    let () = one.set("binary", &binary).expect("SET binary");
    let back: Vec<u8> = one.get("binary").expect("GET binary");
    assert_eq!(back, binary);
    let big = vec![b'x'; 3 * 1024 * 1024 + 7];
    let () = one.set("big", &big).expect("SET 3 MiB");
    let back: Vec<u8> = one.get("big").expect("GET 3 MiB");
    assert_eq!(back.len(), big.len());
    let len: usize = redis::cmd("STRLEN")
        .arg("big")
        .query(&mut one)
        .expect("STRLEN");
    assert_eq!(len, big.len());

    let () = one
        .mset(&[("k1", "v1"), ("k2", "v2"), ("{tag}k3", "v3")])
        .expect("MSET");
    let vals: Vec<Option<String>> = one.mget(&["k1", "k2", "{tag}k3", "missing"]).expect("MGET");
    assert_eq!(
        vals,
        vec![
            Some("v1".to_string()),
            Some("v2".to_string()),
            Some("v3".to_string()),
            None
        ]
    );
    let n: usize = redis::cmd("EXISTS")
        .arg(&["k1", "k2", "missing", "k1"])
        .query(&mut one)
        .expect("EXISTS");
    assert_eq!(n, 3, "a repeated key counts twice, like Redis");
    let () = one.set("doomed", "x").expect("SET");
    let n: usize = one.del(&["doomed", "missing", "doomed"]).expect("DEL");
    assert_eq!(n, 1);
    let n: usize = one.exists("doomed").expect("EXISTS");
    assert_eq!(n, 0);

    // A pipeline: replies in order, a write visible to the read after it.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.set(format!("p{i}"), format!("a{i}"))
            .get(format!("p{i}"))
            .set(format!("p{i}"), format!("b{i}"))
            .get(format!("p{i}"));
    }
    let results: Vec<Value> = pipe.query(&mut one).expect("pipeline");
    assert_eq!(results.len(), 800);
    for (i, chunk) in results.chunks(4).enumerate() {
        assert_eq!(chunk[0], Value::Okay);
        assert_eq!(chunk[1], Value::BulkString(format!("a{i}").into_bytes()));
        assert_eq!(chunk[2], Value::Okay);
        assert_eq!(chunk[3], Value::BulkString(format!("b{i}").into_bytes()));
    }

    // Errors, with Redis's texts; the connection stays usable.
    let e = redis::cmd("SET")
        .arg(&["k", "v", "NX"])
        .query::<Value>(&mut one)
        .unwrap_err();
    assert!(error_text(&e).contains("syntax error"), "{e}");
    let e = redis::cmd("GET").query::<Value>(&mut one).unwrap_err();
    assert!(
        error_text(&e).contains("wrong number of arguments for 'get' command"),
        "{e}"
    );
    let e = redis::cmd("FLUSHALL").query::<Value>(&mut one).unwrap_err();
    assert!(error_text(&e).contains("unknown command 'FLUSHALL'"), "{e}");
    let v: Option<String> = one.get("greeting").expect("GET after errors");
    assert_eq!(v.as_deref(), Some("hello"));

    // The same data from another worker's port, over RESP3.
    let client = redis::Client::open(format!("{}?protocol=resp3", url(addrs["worker-2"])))
        .expect("resp3 client");
    let mut two = client.get_connection().expect("resp3 connection");
    let vals: Vec<Option<String>> = two
        .mget(&["greeting", "k1", "p199", "missing"])
        .expect("MGET on worker-2");
    assert_eq!(
        vals,
        vec![
            Some("hello".to_string()),
            Some("v1".to_string()),
            Some("b199".to_string()),
            None
        ]
    );

    // ... from the CLI ...
    let out = cli(&c, &["get", "k2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v2\n");

    // ... and from the Rust client, whose writes RESP reads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
        let dht = DhtClient::connect(&c.coordinator_addr().to_string(), &id, "ringflow")
            .await
            .expect("dht client");
        assert_eq!(dht.get("binary").await.expect("get"), Some(binary.clone()));
        dht.put("from-rust", "native").await.expect("put");
        dht.close().await;
    });
    let mut three = connect(addrs["worker-3"]);
    let v: Option<String> = three.get("from-rust").expect("GET on worker-3");
    assert_eq!(v.as_deref(), Some("native"));
}

#[test]
fn cluster_client_routes_by_cluster_slots() {
    let (_c, addrs) = start();
    let client =
        redis::cluster::ClusterClient::new(vec![url(addrs["worker-1"])]).expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    for i in 0..100 {
        let () = con.set(format!("ck{i}"), i).expect("cluster SET");
    }
    for i in 0..100 {
        let v: i64 = con.get(format!("ck{i}")).expect("cluster GET");
        assert_eq!(v, i);
    }
    // Every node sees every key, whichever node the cluster client wrote through.
    let mut plain = connect(addrs["worker-3"]);
    let keys: Vec<String> = (0..100).map(|i| format!("ck{i}")).collect();
    let vals: Vec<i64> = plain.mget(&keys).expect("MGET");
    assert_eq!(vals, (0..100).collect::<Vec<i64>>());

    // CLUSTER SLOTS covers all 16384 slots, with the three RESP addresses.
    let slots: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut plain)
        .expect("CLUSTER SLOTS");
    let mut covered = 0i64;
    let mut ports = std::collections::BTreeSet::new();
    for range in &slots {
        let Value::Array(items) = range else {
            panic!("{range:?}")
        };
        let (Value::Int(a), Value::Int(b)) = (&items[0], &items[1]) else {
            panic!("{items:?}")
        };
        covered += b - a + 1;
        assert_eq!(items.len(), 2 + 3, "replication 3: {items:?}");
        for node in &items[2..] {
            let Value::Array(n) = node else {
                panic!("{node:?}")
            };
            if let Value::Int(p) = n[1] {
                ports.insert(p as u16);
            }
        }
    }
    assert_eq!(covered, 16384);
    let expected: std::collections::BTreeSet<u16> = addrs.values().map(|a| a.port()).collect();
    assert_eq!(ports, expected);
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut plain)
        .expect("CLUSTER INFO");
    assert!(info.starts_with("cluster_state:ok\r\n"), "{info}");
}

/// Sends `bytes` (then half-closes if `close_write`) and reads until the server closes or
/// 20 s pass. Returns what was read and whether the server closed.
fn exchange(addr: SocketAddr, bytes: &[u8], close_write: bool) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // A write may fail if the server has already closed on an early error.
    let _ = s.write_all(bytes);
    if close_write {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // A reset after the server closed with unread input.
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

#[test]
fn hostile_resp_input_closes_only_that_connection() {
    let (mut c, addrs) = start();
    let addr = addrs["worker-1"];

    let protocol_errors: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge bulk length",
            b"*1\r\n$999999999999\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "huge multibulk count",
            b"*99999999999\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "multibulk count over the limit",
            b"*2000000\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "negative bulk length",
            b"*1\r\n$-5\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "100 KB inline line",
            vec![b'A'; 100 * 1024],
            "-ERR Protocol error: too big inline request\r\n",
        ),
        (
            "valid commands, then a bad one",
            b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n".to_vec(),
            "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (what, bytes, expected) in &protocol_errors {
        let (reply, closed) = exchange(addr, bytes, false);
        assert_eq!(String::from_utf8_lossy(&reply), *expected, "{what}");
        assert!(closed, "{what}: the server closes the connection");
    }

    // An unterminated frame, then the client goes away: nothing to answer.
    for partial in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk"[..],
        b"*2\r\n$3\r\nSET\r\n$6000000\r\n",
        b"*1\r\n",
        b"GET k",
    ] {
        let (reply, closed) = exchange(addr, partial, true);
        assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
        assert!(closed);
    }

    // Garbage: error replies or a closed connection, never a crash.
    for seed in 0..20u64 {
        let mut g = pseudo_random(seed, 1 + (seed as usize * 997) % 8192);
        if seed % 2 == 0 {
            g[0] = b'*';
        }
        let (reply, closed) = exchange(addr, &g, true);
        assert!(closed, "seed {seed}");
        assert!(
            reply.is_empty() || reply.first() == Some(&b'-'),
            "seed {seed}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }

    // Many connections opened and dropped mid-request.
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(b"*2\r\n$3\r\nGET\r\n");
    }

    // The node is still serving, on fresh connections.
    let mut con = connect(addr);
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");
    let () = con.set("after", "still fine").expect("SET");
    let v: String = con.get("after").expect("GET");
    assert_eq!(v, "still fine");
    let w = c.workers.get_mut("worker-1").expect("worker-1");
    assert!(w.is_running(), "worker-1 is still running");
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("running redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn redis_cli_and_redis_benchmark_work() {
    if !have("redis-cli") {
        println!("skipping: redis-cli not installed (apt-get install redis-tools)");
        return;
    }
    let (_c, addrs) = start();
    let p1 = addrs["worker-1"].port().to_string();
    let p2 = addrs["worker-2"].port().to_string();
    let h = "127.0.0.1";
    assert_eq!(redis_cli(&["-h", h, "-p", &p1, "ping"]).trim(), "PONG");
    assert_eq!(
        redis_cli(&["-h", h, "-p", &p1, "set", "k", "v"]).trim(),
        "OK"
    );
    assert_eq!(redis_cli(&["-h", h, "-p", &p1, "get", "k"]).trim(), "v");
    assert_eq!(
        redis_cli(&["-h", h, "-p", &p2, "-c", "get", "k"]).trim(),
        "v"
    );
    assert_eq!(
        redis_cli(&["-h", h, "-p", &p2, "-c", "set", "k2", "w"]).trim(),
        "OK"
    );
    assert_eq!(redis_cli(&["-h", h, "-p", &p1, "get", "k2"]).trim(), "w");
    assert_eq!(
        redis_cli(&["-h", h, "-p", &p1, "exists", "k", "k2", "nope"]).trim(),
        "2"
    );
    let slots = redis_cli(&["-h", h, "-p", &p1, "cluster", "slots"]);
    assert!(!slots.trim().is_empty());
    assert!(slots.contains(&p1) && slots.contains(&p2), "{slots}");
    let info = redis_cli(&["-h", h, "-p", &p1, "info", "server"]);
    assert!(info.contains("redis_version:"), "{info}");
    let nodes = redis_cli(&["-h", h, "-p", &p1, "cluster", "nodes"]);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");

    if have("redis-benchmark") {
        // Pipelined (-P 16) SET and GET through the gateway; -r spreads the keys.
        let out = Command::new("redis-benchmark")
            .args([
                "-h", h, "-p", &p1, "-t", "set,get", "-n", "2000", "-P", "16", "-r", "1000", "-c",
                "4", "-q",
            ])
            .output()
            .expect("running redis-benchmark");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        println!("redis-benchmark: {text}");
        assert!(text.contains("SET") && text.contains("GET"), "{text}");
        assert!(!text.contains("ERR"), "{text}");
    } else {
        println!("skipping redis-benchmark: not installed");
    }
}

#[test]
fn many_clients_on_one_port_are_forwarded_in_batches_and_every_write_reads_back() {
    // 24 connections to worker-1 at once: two thirds of their keys belong to other
    // workers, and with more requests than a peer's lanes in flight, worker-1 sends them
    // on as batched requests. Every value must still land under its own key.
    let (_c, addrs) = start();
    let one = addrs["worker-1"];
    let writers: Vec<_> = (0..24)
        .map(|t| {
            std::thread::spawn(move || {
                let mut con = connect(one);
                for i in 0..150 {
                    let () = con
                        .set(format!("batch-{t}-{i}"), format!("value-{t}-{i}"))
                        .expect("SET through worker-1");
                }
                // Deletes travel the same way: half of the keys go again.
                for i in (0..150).step_by(2) {
                    let n: i64 = con.del(format!("batch-{t}-{i}")).expect("DEL");
                    assert_eq!(n, 1, "batch-{t}-{i} held a value");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let mut two = connect(addrs["worker-2"]);
    for t in 0..24 {
        let keys: Vec<String> = (0..150).map(|i| format!("batch-{t}-{i}")).collect();
        let got: Vec<Option<String>> = two.mget(&keys).expect("MGET through worker-2");
        for (i, v) in got.iter().enumerate() {
            let want = (i % 2 == 1).then(|| format!("value-{t}-{i}"));
            assert_eq!(*v, want, "batch-{t}-{i}");
        }
    }
}
