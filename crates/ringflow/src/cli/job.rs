//! `ringflow job submit|list|status|cancel|savepoint|savepoints|delete-savepoint|rescale`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ringflow_proto::{JobInfo, JobState};
use ringflow_stream::JobSpec;

use super::status::{connect, resolve_client};
use crate::cli::ClientArgs;
use crate::ClusterError;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job spec (TOML or JSON); prints the job id. Exit 2 if refused.
    Submit(JobSubmitArgs),
    /// List jobs.
    List(JobListArgs),
    /// Show one job: state, reason, per-vertex counters and queue fill.
    Status(JobIdArgs),
    /// Cancel a job.
    Cancel(JobIdArgs),
    /// Take a savepoint of a running job (a checkpoint kept until it is deleted); prints
    /// its id for `job submit --from-savepoint`.
    Savepoint(JobSavepointArgs),
    /// List savepoints.
    Savepoints(JobListArgs),
    /// Delete a savepoint (its parts are deleted from the checkpoint store).
    DeleteSavepoint(SavepointIdArgs),
    /// Move a running job to the current workers now: stop it with a checkpoint and
    /// restore it on the live workers. Prints how long it was paused.
    Rescale(JobIdArgs),
}

#[derive(Debug, Args)]
pub struct JobSavepointArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job id.
    pub id: String,
    /// Cancel the job once the savepoint is complete.
    #[arg(long)]
    pub stop: bool,
    /// Print JSON instead of the savepoint id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SavepointIdArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The savepoint id (from `job savepoint` or `job savepoints`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct JobSubmitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The spec file (`.json` is read as JSON, anything else as TOML).
    pub spec: PathBuf,
    /// Wait until the job ends; exit 0 if it finished, 1 if it failed or was cancelled.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start from this savepoint's state (also with another parallelism or other
    /// workers); refused unless the spec has the savepoint's stateful vertices.
    #[arg(long, value_name = "SAVEPOINT")]
    pub from_savepoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobIdArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job id (from `job submit` or `job list`).
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Wait until the job ends (status only).
    #[arg(long)]
    pub wait: bool,
}

pub fn run(c: JobCommand) -> anyhow::Result<ExitCode> {
    actix_rt::System::new().block_on(async move {
        match c {
            JobCommand::Submit(a) => {
                let spec = match JobSpec::from_path(&a.spec) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::from(2));
                    }
                };
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let info = match client
                    .submit_job_from(spec.to_json(), a.from_savepoint.clone())
                    .await
                {
                    Ok(i) => i,
                    Err(ClusterError::Refused(msg)) => {
                        eprintln!("error: job refused: {msg}");
                        client.close().await;
                        return Ok(ExitCode::from(2));
                    }
                    Err(e) => return Err(e).context("submitting the job"),
                };
                if !a.wait {
                    if a.json {
                        println!("{}", serde_json::to_string_pretty(&info)?);
                    } else {
                        println!("{}", info.id);
                    }
                    client.close().await;
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("submitted {}", info.id);
                let info = wait_for_end(&client, &info.id).await?;
                client.close().await;
                print_info(&info, a.json)?;
                Ok(exit_for(&info))
            }
            JobCommand::List(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let jobs = client.jobs().await?;
                client.close().await;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&jobs)?);
                } else {
                    println!("{:<28} {:<20} {:<10} REASON", "ID", "NAME", "STATE");
                    for j in jobs {
                        println!(
                            "{:<28} {:<20} {:<10} {}",
                            j.id,
                            j.name,
                            j.state.as_str(),
                            j.reason.unwrap_or_default()
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Status(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let info = if a.wait {
                    wait_for_end(&client, &a.id).await?
                } else {
                    client.job(&a.id).await?
                };
                client.close().await;
                print_info(&info, a.json)?;
                Ok(if a.wait {
                    exit_for(&info)
                } else {
                    ExitCode::SUCCESS
                })
            }
            JobCommand::Cancel(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let info = client.cancel_job(&a.id).await?;
                client.close().await;
                print_info(&info, a.json)?;
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Savepoint(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let sp = client.savepoint(&a.id, a.stop).await;
                client.close().await;
                match sp {
                    Ok(sp) if a.json => println!("{}", serde_json::to_string_pretty(&sp)?),
                    Ok(sp) => {
                        eprintln!(
                            "savepoint of checkpoint #{}: {} bytes, took {} ms{}",
                            sp.checkpoint.id,
                            sp.checkpoint.size_bytes,
                            sp.checkpoint.duration_ms,
                            if a.stop { "; the job is stopped" } else { "" }
                        );
                        println!("{}", sp.id);
                    }
                    Err(ClusterError::Refused(msg)) => {
                        eprintln!("error: {msg}");
                        return Ok(ExitCode::from(1));
                    }
                    Err(e) => return Err(e).context("taking the savepoint"),
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Savepoints(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let list = client.savepoints(None).await?;
                client.close().await;
                print_savepoints(&list, a.json)?;
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::DeleteSavepoint(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let left = client.savepoints(Some(&a.id)).await;
                client.close().await;
                match left {
                    Ok(_) => eprintln!("deleted {}", a.id),
                    Err(ClusterError::Refused(msg)) => {
                        eprintln!("error: {msg}");
                        return Ok(ExitCode::from(1));
                    }
                    Err(e) => return Err(e).context("deleting the savepoint"),
                }
                Ok(ExitCode::SUCCESS)
            }
            JobCommand::Rescale(a) => {
                let p = resolve_client(&a.client)?;
                let client = connect(&p, &p.cluster).await?;
                let info = client.rescale_job(&a.id).await;
                client.close().await;
                match info {
                    Ok(info) => {
                        if !a.json {
                            println!(
                                "rescaled to {} workers; paused {} ms",
                                info.workers.len(),
                                info.last_rescale_pause_ms.unwrap_or(0)
                            );
                        }
                        print_info(&info, a.json)?;
                    }
                    Err(ClusterError::Refused(msg)) => {
                        eprintln!("error: {msg}");
                        return Ok(ExitCode::from(1));
                    }
                    Err(e) => return Err(e).context("rescaling the job"),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub(super) async fn wait_for_end(
    client: &crate::ClusterClient,
    id: &str,
) -> anyhow::Result<JobInfo> {
    loop {
        let info = client.job(id).await?;
        if info.state.is_terminal() {
            return Ok(info);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn exit_for(info: &JobInfo) -> ExitCode {
    if info.state == JobState::Finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_info(info: &JobInfo, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(info)?);
        return Ok(());
    }
    println!("job {} ({})", info.id, info.name);
    println!("state: {}", info.state.as_str());
    if let Some(r) = &info.reason {
        println!("reason: {r}");
    }
    let workers: Vec<&str> = info.workers.iter().map(|w| w.as_str()).collect();
    println!("workers: {}", workers.join(", "));
    if info.restarts > 0 {
        match info.restored_from {
            Some(id) => println!(
                "restarts: {} (running from checkpoint #{id})",
                info.restarts
            ),
            None => println!("restarts: {} (running from the start)", info.restarts),
        }
    }
    if !info.guarantee.is_empty() {
        println!("guarantee: {}", info.guarantee);
    }
    if let Some(sp) = &info.from_savepoint {
        println!("started from savepoint: {sp}");
    }
    if info.rescales > 0 {
        println!(
            "rescales: {} (the last paused the job {} ms)",
            info.rescales,
            info.last_rescale_pause_ms.unwrap_or(0)
        );
    }
    let c = &info.checkpoints;
    match &c.last {
        Some(l) => println!(
            "checkpoints: {} completed, {} failed; last #{} at {} ms, {} bytes, took {} ms (alignment {} ms)",
            c.completed, c.failed, l.id, l.completed_ms, l.size_bytes, l.duration_ms, l.alignment_ms
        ),
        None if c.failed > 0 => println!("checkpoints: none completed, {} failed", c.failed),
        None => {}
    }
    if let Some((id, since)) = c.in_progress {
        println!("checkpoint #{id} in progress since {since} ms");
    }
    println!(
        "{:<20} {:>9} {:>12} {:>12} {:>16}  COUNTERS",
        "VERTEX", "FINISHED", "IN", "OUT", "QUEUED/CAPACITY"
    );
    for v in &info.vertices {
        let counters: Vec<String> = v.counters.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!(
            "{:<20} {:>5}/{:<3} {:>12} {:>12} {:>16}  {}",
            v.name,
            v.finished,
            v.instances,
            v.records_in,
            v.records_out,
            format!("{}/{}", v.queued, v.queue_capacity),
            counters.join(" ")
        );
    }
    Ok(())
}

fn print_savepoints(list: &[ringflow_proto::SavepointInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<28} {:<20} {:>12}  STATEFUL VERTICES",
        "ID", "JOB", "NAME", "BYTES"
    );
    for s in list {
        let v: Vec<String> = s
            .stateful
            .iter()
            .map(|(n, op)| format!("{n} ({op})"))
            .collect();
        println!(
            "{:<40} {:<28} {:<20} {:>12}  {}",
            s.id,
            s.job,
            s.job_name,
            s.checkpoint.size_bytes,
            v.join(", ")
        );
    }
    Ok(())
}
