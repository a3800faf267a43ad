//! A DHT client writing in the background while a test changes the cluster, and the
//! check that every acknowledged write reads back.
//!
//! Keys are overwritten in rotation, so the check covers stale values too: a key must
//! read as its last acknowledged value or as a value attempted after it (a write that
//! failed may still have been applied), never as an older one, and never be missing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringflow_dht::DhtClient;
use ringflow_net::TlsIdentity;

use crate::DEADLINE;

/// Per key: the last acknowledged value, and the values attempted since.
pub type WriteLog = HashMap<String, (Option<String>, Vec<String>)>;

/// A background writer (its own thread and runtime, one client connection).
pub struct LoadWriter {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriteLog>>,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
    prefix: String,
    /// Held by the writer around each write; [`LoadWriter::hold`] takes it to check.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// What a writer did.
#[derive(Clone, Debug, Default)]
pub struct WriteStats {
    /// Acknowledged writes.
    pub acked: u64,
    /// Writes that returned an error (not acknowledged).
    pub failed: u64,
}

/// A current-thread tokio runtime for a test thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl LoadWriter {
    /// Connects as `client` (certificates in `certs`) to `coordinator` and writes keys
    /// `{prefix}-0 .. {prefix}-{keys}` in rotation until stopped.
    pub fn start(coordinator: String, certs: PathBuf, prefix: &str, keys: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<WriteLog>> = Arc::default();
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let prefix = prefix.to_string();
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let handle = {
            let (stop, log, acked, failed, prefix, gate) = (
                stop.clone(),
                log.clone(),
                acked.clone(),
                failed.clone(),
                prefix.clone(),
                gate.clone(),
            );
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let id = TlsIdentity::from_dir(&certs, "client").expect("client identity");
                    let dht = DhtClient::connect(&coordinator, &id, "ringflow")
                        .await
                        .expect("dht client");
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let held = gate.lock().await;
                        let key = format!("{prefix}-{}", n % keys);
                        let value = format!("v{n}");
                        log.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(key.clone())
                            .or_default()
                            .1
                            .push(value.clone());
                        match dht.put(&key, &value).await {
                            Ok(()) => {
                                acked.fetch_add(1, Ordering::Relaxed);
                                log.lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(key, (Some(value), Vec::new()));
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                drop(held);
                                // Do not spin on a cluster that refuses everything.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                n += 1;
                                continue;
                            }
                        }
                        drop(held);
                        n += 1;
                    }
                    dht.close().await;
                })
            })
        };
        Self {
            stop,
            log,
            acked,
            failed,
            handle: Some(handle),
            prefix,
            gate,
        }
    }

    /// Pauses the writer (after its write in flight) while the guard lives, so that
    /// [`LoadWriter::log`] and what the cluster holds can be compared.
    pub fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.blocking_lock()
    }

    /// A copy of the log of writes so far.
    pub fn log(&self) -> WriteLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Acknowledged and failed writes so far.
    pub fn stats(&self) -> WriteStats {
        WriteStats {
            acked: self.acked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Waits until `more` writes beyond those acknowledged now are acknowledged.
    pub fn wait_progress(&self, more: u64) {
        let target = self.stats().acked + more;
        let deadline = Instant::now() + DEADLINE;
        while self.stats().acked < target {
            assert!(
                Instant::now() < deadline,
                "writer {} makes no progress: {:?}",
                self.prefix,
                self.stats()
            );
            assert!(
                !self.handle.as_ref().is_some_and(|h| h.is_finished()),
                "writer {} stopped",
                self.prefix
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops writing; the log of what was written.
    pub fn stop(mut self) -> (WriteStats, WriteLog) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (self.stats(), log)
    }
}

impl Drop for LoadWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads every key of `log` back through `coordinator` and returns the keys that lost
/// an acknowledged write (missing, or an older value), each with what was read.
pub fn lost_writes(coordinator: &str, certs: &std::path::Path, log: &WriteLog) -> Vec<String> {
    runtime().block_on(async {
        let id = TlsIdentity::from_dir(certs, "client").expect("client identity");
        let dht = DhtClient::connect(coordinator, &id, "ringflow")
            .await
            .expect("dht client");
        let keys: Vec<String> = log.keys().cloned().collect();
        let mut lost = Vec::new();
        for chunk in keys.chunks(500) {
            let got = dht
                .get_many(chunk.iter().cloned())
                .await
                .expect("reading the written keys back");
            for (key, value) in chunk.iter().zip(got) {
                let (last_acked, attempted_since) = &log[key];
                let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                let ok = value == *last_acked
                    || value.as_ref().is_some_and(|v| attempted_since.contains(v));
                if !ok {
                    lost.push(format!(
                        "{key}: read {value:?}, last acknowledged {last_acked:?}, attempted since {attempted_since:?}"
                    ));
                }
            }
        }
        dht.close().await;
        lost
    })
}
