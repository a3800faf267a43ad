//! The steps of a sort, in order: sample (on the client, or with a sample job), choose
//! the splitters, submit the sort job, stream the records in and out where the client
//! holds them, and wait for the job's end. A [`SortObserver`] sees each step (the CLI
//! draws progress bars from it; the Rust API ignores it).

use std::time::Duration;

use ringflow_proto::{JobInfo, JobState};
use ringflow_stream::JobSpec;

use super::ops::{self, KeyData};
use super::ports;
use super::samples::{self, SideInfo};
use super::spec::{
    read_vertex, SampleChannel, SampleVia, SortInput, SortOutput, SortPlan, WRITE_VERTEX,
};
use super::{human_bytes, SortError};
use crate::{Cluster, ClusterClient, ClusterError};

/// What a sort reports as it goes. Every method has a default that does nothing.
pub trait SortObserver {
    /// A line for the user about what happens next.
    fn note(&mut self, _msg: String) {}
    /// Something went wrong that the sort works around.
    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
    }
    /// A job of the sort was submitted (cancel it if the user interrupts).
    fn job_submitted(&mut self, _id: &str) {}
    /// The job last submitted has ended (or was cancelled).
    fn job_ended(&mut self) {}
    /// The sample job runs: `None` when it starts, then each status of it.
    fn sampling(&mut self, _info: Option<&JobInfo>) {}
    /// The sample job ended, well or not.
    fn sampled(&mut self) {}
    /// A status of the sort job while it runs.
    fn sorting(&mut self, _info: &JobInfo) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl SortObserver for Quiet {}

/// A finished sort.
pub struct SortRun {
    /// The run id (in job names and sample keys).
    pub run: String,
    /// The sort job's last status (its per-vertex counters).
    pub job: JobInfo,
    /// The sample job's id, or `(client)` when the client sampled.
    pub sample_job: String,
    /// The workers, in range order.
    pub workers: Vec<String>,
    /// Samples the splitters were chosen from.
    pub samples: u64,
    /// Records the samplers saw.
    pub seen: u64,
    /// How the samples reached the client: `dht`, `files` or `client`.
    pub samples_via: String,
    /// Count, size and checksum of the records the client streamed (client input).
    pub client_input: Option<SideInfo>,
    /// The sorted records' data ([`SortOutput::Client`]; empty otherwise).
    pub sorted: Vec<Vec<u8>>,
}

/// Runs the sort `plan` on the cluster (`cluster` to read samples from the DHT,
/// `client` connected to its coordinator).
pub async fn run(
    cluster: &Cluster,
    client: &ClusterClient,
    plan: &SortPlan,
    obs: &mut dyn SortObserver,
) -> Result<SortRun, SortError> {
    let run = unique_run_id();

    // 1. Sample: on the client when it streams the records, else with a sample job.
    let sampled = match &plan.input {
        SortInput::Client(source) => {
            let view = client.view().await?;
            let mut ids: Vec<String> = view.peers.iter().map(|p| p.id.0.clone()).collect();
            ids.sort();
            let max = plan.samples.saturating_mul(ids.len().max(1));
            obs.note(format!(
                "sampling {} here (streaming them to {} workers)",
                source.describe(),
                ids.len()
            ));
            let (info, samples) = samples::client_sample(source.as_ref(), max)?;
            Sampled {
                job: "(client)".into(),
                workers: ids,
                samples,
                seen: info.records,
                via: "client".into(),
                client_input: Some(info),
            }
        }
        SortInput::Workers { .. } => sample_job(cluster, client, plan, &run, obs).await?,
    };
    let ranges = sampled.workers.len();
    if ranges == 0 {
        return Err(SortError::Failed("the cluster has no workers".into()));
    }
    let sample_count = sampled.samples.len() as u64;
    let splitters = ops::splitters(sampled.samples, ranges);
    tracing::debug!(
        samples = sample_count,
        seen = sampled.seen,
        splitters = splitters.len(),
        "splitters chosen"
    );

    // 2. Sort.
    if let SortOutput::Files(dir) = &plan.output {
        std::fs::create_dir_all(dir)
            .map_err(|e| SortError::io(format!("creating {}", dir.display()), e))?;
    }
    let job = submit(client, &plan.sort_spec(&run, &splitters), obs).await?;
    let job_workers: Vec<String> = job.workers.iter().map(|w| w.0.clone()).collect();
    if job_workers != sampled.workers {
        let _ = client.cancel_job(&job.id).await;
        obs.job_ended();
        return Err(SortError::Failed(format!(
            "the cluster's workers changed between sampling ({}) and sorting ({}); run the sort again",
            sampled.workers.join(", "),
            job_workers.join(", ")
        )));
    }
    obs.note(format!(
        "sorting on {} workers with {} each (job {}), {} splitters from {} samples",
        ranges,
        human_bytes(plan.memory),
        job.id,
        splitters.len(),
        sample_count
    ));
    let streamed = async {
        let addrs = ports::worker_addrs(client, &job).await?;
        if let SortInput::Client(source) = &plan.input {
            ports::push(client, &job, &addrs, &read_vertex(0), source.records()?).await?;
        }
        match plan.output {
            SortOutput::Client => ports::pull(client, &job, &addrs, WRITE_VERTEX).await,
            SortOutput::Files(_) => Ok(Vec::new()),
        }
    }
    .await;
    let sorted = match streamed {
        Ok(s) => s,
        Err(e) => {
            let _ = client.cancel_job(&job.id).await;
            obs.job_ended();
            let reason = client
                .job(&job.id)
                .await
                .ok()
                .and_then(|j| j.reason)
                .unwrap_or_default();
            return Err(SortError::Failed(format!(
                "sort job {}: {e} {reason}",
                job.id
            )));
        }
    };
    let info = wait(client, &job.id, obs, |obs, i| obs.sorting(i)).await?;
    Ok(SortRun {
        run,
        job: info,
        sample_job: sampled.job,
        workers: sampled.workers,
        samples: sample_count,
        seen: sampled.seen,
        samples_via: sampled.via,
        client_input: sampled.client_input,
        sorted,
    })
}

/// What the sampling step found.
struct Sampled {
    job: String,
    workers: Vec<String>,
    samples: Vec<KeyData>,
    seen: u64,
    via: String,
    client_input: Option<SideInfo>,
}

/// The sample job, through the DHT. When the workers' `sink.dht` fails, samples again
/// into files under the output directory, which the client sees whenever the workers
/// share a filesystem with it.
async fn sample_job(
    cluster: &Cluster,
    client: &ClusterClient,
    plan: &SortPlan,
    run: &str,
    obs: &mut dyn SortObserver,
) -> Result<Sampled, SortError> {
    let files = || match &plan.output {
        SortOutput::Files(dir) => Some(SampleChannel::Files(dir.join(format!(".samples-{run}")))),
        SortOutput::Client => None,
    };
    let mut channel = match plan.sample_via {
        SampleVia::Files => files().ok_or_else(|| {
            SortError::Invalid("samples via files need an output directory".into())
        })?,
        SampleVia::Dht => SampleChannel::Dht,
    };
    let inputs = match &plan.input {
        SortInput::Workers { paths, .. } => paths.len(),
        SortInput::Client(_) => 0,
    };
    let (sample_job, sample_info) = loop {
        let sample_job = submit(client, &plan.sample_spec(run, &channel), obs).await?;
        obs.note(format!(
            "sampling {} input(s) on {} workers (job {})",
            inputs,
            sample_job.workers.len(),
            sample_job.id
        ));
        obs.sampling(None);
        let r = wait(client, &sample_job.id, obs, |obs, i| obs.sampling(Some(i))).await;
        obs.sampled();
        match (r, &channel) {
            (Ok(info), _) => break (sample_job, info),
            (Err(SortError::Failed(msg)), SampleChannel::Dht)
                if msg.contains("operator 'store' failed") =>
            {
                let Some(fallback) = files() else {
                    return Err(SortError::Failed(msg));
                };
                channel = fallback;
                if let SampleChannel::Files(dir) = &channel {
                    obs.warn(format!(
                        "the sample job could not store its samples in the DHT \
                         ({msg}); sampling again into {}",
                        dir.display()
                    ));
                }
            }
            (Err(e), _) => return Err(e),
        }
    };
    let workers: Vec<String> = sample_info.workers.iter().map(|w| w.0.clone()).collect();
    let ranges = workers.len();
    if ranges == 0 {
        return Err(SortError::Failed("the cluster has no workers".into()));
    }
    let (samples, seen) = match &channel {
        SampleChannel::Dht => samples::read_dht(cluster, run, ranges).await?,
        SampleChannel::Files(dir) => {
            let r = samples::read_files(dir, ranges);
            let _ = std::fs::remove_dir_all(dir);
            r?
        }
    };
    Ok(Sampled {
        job: sample_job.id,
        workers,
        samples,
        seen,
        via: channel.name().to_string(),
        client_input: None,
    })
}

async fn submit(
    client: &ClusterClient,
    spec: &JobSpec,
    obs: &mut dyn SortObserver,
) -> Result<JobInfo, SortError> {
    match client.submit_job(spec.to_json()).await {
        Ok(i) => {
            obs.job_submitted(&i.id);
            Ok(i)
        }
        Err(ClusterError::Refused(msg)) => Err(SortError::Refused(msg)),
        Err(e) => Err(SortError::Submit(e)),
    }
}

/// Polls a job until it ends, calling `tick` with every status; an end other than
/// `Finished` is a failure naming the job and its reason.
async fn wait<O: SortObserver + ?Sized>(
    client: &ClusterClient,
    id: &str,
    obs: &mut O,
    mut tick: impl FnMut(&mut O, &JobInfo),
) -> Result<JobInfo, SortError> {
    loop {
        let info = client.job(id).await?;
        tick(obs, &info);
        if info.state.is_terminal() {
            obs.job_ended();
            if info.state != JobState::Finished {
                return Err(SortError::Failed(format!(
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

/// A run id unique to this client process and moment (hex).
fn unique_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{now:x}{:04x}", std::process::id() & 0xffff)
}
