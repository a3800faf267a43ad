//! The DHT's request metrics (`ringflow_dht_requests_total`, `ringflow_dht_request_seconds`),
//! every series created up front.

use std::sync::OnceLock;
use std::time::Duration;

use crate::wire::{DhtRequest, DhtResponse};

/// Request kinds as the `op` label says them, indexed by [`op_index`].
const OPS: [&str; 6] = ["put", "get", "replicate", "read_replica", "fetch", "forget"];
/// Answers as the `outcome` label says them, indexed by [`outcome_index`].
const OUTCOMES: [&str; 5] = ["ok", "moved", "unavailable", "error", "unknown"];

pub(super) fn op_index(req: &DhtRequest) -> usize {
    match req {
        DhtRequest::Put { .. } => 0,
        DhtRequest::Get { .. } => 1,
        DhtRequest::Replicate { .. } => 2,
        DhtRequest::ReadReplica { .. } => 3,
        DhtRequest::Fetch { .. } => 4,
        DhtRequest::Forget { .. } => 5,
        // Never recorded: `handle` records the parts.
        DhtRequest::Multi(_) => 0,
    }
}

fn outcome_index(resp: &DhtResponse) -> usize {
    match resp {
        DhtResponse::Written { .. }
        | DhtResponse::Values { .. }
        | DhtResponse::Replicated
        | DhtResponse::Superseded { .. }
        | DhtResponse::Page { .. }
        | DhtResponse::Entries { .. }
        | DhtResponse::Multi(_) => 0,
        DhtResponse::Moved { .. } => 1,
        DhtResponse::Unavailable { .. } => 2,
        DhtResponse::Error { .. } => 3,
        DhtResponse::Unknown { .. } => 4,
    }
}

/// Handles on the DHT's metrics (`ringflow_dht_*`), every series created up front.
pub(super) struct DhtMetrics {
    requests: [[ringflow_metrics::Counter; OUTCOMES.len()]; OPS.len()],
    seconds: [ringflow_metrics::Histogram; OPS.len()],
}

pub(super) fn metrics() -> &'static DhtMetrics {
    static M: OnceLock<DhtMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let r = ringflow_metrics::global();
        let requests = r.counter(
            "ringflow_dht_requests_total",
            "DHT requests handled by this worker, by operation and outcome.",
            ["op", "outcome"],
        );
        let seconds = r.histogram(
            "ringflow_dht_request_seconds",
            "Time this worker spent handling a DHT request (quorum waits included), by operation.",
            ["op"],
            ringflow_metrics::LATENCY_BUCKETS,
        );
        DhtMetrics {
            requests: std::array::from_fn(|op| {
                std::array::from_fn(|outcome| requests.with([OPS[op], OUTCOMES[outcome]]))
            }),
            seconds: std::array::from_fn(|op| seconds.with([OPS[op]])),
        }
    })
}

impl DhtMetrics {
    pub(super) fn record(&self, op: usize, resp: &DhtResponse, elapsed: Duration) {
        if let Some(c) = self
            .requests
            .get(op)
            .and_then(|row| row.get(outcome_index(resp)))
        {
            c.inc();
        }
        if let Some(h) = self.seconds.get(op) {
            h.observe_duration(elapsed);
        }
    }
}
