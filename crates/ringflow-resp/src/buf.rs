//! The input buffer shared by both parsers, and the strict number parsing Redis uses.

/// Below this many consumed bytes the buffer is not compacted (not worth a memmove).
const COMPACT_MIN: usize = 4096;
/// An emptied buffer whose capacity is above this is shrunk back to [`SHRINK_TO`].
const SHRINK_ABOVE: usize = 4 * 1024 * 1024;
const SHRINK_TO: usize = 64 * 1024;

/// Longest `*<count>\r\n` / `$<len>\r\n` header line, type byte and CRLF included: an `i64`
/// needs at most 20 characters, so anything longer is not a valid length.
pub(crate) const HEADER_WINDOW: usize = 32;

/// Received bytes not yet consumed, with an amortised O(1) compaction and a memo of how far
/// the current line has been searched, so a line that arrives in pieces is scanned once.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    data: Vec<u8>,
    pos: usize,
    /// Bytes after `pos` known to contain no `\n`.
    scanned: usize,
}

/// Result of looking for a CRLF-terminated line.
pub(crate) enum Line {
    /// No `\n` yet within the window.
    Incomplete,
    /// No `\n` within the window although the window is full.
    TooLong,
    /// A `\n` not preceded by `\r`.
    BadEnd,
    /// `rest()[..end]` is the line (type byte included), `total` bytes including CRLF.
    Found { end: usize, total: usize },
}

impl InBuf {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.pos >= self.data.len() {
            self.data.clear();
            self.pos = 0;
            if self.data.capacity() > SHRINK_ABOVE && bytes.len() <= SHRINK_TO {
                self.data.shrink_to(SHRINK_TO);
            }
        } else if self.pos >= COMPACT_MIN && self.pos >= self.data.len() / 2 {
            // Moves at most as many bytes as were consumed since the last compaction.
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Unconsumed bytes.
    pub(crate) fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn first(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.data.len());
        self.scanned = 0;
    }

    /// Index (relative to the unconsumed bytes) of the first `\n` within the first `window`
    /// bytes. Bytes already searched at this position are not searched again.
    pub(crate) fn find_lf(&mut self, window: usize) -> Option<usize> {
        let rest = self.rest();
        let end = rest.len().min(window);
        let from = self.scanned.min(end);
        let found = rest
            .get(from..end)
            .and_then(|s| s.iter().position(|&b| b == b'\n'));
        match found {
            Some(i) => Some(from + i),
            None => {
                self.scanned = end;
                None
            }
        }
    }

    /// A `\r\n`-terminated line whose `\n` lies within the first `window` bytes.
    pub(crate) fn line(&mut self, window: usize) -> Line {
        match self.find_lf(window) {
            Some(i) if i >= 1 && self.rest().get(i - 1) == Some(&b'\r') => Line::Found {
                end: i - 1,
                total: i + 1,
            },
            Some(_) => Line::BadEnd,
            None if self.len() >= window => Line::TooLong,
            None => Line::Incomplete,
        }
    }

    /// Moves up to `missing` bytes into `data`, growing it at most geometrically and never
    /// past `cap` (the declared length): capacity tracks bytes received, not bytes promised.
    /// Returns how many bytes were moved.
    pub(crate) fn take_into(&mut self, data: &mut Vec<u8>, missing: usize, cap: usize) -> usize {
        let take = missing.min(self.len());
        if take == 0 {
            return 0;
        }
        let needed = data.len() + take;
        if needed > data.capacity() {
            let want = needed.max(data.capacity().saturating_mul(2)).min(cap);
            data.reserve_exact(want.saturating_sub(data.len()));
        }
        if let Some(chunk) = self.rest().get(..take) {
            data.extend_from_slice(chunk);
        }
        self.consume(take);
        take
    }
}

/// Parses a length or integer exactly like Redis `string2ll`: optional `-`, no `+`, no
/// leading zeros, no spaces, no overflow; `-0` is rejected.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_is_strict_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"12"), Some(12));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compaction_keeps_unread_bytes() {
        let mut b = InBuf::default();
        b.push(&[b'x'; 10_000]);
        b.consume(9_000);
        b.push(b"yz");
        assert_eq!(b.len(), 1_002);
        assert_eq!(&b.rest()[1_000..], b"yz");
        b.consume(1_002);
        b.push(b"a");
        assert_eq!(b.rest(), b"a");
    }
}
