//! The Rust seed API of the distributed sort: `cluster.sorter()`, `add`, `sort().await`,
//! against real worker processes (values stream to the workers and back over QUIC).

use ringflow::{Cluster, TlsIdentity};
use ringflow_tests::{pseudo_random, ClusterOpts, TestCluster};

#[test]
fn the_sorter_sorts_values_added_by_the_client_across_the_workers() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let identity = TlsIdentity::from_dir(&c.certs_dir(), "client").expect("client identity");
    let cluster = Cluster::new(c.coordinator_addr().to_string(), identity, "ringflow");
    let noise = pseudo_random(99, 400_000);
    let mut values: Vec<Vec<u8>> = noise
        .chunks(8)
        .enumerate()
        .map(|(i, chunk)| {
            // Varied lengths, a skewed first byte, and exact duplicates.
            let mut v = chunk[..1 + (chunk[0] as usize % 8)].to_vec();
            if i % 4 == 0 {
                v[0] = b'k';
            }
            if i % 10 == 0 {
                v = b"duplicate".to_vec();
            }
            v
        })
        .collect();
    values.push(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // 1 MiB per worker for ~50k small values forces spilled runs and merges.
    let mut ds = cluster.sorter().memory_per_worker(1 << 20);
    for v in &values {
        ds.add(v.clone());
    }
    let sorted = rt.block_on(ds.sort()).expect("sorted");
    values.sort();
    assert_eq!(sorted.len(), values.len());
    assert!(
        sorted == values,
        "the cluster's order differs from the reference sort"
    );

    // An empty sort is fine too.
    let empty = rt.block_on(cluster.sorter().sort()).expect("empty sort");
    assert!(empty.is_empty());
}
