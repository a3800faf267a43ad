//! The node's Prometheus metrics: the HTTP endpoint (`metrics_listen`), and the gauges of
//! membership and assignment, all in the process's global registry
//! (`ringflow_metrics::global()`). Frame and byte counters live in `ringflow-net`, DHT
//! request counters and latencies in `ringflow-dht`, stream job gauges in
//! `ringflow-runtime`.

use std::net::SocketAddr;
use std::path::Path;

use ringflow_metrics::Gauge;
use ringflow_proto::MemberState;
use tokio::sync::watch;

use crate::coordinator::CoordinatorCore;
use crate::ClusterError;

/// File in a node's data directory holding the bound metrics address (for port 0).
pub const METRICS_ADDR_FILE: &str = "metrics.addr";

/// Binds `addr` and serves the global registry until `shutdown` flips to true (or its
/// sender is dropped). Must run inside the node's network Arbiter (a tokio runtime):
/// the server is a task of it and never blocks it. Returns the bound address.
pub(crate) fn start_endpoint(
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ClusterError> {
    let (listener, local) = ringflow_metrics::http::bind(addr)
        .map_err(|e| ClusterError::io(format!("binding the metrics address {addr}"), e))?;
    actix_rt::spawn(ringflow_metrics::http::serve(
        listener,
        ringflow_metrics::global(),
        ringflow_metrics::http::ServeOptions::default(),
        async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        },
    ));
    Ok(local)
}

/// Logs the bound metrics address and writes it to `data_dir/metrics.addr` (replaced
/// atomically), so that tools and tests can find a port picked by the system.
pub(crate) fn announce(data_dir: &Path, local: SocketAddr) -> Result<(), ClusterError> {
    tracing::info!(addr = %local, "metrics listening");
    let path = data_dir.join(METRICS_ADDR_FILE);
    let tmp = data_dir.join(format!("{METRICS_ADDR_FILE}.tmp"));
    std::fs::write(&tmp, local.to_string())
        .map_err(|e| ClusterError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| ClusterError::io(format!("writing {}", path.display()), e))
}

fn epoch_gauge() -> Gauge {
    ringflow_metrics::global()
        .gauge(
            "ringflow_epoch",
            "Epoch of the assignment this node publishes (coordinator) or acts on (worker).",
            [],
        )
        .with([])
}

const STATES: [(MemberState, &str); 5] = [
    (MemberState::Recovering, "recovering"),
    (MemberState::Alive, "alive"),
    (MemberState::Suspect, "suspect"),
    (MemberState::Dead, "dead"),
    (MemberState::Left, "left"),
];

/// The coordinator's gauges.
pub(crate) struct CoordinatorGauges {
    members: [Gauge; STATES.len()],
    epoch: Gauge,
    unowned: Gauge,
    under_replicated: Gauge,
    /// (epoch, live members) the partition gauges were computed for.
    computed_for: Option<(u64, usize)>,
}

impl CoordinatorGauges {
    pub(crate) fn new() -> Self {
        let r = ringflow_metrics::global();
        let members = r.gauge(
            "ringflow_members",
            "Workers known to the coordinator, by state.",
            ["state"],
        );
        Self {
            members: std::array::from_fn(|i| members.with([STATES[i].1])),
            epoch: epoch_gauge(),
            unowned: r
                .gauge(
                    "ringflow_partitions_unowned",
                    "Partitions without any owner.",
                    [],
                )
                .with([]),
            under_replicated: r
                .gauge(
                    "ringflow_partitions_under_replicated",
                    "Partitions with fewer owners than min(replication, live workers), as in `ringflow status`.",
                    [],
                )
                .with([]),
            computed_for: None,
        }
    }

    /// Refreshes every gauge from the core (the partition scans only when the epoch or
    /// the number of live members changed).
    pub(crate) fn update(&mut self, core: &CoordinatorCore) {
        let mut counts = [0u64; STATES.len()];
        let mut live = 0;
        for m in core.members() {
            if let Some(i) = STATES.iter().position(|(s, _)| *s == m.state) {
                counts[i] += 1;
            }
            live += usize::from(m.is_live());
        }
        for (g, n) in self.members.iter().zip(counts) {
            g.set_u64(n);
        }
        let epoch = core.epoch();
        self.epoch.set_u64(epoch);
        if self.computed_for != Some((epoch, live)) {
            let a = core.assignment();
            let target = a.replication_width().min(live);
            self.unowned.set_u64(a.unowned().len() as u64);
            self.under_replicated
                .set_u64(a.under_replicated(target).len() as u64);
            self.computed_for = Some((epoch, live));
        }
    }
}

/// The worker's gauges.
pub(crate) struct WorkerGauges {
    epoch: Gauge,
    owned: Gauge,
    primary: Gauge,
}

impl WorkerGauges {
    pub(crate) fn new() -> Self {
        let r = ringflow_metrics::global();
        Self {
            epoch: epoch_gauge(),
            owned: r
                .gauge(
                    "ringflow_partitions_owned",
                    "Partitions this worker holds a replica of (any rank).",
                    [],
                )
                .with([]),
            primary: r
                .gauge(
                    "ringflow_partitions_primary",
                    "Partitions this worker is the primary of.",
                    [],
                )
                .with([]),
        }
    }

    pub(crate) fn set(&self, epoch: u64, owned: usize, primary: usize) {
        self.epoch.set_u64(epoch);
        self.owned.set_u64(owned as u64);
        self.primary.set_u64(primary as u64);
    }
}

/// Records a job's checkpoint on the coordinator: completed (with its size, duration and
/// alignment) or failed. Series are labelled by job id.
pub(crate) fn checkpoint_metric(job: &str, done: Option<&ringflow_proto::CompletedCheckpoint>) {
    let r = ringflow_metrics::global();
    match done {
        Some(c) => {
            r.counter(
                "ringflow_job_checkpoints_completed_total",
                "Checkpoints of a stream job completed (durable and recorded).",
                ["job"],
            )
            .with([job])
            .inc();
            for (name, help, v) in [
                (
                    "ringflow_job_checkpoint_bytes",
                    "Size of the last completed checkpoint of a stream job (bytes).",
                    c.size_bytes,
                ),
                (
                    "ringflow_job_checkpoint_duration_ms",
                    "From barrier injection to the last part stored, last checkpoint (ms).",
                    c.duration_ms,
                ),
                (
                    "ringflow_job_checkpoint_alignment_ms",
                    "Longest barrier alignment of any instance, last checkpoint (ms).",
                    c.alignment_ms,
                ),
            ] {
                r.gauge(name, help, ["job"]).with([job]).set_u64(v);
            }
        }
        None => r
            .counter(
                "ringflow_job_checkpoints_failed_total",
                "Checkpoints of a stream job that failed or timed out.",
                ["job"],
            )
            .with([job])
            .inc(),
    }
}
