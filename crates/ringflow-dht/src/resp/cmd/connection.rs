//! Connection commands: `SELECT`, `AUTH`, `HELLO`, `CLIENT ...`.

use ringflow_resp::{Command, ProtoVersion, Reply};

use crate::resp::reply::{
    bulk, help, id_reply, not_an_integer, parse_int, shown, syntax_error, text,
};
use crate::resp::session::Session;
use crate::resp::table::subcommand;
use crate::resp::REDIS_VERSION;

pub(crate) fn select(cmd: &Command) -> Reply {
    match cmd.arg(1).and_then(parse_int) {
        Some(0) => Reply::ok(),
        Some(_) => Reply::Error("ERR SELECT is not allowed in cluster mode".into()),
        None => not_an_integer(),
    }
}

/// No passwords are configured: user `default` is accepted with any password.
fn check_auth(user: &[u8]) -> Result<(), Reply> {
    if user == b"default" {
        Ok(())
    } else {
        Err(Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

pub(crate) fn auth(cmd: &Command) -> Reply {
    match cmd.len() {
        2 => Reply::Error(
            "ERR AUTH <password> called without any password configured for the default \
             user. Are you sure your configuration is correct?"
                .into(),
        ),
        3 => match check_auth(cmd.arg(1).unwrap_or_default()) {
            Ok(()) => Reply::ok(),
            Err(r) => r,
        },
        _ => syntax_error(),
    }
}

/// A client name or library attribute: printable ASCII without spaces.
fn valid_name(v: &[u8]) -> bool {
    v.iter().all(|c| (b'!'..=b'~').contains(c))
}

pub(crate) fn hello(s: &mut Session, cmd: &Command) -> Reply {
    let mut proto = s.proto;
    if let Some(v) = cmd.arg(1) {
        let Some(n) = parse_int(v) else {
            return Reply::Error("ERR Protocol version is not an integer or out of range".into());
        };
        let Some(p) = ProtoVersion::from_number(n) else {
            return Reply::Error("NOPROTO unsupported protocol version".into());
        };
        proto = p;
    }
    let mut name = None;
    let mut i = 2;
    while let Some(opt) = cmd.arg(i) {
        if opt.eq_ignore_ascii_case(b"AUTH") && i + 2 < cmd.len() {
            if let Err(r) = check_auth(cmd.arg(i + 1).unwrap_or_default()) {
                return r;
            }
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && i + 1 < cmd.len() {
            let n = cmd.arg(i + 1).unwrap_or_default();
            if !valid_name(n) {
                return bad_client_name();
            }
            name = Some(String::from_utf8_lossy(n).into_owned());
            i += 2;
        } else {
            return Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                shown(opt, 128)
            ));
        }
    }
    s.proto = proto;
    if let Some(n) = name {
        s.name = Some(n).filter(|n| !n.is_empty());
    }
    let proto_number = match proto {
        ProtoVersion::Resp2 => 2,
        ProtoVersion::Resp3 => 3,
    };
    Reply::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(REDIS_VERSION)),
        (bulk("proto"), Reply::Integer(proto_number)),
        (bulk("id"), id_reply(s.id)),
        (bulk("mode"), bulk("cluster")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Reply::Array(vec![])),
    ])
}

fn bad_client_name() -> Reply {
    Reply::Error("ERR Client names cannot contain spaces, newlines or special characters.".into())
}

pub(crate) fn client(s: &mut Session, cmd: &Command) -> Reply {
    let sub = match subcommand(cmd, "client") {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    match sub {
        "id" => id_reply(s.id),
        "getname" => s.name.as_deref().map_or(Reply::Null, bulk),
        "setname" => {
            let n = cmd.arg(2).unwrap_or_default();
            if !valid_name(n) {
                return bad_client_name();
            }
            s.name = Some(String::from_utf8_lossy(n).into_owned()).filter(|n| !n.is_empty());
            Reply::ok()
        }
        "setinfo" => client_setinfo(s, cmd),
        "info" => text(client_line(s)),
        _ => help(&[
            "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
            "ID, GETNAME, SETNAME <name>, SETINFO <LIB-NAME|LIB-VER> <value>, INFO, HELP",
        ]),
    }
}

fn client_setinfo(s: &mut Session, cmd: &Command) -> Reply {
    let attr = cmd.arg(2).unwrap_or_default();
    let value = cmd.arg(3).unwrap_or_default();
    let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
        &mut s.lib_name
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        &mut s.lib_ver
    } else {
        return Reply::Error(format!("ERR Unrecognized option '{}'", shown(attr, 128)));
    };
    if !valid_name(value) {
        return Reply::Error(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            shown(attr, 128).to_ascii_lowercase()
        ));
    }
    *slot = Some(String::from_utf8_lossy(value).into_owned()).filter(|v| !v.is_empty());
    Reply::ok()
}

/// `CLIENT INFO`'s line for this connection.
fn client_line(s: &Session) -> String {
    let local = s.local.map(|a| a.to_string()).unwrap_or_default();
    let resp = match s.proto {
        ProtoVersion::Resp2 => 2,
        ProtoVersion::Resp3 => 3,
    };
    format!(
        "id={} addr={} laddr={local} fd=-1 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 \
         ssub=0 multi=-1 cmd=client|info user=default redir=-1 resp={resp} lib-name={} \
         lib-ver={}\n",
        s.id,
        s.peer,
        s.name.as_deref().unwrap_or_default(),
        s.since.elapsed().as_secs(),
        s.lib_name.as_deref().unwrap_or_default(),
        s.lib_ver.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::dispatch::Outcome;
    use crate::resp::testing::*;

    #[test]
    fn connection_commands() {
        let f = fixture(None);
        let mut s = session();
        assert_eq!(reply(&f, &mut s, &["PING"]), Reply::Simple("PONG".into()));
        assert_eq!(
            reply(&f, &mut s, &["ping", "hi"]),
            Reply::Bulk(b"hi".to_vec())
        );
        assert_eq!(
            reply(&f, &mut s, &["ping", "a", "b"]),
            err("ERR wrong number of arguments for 'ping' command")
        );
        assert_eq!(
            reply(&f, &mut s, &["echo", "x"]),
            Reply::Bulk(b"x".to_vec())
        );
        assert_eq!(run(&f, &mut s, &["quit"]), Outcome::Close(Reply::ok()));
        assert_eq!(reply(&f, &mut s, &["select", "0"]), Reply::ok());
        assert_eq!(
            reply(&f, &mut s, &["select", "1"]),
            err("ERR SELECT is not allowed in cluster mode")
        );
        assert_eq!(reply(&f, &mut s, &["select", "x"]), not_an_integer());
        assert_eq!(reply(&f, &mut s, &["dbsize"]), Reply::Integer(7));
        assert_eq!(reply(&f, &mut s, &["client", "id"]), Reply::Integer(5));
        assert_eq!(reply(&f, &mut s, &["client", "getname"]), Reply::Null);
        assert_eq!(
            reply(&f, &mut s, &["client", "setname", "app"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "getname"]),
            Reply::Bulk(b"app".to_vec())
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setname", "a b"]),
            bad_client_name()
        );
        assert_eq!(
            reply(&f, &mut s, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setinfo", "lib-ver", "5.0.1"]),
            Reply::ok()
        );
        assert_eq!(
            reply(&f, &mut s, &["client", "setinfo", "color", "red"]),
            err("ERR Unrecognized option 'color'")
        );
        match reply(&f, &mut s, &["client", "info"]) {
            Reply::Verbatim { text, .. } => {
                assert!(text.starts_with("id=5 addr=127.0.0.1:50000 "), "{text}");
                assert!(text.contains(" name=app "), "{text}");
                assert!(
                    text.contains(" lib-name=redis-py lib-ver=5.0.1\n"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(&f, &mut s, &["auth", "secret"]),
            Reply::Error(e) if e.starts_with("ERR AUTH <password> called without")
        ));
        assert_eq!(reply(&f, &mut s, &["auth", "default", "x"]), Reply::ok());
        assert!(matches!(
            reply(&f, &mut s, &["auth", "bob", "x"]),
            Reply::Error(e) if e.starts_with("WRONGPASS")
        ));
    }

    #[test]
    fn hello_negotiates_the_protocol() {
        let f = fixture(None);
        let mut s = session();
        let r = reply(&f, &mut s, &["HELLO"]);
        assert_eq!(s.proto, ProtoVersion::Resp2);
        let Reply::Map(pairs) = r else {
            panic!("{r:?}")
        };
        let keys: Vec<Reply> = pairs.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            ["server", "version", "proto", "id", "mode", "role", "modules"]
                .iter()
                .map(|k| bulk(k))
                .collect::<Vec<_>>()
        );
        assert_eq!(pairs[2].1, Reply::Integer(2));
        assert_eq!(
            reply(&f, &mut s, &["hello", "4"]),
            err("NOPROTO unsupported protocol version")
        );
        assert_eq!(
            reply(&f, &mut s, &["hello", "x"]),
            err("ERR Protocol version is not an integer or out of range")
        );
        assert_eq!(
            reply(&f, &mut s, &["hello", "3", "bogus"]),
            err("ERR Syntax error in HELLO option 'bogus'")
        );
        assert!(matches!(
            reply(&f, &mut s, &["hello", "3", "auth", "bob", "pw"]),
            Reply::Error(e) if e.starts_with("WRONGPASS")
        ));
        assert_eq!(
            s.proto,
            ProtoVersion::Resp2,
            "a failed HELLO changes nothing"
        );
        let r = reply(
            &f,
            &mut s,
            &["hello", "3", "AUTH", "default", "pw", "SETNAME", "me"],
        );
        assert_eq!(s.proto, ProtoVersion::Resp3);
        assert_eq!(s.name.as_deref(), Some("me"));
        assert!(r.to_bytes(ProtoVersion::Resp3).starts_with(b"%7\r\n"));
        reply(&f, &mut s, &["hello", "2"]);
        assert_eq!(s.proto, ProtoVersion::Resp2);
    }
}
