//! `ringflow sort --verify DIR|FILE`: global order across the parts, record count and
//! the multiset checksum, against the manifest's input figures or figures recomputed
//! from `--input` files. Needs no cluster.

use std::cmp::Ordering;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ringflow_ops::sort::{cmp_records, record_checksum, Format, RecordReader, SortRecord};
use serde_json::json;

use super::{show_key, Manifest, MANIFEST};
use crate::cli::SortArgs;

/// Count, bytes and checksum of records read from files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    records: u64,
    checksum: u64,
}

impl Tally {
    fn add(&mut self, r: &SortRecord) {
        self.records += 1;
        self.checksum = self
            .checksum
            .wrapping_add(u64::from(record_checksum(&r.data)));
    }
}

/// Where the order first breaks.
struct OrderBreak {
    file: String,
    index: u64,
    global: u64,
    key: Vec<u8>,
    prev_file: String,
    prev_index: u64,
    prev_key: Vec<u8>,
    same_key: bool,
}

pub fn run(a: &SortArgs, target: &Path) -> anyhow::Result<ExitCode> {
    match verify(a, target) {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report.json)?);
            }
            if report.problems.is_empty() {
                if !a.json {
                    println!("{}", report.summary);
                }
                Ok(ExitCode::SUCCESS)
            } else {
                if !a.json {
                    println!("{}", report.summary);
                }
                for p in &report.problems {
                    eprintln!("error: {p}");
                }
                Ok(ExitCode::from(1))
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

struct Report {
    summary: String,
    problems: Vec<String>,
    json: serde_json::Value,
}

fn verify(a: &SortArgs, target: &Path) -> anyhow::Result<Report> {
    let meta = std::fs::metadata(target).with_context(|| format!("{}", target.display()))?;
    let manifest = if meta.is_dir() {
        Some(Manifest::load(target)?)
    } else {
        None
    };
    let mut problems = Vec::new();

    // The format: the manifest's, else the flags'.
    let (format_name, key_field, delimiter) = match &manifest {
        Some(m) => {
            if let Some(f) = &a.format {
                if *f != m.format {
                    problems.push(format!(
                        "--format {f} differs from the manifest's format {}",
                        m.format
                    ));
                }
            }
            if a.key_field.is_some() && a.key_field != m.key_field {
                problems.push(format!(
                    "--key-field {:?} differs from the manifest's {:?}",
                    a.key_field, m.key_field
                ));
            }
            (m.format.clone(), m.key_field, m.delimiter.clone())
        }
        None => (
            a.format.clone().unwrap_or_else(|| "gensort".into()),
            a.key_field,
            a.delimiter.clone().unwrap_or_else(|| "\t".into()),
        ),
    };
    let format =
        Format::parse(&format_name, key_field, &delimiter).map_err(|e| anyhow::anyhow!("{e}"))?;

    // The files, in order.
    let files: Vec<(String, PathBuf, Option<u64>)> = match &manifest {
        Some(m) => m
            .parts
            .iter()
            .map(|p| (p.file.clone(), target.join(&p.file), p.records))
            .collect(),
        None => vec![(target.display().to_string(), target.to_path_buf(), None)],
    };

    // Order, count and checksum of the output.
    let mut out = Tally::default();
    let mut prev: Option<(SortRecord, String, u64)> = None;
    let mut first_break: Option<OrderBreak> = None;
    let mut breaks = 0u64;
    let mut part_counts = Vec::new();
    for (name, path, expected) in &files {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                part_counts.push(json!({ "file": name, "records": null }));
                continue;
            }
        };
        let mut reader = RecordReader::new(f, format);
        let mut index = 0u64;
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    break;
                }
            };
            out.add(&rec);
            if let Some((p, pfile, pindex)) = &prev {
                if cmp_records(p, &rec) == Ordering::Greater {
                    breaks += 1;
                    if first_break.is_none() {
                        first_break = Some(OrderBreak {
                            file: name.clone(),
                            index,
                            global: out.records - 1,
                            key: rec.key().to_vec(),
                            prev_file: pfile.clone(),
                            prev_index: *pindex,
                            prev_key: p.key().to_vec(),
                            same_key: p.key() == rec.key(),
                        });
                    }
                }
            }
            prev = Some((rec, name.clone(), index));
            index += 1;
        }
        if let Some(exp) = expected {
            if *exp != index {
                problems.push(format!(
                    "{name} holds {index} records, the manifest says {exp}"
                ));
            }
        }
        part_counts.push(json!({ "file": name, "records": index }));
    }
    if let Some(b) = &first_break {
        let what = if b.same_key {
            format!(
                "both have key {}, and its data sorts before the previous record's",
                show_key(&format_name, &b.key)
            )
        } else {
            format!(
                "key {} sorts before the previous key {}",
                show_key(&format_name, &b.key),
                show_key(&format_name, &b.prev_key)
            )
        };
        let prev_at = if b.prev_file == b.file {
            format!("record {}", b.prev_index)
        } else {
            format!("{} record {}", b.prev_file, b.prev_index)
        };
        problems.insert(
            0,
            format!(
                "order broken in {} at record {} (0-based; record {} overall), after {}: {}{}",
                b.file,
                b.index,
                b.global,
                prev_at,
                what,
                if breaks > 1 {
                    format!(" ({breaks} breaks in all)")
                } else {
                    String::new()
                }
            ),
        );
    }

    // The expected figures: recomputed from --input, else the manifest's input.
    let expected = if !a.input.is_empty() {
        let mut t = Tally::default();
        for p in &a.input {
            for f in input_files(p)? {
                let file = File::open(&f).with_context(|| format!("{}", f.display()))?;
                for r in RecordReader::new(file, format) {
                    let r = r.with_context(|| format!("{}", f.display()))?;
                    t.add(&r);
                }
            }
        }
        // --local: every worker read every input whole.
        if let Some(m) = manifest.as_ref().filter(|m| m.inputs.local) {
            let w = m.run.workers.len() as u64;
            t.records *= w;
            t.checksum = t.checksum.wrapping_mul(w);
        }
        Some((t, "the input files"))
    } else {
        manifest.as_ref().map(|m| {
            (
                Tally {
                    records: m.input.records,
                    checksum: m.input.checksum,
                },
                "the manifest's input figures",
            )
        })
    };
    if let Some((exp, source)) = &expected {
        if exp.records != out.records {
            problems.push(format!(
                "record count {} differs from {source}: {} ({} {})",
                out.records,
                exp.records,
                if out.records > exp.records { "+" } else { "-" },
                out.records.abs_diff(exp.records)
            ));
        }
        if exp.checksum != out.checksum {
            problems.push(format!(
                "checksum {:016x} differs from {source}: {:016x} (records lost, added or changed)",
                out.checksum, exp.checksum
            ));
        }
    }

    let against = match &expected {
        Some((_, source)) => format!("count and checksum match {source}"),
        None => "no input figures to compare with (pass --input)".to_string(),
    };
    let summary = if problems.is_empty() {
        format!(
            "OK: {} records in {} file(s), globally sorted ({}{}); checksum {:016x}; {}",
            out.records,
            files.len(),
            format_name,
            key_field
                .map(|k| format!(", key field {k}"))
                .unwrap_or_default(),
            out.checksum,
            against
        )
    } else {
        format!(
            "INVALID: {} records in {} file(s), checksum {:016x}; {} problem(s)",
            out.records,
            files.len(),
            out.checksum,
            problems.len()
        )
    };
    let json = json!({
        "ok": problems.is_empty(),
        "target": target.display().to_string(),
        "manifest": manifest.as_ref().map(|_| target.join(MANIFEST).display().to_string()),
        "format": format_name,
        "key_field": key_field,
        "records": out.records,
        "checksum": format!("{:016x}", out.checksum),
        "order_breaks": breaks,
        "parts": part_counts,
        "expected": expected.map(|(t, source)| json!({
            "records": t.records,
            "checksum": format!("{:016x}", t.checksum),
            "from": source,
        })),
        "problems": problems,
    });
    Ok(Report {
        summary,
        problems,
        json,
    })
}

/// A file, or the regular files of a directory in name order (names starting with `.`
/// or ending in `.tmp` skipped), as `source.sortfile` lists them.
fn input_files(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
    if !meta.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(p)
        .with_context(|| format!("{}", p.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.is_file())
        .filter(|f| {
            !f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') || n.ends_with(".tmp"))
        })
        .collect();
    files.sort();
    Ok(files)
}
