//! `ringflow sort`: a distributed sort of files by the cluster, and `ringflow sort
//! --verify`, which checks a sorted output without one.
//!
//! A sort is two jobs. The **sample job** (`source.sortfile → sample → sink.dht`) leaves
//! a uniform sample of each worker's share of the input in the DHT; the client reads
//! it back and picks one splitter per worker boundary. The **sort job**
//! (`source.sortfile → range_partition →direct→ sort → sink.sortfile`) sends every
//! record to the worker of its key range, where an external merge sort (sorted runs
//! spilled past `--memory`, then a loser-tree merge) streams it into that worker's part
//! file: part `i` holds range `i`, so the parts in order are the sorted data set. The
//! client then compares the count and checksum the sources read with those the sinks
//! wrote, and writes `manifest.json` beside the parts.

mod cluster;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::cli::ClientArgs;
pub use crate::sort::{human_bytes, SideInfo};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["output", "verify"])))]
pub struct SortArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Input files or directories (read by the workers; with `--verify`, the inputs to
    /// recompute the expected count and checksum from).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub input: Vec<PathBuf>,
    /// Output directory: one part file per worker, in order, and `manifest.json`.
    #[arg(long, value_name = "DIR", requires = "input")]
    pub output: Option<PathBuf>,
    /// Record format: `gensort` (100-byte records, 10-byte key) or `lines` [default: gensort,
    /// or the manifest's with --verify].
    #[arg(long)]
    pub format: Option<String>,
    /// Lines: sort by this field (0 = the first) instead of the whole line.
    #[arg(long, value_name = "N")]
    pub key_field: Option<usize>,
    /// Lines: the field delimiter (`\t` for a tab).
    #[arg(long, value_name = "STR")]
    pub delimiter: Option<String>,
    /// Memory for sorting on each worker before it spills runs to disk (512MiB, 2GiB, bytes).
    #[arg(long, default_value = "2GiB")]
    pub memory: String,
    /// Every worker reads the same input path on its own disk (no splitting).
    #[arg(long)]
    pub local: bool,
    /// Read the inputs on this machine and stream them to the workers (for inputs the
    /// workers cannot see); splitters are sampled here.
    #[arg(long, conflicts_with = "local")]
    pub from_client: bool,
    /// Also concatenate the parts, in order, into this file.
    #[arg(long, value_name = "OUT")]
    pub single_file: Option<PathBuf>,
    /// Replace an earlier sort output in the output directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Samples per worker for choosing the range boundaries.
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// How the sample job hands its samples to this client: `dht` (default), or `files`
    /// under the output directory (the fallback when the DHT sink fails).
    #[arg(long, hide = true, default_value = "dht", value_parser = ["dht", "files"])]
    pub sample_via: String,
    /// Do not show progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Check a sorted output (a directory with a manifest, or one file) instead of sorting:
    /// global order, count and checksum. No cluster needed.
    #[arg(long, value_name = "DIR|FILE", conflicts_with_all = ["output", "local", "single_file"])]
    pub verify: Option<PathBuf>,
}

pub fn run(a: SortArgs) -> anyhow::Result<ExitCode> {
    if let Some(target) = a.verify.clone() {
        return verify::run(&a, &target);
    }
    cluster::run(a)
}

/// The file `ringflow sort` writes beside the parts.
pub const MANIFEST: &str = "manifest.json";

/// What `manifest.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of this file.
    pub version: u32,
    /// `gensort` or `lines`.
    pub format: String,
    /// Lines: the key field (none: the whole line).
    pub key_field: Option<usize>,
    /// Lines: the field delimiter as given.
    pub delimiter: String,
    /// The part files in key order (names relative to the manifest's directory).
    pub parts: Vec<PartInfo>,
    /// What the sources read.
    pub input: SideInfo,
    /// What the sinks wrote.
    pub output: SideInfo,
    /// How the input was given.
    pub inputs: InputInfo,
    /// How the sort ran.
    pub run: RunInfo,
}

/// One part file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartInfo {
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// The worker that wrote it.
    pub worker: String,
    /// Records in it (none if the client could not read it).
    pub records: Option<u64>,
    /// Its size in bytes (none if the client could not read it).
    pub bytes: Option<u64>,
}

/// The input paths and how they were read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputInfo {
    /// Absolute input paths.
    pub paths: Vec<String>,
    /// Every worker read every path whole (`--local`): the input figures are the files'
    /// figures times the number of workers.
    pub local: bool,
}

/// How a sort ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// The sort job's id.
    pub job: String,
    /// The sample job's id.
    pub sample_job: String,
    /// Workers, in part order.
    pub workers: Vec<String>,
    /// Sort memory per worker (bytes).
    pub memory_bytes: u64,
    /// Sorted runs spilled to disk (all workers).
    pub spilled_runs: u64,
    /// Bytes spilled (all workers).
    pub spilled_bytes: u64,
    /// Intermediate merge passes (all workers).
    pub merge_passes: u64,
    /// Samples the splitters were chosen from.
    pub samples: u64,
    /// How the samples reached the client: `dht`, or `files` (the fallback).
    #[serde(default)]
    pub samples_via: String,
    /// Wall-clock time of the whole sort (seconds).
    pub seconds: f64,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// Parses a size: plain bytes (`1048576`), or a number with a unit: `k`/`KiB` (1024),
/// `KB` (1000), `M`/`MiB`, `MB`, `G`/`GiB`, `GB`, `T`/`TiB`, `TB`; fractions allowed
/// (`1.5GiB`); case and spaces do not matter.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad =
        || anyhow::anyhow!("invalid size '{text}' (examples: 536870912, 512MiB, 2GiB, 1.5G, 64k)");
    if num.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" | "ki" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" | "mi" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" | "ti" => 1024.0f64.powi(4),
        "tb" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// Printable form of a key: text when it is printable ASCII, hex otherwise.
pub fn show_key(format: &str, key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    if format == "lines" {
        match std::str::from_utf8(key) {
            Ok(s) => format!("{s:?} (hex {hex})"),
            Err(_) => format!("hex {hex}"),
        }
    } else {
        format!("hex {hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("2 gib").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        for bad in ["", "MiB", "12XB", "-5", "0", "1.2.3G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn manifest_checksums_are_hex() {
        let s = SideInfo {
            records: 3,
            bytes: 300,
            checksum: 0xabc,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"0000000000000abc\""), "{j}");
        assert_eq!(serde_json::from_str::<SideInfo>(&j).unwrap(), s);
    }
}
