//! `ringflow local`: a coordinator and N workers as real processes on loopback, with an
//! ephemeral CA generated for the occasion, until Ctrl-C.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::profile::{self, Profile};
use crate::{certs, MemberState, Role};
use anyhow::{bail, Context};

use super::status::{connect, healthy, render};
use clap::Args;

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Number of workers.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Directory for certificates, data and logs [default: ~/.local/share/ringflow/local].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Coordinator port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 7400)]
    pub port: u16,
    /// Partition count of a new cluster (power of two).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor [default: the number of workers, at most 3].
    #[arg(long)]
    pub replication: Option<u32>,
    /// Failure timeout in milliseconds.
    #[arg(long)]
    pub failure_timeout_ms: Option<u64>,
    /// Delete the data left by an earlier run first.
    #[arg(long)]
    pub fresh: bool,
    /// Do not write the client profile.
    #[arg(long)]
    pub no_profile: bool,
    /// Do not open the workers' Redis-protocol ports.
    #[arg(long)]
    pub no_resp: bool,
    /// Serve Prometheus metrics from every node on a free loopback port (printed).
    #[arg(long)]
    pub metrics: bool,
    /// The workers' `--fsync-interval-ms` (DHT durability; default 0: every write).
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, exe: &Path, args: &[String], logs: &Path) -> anyhow::Result<Self> {
        let log = logs.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        // Own process group: a terminal's Ctrl-C reaches only `local`, which then stops the
        // workers before the coordinator. And if `local` dies, the kernel sends SIGTERM.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    async fn wait(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{} did not stop within {} s: killing it",
            self.name,
            limit.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ringflow").join("local")
}

async fn wait_for_file(path: &Path, procs: &mut [Proc], limit: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            return Ok(s.trim().to_string());
        }
        for p in procs.iter_mut() {
            if let Ok(Some(st)) = p.child.try_wait() {
                bail!(
                    "{} exited ({st}) during start-up; see {}",
                    p.name,
                    p.log.display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not appear within {} s",
                path.display(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn run(a: LocalArgs) -> anyhow::Result<ExitCode> {
    if a.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    if a.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let certs_dir = dir.join("certs");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    certs::init_ca(&certs_dir, "ringflow", true)?;
    certs::issue(&certs_dir, "coordinator", Role::Node, &[])?;
    certs::issue(&certs_dir, "client", Role::Client, &[])?;
    let ids: Vec<String> = (1..=a.workers).map(|i| format!("worker-{i}")).collect();
    for id in &ids {
        certs::issue(&certs_dir, id, Role::Node, &[])?;
    }
    eprintln!(
        "WARNING: an ephemeral cluster CA was generated in {} for this local cluster only; \
         use `ringflow certs init` for a real one",
        certs_dir.display()
    );
    let exe = std::env::current_exe().context("locating the ringflow binary")?;
    let s = |p: &Path| p.display().to_string();

    actix_rt::System::new().block_on(async move {
        let mut procs: Vec<Proc> = Vec::new();
        let signal = super::shutdown_signal();
        tokio::pin!(signal);
        let startup = async {
            let addr_file = dir.join("coordinator.addr");
            let _ = std::fs::remove_file(&addr_file);
            let mut args = vec![
                "coordinator".to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", a.port),
                "--data-dir".into(),
                s(&dir.join("coordinator")),
                "--certs".into(),
                s(&certs_dir),
                "--name".into(),
                "coordinator".into(),
                "--addr-file".into(),
                s(&addr_file),
            ];
            if let Some(p) = a.partitions {
                args.extend(["--partitions".into(), p.to_string()]);
            }
            // Quorums count the configured replication: with fewer workers than three,
            // the default replication is the number of workers, so that a local cluster of
            // one or two still has a quorum.
            let replication = a
                .replication
                .unwrap_or_else(|| (a.workers as u32).clamp(1, 3));
            args.extend(["--replication".into(), replication.to_string()]);
            if let Some(t) = a.failure_timeout_ms {
                args.extend(["--failure-timeout-ms".into(), t.to_string()]);
            }
            if a.metrics {
                args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
            }
            procs.push(Proc::spawn("coordinator", &exe, &args, &logs)?);
            let coord = wait_for_file(&addr_file, &mut procs, Duration::from_secs(30)).await?;
            for id in &ids {
                let mut args = vec![
                    "worker".to_string(),
                    "--id".into(),
                    id.clone(),
                    "--coordinator".into(),
                    coord.clone(),
                    "--listen".into(),
                    "127.0.0.1:0".into(),
                    "--data-dir".into(),
                    s(&dir.join(id)),
                    "--certs".into(),
                    s(&certs_dir),
                ];
                if !a.no_resp {
                    args.extend(["--resp-listen".into(), "127.0.0.1:0".into()]);
                }
                if a.metrics {
                    args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
                }
                if let Some(ms) = a.fsync_interval_ms {
                    args.extend(["--fsync-interval-ms".into(), ms.to_string()]);
                }
                procs.push(Proc::spawn(id, &exe, &args, &logs)?);
            }
            let prof = Profile {
                cluster: coord.clone(),
                cluster_name: "ringflow".into(),
                certs_dir: certs_dir.clone(),
                cert_name: "client".into(),
            };
            if !a.no_profile {
                if let Some(path) = profile::default_path() {
                    prof.save(&path)?;
                    eprintln!("client profile written to {}", path.display());
                }
            }
            // Wait until every worker is alive and every partition fully replicated.
            let client = connect(&prof, &coord).await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                let st = client.status().await?;
                let alive = st
                    .members
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .count();
                if alive == ids.len()
                    && healthy(&st)
                    && st
                        .members
                        .iter()
                        .filter(|m| m.state == MemberState::Alive)
                        .all(|m| m.member_epoch == st.epoch)
                {
                    break st;
                }
                for p in procs.iter_mut() {
                    if let Ok(Some(code)) = p.child.try_wait() {
                        bail!("{} exited ({code}); see {}", p.name, p.log.display());
                    }
                }
                if Instant::now() > deadline {
                    bail!("cluster not healthy after 60 s:\n{}", render(&st));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            client.close().await;
            println!("{}", render(&status));
            println!(
                "local cluster is up: coordinator at {coord}, logs in {}",
                logs.display()
            );
            for m in status
                .members
                .iter()
                .filter(|m| m.state == MemberState::Alive)
            {
                if let Some(resp) = m.services.get("resp") {
                    println!("{}: Redis protocol on {resp}", m.id);
                }
            }
            if a.metrics {
                // Each node writes the address it bound to its data directory.
                for name in std::iter::once("coordinator").chain(ids.iter().map(String::as_str)) {
                    if let Ok(addr) = std::fs::read_to_string(dir.join(name).join("metrics.addr")) {
                        println!("{name}: metrics on http://{}/metrics", addr.trim());
                    }
                }
            }
            println!(
                "try `ringflow status`, `ringflow put k v`, `ringflow get k` in another terminal;"
            );
            println!("Ctrl-C stops the cluster");
            Ok::<_, anyhow::Error>(())
        };
        let result = tokio::select! {
            r = startup => r,
            _ = &mut signal => Err(anyhow::anyhow!("interrupted during start-up")),
        };
        if let Err(e) = result {
            for p in procs.iter_mut().rev() {
                p.terminate();
                p.wait(Duration::from_secs(10)).await;
            }
            return Err(e);
        }
        let mut reported = vec![false; procs.len()];
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    for (i, p) in procs.iter_mut().enumerate() {
                        if !reported[i] {
                            if let Ok(Some(code)) = p.child.try_wait() {
                                eprintln!("{} exited ({code}); see {}", p.name, p.log.display());
                                reported[i] = true;
                            }
                        }
                    }
                }
            }
        }
        eprintln!("stopping the local cluster...");
        for p in procs.iter_mut().skip(1) {
            p.terminate();
        }
        for p in procs.iter_mut().skip(1) {
            p.wait(Duration::from_secs(10)).await;
        }
        if let Some(c) = procs.first_mut() {
            c.terminate();
            c.wait(Duration::from_secs(10)).await;
        }
        eprintln!("local cluster stopped");
        Ok(ExitCode::SUCCESS)
    })
}
