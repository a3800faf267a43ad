//! Single-threaded references for `scripts/bench-stream.sh`, and its corpus generator.
//!
//! ```text
//! bench-stream-ref gen DIR LINES FILES     # deterministic text: ~10 words a line, FILES files
//! bench-stream-ref wordcount DIR [RUNS]    # lines → words (split on non-alphanumeric,
//!                                          # lowercased) → counts in a HashMap
//! bench-stream-ref pipeline DIR SUBSTRING [RUNS]   # lines → lowercase → keep if it
//!                                                  # contains SUBSTRING → count
//! ```
//!
//! The two references do the work of the `wordcount` and `pipeline` jobs of the benchmark
//! with the semantics of the built-ins (`source.files` lines without their line ending,
//! invalid UTF-8 replaced; `flat_map split_words`; `map lowercase`; `filter contains`),
//! in one plain loop on one thread: no records, no batches, no queues. Each run reads the
//! files again (from the page cache after the first). They print one JSON object with
//! the result (for checking the ringflow jobs against) and the seconds of every run.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench-stream-ref gen DIR LINES FILES\n       \
         bench-stream-ref wordcount DIR [RUNS]\n       \
         bench-stream-ref pipeline DIR SUBSTRING [RUNS]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> Option<u64> {
        match args.get(i) {
            None => Some(default),
            Some(s) => s.parse().ok(),
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("gen") if args.len() == 4 => match (num(2, 0), num(3, 0)) {
            (Some(lines), Some(files)) if files > 0 => gen(Path::new(&args[1]), lines, files),
            _ => return usage(),
        },
        Some("wordcount") if (2..=3).contains(&args.len()) => match num(2, 3) {
            Some(runs) if runs > 0 => wordcount(Path::new(&args[1]), runs),
            _ => return usage(),
        },
        Some("pipeline") if (3..=4).contains(&args.len()) => match num(3, 3) {
            Some(runs) if runs > 0 => pipeline(Path::new(&args[1]), &args[2], runs),
            _ => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// corpus

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const VOCABULARY: u64 = 50_000;
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qu", "an", "el", "or", "is", "um",
    "bra", "sto", "fen", "gil", "dar", "wen", "tho", "pri", "cla", "mus",
];

/// Word `i` of the vocabulary: 1 to 4 syllables, a pure function of `i`.
fn word(i: u64) -> String {
    let mut r = Rng(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n = 1 + r.below(4);
    let mut w = String::new();
    for _ in 0..n {
        w.push_str(SYLLABLES[r.below(SYLLABLES.len() as u64) as usize]);
    }
    if i % 7 == 0 {
        // Some words carry digits, as tokens in real logs do.
        w.push_str(&(i % 100).to_string());
    }
    w
}

/// Writes `lines` lines of 6 to 14 words (10 on average) into `files` files
/// `part-NNN.txt`. Words are drawn log-uniformly from a vocabulary of 50,000 (a few
/// very frequent words, a long tail); a line starts with a capital, has commas, ends
/// with `.`, `!` or `?`; one word in 40 is capitalized, one line in 50 carries an
/// `é`/`ß` word, so lowercasing and splitting see Unicode.
fn gen(dir: &Path, lines: u64, files: u64) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let vocab: Vec<String> = (0..VOCABULARY).map(word).collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let per_file = lines.div_ceil(files);
    let mut written = 0;
    let mut bytes = 0u64;
    for f in 0..files {
        let path: PathBuf = dir.join(format!("part-{f:03}.txt"));
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut line = String::new();
        for _ in 0..per_file.min(lines - written) {
            line.clear();
            let n = 6 + rng.below(9);
            for k in 0..n {
                // Log-uniform rank: P(rank < r) = ln(r) / ln(V).
                let rank = ((VOCABULARY as f64).powf(rng.unit()) as u64).min(VOCABULARY) - 1;
                let w = &vocab[rank as usize];
                if k == 0 || rng.below(40) == 0 {
                    let mut c = w.chars();
                    if let Some(first) = c.next() {
                        line.extend(first.to_uppercase());
                        line.push_str(c.as_str());
                    }
                } else {
                    line.push_str(w);
                }
                if k + 1 < n {
                    line.push_str(if rng.below(8) == 0 { ", " } else { " " });
                }
            }
            if rng.below(50) == 0 {
                line.push_str(if rng.below(2) == 0 {
                    " Café"
                } else {
                    " straße"
                });
            }
            line.push(['.', '!', '?'][rng.below(3) as usize]);
            line.push('\n');
            out.write_all(line.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            bytes += line.len() as u64;
            written += 1;
        }
        out.flush()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "{{\"lines\": {written}, \"bytes\": {bytes}, \"files\": {files}, \"dir\": \"{}\"}}",
        dir.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// references

/// The files `source.files` reads, in its order (regular files, name order, hidden and
/// `.tmp` names skipped).
fn listing(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") {
            continue;
        }
        if e.file_type().map_err(|e| e.to_string())?.is_file() {
            v.push(e.path());
        }
    }
    v.sort();
    Ok(v)
}

/// Calls `f` with every line of the files (line ending removed, invalid UTF-8 replaced).
fn for_each_line(files: &[PathBuf], mut f: impl FnMut(&str)) -> Result<(), String> {
    let mut raw = Vec::with_capacity(256);
    for path in files {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut r = BufReader::with_capacity(64 * 1024, file);
        loop {
            raw.clear();
            let n = r
                .read_until(b'\n', &mut raw)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            let mut end = raw.len();
            if raw[end - 1] == b'\n' {
                end -= 1;
                if end > 0 && raw[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            match std::str::from_utf8(&raw[..end]) {
                Ok(s) => f(s),
                Err(_) => f(&String::from_utf8_lossy(&raw[..end])),
            }
        }
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn secs_json(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("{s:.4}")).collect();
    format!("[{}]", parts.join(", "))
}

fn wordcount(dir: &Path, runs: u64) -> Result<(), String> {
    let files = listing(dir)?;
    let mut times = Vec::new();
    let (mut lines, mut words, mut distinct, mut top) = (0u64, 0u64, 0usize, (String::new(), 0));
    for _ in 0..runs {
        let start = Instant::now();
        let mut counts: HashMap<String, u64> = HashMap::new();
        let (mut l, mut w) = (0u64, 0u64);
        for_each_line(&files, |line| {
            l += 1;
            for word in line.split(|c: char| !c.is_alphanumeric()) {
                if !word.is_empty() {
                    w += 1;
                    *counts.entry(word.to_lowercase()).or_default() += 1;
                }
            }
        })?;
        times.push(start.elapsed().as_secs_f64());
        (lines, words, distinct) = (l, w, counts.len());
        if let Some((k, n)) = counts
            .iter()
            .max_by_key(|(k, n)| (**n, std::cmp::Reverse(*k)))
        {
            top = (k.clone(), *n);
        }
    }
    println!(
        "{{\"lines\": {lines}, \"words\": {words}, \"distinct\": {distinct}, \"top\": [\"{}\", {}], \
         \"median_secs\": {:.4}, \"secs\": {}}}",
        top.0,
        top.1,
        median(&times),
        secs_json(&times)
    );
    Ok(())
}

fn pipeline(dir: &Path, substring: &str, runs: u64) -> Result<(), String> {
    let files = listing(dir)?;
    let mut times = Vec::new();
    let (mut lines, mut kept, mut kept_bytes) = (0u64, 0u64, 0u64);
    for _ in 0..runs {
        let start = Instant::now();
        let (mut l, mut k, mut b) = (0u64, 0u64, 0u64);
        for_each_line(&files, |line| {
            l += 1;
            let lower = line.to_lowercase();
            if lower.contains(substring) {
                k += 1;
                b += lower.len() as u64;
            }
        })?;
        times.push(start.elapsed().as_secs_f64());
        (lines, kept, kept_bytes) = (l, k, b);
    }
    println!(
        "{{\"lines\": {lines}, \"kept\": {kept}, \"kept_bytes\": {kept_bytes}, \
         \"median_secs\": {:.4}, \"secs\": {}}}",
        median(&times),
        secs_json(&times)
    );
    Ok(())
}
