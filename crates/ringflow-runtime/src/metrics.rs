//! Per job and vertex gauges of the stream jobs running on this worker, in the process's
//! global registry (`ringflow_metrics::global()`): records in and out, queue fill and
//! capacity (backpressure), removed when the job ends here.

use std::sync::OnceLock;

use ringflow_metrics::GaugeVec;
use ringflow_proto::VertexStatus;

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
