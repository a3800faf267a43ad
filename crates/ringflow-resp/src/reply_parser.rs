//! Client side: reply bytes in, [`Reply`] values out.

use crate::buf::{parse_i64, InBuf, Line, HEADER_WINDOW};
use crate::error::show_byte;
use crate::{LimitKind, Limits, Reply, RespError};

/// At most this many elements are reserved up front from a declared aggregate count.
const ITEMS_RESERVE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Array,
    Set,
    Push,
    Map,
    /// RESP3 attributes (`|`): parsed and dropped; the reply they annotate follows.
    Attribute,
}

/// An aggregate being read.
#[derive(Debug)]
struct Frame {
    kind: Agg,
    /// Elements still to read (keys and values both count for maps).
    remaining: usize,
    items: Vec<Reply>,
}

#[derive(Debug, Clone, Copy)]
enum BlobKind {
    Bulk,
    Verbatim,
    Error,
}

/// A length-prefixed string being read.
#[derive(Debug)]
struct Blob {
    kind: BlobKind,
    need: usize,
    data: Vec<u8>,
}

enum Item {
    NeedMore,
    /// An aggregate or a blob was started; keep going.
    Started,
    Value(Reply),
}

/// Incremental, sans-IO reply parser for RESP2 and RESP3 (for a Rust client and for tests).
///
/// Nested aggregates are kept on an explicit stack (depth bounded by
/// [`Limits::max_depth`]), so a reply arriving in pieces is never re-parsed. RESP3
/// attributes (`|`) are skipped; blob errors (`!`) become [`Reply::Error`]. After an error
/// the parser stays failed.
#[derive(Debug)]
pub struct ReplyParser {
    limits: Limits,
    buf: InBuf,
    stack: Vec<Frame>,
    blob: Option<Blob>,
    failed: Option<RespError>,
}

impl ReplyParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: InBuf::default(),
            stack: Vec::new(),
            blob: None,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// The next complete reply; `Ok(None)` means more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, RespError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.parse();
        crate::error::remember(&mut self.failed, res)
    }

    /// Unparsed bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn parse(&mut self) -> Result<Option<Reply>, RespError> {
        loop {
            let value = if let Some(b) = self.blob.as_mut() {
                let missing = b.need - b.data.len();
                if self.buf.take_into(&mut b.data, missing, b.need) < missing {
                    return Ok(None);
                }
                match self.buf.rest().get(..2) {
                    None => return Ok(None),
                    Some(b"\r\n") => self.buf.consume(2),
                    Some(_) => return Err(RespError::protocol("expected CRLF after bulk string")),
                }
                match self.blob.take() {
                    Some(b) => blob_reply(b)?,
                    None => continue,
                }
            } else {
                match self.item()? {
                    Item::NeedMore => return Ok(None),
                    Item::Started => continue,
                    Item::Value(v) => v,
                }
            };
            if let Some(done) = self.deliver(value) {
                return Ok(Some(done));
            }
        }
    }

    /// Hands a finished value to the innermost open aggregate, closing aggregates that are
    /// complete; returns the top-level reply once there is one.
    fn deliver(&mut self, mut value: Reply) -> Option<Reply> {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Some(value);
            };
            top.items.push(value);
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                return None;
            }
            let frame = self.stack.pop()?;
            // `None` is a finished attribute: whoever waited still waits for the next value.
            value = finish(frame.kind, frame.items)?;
        }
    }

    /// Parses one type byte and what directly follows it.
    fn item(&mut self) -> Result<Item, RespError> {
        let Some(t) = self.buf.first() else {
            return Ok(Item::NeedMore);
        };
        match t {
            b'$' | b'=' | b'!' => self.start_blob(t),
            b'*' | b'~' | b'%' | b'>' | b'|' => self.start_aggregate(t),
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => self.simple(t),
            _ => Err(RespError::Protocol(format!(
                "got '{}' as reply type byte",
                show_byte(t)
            ))),
        }
    }

    /// Reads a `<t><number>\r\n` header: `Ok(None)` if incomplete.
    fn header(&mut self, invalid: &str) -> Result<Option<(i64, usize)>, RespError> {
        let (end, total) = match self.buf.line(HEADER_WINDOW) {
            Line::Incomplete => return Ok(None),
            Line::TooLong | Line::BadEnd => return Err(RespError::protocol(invalid)),
            Line::Found { end, total } => (end, total),
        };
        let n = self
            .buf
            .rest()
            .get(1..end)
            .and_then(parse_i64)
            .ok_or_else(|| RespError::protocol(invalid))?;
        Ok(Some((n, total)))
    }

    fn start_blob(&mut self, t: u8) -> Result<Item, RespError> {
        let Some((n, total)) = self.header("invalid bulk length")? else {
            return Ok(Item::NeedMore);
        };
        if t == b'$' && n == -1 {
            self.buf.consume(total);
            return Ok(Item::Value(Reply::Null));
        }
        let len = usize::try_from(n).map_err(|_| RespError::protocol("invalid bulk length"))?;
        if len > self.limits.max_bulk {
            return Err(RespError::too_large(
                LimitKind::Bulk,
                len as u64,
                self.limits.max_bulk,
            ));
        }
        self.buf.consume(total);
        let kind = match t {
            b'=' => BlobKind::Verbatim,
            b'!' => BlobKind::Error,
            _ => BlobKind::Bulk,
        };
        self.blob = Some(Blob {
            kind,
            need: len,
            data: Vec::new(),
        });
        Ok(Item::Started)
    }

    fn start_aggregate(&mut self, t: u8) -> Result<Item, RespError> {
        let Some((n, total)) = self.header("invalid multibulk length")? else {
            return Ok(Item::NeedMore);
        };
        if t == b'*' && n == -1 {
            self.buf.consume(total);
            return Ok(Item::Value(Reply::NullArray));
        }
        let count =
            usize::try_from(n).map_err(|_| RespError::protocol("invalid multibulk length"))?;
        if count > self.limits.max_args {
            return Err(RespError::too_large(
                LimitKind::Args,
                count as u64,
                self.limits.max_args,
            ));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(RespError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        let kind = match t {
            b'~' => Agg::Set,
            b'%' => Agg::Map,
            b'>' => Agg::Push,
            b'|' => Agg::Attribute,
            _ => Agg::Array,
        };
        let elements = if matches!(kind, Agg::Map | Agg::Attribute) {
            count.checked_mul(2).ok_or_else(|| {
                RespError::too_large(LimitKind::Args, count as u64, self.limits.max_args)
            })?
        } else {
            count
        };
        self.buf.consume(total);
        if elements == 0 {
            return Ok(match finish(kind, Vec::new()) {
                Some(v) => Item::Value(v),
                None => Item::Started,
            });
        }
        self.stack.push(Frame {
            kind,
            remaining: elements,
            items: Vec::with_capacity(elements.min(ITEMS_RESERVE)),
        });
        Ok(Item::Started)
    }

    fn simple(&mut self, t: u8) -> Result<Item, RespError> {
        // Type byte + content + CRLF: the '\n' may sit at index max_inline + 2.
        let window = self.limits.max_inline.saturating_add(3);
        let (end, total) = match self.buf.line(window) {
            Line::Incomplete => return Ok(Item::NeedMore),
            Line::TooLong => {
                return Err(RespError::too_large(
                    LimitKind::Inline,
                    (self.limits.max_inline as u64).saturating_add(1),
                    self.limits.max_inline,
                ))
            }
            Line::BadEnd => return Err(RespError::protocol("expected CRLF at end of line")),
            Line::Found { end, total } => (end, total),
        };
        let text = self.buf.rest().get(1..end).unwrap_or_default();
        let bad = |what: &str| RespError::Protocol(format!("invalid {what}"));
        let value = match t {
            b'+' => Reply::Simple(String::from_utf8_lossy(text).into_owned()),
            b'-' => Reply::Error(String::from_utf8_lossy(text).into_owned()),
            b':' => Reply::Integer(parse_i64(text).ok_or_else(|| bad("integer"))?),
            b',' => Reply::Double(parse_double(text).ok_or_else(|| bad("double"))?),
            b'#' => match text {
                b"t" => Reply::Boolean(true),
                b"f" => Reply::Boolean(false),
                _ => return Err(bad("boolean")),
            },
            b'(' => {
                let digits = text
                    .strip_prefix(b"-")
                    .or(text.strip_prefix(b"+"))
                    .unwrap_or(text);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(bad("big number"));
                }
                Reply::BigNumber(String::from_utf8_lossy(text).into_owned())
            }
            _ if text.is_empty() => Reply::Null,
            _ => return Err(bad("null")),
        };
        self.buf.consume(total);
        Ok(Item::Value(value))
    }
}

fn parse_double(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    // Rust also accepts "infinity"; RESP3 says inf / -inf / nan, which are all accepted.
    s.parse::<f64>().ok()
}

/// The reply for a completed aggregate; `None` for an attribute (dropped).
fn finish(kind: Agg, items: Vec<Reply>) -> Option<Reply> {
    Some(match kind {
        Agg::Array => Reply::Array(items),
        Agg::Set => Reply::Set(items),
        Agg::Push => Reply::Push(items),
        Agg::Map => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        Agg::Attribute => return None,
    })
}

fn blob_reply(b: Blob) -> Result<Reply, RespError> {
    let lossy = |v: Vec<u8>| {
        String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    Ok(match b.kind {
        BlobKind::Bulk => Reply::Bulk(b.data),
        BlobKind::Error => Reply::Error(lossy(b.data)),
        BlobKind::Verbatim => {
            if b.data.len() < 4 || b.data.get(3) != Some(&b':') {
                return Err(RespError::protocol("invalid verbatim string"));
            }
            let mut data = b.data;
            let text = data.split_off(4);
            let format = String::from_utf8_lossy(data.get(..3).unwrap_or_default()).into_owned();
            Reply::Verbatim {
                format,
                text: lossy(text),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<Reply>, RespError> {
        let mut p = ReplyParser::new(limits);
        p.push(input);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    fn one(input: &[u8]) -> Reply {
        let mut got = parse_all(input, Limits::default()).unwrap();
        assert_eq!(got.len(), 1, "{input:?} gave {got:?}");
        got.remove(0)
    }

    fn err(input: &[u8], limits: Limits) -> RespError {
        let e = parse_all(input, limits).unwrap_err();
        // Same error byte by byte.
        let mut p = ReplyParser::new(limits);
        let mut res = Ok(None);
        for b in input {
            p.push(&[*b]);
            res = p.next_reply();
            while let Ok(Some(_)) = res {
                res = p.next_reply();
            }
            if res.is_err() {
                break;
            }
        }
        assert_eq!(res, Err(e.clone()), "bytewise {input:?}");
        e
    }

    #[test]
    fn resp2_types() {
        assert_eq!(one(b"+OK\r\n"), Reply::ok());
        assert_eq!(one(b"-ERR bad\r\n"), Reply::Error("ERR bad".into()));
        assert_eq!(one(b":-7\r\n"), Reply::Integer(-7));
        assert_eq!(one(b"$3\r\na\r\n\r\n"), Reply::Bulk(b"a\r\n".to_vec()));
        assert_eq!(one(b"$0\r\n\r\n"), Reply::Bulk(vec![]));
        assert_eq!(one(b"$-1\r\n"), Reply::Null);
        assert_eq!(one(b"*-1\r\n"), Reply::NullArray);
        assert_eq!(one(b"*0\r\n"), Reply::Array(vec![]));
        assert_eq!(
            one(b"*2\r\n*1\r\n:1\r\n$-1\r\n"),
            Reply::Array(vec![Reply::Array(vec![Reply::Integer(1)]), Reply::Null])
        );
    }

    #[test]
    fn resp3_types() {
        assert_eq!(one(b"_\r\n"), Reply::Null);
        assert_eq!(one(b",1.5\r\n"), Reply::Double(1.5));
        assert_eq!(one(b",inf\r\n"), Reply::Double(f64::INFINITY));
        assert_eq!(one(b",-inf\r\n"), Reply::Double(f64::NEG_INFINITY));
        assert!(matches!(one(b",nan\r\n"), Reply::Double(d) if d.is_nan()));
        assert_eq!(one(b",1e300\r\n"), Reply::Double(1e300));
        assert_eq!(one(b"#t\r\n"), Reply::Boolean(true));
        assert_eq!(one(b"#f\r\n"), Reply::Boolean(false));
        assert_eq!(one(b"(-123\r\n"), Reply::BigNumber("-123".into()));
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Reply::Verbatim {
                format: "txt".into(),
                text: "Some string".into()
            }
        );
        assert_eq!(
            one(b"!8\r\nERR a\r\nb\r\n"),
            Reply::Error("ERR a\r\nb".into())
        );
        assert_eq!(
            one(b"%2\r\n+a\r\n:1\r\n+b\r\n%0\r\n"),
            Reply::Map(vec![
                (Reply::Simple("a".into()), Reply::Integer(1)),
                (Reply::Simple("b".into()), Reply::Map(vec![])),
            ])
        );
        assert_eq!(
            one(b"~2\r\n:1\r\n~0\r\n"),
            Reply::Set(vec![Reply::Integer(1), Reply::Set(vec![])])
        );
        assert_eq!(
            one(b">2\r\n$7\r\nmessage\r\n_\r\n"),
            Reply::Push(vec![Reply::Bulk(b"message".to_vec()), Reply::Null])
        );
    }

    #[test]
    fn attributes_are_skipped() {
        assert_eq!(one(b"|1\r\n+key\r\n+val\r\n:5\r\n"), Reply::Integer(5));
        assert_eq!(one(b"|0\r\n:5\r\n"), Reply::Integer(5));
        assert_eq!(
            one(b"*2\r\n|1\r\n+a\r\n*1\r\n:0\r\n:1\r\n:2\r\n"),
            Reply::Array(vec![Reply::Integer(1), Reply::Integer(2)])
        );
    }

    #[test]
    fn pipelined_split_everywhere() {
        let wire: &[u8] = b"+OK\r\n*3\r\n$1\r\na\r\n%1\r\n:1\r\n~1\r\n#t\r\n_\r\n|1\r\n+k\r\n+v\r\n,2.5\r\n=7\r\nmkd:a\nb\r\n:9\r\n";
        let want = parse_all(wire, Limits::default()).unwrap();
        assert_eq!(want.len(), 5);
        for cut in 0..=wire.len() {
            let mut p = ReplyParser::new(Limits::default());
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                p.push(part);
                while let Some(r) = p.next_reply().unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(got, want, "cut {cut}");
            assert_eq!(p.buffered(), 0);
        }
    }

    #[test]
    fn depth_limit() {
        let l = Limits {
            max_depth: 64,
            ..Limits::default()
        };
        let nested = |n: usize| {
            let mut v = b"*1\r\n".repeat(n - 1);
            v.extend_from_slice(b"*0\r\n");
            v
        };
        assert!(parse_all(&nested(64), l).is_ok());
        assert_eq!(err(&nested(65), l), RespError::TooDeep { limit: 64 });
        // A hostile stream of open arrays is refused after max_depth headers.
        let deep = b"*1\r\n".repeat(100_000);
        assert_eq!(parse_all(&deep, l), Err(RespError::TooDeep { limit: 64 }));
        let deep_maps = b"%1\r\n".repeat(100);
        assert_eq!(
            parse_all(&deep_maps, l),
            Err(RespError::TooDeep { limit: 64 })
        );
    }

    #[test]
    fn hostile_input() {
        let l = Limits::default();
        let invalid_mb = RespError::protocol("invalid multibulk length");
        let invalid_bulk = RespError::protocol("invalid bulk length");
        assert_eq!(err(b"*-5\r\n", l), invalid_mb);
        assert_eq!(err(b"%-1\r\n", l), invalid_mb);
        assert_eq!(err(b"*x\r\n", l), invalid_mb);
        assert!(matches!(
            err(b"*2147483648\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Args,
                ..
            }
        ));
        assert!(matches!(
            err(b"%1048577\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Args,
                ..
            }
        ));
        assert!(matches!(
            err(b"$999999999999\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Bulk,
                ..
            }
        ));
        assert_eq!(err(b"$-2\r\n", l), invalid_bulk);
        assert_eq!(err(b"=-1\r\n", l), invalid_bulk);
        assert_eq!(
            err(b"$1\r\nab\r\n", l),
            RespError::protocol("expected CRLF after bulk string")
        );
        assert_eq!(
            err(b"=2\r\nab\r\n", l),
            RespError::protocol("invalid verbatim string")
        );
        assert_eq!(err(b":1x\r\n", l), RespError::protocol("invalid integer"));
        assert_eq!(err(b",\r\n", l), RespError::protocol("invalid double"));
        assert_eq!(err(b"#x\r\n", l), RespError::protocol("invalid boolean"));
        assert_eq!(
            err(b"(1.5\r\n", l),
            RespError::protocol("invalid big number")
        );
        assert_eq!(err(b"_x\r\n", l), RespError::protocol("invalid null"));
        assert_eq!(
            err(b"+OK\n", l),
            RespError::protocol("expected CRLF at end of line")
        );
        assert_eq!(
            err(b"\0", l).to_string(),
            "Protocol error: got '\\x00' as reply type byte"
        );
        assert_eq!(parse_all(b"$5\r\nab", l), Ok(vec![]));
        let small = Limits {
            max_inline: 4,
            max_bulk: 2,
            max_args: 1,
            ..l
        };
        assert!(parse_all(b"+abcd\r\n", small).is_ok());
        assert!(matches!(
            err(b"+abcde\r\n", small),
            RespError::TooLarge {
                kind: LimitKind::Inline,
                ..
            }
        ));
        assert!(matches!(
            err(b"+abcdefgh", small),
            RespError::TooLarge {
                kind: LimitKind::Inline,
                ..
            }
        ));
        assert!(matches!(
            err(b"$3\r\n", small),
            RespError::TooLarge {
                kind: LimitKind::Bulk,
                ..
            }
        ));
        assert!(matches!(
            err(b"*2\r\n", small),
            RespError::TooLarge {
                kind: LimitKind::Args,
                ..
            }
        ));
        assert!(matches!(
            err(b"%2\r\n", small),
            RespError::TooLarge {
                kind: LimitKind::Args,
                ..
            }
        ));
        assert!(parse_all(b"%1\r\n:1\r\n:2\r\n", small).is_ok());
    }

    #[test]
    fn nul_bytes_and_invalid_utf8() {
        assert_eq!(one(b"$2\r\n\0\0\r\n"), Reply::Bulk(vec![0, 0]));
        assert_eq!(one(b"+a\0b\r\n"), Reply::Simple("a\0b".into()));
        assert_eq!(one(b"-\xff\r\n"), Reply::Error("\u{fffd}".into()));
    }
}
