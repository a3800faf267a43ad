//! Stream jobs end to end: real coordinator and worker processes, jobs submitted with
//! the real CLI, outputs read from the files the sinks wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringflow_tests::{
    endless_job, example_bin, pseudo_random, ringflow, Client, ClusterOpts, JobInfo, JobState,
    TestCluster,
};

/// Writes `files` text files of `lines` lines each, words drawn from a small vocabulary
/// with a skewed distribution; returns the directory and the exact word counts.
fn corpus(dir: &Path, files: usize, lines: usize, seed: u64) -> (PathBuf, BTreeMap<String, u64>) {
    const VOCAB: &[&str] = &[
        "ring",
        "flow",
        "stream",
        "actor",
        "quic",
        "batch",
        "credit",
        "window",
        "merge",
        "sort",
        "key",
        "value",
        "Partition",
        "WORKER",
        "coordinator",
        "epoch",
        "the",
        "a",
        "of",
        "to",
        "naïve",
        "café",
        "x1",
        "42",
    ];
    let root = dir.join(format!("corpus-{seed}"));
    std::fs::create_dir_all(&root).expect("corpus dir");
    let mut counts = BTreeMap::new();
    let bytes = pseudo_random(seed, files * lines * 8);
    let mut b = bytes.iter().map(|x| *x as usize);
    for f in 0..files {
        let mut text = String::new();
        for _ in 0..lines {
            let n = b.next().unwrap_or(3) % 8;
            let mut words = Vec::new();
            for _ in 0..n {
                // Skew: low indices are much more frequent.
                let r = b.next().unwrap_or(0);
                let w = VOCAB[(r * r / 256) % VOCAB.len()];
                words.push(w);
                *counts.entry(w.to_lowercase()).or_insert(0) += 1;
            }
            text.push_str(&words.join(if f % 2 == 0 { " " } else { ", " }));
            text.push_str(if f % 3 == 0 { "\r\n" } else { "\n" });
        }
        std::fs::write(root.join(format!("part-{f:03}.txt")), text).expect("corpus file");
    }
    (root, counts)
}

/// Every JSON line of every finished part file in `dir`.
fn read_parts(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    for p in names {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            !name.ends_with(".tmp"),
            "unfinished part {name} after the job ended"
        );
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            out.push(serde_json::from_str(line).expect("a JSON line"));
        }
    }
    out
}

/// The record itself when the sink wrote `{"key", "value"}`.
fn value_of(v: &serde_json::Value) -> &serde_json::Value {
    match v.get("value") {
        Some(inner) if v.get("key").is_some() => inner,
        _ => v,
    }
}

fn vertex<'a>(j: &'a JobInfo, name: &str) -> &'a ringflow_tests::VertexStatus {
    j.vertices
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vertex {name} in {j:#?}"))
}

#[test]
fn a_custom_operator_in_a_custom_worker_binary_runs_and_bad_specs_name_the_vertex() {
    let bin = example_bin("custom_operator");
    let c = TestCluster::start(ClusterOpts {
        worker_bin: Some(bin),
        ..ClusterOpts::for_jobs()
    });
    let (input, counts) = corpus(c.dir(), 7, 300, 11);
    let out = c.dir().join("out-lengths");
    let spec = format!(
        r#"
name = "word-lengths"
[settings]
batch_size = 64
[[vertex]]
name = "lines"
operator = "source.files"
config = {{ path = "{}" }}
[[vertex]]
name = "words"
operator = "flat_map"
config = {{ function = "split_words" }}
inputs = ["lines"]
[[vertex]]
name = "lens"
operator = "word-len"
inputs = ["words"]
[[vertex]]
name = "histogram"
operator = "len-count"
inputs = [{{ from = "lens", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["histogram"]
"#,
        input.display(),
        out.display()
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}");
    let mut reference: BTreeMap<u64, u64> = BTreeMap::new();
    for (w, n) in &counts {
        *reference.entry(w.chars().count() as u64).or_default() += n;
    }
    let mut got: BTreeMap<u64, u64> = BTreeMap::new();
    for r in read_parts(&out) {
        let r = value_of(&r);
        let len = r["len"].as_u64().expect("len");
        let n = r["count"].as_u64().expect("count");
        assert!(got.insert(len, n).is_none(), "length {len} reported twice");
    }
    assert_eq!(got, reference);
    assert_eq!(
        vertex(&j, "histogram").records_in,
        counts.values().sum::<u64>()
    );

    // Refused at submit time, with the vertex named.
    let unknown = spec.replace("operator = \"len-count\"", "operator = \"len-cont\"");
    let err = c
        .submit_job(&unknown)
        .expect_err("unknown operator refused");
    assert!(
        err.contains("vertex 'histogram'") && err.contains("unknown operator 'len-cont'"),
        "{err}"
    );

    let mismatch = spec.replace("inputs = [\"histogram\"]", "inputs = [\"lens\"]");
    let err = c.submit_job(&mismatch).expect_err("type mismatch refused");
    assert!(
        err.contains("vertex 'out'") && err.contains("type mismatch"),
        "{err}"
    );

    let bad_config = spec.replace(
        "operator = \"word-len\"",
        "operator = \"word-len\"\nconfig = { min_len = 5000 }",
    );
    let err = c.submit_job(&bad_config).expect_err("bad config refused");
    assert!(
        err.contains("vertex 'lens'") && err.contains("min_len must be at most 1000"),
        "{err}"
    );

    let unknown_field = spec.replace(
        "operator = \"word-len\"",
        "operator = \"word-len\"\nconfig = { min_lenght = 2 }",
    );
    let err = c
        .submit_job(&unknown_field)
        .expect_err("unknown config field refused");
    assert!(
        err.contains("vertex 'lens'") && err.contains("min_lenght"),
        "{err}"
    );

    let missing_input = spec.replace("inputs = [\"words\"]", "inputs = [\"wrods\"]");
    let err = c
        .submit_job(&missing_input)
        .expect_err("dangling input refused");
    assert!(
        err.contains("vertex 'lens'") && err.contains("'wrods'"),
        "{err}"
    );

    let cycle = spec.replace(
        "inputs = [\"words\"]",
        "inputs = [\"words\", \"histogram\"]",
    );
    let err = c.submit_job(&cycle).expect_err("cycle refused");
    assert!(err.contains("cycle"), "{err}");

    let not_toml = c.submit_job("name = ").expect_err("garbage refused");
    assert!(not_toml.contains("parse"), "{not_toml}");

    // The cluster still serves after all of that.
    let id = c
        .submit_job(&spec.replace(
            &out.display().to_string(),
            &c.dir().join("again").display().to_string(),
        ))
        .expect("accepted again");
    assert_eq!(c.wait_job_end(&id).state, JobState::Finished);
}

#[test]
fn a_job_whose_worker_dies_fails_with_a_reason_and_cancel_stops_a_job() {
    let mut c = TestCluster::start(ClusterOpts::for_jobs());
    let spec = &endless_job("endless", 2000);
    // Cancel: the job stops everywhere and says so.
    let id = c.submit_job(spec).expect("accepted");
    c.wait_job(&id, "records flowing", |j| {
        vertex(j, "sink").records_in > 1000
    });
    let out = ringflow(
        &[
            &["job", "cancel", &id][..],
            &c.client_args()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Cancelled);

    // A worker dies: the job fails and names it.
    let id = c.submit_job(spec).expect("accepted");
    c.wait_job(&id, "records flowing", |j| {
        vertex(j, "sink").records_in > 1000
    });
    c.take_worker("worker-2").kill9();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Failed, "{j:#?}");
    let reason = j.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("worker-2"),
        "the reason names the lost worker: {reason}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_slow_sink_slows_the_source_and_memory_stays_bounded() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    // The sink takes 1500 records/s per instance; the source could make millions.
    let spec = r#"
name = "backpressure"
[settings]
batch_size = 256
edge_credits = 2048
[[vertex]]
name = "gen"
operator = "source.generate"
config = { kind = "words" }
[[vertex]]
name = "keyed"
operator = "key_by"
config = { field = "." }
inputs = ["gen"]
[[vertex]]
name = "sink"
operator = "sink.discard"
config = { max_per_sec = 1500 }
inputs = [{ from = "keyed", edge = "hash" }]
"#;
    let id = c.submit_job(spec).expect("accepted");
    c.wait_job(&id, "the sink is busy", |j| {
        vertex(j, "sink").records_in > 3000
    });
    let pids: Vec<u32> = c.workers.values().map(|w| w.child.id()).collect();
    let baseline: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let first = c.job(&id).expect("status");
    let t0 = Instant::now();
    let mut peak = vec![0u64; pids.len()];
    while t0.elapsed() < Duration::from_secs(6) {
        for (i, p) in pids.iter().enumerate() {
            peak[i] = peak[i].max(rss_kib(*p));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = c.job(&id).expect("status");
    let produced = vertex(&second, "gen").records_out - vertex(&first, "gen").records_out;
    let consumed = vertex(&second, "sink").records_in - vertex(&first, "sink").records_in;
    // In-flight records are bounded by credits (per channel) plus the QUIC windows and
    // batches in hand: a few tens of thousands of records, never millions.
    let in_flight = vertex(&second, "gen").records_out - vertex(&second, "sink").records_in;
    eprintln!(
        "backpressure: produced {produced}, consumed {consumed} in {:?}; in flight {in_flight}; rss baseline {baseline:?} KiB, peak {peak:?} KiB; sink queue {}/{}",
        t0.elapsed(),
        vertex(&second, "sink").queued,
        vertex(&second, "sink").queue_capacity
    );
    assert!(consumed > 0, "the sink made progress");
    assert!(
        produced <= consumed + 100_000,
        "the source must slow to the sink's pace: produced {produced} while {consumed} were consumed"
    );
    assert!(
        in_flight < 200_000,
        "records in flight are bounded: {in_flight}"
    );
    for (i, p) in peak.iter().enumerate() {
        assert!(
            *p < baseline[i] + 150 * 1024,
            "worker memory stays within budget: baseline {} KiB, peak {p} KiB",
            baseline[i]
        );
    }
    assert!(
        vertex(&second, "sink").queued > 0,
        "the sink's queue shows the backlog"
    );
}

#[test]
fn word_count_on_three_workers_equals_a_single_threaded_reference() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let (input, counts) = corpus(c.dir(), 9, 2000, 5);
    // The same job with its operators chained (the default) and with chaining off.
    for (name, chaining) in [("wordcount", true), ("wordcount-unchained", false)] {
        word_count_run(&c, name, chaining, &input, &counts);
    }
}

fn word_count_run(
    c: &TestCluster,
    name: &str,
    chaining: bool,
    input: &std::path::Path,
    counts: &BTreeMap<String, u64>,
) {
    let out = c.dir().join(format!("out-{name}"));
    let spec = ringflow_tests::word_count_job(
        name,
        &format!("batch_size = 300\nlinger_ms = 5\nchaining = {chaining}"),
        input,
        "",
        &out,
        &format!(
            r#"[[vertex]]
name = "to-dht"
operator = "sink.dht"
config = {{ key_prefix = "{name}:", value_field = "count" }}
inputs = ["counts"]
"#
        ),
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}");
    // The DHT sink's writes are acknowledged: they read back through the CLI.
    assert_eq!(
        vertex(&j, "to-dht").counters.get("written").copied(),
        Some(counts.len() as u64)
    );
    for (word, n) in counts.iter().take(5) {
        let key = format!("{name}:{word}");
        let mut args = vec!["get", key.as_str()];
        let client = c.client_args();
        args.extend(client.iter().map(String::as_str));
        let out = ringflow(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), n.to_string());
    }
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in read_parts(&out) {
        let r = value_of(&r);
        let k = r["key"].as_str().expect("key").to_string();
        let n = r["count"].as_u64().expect("count");
        assert!(
            got.insert(k.clone(), n).is_none(),
            "word {k} counted on two workers"
        );
    }
    assert_eq!(
        &got, counts,
        "{name}: word counts differ from the reference"
    );
    let total: u64 = counts.values().sum();
    assert_eq!(vertex(&j, "counts").records_in, total);
    assert_eq!(vertex(&j, "lines").records_out, 9 * 2000);
}

#[test]
fn windowed_aggregation_with_out_of_order_and_late_events_equals_a_reference() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir().join("events");
    std::fs::create_dir_all(&dir).expect("events dir");
    const DELAY: i64 = 2000;
    const SIZE: i64 = 10_000;
    let noise = pseudo_random(77, 20_000);
    let mut events: Vec<(String, i64, i64)> = Vec::new();
    let mut late_expected = 0u64;
    let mut max_seen = i64::MIN;
    let mut reference: BTreeMap<(String, i64), (u64, i64, i64)> = BTreeMap::new();
    let mut lines = String::new();
    for i in 0..3000usize {
        let host = format!("h{}", noise[i] % 5);
        let jitter = i64::from(noise[i + 5000] % 140) * 10 - 700; // ±700 ms, under DELAY
        let mut ts = 1_700_000_000_000 + (i as i64) * 40 + jitter;
        // Every 150th event is far behind: its window has fired already.
        let deliberately_late = i % 150 == 149;
        if deliberately_late {
            ts = max_seen - 25_000;
        }
        let v = i64::from(noise[i + 10_000]);
        // The watermark the window sees when this event arrives (batch_size = 1: every
        // record is followed by the watermark it produced).
        let wm = if max_seen == i64::MIN {
            i64::MIN
        } else {
            max_seen - DELAY - 1
        };
        let start = ts.div_euclid(SIZE) * SIZE;
        if start + SIZE - 1 <= wm {
            late_expected += 1;
        } else {
            let e = reference
                .entry((host.clone(), start))
                .or_insert((0, 0, i64::MIN));
            e.0 += 1;
            e.1 += v;
            e.2 = e.2.max(v);
        }
        max_seen = max_seen.max(ts);
        lines.push_str(&format!("{{\"host\":\"{host}\",\"ts\":{ts},\"v\":{v}}}\n"));
        events.push((host, ts, v));
    }
    // Garbage lines are counted, not fatal.
    lines.push_str("not json\n{\"host\":\"h1\"}\n");
    std::fs::write(dir.join("events.jsonl"), lines).expect("events file");
    assert!(late_expected >= 15, "the input must contain late events");

    let out = c.dir().join("out-windows");
    // One chain up to the key_by, then a hash edge to a window instance on every worker:
    // each window instance has exactly one input, whose records and watermarks arrive in
    // order, so which events are late does not depend on timing. (With one reader per
    // worker, the window's watermark would wait for the readers that have no file to
    // end, and early late events could slip in.)
    let spec = format!(
        r#"
name = "windows"
[settings]
batch_size = 1
[[vertex]]
name = "lines"
operator = "source.files"
parallelism = 1
config = {{ path = "{}" }}
[[vertex]]
name = "parse"
operator = "map"
parallelism = 1
config = {{ function = "parse_json" }}
inputs = ["lines"]
[[vertex]]
name = "wm"
operator = "watermark"
parallelism = 1
config = {{ time_field = "ts", max_delay_ms = {DELAY} }}
inputs = ["parse"]
[[vertex]]
name = "keyed"
operator = "key_by"
parallelism = 1
config = {{ field = "host" }}
inputs = ["wm"]
[[vertex]]
name = "win"
operator = "window"
config = {{ kind = "tumbling", size_ms = {SIZE}, time_field = "ts", field = "v", aggregates = ["count", "sum", "max"] }}
inputs = [{{ from = "keyed", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["win"]
"#,
        dir.display(),
        out.display()
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}");
    let mut got: BTreeMap<(String, i64), (u64, i64, i64)> = BTreeMap::new();
    for r in read_parts(&out) {
        let r = value_of(&r);
        assert!(
            r.get("update").is_none(),
            "no lateness allowed, so no updates: {r}"
        );
        let key = (
            r["key"].as_str().expect("key").to_string(),
            r["window_start"].as_i64().expect("window_start"),
        );
        assert_eq!(r["window_end"].as_i64(), Some(key.1 + SIZE));
        let val = (
            r["count"].as_u64().expect("count"),
            r["sum"].as_f64().expect("sum") as i64,
            r["max"].as_f64().expect("max") as i64,
        );
        assert!(
            got.insert(key.clone(), val).is_none(),
            "window {key:?} emitted twice"
        );
    }
    assert_eq!(got, reference, "windows differ from the reference");
    let win = vertex(&j, "win");
    assert_eq!(
        win.counters.get("late_dropped").copied().unwrap_or(0),
        late_expected,
        "late events are counted and dropped: {win:#?}"
    );
    assert_eq!(
        vertex(&j, "parse").counters.get("parse_errors").copied(),
        Some(1)
    );
    assert_eq!(
        vertex(&j, "wm").counters.get("missing_time").copied(),
        Some(1)
    );
}

/// Idleness comes only from sources (FLINK-35886): a window instance whose senders are
/// quiet only because they are blocked on credit (a throttled sink behind another window
/// instance) must not count them idle and run its watermark past their records. Three
/// files of in-order events, one per reader, so no event is late by construction; the
/// sinks are throttled, credits small and the idle timeout short, so senders block for
/// many idle timeouts. No event may be dropped as late and every window must equal the
/// reference.
#[test]
fn a_throttled_sink_behind_windows_makes_no_event_late() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir().join("events");
    const SIZE: i64 = 1000;
    // Every file covers the same 30 s of event time, in order.
    let reference = ringflow_tests::keyed_events(&dir, 3, 3000, 10, 240, SIZE);
    let out = c.dir().join("out-throttled");
    let spec = ringflow_tests::windowed_count_job(
        "throttled-windows",
        "batch_size = 8\nedge_credits = 16\nidle_timeout_ms = 100\nlinger_ms = 5",
        &dir,
        "",
        SIZE,
        &out,
        ", max_per_sec = 250",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}");
    let win = vertex(&j, "win");
    assert_eq!(
        win.counters.get("late_dropped").copied().unwrap_or(0),
        0,
        "no event is late by construction: {win:#?}"
    );
    let got = ringflow_tests::read_window_counts(&out);
    assert_eq!(got.len(), reference.len(), "windows emitted");
    assert_eq!(got, reference, "windows differ from the reference");
}
