//! A ringflow cluster as Docker containers on a private network, for fault tests that
//! need what processes on loopback cannot do: freeze a node (`docker pause`), cut it off
//! the network (`docker network disconnect`), kill and restart it in place.
//!
//! The image is `deploy/docker`'s (FROM scratch, one static binary), built by
//! `deploy/docker/build.sh` when missing. Each cluster has its own network (a /24 under
//! 10.213.0.0/16 picked at random, retried on overlap) and container names, so clusters
//! do not collide; the test host reaches the containers' addresses directly, and the
//! CLI and the Rust client run on the host. Certificates are made on the host and
//! mounted read-only.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{ringflow_ok, Client};

/// The image to run: `$RINGFLOW_IMAGE`, else `ringflow:test`, built if missing. `Err`
/// with the reason when there is no Docker engine to run it on (the caller skips).
pub fn image() -> Result<String, String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!(
                "no Docker engine reachable (`docker info` failed: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Err(format!("no docker command ({e})")),
    }
    let image = std::env::var("RINGFLOW_IMAGE").unwrap_or_else(|_| "ringflow:test".into());
    if docker(&["image", "inspect", &image]).status.success() {
        return Ok(image);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker/build.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&image)
        .status()
        .expect("running deploy/docker/build.sh");
    assert!(status.success(), "building the image {image} failed");
    Ok(image)
}

/// Runs `docker ARGS`.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running docker")
}

/// Runs `docker ARGS`, panicking with its stderr if it fails; its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    crate::stdout_of_success(&format!("docker {}", args.join(" ")), docker(args))
        .trim()
        .to_string()
}

/// A coordinator and workers in containers.
pub struct DockerCluster {
    image: String,
    prefix: String,
    network: String,
    subnet: [u8; 3],
    dir: tempfile::TempDir,
    /// Worker ids, `worker-1 ..`.
    pub workers: Vec<String>,
    /// The coordinator's failure timeout (a frozen worker is declared dead after it).
    pub failure_timeout: Duration,
}

impl DockerCluster {
    /// Creates the network and certificates, starts the coordinator and `n` workers.
    pub fn start(image: &str, n: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ringflow-docker-")
            .tempdir()
            .expect("tempdir");
        let prefix = format!(
            "rf-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .map(|f| f
                    .to_string_lossy()
                    .chars()
                    .rev()
                    .take(6)
                    .collect::<String>())
                .unwrap_or_default()
                .to_lowercase()
        );
        let (network, subnet) = create_network(&prefix);
        let workers: Vec<String> = (1..=n).map(|i| format!("worker-{i}")).collect();
        let certs = dir.path().join("certs");
        let mut nodes = vec!["coordinator".to_string()];
        nodes.extend(workers.iter().cloned());
        ringflow_ok(&[
            "certs",
            "bootstrap",
            "--dir",
            &certs.display().to_string(),
            "--nodes",
            &nodes.join(","),
            "--clients",
            "client",
        ]);
        // The containers run as an unprivileged user: let it read the (test) keys.
        for e in std::fs::read_dir(&certs).expect("certs").flatten() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
        }
        let c = Self {
            image: image.to_string(),
            prefix,
            network,
            subnet,
            dir,
            workers,
            failure_timeout: Duration::from_millis(3000),
        };
        c.run_coordinator();
        for w in c.workers.clone() {
            c.run_worker(&w);
        }
        c
    }

    fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], host)
    }

    fn node_ip(&self, name: &str) -> Ipv4Addr {
        match name
            .strip_prefix("worker-")
            .and_then(|i| i.parse::<u8>().ok())
        {
            Some(i) => self.ip(10 + i),
            None => self.ip(2),
        }
    }

    /// The container of node `name` (`coordinator` or a worker id).
    pub fn container(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// The coordinator's QUIC address, as the host reaches it.
    pub fn coordinator_addr(&self) -> String {
        format!("{}:7400", self.ip(2))
    }

    /// The certificates (the client's included) on the host.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn run(&self, name: &str, args: &[&str], alias: Option<&str>) {
        let ip = self.node_ip(name).to_string();
        let container = self.container(name);
        let mount = format!("{}:/certs:ro", self.certs_dir().display());
        let mut full = vec![
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            name,
            "--network",
            &self.network,
            "--ip",
            &ip,
            "-v",
            &mount,
            "-e",
            "RUST_LOG=info",
        ];
        if let Some(a) = alias {
            full.extend(["--network-alias", a]);
        }
        full.push(&self.image);
        full.extend(args);
        docker_ok(&full);
    }

    fn run_coordinator(&self) {
        let ft = self.failure_timeout.as_millis().to_string();
        self.run(
            "coordinator",
            &[
                "coordinator",
                "--listen",
                "0.0.0.0:7400",
                "--data-dir",
                "/data/coordinator",
                "--certs",
                "/certs",
                "--name",
                "coordinator",
                "--heartbeat-interval-ms",
                "250",
                "--failure-timeout-ms",
                &ft,
            ],
            Some("coordinator"),
        );
    }

    fn run_worker(&self, id: &str) {
        // Bound to 0.0.0.0 without --advertise: the coordinator announces the address
        // the worker's connection comes from. The coordinator is found by name.
        let data = format!("/data/{id}");
        self.run(
            id,
            &[
                "worker",
                "--id",
                id,
                "--coordinator",
                "coordinator:7400",
                "--listen",
                "0.0.0.0:7401",
                "--data-dir",
                &data,
                "--certs",
                "/certs",
            ],
            None,
        );
    }

    /// `docker kill -s KILL` (the container stays, with its data).
    pub fn kill9(&self, name: &str) {
        docker_ok(&["kill", "-s", "KILL", &self.container(name)]);
    }

    /// `docker start` of a stopped container.
    pub fn start_again(&self, name: &str) {
        docker_ok(&["start", &self.container(name)]);
    }

    /// `docker restart -t 30`: SIGTERM, up to 30 s to stop cleanly, then start.
    pub fn restart(&self, name: &str) {
        docker_ok(&["restart", "-t", "30", &self.container(name)]);
    }

    /// Freezes every process of the node (cgroup freezer).
    pub fn pause(&self, name: &str) {
        let container = self.container(name);
        let out = docker(&["pause", &container]);
        if out.status.success() {
            return;
        }
        // Some engines cannot freeze a container's cgroup ("unable to freeze"): stop its
        // one process instead (SIGSTOP from the host reaches a container's PID 1).
        eprintln!(
            "docker pause {container} failed ({}): sending SIGSTOP instead",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        docker_ok(&["kill", "--signal", "STOP", &container]);
    }

    /// Thaws a paused node (whichever way [`DockerCluster::pause`] froze it).
    pub fn unpause(&self, name: &str) {
        let container = self.container(name);
        let paused = docker_ok(&["inspect", "--format", "{{.State.Paused}}", &container]);
        if paused == "true" {
            docker_ok(&["unpause", &container]);
        } else {
            docker_ok(&["kill", "--signal", "CONT", &container]);
        }
    }

    /// Cuts the node off the cluster's network.
    pub fn disconnect(&self, name: &str) {
        docker_ok(&[
            "network",
            "disconnect",
            &self.network,
            &self.container(name),
        ]);
    }

    /// Puts the node back on the network, with its address (and alias) of before.
    pub fn reconnect(&self, name: &str) {
        let ip = self.node_ip(name).to_string();
        let mut args = vec!["network", "connect", "--ip", &ip];
        if name == "coordinator" {
            args.extend(["--alias", "coordinator"]);
        }
        let container = self.container(name);
        args.extend([self.network.as_str(), container.as_str()]);
        docker_ok(&args);
    }

    /// Waits until `cond` holds for the coordinator's status; returns the seconds it took.
    pub fn wait_until(&self, what: &str, cond: impl Fn(&crate::ClusterStatus) -> bool) -> f64 {
        let t = Instant::now();
        self.wait_for(what, cond);
        t.elapsed().as_secs_f64()
    }
}

impl Client for DockerCluster {
    fn client_args(&self) -> Vec<String> {
        vec![
            "--cluster".into(),
            self.coordinator_addr(),
            "--certs".into(),
            self.certs_dir().display().to_string(),
            "--cert-name".into(),
            "client".into(),
        ]
    }

    fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut names = vec!["coordinator".to_string()];
        names.extend(self.workers.iter().cloned());
        for n in names {
            let o = docker(&["logs", "--tail", &lines.to_string(), &self.container(&n)]);
            out.push_str(&format!(
                "--- {n} ---\n{}{}\n",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        out
    }

    fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        let mut names = vec![self.container("coordinator")];
        names.extend(self.workers.iter().map(|w| self.container(w)));
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(names.iter().map(String::as_str));
        let _ = docker(&args);
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// A fresh bridge network with a /24 of 10.213.0.0/16 no other network uses.
fn create_network(prefix: &str) -> (String, [u8; 3]) {
    let seed = std::process::id() as u64 ^ crate::now_nanos();
    let mut last = String::new();
    for attempt in 0..40u64 {
        let third = (16 + (seed.wrapping_add(attempt * 37) % 230)) as u8;
        let name = format!("{prefix}-net");
        let subnet = format!("10.213.{third}.0/24");
        let out = docker(&["network", "create", "--subnet", &subnet, &name]);
        if out.status.success() {
            return (name, [10, 213, third]);
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("cannot create a docker network: {last}");
}
