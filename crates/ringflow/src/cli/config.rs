//! `ringflow config check FILE...`: every mistake in a node's config file, with its line.
//!
//! serde stops at the first error, so the file is checked key by key: each key alone
//! (over the defaults) must deserialize, nested tables are checked key by key too, and
//! once every key is well-formed the whole config's [`problems`] (values serde accepts
//! but a node cannot run with) are located at the key they are about. Positions come
//! from `toml_edit`, which keeps the span of every key and value.
//!
//! [`problems`]: ringflow_cluster::WorkerConfig::problems

use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

use crate::{CoordinatorConfig, WorkerConfig};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report every mistake in coordinator or worker config files, each with its line
    /// (`FILE:LINE:COL: message`); exit 1 if there is any.
    Check(ConfigCheckArgs),
}

/// Which node a config file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigRole {
    /// `ringflow coordinator --config FILE`.
    Coordinator,
    /// `ringflow worker --config FILE`.
    Worker,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The node the files are for [default: told from the keys or the file name].
    #[arg(long, value_enum)]
    pub role: Option<ConfigRole>,
    /// Do not check that the certificate files the config names exist here.
    #[arg(long)]
    pub skip_files: bool,
}

/// One mistake: where (a byte range of the file, if it is in the file) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Byte range in the file; `None` for a default value the file does not set.
    pub span: Option<Range<usize>>,
    /// The dotted key, when the finding is about one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

pub fn run(c: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check(a) = c;
    let mut total = 0usize;
    for file in &a.files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                println!("{}: cannot read: {e}", file.display());
                total += 1;
                continue;
            }
        };
        let role = match a.role.or_else(|| guess_role(file, &text)) {
            Some(r) => r,
            None => {
                println!(
                    "{}: cannot tell whether this is a coordinator or a worker config: pass --role",
                    file.display()
                );
                total += 1;
                continue;
            }
        };
        let mut findings = check(&text, role, !a.skip_files);
        findings.sort_by_key(|f| f.span.as_ref().map_or(usize::MAX, |s| s.start));
        for f in &findings {
            println!("{}", render(file, &text, f));
        }
        total += findings.len();
        if findings.is_empty() {
            let what = match role {
                ConfigRole::Coordinator => "coordinator",
                ConfigRole::Worker => "worker",
            };
            println!("{}: ok ({what} configuration)", file.display());
        }
    }
    if total == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{total} problem{}", if total == 1 { "" } else { "s" });
        Ok(ExitCode::from(1))
    }
}

/// `FILE:LINE:COL: [key: ]message`, or `FILE: key: message` for a value not in the file.
fn render(file: &Path, text: &str, f: &Finding) -> String {
    let key = f
        .key
        .as_deref()
        .map(|k| format!("{k}: "))
        .unwrap_or_default();
    match &f.span {
        Some(s) => {
            let (line, col) = line_col(text, s.start);
            format!("{}:{line}:{col}: {key}{}", file.display(), f.message)
        }
        None => format!("{}: {key}{} (default value)", file.display(), f.message),
    }
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

const WORKER_KEYS: &[&str] = &["id", "coordinator", "capacity", "advertise", "dht"];
const COORDINATOR_KEYS: &[&str] = &[
    "partitions",
    "replication",
    "heartbeat_interval_ms",
    "failure_timeout_ms",
    "recovery_grace_ms",
];

fn guess_role(file: &Path, text: &str) -> Option<ConfigRole> {
    if let Ok(t) = text.parse::<toml::Table>() {
        let worker = t.keys().any(|k| WORKER_KEYS.contains(&k.as_str()));
        let coordinator = t.keys().any(|k| COORDINATOR_KEYS.contains(&k.as_str()));
        match (worker, coordinator) {
            (true, false) => return Some(ConfigRole::Worker),
            (false, true) => return Some(ConfigRole::Coordinator),
            _ => {}
        }
    }
    let name = file.file_name()?.to_string_lossy().to_lowercase();
    if name.contains("worker") {
        Some(ConfigRole::Worker)
    } else if name.contains("coordinator") {
        Some(ConfigRole::Coordinator)
    } else {
        None
    }
}

/// Every mistake in `text` as a config for `role`; with `files`, also certificate files
/// the config names that do not exist (relative paths from the current directory).
pub fn check(text: &str, role: ConfigRole, files: bool) -> Vec<Finding> {
    match role {
        ConfigRole::Coordinator => {
            check_as::<CoordinatorConfig>(text, files, |c| (c.problems(), c.tls.clone()))
        }
        ConfigRole::Worker => {
            check_as::<WorkerConfig>(text, files, |c| (c.problems(), c.tls.clone()))
        }
    }
}

fn check_as<T: DeserializeOwned>(
    text: &str,
    files: bool,
    problems: impl Fn(&T) -> (Vec<ringflow_cluster::Problem>, crate::TlsConfig),
) -> Vec<Finding> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return vec![Finding {
                span: e.span(),
                key: None,
                message: e.message().trim().to_string(),
            }]
        }
    };
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        // toml accepted it: cannot happen, but the value check below still runs.
        return whole::<T>(&table, None, files, &problems);
    };
    let mut out = Vec::new();
    check_table::<T>(&[], &table, doc.as_table(), &mut out);
    // The values of the remaining keys are checked too: without the bad keys (their
    // defaults stand in), so one run reports every mistake.
    let mut rest = table.clone();
    for f in &out {
        if let Some(k) = &f.key {
            remove_path(&mut rest, k);
        }
    }
    out.extend(whole::<T>(&rest, Some(doc.as_table()), files, &problems));
    out
}

fn remove_path(t: &mut toml::Table, dotted: &str) {
    match dotted.split_once('.') {
        None => {
            t.remove(dotted);
        }
        Some((head, tail)) => {
            if let Some(toml::Value::Table(inner)) = t.get_mut(head) {
                remove_path(inner, tail);
            }
        }
    }
}

/// Checks each key of the table at `path` alone; recurses into nested tables.
fn check_table<T: DeserializeOwned>(
    path: &[&str],
    values: &toml::Table,
    spans: &dyn toml_edit::TableLike,
    out: &mut Vec<Finding>,
) {
    for (k, v) in values {
        let mut key_path = path.to_vec();
        key_path.push(k);
        let Err(e) = wrap(&key_path, v.clone()).try_into::<T>() else {
            continue;
        };
        let before = out.len();
        // Both `[dht]` sections and inline `dht = { ... }` tables keep their spans.
        if let (toml::Value::Table(inner), Some(inner_spans)) =
            (v, spans.get(k).and_then(|i| i.as_table_like()))
        {
            check_table::<T>(&key_path, inner, inner_spans, out);
        }
        if out.len() == before {
            let (key_span, value_span) = spans_of(spans, k);
            let message = e.message().trim().to_string();
            // An unknown key is pointed at the key, a bad value at the value.
            let span = if message.starts_with("unknown field") {
                key_span.or(value_span)
            } else {
                value_span.or(key_span)
            };
            out.push(Finding {
                span,
                key: Some(key_path.join(".")),
                message: suggest(&message, k),
            });
        }
    }
}

/// The whole config's value problems, and (with `files`) missing certificate files.
fn whole<T: DeserializeOwned>(
    table: &toml::Table,
    spans: Option<&toml_edit::Table>,
    files: bool,
    problems: &impl Fn(&T) -> (Vec<ringflow_cluster::Problem>, crate::TlsConfig),
) -> Vec<Finding> {
    let cfg: T = match table.clone().try_into() {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding {
                span: None,
                key: None,
                message: e.message().trim().to_string(),
            }]
        }
    };
    let (list, tls) = problems(&cfg);
    let locate = |key: &str| spans.and_then(|s| span_of_path(s, key));
    let mut out: Vec<Finding> = list
        .into_iter()
        .map(|p| Finding {
            span: locate(&p.key),
            key: Some(p.key),
            message: p.message,
        })
        .collect();
    if files {
        for f in [
            "ca.crt".to_string(),
            format!("{}.crt", tls.name),
            format!("{}.key", tls.name),
        ] {
            let path = tls.certs_dir.join(&f);
            if !path.is_file() {
                out.push(Finding {
                    span: locate("tls.certs_dir"),
                    key: Some("tls.certs_dir".into()),
                    message: format!(
                        "{} does not exist (create it with `ringflow certs`; --skip-files skips this check)",
                        path.display()
                    ),
                });
            }
        }
    }
    out
}

/// `{a: {b: v}}` for the path `[a, b]`.
fn wrap(path: &[&str], v: toml::Value) -> toml::Table {
    let mut value = v;
    for k in path[1..].iter().rev() {
        let mut t = toml::Table::new();
        t.insert((*k).to_string(), value);
        value = toml::Value::Table(t);
    }
    let mut t = toml::Table::new();
    t.insert(path[0].to_string(), value);
    t
}

fn spans_of(t: &dyn toml_edit::TableLike, k: &str) -> (Option<Range<usize>>, Option<Range<usize>>) {
    match t.get_key_value(k) {
        Some((key, item)) => (key.span(), item.span()),
        None => (None, None),
    }
}

/// The span of the value at a dotted key (`dht.max_value`), else of its key.
fn span_of_path(t: &toml_edit::Table, dotted: &str) -> Option<Range<usize>> {
    let mut parts = dotted.split('.').peekable();
    let mut table: &dyn toml_edit::TableLike = t;
    while let Some(p) = parts.next() {
        let (key, item) = table.get_key_value(p)?;
        if parts.peek().is_none() {
            return item.span().or_else(|| key.span());
        }
        table = item.as_table_like()?;
    }
    None
}

/// Adds "did you mean" for an unknown key close to a known one.
fn suggest(message: &str, key: &str) -> String {
    let Some(expected) = message.split("expected one of ").nth(1) else {
        return message.to_string();
    };
    let best = expected
        .split(", ")
        .map(|s| s.trim_matches(|c| c == '`' || c == ' '))
        .map(|s| (edit_distance(key, s), s))
        .min();
    match best {
        Some((d, s)) if d <= 2 || (d <= 3 && key.len() > 8) => {
            format!("{message} (did you mean `{s}`?)")
        }
        _ => message.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, role: ConfigRole) -> Vec<String> {
        check(text, role, false)
            .iter()
            .map(|f| render(Path::new("f.toml"), text, f))
            .collect()
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = "\
cluster = \"prod\"
id = \"w/1\"
capacty = 2
listen = \"not-an-address\"
max_frame = \"big\"

[dht]
max_key = 0
resp_listn = \"127.0.0.1:6380\"
";
        let got = lines(text, ConfigRole::Worker);
        let joined = got.join("\n");
        assert!(
            got.iter()
                .any(|l| l.starts_with("f.toml:3:1: capacty: unknown field")
                    && l.contains("did you mean `capacity`?")),
            "{joined}"
        );
        assert!(
            got.iter().any(|l| l.starts_with("f.toml:4:10: listen:")),
            "{joined}"
        );
        assert!(
            got.iter().any(|l| l.starts_with("f.toml:5:13: max_frame:")),
            "{joined}"
        );
        assert!(
            got.iter().any(
                |l| l.starts_with("f.toml:9:1: dht.resp_listn: unknown field")
                    && l.contains("did you mean `resp_listen`?")
            ),
            "{joined}"
        );
        // Values serde accepts but a worker cannot run with, in the same run.
        assert!(
            got.iter().any(|l| l.starts_with("f.toml:2:6: id:")),
            "{joined}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("f.toml:8:11: dht.max_key:")),
            "{joined}"
        );
        assert_eq!(got.len(), 6, "{joined}");
    }

    #[test]
    fn syntax_errors_name_the_line_and_good_files_pass() {
        let got = lines("cluster = \"a\"\npartitions = [\n", ConfigRole::Coordinator);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("f.toml:"), "{got:?}");
        let got = lines(
            "partitions = 64\nheartbeat_interval_ms = 500\nfailure_timeout_ms = 600\n",
            ConfigRole::Coordinator,
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("f.toml:3:22: failure_timeout_ms:"),
            "{got:?}"
        );
        assert!(lines("partitions = 64\n", ConfigRole::Coordinator).is_empty());
    }

    #[test]
    fn shipped_configs_check_clean_and_roles_are_told_apart() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config");
        for (f, role) in [
            ("coordinator.toml", ConfigRole::Coordinator),
            ("worker.toml", ConfigRole::Worker),
        ] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert_eq!(guess_role(Path::new(f), &text), Some(role));
            assert_eq!(lines(&text, role), Vec::<String>::new(), "{f}");
        }
        assert_eq!(guess_role(Path::new("x.toml"), "cluster = \"a\""), None);
    }

    #[test]
    fn missing_certificates_are_reported_at_certs_dir() {
        let text = "id = \"w1\"\n[tls]\ncerts_dir = \"/nonexistent/certs\"\nname = \"w1\"\n";
        let got: Vec<String> = check(text, ConfigRole::Worker, true)
            .iter()
            .map(|f| render(Path::new("f.toml"), text, f))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter()
                .all(|l| l.starts_with("f.toml:3:13: tls.certs_dir:")),
            "{got:?}"
        );
    }
}
