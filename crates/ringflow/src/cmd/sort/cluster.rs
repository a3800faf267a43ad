//! The distributed sort: the sample job, the splitters, the sort job with progress, the
//! checks and the manifest.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ringflow_dht::DhtClient;
use ringflow_ops::sort as sortops;
use ringflow_ops::sort::KeyData;
use ringflow_proto::{JobInfo, JobState, VertexStatus};
use ringflow_stream::{EdgeKind, JobSpec, VertexSpec};
use serde_json::{json, Value};

use super::{human_bytes, InputInfo, Manifest, PartInfo, RunInfo, SideInfo, MANIFEST};
use crate::cli::SortArgs;
use crate::cmd::status::{connect, resolve_client};
use crate::profile::Profile;
use crate::{ClusterClient, ClusterError, TlsIdentity};

/// Name of the source vertex reading input `i`.
fn read_vertex(i: usize) -> String {
    format!("read-{i}")
}

/// What the command line asked for, checked and resolved.
struct Plan {
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
            _ = crate::cmd::shutdown_signal() => Err(Stop::Interrupted),
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

fn check_args(a: &SortArgs) -> anyhow::Result<Plan> {
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
    Ok(Plan {
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

/// The `source.sortfile` config of input `path`.
fn source_config(plan: &Plan, path: &Path) -> Value {
    let mut cfg = json!({
        "path": path.display().to_string(),
        "format": plan.format,
        "split": !plan.local,
    });
    if plan.format == "lines" {
        cfg["delimiter"] = json!(plan.delimiter);
        if let Some(k) = plan.key_field {
            cfg["key_field"] = json!(k);
        }
    }
    cfg
}

fn with_sources(mut spec: JobSpec, plan: &Plan) -> JobSpec {
    for (i, p) in plan.inputs.iter().enumerate() {
        spec = spec.vertex(
            VertexSpec::new(read_vertex(i), "source.sortfile").config(source_config(plan, p)),
        );
    }
    spec
}

fn with_inputs(mut v: VertexSpec, plan: &Plan) -> VertexSpec {
    for i in 0..plan.inputs.len() {
        v = v.input(read_vertex(i), EdgeKind::Forward);
    }
    v
}

/// `source.sortfile → sample → sink.dht`, samples under `sort:<run>:sample:<instance>`.
fn sample_spec(plan: &Plan, run: &str, channel: &SampleChannel) -> JobSpec {
    let spec = with_sources(JobSpec::new(format!("sort-sample-{run}")), plan);
    let store = match channel {
        SampleChannel::Dht => VertexSpec::new("store", "sink.dht")
            .config(json!({ "key_prefix": format!("sort:{run}:") })),
        SampleChannel::Files(dir) => VertexSpec::new("store", "sink.file")
            .config(json!({ "path": dir.display().to_string() })),
    };
    spec.vertex(with_inputs(
        VertexSpec::new("sample", "sample").config(json!({
            "max": plan.samples,
            "key_prefix": "sample:",
            "seed": 1,
        })),
        plan,
    ))
    .vertex(store.input("sample", EdgeKind::Forward))
}

/// Where the sample job leaves its samples for the client.
enum SampleChannel {
    /// In the DHT, under `sort:<run>:sample:<instance>` (the normal way).
    Dht,
    /// As `sink.file` parts in this directory (which the client must see too): the
    /// fallback when the workers' `sink.dht` fails.
    Files(PathBuf),
}

impl SampleChannel {
    fn name(&self) -> &'static str {
        match self {
            SampleChannel::Dht => "dht",
            SampleChannel::Files(_) => "files",
        }
    }
}

/// `source.sortfile → range_partition →direct→ sort → sink.sortfile`.
fn sort_spec(plan: &Plan, run: &str, splitters: &[KeyData]) -> JobSpec {
    let splitters: Vec<Value> = splitters
        .iter()
        .map(|(k, d)| json!({ "key": sortops::hex(k), "data": sortops::hex(d) }))
        .collect();
    let spec = with_sources(JobSpec::new(format!("sort-{run}")), plan);
    spec.vertex(with_inputs(
        VertexSpec::new("partition", "range_partition").config(json!({ "splitters": splitters })),
        plan,
    ))
    .vertex(
        VertexSpec::new("sort", "sort")
            .config(json!({ "memory_bytes": plan.memory }))
            .input("partition", EdgeKind::Direct),
    )
    .vertex(
        VertexSpec::new("write", "sink.sortfile")
            .config(json!({
                "path": plan.output.display().to_string(),
                "format": plan.format,
            }))
            .input("sort", EdgeKind::Forward),
    )
}

/// `source.client.records → range_partition →direct→ sort → sink.sortfile`: the client
/// streams the records to the `read-0` instances.
fn client_sort_spec(plan: &Plan, run: &str, splitters: &[KeyData]) -> JobSpec {
    let local = Plan {
        inputs: vec![PathBuf::from("client")],
        ..plan_copy(plan)
    };
    let spec = sort_spec(&local, run, splitters);
    JobSpec {
        vertices: spec
            .vertices
            .into_iter()
            .map(|mut v| {
                if v.name == read_vertex(0) {
                    v = VertexSpec::new(read_vertex(0), "source.client.records");
                }
                v
            })
            .collect(),
        ..spec
    }
}

fn plan_copy(p: &Plan) -> Plan {
    Plan {
        format: p.format.clone(),
        key_field: p.key_field,
        delimiter: p.delimiter.clone(),
        inputs: p.inputs.clone(),
        output: p.output.clone(),
        memory: p.memory,
        local: p.local,
        samples: p.samples,
        input_bytes: p.input_bytes,
        from_client: p.from_client,
    }
}

/// The files of the inputs, in order (directories: their regular files by name).
fn client_files(plan: &Plan) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in &plan.inputs {
        if p.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with('.') || n.ends_with(".tmp"))
                })
                .collect();
            names.sort();
            files.extend(names);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn client_format(plan: &Plan) -> anyhow::Result<sortops::Format> {
    sortops::Format::parse(&plan.format, plan.key_field, &plan.delimiter)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// First pass over the inputs on the client: count, checksum and an evenly spread sample.
fn client_sample(
    plan: &Plan,
    files: &[PathBuf],
    max: usize,
) -> anyhow::Result<(SideInfo, Vec<KeyData>)> {
    let format = client_format(plan)?;
    let mut info = SideInfo {
        records: 0,
        bytes: 0,
        checksum: 0,
    };
    // Reservoir sampling with a fixed seed (splitmix64).
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut sample: Vec<KeyData> = Vec::new();
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        for rec in sortops::RecordReader::new(file, format) {
            let rec = rec.with_context(|| format!("reading {}", f.display()))?;
            info.records += 1;
            info.bytes += rec.data.len() as u64;
            info.checksum = info
                .checksum
                .wrapping_add(u64::from(sortops::record_checksum(&rec.data)));
            if sample.len() < max {
                sample.push((rec.key().to_vec(), rec.data.clone()));
            } else {
                let j = next() % info.records;
                if (j as usize) < max {
                    sample[j as usize] = (rec.key().to_vec(), rec.data.clone());
                }
            }
        }
    }
    Ok((info, sample))
}

/// Second pass: streams every record to the job's `read-0` instances, batch by batch,
/// round robin.
async fn client_push(
    plan: &Plan,
    files: &[PathBuf],
    client: &ClusterClient,
    job: &JobInfo,
) -> Result<(), Stop> {
    use ringflow_stream::{AnyBatch, Item, PortType};
    let view = client.view().await.map_err(|e| Stop::Error(e.into()))?;
    let mut ports = Vec::new();
    for (i, w) in job.workers.iter().enumerate() {
        let addr = view
            .peers
            .iter()
            .find(|p| &p.id == w)
            .and_then(|p| p.addr.parse().ok())
            .ok_or_else(|| Stop::Failed(format!("no address for worker {w}")))?;
        let port = ringflow_proto::ClientPort {
            job: job.id.clone(),
            vertex: read_vertex(0),
            instance: i as u32,
        };
        ports.push(
            client
                .push_port(addr, port)
                .await
                .map_err(|e| Stop::Error(e.into()))?,
        );
    }
    if ports.is_empty() {
        return Err(Stop::Failed("the job has no workers".into()));
    }
    let format = client_format(plan)?;
    let codec = PortType::of::<sortops::SortRecord>();
    let mut batch: Vec<Item<sortops::SortRecord>> = Vec::with_capacity(2048);
    let mut target = 0;
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let mut records = sortops::RecordReader::new(file, format);
        loop {
            let rec = records
                .next_record()
                .with_context(|| format!("reading {}", f.display()))?;
            let done = rec.is_none();
            if let Some(rec) = rec {
                batch.push(Item {
                    key: None,
                    value: rec,
                });
            }
            if batch.len() >= 2048 || (done && !batch.is_empty()) {
                let n = batch.len() as u32;
                let bytes = codec
                    .encode(&AnyBatch::new(std::mem::take(&mut batch)))
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                ports[target]
                    .push(bytes, n)
                    .await
                    .map_err(|e| Stop::Error(e.into()))?;
                target = (target + 1) % ports.len();
            }
            if done {
                break;
            }
        }
    }
    for p in ports {
        p.finish().await.map_err(|e| Stop::Error(e.into()))?;
    }
    Ok(())
}

async fn submit(client: &ClusterClient, spec: &JobSpec) -> Result<JobInfo, Stop> {
    match client.submit_job(spec.to_json()).await {
        Ok(i) => {
            set_running(Some(&i.id));
            Ok(i)
        }
        Err(ClusterError::Refused(msg)) => Err(Stop::Refused(msg)),
        Err(e) => Err(Stop::Error(
            anyhow::Error::new(e).context("submitting a job"),
        )),
    }
}

/// Polls a job until it ends, calling `tick` with every status.
async fn wait(
    client: &ClusterClient,
    id: &str,
    mut tick: impl FnMut(&JobInfo),
) -> Result<JobInfo, Stop> {
    loop {
        let info = client
            .job(id)
            .await
            .context("asking for the job's status")?;
        tick(&info);
        if info.state.is_terminal() {
            set_running(None);
            if info.state != JobState::Finished {
                return Err(Stop::Failed(format!(
                    "job {} ({}) {}: {}",
                    info.id,
                    info.name,
                    info.state.as_str(),
                    info.reason
                        .clone()
                        .unwrap_or_else(|| "no reason given".into())
                )));
            }
            return Ok(info);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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

fn unique_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{now:x}{:04x}", std::process::id() & 0xffff)
}

async fn sort(
    a: &SortArgs,
    plan: &Plan,
    profile: &Profile,
    client: &ClusterClient,
    show_progress: bool,
    started: Instant,
) -> Result<ExitCode, Stop> {
    let run = unique_run_id();
    let quiet = a.json;
    let note = |msg: String| {
        if !quiet {
            eprintln!("{msg}");
        }
    };

    // 1. Sample: on the client when it streams the inputs, else with a sample job.
    let client_files_list = if plan.from_client {
        client_files(plan)?
    } else {
        Vec::new()
    };
    let (sample_job_id, workers, samples, seen, samples_via, client_input) = if plan.from_client {
        let view = client.view().await.map_err(|e| Stop::Error(e.into()))?;
        let mut ids: Vec<String> = view.peers.iter().map(|p| p.id.0.clone()).collect();
        ids.sort();
        let max = plan.samples.saturating_mul(ids.len().max(1));
        note(format!(
            "sampling {} input file(s) here (streaming them to {} workers)",
            client_files_list.len(),
            ids.len()
        ));
        let (info, samples) = client_sample(plan, &client_files_list, max)?;
        let seen = info.records;
        (
            "(client)".to_string(),
            ids,
            samples,
            seen,
            "client".to_string(),
            Some(info),
        )
    } else {
        // 1. Sample, through the DHT. When the workers' `sink.dht` fails (see
        // `SampleChannel::Files`), sample again into files under the output directory,
        // which the client sees whenever the workers share a filesystem with it.
        let files = || SampleChannel::Files(plan.output.join(format!(".samples-{run}")));
        let mut channel = if a.sample_via == "files" {
            files()
        } else {
            SampleChannel::Dht
        };
        let (sample_job, sample_info) = loop {
            let sample_job = submit(client, &sample_spec(plan, &run, &channel)).await?;
            note(format!(
                "sampling {} input(s) on {} workers (job {})",
                plan.inputs.len(),
                sample_job.workers.len(),
                sample_job.id
            ));
            let spinner = progress_spinner(show_progress, "sampling");
            let r = wait(client, &sample_job.id, |i| {
                if let Some(s) = &spinner {
                    let v = vertex_sum(i, "read");
                    s.set_message(format!("{} records read", counter(&v, "records")));
                }
            })
            .await;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            match (r, &channel) {
                (Ok(info), _) => break (sample_job, info),
                (Err(Stop::Failed(msg)), SampleChannel::Dht)
                    if msg.contains("operator 'store' failed") =>
                {
                    channel = files();
                    if let SampleChannel::Files(dir) = &channel {
                        eprintln!(
                            "warning: the sample job could not store its samples in the DHT \
                             ({msg}); sampling again into {}",
                            dir.display()
                        );
                    }
                }
                (Err(e), _) => return Err(e),
            }
        };
        let workers: Vec<String> = sample_info.workers.iter().map(|w| w.0.clone()).collect();
        let ranges = workers.len();
        if ranges == 0 {
            return Err(Stop::Failed("the cluster has no workers".into()));
        }
        let (samples, seen): (Vec<KeyData>, u64) = match &channel {
            SampleChannel::Dht => read_samples(profile, &run, ranges).await?,
            SampleChannel::Files(dir) => {
                let r = read_sample_files(dir, ranges);
                let _ = std::fs::remove_dir_all(dir);
                r?
            }
        };
        (
            sample_job.id.clone(),
            workers,
            samples,
            seen,
            channel.name().to_string(),
            None,
        )
    };
    let ranges = workers.len();
    if ranges == 0 {
        return Err(Stop::Failed("the cluster has no workers".into()));
    }
    let sample_count = samples.len() as u64;
    let splitters = sortops::splitters(samples, ranges);
    tracing::debug!(
        samples = sample_count,
        seen,
        splitters = splitters.len(),
        "splitters chosen"
    );

    // 2. Sort.
    std::fs::create_dir_all(&plan.output)
        .with_context(|| format!("creating {}", plan.output.display()))?;
    let spec = if plan.from_client {
        client_sort_spec(plan, &run, &splitters)
    } else {
        sort_spec(plan, &run, &splitters)
    };
    let job = submit(client, &spec).await?;
    let job_workers: Vec<String> = job.workers.iter().map(|w| w.0.clone()).collect();
    if job_workers != workers {
        let _ = client.cancel_job(&job.id).await;
        set_running(None);
        return Err(Stop::Failed(format!(
            "the cluster's workers changed between sampling ({}) and sorting ({}); run the sort again",
            workers.join(", "),
            job_workers.join(", ")
        )));
    }
    note(format!(
        "sorting on {} workers with {} each (job {}), {} splitters from {} samples",
        ranges,
        human_bytes(plan.memory),
        job.id,
        splitters.len(),
        sample_count
    ));
    if plan.from_client {
        client_push(plan, &client_files_list, client, &job).await?;
    }
    let mut progress = Progress::new(show_progress, plan);
    let info = wait(client, &job.id, |i| progress.update(i)).await;
    progress.finish();
    let info = info?;

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
            job: job.id.clone(),
            sample_job: sample_job_id.clone(),
            workers: workers.clone(),
            memory_bytes: plan.memory,
            spilled_runs: counter(&sorted, "spilled_runs"),
            spilled_bytes: counter(&sorted, "spilled_bytes"),
            merge_passes: counter(&sorted, "merge_passes"),
            samples: sample_count,
            samples_via: samples_via.clone(),
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

/// Reads the samples back from the DHT: (all samples, weighted to equal shares; records
/// seen by the sample instances). Deletes them afterwards.
async fn read_samples(
    profile: &Profile,
    run: &str,
    instances: usize,
) -> Result<(Vec<KeyData>, u64), Stop> {
    let identity = TlsIdentity::from_dir(&profile.certs_dir, &profile.cert_name)?;
    let dht = DhtClient::connect(&profile.cluster, &identity, &profile.cluster_name)
        .await
        .context("connecting to the DHT")?;
    let keys: Vec<String> = (0..instances)
        .map(|i| format!("sort:{run}:sample:{i}"))
        .collect();
    let values = dht
        .get_many(keys.clone())
        .await
        .context("reading the samples");
    let values = match values {
        Ok(v) => v,
        Err(e) => {
            dht.close().await;
            return Err(e.into());
        }
    };
    let mut per_instance = Vec::new();
    for (key, v) in keys.iter().zip(values) {
        let Some(v) = v else {
            dht.close().await;
            return Err(Stop::Failed(format!("no samples under {key} in the DHT")));
        };
        let parsed = parse_samples(&v).with_context(|| format!("the samples under {key}"));
        match parsed {
            Ok(p) => per_instance.push(p),
            Err(e) => {
                dht.close().await;
                return Err(e.into());
            }
        }
    }
    if let Err(e) = dht.delete_many(keys).await {
        tracing::warn!(error = %e, "could not delete the samples from the DHT");
    }
    dht.close().await;
    let seen = per_instance.iter().map(|(s, _)| *s).sum();
    Ok((weigh_samples(per_instance), seen))
}

/// Reads the samples from the `sink.file` parts in `dir` (one line per instance).
fn read_sample_files(dir: &Path, instances: usize) -> Result<(Vec<KeyData>, u64), Stop> {
    let mut per_instance = Vec::new();
    for i in 0..instances {
        let path = dir.join(format!("part-{i:05}.jsonl"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Stop::Failed(format!(
                "cannot read the samples in {}: {e} (the output directory must be on a \
                 filesystem the workers share with this client)",
                path.display()
            ))
        })?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("the samples in {}", path.display()))?;
            let inner = v.get("value").unwrap_or(&v);
            let parsed = parse_samples(inner.to_string().as_bytes())
                .with_context(|| format!("the samples in {}", path.display()))?;
            per_instance.push(parsed);
        }
    }
    if per_instance.len() != instances {
        return Err(Stop::Failed(format!(
            "expected samples from {instances} instances in {}, found {}",
            dir.display(),
            per_instance.len()
        )));
    }
    let seen = per_instance.iter().map(|(s, _)| *s).sum();
    Ok((weigh_samples(per_instance), seen))
}

/// `{"instance", "seen", "samples": [{"key": hex, "data": hex}]}` → (seen, samples).
fn parse_samples(bytes: &[u8]) -> anyhow::Result<(u64, Vec<KeyData>)> {
    let v: Value = serde_json::from_slice(bytes)?;
    let seen = v["seen"].as_u64().context("no 'seen' count")?;
    let out = sortops::samples_from_value(&v).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((seen, out))
}

/// Makes every kept sample stand for the same number of input records: the instance
/// that saw the most records per sample keeps all its samples, the others keep an
/// evenly spaced proportional share (their samples come sorted, so every k-th one).
fn weigh_samples(per_instance: Vec<(u64, Vec<KeyData>)>) -> Vec<KeyData> {
    let rate = |seen: u64, n: usize| seen as f64 / n.max(1) as f64;
    let max_rate = per_instance
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(seen, s)| rate(*seen, s.len()))
        .fold(0.0f64, f64::max);
    let mut all = Vec::new();
    for (seen, s) in per_instance {
        let n = s.len();
        if n == 0 {
            continue;
        }
        let keep = ((n as f64) * rate(seen, n) / max_rate).round() as usize;
        let keep = keep.clamp(1, n);
        if keep == n {
            all.extend(s);
            continue;
        }
        // Positions (i + 0.5) * n / keep: evenly spaced through the sorted samples.
        let mut s: Vec<Option<KeyData>> = s.into_iter().map(Some).collect();
        for i in 0..keep {
            let pos = (((2 * i + 1) * n) / (2 * keep)).min(n - 1);
            if let Some(x) = s[pos].take() {
                all.push(x);
            }
        }
    }
    all
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
    fn new(show: bool, plan: &Plan) -> Self {
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
    use ringflow_stream::{plan as plan_job, InitContext};

    fn test_plan(format: &str, key_field: Option<usize>, inputs: usize) -> Plan {
        Plan {
            format: format.into(),
            key_field,
            delimiter: "\t".into(),
            inputs: (0..inputs)
                .map(|i| PathBuf::from(format!("/data/in-{i}")))
                .collect(),
            output: PathBuf::from("/data/out"),
            memory: 64 << 20,
            local: false,
            samples: 1000,
            input_bytes: None,
            from_client: false,
        }
    }

    /// The specs the command submits pass the real operators' config checks.
    #[test]
    fn generated_specs_plan_with_the_builtin_operators() {
        let mut registry = ringflow_ops::with_builtins();
        registry.provide(ringflow_ops::client::ClientPorts::default());
        let mut init = InitContext::for_test("check");
        init.validate_only = true;
        for (format, key_field, inputs) in [("gensort", None, 1), ("lines", Some(2), 3)] {
            let p = test_plan(format, key_field, inputs);
            let splitters = vec![(b"k".to_vec(), b"kdata".to_vec()); 2];
            let sort = sort_spec(&p, "run1", &splitters);
            plan_job(&sort, &registry, &init).unwrap_or_else(|e| panic!("{e}: {sort:?}"));
            let sample = sample_spec(&p, "run1", &SampleChannel::Files("/data/s".into()));
            plan_job(&sample, &registry, &init).unwrap_or_else(|e| panic!("{e}: {sample:?}"));
            let v: Value = serde_json::from_str(&sort.to_json()).unwrap();
            let vertices = v["vertex"].as_array().unwrap();
            assert_eq!(vertices.len(), inputs + 3);
            let sorter = vertices.iter().find(|v| v["name"] == "sort").unwrap();
            assert_eq!(sorter["inputs"][0]["edge"], "direct");
            assert_eq!(sorter["config"]["memory_bytes"], 64 << 20);
            // The client-streamed variant reads from one client source vertex.
            let fc = client_sort_spec(&p, "run1", &splitters);
            plan_job(&fc, &registry, &init).unwrap_or_else(|e| panic!("{e}: {fc:?}"));
            let sources: Vec<&str> = fc
                .vertices
                .iter()
                .filter(|v| v.operator.starts_with("source."))
                .map(|v| v.operator.as_str())
                .collect();
            assert_eq!(sources, vec!["source.client.records"]);
        }
        // The DHT variant names sink.dht with the run's key prefix.
        let sample = sample_spec(&test_plan("gensort", None, 1), "r9", &SampleChannel::Dht);
        let store = sample.vertices.iter().find(|v| v.name == "store").unwrap();
        assert_eq!(store.operator, "sink.dht");
        assert_eq!(store.config["key_prefix"], "sort:r9:");
    }

    #[test]
    fn samples_are_weighed_to_equal_shares() {
        let s = |n: usize, tag: u8| -> Vec<KeyData> {
            (0..n).map(|i| (vec![tag, i as u8], vec![tag])).collect()
        };
        // A saw 10x as many records per sample as B: B keeps a tenth, evenly spaced.
        let all = weigh_samples(vec![(1000, s(10, 1)), (100, s(10, 2)), (0, Vec::new())]);
        let a: Vec<_> = all.iter().filter(|k| k.0[0] == 1).collect();
        let b: Vec<_> = all.iter().filter(|k| k.0[0] == 2).collect();
        assert_eq!((a.len(), b.len()), (10, 1));
        assert_eq!(b[0].0, vec![2, 5]);
        // Equal rates keep everything.
        assert_eq!(weigh_samples(vec![(50, s(5, 1)), (50, s(5, 2))]).len(), 10);
    }

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
