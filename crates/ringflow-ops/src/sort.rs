//! Distributed sort (TeraSort-like): sort record formats and the sort-merge stage
//! operators.
//!
//! Records are [`SortRecord`]s — raw bytes with a key span — ordered by key bytes, then
//! by all their bytes ([`cmp_records`]). A job reads files with `source.sortfile`,
//! samples keys with `sample` (whose output [`splitters`] turns into range bounds),
//! routes records to ranges with `range_partition` over a `direct` edge, sorts each
//! range with `sort` (external merge sort, spilling to the job's scratch directory)
//! and writes one part per instance with `sink.sortfile`; the parts in instance order
//! are the sorted data set. `merge` merges already-sorted inputs (behind a `gather`
//! edge) into one sorted stream.
//!
//! | name              | in → out                  | config (defaults)                                                                 |
//! |-------------------|---------------------------|-----------------------------------------------------------------------------------|
//! | `source.sortfile` | – → SortRecord            | `path`, `format = "gensort"`, `key_field`, `delimiter = "\t"`, `split = true`, `max_line_bytes = 1 MiB` |
//! | `sample`          | SortRecord → json         | `max = 10000`, `key_prefix = "sample:"`, `seed = 1`                               |
//! | `range_partition` | SortRecord → SortRecord   | `splitters = [{key = hex, data = hex}, ...]`                                      |
//! | `sort`            | SortRecord → SortRecord   | `memory_bytes = 268435456`, `fan_in = 64`, `chunk = 4096`                         |
//! | `merge`           | SortRecord → SortRecord   | `memory_bytes = 67108864`, `chunk = 4096`                                         |
//! | `sink.sortfile`   | SortRecord → –            | `path`, `format = "gensort"` (`key_field`, `delimiter` accepted, unused)          |
//!
//! A sort runs as two jobs: one samples, then the caller computes splitters and submits
//! the sort with them:
//!
//! ```toml
//! # 1. sample: one record per instance, keyed "sample:<i>"
//! [[vertex]]
//! name = "read"
//! operator = "source.sortfile"
//! config = { path = "/data/in", format = "gensort" }
//!
//! [[vertex]]
//! name = "sample"
//! operator = "sample"
//! inputs = ["read"]
//! # ... to any sink of json records; then splitters(samples, workers)
//!
//! # 2. sort: as many ranges as workers
//! [[vertex]]
//! name = "read"
//! operator = "source.sortfile"
//! config = { path = "/data/in" }
//!
//! [[vertex]]
//! name = "part"
//! operator = "range_partition"
//! config = { splitters = [{ key = "4a2f...", data = "4a2f..." }] }
//! inputs = ["read"]
//!
//! [[vertex]]
//! name = "sort"
//! operator = "sort"
//! inputs = [{ from = "part", edge = "direct" }]
//!
//! [[vertex]]
//! name = "write"
//! operator = "sink.sortfile"
//! config = { path = "/data/out" }
//! inputs = ["sort"]
//! ```
//!
//! The parts `part-00000.dat`, `part-00001.dat`, ... concatenated are the sorted data;
//! [`SortSummary`] checks it against the input (count, multiset checksum, order).

mod format;
mod loser_tree;
mod merge;
mod partition;
#[cfg(test)]
mod pipeline_tests;
mod record;
mod run;
mod sample;
mod sink;
mod sorter;
mod source;
#[cfg(test)]
mod testkit;

pub use format::{
    write_record, Format, RecordReader, SortSummary, DEFAULT_MAX_LINE_BYTES, GENSORT_KEY,
    GENSORT_RECORD,
};
pub use loser_tree::{merge_sorted, LoserTree};
pub use merge::{MergeConfig, MergeOp};
pub use partition::{RangePartitionConfig, RangePartitionOp, SplitterSpec};
pub use record::{cmp_parts, cmp_records, hex, key_slice, record_checksum, unhex, SortRecord};
pub use sample::{
    range_partition_config, samples_from_value, splitters, KeyData, SampleConfig, SampleOp,
};
pub use sink::{SortFileSink, SortFileSinkConfig};
pub use sorter::{SortConfig, SortOp};
pub use source::{SortFileSource, SortFileSourceConfig};

use ringflow_stream::Registry;

/// Registers `source.sortfile`, `sample`, `range_partition`, `sort`, `merge` and
/// `sink.sortfile`.
pub fn register(r: &mut Registry) {
    r.source::<SortFileSource>("source.sortfile");
    r.operator::<SampleOp>("sample");
    r.operator::<RangePartitionOp>("range_partition");
    r.operator::<SortOp>("sort");
    r.operator::<MergeOp>("merge");
    r.operator::<SortFileSink>("sink.sortfile");
}
