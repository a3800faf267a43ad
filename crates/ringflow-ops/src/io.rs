//! Line reading and address helpers shared by the file and socket sources (and the
//! socket sink): bounded, resumable line reads that work on blocking and non-blocking
//! readers alike.

use std::io::{self, BufRead};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use ringflow_stream::operator::{OpError, OpResult};

/// Default longest line a source accepts (1 MiB, newline excluded).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one [`read_line`] call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A whole line (with its `\n`) is now in the buffer.
    Line,
    /// End of input; the buffer holds whatever partial line preceded it.
    Eof,
    /// A non-blocking reader has nothing more now; the buffer keeps the partial line.
    WouldBlock,
}

/// Why [`read_line`] failed.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The line grew past the limit before a newline came.
    TooLong,
    /// The reader failed.
    Io(io::Error),
}

/// Appends bytes to `buf` up to and including the next `\n`. Resumable: a partial line
/// left in `buf` by `Eof` or `WouldBlock` is continued by the next call. Fails with
/// `TooLong` once `buf` would exceed `max` bytes without a newline (the newline and a
/// preceding `\r` do not count).
pub(crate) fn read_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<LineRead, LineError> {
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(LineRead::WouldBlock),
            Err(e) => return Err(LineError::Io(e)),
        };
        if avail.is_empty() {
            return Ok(LineRead::Eof);
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let content = buf.len() + i;
                let cr = if i > 0 {
                    avail[i - 1] == b'\r'
                } else {
                    buf.last() == Some(&b'\r')
                };
                if content - usize::from(cr) > max {
                    return Err(LineError::TooLong);
                }
                buf.extend_from_slice(&avail[..=i]);
                r.consume(i + 1);
                return Ok(LineRead::Line);
            }
            None => {
                let n = avail.len();
                // One spare byte: a trailing '\r' may yet turn out to precede the '\n'.
                if buf.len() + n > max.saturating_add(1) {
                    return Err(LineError::TooLong);
                }
                buf.extend_from_slice(avail);
                r.consume(n);
            }
        }
    }
}

/// A line's bytes as a string: the trailing `\n` or `\r\n` removed, invalid UTF-8
/// replaced by U+FFFD. The flag says whether a replacement happened.
pub(crate) fn decode_line(raw: &[u8]) -> (String, bool) {
    let mut end = raw.len();
    if end > 0 && raw[end - 1] == b'\n' {
        end -= 1;
        if end > 0 && raw[end - 1] == b'\r' {
            end -= 1;
        }
    }
    let bytes = &raw[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    }
}

/// Checks `host:port` syntax without resolving the host: a non-empty host (an IPv6
/// address in brackets) and a port in 1..=65535.
pub(crate) fn check_address(address: &str) -> OpResult {
    let bad = |why: &str| OpError(format!("address '{address}': {why}; expected host:port"));
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(bad("whitespace in host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("an IPv6 host needs brackets"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad("port must be 1..=65535")),
        Ok(_) => Ok(()),
    }
}

/// Resolves `address` and connects to the first address that answers within `timeout`.
/// Name resolution uses the system resolver and may block.
pub(crate) fn connect(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor, Read};

    fn lines(input: &[u8], cap: usize, max: usize) -> Result<Vec<(String, bool)>, LineError> {
        let mut r = BufReader::with_capacity(cap, Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, max)? {
                LineRead::Line => {
                    out.push(decode_line(&buf));
                    buf.clear();
                }
                LineRead::Eof | LineRead::WouldBlock => {
                    if !buf.is_empty() {
                        out.push(decode_line(&buf));
                    }
                    return Ok(out);
                }
            }
        }
    }

    #[test]
    fn lines_are_split_on_lf_and_crlf_across_buffer_boundaries() {
        for cap in [1, 2, 3, 7, 64] {
            let got = lines(b"a\r\nbb\n\nccc\r\nlast", cap, 100).unwrap();
            let texts: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
            assert_eq!(texts, ["a", "bb", "", "ccc", "last"], "capacity {cap}");
            assert!(got.iter().all(|(_, bad)| !bad));
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let got = lines(b"ok\nbad \xff\xfe here\n", 4, 100).unwrap();
        assert_eq!(got[0], ("ok".to_owned(), false));
        assert_eq!(got[1], ("bad \u{fffd}\u{fffd} here".to_owned(), true));
    }

    #[test]
    fn the_line_limit_counts_content_only() {
        // Exactly `max` bytes of content passes, with LF or CRLF, whatever the buffering.
        for cap in [1, 3, 5, 64] {
            assert_eq!(lines(b"12345\r\n12345\n", cap, 5).unwrap().len(), 2);
            assert!(matches!(
                lines(b"123456\n", cap, 5),
                Err(LineError::TooLong)
            ));
            assert!(matches!(
                lines(b"1234567890", cap, 5),
                Err(LineError::TooLong)
            ));
        }
    }

    /// A reader that hands out its chunks one at a time with WouldBlock in between.
    struct Trickle(Vec<Vec<u8>>, bool);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            out[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_partial_line_survives_would_block() {
        let mut r = BufReader::new(Trickle(vec![b"he".to_vec(), b"llo\nwo".to_vec()], false));
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 100).unwrap(),
            LineRead::WouldBlock
        );
        assert_eq!(
            read_line(&mut r, &mut buf, 100).unwrap(),
            LineRead::WouldBlock
        );
        assert_eq!(buf, b"he");
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Line);
        assert_eq!(decode_line(&buf).0, "hello");
        buf.clear();
        assert_eq!(
            read_line(&mut r, &mut buf, 100).unwrap(),
            LineRead::WouldBlock
        );
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), LineRead::Eof);
        assert_eq!(buf, b"wo");
    }

    #[test]
    fn addresses_are_checked_without_resolving() {
        for ok in [
            "127.0.0.1:9000",
            "localhost:1",
            "[::1]:65535",
            "some.host.example:80",
        ] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":80",
            "host:",
            "host:0",
            "host:70000",
            "::1:80",
            "a b:1",
        ] {
            let e = check_address(bad).unwrap_err();
            assert!(e.0.contains("host:port"), "{bad}: {e}");
        }
    }
}

/// A source's pace: at most `rate` records a second since its first poll (no burst).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    since: Option<u64>,
    sent: u64,
}

impl Pace {
    /// How many records may go now (at least 1), or how long to wait (ms) for the next.
    pub fn allowed(&mut self, rate: f64, now: u64) -> Result<u64, u64> {
        let start = *self.since.get_or_insert(now);
        let allowed = (rate * now.saturating_sub(start) as f64 / 1000.0).floor() as u64 + 1;
        match allowed.saturating_sub(self.sent) {
            0 => {
                let next = ((self.sent as f64) * 1000.0 / rate).ceil() as u64;
                Err((start + next).saturating_sub(now).max(1))
            }
            left => Ok(left),
        }
    }

    /// `n` records went.
    pub fn sent(&mut self, n: u64) {
        self.sent += n;
    }
}
