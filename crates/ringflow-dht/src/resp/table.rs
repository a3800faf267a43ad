//! The command table: every command and subcommand the gateway knows, with Redis's arity,
//! flags and key positions (what `COMMAND` reports and cluster clients route by).

use ringflow_resp::{Command, Reply};

use super::reply::{shown, unknown_command, wrong_args};

/// A command as `COMMAND` describes it.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Lowercase name.
    pub(crate) name: &'static str,
    /// Redis arity: `n` exactly `n` arguments (name included), `-n` at least `n`.
    pub(crate) arity: i64,
    /// Redis's command flags.
    pub(crate) flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub(crate) first_key: i64,
    /// Position of the last key (-1: the last argument).
    pub(crate) last_key: i64,
    /// Step between keys.
    pub(crate) step: i64,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);

/// Every command the gateway knows.
pub(crate) static COMMANDS: &[Spec] = &[
    spec("get", 2, &["readonly", "fast"], (1, 1, 1)),
    spec("set", -3, &["write", "denyoom"], (1, 1, 1)),
    spec("del", -2, &["write"], (1, -1, 1)),
    spec("unlink", -2, &["write", "fast"], (1, -1, 1)),
    spec("exists", -2, &["readonly", "fast"], (1, -1, 1)),
    spec("mget", -2, &["readonly", "fast"], (1, -1, 1)),
    spec("mset", -3, &["write", "denyoom"], (1, -1, 2)),
    spec("strlen", 2, &["readonly", "fast"], (1, 1, 1)),
    spec("ping", -1, &["fast"], NO_KEYS),
    spec("echo", 2, &["fast"], NO_KEYS),
    spec(
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast"],
        NO_KEYS,
    ),
    spec("select", 2, &["loading", "stale", "fast"], NO_KEYS),
    spec("dbsize", 1, &["readonly", "fast"], NO_KEYS),
    spec("info", -1, &["loading", "stale"], NO_KEYS),
    spec("command", -1, &["loading", "stale"], NO_KEYS),
    spec("config", -2, &["admin", "loading", "stale"], NO_KEYS),
    spec(
        "hello",
        -1,
        &["noauth", "loading", "stale", "fast"],
        NO_KEYS,
    ),
    spec("auth", -2, &["noauth", "loading", "stale", "fast"], NO_KEYS),
    spec("client", -2, &["loading", "stale"], NO_KEYS),
    spec("cluster", -2, &[], NO_KEYS),
    spec("readonly", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("readwrite", 1, &["loading", "stale", "fast"], NO_KEYS),
    spec("asking", 1, &["fast"], NO_KEYS),
];

/// Subcommands: (command, subcommand, arity counted from the command name).
static SUBCOMMANDS: &[(&str, &str, i64)] = &[
    ("cluster", "keyslot", 3),
    ("cluster", "info", 2),
    ("cluster", "myid", 2),
    ("cluster", "slots", 2),
    ("cluster", "shards", 2),
    ("cluster", "nodes", 2),
    ("cluster", "help", 2),
    ("config", "get", -3),
    ("config", "set", -4),
    ("config", "resetstat", 2),
    ("config", "help", 2),
    ("client", "setinfo", 4),
    ("client", "setname", 3),
    ("client", "getname", 2),
    ("client", "id", 2),
    ("client", "info", 2),
    ("client", "help", 2),
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "info", -2),
    ("command", "list", -2),
    ("command", "help", 2),
];

fn arity_ok(arity: i64, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The command's table entry, or the error Redis sends for an unknown command or a wrong
/// number of arguments.
pub(crate) fn lookup(cmd: &Command) -> Result<&'static Spec, Reply> {
    let spec = COMMANDS
        .iter()
        .find(|s| cmd.is(s.name))
        .ok_or_else(|| unknown_command(cmd))?;
    if arity_ok(spec.arity, cmd.len()) {
        Ok(spec)
    } else {
        Err(wrong_args(spec.name))
    }
}

/// How many keys a command of `spec` with `argc` arguments (its name included) names,
/// by the table's key positions.
pub(crate) fn key_count(spec: &Spec, argc: usize) -> usize {
    let (Ok(first), Ok(step)) = (usize::try_from(spec.first_key), usize::try_from(spec.step))
    else {
        return 0;
    };
    if first == 0 || step == 0 || argc <= first {
        return 0;
    }
    let last = match usize::try_from(spec.last_key) {
        Ok(last) => last.min(argc - 1),
        // Counted from the end: -1 is the last argument.
        Err(_) => {
            argc.saturating_sub(usize::try_from(spec.last_key.unsigned_abs()).unwrap_or(argc))
        }
    };
    if last < first {
        return 0;
    }
    (last - first) / step + 1
}

/// The lowercase subcommand of `cmd` (a `parent` command), or its error.
pub(crate) fn subcommand(cmd: &Command, parent: &str) -> Result<&'static str, Reply> {
    let sub = cmd.arg(1).unwrap_or_default();
    let (_, name, arity) = SUBCOMMANDS
        .iter()
        .find(|(p, s, _)| *p == parent && sub.eq_ignore_ascii_case(s.as_bytes()))
        .ok_or_else(|| {
            Reply::Error(format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                shown(sub, 128),
                parent.to_ascii_uppercase()
            ))
        })?;
    if arity_ok(*arity, cmd.len()) {
        Ok(name)
    } else {
        Err(wrong_args(&format!("{parent}|{name}")))
    }
}
