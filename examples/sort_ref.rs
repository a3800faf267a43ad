//! References for the distributed-sort benchmark (`scripts/bench-sort.sh`).
//!
//! ```text
//! sort-ref gen-ascii RECORDS FILE [SEED]   # 100-byte ASCII gensort-style records (like `gensort -a`)
//! sort-ref sort IN OUT                     # single-process, in-memory sort of 100-byte records
//! ```
//!
//! ASCII records (printable 10-byte key, "\r\n" at the end) are valid input for both
//! `ringflow sort --format gensort` (fixed 100-byte records) and `LC_ALL=C sort` (lines),
//! and both orders agree: key bytes first, then the rest of the record.

use std::io::{BufWriter, Read, Write};
use std::time::Instant;

const RECORD: usize = 100;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn gen_ascii(records: u64, path: &str, seed: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut s = seed;
    let mut rec = [0u8; RECORD];
    for row in 0..records {
        for b in rec.iter_mut().take(10) {
            *b = b' ' + (splitmix(&mut s) % 95) as u8;
        }
        rec[10] = b' ';
        rec[11] = b' ';
        let id = format!("{row:032X}");
        rec[12..44].copy_from_slice(id.as_bytes());
        rec[44] = b' ';
        rec[45] = b' ';
        let fill = b"0123456789ABCDEF"[(row % 16) as usize];
        rec[46..98].fill(fill);
        rec[98] = b'\r';
        rec[99] = b'\n';
        out.write_all(&rec)?;
    }
    out.flush()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn sort_file(input: &str, output: &str) -> std::io::Result<()> {
    let t = Instant::now();
    let mut data = Vec::new();
    std::fs::File::open(input)?.read_to_end(&mut data)?;
    if data.len() % RECORD != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a whole number of 100-byte records",
        ));
    }
    let n = data.len() / RECORD;
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let rec = |i: u32| &data[i as usize * RECORD..(i as usize + 1) * RECORD];
    idx.sort_unstable_by(|a, b| rec(*a).cmp(rec(*b)));
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?);
    for i in idx {
        out.write_all(rec(i))?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    println!(
        "sorted {n} records in {:.3} s, peak RSS {} KiB",
        t.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("gen-ascii") if args.len() >= 4 => match args[2].parse() {
            Ok(n) => gen_ascii(
                n,
                &args[3],
                args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1),
            ),
            Err(_) => {
                eprintln!("RECORDS must be a number");
                std::process::exit(2);
            }
        },
        Some("sort") if args.len() >= 4 => sort_file(&args[2], &args[3]),
        _ => {
            eprintln!("usage: sort-ref gen-ascii RECORDS FILE [SEED] | sort-ref sort IN OUT");
            std::process::exit(2);
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
