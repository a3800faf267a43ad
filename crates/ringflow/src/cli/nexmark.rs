//! `ringflow nexmark run`: one Nexmark query as a job on the cluster, with its rate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ringflow_stream::JobSpec;
use serde_json::json;

use super::status::{connect, resolve_client};
use crate::cli::ClientArgs;

/// The query specs, as in `examples/nexmark/`.
const QUERIES: [(&str, &str); 9] = [
    ("q0", include_str!("../../../../examples/nexmark/q0.toml")),
    ("q1", include_str!("../../../../examples/nexmark/q1.toml")),
    ("q2", include_str!("../../../../examples/nexmark/q2.toml")),
    ("q3", include_str!("../../../../examples/nexmark/q3.toml")),
    ("q4", include_str!("../../../../examples/nexmark/q4.toml")),
    ("q5", include_str!("../../../../examples/nexmark/q5.toml")),
    ("q6", include_str!("../../../../examples/nexmark/q6.toml")),
    ("q7", include_str!("../../../../examples/nexmark/q7.toml")),
    ("q8", include_str!("../../../../examples/nexmark/q8.toml")),
];

/// `ringflow nexmark ...`.
#[derive(Debug, Subcommand)]
pub enum NexmarkCommand {
    /// Run one query over generated events on the cluster; prints events/s.
    Run(NexmarkRunArgs),
}

/// `ringflow nexmark run`.
#[derive(Debug, Args)]
pub struct NexmarkRunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The query: q0 (pass-through), q1 (currency conversion), q2 (selection), q3
    /// (local item suggestion), q4 (average price per category), q5 (hot items), q6
    /// (average selling price by seller), q7 (highest bid) or q8 (monitor new users).
    #[arg(long)]
    pub query: String,
    /// Events to generate over all workers (a number, with K, M or G for thousands,
    /// millions, billions).
    #[arg(long, default_value = "1M", value_parser = parse_count)]
    pub events: u64,
    /// Seed of the generator (the same seed gives the same events and results).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Events per second over all workers; as fast as possible when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Events per second of event time (how fast the generated clock runs; default
    /// 10,000 as in the reference generator): fewer make more windows per event.
    #[arg(long)]
    pub event_rate: Option<f64>,
    /// After the run, compare the rows in `--out` with a single-threaded reference of
    /// the query computed here (needs `--out` on a disk this machine reads, as on a
    /// local cluster); fails when they differ.
    #[arg(long, requires = "out")]
    pub check: bool,
    /// Write the results as JSON lines into this directory (on each worker's disk,
    /// one part per worker); without it they are counted and dropped.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the job's final status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `10M`, `500K`, `2G` or a plain number.
fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{s}' is not a count (like 1000, 500K or 10M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// The spec of `query` with the run's events, seed, rate and sink.
fn spec_for(a: &NexmarkRunArgs) -> anyhow::Result<JobSpec> {
    let Some((_, text)) = QUERIES.iter().find(|(q, _)| *q == a.query) else {
        let known: Vec<&str> = QUERIES.iter().map(|(q, _)| *q).collect();
        bail!("unknown query '{}' (known: {})", a.query, known.join(", "));
    };
    let mut spec = JobSpec::from_toml(text).context("the built-in query spec")?;
    for v in &mut spec.vertices {
        if v.operator == "source.nexmark" {
            let mut cfg = json!({ "events": a.events, "seed": a.seed });
            if let Some(r) = a.rate {
                cfg["rate"] = json!(r);
            }
            if let Some(r) = a.event_rate {
                cfg["event_rate"] = json!(r);
            }
            v.config = cfg;
        }
        if v.name == "out" {
            if let Some(dir) = &a.out {
                // The workers resolve paths from their own directory: send an absolute one.
                let dir = std::path::absolute(dir)
                    .with_context(|| format!("the output directory {}", dir.display()))?;
                v.operator = "sink.file".into();
                v.config = json!({ "path": dir });
            }
        }
    }
    Ok(spec)
}

/// Runs a `nexmark` command.
pub fn run(c: NexmarkCommand) -> anyhow::Result<ExitCode> {
    let NexmarkCommand::Run(a) = c;
    let spec = spec_for(&a)?;
    actix_rt::System::new().block_on(async move {
        let p = resolve_client(&a.client)?;
        let client = connect(&p, &p.cluster).await?;
        let info = client
            .submit_job_from(spec.to_json(), None)
            .await
            .context("submitting the query")?;
        eprintln!(
            "submitted {} ({} events, seed {})",
            info.id, a.events, a.seed
        );
        let info = super::job::wait_for_end(&client, &info.id).await?;
        client.close().await;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        let secs = info
            .ended_ms
            .map_or(0.0, |e| e.saturating_sub(info.submitted_ms) as f64 / 1000.0);
        let rows = info
            .vertices
            .iter()
            .find(|v| v.name == "query")
            .map_or(0, |v| v.records_out);
        if info.state != ringflow_proto::JobState::Finished {
            eprintln!(
                "{}: job {} {}: {}",
                a.query,
                info.id,
                info.state.as_str(),
                info.reason.unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
        println!(
            "{}: {} events in {:.3} s = {:.0} events/s on {} workers; {} result rows{}",
            a.query,
            a.events,
            secs,
            a.events as f64 / secs.max(1e-3),
            info.workers.len(),
            rows,
            a.out
                .as_ref()
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_default()
        );
        if a.check {
            if let Some(dir) = &a.out {
                return check(&a, dir);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Compares the rows a run wrote into `dir` with the reference of its query.
fn check(a: &NexmarkRunArgs, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use ringflow_ops::nexmark::{generator::GeneratorConfig, reference};
    let mut cfg = GeneratorConfig {
        seed: a.seed,
        ..GeneratorConfig::default()
    };
    if let Some(r) = a.event_rate {
        cfg.event_rate = r;
    }
    let want = reference::expected(&a.query, &cfg, a.events)
        .with_context(|| format!("no reference for {}", a.query))?;
    let mut parts = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let rows = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<Vec<serde_json::Value>, _>>()
            .with_context(|| format!("a line of {} is not JSON", path.display()))?;
        parts.push(rows);
    }
    let got = reference::normalize(&a.query, &parts);
    if got == want {
        println!(
            "{}: check passed: {} rows equal the reference",
            a.query,
            got.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let first = got
        .iter()
        .zip(&want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    eprintln!(
        "{}: check FAILED: {} rows, the reference has {}; first difference at sorted row {first}:\n  got  {}\n  want {}",
        a.query,
        got.len(),
        want.len(),
        got.get(first).map_or("(none)", String::as_str),
        want.get(first).map_or("(none)", String::as_str),
    );
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_suffixes_and_refuse_junk() {
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("500k"), Ok(500_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("ten").is_err());
        assert!(parse_count("99999999999G").is_err());
    }

    #[test]
    fn every_query_spec_is_valid() {
        let reg = ringflow_ops::with_builtins();
        for (q, _) in QUERIES {
            let a = NexmarkRunArgs {
                client: ClientArgs {
                    cluster: None,
                    certs: None,
                    cert_name: None,
                    cluster_name: None,
                    profile: None,
                },
                query: q.into(),
                events: 10,
                seed: 1,
                rate: None,
                event_rate: None,
                check: false,
                out: Some("/tmp/x".into()),
                json: false,
            };
            let spec = spec_for(&a).unwrap();
            ringflow_stream::plan(&spec, &reg, &ringflow_stream::InitContext::for_test("x"))
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
}
