//! Reply helpers shared by the commands: Redis's error texts and common reply shapes.

use ringflow_resp::{Command, Reply};

use crate::DhtError;

/// `text` as lossy UTF-8, cut to `max` characters.
pub(crate) fn shown(text: &[u8], max: usize) -> String {
    String::from_utf8_lossy(text).chars().take(max).collect()
}

pub(crate) fn wrong_args(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's text: the name as sent, then the first arguments (up to about 128 characters).
pub(crate) fn unknown_command(cmd: &Command) -> Reply {
    let mut args = String::new();
    for a in cmd.args.iter().skip(1) {
        let room = 128usize.saturating_sub(args.chars().count());
        if room == 0 {
            break;
        }
        args.push_str(&format!("'{}' ", shown(a, room)));
    }
    Reply::Error(format!(
        "ERR unknown command '{}', with args beginning with: {args}",
        shown(cmd.arg(0).unwrap_or_default(), 128)
    ))
}

pub(crate) fn syntax_error() -> Reply {
    Reply::Error("ERR syntax error".into())
}

pub(crate) fn not_an_integer() -> Reply {
    Reply::Error("ERR value is not an integer or out of range".into())
}

pub(crate) fn parse_int(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// The reply for a failed DHT operation: `CLUSTERDOWN` when no quorum or owner can be
/// had and nothing was done, `TRYAGAIN` for a transient failure of a read, `UNKNOWN` for
/// a write that may or may not have been applied (never `TRYAGAIN`/`CLUSTERDOWN`, which
/// say it was not), `ERR` otherwise (e.g. too large).
pub(crate) fn dht_error(e: &DhtError) -> Reply {
    let prefix = match e {
        DhtError::Unavailable(_) | DhtError::NoOwner(_) => "CLUSTERDOWN",
        DhtError::Peer(_) | DhtError::Closed(_) => "TRYAGAIN",
        DhtError::OutcomeUnknown(_) => "UNKNOWN",
        _ => "ERR",
    };
    Reply::Error(format!("{prefix} {e}"))
}

pub(crate) fn bulk_or_null(v: Option<Vec<u8>>) -> Reply {
    v.map_or(Reply::Null, Reply::Bulk)
}

pub(crate) fn count(n: usize) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

pub(crate) fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

pub(crate) fn id_reply(id: u64) -> Reply {
    Reply::Integer(i64::try_from(id).unwrap_or(i64::MAX))
}

/// A text reply: verbatim in RESP3, a bulk string in RESP2 (like `INFO`).
pub(crate) fn text(body: String) -> Reply {
    Reply::Verbatim {
        format: "txt".into(),
        text: body,
    }
}

pub(crate) fn help(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple((*l).into())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::testing::*;

    #[test]
    fn dht_errors_map_to_redis_prefixes() {
        let r = dht_error(&DhtError::Unavailable("1 of 3".into()));
        assert!(matches!(r, Reply::Error(e) if e.starts_with("CLUSTERDOWN ")));
        let r = dht_error(&DhtError::Peer("gone".into()));
        assert!(matches!(r, Reply::Error(e) if e.starts_with("TRYAGAIN ")));
        let r = dht_error(&DhtError::TooLarge {
            what: "value",
            len: 9,
            max: 8,
        });
        assert_eq!(r, err("ERR value of 9 bytes exceeds the limit of 8 bytes"));
    }
}
