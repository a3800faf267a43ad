//! The distributed sort end to end: `ringflow gen` writes the input, `ringflow sort`
//! sorts it on a real 3-worker cluster, and the output is checked twice — by
//! `ringflow sort --verify` and by an independent sort of the input in this test,
//! compared byte for byte with the parts concatenated in order.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringflow_tests::{ringflow_bin, Client, ClusterOpts, JobInfo, TestCluster};
use serde_json::Value;

/// Longest any one CLI call here may take (a hung sort fails the test, with its output).
const CLI_DEADLINE: Duration = Duration::from_secs(600);

/// Runs the CLI with a deadline; kills it and panics if it overruns.
fn run(args: &[String]) -> Output {
    let mut child = Command::new(ringflow_bin())
        .args(args)
        .env_remove("RINGFLOW_CLUSTER")
        .env_remove("RINGFLOW_CERTS")
        .env(
            "RINGFLOW_PROFILE",
            "/nonexistent/ringflow-test-profile.toml",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning ringflow");
    // Drain the pipes on threads so a chatty child never blocks.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let deadline = Instant::now() + CLI_DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for ringflow") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ringflow {args:?} did not finish in {CLI_DEADLINE:?}:\nstderr: {}",
                String::from_utf8_lossy(&t2.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t1.join().unwrap_or_default(),
        stderr: t2.join().unwrap_or_default(),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn ok(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "ringflow {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ringflow gen`; returns the file and the figures it printed (`--json`).
fn gen(dir: &Path, format: &str, records: u64, seed: u64, skew: bool) -> (PathBuf, Value) {
    let path = dir.join(format!(
        "in-{format}-{records}-{seed}{}.{}",
        if skew { "-skew" } else { "" },
        if format == "gensort" { "dat" } else { "txt" }
    ));
    let mut args = strings(&[
        "gen",
        "--format",
        format,
        "--records",
        &records.to_string(),
        "--seed",
        &seed.to_string(),
        "--output",
        &path.display().to_string(),
        "--json",
    ]);
    if skew {
        args.push("--skew".into());
    }
    let figures: Value = serde_json::from_str(&ok(&args)).expect("gen --json");
    assert_eq!(figures["records"], records);
    (path, figures)
}

/// `ringflow sort ... --json --no-progress` on `c`; the summary.
fn sort(c: &TestCluster, inputs: &[&Path], out: &Path, extra: &[&str]) -> Value {
    let mut args = strings(&["sort"]);
    for i in inputs {
        args.extend(["--input".to_string(), i.display().to_string()]);
    }
    args.extend(["--output".to_string(), out.display().to_string()]);
    args.extend(strings(&["--json", "--no-progress"]));
    args.extend(strings(extra));
    args.extend(c.client_args());
    let text = ok(&args);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["ok"], true, "{v:#}");
    eprintln!(
        "sorted {} -> {}: {} records in {:.1}s, samples via {}, spilled runs {}, parts {}",
        inputs[0].display(),
        out.display(),
        v["output"]["records"],
        v["seconds"].as_f64().unwrap_or(0.0),
        v["samples_via"],
        v["spilled_runs"],
        v["parts"]
            .as_array()
            .map(|p| p
                .iter()
                .map(|x| x["records"].to_string())
                .collect::<Vec<_>>()
                .join("/"))
            .unwrap_or_default()
    );
    v
}

/// `ringflow sort --verify TARGET extra...`.
fn verify(target: &Path, extra: &[&str]) -> Output {
    let mut args = strings(&["sort", "--verify", &target.display().to_string()]);
    args.extend(strings(extra));
    run(&args)
}

fn verify_ok(target: &Path, extra: &[&str]) -> String {
    let out = verify(target, extra);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.starts_with("OK:"),
        "verify {} {extra:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        target.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Exit status 1 and the stderr.
fn verify_fails(target: &Path, extra: &[&str]) -> String {
    let out = verify(target, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify {} {extra:?} should fail:\nstdout: {}\nstderr: {stderr}",
        target.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The records of a file, parsed here without ringflow's code: (key, data) pairs.
/// gensort: 100-byte records, 10-byte keys. lines: `\n`-terminated, the key the whole
/// line or its 0-based `\t` field `key_field` (empty when the line has no such field).
fn records(bytes: &[u8], format: &str, key_field: Option<usize>) -> Vec<(Vec<u8>, Vec<u8>)> {
    match format {
        "gensort" => {
            assert_eq!(bytes.len() % 100, 0, "partial gensort record");
            bytes
                .chunks(100)
                .map(|r| (r[..10].to_vec(), r.to_vec()))
                .collect()
        }
        _ => {
            let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            if text.is_empty() && bytes.is_empty() {
                return Vec::new();
            }
            text.split(|b| *b == b'\n')
                .map(|line| {
                    let key = match key_field {
                        None => line.to_vec(),
                        Some(k) => line
                            .split(|b| *b == b'\t')
                            .nth(k)
                            .map(<[u8]>::to_vec)
                            .unwrap_or_default(),
                    };
                    (key, line.to_vec())
                })
                .collect()
        }
    }
}

fn serialize(recs: &[(Vec<u8>, Vec<u8>)], format: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, data) in recs {
        out.extend_from_slice(data);
        if format != "gensort" {
            out.push(b'\n');
        }
    }
    out
}

/// The input sorted by (key, data), serialized: what the parts must hold, in order.
/// `copies`: every record that many times (`--local`: each worker reads the whole input).
fn reference(input: &Path, format: &str, key_field: Option<usize>, copies: usize) -> Vec<u8> {
    let bytes = std::fs::read(input).expect("input");
    let mut recs = records(&bytes, format, key_field);
    let one = recs.clone();
    for _ in 1..copies {
        recs.extend(one.iter().cloned());
    }
    recs.sort();
    serialize(&recs, format)
}

/// The part files in the manifest's order, concatenated; and their record counts.
fn parts(out: &Path, format: &str) -> (Vec<u8>, Vec<usize>) {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest JSON");
    let ext = if format == "gensort" { "dat" } else { "txt" };
    let mut all = Vec::new();
    let mut counts = Vec::new();
    let listed = manifest["parts"].as_array().expect("parts");
    assert_eq!(listed.len(), 3, "one part per worker: {manifest:#}");
    for (i, p) in listed.iter().enumerate() {
        let name = p["file"].as_str().expect("file name");
        assert_eq!(name, format!("part-{i:05}.{ext}"));
        let bytes = std::fs::read(out.join(name)).expect("part file");
        let n = records(&bytes, format, None).len();
        assert_eq!(p["records"], n as u64, "{name}");
        counts.push(n);
        all.extend(bytes);
    }
    (all, counts)
}

/// Sorts `input` and checks the output both ways; the summary.
fn sort_and_check(
    c: &TestCluster,
    input: &Path,
    figures: &Value,
    format: &str,
    key_field: Option<usize>,
    extra: &[&str],
) -> Value {
    let name = input.file_stem().and_then(|s| s.to_str()).unwrap_or("x");
    let out = c.dir().join(format!(
        "sorted-{name}-{}",
        key_field.map_or("line".to_string(), |k| format!("k{k}"))
    ));
    let mut args = vec!["--format", format];
    let k;
    if let Some(f) = key_field {
        k = f.to_string();
        args.extend(["--key-field", &k]);
    }
    args.extend(extra);
    let summary = sort(c, &[input], &out, &args);
    let n = figures["records"].as_u64().expect("records");
    assert_eq!(summary["input"]["records"], n, "{summary:#}");
    assert_eq!(summary["output"]["records"], n, "{summary:#}");
    // The checksum the sources computed is the one gen computed.
    assert_eq!(
        summary["input"]["checksum"], figures["checksum"],
        "{summary:#}"
    );
    assert_eq!(
        summary["output"]["checksum"], figures["checksum"],
        "{summary:#}"
    );

    let report = verify_ok(&out, &[]);
    assert!(
        report.contains(&format!("OK: {n} records in 3 file(s)")),
        "{report}"
    );
    verify_ok(&out, &["--input", &input.display().to_string()]);

    let (got, _) = parts(&out, format);
    let want = reference(input, format, key_field, 1);
    assert_eq!(got.len(), want.len(), "output size");
    if got != want {
        let at = got.iter().zip(&want).position(|(a, b)| a != b);
        panic!("the parts differ from the reference sort at byte {at:?}");
    }
    summary
}

fn max_over_mean(counts: &[usize]) -> f64 {
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    *counts.iter().max().expect("parts") as f64 / mean
}

/// `ringflow job status ID --json`.
fn job_status(c: &TestCluster, id: &str) -> JobInfo {
    c.job(id).expect("job status")
}

#[test]
fn small_sorts_in_both_formats_match_an_independent_sort() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir();

    let (g, gf) = gen(dir, "gensort", 20_000, 1, false);
    let s = sort_and_check(&c, &g, &gf, "gensort", None, &[]);
    // The samples came back through the DHT (sink.dht → DhtClient::get_many).
    assert_eq!(s["samples_via"], "dht", "{s:#}");

    // The fallback channel: samples in files under the output directory.
    let (l, lf) = gen(dir, "lines", 20_000, 2, false);
    let s = sort_and_check(&c, &l, &lf, "lines", None, &["--sample-via", "files"]);
    assert_eq!(s["samples_via"], "files", "{s:#}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("sorted-in-lines-20000-2-line"))
        .expect("output dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".samples"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "sample files left behind: {leftovers:?}"
    );
    // By the second field, and into one file as well.
    let single = dir.join("single.txt");
    let s = sort_and_check(
        &c,
        &l,
        &lf,
        "lines",
        Some(1),
        &["--single-file", &single.display().to_string()],
    );
    assert_eq!(
        std::fs::read(&single).expect("single file"),
        reference(&l, "lines", Some(1), 1)
    );
    assert_eq!(s["single_file"], single.display().to_string());
    let l_in = l.display().to_string();
    verify_ok(
        &single,
        &["--format", "lines", "--key-field", "1", "--input", &l_in],
    );
    // The same file is not sorted by the whole line.
    let err = verify_fails(&single, &["--format", "lines", "--input", &l_in]);
    assert!(err.contains("order broken in"), "{err}");

    // --local: every worker reads the whole file, so the output has each record 3 times.
    let (small, _) = gen(dir, "gensort", 3_000, 3, false);
    let out = dir.join("sorted-local");
    let s = sort(&c, &[&small], &out, &["--local"]);
    assert_eq!(s["input"]["records"], 9_000, "{s:#}");
    assert_eq!(s["output"]["records"], 9_000, "{s:#}");
    verify_ok(&out, &[]);
    verify_ok(&out, &["--input", &small.display().to_string()]);
    assert_eq!(
        parts(&out, "gensort").0,
        reference(&small, "gensort", None, 3)
    );

    // An earlier output is not mixed with a new one (this time without --local).
    let mut args = strings(&[
        "sort",
        "--input",
        &small.display().to_string(),
        "--output",
        &out.display().to_string(),
        "--no-progress",
    ]);
    args.extend(c.client_args());
    let again = run(&args);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a sort output"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    args.push("--overwrite".into());
    let text = ok(&args);
    assert!(text.contains("sorted 3000 records"), "{text}");
    assert!(text.contains("OK"), "{text}");
    verify_ok(&out, &["--input", &small.display().to_string()]);
    assert_eq!(
        parts(&out, "gensort").0,
        reference(&small, "gensort", None, 1)
    );

    // Inputs streamed from the client (it samples them itself and pushes the records).
    let (fc, fcf) = gen(dir, "gensort", 20_000, 9, false);
    let s = sort_and_check(&c, &fc, &fcf, "gensort", None, &["--from-client"]);
    assert_eq!(s["samples_via"], "client", "{s:#}");
}

#[test]
fn medium_gensort_sort_spills_far_below_its_data_size_and_verifies() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    // 400k records = 40 MB, about 13 MB per worker, sorted with 1 MiB each.
    let (g, gf) = gen(c.dir(), "gensort", 400_000, 11, false);
    let s = sort_and_check(&c, &g, &gf, "gensort", None, &["--memory", "1MiB"]);
    let spilled = s["spilled_runs"].as_u64().expect("spilled_runs");
    assert!(spilled >= 3 * 8, "expected many spilled runs: {s:#}");
    // The same figure through `ringflow job status --json`.
    let job = s["job"].as_str().expect("job id");
    let info = job_status(&c, job);
    let sort_vertex = info
        .vertices
        .iter()
        .find(|v| v.name == "sort")
        .expect("sort vertex");
    assert_eq!(sort_vertex.counters.get("spilled_runs"), Some(&spilled));
    assert!(
        sort_vertex
            .counters
            .get("spilled_bytes")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn medium_line_sorts_with_and_without_a_key_field() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let (l, lf) = gen(c.dir(), "lines", 400_000, 12, false);
    sort_and_check(&c, &l, &lf, "lines", None, &[]);
    let s = sort_and_check(&c, &l, &lf, "lines", Some(2), &["--memory", "2MiB"]);
    assert!(s["spilled_runs"].as_u64().unwrap_or(0) > 0, "{s:#}");
}

#[test]
fn skewed_input_is_balanced_across_the_parts() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    // A quarter of the keys share one 2-byte prefix, some are exact duplicates: the
    // splitters come from samples of (key, data), so the parts stay even. Bound: the
    // largest part holds at most 1.5x the mean.
    let (g, gf) = gen(c.dir(), "gensort", 200_000, 21, true);
    sort_and_check(&c, &g, &gf, "gensort", None, &[]);
    let out = c.dir().join("sorted-in-gensort-200000-21-skew-line");
    let (_, counts) = parts(&out, "gensort");
    let ratio = max_over_mean(&counts);
    assert!(ratio <= 1.5, "parts {counts:?}: max/mean {ratio:.3}");

    let (l, lf) = gen(c.dir(), "lines", 100_000, 22, true);
    sort_and_check(&c, &l, &lf, "lines", Some(1), &[]);
    let out = c.dir().join("sorted-in-lines-100000-22-skew-k1");
    let (_, counts) = parts(&out, "lines");
    let ratio = max_over_mean(&counts);
    assert!(ratio <= 1.5, "parts {counts:?}: max/mean {ratio:.3}");
}

/// Copies a sort output directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn verify_detects_swapped_deleted_and_duplicated_records() {
    let c = TestCluster::start(ClusterOpts::for_jobs());
    let dir = c.dir();
    let (g, gf) = gen(dir, "gensort", 20_000, 31, false);
    sort_and_check(&c, &g, &gf, "gensort", None, &[]);
    let good = dir.join("sorted-in-gensort-20000-31-line");
    let input = g.display().to_string();

    let part = |d: &Path| d.join("part-00001.dat");
    let edit = |name: &str, f: &dyn Fn(&mut Vec<u8>)| -> PathBuf {
        let d = dir.join(name);
        copy_dir(&good, &d);
        let mut bytes = std::fs::read(part(&d)).expect("part");
        f(&mut bytes);
        std::fs::write(part(&d), bytes).expect("write part");
        d
    };

    // Two records swapped: the order error names the file and the record.
    let swapped = edit("swapped", &|b| {
        let (x, y) = (100 * 10, 100 * 11);
        let rec: Vec<u8> = b[x..x + 100].to_vec();
        b.copy_within(y..y + 100, x);
        b[y..y + 100].copy_from_slice(&rec);
    });
    let err = verify_fails(&swapped, &[]);
    assert!(
        err.contains("order broken in part-00001.dat at record 11"),
        "{err}"
    );
    assert!(err.contains("sorts before the previous key hex"), "{err}");
    // Count and checksum still agree: it is only the order.
    assert!(!err.contains("record count"), "{err}");
    assert!(!err.contains("checksum"), "{err}");

    // A record deleted: count and checksum mismatch (with the manifest and the input).
    let deleted = edit("deleted", &|b| {
        b.drain(500..600);
    });
    let err = verify_fails(&deleted, &[]);
    assert!(err.contains("record count 19999 differs"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    assert!(err.contains("part-00001.dat holds"), "{err}");
    let err = verify_fails(&deleted, &["--input", &input]);
    assert!(
        err.contains("record count 19999 differs from the input files"),
        "{err}"
    );

    // A record duplicated in place: still in order, but one record too many.
    let duplicated = edit("duplicated", &|b| {
        let rec: Vec<u8> = b[700..800].to_vec();
        b.splice(800..800, rec);
    });
    let err = verify_fails(&duplicated, &[]);
    assert!(!err.contains("order broken"), "{err}");
    assert!(err.contains("record count 20001 differs"), "{err}");
    assert!(err.contains("checksum"), "{err}");

    // A record replaced by a copy of its neighbour: same count, still in order, but
    // the checksum differs.
    let replaced = edit("replaced", &|b| {
        let rec: Vec<u8> = b[700..800].to_vec();
        b[800..900].copy_from_slice(&rec);
    });
    let err = verify_fails(&replaced, &["--input", &input]);
    assert!(!err.contains("order broken"), "{err}");
    assert!(!err.contains("record count"), "{err}");
    assert!(err.contains("checksum"), "{err}");

    // A part whose records run into the next part's range: the break is at the border.
    let crossed = dir.join("crossed");
    copy_dir(&good, &crossed);
    let p0 = std::fs::read(crossed.join("part-00000.dat")).expect("part 0");
    let p1 = std::fs::read(crossed.join("part-00001.dat")).expect("part 1");
    std::fs::write(crossed.join("part-00000.dat"), &p1).expect("write");
    std::fs::write(crossed.join("part-00001.dat"), &p0).expect("write");
    let err = verify_fails(&crossed, &[]);
    assert!(
        err.contains("order broken in part-00001.dat at record 0"),
        "{err}"
    );
    assert!(err.contains("after part-00000.dat record"), "{err}");

    // The untouched output still verifies.
    verify_ok(&good, &["--input", &input]);
}
