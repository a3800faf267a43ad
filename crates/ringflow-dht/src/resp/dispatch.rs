//! Runs one command: looks it up in the table, then hands it to its family's handler.

use ringflow_resp::{Command, Reply};

use super::cmd::cluster::cluster;
use super::cmd::connection::{auth, client, hello, select};
use super::cmd::keys::{del, exists};
use super::cmd::server::{command, config, info};
use super::cmd::strings::{get, mget, mset, set, strlen};
use super::reply::{reply_cap, too_many_keys, unknown_command, wrong_args};
use super::session::{Session, Shared};
use super::table::{key_count, lookup};
use super::Node;
use crate::batch::Router;

/// What a command asks of its connection.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Send the reply and go on.
    Reply(Reply),
    /// Send the reply and close.
    Close(Reply),
}

/// Runs one command: a command naming more than `max_keys_per_command` keys is refused
/// before anything of it is done.
pub(crate) async fn execute<S: Node + Router>(
    service: &S,
    shared: &Shared,
    session: &mut Session,
    cmd: Command,
) -> Outcome {
    let spec = match lookup(&cmd) {
        Ok(spec) => spec,
        Err(reply) => return Outcome::Reply(reply),
    };
    let cfg = service.config();
    let keys = key_count(spec, cmd.len());
    if keys > cfg.max_keys_per_command {
        let max = cfg.max_keys_per_command;
        return Outcome::Reply(too_many_keys(spec.name, keys, max));
    }
    let cap = reply_cap(cfg);
    let reply = match spec.name {
        "get" => get(service, cmd, cap).await,
        "set" => set(service, cmd).await,
        "del" | "unlink" => del(service, cmd).await,
        "exists" => exists(service, cmd).await,
        "mget" => mget(service, cmd, cap).await,
        "mset" => mset(service, cmd).await,
        "strlen" => strlen(service, cmd).await,
        _ => return local_command(service, shared, session, spec.name, &cmd),
    };
    Outcome::Reply(reply)
}

/// Commands answered from local state only.
pub(crate) fn local_command(
    node: &dyn Node,
    shared: &Shared,
    s: &mut Session,
    name: &str,
    cmd: &Command,
) -> Outcome {
    let reply = match name {
        "quit" => return Outcome::Close(Reply::ok()),
        "ping" => match (cmd.arg(1), cmd.len()) {
            (_, 3..) => wrong_args("ping"),
            (Some(msg), _) => Reply::Bulk(msg.to_vec()),
            (None, _) => Reply::Simple("PONG".into()),
        },
        "echo" => Reply::Bulk(cmd.arg(1).unwrap_or_default().to_vec()),
        "select" => select(cmd),
        "dbsize" => Reply::Integer(i64::try_from(node.stored_entries()).unwrap_or(i64::MAX)),
        "readonly" | "readwrite" | "asking" => Reply::ok(),
        "auth" => auth(cmd),
        "hello" => hello(s, cmd),
        "client" => client(s, cmd),
        "info" => info(node, shared, s, cmd),
        "command" => command(cmd),
        "config" => config(cmd),
        "cluster" => cluster(node, s, cmd),
        other => unknown_command(&Command::new(vec![other.as_bytes().to_vec()])),
    };
    Outcome::Reply(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;

    #[test]
    fn arity_and_unknown_commands_use_redis_texts() {
        let f = fixture(None);
        let mut s = session();
        assert_eq!(
            reply(&f, &mut s, &["get"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["GET", "a", "b"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["FOO", "a", "b"]),
            err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
        );
        assert_eq!(
            reply(&f, &mut s, &["foo"]),
            err("ERR unknown command 'foo', with args beginning with: ")
        );
        assert_eq!(
            reply(&f, &mut s, &["cluster", "bogus"]),
            err("ERR unknown subcommand 'bogus'. Try CLUSTER HELP.")
        );
        assert_eq!(
            reply(&f, &mut s, &["config", "get"]),
            err("ERR wrong number of arguments for 'config|get' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["cluster", "keyslot"]),
            err("ERR wrong number of arguments for 'cluster|keyslot' command")
        );
        assert!(lookup(&cmd(&["mset", "a"])).is_err());
        assert!(lookup(&cmd(&["MSET", "a", "1"])).is_ok());
        assert!(lookup(&cmd(&["del"])).is_err());
        assert!(lookup(&cmd(&["PiNg"])).is_ok());
        // A long unknown command stays bounded.
        let long = "x".repeat(10_000);
        match reply(&f, &mut s, &[&long, &long, &long]) {
            Reply::Error(e) => assert!(e.len() < 400, "{}", e.len()),
            other => panic!("{other:?}"),
        }
    }
}
