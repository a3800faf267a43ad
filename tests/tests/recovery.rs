//! Fault-tolerant jobs against real processes (issue 11): repeated kills, a kill in the
//! middle of a checkpoint, a coordinator kill, rescaling up and down, savepoints, a
//! corrupt checkpoint part, and a custom operator with state of its own. Every test
//! compares the committed output with a single-threaded reference, exactly.

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;
use ringflow_tests::writer::runtime;
use ringflow_tests::{
    assert_same_counts, read_word_counts, word_corpus, Client, ClusterOpts, JobInfo, JobState,
    TestCluster,
};

/// Settings of the checkpointed jobs below (checkpoints every 200 ms, short backoff).
const SETTINGS: &str = "checkpoint_interval_ms = 200\nrestart_backoff_ms = 200\nlinger_ms = 5";

fn records_out(j: &JobInfo, vertex: &str) -> u64 {
    j.vertices
        .iter()
        .find(|v| v.name == vertex)
        .map_or(0, |v| v.records_out)
}

fn fast_failures(workers: usize) -> ClusterOpts {
    ClusterOpts {
        workers,
        failure_timeout_ms: 2000,
        ..ClusterOpts::for_jobs()
    }
}

/// Word count over four files on four workers, killed (-9) twice: a second worker dies
/// after the job has recovered from the first kill and checkpointed again. Both
/// restarts come from the last checkpoint, and the counts are exact.
#[test]
fn a_job_survives_two_kills_one_after_the_other() {
    let mut c = TestCluster::start(fast_failures(4));
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 4, 1500, 21);
    let out = c.dir().join("out");
    let spec = ringflow_tests::word_count_job(
        "two-kills",
        SETTINGS,
        &dir,
        ", max_per_sec = 300",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "a checkpoint, a fifth read", |j| {
        j.checkpoints.completed >= 2 && records_out(j, "lines") >= 1200
    });
    c.take_worker("worker-2").kill9();
    let first = c.wait_job(&id, "restarted, checkpointing again", |j| {
        j.restarts == 1
            && j.restored_from
                .is_some_and(|r| j.checkpoints.last.as_ref().is_some_and(|l| l.id > r + 1))
            && records_out(j, "lines") >= 300
    });
    assert_eq!(first.workers.len(), 3, "{first:#?}");
    c.take_worker("worker-4").kill9();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert_eq!(j.restarts, 2, "{j:#?}");
    assert_eq!(j.workers.len(), 2);
    assert_eq!(j.guarantee, "exactly-once");
    assert_same_counts(&read_word_counts(&out), &reference, "after two kills");
}

/// A throttled sink behind the word count's source makes every checkpoint wait for
/// its barrier to cross a full queue; a worker is killed while a checkpoint is in
/// progress. That checkpoint never completes; the job restarts from the one before,
/// and both outputs (the raw lines and the counts) are exact.
#[test]
fn a_kill_during_a_checkpoint_restores_the_one_before() {
    let mut c = TestCluster::start(fast_failures(3));
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 3, 1200, 22);
    let out = c.dir().join("out");
    let raw = c.dir().join("raw");
    let spec = ringflow_tests::word_count_job(
        "kill-in-checkpoint",
        &format!("{SETTINGS}\nedge_credits = 256\nbatch_size = 32"),
        &dir,
        ", max_per_sec = 400",
        &out,
        &format!(
            r#"
[[vertex]]
name = "raw"
operator = "sink.file"
config = {{ path = "{}", format = "text", max_per_sec = 150 }}
inputs = ["lines"]
"#,
            raw.display()
        ),
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job(&id, "a slow checkpoint in progress", |j| {
        j.checkpoints.completed >= 1
            && j.checkpoints
                .in_progress
                .is_some_and(|(_, since)| ringflow_tests::now_nanos() / 1_000_000 >= since + 300)
    });
    let (in_progress, _) = j.checkpoints.in_progress.expect("in progress");
    c.take_worker("worker-3").kill9();
    eprintln!("killed during checkpoint #{in_progress}");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert!(j.restarts >= 1, "{j:#?}");
    // The checkpoint in progress completes only if the killed worker had stored its
    // part before it died; either way the job restores a complete one.
    assert!(
        j.restored_from.is_some_and(|r| r <= in_progress),
        "restored from a checkpoint: {j:#?}"
    );
    assert_same_counts(&read_word_counts(&out), &reference, "counts");
    // The raw copy holds every line once.
    let mut lines: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&raw).expect("raw dir") {
        let p = e.expect("entry").path();
        assert!(
            !p.display().to_string().ends_with(".tmp"),
            "{}",
            p.display()
        );
        lines.extend(
            std::fs::read_to_string(&p)
                .expect("part")
                .lines()
                .map(str::to_owned),
        );
    }
    let mut want: Vec<String> = (0..3)
        .flat_map(|f| {
            std::fs::read_to_string(dir.join(format!("f{f}.txt")))
                .expect("corpus")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    want.sort();
    let dupes = lines.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(
        lines == want,
        "raw copy: {} lines written, {} expected, {dupes} duplicates",
        lines.len(),
        want.len()
    );
}

/// The coordinator is killed (-9) while a checkpointed job runs, and started again on
/// its data directory: it knows the job (and its checkpoints), redeploys it from the
/// last one, and the counts are exact.
#[test]
fn a_coordinator_kill_loses_no_job_and_no_count() {
    let mut c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 3, 1500, 23);
    let out = c.dir().join("out");
    let spec = ringflow_tests::word_count_job(
        "coordinator-kill",
        SETTINGS,
        &dir,
        ", max_per_sec = 300",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let before = c.wait_job(&id, "checkpoints, a fifth read", |j| {
        j.checkpoints.completed >= 2 && records_out(j, "lines") >= 900
    });
    let last = before.checkpoints.last.clone().expect("a checkpoint").id;
    c.coordinator.take().expect("coordinator").kill9();
    c.start_coordinator();
    let back = c.wait_job(&id, "the job known again", |j| {
        j.restored_from.is_some() || j.state.is_terminal()
    });
    assert!(
        back.restored_from.is_some_and(|r| r >= last),
        "redeployed from a checkpoint at least as new as #{last}: {back:#?}"
    );
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(30));
    assert_same_counts(
        &read_word_counts(&out),
        &reference,
        "after a coordinator kill",
    );
}

/// Rescale 3 → 4 on demand (`ringflow job rescale`, which prints the pause), then, with
/// `rescale = "auto"`, a fourth worker joining a running job moves it to 4 workers and
/// two workers leaving move it down to 2: the counts are exact.
#[test]
fn rescaling_up_on_demand_and_up_and_down_by_itself_keeps_counts_exact() {
    let mut c = TestCluster::start(fast_failures(3));
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 4, 1200, 24);

    // On demand.
    let out = c.dir().join("out-manual");
    let spec = ringflow_tests::word_count_job(
        "rescale-manual",
        SETTINGS,
        &dir,
        ", max_per_sec = 400",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "a checkpoint", |j| {
        j.checkpoints.completed >= 1 && records_out(j, "lines") >= 600
    });
    c.start_worker("worker-4");
    c.wait_healthy(4);
    let out_cli = c.cli(&["job", "rescale", &id]);
    let text = String::from_utf8_lossy(&out_cli.stdout).into_owned();
    assert!(
        out_cli.status.success() && text.contains("rescaled to 4 workers; paused "),
        "{text}{}",
        String::from_utf8_lossy(&out_cli.stderr)
    );
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert_eq!((j.rescales, j.workers.len()), (1, 4), "{j:#?}");
    assert!(j.last_rescale_pause_ms.is_some());
    assert_same_counts(&read_word_counts(&out), &reference, "3 -> 4 on demand");
    eprintln!(
        "rescale 3 -> 4 paused the job {:?} ms",
        j.last_rescale_pause_ms
    );

    // By itself: back to 3 workers, then a new one joins the running job.
    c.take_worker("worker-4").terminate();
    c.wait_healthy(3);
    let out = c.dir().join("out-auto");
    let spec = ringflow_tests::word_count_job(
        "rescale-auto",
        &format!("{SETTINGS}\nrescale = \"auto\""),
        &dir,
        ", max_per_sec = 120",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "a checkpoint", |j| j.checkpoints.completed >= 1);
    c.start_worker("worker-5");
    let j = c.wait_job(&id, "moved to 4 workers", |j| {
        j.rescales == 1 && j.workers.len() == 4 && j.checkpoints.completed >= 3
    });
    assert_eq!(j.state, JobState::Running, "{j:#?}");
    eprintln!(
        "auto rescale 3 -> 4 paused the job {:?} ms",
        j.last_rescale_pause_ms
    );
    c.take_worker("worker-5").terminate();
    c.wait_job(&id, "on 3 workers", |j| {
        j.workers.len() == 3 && j.state == JobState::Running
    });
    c.take_worker("worker-3").terminate();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert_eq!(j.workers.len(), 2, "{j:#?}");
    assert_same_counts(&read_word_counts(&out), &reference, "3 -> 4 -> 2 by itself");
}

/// `job savepoint --stop` keeps the job's state and stops it; a spec whose stateful
/// vertex was renamed is refused from it; the same spec resumes from it on fewer
/// workers and counts exactly; `job delete-savepoint` removes it.
#[test]
fn a_savepoint_resumes_on_fewer_workers_and_refuses_a_changed_spec() {
    let mut c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 3, 1200, 25);
    let out = c.dir().join("out");
    let spec = ringflow_tests::word_count_job(
        "savepointed",
        SETTINGS,
        &dir,
        ", max_per_sec = 300",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "a third read", |j| records_out(j, "lines") >= 1200);
    let sp = c.cli(&["job", "savepoint", &id, "--stop"]);
    assert!(
        sp.status.success(),
        "{}",
        String::from_utf8_lossy(&sp.stderr)
    );
    let sp = String::from_utf8_lossy(&sp.stdout).trim().to_string();
    assert!(sp.starts_with("sp-"), "{sp}");
    let stopped = c.wait_job_end(&id);
    assert_eq!(stopped.state, JobState::Cancelled, "{stopped:#?}");
    let read_when_stopped = records_out(&stopped, "lines");
    assert!(
        read_when_stopped < 3600,
        "stopped before the end: {stopped:#?}"
    );
    let list = c.cli(&["job", "savepoints"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&sp) && text.contains("counts (count)"),
        "{text}"
    );

    // The counts are kept under "counts": a spec that calls them otherwise is refused.
    let renamed = spec
        .replace("name = \"counts\"", "name = \"tally\"")
        .replace("inputs = [\"counts\"]", "inputs = [\"tally\"]");
    let e = c
        .submit_job_from(&renamed, &sp)
        .expect_err("a renamed stateful vertex is refused");
    assert!(e.contains("'counts'") && e.contains("savepoint"), "{e}");
    // A source that cannot replay must be accepted as at-most-once in the spec.
    let tcp = "name = \"tcp\"\n[settings]\ncheckpoint_interval_ms = 500\n[[vertex]]\nname = \"in\"\noperator = \"source.tcp\"\nconfig = { address = \"127.0.0.1:9\" }\n[[vertex]]\nname = \"out\"\noperator = \"sink.discard\"\ninputs = [\"in\"]\n";
    let e = c.submit_job(tcp).expect_err("refused");
    assert!(
        e.contains("'in'") && e.contains("accept_at_most_once"),
        "{e}"
    );

    // Resume on two workers.
    c.take_worker("worker-3").terminate();
    c.wait_healthy(2);
    let id2 = c
        .submit_job_from(&spec, &sp)
        .expect("resumed from the savepoint");
    let j = c.wait_job_end(&id2);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert_eq!(j.workers.len(), 2);
    assert_eq!(j.from_savepoint.as_deref(), Some(sp.as_str()));
    assert!(
        records_out(&j, "lines") < 3600,
        "the lines read before the savepoint are not read again: {j:#?}"
    );
    assert_same_counts(
        &read_word_counts(&out),
        &reference,
        "stopped with a savepoint, resumed on 2 workers",
    );
    let del = c.cli(&["job", "delete-savepoint", &sp]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    let list = c.cli(&["job", "savepoints", "--json"]);
    let left: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).expect("JSON list");
    assert!(left.is_empty(), "{left:?}");
}

/// The newest checkpoint's part of the counts is overwritten with garbage in the DHT,
/// then a worker is killed: recovery refuses the corrupt part (its checksum), restores
/// the checkpoint before it, and the counts are exact.
#[test]
fn a_corrupt_checkpoint_part_falls_back_to_the_previous_checkpoint() {
    let mut c = TestCluster::start(fast_failures(3));
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 3, 2400, 26);
    let out = c.dir().join("out");
    let spec = ringflow_tests::word_count_job(
        "corrupt-part",
        "checkpoint_interval_ms = 1500\nrestart_backoff_ms = 200\nlinger_ms = 5",
        &dir,
        ", max_per_sec = 150",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    let j = c.wait_job(&id, "two checkpoints", |j| j.checkpoints.completed >= 2);
    assert!(
        records_out(&j, "lines") < 4800,
        "the job is far from its end: {j:#?}"
    );
    let client_id = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let rt = runtime();
    let dht = rt
        .block_on(DhtClient::connect(
            &c.coordinator_addr().to_string(),
            &client_id,
            "ringflow",
        ))
        .expect("dht client");
    // Corrupt the newest checkpoint, and every one that completes until the restart
    // reads them (one in progress at the kill may still complete with the live workers'
    // parts): the failure timeout (2 s) leaves time for it.
    let mut corrupted = Vec::new();
    let corrupt_newest = |c: &TestCluster, corrupted: &mut Vec<u64>| {
        let j = c.job(&id).expect("status");
        let Some(last) = j.checkpoints.last.clone() else {
            return;
        };
        if corrupted.contains(&last.id) || j.restarts > 0 {
            return;
        }
        let part = last
            .parts
            .iter()
            .find(|p| p.vertex == "counts" && p.stateful)
            .expect("a stateful part of the counts");
        rt.block_on(dht.put(format!("{}/0", part.key), b"not a snapshot".to_vec()))
            .expect("overwrite a chunk");
        corrupted.push(last.id);
    };
    corrupt_newest(&c, &mut corrupted);
    c.take_worker("worker-2").kill9();
    let killed = std::time::Instant::now();
    while killed.elapsed() < std::time::Duration::from_millis(1500) {
        corrupt_newest(&c, &mut corrupted);
    }
    rt.block_on(dht.close());
    let oldest = *corrupted.iter().min().expect("a corrupted checkpoint");
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert!(
        j.restored_from.is_some_and(|r| r < oldest),
        "restored from a checkpoint before the corrupt ones {corrupted:?}: {j:#?}"
    );
    assert_same_counts(&read_word_counts(&out), &reference, "after a corrupt part");
}

/// The custom worker binary's `word-tally` keeps state of its own (snapshot/restore
/// with serde) and `len-count` keyed state: a worker is killed, the job recovers, and
/// the tallies and the histogram equal the reference.
#[test]
fn a_custom_operator_with_its_own_state_survives_a_kill_in_a_custom_worker_binary() {
    let mut c = TestCluster::start(ClusterOpts {
        worker_bin: Some(ringflow_tests::example_bin("custom_operator")),
        ..fast_failures(3)
    });
    let dir = c.dir().join("corpus");
    let words = word_corpus(&dir, 3, 1200, 27);
    let total: u64 = words.values().sum();
    let longest = words
        .keys()
        .max_by(|a, b| {
            a.chars()
                .count()
                .cmp(&b.chars().count())
                .then_with(|| b.cmp(a))
        })
        .expect("words")
        .clone();
    let mut lens: std::collections::BTreeMap<u64, u64> = Default::default();
    for (w, n) in &words {
        *lens.entry(w.chars().count() as u64).or_default() += n;
    }
    let (tally_out, hist_out) = (c.dir().join("tally"), c.dir().join("hist"));
    let spec = format!(
        r#"
name = "custom-state"
[settings]
{SETTINGS}
[[vertex]]
name = "lines"
operator = "source.files"
config = {{ path = "{}", max_per_sec = 300 }}
[[vertex]]
name = "words"
operator = "flat_map"
config = {{ function = "split_words" }}
inputs = ["lines"]
[[vertex]]
name = "tally"
operator = "word-tally"
inputs = ["words"]
[[vertex]]
name = "tally-out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["tally"]
[[vertex]]
name = "lens"
operator = "word-len"
inputs = ["words"]
[[vertex]]
name = "histogram"
operator = "len-count"
inputs = [{{ from = "lens", edge = "hash" }}]
[[vertex]]
name = "hist-out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["histogram"]
"#,
        dir.display(),
        tally_out.display(),
        hist_out.display()
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "checkpoints, a third read", |j| {
        j.checkpoints.completed >= 2 && records_out(j, "lines") >= 1200
    });
    c.take_worker("worker-1").kill9();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert_eq!(j.restarts, 1, "{j:#?}");
    let read = |dir: &std::path::Path| -> Vec<serde_json::Value> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir).expect("output") {
            let p = e.expect("entry").path();
            assert!(
                !p.display().to_string().ends_with(".tmp"),
                "{}",
                p.display()
            );
            for line in std::fs::read_to_string(&p).expect("part").lines() {
                v.push(serde_json::from_str(line).expect("JSON"));
            }
        }
        v
    };
    let tallies = read(&tally_out);
    let counted: u64 = tallies
        .iter()
        .map(|t| t["words"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, total, "words tallied once each: {tallies:?}");
    assert!(
        tallies.iter().any(|t| t["longest"] == longest.as_str()),
        "the longest word {longest} survives: {tallies:?}"
    );
    let hist: std::collections::BTreeMap<u64, u64> = read(&hist_out)
        .iter()
        .map(|v| {
            (
                v["len"].as_u64().expect("len"),
                v["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(hist, lens, "the histogram after a kill");
}

/// Workers sharing a checkpoint directory (`--checkpoint-dir`) instead of the DHT: parts
/// are files there, old checkpoints are deleted as new ones complete (keep 3), a kill
/// restores from the directory exactly, and once the job has finished its checkpoints
/// are gone.
#[test]
fn checkpoints_in_a_shared_directory_are_restored_and_garbage_collected() {
    let mut c = TestCluster::new(fast_failures(3));
    let store = c.dir().join("checkpoints");
    c.start_coordinator();
    for i in 1..=3 {
        let certs = c.certs_dir();
        c.start_worker_with(
            &format!("worker-{i}"),
            &certs,
            &["--checkpoint-dir", &store.display().to_string()],
        );
    }
    c.wait_healthy(3);
    let dir = c.dir().join("corpus");
    let reference = word_corpus(&dir, 3, 1200, 28);
    let out = c.dir().join("out");
    let spec = ringflow_tests::word_count_job(
        "dir-store",
        SETTINGS,
        &dir,
        ", max_per_sec = 300",
        &out,
        "",
    );
    let id = c.submit_job(&spec).expect("job accepted");
    c.wait_job(&id, "six checkpoints", |j| j.checkpoints.completed >= 6);
    // Checkpoint ids with parts in the directory: the retained ones, one in progress
    // and the last deleted one at most.
    let ids = |root: &std::path::Path| -> usize {
        let mut n = 0;
        if let Ok(deployments) = std::fs::read_dir(root.join("ringflow/checkpoints")) {
            for d in deployments.flatten() {
                n += std::fs::read_dir(d.path()).map_or(0, |r| r.count());
            }
        }
        n
    };
    let held = ids(&store);
    assert!(
        (1..=5).contains(&held),
        "{held} checkpoints in the directory"
    );
    c.take_worker("worker-2").kill9();
    let j = c.wait_job_end(&id);
    assert_eq!(j.state, JobState::Finished, "{j:#?}\n{}", c.logs_tail(20));
    assert!(j.restored_from.is_some(), "{j:#?}");
    assert_same_counts(&read_word_counts(&out), &reference, "from the directory");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ids(&store) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A checkpoint in progress at the kill may leave the part of a worker that stored it
    // but had not reported it yet.
    let left: Vec<String> = walk(&store);
    assert!(
        ids(&store) <= 1,
        "a finished job's checkpoints are deleted: {} left: {left:#?}\n{}",
        ids(&store),
        c.logs_tail(400)
            .lines()
            .filter(|l| l.contains("delet") || l.contains("---"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every file under `dir`, relative.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}
