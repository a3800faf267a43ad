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
    let mut keyed_partitions = 0;
    for part in &last.parts {
        let keys: Vec<Vec<u8>> = (0..part.chunks)
            .map(|i| format!("{}/{i}", part.key).into_bytes())
            .collect();
        let chunks = rt.block_on(dht.get_many(keys)).expect("read the part");
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("every chunk is stored"))
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
