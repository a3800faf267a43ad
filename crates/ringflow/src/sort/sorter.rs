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

use super::driver::{self, Quiet};
use super::samples::Values;
use super::spec::{SampleVia, SortInput, SortOutput, SortPlan};
use crate::{Cluster, ClusterClient, Error};

/// Samples drawn on the client per worker to choose the range splitters.
const SAMPLES_PER_WORKER: usize = 20_000;

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
        let plan = SortPlan {
            // Every value is its own key; the format only names the sinks' files.
            format: "lines".into(),
            key_field: None,
            delimiter: "\t".into(),
            input: SortInput::Client(Box::new(Values(self.items))),
            output: SortOutput::Client,
            memory: self.memory_per_worker,
            samples: SAMPLES_PER_WORKER,
            sample_via: SampleVia::Dht,
        };
        let result = driver::run(&self.cluster, &client, &plan, &mut Quiet).await;
        client.close().await;
        Ok(result?.sorted)
    }
}
