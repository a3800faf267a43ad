//! The DHT's fault-injection checker (issue 17): concurrent writers and readers over RESP
//! on every worker's port record each operation's invocation, completion and outcome,
//! while a nemesis kills (-9), pauses (SIGSTOP/SIGCONT) and restarts workers and the
//! coordinator and partitions nodes (iptables on loopback), overlapping faults included.
//! At the end every key is read and the history is checked (`ringflow_tests::history`):
//! no acknowledged write lost, no value never written, none older than an acknowledged
//! overwrite.
//!
//! CI runs the short version: one round of each fault, each held for a few seconds. Longer runs:
//! `RINGFLOW_CHECKER_ROUNDS` (rounds, cycling through the faults with other targets) and
//! `RINGFLOW_CHECKER_SECS` (how long each fault is held); `scripts/dht-checker.sh` runs
//! it long. `RINGFLOW_CHECKER_HISTORY=FILE` writes the whole history to FILE. Without root
//! and iptables the partition faults are skipped, saying so.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringflow_tests::history::{self, Action, Op, Time, WriteOutcome};
use ringflow_tests::netfault::{self, UdpCut};
use ringflow_tests::{Client, ClusterOpts, TestCluster, DEADLINE};

/// Keys written and read: few, so that overwrites are frequent.
const KEYS: usize = 20;
/// Writers and readers per worker port.
const WRITERS_PER_PORT: usize = 2;
const READERS_PER_PORT: usize = 1;
/// A client gives up on an operation after this long (its outcome is then unknown).
const OP_TIMEOUT: Duration = Duration::from_secs(3);
const WORKERS: [&str; 3] = ["worker-1", "worker-2", "worker-3"];

/// What the clients share with the nemesis.
struct Shared {
    start: Instant,
    /// Each worker's current RESP address (it changes when the worker restarts).
    addrs: RwLock<BTreeMap<String, SocketAddr>>,
    stop: AtomicBool,
    ops: Mutex<Vec<Op>>,
    acked: AtomicU64,
}

impl Shared {
    fn now(&self) -> Time {
        self.start.elapsed().as_nanos() as Time
    }

    fn record(&self, op: Op) {
        if matches!(
            op.action,
            Action::Write {
                outcome: WriteOutcome::Ok,
                ..
            }
        ) {
            self.acked.fetch_add(1, Ordering::Relaxed);
        }
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    fn addr(&self, worker: &str) -> Option<SocketAddr> {
        self.addrs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(worker)
            .copied()
    }
}

fn connect(addr: SocketAddr) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/")).ok()?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    con.set_read_timeout(Some(OP_TIMEOUT)).ok()?;
    con.set_write_timeout(Some(OP_TIMEOUT)).ok()?;
    Some(con)
}

fn error_text(e: &redis::RedisError) -> String {
    let text = e.to_string();
    text.chars().take(160).collect()
}

/// Whether a write's error says it was not applied.
fn not_applied(e: &redis::RedisError) -> bool {
    matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN"))
}

/// One client thread: writes (unique values `w{process}-{seq}`) or reads random keys
/// through one worker's RESP port until stopped, recording every operation.
fn client(shared: Arc<Shared>, process: usize, worker: &'static str, writer: bool) {
    let mut con: Option<redis::Connection> = None;
    let mut rng = (process as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if con.is_none() {
            con = shared.addr(worker).and_then(connect);
            if con.is_none() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let c = con.as_mut().expect("connected");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = format!("key-{}", rng % KEYS as u64);
        let invoke = shared.now();
        let (action, note, failed, drop_con) = if writer {
            let value = format!("w{process}-{seq}");
            seq += 1;
            let res: redis::RedisResult<()> = redis::cmd("SET").arg(&key).arg(&value).query(c);
            match res {
                Ok(()) => (
                    Action::Write {
                        value,
                        outcome: WriteOutcome::Ok,
                    },
                    String::new(),
                    false,
                    false,
                ),
                Err(e) => {
                    let outcome = if not_applied(&e) {
                        WriteOutcome::Failed
                    } else {
                        WriteOutcome::Unknown
                    };
                    (
                        Action::Write { value, outcome },
                        error_text(&e),
                        true,
                        e.code().is_none(),
                    )
                }
            }
        } else {
            let res: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(&key).query(c);
            match res {
                Ok(v) => (
                    Action::Read { result: Some(v) },
                    String::new(),
                    false,
                    false,
                ),
                Err(e) => (
                    Action::Read { result: None },
                    error_text(&e),
                    true,
                    e.code().is_none(),
                ),
            }
        };
        let complete = shared.now();
        shared.record(Op {
            process,
            key,
            invoke,
            complete,
            action,
            note: format!("{worker}{}{note}", if note.is_empty() { "" } else { ": " }),
        });
        if drop_con {
            // A timed-out connection may still deliver the old answer: never reuse it.
            con = None;
        }
        if failed {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill9Worker,
    PauseWorker,
    PauseTwoWorkers,
    KillOnePauseAnother,
    Kill9Coordinator,
    PauseCoordinator,
    CutWorkerFromCoordinator,
    CutWorkerFromPeer,
    CutPeersAndOneFromCoordinator,
}

const FAULTS: [Fault; 9] = [
    Fault::Kill9Worker,
    Fault::PauseWorker,
    Fault::CutWorkerFromCoordinator,
    Fault::PauseTwoWorkers,
    Fault::Kill9Coordinator,
    Fault::CutWorkerFromPeer,
    Fault::KillOnePauseAnother,
    Fault::PauseCoordinator,
    Fault::CutPeersAndOneFromCoordinator,
];

impl Fault {
    fn needs_network(self) -> bool {
        matches!(
            self,
            Fault::CutWorkerFromCoordinator
                | Fault::CutWorkerFromPeer
                | Fault::CutPeersAndOneFromCoordinator
        )
    }
}

fn env_num(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// Applies `fault` to the workers `a`, `b`, `w3` (distinct), holds it for `hold`, heals.
/// Returns a description of what was done.
fn run_fault(c: &mut TestCluster, fault: Fault, t: [&str; 3], hold: Duration) -> String {
    let [a, b, other] = t;
    let port = |c: &TestCluster, id: &str| c.workers[id].addr.port();
    let coord = c.coordinator_addr().port();
    match fault {
        Fault::Kill9Worker => {
            c.take_worker(a).kill9();
            std::thread::sleep(hold);
            c.start_worker(a);
            format!("kill -9 {a}, restart")
        }
        Fault::PauseWorker => {
            c.workers.get_mut(a).expect("worker").pause();
            std::thread::sleep(hold);
            c.workers.get_mut(a).expect("worker").resume();
            format!("SIGSTOP {a}, SIGCONT")
        }
        Fault::PauseTwoWorkers => {
            c.workers.get_mut(a).expect("worker").pause();
            c.workers.get_mut(b).expect("worker").pause();
            std::thread::sleep(hold);
            c.workers.get_mut(a).expect("worker").resume();
            c.workers.get_mut(b).expect("worker").resume();
            format!("SIGSTOP {a} and {b} at once, SIGCONT both")
        }
        Fault::KillOnePauseAnother => {
            c.take_worker(a).kill9();
            c.workers.get_mut(b).expect("worker").pause();
            std::thread::sleep(hold);
            c.workers.get_mut(b).expect("worker").resume();
            c.start_worker(a);
            format!("kill -9 {a} while {b} is stopped, SIGCONT {b}, restart {a}")
        }
        Fault::Kill9Coordinator => {
            c.coordinator.take().expect("coordinator").kill9();
            std::thread::sleep(hold);
            c.start_coordinator();
            "kill -9 the coordinator, restart".into()
        }
        Fault::PauseCoordinator => {
            c.coordinator.as_mut().expect("coordinator").pause();
            std::thread::sleep(hold);
            c.coordinator.as_mut().expect("coordinator").resume();
            "SIGSTOP the coordinator, SIGCONT".into()
        }
        Fault::CutWorkerFromCoordinator => {
            let cut = UdpCut::between(port(c, a), coord).expect("cutting");
            std::thread::sleep(hold);
            cut.heal();
            format!("cut {a} from the coordinator, heal")
        }
        Fault::CutWorkerFromPeer => {
            let cut = UdpCut::between(port(c, a), port(c, b)).expect("cutting");
            std::thread::sleep(hold);
            cut.heal();
            format!("cut {a} from {b}, heal")
        }
        Fault::CutPeersAndOneFromCoordinator => {
            let peers = UdpCut::between(port(c, a), port(c, b)).expect("cutting");
            let coord_cut = UdpCut::between(port(c, other), coord).expect("cutting");
            std::thread::sleep(hold);
            peers.heal();
            coord_cut.heal();
            format!("cut {a} from {b} and {other} from the coordinator at once, heal both")
        }
    }
}

/// Counts of the operations invoked in `[from, to)`.
fn round_stats(shared: &Shared, from: Time, to: Time) -> history::Stats {
    let ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner());
    let in_round: Vec<Op> = ops
        .iter()
        .filter(|o| o.invoke >= from && o.invoke < to)
        .cloned()
        .collect();
    history::stats(&in_round)
}

/// Waits until `more` writes beyond those acknowledged now are acknowledged.
fn wait_progress(shared: &Shared, c: &TestCluster, more: u64, what: &str) {
    let target = shared.acked.load(Ordering::Relaxed) + more;
    let deadline = Instant::now() + DEADLINE;
    while shared.acked.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "no acknowledged writes {what}\n{}",
            c.logs_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `key` through `worker` until the cluster answers; the read is recorded in the
/// history if `record`.
fn read_until_answered(
    shared: &Shared,
    process: usize,
    worker: &str,
    key: &str,
    record: bool,
) -> Option<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let Some(mut con) = shared.addr(worker).and_then(connect) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let invoke = shared.now();
        let res: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(key).query(&mut con);
        let complete = shared.now();
        match res {
            Ok(v) if !record => return v,
            Ok(v) => {
                shared.record(Op {
                    process,
                    key: key.to_string(),
                    invoke,
                    complete,
                    action: Action::Read {
                        result: Some(v.clone()),
                    },
                    note: format!("{worker}: read after the faults"),
                });
                return v;
            }
            Err(e) => last = error_text(&e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{key} could not be read through {worker} after the faults: {last}");
}

/// The operations of the anomaly's key within half a second of those it names.
fn excerpt(ops: &[Op], a: &history::Anomaly) -> String {
    let margin = 500_000_000; // 0.5 s
    let near = |t: Time| {
        a.ops.iter().any(|o| {
            (o.invoke.saturating_sub(margin)..=o.invoke.saturating_add(margin)).contains(&t)
                || (o.complete.saturating_sub(margin)..=o.complete.saturating_add(margin))
                    .contains(&t)
        })
    };
    let mut around: Vec<&Op> = ops
        .iter()
        .filter(|o| o.key == a.key && (near(o.invoke) || near(o.complete)))
        .collect();
    around.sort_by_key(|o| o.invoke);
    let shown = around.len().min(120);
    let mut s = format!("  history of {} near them ({} ops):\n", a.key, around.len());
    for o in &around[..shown] {
        s.push_str(&format!("    {o}\n"));
    }
    s
}

#[test]
fn no_acknowledged_write_is_lost_when_faults_overlap() {
    let hold = Duration::from_secs(env_num("RINGFLOW_CHECKER_SECS").unwrap_or(6));
    let mut faults: Vec<Fault> = FAULTS.to_vec();
    if let Err(why) = netfault::available() {
        println!("SKIPPED partition faults: {why}");
        faults.retain(|f| !f.needs_network());
    }
    let rounds = env_num("RINGFLOW_CHECKER_ROUNDS").unwrap_or(faults.len() as u64) as usize;

    let mut c = TestCluster::start(ClusterOpts {
        resp: true,
        partitions: 64,
        failure_timeout_ms: 3000,
        ..ClusterOpts::default()
    });
    let shared = Arc::new(Shared {
        start: Instant::now(),
        addrs: RwLock::new(c.resp_addrs()),
        stop: AtomicBool::new(false),
        ops: Mutex::new(Vec::new()),
        acked: AtomicU64::new(0),
    });
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    let mut process = 0;
    for worker in WORKERS {
        for n in 0..WRITERS_PER_PORT + READERS_PER_PORT {
            let shared = shared.clone();
            let writer = n < WRITERS_PER_PORT;
            clients.push(std::thread::spawn(move || {
                client(shared, process, worker, writer)
            }));
            process += 1;
        }
    }
    wait_progress(&shared, &c, 50, "before the first fault");

    let mut lines = Vec::new();
    for round in 0..rounds {
        let fault = faults[round % faults.len()];
        // Other targets on every pass through the list.
        let shift = round / faults.len() + round;
        let t = [
            WORKERS[shift % 3],
            WORKERS[(shift + 1) % 3],
            WORKERS[(shift + 2) % 3],
        ];
        let began = Instant::now();
        let from = shared.now();
        let what = run_fault(&mut c, fault, t, hold);
        let healed = Instant::now();
        c.wait_healthy(3);
        *shared.addrs.write().unwrap_or_else(|e| e.into_inner()) = c.resp_addrs();
        wait_progress(&shared, &c, 20, &format!("after round {round} ({what})"));
        let to = shared.now();
        let line = format!(
            "round {round:>3} {fault:?}: {what}; held {:.1}s, healthy and writing {:.1}s later; {}",
            hold.as_secs_f64(),
            healed.elapsed().as_secs_f64(),
            round_stats(&shared, from, to)
        );
        println!("{line}");
        lines.push(line);
        assert!(
            began.elapsed() < hold + 3 * DEADLINE,
            "round {round} took {:?}",
            began.elapsed()
        );
    }

    shared.stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().expect("client thread");
    }
    c.wait_healthy(3);
    *shared.addrs.write().unwrap_or_else(|e| e.into_inner()) = c.resp_addrs();
    // Every key through every port (recorded reads), then the final read through the first.
    let mut finals = BTreeMap::new();
    for k in 0..KEYS {
        let key = format!("key-{k}");
        for (i, worker) in WORKERS.iter().enumerate() {
            read_until_answered(&shared, 1000 + i, worker, &key, true);
        }
        let value = read_until_answered(&shared, 2000, WORKERS[0], &key, false);
        finals.insert(key, value);
    }

    let ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Ok(path) = std::env::var("RINGFLOW_CHECKER_HISTORY") {
        let mut text: String = ops.iter().map(|o| format!("{o}\n")).collect();
        for (k, v) in &finals {
            text.push_str(&format!("final {k} = {v:?}\n"));
        }
        std::fs::write(&path, text).expect("writing the history");
        println!("history written to {path}");
    }
    let anomalies = history::check(&ops, &finals);
    println!("--- dht checker: {rounds} rounds, faults held {hold:?}");
    for l in &lines {
        println!("{l}");
    }
    println!("total: {}", history::stats(&ops));
    println!("final values: {finals:?}");
    println!("anomalies: {}", anomalies.len());
    let mut report = String::new();
    for a in &anomalies {
        report.push_str(&format!("{a}{}\n", excerpt(&ops, a)));
    }
    assert!(
        anomalies.is_empty(),
        "{} anomalies:\n{report}\nlogs:\n{}",
        anomalies.len(),
        c.logs_tail(60)
    );
}
