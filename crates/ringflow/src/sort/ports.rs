//! Records to and from a job's client ports: the client streams records into the
//! instances of a `source.client.records` vertex, batch by batch, round robin, and reads
//! the sorted records out of the instances of a `sink.client.records` vertex in order.

use std::net::SocketAddr;

use ringflow_proto::{ClientPort, JobInfo};
use ringflow_stream::{AnyBatch, Item, PortType};

use super::ops::SortRecord;
use super::SortError;
use crate::ClusterClient;

/// Records per batch pushed to the cluster.
pub const PUSH_BATCH: usize = 2048;

/// The QUIC addresses of a job's workers, in instance order.
pub async fn worker_addrs(
    client: &ClusterClient,
    job: &JobInfo,
) -> Result<Vec<SocketAddr>, SortError> {
    let view = client.view().await?;
    job.workers
        .iter()
        .map(|w| {
            view.socket_addr_of(w)
                .ok_or_else(|| SortError::Failed(format!("no address for worker {w}")))
        })
        .collect()
}

fn port(job: &JobInfo, vertex: &str, instance: usize) -> ClientPort {
    ClientPort {
        job: job.id.clone(),
        vertex: vertex.to_owned(),
        instance: instance as u32,
    }
}

/// Streams every record to the instances of `vertex`, [`PUSH_BATCH`] records a batch,
/// round robin, then ends each instance's input.
pub async fn push(
    client: &ClusterClient,
    job: &JobInfo,
    addrs: &[SocketAddr],
    vertex: &str,
    records: impl Iterator<Item = Result<SortRecord, SortError>>,
) -> Result<(), SortError> {
    let mut ports = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        ports.push(client.push_port(*a, port(job, vertex, i)).await?);
    }
    if ports.is_empty() {
        return Err(SortError::Failed("the job has no workers".into()));
    }
    let codec = PortType::of::<SortRecord>();
    let mut batch: Vec<Item<SortRecord>> = Vec::with_capacity(PUSH_BATCH);
    let mut target = 0;
    let mut records = records.peekable();
    while let Some(rec) = records.next() {
        batch.push(Item {
            key: None,
            value: rec?,
        });
        if batch.len() >= PUSH_BATCH || records.peek().is_none() {
            let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            let bytes = codec
                .encode(&AnyBatch::new(std::mem::take(&mut batch)))
                .map_err(|e| SortError::Failed(e.to_string()))?;
            ports[target].push(bytes, n).await?;
            target = (target + 1) % ports.len();
        }
    }
    for p in ports {
        p.finish().await?;
    }
    Ok(())
}

/// Reads every record out of the instances of `vertex`, instance after instance (range
/// `i` holds smaller keys than range `i + 1`, so this is the sorted order).
pub async fn pull(
    client: &ClusterClient,
    job: &JobInfo,
    addrs: &[SocketAddr],
    vertex: &str,
) -> Result<Vec<Vec<u8>>, SortError> {
    let codec = PortType::of::<SortRecord>();
    let mut out = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let mut pull = client.pull_port(*a, port(job, vertex, i)).await?;
        while let Some(bytes) = pull.pull().await? {
            let batch = codec
                .decode(&bytes)
                .and_then(AnyBatch::downcast::<SortRecord>)
                .map_err(|e| SortError::Failed(e.to_string()))?;
            out.extend(batch.into_iter().map(|i| i.value.data));
        }
    }
    Ok(out)
}
