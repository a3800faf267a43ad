//! Server side: client requests in, [`Command`]s out; and the client-side request encoder.

use crate::buf::{parse_i64, InBuf, Line, HEADER_WINDOW};
use crate::error::show_byte;
use crate::{LimitKind, Limits, RespError};

/// At most this many argument slots are reserved up front from a declared count.
const ARGS_RESERVE: usize = 64;

/// A parsed client command: the arguments of one request (a RESP array of bulk strings, or an
/// inline command line split like Redis does, honouring `"double"` and `'single'` quotes and
/// `\xHH` escapes in double quotes). `args[0]` is the command name as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// The arguments, command name first.
    pub args: Vec<Vec<u8>>,
}

impl Command {
    /// A command from its arguments.
    pub fn new(args: Vec<Vec<u8>>) -> Self {
        Self { args }
    }

    /// ASCII uppercase of the command name (`args[0]`), non-UTF-8 bytes replaced;
    /// empty if there are no arguments.
    pub fn name_upper(&self) -> String {
        self.args
            .first()
            .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
            .unwrap_or_default()
    }

    /// Whether the command name equals `name`, ignoring ASCII case (no allocation).
    pub fn is(&self, name: &str) -> bool {
        self.args
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Argument `i` (0 is the command name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.args.get(i).map(Vec::as_slice)
    }

    /// Number of arguments, command name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

/// Encodes a request as a RESP array of bulk strings (what redis-cli sends).
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    let payload: usize = args.iter().map(|a| a.len() + 16).sum();
    out.reserve(payload + 16);
    out.push(b'*');
    push_usize(out, args.len());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        push_usize(out, a.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

pub(crate) fn push_usize(out: &mut Vec<u8>, n: usize) {
    push_u64(out, n as u64);
}

pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A multibulk request being read.
#[derive(Debug)]
struct Multi {
    expected: usize,
    args: Vec<Vec<u8>>,
    /// The bulk string being read: its declared length and the bytes so far.
    bulk: Option<(usize, Vec<u8>)>,
}

/// Incremental, sans-IO request parser: [`push`](Self::push) received bytes, then call
/// [`next_command`](Self::next_command) until it returns `Ok(None)`.
///
/// Parsing state is kept between calls: a bulk string arriving in pieces is copied once into
/// its argument as bytes come in, and a line is scanned once, so the work is O(bytes) overall.
/// Pipelined commands are returned in order. After an error the parser stays failed.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    buf: InBuf,
    multi: Option<Multi>,
    /// Bytes consumed for the command being read (not returned yet).
    in_progress: usize,
    failed: Option<RespError>,
}

enum Step {
    NeedMore,
    Skipped,
    Started,
    Done(Command),
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: InBuf::default(),
            multi: None,
            in_progress: 0,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// The next complete command; `Ok(None)` means more bytes are needed. Empty inline lines
    /// and `*0` / `*-1` requests are skipped, like Redis does.
    pub fn next_command(&mut self) -> Result<Option<Command>, RespError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = self.parse();
        crate::error::remember(&mut self.failed, res)
    }

    /// Bytes received and not yet returned as a command: unparsed bytes plus those of the
    /// partly read command. Zero means the connection is between commands.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.in_progress
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn parse(&mut self) -> Result<Option<Command>, RespError> {
        loop {
            let step = match self.multi.as_mut() {
                Some(m) => {
                    let before = self.buf.len();
                    let done = fill_multi(&mut self.buf, &self.limits, m);
                    self.in_progress += before - self.buf.len();
                    if done? {
                        let args = self.multi.take().map(|m| m.args).unwrap_or_default();
                        Step::Done(Command { args })
                    } else {
                        Step::NeedMore
                    }
                }
                None => match self.buf.first() {
                    None => Step::NeedMore,
                    Some(b'*') => self.start_multibulk()?,
                    Some(_) => self.inline()?,
                },
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Started => {}
                Step::Skipped => self.in_progress = 0,
                Step::Done(cmd) => {
                    self.in_progress = 0;
                    return Ok(Some(cmd));
                }
            }
        }
    }

    fn start_multibulk(&mut self) -> Result<Step, RespError> {
        let invalid = || RespError::protocol("invalid multibulk length");
        let (end, total) = match self.buf.line(HEADER_WINDOW) {
            Line::Incomplete => return Ok(Step::NeedMore),
            Line::TooLong | Line::BadEnd => return Err(invalid()),
            Line::Found { end, total } => (end, total),
        };
        let n = self
            .buf
            .rest()
            .get(1..end)
            .and_then(parse_i64)
            .ok_or_else(invalid)?;
        // Redis refuses counts above INT_MAX and skips `*0` / `*-1`; anything below -1 is
        // refused here (Redis would skip it too, but no client sends it).
        if n < -1 || n > i64::from(i32::MAX) {
            return Err(invalid());
        }
        self.buf.consume(total);
        let Ok(expected @ 1..) = usize::try_from(n) else {
            return Ok(Step::Skipped);
        };
        if expected > self.limits.max_args {
            return Err(RespError::too_large(
                LimitKind::Args,
                expected as u64,
                self.limits.max_args,
            ));
        }
        self.in_progress = total;
        self.multi = Some(Multi {
            expected,
            args: Vec::with_capacity(expected.min(ARGS_RESERVE)),
            bulk: None,
        });
        Ok(Step::Started)
    }

    fn inline(&mut self) -> Result<Step, RespError> {
        let max = self.limits.max_inline;
        // The '\n' may sit at index max + 1 when preceded by '\r'.
        let window = max.saturating_add(2);
        let too_big =
            || RespError::too_large(LimitKind::Inline, (max as u64).saturating_add(1), max);
        let Some(lf) = self.buf.find_lf(window) else {
            return if self.buf.len() >= window {
                Err(too_big())
            } else {
                Ok(Step::NeedMore)
            };
        };
        let rest = self.buf.rest();
        let mut line = rest.get(..lf).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.len() > max {
            return Err(too_big());
        }
        let args =
            split_args(line).ok_or_else(|| RespError::protocol("unbalanced quotes in request"))?;
        if args.len() > self.limits.max_args {
            return Err(RespError::too_large(
                LimitKind::Args,
                args.len() as u64,
                self.limits.max_args,
            ));
        }
        self.buf.consume(lf + 1);
        if args.is_empty() {
            Ok(Step::Skipped)
        } else {
            Ok(Step::Done(Command { args }))
        }
    }
}

/// Reads bulk strings into `m` until all its arguments are there (`Ok(true)`) or the input
/// runs out (`Ok(false)`).
fn fill_multi(buf: &mut InBuf, limits: &Limits, m: &mut Multi) -> Result<bool, RespError> {
    loop {
        if let Some((need, data)) = m.bulk.as_mut() {
            let missing = *need - data.len();
            if buf.take_into(data, missing, *need) < missing {
                return Ok(false);
            }
            match buf.rest().get(..2) {
                None => return Ok(false),
                Some(b"\r\n") => buf.consume(2),
                Some(_) => return Err(RespError::protocol("expected CRLF after bulk string")),
            }
            if let Some((_, data)) = m.bulk.take() {
                m.args.push(data);
            }
            continue;
        }
        if m.args.len() >= m.expected {
            return Ok(true);
        }
        match buf.first() {
            None => return Ok(false),
            Some(b'$') => {}
            Some(c) => {
                return Err(RespError::Protocol(format!(
                    "expected '$', got '{}'",
                    show_byte(c)
                )))
            }
        }
        let invalid = || RespError::protocol("invalid bulk length");
        let (end, total) = match buf.line(HEADER_WINDOW) {
            Line::Incomplete => return Ok(false),
            Line::TooLong | Line::BadEnd => return Err(invalid()),
            Line::Found { end, total } => (end, total),
        };
        let n = buf
            .rest()
            .get(1..end)
            .and_then(parse_i64)
            .ok_or_else(invalid)?;
        let len = usize::try_from(n).map_err(|_| invalid())?;
        if len > limits.max_bulk {
            return Err(RespError::too_large(
                LimitKind::Bulk,
                len as u64,
                limits.max_bulk,
            ));
        }
        buf.consume(total);
        m.bulk = Some((len, Vec::new()));
    }
}

fn is_space(c: u8) -> bool {
    // C isspace() in the "C" locale.
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline command line exactly like Redis `sdssplitargs`: blanks separate
/// arguments; `"..."` supports `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`; `'...'`
/// supports `\'`; a closing quote must be followed by a blank or the end. As in Redis (which
/// works on a C string) a NUL byte ends the line. `None` means unbalanced quotes.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => line.get(..nul).unwrap_or_default(),
        None => line,
    };
    // `at(k)` is 0 past the end, like the C string terminator.
    let at = |k: usize| line.get(k).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(at(i)) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = at(i);
            if in_dq {
                let hex = (at(i + 1) == b'x')
                    .then(|| Some(hex_val(at(i + 2))? * 16 + hex_val(at(i + 3))?))
                    .flatten();
                match (c, hex) {
                    (b'\\', Some(byte)) => {
                        cur.push(byte);
                        i += 3;
                    }
                    (b'\\', None) if at(i + 1) != 0 => {
                        i += 1;
                        cur.push(match at(i) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    (b'"', _) => {
                        if at(i + 1) != 0 && !is_space(at(i + 1)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    (0, _) => return None,
                    _ => cur.push(c),
                }
            } else if in_sq {
                match c {
                    b'\\' if at(i + 1) == b'\'' => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    b'\'' => {
                        if at(i + 1) != 0 && !is_space(at(i + 1)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    0 => return None,
                    _ => cur.push(c),
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            i += 1;
                        }
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn cmd(args: &[&str]) -> Command {
        Command::new(s(args))
    }

    /// Feeds `input` in one push and returns every command, or the first error.
    fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<Command>, RespError> {
        let mut p = RequestParser::new(limits);
        p.push(input);
        let mut out = Vec::new();
        while let Some(c) = p.next_command()? {
            out.push(c);
        }
        Ok(out)
    }

    /// Feeds `input` split at `cuts` (sorted offsets), draining after every push.
    fn parse_split(
        input: &[u8],
        cuts: &[usize],
        limits: Limits,
    ) -> Result<Vec<Command>, RespError> {
        let mut p = RequestParser::new(limits);
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            p.push(&input[start..cut]);
            start = cut;
            while let Some(c) = p.next_command()? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn err(input: &[u8], limits: Limits) -> RespError {
        match parse_all(input, limits) {
            Err(e) => e,
            Ok(cmds) => panic!("expected an error for {input:?}, got {cmds:?}"),
        }
    }

    /// The same error whether the input comes in one piece, split anywhere, or byte by byte.
    fn err_everywhere(input: &[u8], limits: Limits) -> RespError {
        let e = err(input, limits);
        for cut in 0..=input.len() {
            assert_eq!(
                parse_split(input, &[cut], limits),
                Err(e.clone()),
                "cut {cut}"
            );
        }
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(parse_split(input, &bytewise, limits), Err(e.clone()));
        e
    }

    fn protocol(msg: &str) -> RespError {
        RespError::Protocol(msg.into())
    }

    #[test]
    fn multibulk_command() {
        let got = parse_all(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
            Limits::default(),
        );
        assert_eq!(got, Ok(vec![cmd(&["SET", "k", "hello"])]));
    }

    #[test]
    fn command_helpers() {
        let c = cmd(&["get", "key"]);
        assert_eq!(c.name_upper(), "GET");
        assert!(c.is("GeT"));
        assert!(!c.is("GETX"));
        assert_eq!(c.arg(1), Some(&b"key"[..]));
        assert_eq!(c.arg(2), None);
        assert_eq!(c.len(), 2);
        assert!(!c.is_empty());
        let bad = Command::new(vec![vec![0xff, b'a']]);
        assert_eq!(bad.name_upper(), "\u{fffd}A");
        assert_eq!(Command::default().name_upper(), "");
    }

    #[test]
    fn encode_command_bytes() {
        let mut out = Vec::new();
        encode_command(&[b"SET", b"k", b""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        out.clear();
        encode_command(&[], &mut out);
        assert_eq!(out, b"*0\r\n");
    }

    #[test]
    fn binary_args_with_crlf_and_nul() {
        let mut wire = Vec::new();
        encode_command(&[b"SET", b"\r\n\0*$", b"\0"], &mut wire);
        let got = parse_all(&wire, Limits::default()).unwrap();
        assert_eq!(
            got[0].args,
            vec![b"SET".to_vec(), b"\r\n\0*$".to_vec(), b"\0".to_vec()]
        );
    }

    #[test]
    fn empty_multibulk_and_null_are_skipped() {
        let got = parse_all(
            b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r\n",
            Limits::default(),
        );
        assert_eq!(got, Ok(vec![cmd(&["PING"])]));
    }

    #[test]
    fn inline_commands() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"PING\r\n", &["PING"]),
            (b"PING\n", &["PING"]),
            (b"  set  k   v \t\r\n", &["set", "k", "v"]),
            (b"set k \"hello world\"\n", &["set", "k", "hello world"]),
            (b"set k 'a \"b\"'\n", &["set", "k", "a \"b\""]),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_all(input, Limits::default()),
                Ok(vec![cmd(want)]),
                "{input:?}"
            );
        }
    }

    #[test]
    fn inline_quotes_and_escapes() {
        let ok: &[(&[u8], Vec<Vec<u8>>)] = &[
            (
                b"a \"\\x41\\x4a\\x00z\"",
                vec![b"a".to_vec(), b"AJ\0z".to_vec()],
            ),
            (
                b"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
                vec![b"\n\r\t\x08\x07\\\"q".to_vec()],
            ),
            (b"\"\\xZZ\"", vec![b"xZZ".to_vec()]),
            (
                b"'it\\'s' 'a\\nb'",
                vec![b"it's".to_vec(), b"a\\nb".to_vec()],
            ),
            (b"\"\" ''", vec![vec![], vec![]]),
            (
                b"foo\"bar baz\" x",
                vec![b"foobar baz".to_vec(), b"x".to_vec()],
            ),
            (b"\"a\"\t'b'", vec![b"a".to_vec(), b"b".to_vec()]),
            (b"\x0bx\x0cy", vec![b"x\x0cy".to_vec()]),
            (b"a\0 b c", vec![b"a".to_vec()]),
            (b"   ", vec![]),
        ];
        for (line, want) in ok {
            assert_eq!(split_args(line).as_ref(), Some(want), "{line:?}");
        }
        for bad in [
            &b"\"abc"[..],
            b"'abc",
            b"\"a\"b",
            b"'a'b",
            b"\"abc\\\"",
            b"\"ab\0c\"",
            b"\"\\x4",
        ] {
            assert_eq!(split_args(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn inline_errors_and_empty_lines() {
        assert_eq!(
            parse_all(b"\r\n\n   \r\nPING\r\n", Limits::default()),
            Ok(vec![cmd(&["PING"])])
        );
        let e = err_everywhere(b"set k \"v\r\n", Limits::default());
        assert_eq!(e, protocol("unbalanced quotes in request"));
        assert_eq!(
            e.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            e.to_reply(),
            crate::Reply::Error("ERR Protocol error: unbalanced quotes in request".into())
        );
    }

    #[test]
    fn pipeline_split_at_every_offset() {
        let mut wire = Vec::new();
        encode_command(&[b"SET", b"key", b"va\r\nlue"], &mut wire);
        wire.extend_from_slice(b"*0\r\n\r\nPING\r\n*-1\r\n");
        encode_command(&[b"GET", b"key"], &mut wire);
        wire.extend_from_slice(b"echo \"a b\" 'c'\n");
        encode_command(&[b"DEL", b""], &mut wire);
        let want = vec![
            Command::new(vec![
                b"SET".to_vec(),
                b"key".to_vec(),
                b"va\r\nlue".to_vec(),
            ]),
            cmd(&["PING"]),
            cmd(&["GET", "key"]),
            cmd(&["echo", "a b", "c"]),
            cmd(&["DEL", ""]),
        ];
        let limits = Limits::default();
        assert_eq!(parse_all(&wire, limits).as_ref(), Ok(&want));
        for a in 0..=wire.len() {
            assert_eq!(
                parse_split(&wire, &[a], limits).as_ref(),
                Ok(&want),
                "cut {a}"
            );
            for b in a..=wire.len() {
                assert_eq!(parse_split(&wire, &[a, b], limits).as_ref(), Ok(&want));
            }
        }
        let bytewise: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(parse_split(&wire, &bytewise, limits), Ok(want));
    }

    #[test]
    fn buffered_counts_partial_command() {
        let mut p = RequestParser::new(Limits::default());
        assert_eq!(p.buffered(), 0);
        p.push(b"*2\r\n$3\r\nGET\r\n$3\r\nke");
        assert_eq!(p.next_command(), Ok(None));
        assert_eq!(p.buffered(), 19);
        p.push(b"y\r\n*1\r\n");
        assert_eq!(p.next_command(), Ok(Some(cmd(&["GET", "key"]))));
        assert_eq!(p.buffered(), 4);
        assert_eq!(p.next_command(), Ok(None));
        assert_eq!(p.buffered(), 4);
        p.push(b"$4\r\nPING\r\n");
        assert_eq!(p.next_command(), Ok(Some(cmd(&["PING"]))));
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn large_bulk_in_pieces_is_copied_once() {
        let value = vec![7u8; 3 * 1024 * 1024];
        let mut wire = Vec::new();
        encode_command(&[b"SET", b"k", &value], &mut wire);
        let mut p = RequestParser::new(Limits::default());
        for chunk in wire.chunks(16 * 1024) {
            p.push(chunk);
            if let Some(c) = p.next_command().unwrap() {
                assert_eq!(c.args[2].len(), value.len());
                // Capacity never exceeds the declared length.
                assert_eq!(c.args[2].capacity(), value.len());
                assert_eq!(p.buffered(), 0);
                return;
            }
            // The bulk is moved out of the input buffer as it arrives.
            assert!(p.buf.rest().len() < 16 * 1024);
        }
        panic!("command never completed");
    }

    #[test]
    fn hostile_lengths() {
        let l = Limits::default();
        let invalid_mb = protocol("invalid multibulk length");
        let invalid_bulk = protocol("invalid bulk length");
        assert_eq!(err_everywhere(b"*-5\r\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*2147483648\r\n", l), invalid_mb);
        assert_eq!(
            err_everywhere(b"*99999999999999999999999\r\n", l),
            invalid_mb
        );
        assert_eq!(err_everywhere(b"*abc\r\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*\r\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*+1\r\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*01\r\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*1\n", l), invalid_mb);
        assert_eq!(err_everywhere(b"*1 \r\n", l), invalid_mb);
        assert_eq!(
            err_everywhere(b"*1048577\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Args,
                len: 1_048_577,
                limit: 1_048_576
            }
        );
        assert_eq!(
            err_everywhere(b"*1\r\n$999999999999\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Bulk,
                len: 999_999_999_999,
                limit: 512 << 20
            }
        );
        assert_eq!(
            err(b"*1\r\n$999999999999\r\n", l).to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(err_everywhere(b"*1\r\n$-1\r\n", l), invalid_bulk);
        assert_eq!(err_everywhere(b"*1\r\n$-5\r\n", l), invalid_bulk);
        assert_eq!(err_everywhere(b"*1\r\n$x\r\n", l), invalid_bulk);
        assert_eq!(
            err_everywhere(b"*1\r\n$99999999999999999999999\r\n", l),
            invalid_bulk
        );
        assert_eq!(err_everywhere(b"*1\r\n$3\n", l), invalid_bulk);
        let e = err_everywhere(b"*1\r\nx3\r\n", l);
        assert_eq!(e.to_string(), "Protocol error: expected '$', got 'x'");
        assert_eq!(
            err_everywhere(b"*1\r\n:1\r\n", l).to_string(),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            err_everywhere(b"*2\r\n$1\r\na\r\n\r\n", l).to_string(),
            "Protocol error: expected '$', got '\\x0d'"
        );
    }

    #[test]
    fn lengths_over_configured_limits() {
        let l = Limits {
            max_bulk: 4,
            max_args: 2,
            max_inline: 8,
            ..Limits::default()
        };
        assert_eq!(
            parse_all(b"*2\r\n$4\r\nabcd\r\n$0\r\n\r\n", l).map(|v| v.len()),
            Ok(1)
        );
        assert!(matches!(
            err_everywhere(b"*1\r\n$5\r\nabcde\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Bulk,
                len: 5,
                limit: 4
            }
        ));
        assert!(matches!(
            err_everywhere(b"*3\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Args,
                len: 3,
                limit: 2
            }
        ));
        assert!(matches!(
            err_everywhere(b"a b c\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Args,
                len: 3,
                limit: 2
            }
        ));
        // Inline: 8 bytes of content is fine with either terminator, 9 is not.
        assert_eq!(parse_all(b"12345678\r\n", l).map(|v| v.len()), Ok(1));
        assert_eq!(parse_all(b"12345678\n", l).map(|v| v.len()), Ok(1));
        let e = err_everywhere(b"123456789\n", l);
        assert!(matches!(
            e,
            RespError::TooLarge {
                kind: LimitKind::Inline,
                ..
            }
        ));
        assert_eq!(e.to_string(), "Protocol error: too big inline request");
        assert!(matches!(
            err_everywhere(b"123456789\r\n", l),
            RespError::TooLarge {
                kind: LimitKind::Inline,
                ..
            }
        ));
        // Unterminated: refused as soon as it cannot fit, never buffered further.
        let mut p = RequestParser::new(l);
        p.push(b"123456789");
        assert_eq!(p.next_command(), Ok(None));
        p.push(b"0");
        assert!(matches!(
            p.next_command(),
            Err(RespError::TooLarge {
                kind: LimitKind::Inline,
                ..
            })
        ));
    }

    #[test]
    fn unterminated_default_inline_limit() {
        let mut p = RequestParser::new(Limits::default());
        let chunk = vec![b'a'; 4096];
        for _ in 0..16 {
            p.push(&chunk);
            assert_eq!(p.next_command(), Ok(None));
        }
        p.push(b"aa");
        let e = p.next_command().unwrap_err();
        assert!(matches!(
            e,
            RespError::TooLarge {
                kind: LimitKind::Inline,
                limit: 65536,
                ..
            }
        ));
    }

    #[test]
    fn header_without_crlf_is_bounded() {
        let mut p = RequestParser::new(Limits::default());
        p.push(b"*1");
        assert_eq!(p.next_command(), Ok(None));
        p.push(&[b'1'; 40]);
        assert_eq!(p.next_command(), Err(protocol("invalid multibulk length")));
    }

    #[test]
    fn missing_crlf_after_bulk() {
        let l = Limits::default();
        let e = protocol("expected CRLF after bulk string");
        assert_eq!(err_everywhere(b"*1\r\n$3\r\nabcd\r\n", l), e);
        assert_eq!(err_everywhere(b"*1\r\n$3\r\nabc\n\r", l), e);
        assert_eq!(err_everywhere(b"*1\r\n$3\r\nabc\r\r", l), e);
    }

    #[test]
    fn nul_bytes() {
        let l = Limits::default();
        assert_eq!(
            parse_all(b"*1\r\n$3\r\n\0\0\0\r\n", l),
            Ok(vec![Command::new(vec![vec![0, 0, 0]])])
        );
        assert_eq!(parse_all(b"PING\0junk\r\n", l), Ok(vec![cmd(&["PING"])]));
        assert_eq!(parse_all(b"\0\r\nPING\r\n", l), Ok(vec![cmd(&["PING"])]));
        assert_eq!(
            err_everywhere(b"*1\r\n\0", l).to_string(),
            "Protocol error: expected '$', got '\\x00'"
        );
        assert_eq!(
            err_everywhere(b"*\0\r\n", l),
            protocol("invalid multibulk length")
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut p = RequestParser::new(Limits::default());
        p.push(b"*x\r\n");
        let e = p.next_command().unwrap_err();
        p.push(b"PING\r\n");
        assert_eq!(p.next_command(), Err(e));
    }
}
