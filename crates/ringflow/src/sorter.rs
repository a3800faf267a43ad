//! The distributed sort from Rust: values added by the client are streamed to the
//! workers, range-partitioned by splitters sampled here, sorted on each worker (spilling
//! past its memory budget) and streamed back in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringflow::Error> {
//! let cluster = ringflow::Cluster::from_profile()?;
//! let mut ds = cluster.sorter();
//! ds.add("pear");
//! ds.add("apple");
//! let sorted = ds.sort().await?;
//! assert_eq!(sorted, vec![b"apple".to_vec(), b"pear".to_vec()]);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use ringflow_ops::sort::{self as sortops, SortRecord};
use ringflow_proto::{ClientPort, JobState};
use ringflow_stream::{AnyBatch, EdgeKind, Item, JobSpec, PortType, VertexSpec};
use serde_json::json;

use crate::{Cluster, ClusterClient, ClusterError, Error};

/// Records per batch pushed to the cluster.
const PUSH_BATCH: usize = 2048;

/// Samples drawn on the client to choose the range splitters.
const SAMPLES: usize = 20_000;

/// Sorts byte strings (lexicographically) across the cluster's workers.
pub struct Sorter {
    cluster: Cluster,
    items: Vec<Vec<u8>>,
    memory_per_worker: u64,
}

impl Cluster {
    /// A distributed sort of byte strings; nothing is sent until [`Sorter::sort`].
    pub fn sorter(&self) -> Sorter {
        Sorter {
            cluster: self.clone(),
            items: Vec::new(),
            memory_per_worker: 256 << 20,
        }
    }
}

impl Sorter {
    /// Adds a value.
    pub fn add(&mut self, value: impl Into<Vec<u8>>) {
        self.items.push(value.into());
    }

    /// Memory each worker may use to sort before it spills runs to disk.
    pub fn memory_per_worker(mut self, bytes: u64) -> Self {
        self.memory_per_worker = bytes.max(1 << 20);
        self
    }

    /// Sorts everything added, on the cluster, and returns it in order.
    pub async fn sort(self) -> Result<Vec<Vec<u8>>, Error> {
        let client = ClusterClient::connect(
            &self.cluster.coordinator,
            &self.cluster.identity,
            &self.cluster.name,
        )
        .await?;
        let result = self.run(&client).await;
        client.close().await;
        result
    }

    async fn run(self, client: &ClusterClient) -> Result<Vec<Vec<u8>>, Error> {
        let view = client.view().await?;
        let workers = view.peers.len().max(1);
        let records: Vec<SortRecord> = self
            .items
            .into_iter()
            .map(|data| SortRecord {
                key_off: 0,
                key_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data,
            })
            .collect();
        // Splitters from an evenly spaced sample of what we hold.
        let step = (records.len() / SAMPLES).max(1);
        let samples: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .step_by(step)
            .map(|r| (r.key().to_vec(), r.data.clone()))
            .collect();
        let splitters: Vec<serde_json::Value> = sortops::splitters(samples, workers)
            .into_iter()
            .map(|(k, d)| json!({"key": sortops::hex(&k), "data": sortops::hex(&d)}))
            .collect();
        let spec = JobSpec::new("sorter")
            .vertex(VertexSpec::new("input", "source.client.records"))
            .vertex(
                VertexSpec::new("ranges", "range_partition")
                    .config(json!({ "splitters": splitters }))
                    .input("input", EdgeKind::Forward),
            )
            .vertex(
                VertexSpec::new("sort", "sort")
                    .config(json!({ "memory_bytes": self.memory_per_worker }))
                    .input("ranges", EdgeKind::Direct),
            )
            .vertex(
                VertexSpec::new("output", "sink.client.records").input("sort", EdgeKind::Forward),
            );
        let job = client.submit_job(spec.to_json()).await?;
        let addrs: Vec<SocketAddr> = job
            .workers
            .iter()
            .map(|w| {
                view.peers
                    .iter()
                    .find(|p| &p.id == w)
                    .and_then(|p| p.addr.parse().ok())
                    .ok_or_else(|| {
                        Error::Cluster(ClusterError::Refused(format!("no address for worker {w}")))
                    })
            })
            .collect::<Result<_, _>>()?;
        let port = PortType::of::<SortRecord>();
        let outcome = async {
            // Feed every source instance round-robin, batch by batch.
            let mut pushes = Vec::with_capacity(addrs.len());
            for (i, a) in addrs.iter().enumerate() {
                pushes.push(client.push_port(*a, port_of(&job.id, "input", i)).await?);
            }
            let mut target = 0;
            for chunk in records.chunks(PUSH_BATCH) {
                let batch: Vec<Item<SortRecord>> = chunk
                    .iter()
                    .map(|r| Item {
                        key: None,
                        value: r.clone(),
                    })
                    .collect();
                let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
                let bytes = port
                    .encode(&AnyBatch::new(batch))
                    .map_err(|e| ClusterError::Unexpected(e.to_string()))?;
                pushes[target].push(bytes, n).await?;
                target = (target + 1) % pushes.len();
            }
            drop(records);
            for p in pushes {
                p.finish().await?;
            }
            // Range i holds smaller keys than range i + 1: read the outputs in order.
            let mut out = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                let mut pull = client.pull_port(*a, port_of(&job.id, "output", i)).await?;
                while let Some(bytes) = pull.pull().await? {
                    let batch = port
                        .decode(&bytes)
                        .and_then(AnyBatch::downcast::<SortRecord>)
                        .map_err(|e| ClusterError::Unexpected(e.to_string()))?;
                    out.extend(batch.into_iter().map(|i| i.value.data));
                }
            }
            Ok::<_, ClusterError>(out)
        }
        .await;
        match outcome {
            Ok(out) => {
                // The job ends once the outputs were read; report its failure if any.
                for _ in 0..600 {
                    let info = client.job(&job.id).await?;
                    match info.state {
                        JobState::Finished => return Ok(out),
                        s if s.is_terminal() => {
                            return Err(Error::Cluster(ClusterError::Refused(format!(
                                "sort job {} {}: {}",
                                job.id,
                                s.as_str(),
                                info.reason.unwrap_or_default()
                            ))))
                        }
                        _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                    }
                }
                Ok(out)
            }
            Err(e) => {
                let _ = client.cancel_job(&job.id).await;
                let reason = client
                    .job(&job.id)
                    .await
                    .ok()
                    .and_then(|j| j.reason)
                    .unwrap_or_default();
                Err(Error::Cluster(ClusterError::Refused(format!(
                    "sort job {}: {e} {reason}",
                    job.id
                ))))
            }
        }
    }
}

fn port_of(job: &str, vertex: &str, instance: usize) -> ClientPort {
    ClientPort {
        job: job.to_owned(),
        vertex: vertex.to_owned(),
        instance: instance as u32,
    }
}
