//! `ringflow gen`: input for `ringflow sort`, without a cluster.
//!
//! - `gensort`: the Sort Benchmark's 100-byte records — a 10-byte binary key, `00 11`, the
//!   row id as 32 upper-case hex digits, `88 99 AA BB`, 48 filler bytes (12 groups of 4
//!   copies of one hex digit of the row id), `CC DD EE FF`.
//! - `lines`: printable lines of random words in three tab-separated fields
//!   (`words<TAB>word-number<TAB>words`), so that a key field makes sense.
//!
//! `--skew` gives a quarter of the records one shared 2-byte key prefix, and one in
//! eight of those (1/32 of all) one of a handful of exact duplicate keys.
//!
//! Prints the record count and the data set's checksum: the wrapping sum of the CRC-32
//! of every record (lines without their newline), as `ringflow sort` computes it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ringflow_ring::rng::SplitMix64;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Record format: `gensort` (100-byte Sort Benchmark records) or `lines` (text).
    #[arg(long, default_value = "gensort")]
    pub format: String,
    /// Number of records.
    #[arg(long)]
    pub records: u64,
    /// The file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Seed of the pseudo-random keys (the same seed gives the same file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skewed keys: a quarter of the records share one 2-byte key prefix, and some share
    /// exact keys.
    #[arg(long)]
    pub skew: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The generator's random numbers for `--seed`: splitmix64 (`ringflow_ring::rng`),
/// identical on every machine.
fn rng_for(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ 0x5851_F42D_4C95_7F2D)
}

/// Count and checksum of a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub records: u64,
    pub bytes: u64,
    pub checksum: u64,
}

impl Figures {
    pub(crate) fn add(&mut self, record: &[u8], stored_len: usize) {
        self.records += 1;
        self.bytes += stored_len as u64;
        self.checksum = self.checksum.wrapping_add(crc32fast::hash(record) as u64);
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The gensort record of `row` with `key` (10 bytes).
pub(crate) fn gensort_record(row: u64, key: &[u8; 10], out: &mut [u8; 100]) {
    out[..10].copy_from_slice(key);
    out[10] = 0x00;
    out[11] = 0x11;
    let id = row as u128;
    for i in 0..32 {
        out[12 + i] = HEX[((id >> ((31 - i) * 4)) & 0xF) as usize];
    }
    out[44..48].copy_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for g in 0..12 {
        let digit = HEX[((row >> ((g % 16) * 4)) & 0xF) as usize];
        out[48 + g * 4..48 + g * 4 + 4].fill(digit);
    }
    out[96..100].copy_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
}

/// The shared prefix of skewed records.
const SKEW_PREFIX: [u8; 2] = [0x5A, 0x5A];
/// How many distinct exact-duplicate keys skewed data uses.
const DUP_KEYS: u64 = 4;

/// The 10-byte key of the next gensort record.
fn gensort_key(rng: &mut SplitMix64, skew: bool) -> [u8; 10] {
    let a = rng.next_u64().to_be_bytes();
    let b = rng.next_u64().to_be_bytes();
    let mut key = [0u8; 10];
    key[..8].copy_from_slice(&a);
    key[8..].copy_from_slice(&b[..2]);
    if skew {
        let r = rng.below(32);
        if r < 8 {
            key[..2].copy_from_slice(&SKEW_PREFIX);
            if r == 0 {
                // One of a few exact duplicate keys.
                let d = rng.below(DUP_KEYS) as u8;
                key[2..].copy_from_slice(&[0x44, 0x55, 0x50, d, 0, 0, 0, 0]);
            }
        }
    }
    key
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "ring",
    "flow",
    "stream",
    "actor",
    "quic",
    "batch",
    "credit",
    "window",
    "merge",
    "sort",
    "key",
    "value",
    "partition",
    "worker",
    "coordinator",
    "epoch",
    "spill",
    "run",
    "loser",
    "tree",
    "sample",
    "splitter",
    "range",
    "shuffle",
    "disk",
    "memory",
    "record",
    "checksum",
    "Apple",
    "Banana",
    "Cherry",
    "Zebra",
    "42",
    "007",
    "x",
    "yy",
    "a-b",
    "c.d",
    "e_f",
    "Omega",
    "#tag",
    "@home",
    "~tilde",
    "100%",
    "(paren)",
    "[box]",
    "{brace}",
    "semi;colon",
];

/// Appends one line (without the newline) to `line`.
fn line_record(rng: &mut SplitMix64, skew: bool, line: &mut Vec<u8>) {
    let word = |rng: &mut SplitMix64| WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
    let (skewed, dup) = if skew {
        let r = rng.below(32);
        (r < 8, r == 0)
    } else {
        (false, false)
    };
    // Field 0: one to three words.
    if dup {
        let d = rng.below(DUP_KEYS);
        line.extend_from_slice(format!("zz dup{d}\tzz-dup{d}").as_bytes());
    } else {
        if skewed {
            line.extend_from_slice(b"zz");
        }
        let n = 1 + rng.below(3);
        for i in 0..n {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(word(rng));
        }
        // Field 1: word-number.
        line.push(b'\t');
        if skewed {
            line.extend_from_slice(b"zz");
        }
        line.extend_from_slice(word(rng));
        line.push(b'-');
        line.extend_from_slice(rng.below(1_000_000).to_string().as_bytes());
    }
    // Field 2: two to eight words.
    line.push(b'\t');
    let n = 2 + rng.below(7);
    for i in 0..n {
        if i > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(word(rng));
    }
}

/// Writes `records` records of `format` to `w`; the figures of what was written.
pub(crate) fn generate(
    w: &mut impl Write,
    format: &str,
    records: u64,
    seed: u64,
    skew: bool,
) -> anyhow::Result<Figures> {
    let mut rng = rng_for(seed);
    let mut fig = Figures::default();
    match format {
        "gensort" => {
            let mut rec = [0u8; 100];
            for row in 0..records {
                let key = gensort_key(&mut rng, skew);
                gensort_record(row, &key, &mut rec);
                fig.add(&rec, rec.len());
                w.write_all(&rec)?;
            }
        }
        "lines" => {
            let mut line = Vec::with_capacity(256);
            for _ in 0..records {
                line.clear();
                line_record(&mut rng, skew, &mut line);
                fig.add(&line, line.len() + 1);
                line.push(b'\n');
                w.write_all(&line)?;
            }
        }
        other => anyhow::bail!("unknown format '{other}' (expected gensort or lines)"),
    }
    Ok(fig)
}

pub fn run(a: GenArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if a.format != "gensort" && a.format != "lines" {
        eprintln!(
            "error: unknown format '{}' (expected gensort or lines)",
            a.format
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(dir) = a.output.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let file =
        File::create(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let fig = generate(&mut w, &a.format, a.records, a.seed, a.skew)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", a.output.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", a.output.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let v = serde_json::json!({
            "path": a.output.display().to_string(),
            "format": a.format,
            "records": fig.records,
            "bytes": fig.bytes,
            "checksum": format!("{:016x}", fig.checksum),
            "seed": a.seed,
            "skew": a.skew,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} {} records ({}) to {} in {:.2}s ({}/s)",
            fig.records,
            a.format,
            super::sort::human_bytes(fig.bytes),
            a.output.display(),
            secs,
            super::sort::human_bytes((fig.bytes as f64 / secs.max(1e-9)) as u64),
        );
        println!("records {}  checksum {:016x}", fig.records, fig.checksum);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gensort_records_have_the_benchmark_layout() {
        let mut out = Vec::new();
        let fig = generate(&mut out, "gensort", 1000, 7, false).unwrap();
        assert_eq!(out.len(), 100_000);
        assert_eq!(fig.records, 1000);
        assert_eq!(fig.bytes, 100_000);
        for (row, r) in out.chunks(100).enumerate() {
            assert_eq!(&r[10..12], &[0x00, 0x11]);
            assert_eq!(&r[12..44], format!("{row:032X}").as_bytes());
            assert_eq!(&r[44..48], &[0x88, 0x99, 0xAA, 0xBB]);
            assert!(r[48..96].iter().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(&r[96..100], &[0xCC, 0xDD, 0xEE, 0xFF]);
        }
        // Deterministic per seed, different across seeds.
        let mut again = Vec::new();
        generate(&mut again, "gensort", 1000, 7, false).unwrap();
        assert_eq!(out, again);
        let mut other = Vec::new();
        generate(&mut other, "gensort", 1000, 8, false).unwrap();
        assert_ne!(out, other);
    }

    #[test]
    fn skew_shares_a_prefix_and_duplicates_keys() {
        let mut out = Vec::new();
        generate(&mut out, "gensort", 20_000, 1, true).unwrap();
        let keys: Vec<&[u8]> = out.chunks(100).map(|r| &r[..10]).collect();
        let prefixed = keys.iter().filter(|k| k[..2] == SKEW_PREFIX).count();
        assert!((4000..6000).contains(&prefixed), "{prefixed}");
        let mut sorted = keys.clone();
        sorted.sort();
        let dups = sorted.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(dups > 400, "{dups}");
    }

    #[test]
    fn lines_are_printable_with_three_fields() {
        let mut out = Vec::new();
        let fig = generate(&mut out, "lines", 5000, 3, true).unwrap();
        assert_eq!(fig.bytes, out.len() as u64);
        let text = String::from_utf8(out).unwrap();
        let mut n = 0;
        for line in text.lines() {
            n += 1;
            assert_eq!(line.split('\t').count(), 3, "{line:?}");
            assert!(line
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)));
        }
        assert_eq!(n, 5000);
        let mut fig2 = Figures::default();
        for line in text.lines() {
            fig2.add(line.as_bytes(), line.len() + 1);
        }
        assert_eq!(fig, fig2);
    }
}
