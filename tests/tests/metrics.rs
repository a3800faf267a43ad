//! Prometheus metrics end to end: real processes with `metrics_listen` from a config
//! file, scraped over plain HTTP; the numbers move with DHT traffic and membership.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ringflow_tests::{pseudo_random, ringflow, Client, ClusterOpts, TestCluster, DEADLINE};

/// One HTTP exchange over a fresh connection: (status code, body).
fn http(addr: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(20)));
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    if code == 200 && !head.contains("Content-Type: text/plain; version=0.0.4") {
        return Err(format!("wrong content type: {head}"));
    }
    Ok((code, body.to_string()))
}

/// `GET /metrics`, parsed into `series -> value` (series as written, labels included).
fn scrape(addr: SocketAddr) -> Result<Metrics, String> {
    let (code, body) = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n",
    )?;
    if code != 200 {
        return Err(format!("status {code}: {body}"));
    }
    let mut series = BTreeMap::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("bad sample line {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("bad value in {line:?}: {e}"))?;
        series.insert(key.to_string(), value);
    }
    Ok(Metrics { text: body, series })
}

struct Metrics {
    text: String,
    series: BTreeMap<String, f64>,
}

impl Metrics {
    /// The value of one series, e.g. `ringflow_members{state="alive"}`.
    fn get(&self, series: &str) -> Option<f64> {
        self.series.get(series).copied()
    }

    /// The sum over every series of `name` whose labels contain all of `labels`.
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| {
                k.as_str() == name || (k.starts_with(name) && k[name.len()..].starts_with('{'))
            })
            .filter(|(k, _)| labels.iter().all(|l| k.contains(l)))
            .map(|(_, v)| v)
            .sum()
    }

    fn has_family(&self, name: &str, kind: &str) -> bool {
        self.text.contains(&format!("# TYPE {name} {kind}\n"))
            && self.text.contains(&format!("# HELP {name} "))
    }
}

/// Scrapes until `cond` holds; panics with the last scrape after the deadline.
fn wait_scrape(
    c: &TestCluster,
    addr: SocketAddr,
    what: &str,
    cond: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + DEADLINE;
    let mut last = Err("no scrape yet".to_string());
    while Instant::now() < deadline {
        match scrape(addr) {
            Ok(m) if cond(&m) => return m,
            other => last = other,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = match &last {
        Ok(m) => m.text.clone(),
        Err(e) => e.clone(),
    };
    panic!(
        "timed out waiting for {what} at {addr}:\n{shown}\n{}",
        c.logs_tail(20)
    );
}

/// The address a node wrote to `data_dir/metrics.addr`.
fn metrics_addr(data_dir: &Path) -> SocketAddr {
    let file = data_dir.join("metrics.addr");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(&file) {
            if let Ok(a) = s.trim().parse() {
                return a;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text without ANSI escape sequences (log lines may be coloured).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn cli_ok(c: &TestCluster, args: &[&str]) -> String {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend(c.client_args());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let out = ringflow(&refs);
    assert!(
        out.status.success(),
        "ringflow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const WORKERS: [&str; 3] = ["worker-1", "worker-2", "worker-3"];

#[test]
fn every_node_serves_metrics_and_the_numbers_move() {
    let opts = ClusterOpts::default();
    let partitions = f64::from(opts.partitions);
    let mut c = TestCluster::new(opts);
    let config = c.dir().join("metrics.toml");
    std::fs::write(&config, "metrics_listen = \"127.0.0.1:0\"\n").expect("config file");
    let config = config.display().to_string();
    c.start_coordinator_with(&["--config", &config]);
    let certs = c.certs_dir();
    for id in WORKERS {
        c.start_worker_with(id, &certs, &["--config", &config, "--name", id]);
    }
    c.wait_healthy(WORKERS.len());
    let coord_quic = c.coordinator_addr();

    // The coordinator: membership, epoch, assignment health, traffic.
    let coord = metrics_addr(&c.dir().join("coordinator"));
    let log = strip_ansi(
        &std::fs::read_to_string(c.dir().join("logs/coordinator.log")).unwrap_or_default(),
    );
    assert!(
        log.contains("metrics listening") && log.contains(&format!("addr={coord}")),
        "the coordinator logs its metrics address:\n{log}"
    );
    let m = wait_scrape(&c, coord, "3 alive members", |m| {
        m.get("ringflow_members{state=\"alive\"}") == Some(3.0)
    });
    for family in [
        ("ringflow_members", "gauge"),
        ("ringflow_epoch", "gauge"),
        ("ringflow_partitions_unowned", "gauge"),
        ("ringflow_partitions_under_replicated", "gauge"),
        ("ringflow_frames_sent_total", "counter"),
        ("ringflow_frames_received_total", "counter"),
        ("ringflow_bytes_sent_total", "counter"),
        ("ringflow_bytes_received_total", "counter"),
    ] {
        assert!(
            m.has_family(family.0, family.1),
            "{family:?} missing:\n{}",
            m.text
        );
    }
    for state in ["recovering", "suspect", "dead", "left"] {
        assert_eq!(
            m.get(&format!("ringflow_members{{state=\"{state}\"}}")),
            Some(0.0),
            "{state}"
        );
    }
    let epoch = m.get("ringflow_epoch").expect("epoch");
    assert!(epoch > 0.0, "epoch {epoch}");
    assert_eq!(m.get("ringflow_partitions_unowned"), Some(0.0));
    assert_eq!(m.get("ringflow_partitions_under_replicated"), Some(0.0));
    for counter in [
        "ringflow_frames_sent_total",
        "ringflow_frames_received_total",
        "ringflow_bytes_sent_total",
        "ringflow_bytes_received_total",
    ] {
        assert!(m.sum(counter, &[]) > 0.0, "{counter}:\n{}", m.text);
    }
    assert!(
        m.sum("ringflow_bytes_received_total", &[])
            >= m.sum("ringflow_frames_received_total", &[]) * 4.0,
        "every frame has at least its 4-byte header"
    );
    // Workers are nodes: one series per worker address; the CLI is "client".
    let worker_peers = m
        .series
        .keys()
        .filter(|k| k.starts_with("ringflow_frames_received_total{peer=\"127.0.0.1:"))
        .count();
    assert!(worker_peers >= WORKERS.len(), "{}", m.text);
    assert!(m.sum("ringflow_frames_received_total", &["peer=\"client\""]) > 0.0);
    let coord_frames_before = m.sum("ringflow_frames_received_total", &[]);

    // The workers: epoch, ownership, traffic with the coordinator, DHT series at rest.
    let mut workers = BTreeMap::new();
    for id in WORKERS {
        workers.insert(id, metrics_addr(&c.dir().join(id)));
    }
    let mut primaries = 0.0;
    for (id, addr) in &workers {
        let m = wait_scrape(&c, *addr, "the worker on the coordinator's epoch", |m| {
            m.get("ringflow_epoch") == Some(epoch)
        });
        for family in [
            ("ringflow_epoch", "gauge"),
            ("ringflow_partitions_owned", "gauge"),
            ("ringflow_partitions_primary", "gauge"),
            ("ringflow_dht_requests_total", "counter"),
            ("ringflow_dht_request_seconds", "histogram"),
        ] {
            assert!(
                m.has_family(family.0, family.1),
                "{id}: {family:?}:\n{}",
                m.text
            );
        }
        // Replication 3 on 3 workers: everyone owns every partition.
        assert_eq!(m.get("ringflow_partitions_owned"), Some(partitions), "{id}");
        let p = m.get("ringflow_partitions_primary").expect("primaries");
        assert!(p > 0.0, "{id} is primary of nothing");
        primaries += p;
        let to_coord = format!("peer=\"{coord_quic}\"");
        assert!(
            m.sum("ringflow_frames_sent_total", &[&to_coord]) > 0.0,
            "{id}:\n{}",
            m.text
        );
        assert!(
            m.sum("ringflow_bytes_received_total", &[&to_coord]) > 0.0,
            "{id}"
        );
        for op in ["put", "get", "replicate", "read_replica", "fetch"] {
            for outcome in ["ok", "moved", "unavailable", "error"] {
                let s = format!("ringflow_dht_requests_total{{op=\"{op}\",outcome=\"{outcome}\"}}");
                assert!(m.get(&s).is_some(), "{id}: {s} missing");
            }
            assert!(
                m.get(&format!(
                    "ringflow_dht_request_seconds_bucket{{op=\"{op}\",le=\"0.0001\"}}"
                ))
                .is_some(),
                "{id}: latency buckets of {op}"
            );
        }
    }
    assert_eq!(primaries, partitions, "every partition has one primary");

    // DHT traffic through the CLI moves the request counters and the histogram.
    let dht_totals = |workers: &BTreeMap<&str, SocketAddr>| {
        let mut t = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for addr in workers.values() {
            let m = scrape(*addr).expect("scrape");
            t.0 += m.sum(
                "ringflow_dht_requests_total",
                &["op=\"put\"", "outcome=\"ok\""],
            );
            t.1 += m.sum(
                "ringflow_dht_requests_total",
                &["op=\"get\"", "outcome=\"ok\""],
            );
            t.2 += m.sum(
                "ringflow_dht_requests_total",
                &["op=\"replicate\"", "outcome=\"ok\""],
            );
            t.3 += m.sum("ringflow_dht_request_seconds_count", &["op=\"put\""]);
            t.4 += m.sum("ringflow_dht_request_seconds_sum", &["op=\"put\""]);
            t.5 += m.sum("ringflow_frames_received_total", &["peer=\"client\""]);
            // The +Inf bucket is the count.
            assert_eq!(
                m.get("ringflow_dht_request_seconds_bucket{op=\"put\",le=\"+Inf\"}"),
                m.get("ringflow_dht_request_seconds_count{op=\"put\"}")
            );
        }
        t
    };
    let before = dht_totals(&workers);
    const KEYS: usize = 6;
    for i in 0..KEYS {
        cli_ok(
            &c,
            &["put", &format!("metrics-key-{i}"), &format!("value-{i}")],
        );
    }
    for i in 0..KEYS {
        assert_eq!(
            cli_ok(&c, &["get", &format!("metrics-key-{i}")]),
            format!("value-{i}\n")
        );
    }
    let n = KEYS as f64;
    let after = dht_totals(&workers);
    assert!(after.0 >= before.0 + n, "put ok: {before:?} -> {after:?}");
    assert!(after.1 >= before.1 + n, "get ok: {before:?} -> {after:?}");
    // Each write is replicated to the two other owners; a quorum needs one of them.
    assert!(
        after.2 >= before.2 + n,
        "replicate ok: {before:?} -> {after:?}"
    );
    assert!(
        after.3 >= before.3 + n,
        "put latency count: {before:?} -> {after:?}"
    );
    assert!(
        after.4 > before.4,
        "put latency sum: {before:?} -> {after:?}"
    );
    assert!(
        after.5 > before.5,
        "frames from clients: {before:?} -> {after:?}"
    );

    // Heartbeats keep the coordinator's counters moving.
    wait_scrape(&c, coord, "more frames from the workers", |m| {
        m.sum("ringflow_frames_received_total", &[]) > coord_frames_before
    });

    // A running stream job: per-vertex gauges on the workers, moving; gone when it ends.
    let spec = r#"
name = "metered"
[settings]
batch_size = 64
edge_credits = 256
[[vertex]]
name = "gen"
operator = "source.generate"
config = { kind = "sequence", rate_per_sec = 5000 }
[[vertex]]
name = "keyed"
operator = "key_by"
config = { field = "n" }
inputs = ["gen"]
[[vertex]]
name = "sink"
operator = "sink.discard"
config = { max_per_sec = 300 }
inputs = [{ from = "keyed", edge = "hash" }]
"#;
    let job = c.submit_job(spec).expect("job accepted");
    let sink = |name: &str| format!("{name}{{job=\"{job}\",vertex=\"sink\"}}");
    let first = wait_scrape(&c, workers["worker-1"], "the sink's gauges", |m| {
        m.get(&sink("ringflow_stream_records_in"))
            .is_some_and(|v| v > 0.0)
            && m.get(&sink("ringflow_stream_queue_capacity"))
                .is_some_and(|v| v > 0.0)
    });
    for family in [
        "ringflow_stream_records_in",
        "ringflow_stream_records_out",
        "ringflow_stream_queue_records",
        "ringflow_stream_queue_capacity",
    ] {
        assert!(
            first.has_family(family, "gauge"),
            "{family}:\n{}",
            first.text
        );
    }
    let sink_in = first
        .get(&sink("ringflow_stream_records_in"))
        .unwrap_or(0.0);
    wait_scrape(
        &c,
        workers["worker-1"],
        "the sink's records_in grows",
        |m| {
            m.get(&sink("ringflow_stream_records_in"))
                .is_some_and(|v| v > sink_in)
        },
    );
    // The sink is slower than the source: its queues fill up somewhere (backpressure).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let queued: f64 = workers
            .values()
            .filter_map(|a| scrape(*a).ok())
            .map(|m| {
                m.sum(
                    "ringflow_stream_queue_records",
                    &[&format!("job=\"{job}\"")],
                )
            })
            .sum();
        if queued > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no queued records seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    cli_ok(&c, &["job", "cancel", &job]);
    c.wait_job_end(&job);
    for addr in workers.values() {
        wait_scrape(&c, *addr, "the job's gauges removed", |m| {
            !m.text.contains(&format!("job=\"{job}\""))
        });
    }

    // Other paths and hostile requests: answered or dropped, never fatal.
    let w1 = workers["worker-1"];
    assert_eq!(http(w1, b"GET /nope HTTP/1.1\r\n\r\n").expect("404").0, 404);
    assert_eq!(http(coord, b"GET / HTTP/1.0\r\n\r\n").expect("404").0, 404);
    assert_eq!(
        http(w1, b"DELETE /metrics HTTP/1.1\r\n\r\n")
            .expect("405")
            .0,
        405
    );
    let mut garbage = pseudo_random(7, 3000);
    garbage.extend_from_slice(b"\r\n\r\n");
    if let Ok((code, _)) = http(w1, &garbage) {
        assert_eq!(code, 400, "garbage gets a 400 (or is dropped)");
    }
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    if let Ok((code, _)) = http(w1, huge.as_bytes()) {
        assert_eq!(code, 431, "an oversized request head is refused");
    }
    for seed in 1..20u64 {
        // Raw bytes, half requests and early closes.
        if let Ok(mut s) = TcpStream::connect(w1) {
            let _ = s.write_all(&pseudo_random(seed, (seed as usize) * 97));
        }
    }
    let _idle = TcpStream::connect(w1).expect("an idle connection");
    let m = scrape(w1).expect("still serving after garbage");
    assert!(m.get("ringflow_partitions_owned").is_some());
    for id in WORKERS {
        assert!(
            c.workers.get_mut(id).is_some_and(|w| w.is_running()),
            "{id} died"
        );
    }
    assert!(c.coordinator.as_mut().is_some_and(|n| n.is_running()));

    // A worker that leaves: its endpoint stops, the coordinator's gauges follow.
    let mut leaving = c.take_worker("worker-3");
    assert!(leaving.terminate().success(), "worker-3 exits cleanly");
    assert!(
        TcpStream::connect_timeout(&workers["worker-3"], Duration::from_secs(5)).is_err(),
        "the metrics endpoint stops with the worker"
    );
    wait_scrape(&c, coord, "one member left", |m| {
        m.get("ringflow_members{state=\"alive\"}") == Some(2.0)
            && m.get("ringflow_members{state=\"left\"}") == Some(1.0)
            && m.get("ringflow_epoch").is_some_and(|e| e > epoch)
            && m.get("ringflow_partitions_under_replicated") == Some(0.0)
    });
    wait_scrape(&c, workers["worker-1"], "worker-1 on a newer epoch", |m| {
        m.get("ringflow_epoch").is_some_and(|e| e > epoch)
            && m.get("ringflow_partitions_owned") == Some(partitions)
    });
}

#[test]
fn nodes_without_metrics_listen_serve_nothing() {
    let c = TestCluster::start(ClusterOpts {
        workers: 1,
        replication: 1,
        ..ClusterOpts::default()
    });
    assert!(!c.dir().join("coordinator/metrics.addr").exists());
    assert!(!c.dir().join("worker-1/metrics.addr").exists());
}
