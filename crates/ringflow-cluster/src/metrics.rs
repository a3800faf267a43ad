//! The node's Prometheus metrics: the HTTP endpoint (`metrics_listen`), and the gauges of
//! membership, assignment and stream jobs, all in the process's global registry
//! (`ringflow_metrics::global()`). Frame and byte counters live in `ringflow-net`, DHT
//! request counters and latencies in `ringflow-dht`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use ringflow_metrics::{Gauge, GaugeVec};
use ringflow_proto::{MemberState, VertexStatus};
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

/// Per job and vertex gauges of the stream jobs running on this worker, refreshed with
/// every progress report; a job's series are removed when it ends here.
pub(crate) struct StreamGauges {
    records_in: GaugeVec<2>,
    records_out: GaugeVec<2>,
    queued: GaugeVec<2>,
    capacity: GaugeVec<2>,
}

pub(crate) fn stream_gauges() -> &'static StreamGauges {
    static G: OnceLock<StreamGauges> = OnceLock::new();
    G.get_or_init(|| {
        let r = ringflow_metrics::global();
        StreamGauges {
            records_in: r.gauge(
                "ringflow_stream_records_in",
                "Records received by a vertex's instances on this worker, while its job runs.",
                ["job", "vertex"],
            ),
            records_out: r.gauge(
                "ringflow_stream_records_out",
                "Records emitted by a vertex's instances on this worker, while its job runs.",
                ["job", "vertex"],
            ),
            queued: r.gauge(
                "ringflow_stream_queue_records",
                "Records waiting in a vertex's input queues on this worker (backpressure).",
                ["job", "vertex"],
            ),
            capacity: r.gauge(
                "ringflow_stream_queue_capacity",
                "Capacity of a vertex's input queues on this worker, in records.",
                ["job", "vertex"],
            ),
        }
    })
}

impl StreamGauges {
    /// Sets the gauges of `job` from its vertices' status (instances of one vertex
    /// summed).
    pub(crate) fn update(&self, job: &str, vertices: &[VertexStatus]) {
        let mut merged: std::collections::BTreeMap<&str, (u64, u64, u64, u64)> =
            std::collections::BTreeMap::new();
        for v in vertices {
            let e = merged.entry(v.name.as_str()).or_default();
            e.0 = e.0.saturating_add(v.records_in);
            e.1 = e.1.saturating_add(v.records_out);
            e.2 = e.2.saturating_add(v.queued);
            e.3 = e.3.saturating_add(v.queue_capacity);
        }
        for (vertex, (i, o, q, c)) in merged {
            self.records_in.with([job, vertex]).set_u64(i);
            self.records_out.with([job, vertex]).set_u64(o);
            self.queued.with([job, vertex]).set_u64(q);
            self.capacity.with([job, vertex]).set_u64(c);
        }
    }

    /// Removes every series of `job`.
    pub(crate) fn remove_job(&self, job: &str) {
        for f in [
            &self.records_in,
            &self.records_out,
            &self.queued,
            &self.capacity,
        ] {
            f.retain(|labels| labels[0] != job);
        }
    }
}

/// Removes a job's stream gauges when dropped.
pub(crate) struct JobGauges(pub String);

impl Drop for JobGauges {
    fn drop(&mut self) {
        stream_gauges().remove_job(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_gauges_follow_a_job_and_vanish_with_it() {
        let g = stream_gauges();
        let status = |name: &str, n: u64| VertexStatus {
            name: name.into(),
            instances: 1,
            finished: 0,
            records_in: n,
            records_out: n / 2,
            queued: 3,
            queue_capacity: 100,
            watermark: i64::MIN,
            counters: Default::default(),
        };
        g.update(
            "job-metrics-test",
            &[status("map", 10), status("map", 5), status("sink", 7)],
        );
        let text = ringflow_metrics::global().render();
        assert!(
            text.contains(
                "ringflow_stream_records_in{job=\"job-metrics-test\",vertex=\"map\"} 15\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "ringflow_stream_queue_capacity{job=\"job-metrics-test\",vertex=\"map\"} 200\n"
        ));
        g.remove_job("job-metrics-test");
        assert!(!ringflow_metrics::global()
            .render()
            .contains("job-metrics-test"));
    }
}
