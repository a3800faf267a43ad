//! Replies and their RESP2 / RESP3 encoding.

use crate::request::{push_u64, push_usize};

/// Protocol version negotiated with `HELLO` (RESP2 until a client asks for 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProtoVersion {
    /// RESP2: RESP3-only types are downgraded the way Redis does.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

impl ProtoVersion {
    /// The version for a `HELLO <protover>` argument: 2 or 3.
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            2 => Some(ProtoVersion::Resp2),
            3 => Some(ProtoVersion::Resp3),
            _ => None,
        }
    }
}

/// A reply, RESP2 and RESP3.
///
/// Encoding in RESP2 downgrades like Redis: `Null` → `$-1`, `NullArray` → `*-1`, `Map` → flat
/// array, `Set` / `Push` → array, `Double` / `BigNumber` → bulk string, `Boolean` → integer
/// 0/1, `Verbatim` → bulk string of the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`. Any `\r` or `\n` is written as a space.
    Simple(String),
    /// Full error text, e.g. `ERR unknown command 'x'` or `MOVED 3999 127.0.0.1:6381`
    /// (written after `-`). Any `\r` or `\n` is written as a space.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// A binary-safe bulk string.
    Bulk(Vec<u8>),
    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// The null array (RESP2 `*-1`, RESP3 `_`).
    NullArray,
    /// A map (RESP3 `%`), in order.
    Map(Vec<(Reply, Reply)>),
    /// A double (RESP3 `,`; `inf`, `-inf` and `nan` included).
    Double(f64),
    /// A boolean (RESP3 `#t` / `#f`).
    Boolean(bool),
    /// A verbatim string (RESP3 `=`). `format` is three characters such as `txt` or `mkd`;
    /// any other value is written as `txt`.
    Verbatim {
        /// Three-character format.
        format: String,
        /// The text.
        text: String,
    },
    /// A set (RESP3 `~`).
    Set(Vec<Reply>),
    /// A big number (RESP3 `(`), as its decimal text. Any `\r` or `\n` is written as a space.
    BigNumber(String),
    /// An out-of-band push (RESP3 `>`), e.g. a pub/sub message.
    Push(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// Appends this reply's encoding in `version` to `out`.
    pub fn encode(&self, version: ProtoVersion, out: &mut Vec<u8>) {
        let v3 = version == ProtoVersion::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Integer(n) => {
                out.push(b':');
                push_i64(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => blob(out, b'$', &[b], b.len()),
            Reply::Null if v3 => out.extend_from_slice(b"_\r\n"),
            Reply::Null => out.extend_from_slice(b"$-1\r\n"),
            Reply::NullArray if v3 => out.extend_from_slice(b"_\r\n"),
            Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => aggregate(out, b'*', items, version),
            Reply::Set(items) => aggregate(out, if v3 { b'~' } else { b'*' }, items, version),
            Reply::Push(items) => aggregate(out, if v3 { b'>' } else { b'*' }, items, version),
            Reply::Map(pairs) => {
                if v3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len().saturating_mul(2));
                }
                for (k, v) in pairs {
                    k.encode(version, out);
                    v.encode(version, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if v3 {
                    line(out, b',', text.as_bytes());
                } else {
                    blob(out, b'$', &[text.as_bytes()], text.len());
                }
            }
            Reply::Boolean(b) if v3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Boolean(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim { format, text } if v3 => {
                let f = format.as_bytes();
                let valid = f.len() == 3 && f.iter().all(|c| c.is_ascii_alphanumeric());
                let f: &[u8] = if valid { f } else { b"txt" };
                blob(out, b'=', &[f, b":", text.as_bytes()], text.len() + 4);
            }
            Reply::Verbatim { text, .. } => blob(out, b'$', &[text.as_bytes()], text.len()),
            Reply::BigNumber(n) if v3 => line(out, b'(', n.as_bytes()),
            Reply::BigNumber(n) => {
                let mut s = Vec::with_capacity(n.len());
                push_sanitized(&mut s, n.as_bytes());
                blob(out, b'$', &[&s], s.len());
            }
        }
    }

    /// This reply's encoding in `version`.
    pub fn to_bytes(&self, version: ProtoVersion) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(version, &mut out);
        out
    }
}

/// The text a [`Reply::Double`] is written as: the shortest representation that reads back
/// to the same value (`1.5`, `3`, `1e300`, `1.5e-7`), or `inf`, `-inf`, `nan`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else if d != 0.0 && !(1e-5..1e17).contains(&d.abs()) {
        format!("{d:e}")
    } else {
        format!("{d}")
    }
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

fn push_sanitized(out: &mut Vec<u8>, text: &[u8]) {
    out.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
}

/// `<t><text>\r\n`, with CR and LF in `text` replaced so framing cannot break.
fn line(out: &mut Vec<u8>, t: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.push(t);
    push_sanitized(out, text);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, t: u8, n: usize) {
    out.push(t);
    push_usize(out, n);
    out.extend_from_slice(b"\r\n");
}

/// `<t><len>\r\n<parts...>\r\n`.
fn blob(out: &mut Vec<u8>, t: u8, parts: &[&[u8]], len: usize) {
    out.reserve(len + 16);
    header(out, t, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, t: u8, items: &[Reply], version: ProtoVersion) {
    header(out, t, items.len());
    for item in items {
        item.encode(version, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProtoVersion::{Resp2, Resp3};

    fn both(r: &Reply, v2: &str, v3: &str) {
        assert_eq!(
            String::from_utf8_lossy(&r.to_bytes(Resp2)),
            v2,
            "RESP2 {r:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&r.to_bytes(Resp3)),
            v3,
            "RESP3 {r:?}"
        );
    }

    #[test]
    fn simple_and_error() {
        both(&Reply::ok(), "+OK\r\n", "+OK\r\n");
        both(&Reply::Simple(String::new()), "+\r\n", "+\r\n");
        both(
            &Reply::Error("ERR unknown command 'x'".into()),
            "-ERR unknown command 'x'\r\n",
            "-ERR unknown command 'x'\r\n",
        );
        both(
            &Reply::Error("MOVED 3999 127.0.0.1:6381".into()),
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-MOVED 3999 127.0.0.1:6381\r\n",
        );
    }

    #[test]
    fn crlf_never_breaks_framing() {
        both(
            &Reply::Error("ERR a\r\nb\nc\r".into()),
            "-ERR a  b c \r\n",
            "-ERR a  b c \r\n",
        );
        both(
            &Reply::Simple("x\r\n+OK".into()),
            "+x  +OK\r\n",
            "+x  +OK\r\n",
        );
        both(
            &Reply::BigNumber("1\r\n2".into()),
            "$4\r\n1  2\r\n",
            "(1  2\r\n",
        );
    }

    #[test]
    fn integer_and_bulk() {
        both(&Reply::Integer(0), ":0\r\n", ":0\r\n");
        both(&Reply::Integer(-42), ":-42\r\n", ":-42\r\n");
        both(
            &Reply::Integer(i64::MIN),
            ":-9223372036854775808\r\n",
            ":-9223372036854775808\r\n",
        );
        both(
            &Reply::Integer(i64::MAX),
            ":9223372036854775807\r\n",
            ":9223372036854775807\r\n",
        );
        both(
            &Reply::Bulk(b"a\r\nb".to_vec()),
            "$4\r\na\r\nb\r\n",
            "$4\r\na\r\nb\r\n",
        );
        both(&Reply::Bulk(vec![]), "$0\r\n\r\n", "$0\r\n\r\n");
    }

    #[test]
    fn nulls() {
        both(&Reply::Null, "$-1\r\n", "_\r\n");
        both(&Reply::NullArray, "*-1\r\n", "_\r\n");
    }

    #[test]
    fn aggregates() {
        let arr = Reply::Array(vec![
            Reply::Integer(1),
            Reply::Bulk(b"x".to_vec()),
            Reply::Null,
        ]);
        both(
            &arr,
            "*3\r\n:1\r\n$1\r\nx\r\n$-1\r\n",
            "*3\r\n:1\r\n$1\r\nx\r\n_\r\n",
        );
        both(&Reply::Array(vec![]), "*0\r\n", "*0\r\n");
        let map = Reply::Map(vec![
            (Reply::Bulk(b"a".to_vec()), Reply::Integer(1)),
            (Reply::Simple("b".into()), Reply::Boolean(true)),
        ]);
        both(
            &map,
            "*4\r\n$1\r\na\r\n:1\r\n+b\r\n:1\r\n",
            "%2\r\n$1\r\na\r\n:1\r\n+b\r\n#t\r\n",
        );
        both(&Reply::Map(vec![]), "*0\r\n", "%0\r\n");
        let set = Reply::Set(vec![Reply::Integer(7)]);
        both(&set, "*1\r\n:7\r\n", "~1\r\n:7\r\n");
        let push = Reply::Push(vec![Reply::Bulk(b"message".to_vec())]);
        both(&push, "*1\r\n$7\r\nmessage\r\n", ">1\r\n$7\r\nmessage\r\n");
        let nested = Reply::Array(vec![
            Reply::Array(vec![Reply::NullArray]),
            Reply::Set(vec![]),
        ]);
        both(
            &nested,
            "*2\r\n*1\r\n*-1\r\n*0\r\n",
            "*2\r\n*1\r\n_\r\n~0\r\n",
        );
    }

    #[test]
    fn doubles() {
        both(&Reply::Double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n");
        both(&Reply::Double(3.0), "$1\r\n3\r\n", ",3\r\n");
        both(&Reply::Double(-0.25), "$5\r\n-0.25\r\n", ",-0.25\r\n");
        both(&Reply::Double(1e300), "$5\r\n1e300\r\n", ",1e300\r\n");
        both(&Reply::Double(1.5e-7), "$6\r\n1.5e-7\r\n", ",1.5e-7\r\n");
        both(&Reply::Double(f64::INFINITY), "$3\r\ninf\r\n", ",inf\r\n");
        both(
            &Reply::Double(f64::NEG_INFINITY),
            "$4\r\n-inf\r\n",
            ",-inf\r\n",
        );
        both(&Reply::Double(f64::NAN), "$3\r\nnan\r\n", ",nan\r\n");
        for d in [
            0.1,
            1.0 / 3.0,
            123456.789,
            1e16,
            1e17,
            2.5e-5,
            5e-324,
            f64::MAX,
            f64::MIN,
        ] {
            assert_eq!(format_double(d).parse::<f64>(), Ok(d), "{d}");
        }
    }

    #[test]
    fn booleans_verbatim_bignumber() {
        both(&Reply::Boolean(true), ":1\r\n", "#t\r\n");
        both(&Reply::Boolean(false), ":0\r\n", "#f\r\n");
        let v = Reply::Verbatim {
            format: "txt".into(),
            text: "Some string".into(),
        };
        both(&v, "$11\r\nSome string\r\n", "=15\r\ntxt:Some string\r\n");
        let bad = Reply::Verbatim {
            format: "markdown".into(),
            text: "a\r\n".into(),
        };
        both(&bad, "$3\r\na\r\n\r\n", "=7\r\ntxt:a\r\n\r\n");
        both(
            &Reply::BigNumber("3492890328409238509324850943850943825024385".into()),
            "$43\r\n3492890328409238509324850943850943825024385\r\n",
            "(3492890328409238509324850943850943825024385\r\n",
        );
    }

    #[test]
    fn versions() {
        assert_eq!(ProtoVersion::default(), Resp2);
        assert_eq!(ProtoVersion::from_number(3), Some(Resp3));
        assert_eq!(ProtoVersion::from_number(2), Some(Resp2));
        assert_eq!(ProtoVersion::from_number(4), None);
    }
}
