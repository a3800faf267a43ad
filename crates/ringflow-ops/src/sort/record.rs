//! [`SortRecord`]: the record of the sort operators, its total order, checksums and hex
//! helpers.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// One record of a sort job: its raw bytes and where its key lies in them.
///
/// The key is `data[key_off .. key_off + key_len]`; an out-of-range key is an empty
/// key (never a panic). Records are ordered by [`cmp_records`]: key bytes first, then
/// the whole `data` as a tiebreak, so records with equal keys still have a
/// deterministic order and range partitioning can split a run of equal keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SortRecord {
    /// The record's bytes as they are read and written (for lines: without the newline).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Offset of the key in `data`.
    pub key_off: u32,
    /// Length of the key.
    pub key_len: u32,
}

impl SortRecord {
    /// A record with its key span.
    pub fn new(data: Vec<u8>, key_off: u32, key_len: u32) -> Self {
        SortRecord {
            data,
            key_off,
            key_len,
        }
    }

    /// The key bytes (empty when the span lies outside `data`).
    pub fn key(&self) -> &[u8] {
        key_slice(&self.data, self.key_off, self.key_len)
    }
}

/// `data[off .. off + len]`, or an empty slice when that span is out of range.
pub fn key_slice(data: &[u8], off: u32, len: u32) -> &[u8] {
    let start = off as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= data.len() => &data[start..end],
        _ => &[],
    }
}

/// The record order on (key, data) given as parts: key bytes, then all data bytes.
pub fn cmp_parts(a_key: &[u8], a_data: &[u8], b_key: &[u8], b_data: &[u8]) -> Ordering {
    a_key.cmp(b_key).then_with(|| a_data.cmp(b_data))
}

/// The total order of sort records: key bytes, then the whole `data` as tiebreak.
pub fn cmp_records(a: &SortRecord, b: &SortRecord) -> Ordering {
    cmp_parts(a.key(), &a.data, b.key(), &b.data)
}

impl Ord for SortRecord {
    /// [`cmp_records`]; two records with the same bytes and the same key but different
    /// key spans (possible only when the key occurs twice in the data) are then ordered
    /// by span, so that `Ord` agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_records(self, other)
            .then_with(|| self.key_off.cmp(&other.key_off))
            .then_with(|| self.key_len.cmp(&other.key_len))
    }
}

impl PartialOrd for SortRecord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The checksum of one record: CRC-32 (IEEE, as `crc32fast`) of its bytes (for lines:
/// without the newline). The checksum of a data set is the wrapping `u64` sum of its
/// records' checksums, together with the record count: independent of order and of
/// how the records are split into files.
pub fn record_checksum(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses hex (either case) back into bytes; an odd length or a non-hex digit is an
/// error naming the position.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    if bytes.len() % 2 != 0 {
        return Err(format!("hex string of odd length {}", bytes.len()));
    }
    let digit = |i: usize| -> Result<u8, String> {
        let c = bytes[i];
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("not a hex digit at position {i}")),
        }
    };
    (0..bytes.len() / 2)
        .map(|i| Ok(digit(2 * i)? << 4 | digit(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_out_of_range_are_empty_not_panics() {
        let r = SortRecord::new(b"hello".to_vec(), 1, 3);
        assert_eq!(r.key(), b"ell");
        assert_eq!(SortRecord::new(b"hi".to_vec(), 1, 5).key(), b"");
        assert_eq!(
            SortRecord::new(b"hi".to_vec(), u32::MAX, u32::MAX).key(),
            b""
        );
        assert_eq!(SortRecord::new(b"hi".to_vec(), 2, 0).key(), b"");
    }

    #[test]
    fn records_order_by_key_then_by_data() {
        let a = SortRecord::new(b"b|zzz".to_vec(), 0, 1);
        let b = SortRecord::new(b"a|zzz".to_vec(), 2, 1);
        let c = SortRecord::new(b"b|aaa".to_vec(), 0, 1);
        // b's key "z" is largest; a and c share key "b" and are ordered by data.
        let mut v = vec![b.clone(), a.clone(), c.clone()];
        v.sort();
        assert_eq!(v, vec![c.clone(), a.clone(), b]);
        assert_eq!(cmp_records(&a, &c), Ordering::Greater);
        let same_bytes = SortRecord::new(b"aa".to_vec(), 1, 1);
        let other_span = SortRecord::new(b"aa".to_vec(), 0, 1);
        assert_eq!(cmp_records(&same_bytes, &other_span), Ordering::Equal);
        assert_ne!(same_bytes.cmp(&other_span), Ordering::Equal);
    }

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(hex(b"\x00\xab"), "00ab");
        assert_eq!(unhex("00AB").unwrap(), b"\x00\xab");
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn checksums_are_crc32() {
        assert_eq!(record_checksum(b"123456789"), 0xcbf4_3926);
        assert_eq!(record_checksum(b""), 0);
    }
}
