//! The chaos suite: a coordinator and three workers in containers (the FROM-scratch
//! image of `deploy/docker`), a client writing to the DHT and a stream job running,
//! through kill -9, a frozen worker, a worker cut off the network, a coordinator
//! restart and a rolling restart of every worker.
//!
//! After each fault: the cluster converges (three alive workers on the current epoch),
//! every partition is owned and fully replicated, writes go on, no acknowledged write is
//! lost (every key written so far reads back its last acknowledged value or a later
//! attempted one), and the stream job is either still running or ended with a reason;
//! a job submitted afterwards runs. One summary line per fault.
//!
//! Skips, saying why, where no Docker engine is reachable; `.ci/run` runs it where one is.

use std::time::{Duration, Instant};

use ringflow_tests::docker::{self, DockerCluster};
use ringflow_tests::writer::{lost_writes, LoadWriter};
use ringflow_tests::{
    endless_job, is_healthy, member, Client, JobInfo, JobState, MemberState, DEADLINE,
};

fn sink_records(j: &JobInfo) -> u64 {
    j.vertices
        .iter()
        .find(|v| v.name == "sink")
        .map_or(0, |v| v.records_in)
}

/// Submits the job and waits until records reach its sink; its id.
fn start_job(c: &DockerCluster) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match c.submit_job(&endless_job("chaos", 2000)) {
            Ok(id) => {
                let j = c.wait_job(&id, "records reach the sink, or an end", |j| {
                    j.state.is_terminal() || sink_records(j) > 500
                });
                if !j.state.is_terminal() {
                    return id;
                }
                // A worker that rejoined a moment ago can still fail a fresh job.
                assert!(
                    Instant::now() < deadline,
                    "jobs keep failing after the fault: {j:#?}\n{}",
                    c.logs_tail(30)
                );
                eprintln!("job {id} ended at once ({:?}); submitting again", j.reason);
            }
            // Right after a fault the coordinator may still be settling.
            Err(e) if Instant::now() < deadline => {
                eprintln!("job not accepted yet: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("job refused: {e}\n{}", c.logs_tail(30)),
        }
    }
}

/// What became of the job through a fault; restarts it unless it still runs.
fn check_job(c: &DockerCluster, id: &mut String) -> String {
    // A job still running must go on moving records, or end (a failure reported late).
    let current = c.job(id).map(|j| {
        if j.state.is_terminal() {
            return j;
        }
        let before = sink_records(&j);
        c.wait_job(id, "records still flowing, or an end", |j| {
            j.state.is_terminal() || (j.state == JobState::Running && sink_records(j) > before)
        })
    });
    let note = match current {
        Ok(j) if !j.state.is_terminal() => {
            return format!("running ({} records at the sink)", sink_records(&j));
        }
        Ok(j) => {
            let reason = j.reason.clone().unwrap_or_default();
            assert!(
                j.state == JobState::Failed && !reason.is_empty(),
                "a job ended by a fault fails with a reason: {j:#?}"
            );
            format!("failed ({reason})")
        }
        // Jobs live in the coordinator's memory: a restarted coordinator forgets them
        // (and the workers cancel them when their control stream breaks).
        Err(e) => format!("gone ({})", e.trim()),
    };
    *id = start_job(c);
    format!("{note}; a new job runs")
}

/// Waits until the coordinator declares `id` dead (past the failure timeout: its
/// partitions go to the others); the seconds it took.
fn down(c: &DockerCluster, id: &str) -> f64 {
    c.wait_until(&format!("{id} declared dead"), |s| {
        member(s, id).is_none_or(|m| matches!(m.state, MemberState::Dead | MemberState::Left))
            && s.unowned.is_empty()
    })
}

#[test]
fn faults_in_a_container_cluster_lose_no_acknowledged_write() {
    let image = match docker::image() {
        Ok(i) => i,
        Err(why) => {
            eprintln!("SKIPPED chaos suite: {why}");
            return;
        }
    };
    let c = DockerCluster::start(&image, 3);
    c.wait_healthy(3);
    let writer = LoadWriter::start(c.coordinator_addr(), c.certs_dir(), "chaos", 1000);
    writer.wait_progress(200);
    let mut job = start_job(&c);

    type Fault = (&'static str, Box<dyn Fn(&DockerCluster) -> String>);
    let faults: Vec<Fault> = vec![
        (
            "kill -9 worker-2, start it again",
            Box::new(|c| {
                c.kill9("worker-2");
                let d = down(c, "worker-2");
                c.start_again("worker-2");
                format!("declared dead after {d:.1} s")
            }),
        ),
        (
            "docker pause worker-3 past the failure timeout, unpause",
            Box::new(|c| {
                c.pause("worker-3");
                let d = down(c, "worker-3");
                c.unpause("worker-3");
                format!("declared dead after {d:.1} s")
            }),
        ),
        (
            "disconnect worker-1 from the network, reconnect",
            Box::new(|c| {
                c.disconnect("worker-1");
                let d = down(c, "worker-1");
                c.reconnect("worker-1");
                format!("declared dead after {d:.1} s")
            }),
        ),
        (
            "restart the coordinator",
            Box::new(|c| {
                c.restart("coordinator");
                String::new()
            }),
        ),
        (
            "rolling restart of every worker",
            Box::new(|c| {
                for w in c.workers.clone() {
                    c.restart(&w);
                    c.wait_healthy(3);
                }
                String::new()
            }),
        ),
    ];

    let mut summary = Vec::new();
    for (name, fault) in &faults {
        let t = Instant::now();
        let before = writer.stats();
        let detail = fault(&c);
        let status = c.wait_healthy(3);
        let converged = t.elapsed().as_secs_f64();
        assert!(is_healthy(&status, 3));
        let owned = status.partitions as usize - status.unowned.len();
        // Writes go on after the fault.
        writer.wait_progress(100);
        let job_note = check_job(&c, &mut job);
        // Every acknowledged write so far reads back (the writer waits meanwhile).
        let (lost, checked) = {
            let _hold = writer.hold();
            let log = writer.log();
            (
                lost_writes(&c.coordinator_addr(), &c.certs_dir(), &log),
                log.len(),
            )
        };
        let after = writer.stats();
        let line = format!(
            "fault: {name}: {detail}{}converged in {converged:.1} s, partitions owned {owned}/{}, \
             writes acked {} (failed {}) during the fault, keys checked {checked}, lost {}, job {job_note}",
            if detail.is_empty() { "" } else { "; " },
            status.partitions,
            after.acked - before.acked,
            after.failed - before.failed,
            lost.len()
        );
        println!("{line}");
        assert!(
            lost.is_empty(),
            "{line}\nlost acknowledged writes: {lost:#?}\n{}",
            c.logs_tail(40)
        );
        summary.push(line);
    }
    let (stats, log) = writer.stop();
    let lost = lost_writes(&c.coordinator_addr(), &c.certs_dir(), &log);
    assert!(lost.is_empty(), "lost at the end: {lost:#?}");
    println!(
        "chaos suite: {} faults, {stats:?}, 0 acknowledged writes lost",
        faults.len()
    );
    for l in summary {
        println!("  {l}");
    }
}

#[test]
fn the_shipped_compose_file_runs_a_healthy_cluster() {
    let image = match docker::image() {
        Ok(i) => i,
        Err(why) => {
            eprintln!("SKIPPED compose test: {why}");
            return;
        }
    };
    if std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED compose test: no docker-compose (Debian package docker-compose)");
        return;
    }
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker/compose.yaml");
    let project = format!("rfcompose{}", std::process::id());
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .args(["-p", &project, "-f"])
            .arg(&file)
            .args(args)
            .env("RINGFLOW_IMAGE", &image)
            .output()
            .expect("docker-compose")
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "--remove-orphans"]);
        }
    }
    let _down = Down(&compose);
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = compose(&["run", "--rm", "client", "status", "--json"]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Ok(s) = serde_json::from_slice::<ringflow_tests::ClusterStatus>(&out.stdout) {
            if is_healthy(&s, 3) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let s: ringflow_tests::ClusterStatus =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("no status ({e}): {last}"));
    assert!(is_healthy(&s, 3), "{s:#?}");
    let put = compose(&["run", "--rm", "client", "put", "greeting", "hello"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = compose(&["run", "--rm", "client", "get", "greeting"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");
    println!("compose: 3 workers healthy, put/get through the client service");
}
