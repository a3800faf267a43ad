//! Whole sort jobs on simulated workers ([`ringflow_stream::LocalRunner`]): sample, range
//! partition, sort, write; and sort + merge on one instance.

use std::path::Path;

use serde_json::json;

use super::format::{write_record, Format, RecordReader};
use super::record::{cmp_records, record_checksum, SortRecord};
use super::sample::{range_partition_config, samples_from_value, splitters};
use super::testkit::gensort_bytes;
use crate::testkit::{run_job, test_registry, JobResult};
use ringflow_stream::spec::{EdgeKind, JobSettings, JobSpec, VertexSpec};

const WORKERS: usize = 3;

fn settings() -> JobSettings {
    JobSettings {
        batch_size: 128,
        ..JobSettings::default()
    }
}

/// Every record of every (non-hidden) file of `dir`.
fn read_dir_records(dir: &Path, format: Format) -> Vec<SortRecord> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let f = std::fs::File::open(&p).unwrap();
        out.extend(RecordReader::new(f, format).map(|r| r.unwrap()));
    }
    out
}

/// The input records sorted and written in `format`: what the parts must hold.
fn expected_bytes(input: &Path, format: Format) -> (Vec<u8>, u64, u64) {
    let mut recs = read_dir_records(input, format);
    recs.sort_by(cmp_records);
    let mut bytes = Vec::new();
    let mut sum = 0u64;
    for r in &recs {
        write_record(&mut bytes, format, r).unwrap();
        sum += u64::from(record_checksum(&r.data));
    }
    (bytes, recs.len() as u64, sum)
}

/// The parts `part-00000 .. part-<n-1>` of `dir` concatenated.
fn concat_parts(dir: &Path, n: usize, ext: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(std::fs::read(dir.join(format!("part-{i:05}.{ext}"))).unwrap());
    }
    out
}

/// Runs the sampling job; returns splitters for `ranges` ranges.
fn sample_splitters(
    name: &str,
    source: serde_json::Value,
    ranges: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let spec = JobSpec::new(name)
        .settings(settings())
        .vertex(VertexSpec::new("read", "source.sortfile").config(source))
        .vertex(
            VertexSpec::new("sample", "sample")
                .config(json!({"max": 300}))
                .input("read", EdgeKind::Forward),
        )
        .vertex(
            VertexSpec::new("out", "test.collect")
                .config(json!({ "name": name }))
                .input("sample", EdgeKind::Gather)
                .single(),
        );
    let result = run_job(spec, WORKERS);
    assert_eq!(result.records.len(), WORKERS, "one sample per instance");
    let mut samples = Vec::new();
    for item in &result.records {
        assert!(item
            .key
            .as_deref()
            .is_some_and(|k| k.starts_with("sample:")));
        samples.extend(samples_from_value(&item.value).unwrap());
    }
    splitters(samples, ranges)
}

/// Runs read → range_partition → (direct) sort → write on 3 workers.
fn sort_job(
    name: &str,
    source: serde_json::Value,
    split: &[(Vec<u8>, Vec<u8>)],
    sink: serde_json::Value,
    sort: serde_json::Value,
) -> JobResult {
    let spec = JobSpec::new(name)
        .settings(settings())
        .vertex(VertexSpec::new("read", "source.sortfile").config(source))
        .vertex(
            VertexSpec::new("part", "range_partition")
                .config(range_partition_config(split))
                .input("read", EdgeKind::Forward),
        )
        .vertex(
            VertexSpec::new("sort", "sort")
                .config(sort)
                .input("part", EdgeKind::Direct),
        )
        .vertex(
            VertexSpec::new("write", "sink.sortfile")
                .config(sink)
                .input("sort", EdgeKind::Forward),
        );
    run_job(spec, WORKERS)
}

fn write_gensort_input(dir: &Path, skew: bool) {
    std::fs::create_dir_all(dir).unwrap();
    // Files of different sizes, more files than workers.
    for (i, n) in [4000usize, 2500, 100, 0, 3400].iter().enumerate() {
        std::fs::write(
            dir.join(format!("in-{i}.dat")),
            gensort_bytes(*n, i as u64 + 1, skew),
        )
        .unwrap();
    }
}

#[test]
fn sortfile_operators_are_registered() {
    let r = test_registry();
    assert!(r.get("source.sortfile").is_some_and(|e| e.is_source()));
    for op in [
        "sample",
        "range_partition",
        "sort",
        "merge",
        "sink.sortfile",
    ] {
        assert!(r.get(op).is_some_and(|e| !e.is_source()), "{op}");
    }
}

#[test]
fn gensort_data_sorts_across_three_workers() {
    for skew in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        let output = tmp.path().join("out");
        write_gensort_input(&input, skew);
        let source = json!({ "path": input });
        let split = sample_splitters(&format!("sample-gensort-{skew}"), source.clone(), WORKERS);
        assert_eq!(split.len(), WORKERS - 1);
        let result = sort_job(
            &format!("sort-gensort-{skew}"),
            source,
            &split,
            json!({ "path": output }),
            // About 110 records per run: many spills and a multi-level merge.
            json!({"memory_bytes": 16384, "fan_in": 4}),
        );
        let (expected, records, checksum) = expected_bytes(&input, Format::Gensort);
        assert_eq!(records, 10_000);
        let got = concat_parts(&output, WORKERS, "dat");
        assert!(
            got == expected,
            "skew {skew}: the parts are not the sorted input"
        );
        assert_eq!(result.counter("read", "records"), records);
        assert_eq!(result.counter("read", "checksum"), checksum);
        assert_eq!(result.counter("write", "checksum"), checksum);
        assert_eq!(result.counter("write", "bytes"), records * 100);
        assert_eq!(result.counter("write", "out_of_order"), 0);
        assert_eq!(result.counter("sort", "records"), records);
        assert!(result.counter("sort", "spilled_runs") > 30);
        assert!(result.counter("sort", "merge_passes") >= 2 * WORKERS as u64);
        // Sampled splitters keep the ranges balanced, with or without skew.
        let sizes: Vec<u64> = (0..WORKERS)
            .map(|i| {
                std::fs::metadata(output.join(format!("part-{i:05}.dat")))
                    .unwrap()
                    .len()
                    / 100
            })
            .collect();
        assert!(
            sizes.iter().all(|&s| s * 2 <= records),
            "skew {skew}: {sizes:?}"
        );
        let names: Vec<String> = std::fs::read_dir(&output)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), WORKERS, "{names:?}");
    }
}

#[test]
fn lines_with_a_key_field_sort_across_three_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let mut rng = ringflow_ring::rng::SplitMix64(5);
    for f in 0..4 {
        let mut text = String::new();
        for i in 0..(700 * f + 50) {
            let key = format!("k{:03}", rng.below(120));
            let line = match i % 97 {
                // A line lacking the key field has an empty key: it sorts first.
                0 => format!("lonely-{f}-{i}"),
                1 => format!("crlf-{f}-{i},{key},x\r"),
                _ => format!("row-{f}-{i},{key},{}", rng.below(1000)),
            };
            text.push_str(&line);
            text.push('\n');
        }
        if f == 2 {
            text.push_str("last-without-newline,k050,1");
        }
        std::fs::write(input.join(format!("part{f}.csv")), text).unwrap();
    }
    let source = json!({"path": input, "format": "lines", "key_field": 1, "delimiter": ","});
    let split = sample_splitters("sample-lines", source.clone(), WORKERS);
    let result = sort_job(
        "sort-lines",
        source,
        &split,
        json!({"path": output, "format": "lines"}),
        json!({"memory_bytes": 8192, "fan_in": 3}),
    );
    let format = Format::parse("lines", Some(1), ",").unwrap();
    let (expected, records, checksum) = expected_bytes(&input, format);
    let got = concat_parts(&output, WORKERS, "txt");
    assert!(got == expected, "the parts are not the sorted input");
    assert_eq!(result.counter("write", "records"), records);
    assert_eq!(result.counter("write", "checksum"), checksum);
    assert_eq!(result.counter("read", "checksum"), checksum);
    assert_eq!(result.counter("write", "out_of_order"), 0);
    assert!(String::from_utf8_lossy(&got).starts_with("lonely-"));
}

#[test]
fn sorted_instances_merge_into_one_sorted_part() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    write_gensort_input(&input, true);
    let spec = JobSpec::new("sort-merge")
        .settings(settings())
        .vertex(VertexSpec::new("read", "source.sortfile").config(json!({ "path": input })))
        .vertex(
            VertexSpec::new("sort", "sort")
                .config(json!({"memory_bytes": 65536}))
                .input("read", EdgeKind::Forward),
        )
        .vertex(
            VertexSpec::new("merge", "merge")
                .config(json!({"memory_bytes": 32768}))
                .input("sort", EdgeKind::Gather)
                .single(),
        )
        .vertex(
            VertexSpec::new("write", "sink.sortfile")
                .config(json!({ "path": output }))
                .input("merge", EdgeKind::Forward)
                .single(),
        );
    let result = run_job(spec, WORKERS);
    let (expected, records, _) = expected_bytes(&input, Format::Gensort);
    assert!(
        concat_parts(&output, 1, "dat") == expected,
        "the part is not the sorted input"
    );
    assert_eq!(result.counter("merge", "records"), records);
    assert_eq!(result.counter("merge", "out_of_order_input"), 0);
    assert_eq!(result.counter("write", "out_of_order"), 0);
}
