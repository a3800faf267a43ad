//! Bounded work per request on the DHT's RESP port, against real processes: past
//! `--max-clients` a connection gets Redis's error and is closed while the others are
//! served; an `MGET` whose reply would pass `--max-reply-bytes`, or that names more keys
//! than `--max-keys-per-command`, gets an error while the worker stays a live member.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Value;
use ringflow_tests::redis_client::{connect, error_text};
use ringflow_tests::{member, Client, ClusterOpts, TestCluster};

/// How long a condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);

/// A two-worker cluster with a RESP port on each worker, started with `flags`.
fn start(flags: &[&str]) -> TestCluster {
    let mut c = TestCluster::new(ClusterOpts {
        workers: 2,
        replication: 2,
        resp: true,
        ..ClusterOpts::default()
    });
    c.start_coordinator();
    let certs = c.certs_dir();
    for id in ["worker-1", "worker-2"] {
        c.start_worker_with(id, &certs, flags);
    }
    c.wait_healthy(2);
    c
}

/// `PING` on a raw socket: the first bytes of the answer (empty if the server closed).
fn ping(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    if s.write_all(b"PING\r\n").is_err() {
        return Vec::new();
    }
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// A reply described without its (possibly huge) contents.
fn shape(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::BulkString(b) => format!("a bulk string of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: redis::InfoDict = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.get::<String>(field)
}

#[test]
fn past_max_clients_the_extra_connection_gets_the_error_and_the_others_are_served() {
    let c = start(&["--max-clients", "3"]);
    let addr = c.resp_addrs()["worker-1"];
    let mut served: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    for s in &mut served {
        assert_eq!(ping(s), b"+PONG\r\n");
    }

    // The fourth is told why and closed, as Redis does.
    // It sends nothing: the error and the close (an end of stream, not a reset) come
    // unasked.
    let mut extra = TcpStream::connect(addr).expect("connect");
    extra.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut got = Vec::new();
    let closed = extra.read_to_end(&mut got);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    assert!(
        closed.is_ok(),
        "the refused connection is closed: {closed:?}"
    );

    // The others are still served, and the refusal is counted.
    for s in &mut served {
        assert_eq!(ping(s), b"+PONG\r\n");
    }
    served.pop();
    // Once a client left, a new one is served (the server notices the close first).
    let deadline = Instant::now() + DEADLINE;
    let mut fresh = loop {
        let mut s = TcpStream::connect(addr).expect("connect");
        if ping(&mut s) == b"+PONG\r\n" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed after a client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(served.pop());
    let deadline = Instant::now() + DEADLINE;
    let mut con = loop {
        if let Ok(client) = redis::Client::open(format!("redis://{addr}/")) {
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(10)) {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    break con;
                }
            }
        }
        assert!(Instant::now() < deadline, "no slot freed for INFO");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        info_field(&mut con, "clients", "maxclients").as_deref(),
        Some("3")
    );
    let rejected: u64 = info_field(&mut con, "stats", "rejected_connections")
        .and_then(|v| v.parse().ok())
        .expect("rejected_connections");
    assert!(rejected >= 1, "{rejected}");
    assert_eq!(ping(&mut fresh), b"+PONG\r\n");
    // Other workers are not affected by worker-1's clients.
    let mut other = TcpStream::connect(c.resp_addrs()["worker-2"]).expect("connect");
    assert_eq!(ping(&mut other), b"+PONG\r\n");
}

#[test]
fn an_mget_past_the_reply_cap_is_refused_and_the_worker_stays_a_live_member() {
    // The reply cap is never below max_value (8 MiB by default) plus 1 KiB.
    let c = start(&[
        "--max-reply-bytes",
        "4194304",
        "--max-keys-per-command",
        "1000",
    ]);
    let addrs = c.resp_addrs();
    let mut con = connect(addrs["worker-1"]);
    let big = vec![b'x'; 1024 * 1024];
    let () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut con)
        .expect("SET 1 MiB");

    // 16 MiB of reply: refused, sized from the one value read.
    let e = match redis::cmd("MGET")
        .arg(vec!["big"; 16])
        .query::<Value>(&mut con)
    {
        Err(e) => e,
        Ok(v) => panic!("an MGET past the reply cap is answered: {}", shape(&v)),
    };
    let text = error_text(&e);
    assert!(
        text.contains("the reply to 'mget' would take") && text.contains("above the limit of"),
        "{text}"
    );
    // As large as the key cap allows (1000 MiB of reply): refused as cheaply.
    let started = Instant::now();
    let e = match redis::cmd("MGET")
        .arg(vec!["big"; 1000])
        .query::<Value>(&mut con)
    {
        Err(e) => e,
        Ok(v) => panic!("a 1000-fold MGET is answered: {}", shape(&v)),
    };
    assert!(error_text(&e).contains("'mget'"), "{}", error_text(&e));
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    // One key more than the key cap: refused before anything is read.
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let e = redis::cmd("MGET")
        .arg(&keys)
        .query::<Value>(&mut con)
        .expect_err("an MGET past the key cap is refused");
    assert_eq!(
        error_text(&e),
        "ERR too many keys for 'mget': 1001, at most 1000 per command"
    );

    // Under the cap, the same connection is served.
    let vals: Vec<Vec<u8>> = redis::cmd("MGET")
        .arg(vec!["big"; 4])
        .query(&mut con)
        .expect("MGET under the cap");
    assert_eq!(vals.len(), 4);
    assert!(vals.iter().all(|v| *v == big));
    let () = redis::cmd("SET")
        .arg("after")
        .arg("ok")
        .query(&mut con)
        .expect("SET after");
    let v: String = redis::cmd("GET")
        .arg("after")
        .query(&mut con)
        .expect("GET after");
    assert_eq!(v, "ok");

    // The worker stayed a live, heartbeating member of the cluster.
    let status = c.wait_healthy(2);
    let me = member(&status, "worker-1").expect("worker-1 in the status");
    assert!(
        me.last_heartbeat_ms_ago.is_some_and(|ms| ms < 2000),
        "{me:?}"
    );
}
