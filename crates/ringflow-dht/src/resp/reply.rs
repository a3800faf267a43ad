//! Reply helpers shared by the commands: Redis's error texts and common reply shapes.

use ringflow_resp::{Command, Reply};

use crate::{DhtConfig, DhtError};

/// Bytes a bulk string's header and terminator take at most (`$`, up to 20 digits, two
/// CRLFs).
pub(crate) const BULK_OVERHEAD: usize = 32;
/// Room above `max_value` that the reply cap always leaves, so a `GET` of any storable
/// value fits.
const REPLY_SLACK: usize = 1024;

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

/// The largest reply the gateway builds for one command (`max_reply_bytes`, but never
/// less than a `GET` of the largest value needs).
pub(crate) fn reply_cap(cfg: &DhtConfig) -> usize {
    cfg.max_reply_bytes
        .max(cfg.max_value.saturating_add(REPLY_SLACK))
}

/// The reply to a command naming more keys than `max_keys_per_command`.
pub(crate) fn too_many_keys(name: &str, keys: usize, max: usize) -> Reply {
    Reply::Error(format!(
        "ERR too many keys for '{name}': {keys}, at most {max} per command"
    ))
}

/// The reply to a command whose reply would take `size` bytes, above the reply cap.
pub(crate) fn reply_too_large(name: &str, size: usize, max: usize) -> Reply {
    Reply::Error(format!(
        "ERR the reply to '{name}' would take {size} bytes, above the limit of {max} bytes"
    ))
}

/// An upper bound of the bytes `r` encodes to, in RESP2 or RESP3.
pub(crate) fn encoded_len(r: &Reply) -> usize {
    const HEADER: usize = 32;
    let all = |items: &[Reply]| {
        items
            .iter()
            .fold(HEADER, |n, r| n.saturating_add(encoded_len(r)))
    };
    match r {
        Reply::Simple(s) | Reply::Error(s) | Reply::BigNumber(s) => s.len() + 3,
        Reply::Bulk(b) => b.len().saturating_add(BULK_OVERHEAD),
        Reply::Verbatim { text, .. } => text.len().saturating_add(BULK_OVERHEAD + 4),
        Reply::Integer(_) | Reply::Null | Reply::NullArray | Reply::Boolean(_) => HEADER,
        Reply::Double(_) => 2 * HEADER,
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => all(items),
        Reply::Map(pairs) => pairs.iter().fold(HEADER, |n, (k, v)| {
            n.saturating_add(encoded_len(k))
                .saturating_add(encoded_len(v))
        }),
    }
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
    use ringflow_resp::ProtoVersion;

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

    #[test]
    fn encoded_len_bounds_the_encoding() {
        let replies = [
            Reply::Bulk(vec![7; 1000]),
            Reply::Array(vec![
                Reply::Null,
                Reply::Bulk(b"abc".to_vec()),
                Reply::Integer(-1),
            ]),
            Reply::Map(vec![(bulk("k"), Reply::Double(1.0 / 3.0))]),
            text("x".repeat(100)),
            Reply::ok(),
        ];
        for r in &replies {
            for proto in [ProtoVersion::Resp2, ProtoVersion::Resp3] {
                let mut out = Vec::new();
                r.encode(proto, &mut out);
                assert!(out.len() <= encoded_len(r), "{r:?} {proto:?}");
            }
        }
        let cfg = DhtConfig {
            max_value: 100,
            max_reply_bytes: 10,
            ..DhtConfig::default()
        };
        assert!(reply_cap(&cfg) >= encoded_len(&Reply::Bulk(vec![0; 100])));
    }
}
