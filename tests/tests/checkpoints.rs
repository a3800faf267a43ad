//! Checkpoints of stream jobs against real processes (issue 11): barriers injected by the
//! coordinator travel through every worker, each instance's snapshot is stored in the
//! cluster's DHT, and the job's status shows the completed checkpoints.

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_stream::checkpoint::InstanceSnapshot;
use ringflow_tests::writer::runtime;
use ringflow_tests::{ringflow, Client, ClusterOpts, TestCluster};

/// A keyed count over a generated sequence, checkpointed every 300 ms: checkpoints
/// complete one after another with a part per instance (4 vertices on 3 workers), each
/// part reads back from the DHT with its checksum, and the count's parts hold its keyed
/// state per ring partition.
#[test]
fn a_running_job_is_checkpointed_into_the_dht() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let spec = r#"
name = "checkpointed"
[settings]
checkpoint_interval_ms = 300
[[vertex]]
name = "gen"
operator = "source.generate"
config = { kind = "sequence", rate_per_sec = 2000 }
[[vertex]]
name = "keyed"
operator = "key_by"
config = { field = "n" }
inputs = ["gen"]
[[vertex]]
name = "counts"
operator = "count"
inputs = [{ from = "keyed", edge = "hash" }]
[[vertex]]
name = "sink"
operator = "sink.discard"
inputs = ["counts"]
"#;
    let id = c.submit_job(spec).expect("job accepted");
    let j = c.wait_job(&id, "two checkpoints with state", |j| {
        j.checkpoints.completed >= 2
            && j.checkpoints
                .last
                .as_ref()
                .is_some_and(|l| l.size_bytes > 0)
    });
    let last = j.checkpoints.last.clone().expect("a completed checkpoint");
    assert_eq!(last.parts.len(), 12, "one part per instance: {last:#?}");
    assert!(last.id >= 2);
    // `job status` prints it.
    let mut args = vec!["job".to_string(), "status".into(), id.clone()];
    args.extend(c.client_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ringflow(&refs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("checkpoints: "), "{text}");

    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let rt = runtime();
    let dht = rt
        .block_on(DhtClient::connect(
            &c.coordinator_addr().to_string(),
            &client_id,
            "ringflow",
        ))
        .expect("dht client");
    // Only the last 3 checkpoints are kept: on a slow machine the one read may be
    // deleted meanwhile (its chunks are gone, never wrong); then the newest is read.
    let mut last = last;
    let mut keyed_partitions = 0;
    'read: for attempt in 0..20 {
        keyed_partitions = 0;
        for part in &last.parts {
            let keys: Vec<Vec<u8>> = (0..part.chunks)
                .map(|i| format!("{}/{i}", part.key).into_bytes())
                .collect();
            let chunks = rt.block_on(dht.get_many(keys)).expect("read the part");
            if chunks.iter().any(Option::is_none) && attempt < 19 {
                last = c
                    .job(&id)
                    .expect("status")
                    .checkpoints
                    .last
                    .expect("a checkpoint");
                continue 'read;
            }
            let bytes: Vec<u8> = chunks
                .into_iter()
                .flat_map(|c| c.expect("every chunk of a retained checkpoint is stored"))
                .collect();
            assert_eq!(bytes.len() as u64, part.bytes, "{}", part.key);
            assert_eq!(xxhash_rust::xxh3::xxh3_64(&bytes), part.checksum);
            let snap: InstanceSnapshot = rmp_serde::from_slice(&bytes).expect("a snapshot");
            assert_eq!(snap.checkpoint, last.id);
            assert_eq!(snap.vertex, part.vertex);
            match part.vertex.as_str() {
                "counts" => keyed_partitions += snap.partitions.len(),
                "gen" => assert!(snap.operator.is_none() || snap.partitions.is_empty()),
                _ => assert!(
                    snap.partitions.is_empty(),
                    "{} keeps no keyed state",
                    part.vertex
                ),
            }
        }
        break;
    }
    assert!(keyed_partitions > 0, "the counts are in the checkpoint");
    rt.block_on(dht.close());
    // Later checkpoints keep coming while it runs.
    let next = last.id;
    c.wait_job(&id, "a later checkpoint", |j| {
        j.checkpoints.last.as_ref().is_some_and(|l| l.id > next)
    });
    assert_eq!(
        c.job(&id).expect("status").checkpoints.failed,
        0,
        "no checkpoint failed"
    );
}

/// Alignment under backpressure: a throttled sink behind a hash edge keeps its channels
/// full of credit-bound records, and the sink and the count (each with an input per
/// worker) must still align each checkpoint's barriers, so checkpoints keep completing.
#[test]
fn checkpoints_complete_while_a_slow_sink_holds_the_job_back() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let spec = r#"
name = "checkpointed-backpressure"
[settings]
checkpoint_interval_ms = 200
batch_size = 64
edge_credits = 256
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
name = "counts"
operator = "count"
inputs = [{ from = "keyed", edge = "hash" }]
[[vertex]]
name = "sink"
operator = "sink.discard"
config = { max_per_sec = 500 }
inputs = [{ from = "keyed", edge = "hash" }]
"#;
    let id = c.submit_job(spec).expect("job accepted");
    let j = c.wait_job(&id, "three checkpoints under backpressure", |j| {
        j.checkpoints.completed >= 3
    });
    let sink = j
        .vertices
        .iter()
        .find(|v| v.name == "sink")
        .expect("sink status");
    assert!(sink.queued > 0, "the sink is the bottleneck: {sink:?}");
    assert_eq!(j.checkpoints.failed, 0, "{:#?}", j.checkpoints);
}

/// Word count over files read at a fixed pace, checkpointed every 200 ms; worker-2 is
/// killed (-9) in the middle. The job restarts by itself on the two live workers from
/// its last checkpoint (sources resume at their byte offsets, the counts come back by
/// ring partition on their new owners) and its output equals the single-threaded count
/// exactly: no word lost, none counted twice.
#[test]
fn a_job_restarts_from_its_last_checkpoint_when_a_worker_is_killed_and_counts_exactly() {
    let mut c = TestCluster::start(ClusterOpts {
        failure_timeout_ms: 2000,
        ..ClusterOpts::for_jobs()
    });
    let dir = c.dir().join("corpus");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let vocab = [
        "ring", "flow", "stream", "actor", "quic", "batch", "credit", "key",
    ];
    let noise = ringflow_tests::pseudo_random(11, 60_000);
    let mut reference: std::collections::BTreeMap<String, u64> = Default::default();
    let mut n = noise.iter().map(|b| *b as usize);
    for f in 0..3 {
        let mut text = String::new();
        for _ in 0..1500 {
            let words: Vec<&str> = (0..1 + n.next().unwrap_or(0) % 5)
                .map(|_| vocab[(n.next().unwrap_or(0) * n.next().unwrap_or(0) / 97) % vocab.len()])
                .collect();
            for w in &words {
                *reference.entry(w.to_string()).or_default() += 1;
            }
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("f{f}.txt")), text).expect("corpus file");
    }
    let out = c.dir().join("out-recovered");
    let spec = ringflow_tests::word_count_job(
        "recovered-wordcount",
        "checkpoint_interval_ms = 200\nrestart_backoff_ms = 200\nlinger_ms = 5",
        &dir,
        ", max_per_sec = 500",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    // A third of the way: checkpoints with state, most lines still to read.
    c.wait_job(&id, "a checkpoint a third of the way", |j| {
        let read = j
            .vertices
            .iter()
            .find(|v| v.name == "lines")
            .map_or(0, |v| v.records_out);
        j.checkpoints.completed >= 2 && read >= 1500
    });
    c.take_worker("worker-2").kill9();
    let killed = std::time::Instant::now();
    let j = c.wait_job_end(&id);
    eprintln!(
        "recovery: finished {:?} after the kill; restored from {:?}; logs:\n{}",
        killed.elapsed(),
        j.restored_from,
        c.logs_tail(12)
    );
    assert_eq!(j.state, ringflow_tests::JobState::Finished, "{j:#?}");
    assert_eq!(j.restarts, 1, "{j:#?}");
    assert!(
        j.restored_from.is_some(),
        "restored from a checkpoint: {j:#?}"
    );
    assert_eq!(j.workers.len(), 2, "runs on the live workers");
    let mut got: std::collections::BTreeMap<String, u64> = Default::default();
    for e in std::fs::read_dir(&out).expect("output dir") {
        let p = e.expect("entry").path();
        let name = p.display().to_string();
        assert!(!name.ends_with(".tmp"), "unfinished part {name}");
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let v = v.get("value").cloned().unwrap_or(v);
            let key = v["key"].as_str().expect("key").to_string();
            let count = v["count"].as_u64().expect("count");
            assert!(got.insert(key.clone(), count).is_none(), "{key} twice");
        }
    }
    assert_eq!(
        got, reference,
        "the counts after a kill equal the reference"
    );
}

/// Event-time windows written by `sink.file` as they fire, with a worker killed (-9)
/// while windows are open: the job restarts from its last checkpoint on the two live
/// workers, the windows' state and timers come back on the partitions' new owners, the
/// file parts are cut back to the checkpoint (the dead instance's part is taken over), so
/// every window is written exactly once with every event counted.
#[test]
fn windows_written_as_they_fire_survive_a_kill_exactly_once() {
    let mut c = TestCluster::start(ClusterOpts {
        failure_timeout_ms: 2000,
        ..ClusterOpts::for_jobs()
    });
    let dir = c.dir().join("events");
    const SIZE: i64 = 1000;
    // Two files on three workers: after the kill each of the two live readers still
    // reads one file (a reader given two files would read the second behind its own
    // watermark: event time is tracked per reader, not per file).
    let reference = ringflow_tests::keyed_events(&dir, 2, 1500, 20, 40, SIZE);
    let out = c.dir().join("out-windows");
    let spec = ringflow_tests::windowed_count_job(
        "recovered-windows",
        "checkpoint_interval_ms = 200\nrestart_backoff_ms = 200\nlinger_ms = 5",
        &dir,
        ", max_per_sec = 400",
        SIZE,
        &out,
        ", flush_every = 1",
    );
    kill_one_while_it_emits(&mut c, &spec, "win");
    let got = ringflow_tests::read_window_counts(&out);
    let diff: Vec<String> = reference
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k:?}: {v} expected, {:?} written", got.get(k)))
        .collect();
    let (want, have): (u64, u64) = (reference.values().sum(), got.values().sum());
    assert!(
        diff.is_empty() && got.len() == reference.len(),
        "{} of {} windows differ ({want} events expected, {have} counted; {} windows written): {:#?}",
        diff.len(),
        reference.len(),
        got.len(),
        &diff[..diff.len().min(8)]
    );
}

/// A windowed join (`join.window`, a two-input operator fed by two `hash` edges from
/// two filters of one stream) checkpointed while it runs, and a worker killed (-9) with
/// windows open: the job restarts from its last checkpoint on the two live workers, both
/// sides' state comes back per partition, barriers were aligned over both inputs, and
/// every pair is written exactly once.
#[test]
fn a_windowed_join_survives_a_kill_exactly_once() {
    let mut c = TestCluster::start(ClusterOpts {
        failure_timeout_ms: 2000,
        ..ClusterOpts::for_jobs()
    });
    const SIZE: i64 = 1000;
    let dir = c.dir().join("events");
    std::fs::create_dir_all(&dir).expect("events dir");
    // Two files (one per live reader after the kill, see the windows test above); each
    // line is a left or a right record of one of 20 keys.
    let base = 1_700_000_000_000i64;
    let mut records = Vec::new();
    for f in 0..2i64 {
        let mut text = String::new();
        for i in 0..1500i64 {
            let (ts, key, id) = (base + i * 20 + f, (i * 7 + f * 13) % 20, f * 100_000 + i);
            let side = if (i / 3 + f) % 2 == 0 { "l" } else { "r" };
            text.push_str(&format!(
                "{{\"k\":\"k{key}\",\"ts\":{ts},\"side\":\"{side}\",\"id\":{id}}}\n"
            ));
            records.push((side, key, ts.div_euclid(SIZE), id));
        }
        std::fs::write(dir.join(format!("events-{f}.jsonl")), text).expect("events file");
    }
    let mut want: Vec<(i64, i64)> = Vec::new();
    for l in records.iter().filter(|r| r.0 == "l") {
        for r in records.iter().filter(|r| r.0 == "r") {
            if l.1 == r.1 && l.2 == r.2 {
                want.push((l.3, r.3));
            }
        }
    }
    want.sort_unstable();
    assert!(want.len() > 1000, "{} pairs", want.len());
    let out = c.dir().join("out-join");
    let head = ringflow_tests::keyed_events_head(
        "recovered-join",
        "checkpoint_interval_ms = 200\nrestart_backoff_ms = 200\nlinger_ms = 5",
        &dir,
        ", max_per_sec = 400",
    );
    let spec = format!(
        r#"{head}
[[vertex]]
name = "lefts"
operator = "filter"
config = {{ function = "equals", field = "side", value = "l" }}
inputs = ["keyed"]
[[vertex]]
name = "rights"
operator = "filter"
config = {{ function = "equals", field = "side", value = "r" }}
inputs = ["keyed"]
[[vertex]]
name = "join"
operator = "join.window"
config = {{ size_ms = {SIZE}, time_field = "ts" }}
inputs = [{{ from = "lefts", edge = "hash" }}, {{ from = "rights", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}", flush_every = 1 }}
inputs = ["join"]
"#,
        out.display()
    );
    kill_one_while_it_emits(&mut c, &spec, "join");
    let mut got: Vec<(i64, i64)> = Vec::new();
    for e in std::fs::read_dir(&out).expect("output dir") {
        let p = e.expect("entry").path();
        assert!(!p.display().to_string().ends_with(".tmp"), "{p:?}");
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let r = r.get("value").cloned().unwrap_or(r);
            let id = |side: &str| r[side]["id"].as_i64().expect("an id");
            got.push((id("left"), id("right")));
        }
    }
    got.sort_unstable();
    let dupes = got.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        got == want,
        "{} pairs written, {} expected, {dupes} duplicates",
        got.len(),
        want.len()
    );
}

/// Runs `spec` until `vertex` has emitted, two checkpoints completed and a thousand
/// lines were read, kills (-9) worker-3, and waits for the job to finish after exactly
/// one restart with nothing dropped late by `vertex`.
fn kill_one_while_it_emits(c: &mut TestCluster, spec: &str, vertex: &str) {
    let id = c.submit_job(spec).expect("job accepted");
    c.wait_job(&id, "output, checkpoints, a third read", |j| {
        let out_of = |name: &str| {
            j.vertices
                .iter()
                .find(|v| v.name == name)
                .map_or(0, |v| v.records_out)
        };
        j.checkpoints.completed >= 2 && out_of("lines") >= 1000 && out_of(vertex) > 0
    });
    c.take_worker("worker-3").kill9();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, ringflow_tests::JobState::Finished, "{j:#?}");
    assert_eq!(j.restarts, 1, "{j:#?}");
    let v = j
        .vertices
        .iter()
        .find(|v| v.name == vertex)
        .expect("vertex");
    assert_eq!(
        v.counters.get("late_dropped").copied().unwrap_or(0),
        0,
        "{v:?}"
    );
}
