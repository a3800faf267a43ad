//! Server commands: `INFO`, `COMMAND ...`, `CONFIG GET | SET | RESETSTAT`.

use ringflow_resp::{Command, Reply};

use crate::resp::reply::{bulk, count, help, text};
use crate::resp::session::{Session, Shared};
use crate::resp::table::{subcommand, Spec, COMMANDS};
use crate::resp::{Node, REDIS_VERSION};

/// `INFO [section ...]`: server, clients, replication, cluster and keyspace.
pub(crate) fn info(node: &dyn Node, shared: &Shared, s: &Session, cmd: &Command) -> Reply {
    let wanted: Vec<String> = cmd
        .args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let want = |name: &str| all || wanted.iter().any(|w| w == name);
    let mut sections: Vec<String> = Vec::new();
    if want("server") {
        sections.push(format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nringflow_version:{}\r\n\
             redis_mode:cluster\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{}\r\nworker_id:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            s.local.map_or(0, |a| a.port()),
            shared.started.elapsed().as_secs(),
            node.id().0,
        ));
    }
    if want("clients") {
        sections.push(format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            shared.clients.get(),
            node.config().max_clients
        ));
    }
    if want("stats") {
        sections.push(format!(
            "# Stats\r\nrejected_connections:{}\r\n",
            shared.rejected.get()
        ));
    }
    if want("replication") {
        sections.push("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n".into());
    }
    if want("cluster") {
        sections.push("# Cluster\r\ncluster_enabled:1\r\n".into());
    }
    if want("keyspace") {
        sections.push(format!(
            "# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
            node.stored_entries()
        ));
    }
    text(sections.join("\r\n"))
}

pub(crate) fn command(cmd: &Command) -> Reply {
    if cmd.len() == 1 {
        return Reply::Array(COMMANDS.iter().map(command_entry).collect());
    }
    let sub = match subcommand(cmd, "command") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "count" => count(COMMANDS.len()),
        // Documentation is optional; redis-cli asks for it at start-up.
        "docs" => Reply::Map(vec![]),
        "info" => Reply::Array(
            cmd.args
                .iter()
                .skip(2)
                .map(|n| {
                    COMMANDS
                        .iter()
                        .find(|s| n.eq_ignore_ascii_case(s.name.as_bytes()))
                        .map_or(Reply::NullArray, command_entry)
                })
                .collect(),
        ),
        "list" => Reply::Array(COMMANDS.iter().map(|s| bulk(s.name)).collect()),
        _ => help(&[
            "COMMAND <subcommand> [<arg> ...]. Subcommands are:",
            "(no subcommand), COUNT, DOCS, INFO [<name> ...], LIST, HELP",
        ]),
    }
}

/// One command in Redis 7's `COMMAND` shape (what cluster clients read key positions from).
fn command_entry(spec: &Spec) -> Reply {
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Integer(spec.arity),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// The configuration `CONFIG GET` reports (fixed: nothing here is configurable over RESP).
static CONFIG: &[(&str, &str)] = &[
    ("appendonly", "no"),
    ("cluster-enabled", "yes"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("save", ""),
    ("timeout", "0"),
];

pub(crate) fn config(cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "config") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "get" => config_get(cmd.args.iter().skip(2).map(Vec::as_slice)),
        "set" => Reply::Error("ERR CONFIG SET is not supported by ringflow".into()),
        "resetstat" => Reply::ok(),
        _ => help(&[
            "CONFIG <subcommand> [<arg> ...]. Subcommands are:",
            "GET <pattern> [<pattern> ...], RESETSTAT, HELP",
        ]),
    }
}

fn config_get<'a>(patterns: impl Iterator<Item = &'a [u8]>) -> Reply {
    let patterns: Vec<Vec<u8>> = patterns.map(|p| p.to_ascii_lowercase()).collect();
    Reply::Map(
        CONFIG
            .iter()
            .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
            .map(|(name, value)| (bulk(name), bulk(value)))
            .collect(),
    )
}

/// Redis-style glob: `*`, `?` and `\` escapes (no `[...]` classes).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'\\') if pattern.get(p + 1) == text.get(t) && p + 1 < pattern.len() => {
                p += 2;
                t += 1;
                continue;
            }
            Some(c) if *c != b'\\' && Some(c) == text.get(t) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;

    #[test]
    fn server_commands() {
        let f = fixture(Some(three(1024, 3)));
        let mut s = session();
        match reply(&f, &mut s, &["info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(
                    text.starts_with("# Server\r\nredis_version:7.2.0\r\n"),
                    "{text}"
                );
                assert!(text.contains("\r\nredis_mode:cluster\r\n"), "{text}");
                assert!(text.contains("\r\ntcp_port:6380\r\n"), "{text}");
                assert!(text.contains("# Keyspace\r\ndb0:keys=7,"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["INFO", "clients"]) {
            Reply::Verbatim { text, .. } => {
                assert_eq!(
                    text,
                    "# Clients\r\nconnected_clients:1\r\nmaxclients:10000\r\n"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reply(&f, &mut s, &["config", "get", "save"]),
            Reply::Map(vec![(bulk("save"), bulk(""))])
        );
        assert_eq!(
            reply(&f, &mut s, &["CONFIG", "GET", "AppendOnly"]),
            Reply::Map(vec![(bulk("appendonly"), bulk("no"))])
        );
        assert_eq!(
            reply(&f, &mut s, &["config", "get", "nothing-*"]),
            Reply::Map(vec![])
        );
        match reply(&f, &mut s, &["config", "get", "max*", "save"]) {
            Reply::Map(p) => assert_eq!(p.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(&f, &mut s, &["config", "set", "save", ""]),
            Reply::Error(_)
        ));
        assert_eq!(
            reply(&f, &mut s, &["command", "count"]),
            count(COMMANDS.len())
        );
        assert_eq!(reply(&f, &mut s, &["command", "docs"]), Reply::Map(vec![]));
        match reply(&f, &mut s, &["command"]) {
            Reply::Array(items) => assert_eq!(items.len(), COMMANDS.len()),
            other => panic!("{other:?}"),
        }
        match reply(&f, &mut s, &["command", "info", "mset", "nope"]) {
            Reply::Array(items) => {
                assert_eq!(items.len(), 2);
                assert_eq!(items[1], Reply::NullArray);
                let Reply::Array(mset) = &items[0] else {
                    panic!()
                };
                assert_eq!(&mset[..2], &[bulk("mset"), Reply::Integer(-3)]);
                assert_eq!(
                    &mset[3..6],
                    &[Reply::Integer(1), Reply::Integer(-1), Reply::Integer(2)]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"save"));
        assert!(glob_match(b"sa?e", b"save"));
        assert!(glob_match(b"max*", b"maxmemory-policy"));
        assert!(glob_match(b"*policy", b"maxmemory-policy"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(!glob_match(b"save?", b"save"));
        assert!(!glob_match(b"", b"save"));
        assert!(glob_match(b"", b""));
        assert!(glob_match(b"**", b""));
    }
}
