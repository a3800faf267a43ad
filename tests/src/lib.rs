//! Harness for ringflow's integration tests: real `ringflow` processes on loopback.
//!
//! Every [`TestCluster`] has its own temporary directory (certificates, data, logs) and
//! ephemeral ports, so tests run in parallel. Waits are on conditions with generous
//! deadlines, never fixed sleeps. On a failed wait the harness prints the last status
//! and the tail of every node's log.

pub mod docker;
pub mod history;
pub mod netfault;
pub mod redis_client;

/// libfaketime's preload library, where Debian's `faketime` package puts it (`.ci/run`
/// installs it): a process started with it in `LD_PRELOAD` and `FAKETIME` set sees a
/// shifted wall clock.
pub fn faketime_lib() -> Option<PathBuf> {
    ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketime.so.1")))
        .find(|p| p.exists())
}
pub mod writer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use ringflow_proto::{
    ClusterStatus, JobInfo, JobState, MemberState, MemberStatus, NodeInfo, VertexStatus,
};

/// Generous deadline for anything a cluster should do "soon" on a slow, busy machine.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Path of the `ringflow` binary, built once per test process with the same profile.
pub fn ringflow_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("RINGFLOW_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-binary>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "ringflow", "--bin", "ringflow"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build for the ringflow binary");
        assert!(
            status.success(),
            "cargo build of the ringflow binary failed"
        );
        let bin = profile_dir.join("ringflow");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// Path of an example binary of `ringflow-examples` (e.g. a custom worker), built once
/// per test process with the same profile as the tests.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<BTreeMap<String, PathBuf>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    // scripts/test.sh builds every example up front with the workspace's features;
    // building one package alone here would rebuild its dependencies with other
    // features while the other tests run.
    if let Some(dir) = std::env::var_os("RINGFLOW_EXAMPLES_DIR") {
        let bin = PathBuf::from(dir).join(name);
        if bin.exists() {
            built.insert(name.to_string(), bin.clone());
            return bin;
        }
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "ringflow-examples", "--example", name]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build for an example");
    assert!(status.success(), "cargo build of example {name} failed");
    let bin = profile_dir.join("examples").join(name);
    assert!(bin.exists(), "{} missing after build", bin.display());
    built.insert(name.to_string(), bin.clone());
    bin
}

/// Runs the `ringflow` CLI to completion.
pub fn ringflow(args: &[&str]) -> Output {
    Command::new(ringflow_bin())
        .args(args)
        .env_remove("RINGFLOW_CLUSTER")
        .env_remove("RINGFLOW_CERTS")
        .env(
            "RINGFLOW_PROFILE",
            "/nonexistent/ringflow-test-profile.toml",
        )
        .stdin(Stdio::null())
        .output()
        .expect("running ringflow")
}

/// Runs the CLI and panics with its output if it fails.
pub fn ringflow_ok(args: &[&str]) -> String {
    stdout_of_success(&format!("ringflow {args:?}"), ringflow(args))
}

/// The stdout of a command that must have succeeded; panics with all its output if not.
pub fn stdout_of_success(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Options of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Workers started by [`TestCluster::start`].
    pub workers: usize,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication: u32,
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Failure timeout (ms).
    pub failure_timeout_ms: u64,
    /// Start workers with `--resp-listen 127.0.0.1:0` (the Redis-compatible port).
    pub resp: bool,
    /// Run workers from this executable (a custom worker binary) instead of `ringflow`.
    pub worker_bin: Option<PathBuf>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            workers: 3,
            partitions: 1024,
            replication: 3,
            heartbeat_ms: 200,
            failure_timeout_ms: 2000,
            resp: false,
            worker_bin: None,
        }
    }
}

impl ClusterOpts {
    /// Options for clusters that run jobs: heavy operators share this machine's few cores
    /// with every other test, so failure detection is given more slack (a job fails, by
    /// design, when one of its workers is declared dead).
    pub fn for_jobs() -> Self {
        Self {
            failure_timeout_ms: 10_000,
            ..Self::default()
        }
    }
}

/// One running `ringflow` process.
pub struct NodeProc {
    /// Its name (coordinator or worker id).
    pub name: String,
    /// The process.
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
    /// The address it bound.
    pub addr: SocketAddr,
}

impl NodeProc {
    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&mut self, sig: libc::c_int) {
        if self.is_running() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGSTOP: the process stops running (and answering) until [`NodeProc::resume`].
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`NodeProc::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for a clean exit (panics if it does not exit in time).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A coordinator and workers as separate processes, in a temporary directory.
pub struct TestCluster {
    /// Options it was made with.
    pub opts: ClusterOpts,
    dir: tempfile::TempDir,
    /// The coordinator, while running.
    pub coordinator: Option<NodeProc>,
    coord_addr: Option<SocketAddr>,
    /// Workers by id, while running.
    pub workers: BTreeMap<String, NodeProc>,
    /// Environment variables given to workers started from now on.
    pub worker_env: Vec<(String, String)>,
}

impl TestCluster {
    /// Creates the CA and certificates (through the CLI) without starting anything.
    pub fn new(opts: ClusterOpts) -> Self {
        // RINGFLOW_TEST_KEEP=1 keeps every cluster's directory (logs, data) for a post
        // mortem.
        let dir = tempfile::Builder::new()
            .prefix("ringflow-test-")
            .disable_cleanup(std::env::var_os("RINGFLOW_TEST_KEEP").is_some())
            .tempdir()
            .expect("tempdir");
        let c = Self {
            opts,
            dir,
            coordinator: None,
            coord_addr: None,
            workers: BTreeMap::new(),
            worker_env: Vec::new(),
        };
        let certs = c.certs_dir();
        let certs = certs.to_str().expect("utf-8 temp path");
        ringflow_ok(&[
            "certs",
            "init",
            "--dir",
            certs,
            "--cluster-name",
            "ringflow",
        ]);
        ringflow_ok(&["certs", "issue", "--dir", certs, "--name", "coordinator"]);
        ringflow_ok(&[
            "certs", "issue", "--dir", certs, "--name", "client", "--client",
        ]);
        c
    }

    /// Creates certificates and starts the coordinator and `opts.workers` workers, then
    /// waits until the cluster is healthy.
    pub fn start(opts: ClusterOpts) -> Self {
        let n = opts.workers;
        let mut c = Self::new(opts);
        c.start_coordinator();
        for i in 1..=n {
            c.start_worker(&format!("worker-{i}"));
        }
        c.wait_healthy(n);
        c
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The certificates directory.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The coordinator's address (fixed after its first start).
    pub fn coordinator_addr(&self) -> SocketAddr {
        self.coord_addr.expect("coordinator started")
    }

    fn spawn(&self, name: &str, args: &[String]) -> NodeProc {
        self.spawn_bin(ringflow_bin(), name, args, &[])
    }

    fn spawn_bin(
        &self,
        bin: &Path,
        name: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> NodeProc {
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let log = logs.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let addr_file = self.dir.path().join(format!("{name}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut full: Vec<String> = args.to_vec();
        full.extend(["--addr-file".into(), addr_file.display().to_string()]);
        let child = Command::new(bin)
            .args(&full)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning ringflow");
        let mut node = NodeProc {
            name: name.to_string(),
            child,
            log,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                if let Ok(a) = s.trim().parse() {
                    node.addr = a;
                    return node;
                }
            }
            if !node.is_running() {
                panic!("{name} exited during start-up:\n{}", tail(&node.log, 40));
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not start:\n{}",
                tail(&node.log, 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts (or restarts) the coordinator; a restart reuses the first start's port.
    pub fn start_coordinator(&mut self) {
        self.start_coordinator_with(&[]);
    }

    /// Issues a node certificate for `id` if needed and starts that worker.
    pub fn start_worker(&mut self, id: &str) {
        self.start_worker_with(id, &self.certs_dir(), &[]);
    }

    /// Starts worker `id` with certificates from `certs` and extra flags.
    pub fn start_worker_with(&mut self, id: &str, certs: &Path, extra: &[&str]) {
        let env = self.worker_env.clone();
        self.start_worker_with_env(id, certs, extra, &env);
    }

    /// Starts worker `id` with its own environment (e.g. a fake clock), besides the
    /// cluster's `worker_env`.
    pub fn start_worker_env(&mut self, id: &str, env: &[(String, String)]) {
        let mut all = self.worker_env.clone();
        all.extend(env.iter().cloned());
        self.start_worker_with_env(id, &self.certs_dir(), &[], &all);
    }

    fn start_worker_with_env(
        &mut self,
        id: &str,
        certs: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) {
        assert!(!self.workers.contains_key(id), "{id} already running");
        if !certs.join(format!("{id}.crt")).exists() {
            ringflow_ok(&[
                "certs",
                "issue",
                "--dir",
                &certs.display().to_string(),
                "--name",
                id,
            ]);
        }
        let d = self.dir.path();
        let mut args: Vec<String> = [
            "worker",
            "--id",
            id,
            "--coordinator",
            &self.coordinator_addr().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &d.join(id).display().to_string(),
            "--certs",
            &certs.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.opts.resp && !extra.contains(&"--resp-listen") {
            args.extend(["--resp-listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let bin = self.opts.worker_bin.as_deref().unwrap_or(ringflow_bin());
        let node = self.spawn_bin(bin, id, &args, env);
        self.workers.insert(id.to_string(), node);
    }

    /// Takes a worker's process out of the cluster's bookkeeping (to kill or stop it).
    pub fn take_worker(&mut self, id: &str) -> NodeProc {
        self.workers
            .remove(id)
            .unwrap_or_else(|| panic!("no worker {id}"))
    }

    /// `ringflow status --node ADDR --json`: the node's own view.
    pub fn node_info(&self, addr: SocketAddr) -> Result<NodeInfo, String> {
        let mut args = vec![
            "status".to_string(),
            "--json".into(),
            "--node".into(),
            addr.to_string(),
        ];
        args.extend(self.client_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringflow(&refs);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad node JSON: {e}"))
    }

    /// Waits until every alive member advertises a RESP address (`services["resp"]`) and
    /// returns them by worker id.
    pub fn resp_addrs(&self) -> BTreeMap<String, SocketAddr> {
        let status = self.wait_for("every alive worker advertises a RESP address", |s| {
            s.members
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .all(|m| m.services.contains_key("resp"))
        });
        status
            .members
            .iter()
            .filter(|m| m.state == MemberState::Alive)
            .filter_map(|m| Some((m.id.0.clone(), m.services.get("resp")?.parse().ok()?)))
            .collect()
    }
}

/// What tests do with a running cluster through the real CLI, whether its nodes are
/// local processes ([`TestCluster`]) or containers ([`docker::DockerCluster`]).
pub trait Client {
    /// Client flags for the CLI (`--cluster`, `--certs`, `--cert-name`).
    fn client_args(&self) -> Vec<String>;

    /// The last `lines` lines of every node's log (for failure messages).
    fn logs_tail(&self, lines: usize) -> String;

    /// A directory for files the test writes (job specs).
    fn scratch_dir(&self) -> &Path;

    /// `ringflow status --json` through the real CLI.
    fn status(&self) -> Result<ClusterStatus, String> {
        let mut args = vec!["status".to_string(), "--json".into()];
        args.extend(self.client_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringflow(&refs);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad status JSON: {e}"))
    }

    /// Writes `spec` (TOML) to a file and submits it with `ringflow job submit`: the job
    /// id, or the CLI's stderr when the job was refused.
    fn submit_job(&self, spec: &str) -> Result<String, String> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.scratch_dir().join(format!("job-{n}.toml"));
        std::fs::write(&path, spec).expect("writing the job spec");
        let mut args = vec![
            "job".to_string(),
            "submit".into(),
            path.display().to_string(),
        ];
        args.extend(self.client_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringflow(&refs);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `ringflow ARGS` with the client flags appended.
    fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.client_args());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        ringflow(&refs)
    }

    /// `ringflow job submit SPEC --from-savepoint SP`: the job id, or the CLI's stderr.
    fn submit_job_from(&self, spec: &str, savepoint: &str) -> Result<String, String> {
        let path = self
            .scratch_dir()
            .join(format!("job-from-{savepoint}.toml"));
        std::fs::write(&path, spec).expect("writing the job spec");
        let p = path.display().to_string();
        let out = self.cli(&["job", "submit", &p, "--from-savepoint", savepoint]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `ringflow job status ID --json`.
    fn job(&self, id: &str) -> Result<JobInfo, String> {
        let mut args = vec![
            "job".to_string(),
            "status".into(),
            id.to_string(),
            "--json".into(),
        ];
        args.extend(self.client_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringflow(&refs);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad job JSON: {e}"))
    }

    /// Polls a job until `cond` holds; panics with diagnostics after [`DEADLINE`].
    fn wait_job(&self, id: &str, what: &str, cond: impl Fn(&JobInfo) -> bool) -> JobInfo {
        let deadline = Instant::now() + DEADLINE;
        let mut last = Err("no status yet".to_string());
        while Instant::now() < deadline {
            last = self.job(id);
            if let Ok(j) = &last {
                if cond(j) {
                    return j.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for job {id}: {what}\nlast: {last:#?}\n{}",
            self.logs_tail(30)
        );
    }

    /// Waits until the job is in a terminal state and returns it.
    fn wait_job_end(&self, id: &str) -> JobInfo {
        self.wait_job(id, "a terminal state", |j| j.state.is_terminal())
    }

    /// Polls the status until `cond` holds; panics with diagnostics after [`DEADLINE`].
    fn wait_for(&self, what: &str, cond: impl Fn(&ClusterStatus) -> bool) -> ClusterStatus {
        let deadline = Instant::now() + DEADLINE;
        let mut last = Err("no status yet".to_string());
        while Instant::now() < deadline {
            last = self.status();
            if let Ok(s) = &last {
                if cond(s) {
                    return s.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for: {what}\nlast status: {last:#?}\n{}",
            self.logs_tail(30)
        );
    }

    /// Waits until `n` workers are alive, acting on the current epoch, and every
    /// partition has min(replication, n) owners.
    fn wait_healthy(&self, n: usize) -> ClusterStatus {
        self.wait_for(
            &format!("{n} alive workers, fully replicated, all on the current epoch"),
            |s| is_healthy(s, n),
        )
    }
}

/// True when `n` workers are alive, act on the current epoch, and every partition has
/// min(replication, n) owners.
pub fn is_healthy(s: &ClusterStatus, n: usize) -> bool {
    let alive: Vec<&MemberStatus> = s
        .members
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .collect();
    alive.len() == n
        && s.unowned.is_empty()
        && s.under_replicated == 0
        && alive.iter().all(|m| m.member_epoch == s.epoch)
}

impl Client for TestCluster {
    /// Client flags for the CLI.
    fn client_args(&self) -> Vec<String> {
        vec![
            "--cluster".into(),
            self.coordinator_addr().to_string(),
            "--certs".into(),
            self.certs_dir().display().to_string(),
            "--cert-name".into(),
            "client".into(),
        ]
    }

    /// The last lines of every node's log.
    fn logs_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in rd.flatten() {
                out.push_str(&format!(
                    "--- {} ---\n{}\n",
                    e.path().display(),
                    tail(&e.path(), lines)
                ));
            }
        }
        out
    }

    fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A member of a status by id.
pub fn member<'a>(s: &'a ClusterStatus, id: &str) -> Option<&'a MemberStatus> {
    s.members.iter().find(|m| m.id.0 == id)
}

/// Deterministic pseudo-random bytes (xorshift), for garbage inputs.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl TestCluster {
    /// Starts the coordinator like [`TestCluster::start_coordinator`], with extra flags
    /// appended (e.g. `--config FILE`; flags of the harness override the file).
    pub fn start_coordinator_with(&mut self, extra: &[&str]) {
        assert!(self.coordinator.is_none(), "coordinator already running");
        let listen = match self.coord_addr {
            Some(a) => a.to_string(),
            None => "127.0.0.1:0".to_string(),
        };
        let d = self.dir.path();
        let mut args: Vec<String> = [
            "coordinator",
            "--listen",
            &listen,
            "--data-dir",
            &d.join("coordinator").display().to_string(),
            "--certs",
            &self.certs_dir().display().to_string(),
            "--name",
            "coordinator",
            "--partitions",
            &self.opts.partitions.to_string(),
            "--replication",
            &self.opts.replication.to_string(),
            "--heartbeat-interval-ms",
            &self.opts.heartbeat_ms.to_string(),
            "--failure-timeout-ms",
            &self.opts.failure_timeout_ms.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = self.spawn("coordinator", &args);
        self.coord_addr = Some(node.addr);
        self.coordinator = Some(node);
    }
}

/// Nanoseconds since the Unix epoch (a seed, not a clock to wait on).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A word count job: lines of the files under `input` (`source.files`, with
/// `source_extra` added to its config, e.g. `, max_per_sec = 500`), split into words,
/// keyed, counted (hash edge) and written by `sink.file` to `out`; `settings` are the
/// lines of its `[settings]` table and `more` extra TOML (vertices) appended.
pub fn word_count_job(
    name: &str,
    settings: &str,
    input: &Path,
    source_extra: &str,
    out: &Path,
    more: &str,
) -> String {
    format!(
        r#"
name = "{name}"
[settings]
{settings}
[[vertex]]
name = "lines"
operator = "source.files"
config = {{ path = "{}"{source_extra} }}
[[vertex]]
name = "words"
operator = "flat_map"
config = {{ function = "split_words" }}
inputs = ["lines"]
[[vertex]]
name = "keyed"
operator = "key_by"
config = {{ field = "." }}
inputs = ["words"]
[[vertex]]
name = "counts"
operator = "count"
inputs = [{{ from = "keyed", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}" }}
inputs = ["counts"]
{more}"#,
        input.display(),
        out.display()
    )
}

/// Window counts by (key, window start).
pub type WindowCounts = std::collections::BTreeMap<(String, i64), u64>;

/// Writes `files` files `events-F.jsonl` of `lines` JSON events each into `dir`, every
/// file covering the same stretch of event time in order (`{"k", "ts"}`, `step_ms`
/// apart, keys `k0..k{keys}`); the exact count of each tumbling window of `size_ms`.
pub fn keyed_events(
    dir: &Path,
    files: usize,
    lines: usize,
    step_ms: i64,
    keys: usize,
    size_ms: i64,
) -> WindowCounts {
    std::fs::create_dir_all(dir).expect("events dir");
    let base = 1_700_000_000_000i64;
    let mut reference = WindowCounts::new();
    for f in 0..files {
        let mut text = String::new();
        for i in 0..lines {
            let ts = base + (i as i64) * step_ms + f as i64;
            let key = format!("k{}", (i * 7 + f * 13) % keys);
            *reference
                .entry((key.clone(), ts.div_euclid(size_ms) * size_ms))
                .or_default() += 1;
            text.push_str(&format!("{{\"k\":\"{key}\",\"ts\":{ts}}}\n"));
        }
        std::fs::write(dir.join(format!("events-{f}.jsonl")), text).expect("events file");
    }
    reference
}

/// The first vertices of a job over the events under `input` (see [`keyed_events`]):
/// `[settings]` (`settings` its lines), read (`source_extra` added to `source.files`'
/// config) as `lines`, parsed, watermarked (no delay) and keyed by `k` as `keyed`.
pub fn keyed_events_head(name: &str, settings: &str, input: &Path, source_extra: &str) -> String {
    format!(
        r#"
name = "{name}"
[settings]
{settings}
[[vertex]]
name = "lines"
operator = "source.files"
config = {{ path = "{}"{source_extra} }}
[[vertex]]
name = "parse"
operator = "map"
config = {{ function = "parse_json" }}
inputs = ["lines"]
[[vertex]]
name = "wm"
operator = "watermark"
config = {{ time_field = "ts", max_delay_ms = 0 }}
inputs = ["parse"]
[[vertex]]
name = "keyed"
operator = "key_by"
config = {{ field = "k" }}
inputs = ["wm"]
"#,
        input.display()
    )
}

/// Tumbling-window counts per key of the events under `input` (see [`keyed_events`]):
/// [`keyed_events_head`], windowed (hash edge) and written by `sink.file` to `out`
/// (`sink_extra` added to its config).
pub fn windowed_count_job(
    name: &str,
    settings: &str,
    input: &Path,
    source_extra: &str,
    size_ms: i64,
    out: &Path,
    sink_extra: &str,
) -> String {
    format!(
        r#"{}
[[vertex]]
name = "win"
operator = "window"
config = {{ kind = "tumbling", size_ms = {size_ms}, time_field = "ts", aggregates = ["count"] }}
inputs = [{{ from = "keyed", edge = "hash" }}]
[[vertex]]
name = "out"
operator = "sink.file"
config = {{ path = "{}"{sink_extra} }}
inputs = ["win"]
"#,
        keyed_events_head(name, settings, input, source_extra),
        out.display()
    )
}

/// The window counts `sink.file` wrote to `out`; panics on an unfinished part or a
/// window written twice.
pub fn read_window_counts(out: &Path) -> WindowCounts {
    let mut got = WindowCounts::new();
    for e in std::fs::read_dir(out).expect("output dir") {
        let p = e.expect("entry").path();
        let name = p.display().to_string();
        assert!(!name.ends_with(".tmp"), "unfinished part {name}");
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let r = r.get("value").cloned().unwrap_or(r);
            let key = (
                r["key"].as_str().expect("key").to_string(),
                r["window_start"].as_i64().expect("window_start"),
            );
            let count = r["count"].as_u64().expect("count");
            assert!(
                got.insert(key.clone(), count).is_none(),
                "window {key:?} written twice"
            );
        }
    }
    got
}

/// A job that runs until cancelled: `rate` generated records per second per instance,
/// keyed (a hash edge, so records cross workers) into a discarding sink.
pub fn endless_job(name: &str, rate: u32) -> String {
    format!(
        r#"
name = "{name}"
[[vertex]]
name = "gen"
operator = "source.generate"
config = {{ kind = "sequence", rate_per_sec = {rate} }}
[[vertex]]
name = "keyed"
operator = "key_by"
config = {{ field = "n" }}
inputs = ["gen"]
[[vertex]]
name = "sink"
operator = "sink.discard"
inputs = [{{ from = "keyed", edge = "hash" }}]
"#
    )
}

/// Writes `files` text files of `lines` lines each under `dir`: words from a small
/// vocabulary, plus a word unique to each line (`l<file>x<line>`), so that every line
/// counts; the exact word counts.
pub fn word_corpus(
    dir: &Path,
    files: usize,
    lines: usize,
    seed: u64,
) -> std::collections::BTreeMap<String, u64> {
    std::fs::create_dir_all(dir).expect("corpus dir");
    let vocab = [
        "ring", "flow", "stream", "actor", "quic", "batch", "credit", "key", "window",
    ];
    let noise = pseudo_random(seed, files * lines * 6 + 16);
    let mut n = noise.iter().map(|b| *b as usize);
    let mut reference = std::collections::BTreeMap::new();
    for f in 0..files {
        let mut text = String::new();
        for l in 0..lines {
            let mut words = vec![format!("l{f}x{l}")];
            for _ in 0..1 + n.next().unwrap_or(0) % 4 {
                words.push(vocab[n.next().unwrap_or(0) % vocab.len()].to_string());
            }
            for w in &words {
                *reference.entry(w.clone()).or_insert(0u64) += 1;
            }
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        std::fs::write(dir.join(format!("f{f}.txt")), text).expect("corpus file");
    }
    reference
}

/// The `{key, count}` records of a finished word count's `sink.file` parts; panics on a
/// part left unfinished (`.tmp`) or a key written twice.
pub fn read_word_counts(out: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut got = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(out).expect("output dir") {
        let p = e.expect("entry").path();
        let name = p.display().to_string();
        assert!(!name.ends_with(".tmp"), "unfinished part {name}");
        for line in std::fs::read_to_string(&p).expect("part").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let v = v.get("value").cloned().unwrap_or(v);
            let key = v["key"].as_str().expect("key").to_string();
            let count = v["count"].as_u64().expect("count");
            assert!(
                got.insert(key.clone(), count).is_none(),
                "{key} written twice"
            );
        }
    }
    got
}

/// Asserts that two word counts are equal, printing a summary of the differences.
pub fn assert_same_counts(
    got: &std::collections::BTreeMap<String, u64>,
    want: &std::collections::BTreeMap<String, u64>,
    what: &str,
) {
    if got == want {
        return;
    }
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {v} expected, {:?} written", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k}: not expected")),
        )
        .collect();
    if let Ok(f) = std::env::var("RINGFLOW_TEST_DIFF_FILE") {
        let _ = std::fs::write(f, diff.join("\n"));
    }
    panic!(
        "{what}: {} of {} keys differ ({} expected in all, {} counted): {:#?}",
        diff.len(),
        want.len(),
        want.values().sum::<u64>(),
        got.values().sum::<u64>(),
        &diff[..diff.len().min(10)]
    );
}
