//! What deployment relies on: readiness reported to systemd (`sd_notify`) only once a
//! worker has joined, `ringflow config check`, and the shipped systemd units passing
//! `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ringflow_tests::{member, ringflow, ringflow_bin, Client, ClusterOpts, TestCluster, DEADLINE};

/// Receives notifications until one contains `what` (or the deadline passes); returns
/// every message received, in order.
fn wait_notify(sock: &UnixDatagram, what: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("read timeout");
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m.lines().any(|l| l == what);
                got.push(m);
                if done {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    got
}

fn has(msgs: &[String], line: &str) -> bool {
    msgs.iter().any(|m| m.lines().any(|l| l == line))
}

#[test]
fn a_worker_reports_ready_to_systemd_only_once_it_has_joined() {
    let mut c = TestCluster::new(ClusterOpts {
        workers: 1,
        ..ClusterOpts::default()
    });
    // The coordinator is down while the worker starts: the worker must not say ready.
    c.start_coordinator();
    assert!(c.coordinator.take().expect("running").terminate().success());
    let sock_path = c.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("binding the notify socket");
    c.worker_env = vec![("NOTIFY_SOCKET".into(), sock_path.display().to_string())];
    c.start_worker("worker-1");

    let early = wait_notify(&sock, "READY=1", Duration::from_secs(3));
    assert!(
        has(&early, "STATUS=joining the cluster"),
        "the worker says it is joining: {early:?}"
    );
    assert!(
        !has(&early, "READY=1"),
        "ready without a coordinator: {early:?}"
    );

    c.start_coordinator();
    let later = wait_notify(&sock, "READY=1", DEADLINE);
    assert!(
        has(&later, "READY=1"),
        "no READY=1 after the coordinator came up: {later:?}\n{}",
        c.logs_tail(20)
    );
    // At the moment it says ready, the coordinator counts it as a member.
    let status = c.status().expect("status");
    assert!(
        member(&status, "worker-1").is_some(),
        "ready before being a member: {status:?}"
    );

    // SIGTERM: the worker says it is stopping, then exits cleanly.
    let mut w = c.take_worker("worker-1");
    let st = w.terminate();
    assert!(st.success(), "worker exit status {st:?}");
    let stopping = wait_notify(&sock, "STOPPING=1", Duration::from_secs(5));
    assert!(has(&stopping, "STOPPING=1"), "{stopping:?}");
}

#[test]
fn config_check_reports_every_mistake_with_its_line_and_passes_the_shipped_configs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("worker.toml");
    std::fs::write(
        &bad,
        "cluster = \"prod\"\ncapcity = 2\nlisten = \"nowhere\"\n\n[dht]\nmax_key = 0\n",
    )
    .expect("write");
    let out = ringflow(&[
        "config",
        "check",
        "--skip-files",
        &bad.display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let f = bad.display().to_string();
    for want in [
        format!("{f}:2:1: capcity: unknown field"),
        format!("{f}:3:10: listen:"),
        format!("{f}:6:11: dht.max_key:"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "missing {want:?} in:\n{text}"
        );
    }
    assert!(text.contains("did you mean `capacity`?"), "{text}");
    assert!(text.contains("3 problems"), "{text}");

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    let mut args = vec!["config".to_string(), "check".into(), "--skip-files".into()];
    for f in ["coordinator.toml", "worker.toml"] {
        args.push(shipped.join(f).display().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ringflow(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: systemd-analyze not found (Debian package `systemd`); .ci/run installs it"
        );
        return;
    }
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = tempfile::tempdir().expect("tempdir");
    // verify checks that ExecStart is executable: point it at the binary under test.
    // The template is verified as an instance.
    let bin = std::fs::canonicalize(ringflow_bin()).expect("ringflow binary");
    let mut names = Vec::new();
    for (file, as_name) in [
        (
            "ringflow-coordinator.service",
            "ringflow-coordinator.service",
        ),
        ("ringflow-worker@.service", "ringflow-worker@1.service"),
    ] {
        let text = std::fs::read_to_string(units.join(file)).expect("unit file");
        assert!(
            text.contains("/usr/local/bin/ringflow"),
            "{file} runs /usr/local/bin/ringflow"
        );
        let text = text.replace("/usr/local/bin/ringflow", &bin.display().to_string());
        std::fs::write(dir.path().join(as_name), text).expect("write unit");
        names.push(dir.path().join(as_name).display().to_string());
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings (unknown keys, bad values) do not change the exit status: fail on any
    // line about our units too.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("ringflow-")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
    for n in &names {
        let text = std::fs::read_to_string(n).expect("unit");
        assert!(text.contains("Type=notify"), "{n}: readiness via sd_notify");
    }
}
