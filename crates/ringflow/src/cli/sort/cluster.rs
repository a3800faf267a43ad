//! `ringflow sort` on a cluster: the arguments checked, the sort run by the driver
//! (`crate::sort`) with a spinner and progress bars, then the checks, the manifest and the
//! summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ringflow_ops::sort as sortops;
use ringflow_proto::{JobInfo, VertexStatus};
use serde_json::json;

use super::{human_bytes, InputInfo, Manifest, PartInfo, RunInfo, SideInfo, MANIFEST};
use crate::cli::status::{connect, resolve_client};
use crate::cli::SortArgs;
use crate::profile::Profile;
use crate::sort::{
    ClientFiles, SampleVia, SortError, SortInput, SortObserver, SortOutput, SortPlan,
};
use crate::{Cluster, ClusterClient, TlsIdentity};

/// What the command line asked for, checked and resolved.
struct CheckedArgs {
    format: String,
    key_field: Option<usize>,
    delimiter: String,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    memory: u64,
    local: bool,
    samples: usize,
    /// Input bytes as the client sees them (for progress), if it sees them all.
    input_bytes: Option<u64>,
    /// The client reads the inputs and streams them to the workers.
    from_client: bool,
}

pub fn run(a: SortArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let plan = match check_args(&a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let profile = resolve_client(&a.client)?;
    let show_progress = !a.no_progress && std::io::stderr().is_terminal();
    actix_rt::System::new().block_on(async move {
        let client = connect(&profile, &profile.cluster).await?;
        let r = tokio::select! {
            r = sort(&a, &plan, &profile, &client, show_progress, started) => r,
            _ = crate::cli::shutdown_signal() => Err(Stop::Interrupted),
        };
        let code = match r {
            Ok(code) => Ok(code),
            Err(Stop::Interrupted) => {
                eprintln!("interrupted: cancelling the sort's jobs");
                for id in RUNNING.lock().map(|g| g.clone()).unwrap_or_default() {
                    let _ = client.cancel_job(&id).await;
                }
                Ok(ExitCode::from(130))
            }
            Err(Stop::Refused(msg)) => {
                eprintln!("error: job refused: {msg}");
                Ok(ExitCode::from(2))
            }
            Err(Stop::Failed(msg)) => {
                eprintln!("error: {msg}");
                Ok(ExitCode::from(1))
            }
            Err(Stop::Error(e)) => Err(e),
        };
        client.close().await;
        code
    })
}

/// Jobs of this sort still running (cancelled on Ctrl-C).
static RUNNING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn set_running(id: Option<&str>) {
    if let Ok(mut g) = RUNNING.lock() {
        g.clear();
        g.extend(id.map(str::to_string));
    }
}

enum Stop {
    Interrupted,
    Refused(String),
    /// The sort did not produce a correct output (message for the user).
    Failed(String),
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Error(e.into())
    }
}

impl Stop {
    /// A failed sort, as the command reports it.
    fn from_sort(e: SortError) -> Stop {
        match e {
            SortError::Refused(msg) => Stop::Refused(msg),
            SortError::Failed(msg) => Stop::Failed(msg),
            e => Stop::Error(e.into()),
        }
    }
}

impl CheckedArgs {
    /// The driver's plan: workers read the inputs, or this client streams them.
    fn sort_plan(&self, a: &SortArgs) -> Result<SortPlan, Stop> {
        let input = if self.from_client {
            let format = sortops::Format::parse(&self.format, self.key_field, &self.delimiter)
                .map_err(|e| Stop::Error(anyhow::anyhow!("{e}")))?;
            SortInput::Client(Box::new(
                ClientFiles::list(&self.inputs, format).map_err(Stop::from_sort)?,
            ))
        } else {
            SortInput::Workers {
                paths: self.inputs.clone(),
                local: self.local,
            }
        };
        Ok(SortPlan {
            format: self.format.clone(),
            key_field: self.key_field,
            delimiter: self.delimiter.clone(),
            input,
            output: SortOutput::Files(self.output.clone()),
            memory: self.memory,
            samples: self.samples,
            sample_via: if a.sample_via == "files" {
                SampleVia::Files
            } else {
                SampleVia::Dht
            },
        })
    }
}

/// Notes on stderr (unless `--json`), a spinner while sampling, bars while sorting, and
/// the jobs to cancel on Ctrl-C.
struct Observer<'a> {
    quiet: bool,
    show_progress: bool,
    args: &'a CheckedArgs,
    spinner: Option<ProgressBar>,
    /// The sort job's bars, drawn from its first status on.
    progress: Option<Progress>,
}

impl SortObserver for Observer<'_> {
    fn note(&mut self, msg: String) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    fn warn(&mut self, msg: String) {
        eprintln!("warning: {msg}");
    }

    fn job_submitted(&mut self, id: &str) {
        set_running(Some(id));
    }

    fn job_ended(&mut self) {
        set_running(None);
    }

    fn sampling(&mut self, info: Option<&JobInfo>) {
        match info {
            None => self.spinner = progress_spinner(self.show_progress, "sampling"),
            Some(i) => {
                if let Some(s) = &self.spinner {
                    let v = vertex_sum(i, "read");
                    s.set_message(format!("{} records read", counter(&v, "records")));
                }
            }
        }
    }

    fn sampled(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }

    fn sorting(&mut self, info: &JobInfo) {
        let (show, args) = (self.show_progress, self.args);
        self.progress
            .get_or_insert_with(|| Progress::new(show, args))
            .update(info);
    }
}

fn check_args(a: &SortArgs) -> anyhow::Result<CheckedArgs> {
    let format = a.format.clone().unwrap_or_else(|| "gensort".into());
    let delimiter = a.delimiter.clone().unwrap_or_else(|| "\t".into());
    sortops::Format::parse(&format, a.key_field, &delimiter).map_err(|e| anyhow::anyhow!("{e}"))?;
    let memory = super::parse_size(&a.memory).context("--memory")?;
    let output = a.output.clone().context("--output DIR is required")?;
    let output = absolute(&output)?;
    if a.input.is_empty() {
        bail!("--input PATH is required");
    }
    let mut inputs = Vec::new();
    let mut input_bytes = Some(0u64);
    for p in &a.input {
        let abs = absolute(p)?;
        match std::fs::metadata(&abs) {
            Ok(m) if m.is_file() => {
                input_bytes = input_bytes.map(|b| b + m.len());
            }
            Ok(m) if m.is_dir() => {
                input_bytes = input_bytes.map(|b| b + dir_bytes(&abs));
            }
            Ok(_) => bail!("{}: not a file or directory", abs.display()),
            // Not visible here: the workers read the inputs and may still see it (a
            // path they do not see fails the job, naming it).
            Err(e) => {
                if !a.local {
                    eprintln!(
                        "warning: {}: {e} on this machine; the workers must see it",
                        abs.display()
                    );
                }
                input_bytes = None;
            }
        }
        inputs.push(abs);
    }
    if a.samples == 0 {
        bail!("--samples must be positive");
    }
    if a.from_client && input_bytes.is_none() {
        bail!("--from-client reads the inputs on this machine, and some are missing here");
    }
    // A previous sort's output would mix with this one's.
    if output.join(MANIFEST).exists() || has_parts(&output) {
        if !a.overwrite {
            bail!(
                "{} already holds a sort output (manifest.json or part files): remove it, \
                 choose another directory, or pass --overwrite",
                output.display()
            );
        }
        remove_old_output(&output)?;
    }
    if let Some(single) = &a.single_file {
        let single = absolute(single)?;
        if single.starts_with(&output) && is_part_name(&single) {
            bail!("--single-file must not be a part file of the output directory");
        }
    }
    Ok(CheckedArgs {
        format,
        key_field: a.key_field,
        delimiter,
        inputs,
        output,
        memory,
        local: a.local,
        samples: a.samples,
        input_bytes,
        from_client: a.from_client,
    })
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn is_part_name(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("part-") && (n.ends_with(".dat") || n.ends_with(".txt")))
}

fn has_parts(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().any(|e| is_part_name(&e.path())))
        .unwrap_or(false)
}

fn remove_old_output(dir: &Path) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if is_part_name(&p) || p.file_name().is_some_and(|n| n == MANIFEST) {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

/// Counters of the vertices named `name` or `name-<n>`, summed.
fn vertex_sum(info: &JobInfo, prefix: &str) -> VertexStatus {
    let mut sum = VertexStatus::default();
    for v in &info.vertices {
        if v.name == prefix
            || v.name
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('-'))
        {
            sum.merge(v);
        }
    }
    sum
}

fn counter(v: &VertexStatus, name: &str) -> u64 {
    v.counters.get(name).copied().unwrap_or(0)
}

async fn sort(
    a: &SortArgs,
    plan: &CheckedArgs,
    profile: &Profile,
    client: &ClusterClient,
    show_progress: bool,
    started: Instant,
) -> Result<ExitCode, Stop> {
    let identity = TlsIdentity::from_dir(&profile.certs_dir, &profile.cert_name)?;
    let cluster = Cluster::new(
        profile.cluster.clone(),
        identity,
        profile.cluster_name.clone(),
    );
    let sort_plan = plan.sort_plan(a)?;
    let mut observer = Observer {
        quiet: a.json,
        show_progress,
        args: plan,
        spinner: None,
        progress: None,
    };
    let r = crate::sort::run(&cluster, client, &sort_plan, &mut observer).await;
    if let Some(p) = observer.progress.as_mut() {
        p.finish();
    }
    let done = r.map_err(Stop::from_sort)?;
    let info = done.job;
    let workers = done.workers;
    let sample_job_id = done.sample_job;
    let sample_count = done.samples;
    let samples_via = done.samples_via;
    let client_input = done.client_input;

    // 3. Check, manifest, single file.
    let read = vertex_sum(&info, "read");
    let write = vertex_sum(&info, "write");
    let sorted = vertex_sum(&info, "sort");
    let input = client_input.unwrap_or(SideInfo {
        records: counter(&read, "records"),
        bytes: counter(&read, "bytes"),
        checksum: counter(&read, "checksum"),
    });
    let output = SideInfo {
        records: counter(&write, "records"),
        bytes: counter(&write, "bytes"),
        checksum: counter(&write, "checksum"),
    };
    let out_of_order = counter(&write, "out_of_order");
    let ext = if plan.format == "gensort" {
        "dat"
    } else {
        "txt"
    };
    let mut parts = Vec::new();
    let mut problems = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let file = format!("part-{i:05}.{ext}");
        let path = plan.output.join(&file);
        let (records, bytes) = match count_part(&path, &plan.format) {
            Ok((r, b)) => (Some(r), Some(b)),
            Err(e) => {
                // The parts are on the workers' disks; this client may not see them.
                eprintln!(
                    "warning: cannot read {} here ({e}): its record count is not in the manifest",
                    path.display()
                );
                (None, None)
            }
        };
        parts.push(PartInfo {
            file,
            worker: w.clone(),
            records,
            bytes,
        });
    }
    let counted: Option<u64> = parts.iter().map(|p| p.records).sum();
    let manifest = Manifest {
        version: 1,
        format: plan.format.clone(),
        key_field: plan.key_field,
        delimiter: plan.delimiter.clone(),
        parts,
        input,
        output,
        inputs: InputInfo {
            paths: plan
                .inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            local: plan.local,
        },
        run: RunInfo {
            job: info.id.clone(),
            sample_job: sample_job_id,
            workers: workers.clone(),
            memory_bytes: plan.memory,
            spilled_runs: counter(&sorted, "spilled_runs"),
            spilled_bytes: counter(&sorted, "spilled_bytes"),
            merge_passes: counter(&sorted, "merge_passes"),
            samples: sample_count,
            samples_via,
            seconds: started.elapsed().as_secs_f64(),
        },
    };
    let manifest_path = plan.output.join(MANIFEST);
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("writing {}", manifest_path.display()))?;

    if input.records != output.records {
        problems.push(format!(
            "the sinks wrote {} records but the sources read {}",
            output.records, input.records
        ));
    }
    if input.checksum != output.checksum {
        problems.push(format!(
            "output checksum {:016x} differs from the input's {:016x}",
            output.checksum, input.checksum
        ));
    }
    if out_of_order > 0 {
        problems.push(format!("the sinks saw {out_of_order} records out of order"));
    }
    if let Some(c) = counted {
        if c != output.records {
            problems.push(format!(
                "the part files hold {c} records but the sinks counted {}",
                output.records
            ));
        }
    }
    if problems.is_empty() {
        if let Some(single) = &a.single_file {
            concat_parts(&plan.output, &manifest, single)?;
        }
    }
    print_summary(a, &manifest, &manifest_path, &problems)?;
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Stop::Failed(format!(
            "the sort's output is not valid: {}",
            problems.join("; ")
        )))
    }
}

/// (records, bytes) of a part file.
fn count_part(path: &Path, format: &str) -> anyhow::Result<(u64, u64)> {
    use std::io::Read;
    let len = std::fs::metadata(path)?.len();
    if format == "gensort" {
        if len % 100 != 0 {
            bail!("size {len} is not a multiple of 100");
        }
        return Ok((len / 100, len));
    }
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok((lines, len))
}

fn concat_parts(dir: &Path, m: &Manifest, out: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let tmp = out.with_extension("tmp-concat");
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    for p in &m.parts {
        let path = dir.join(&p.file);
        let mut r =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        std::io::copy(&mut r, &mut w).with_context(|| format!("copying {}", path.display()))?;
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    let _ = std::io::stdout().flush();
    Ok(())
}

fn print_summary(
    a: &SortArgs,
    m: &Manifest,
    manifest_path: &Path,
    problems: &[String],
) -> anyhow::Result<()> {
    let counts: Vec<u64> = m.parts.iter().filter_map(|p| p.records).collect();
    let mean = if counts.is_empty() {
        0.0
    } else {
        counts.iter().sum::<u64>() as f64 / counts.len() as f64
    };
    let max = counts.iter().copied().max().unwrap_or(0);
    let imbalance = if mean > 0.0 { max as f64 / mean } else { 1.0 };
    if a.json {
        let v = json!({
            "ok": problems.is_empty(),
            "problems": problems,
            "output_dir": manifest_path.parent().map(|p| p.display().to_string()),
            "manifest": manifest_path.display().to_string(),
            "single_file": a.single_file.as_ref().map(|p| p.display().to_string()),
            "format": m.format,
            "key_field": m.key_field,
            "workers": m.run.workers,
            "parts": m.parts,
            "input": m.input,
            "output": m.output,
            "max_over_mean": imbalance,
            "spilled_runs": m.run.spilled_runs,
            "spilled_bytes": m.run.spilled_bytes,
            "merge_passes": m.run.merge_passes,
            "samples": m.run.samples,
            "samples_via": m.run.samples_via,
            "job": m.run.job,
            "sample_job": m.run.sample_job,
            "seconds": m.run.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let secs = m.run.seconds.max(1e-9);
    println!(
        "sorted {} records ({}) on {} workers in {:.1}s ({}/s)",
        m.output.records,
        human_bytes(m.output.bytes),
        m.run.workers.len(),
        m.run.seconds,
        human_bytes((m.output.bytes as f64 / secs) as u64)
    );
    for p in &m.parts {
        println!(
            "  {}  {:>12} records  {:>10}  ({})",
            p.file,
            p.records
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            p.bytes.map(human_bytes).unwrap_or_else(|| "?".into()),
            p.worker
        );
    }
    println!(
        "input  {:>12} records  checksum {:016x}",
        m.input.records, m.input.checksum
    );
    println!(
        "output {:>12} records  checksum {:016x}  {}",
        m.output.records,
        m.output.checksum,
        if problems.is_empty() {
            "OK"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "largest part {imbalance:.3}x the mean; spilled runs {} ({}), merge passes {}; {} samples (via {})",
        m.run.spilled_runs,
        human_bytes(m.run.spilled_bytes),
        m.run.merge_passes,
        m.run.samples,
        m.run.samples_via
    );
    println!("manifest {}", manifest_path.display());
    if let Some(s) = &a.single_file {
        if problems.is_empty() {
            println!("single file {}", s.display());
        }
    }
    Ok(())
}

fn progress_spinner(show: bool, what: &str) -> Option<ProgressBar> {
    if !show {
        return None;
    }
    let s = ProgressBar::new_spinner();
    s.set_draw_target(ProgressDrawTarget::stderr());
    s.set_prefix(what.to_string());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})") {
        s.set_style(style);
    }
    s.enable_steady_tick(Duration::from_millis(120));
    Some(s)
}

/// Four bars: records read, shuffled (out of the range partitioner), sorted (into the
/// sorters) and written.
struct Progress {
    _multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    gensort: bool,
    input_bytes: Option<u64>,
    local: bool,
    /// Bytes read (shown beside the `read` bar).
    bytes: Arc<AtomicU64>,
    /// Runs spilled (shown beside the `sorted` bar).
    spilled: Arc<AtomicU64>,
}

impl Progress {
    fn new(show: bool, plan: &CheckedArgs) -> Self {
        if !show {
            return Progress {
                _multi: None,
                bars: Vec::new(),
                gensort: false,
                input_bytes: None,
                local: false,
                bytes: Arc::default(),
                spilled: Arc::default(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let bytes = Arc::new(AtomicU64::new(0));
        let spilled = Arc::new(AtomicU64::new(0));
        // The extra column reads atomics at draw time, so it always matches the
        // position drawn beside it (both are set before the one redraw of an update).
        let style = |extra: Option<(Arc<AtomicU64>, bool)>| {
            ProgressStyle::with_template(
                "{prefix:>9} [{bar:36.cyan/blue}] {human_pos:>11}/{human_len:<11} {rate:>11} {extra}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", indicatif::HumanCount(s.per_sec() as u64));
                },
            )
            .with_key(
                "extra",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = match &extra {
                        Some((v, true)) => write!(w, "{}", human_bytes(v.load(Relaxed))),
                        Some((v, false)) => write!(w, "spilled runs {}", v.load(Relaxed)),
                        None => Ok(()),
                    };
                },
            )
            .progress_chars("=> ")
        };
        let bars = [
            ("read", Some((bytes.clone(), true))),
            ("shuffled", None),
            ("sorted", Some((spilled.clone(), false))),
            ("written", None),
        ]
        .into_iter()
        .map(|(name, extra)| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style(extra));
            b.set_prefix(name.to_string());
            b
        })
        .collect();
        Progress {
            _multi: Some(multi),
            bars,
            gensort: plan.format == "gensort",
            input_bytes: plan.input_bytes,
            local: plan.local,
            bytes,
            spilled,
        }
    }

    fn update(&mut self, info: &JobInfo) {
        if self.bars.is_empty() {
            return;
        }
        let read = vertex_sum(info, "read");
        let part = vertex_sum(info, "partition");
        let sort = vertex_sum(info, "sort");
        let write = vertex_sum(info, "write");
        let records = counter(&read, "records");
        let bytes = counter(&read, "bytes");
        let sources_done = read.instances > 0 && read.finished == read.instances;
        // Expected records: exact once every source is done, else from the input size
        // (gensort: 100 bytes a record; lines: the bytes per record seen so far).
        let total = if sources_done {
            records
        } else {
            let workers = info.workers.len().max(1) as u64;
            match self.input_bytes {
                // --local: every worker reads every input whole.
                Some(b) => {
                    let b = if self.local { b * workers } else { b };
                    if self.gensort {
                        b / 100
                    } else if bytes > 0 {
                        (records as f64 * b as f64 / bytes as f64) as u64
                    } else {
                        0
                    }
                }
                None => records,
            }
        }
        .max(records);
        let values = [
            records,
            part.records_out,
            sort.records_in,
            counter(&write, "records"),
        ];
        self.bytes.store(bytes, Relaxed);
        self.spilled.store(counter(&sort, "spilled_runs"), Relaxed);
        for (b, v) in self.bars.iter().zip(values) {
            // One update, one (rate-limited) redraw with everything current.
            b.update(|s| {
                s.set_len(total.max(v));
                s.set_pos(v);
            });
        }
    }

    fn finish(&mut self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.txt");
        std::fs::write(&p, "a\nb\nc").unwrap();
        assert_eq!(count_part(&p, "lines").unwrap(), (3, 5));
        std::fs::write(&p, "").unwrap();
        assert_eq!(count_part(&p, "lines").unwrap(), (0, 0));
        std::fs::write(&p, [0u8; 250]).unwrap();
        assert!(count_part(&p, "gensort").is_err());
    }
}
