//! The distributed sort's one driver, used by `ringflow sort` and by
//! [`Cluster::sorter`](crate::Cluster::sorter).
//!
//! A sort is at most two jobs. Splitters come from a sample: the client's own (when it
//! streams the records itself) or a **sample job** (`source.sortfile → sample →
//! sink.dht`) whose per-instance samples the client reads back from the DHT. The **sort
//! job** (`source → range_partition →direct→ sort → sink`) sends every record to the
//! worker of its key range, where an external merge sort (sorted runs spilled past the
//! memory budget, then a loser-tree merge) streams it out in order: to part files on
//! the workers (`sink.sortfile`), or back to the client (`sink.client.records`), range
//! after range.
//!
//! - [`spec`]: the [`SortPlan`] and the job specs it makes;
//! - [`samples`]: sampling on the client, reading and weighing the workers' samples;
//! - [`ports`]: streaming records to and from a job's client ports;
//! - [`driver`]: the steps in order, with a [`SortObserver`] for progress;
//! - [`sorter`]: the Rust API ([`Sorter`]).

pub mod driver;
pub mod error;
pub mod ports;
pub mod samples;
pub mod sorter;
pub mod spec;

pub use driver::{run, Quiet, SortObserver, SortRun};
pub use error::SortError;
pub use samples::{ClientFiles, RecordSource, SideInfo, Values};
pub use sorter::Sorter;
pub use spec::{SampleVia, SortInput, SortOutput, SortPlan};

/// The sort operators and record formats (`ringflow-ops`).
pub(crate) use ringflow_ops::sort as ops;

/// A size for people: `512 B`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
