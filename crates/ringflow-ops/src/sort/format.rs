//! Sort record formats on disk: fixed 100-byte gensort records, or lines with an
//! optional key field; an incremental [`RecordReader`] and [`write_record`].

use std::borrow::Borrow;
use std::io::{self, BufRead, BufReader, Read, Write};

use super::record::{cmp_records, record_checksum, SortRecord};

/// Size of a gensort record.
pub const GENSORT_RECORD: usize = 100;
/// Size of a gensort key (the first bytes of a record).
pub const GENSORT_KEY: usize = 10;
/// Default longest line a [`RecordReader`] accepts (1 MiB, newline excluded).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// How records are laid out in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Fixed 100-byte records (as written by `gensort`); the key is bytes `0..10`.
    Gensort,
    /// One record per line, without its `\n` (and without a `\r` before it). The key is
    /// the whole line, or the 0-based field `key_field` when the line is split at
    /// `delimiter` (a line lacking that field has an empty key).
    Lines {
        /// The key field, or `None` for the whole line.
        key_field: Option<usize>,
        /// The field delimiter (one byte).
        delimiter: u8,
    },
}

impl Format {
    /// The format named `name` (`gensort` or `lines`). `delimiter` must be one byte
    /// (or the escapes `\t`, `\\`); `key_field` applies to `lines` only.
    pub fn parse(name: &str, key_field: Option<usize>, delimiter: &str) -> Result<Format, String> {
        match name {
            "gensort" => {
                if key_field.is_some() {
                    return Err("'key_field' applies to the 'lines' format only".into());
                }
                Ok(Format::Gensort)
            }
            "lines" => {
                let delimiter = match delimiter.as_bytes() {
                    [b] => *b,
                    b"\\t" => b'\t',
                    b"\\\\" => b'\\',
                    _ => {
                        return Err(format!(
                            "'delimiter' must be a single byte, not {delimiter:?}"
                        ))
                    }
                };
                if matches!(delimiter, b'\n' | b'\r') {
                    return Err("'delimiter' cannot be a line ending".into());
                }
                Ok(Format::Lines {
                    key_field,
                    delimiter,
                })
            }
            other => Err(format!(
                "unknown format '{other}' (expected 'gensort' or 'lines')"
            )),
        }
    }

    /// The format's name as [`Format::parse`] takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Gensort => "gensort",
            Format::Lines { .. } => "lines",
        }
    }

    /// File extension of output parts: `dat` for gensort, `txt` for lines.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Gensort => "dat",
            Format::Lines { .. } => "txt",
        }
    }

    /// Makes a record of `data` (one gensort record, or one line without its ending)
    /// with its key span set as this format says. Data longer than `u32::MAX` bytes
    /// cannot be a record (a span is two `u32`) and gets an empty key.
    pub fn record(&self, data: Vec<u8>) -> SortRecord {
        let (off, len) = match *self {
            Format::Gensort => (0, GENSORT_KEY.min(data.len())),
            Format::Lines {
                key_field: None, ..
            } => (0, data.len()),
            Format::Lines {
                key_field: Some(k),
                delimiter,
            } => field_span(&data, k, delimiter).unwrap_or((0, 0)),
        };
        match (u32::try_from(off), u32::try_from(len)) {
            (Ok(off), Ok(len)) => SortRecord::new(data, off, len),
            _ => SortRecord::new(data, 0, 0),
        }
    }
}

/// (offset, length) of the 0-based field `k` of `line` split at `delimiter`.
fn field_span(line: &[u8], k: usize, delimiter: u8) -> Option<(usize, usize)> {
    let mut start = 0;
    for _ in 0..k {
        let p = line[start..].iter().position(|&b| b == delimiter)?;
        start += p + 1;
    }
    let end = line[start..]
        .iter()
        .position(|&b| b == delimiter)
        .map_or(line.len(), |p| start + p);
    Some((start, end - start))
}

/// Reads [`SortRecord`]s from any reader, incrementally, through a 64 KiB buffer: memory
/// stays bounded by the buffer and one record (lines longer than the limit are an
/// error). A trailing partial gensort record, or a line over the limit, is an
/// [`io::ErrorKind::InvalidData`] error naming the byte offset; a last line without a
/// newline is a record; an empty input has no records.
pub struct RecordReader<R: Read> {
    inner: BufReader<R>,
    format: Format,
    max_line_bytes: usize,
    offset: u64,
    records: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader of `format` records (`format` by value or by reference).
    pub fn new(reader: R, format: impl Borrow<Format>) -> Self {
        RecordReader {
            inner: BufReader::with_capacity(64 * 1024, reader),
            format: *format.borrow(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            offset: 0,
            records: 0,
        }
    }

    /// Sets the longest accepted line (lines format), newline excluded.
    pub fn with_max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max.max(1);
        self
    }

    /// Bytes consumed so far (line endings included).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<SortRecord>> {
        let data = match self.format {
            Format::Gensort => self.next_gensort()?,
            Format::Lines { .. } => self.next_line()?,
        };
        Ok(data.map(|d| {
            self.records += 1;
            self.format.record(d)
        }))
    }

    fn next_gensort(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; GENSORT_RECORD];
        let mut got = 0;
        while got < GENSORT_RECORD {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let at = self.offset;
        self.offset += got as u64;
        match got {
            0 => Ok(None),
            GENSORT_RECORD => Ok(Some(buf)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "trailing partial gensort record at byte offset {at}: {got} of \
                     {GENSORT_RECORD} bytes"
                ),
            )),
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let mut consumed_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                // End of input: a last line without a newline is a record.
                if !consumed_any {
                    return Ok(None);
                }
                return self.finish_line(line).map(Some);
            }
            consumed_any = true;
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(p) => (p, true),
                None => (available.len(), false),
            };
            if line.len() + take > self.max_line_bytes.saturating_add(1) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {} (at byte offset {}) is longer than {} bytes",
                        self.records + 1,
                        self.offset,
                        self.max_line_bytes
                    ),
                ));
            }
            line.extend_from_slice(&available[..take]);
            let used = take + usize::from(done);
            self.inner.consume(used);
            self.offset += used as u64;
            if done {
                return self.finish_line(line).map(Some);
            }
        }
    }

    /// Drops a `\r` ending and checks the length limit.
    fn finish_line(&self, mut line: Vec<u8>) -> io::Result<Vec<u8>> {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max_line_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} bytes",
                    self.records + 1,
                    self.max_line_bytes
                ),
            ));
        }
        Ok(line)
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = io::Result<SortRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Writes one record: gensort records raw (they must be exactly 100 bytes), lines as
/// data + `\n` (the data must not hold a `\n`, nor end in `\r`, or it would not read
/// back as the same record). Anything else is an [`io::ErrorKind::InvalidInput`] error,
/// never a corrupt file. `format` may be given by value or by reference.
pub fn write_record<W: Write + ?Sized>(
    w: &mut W,
    format: impl Borrow<Format>,
    rec: &SortRecord,
) -> io::Result<()> {
    match format.borrow() {
        Format::Gensort => {
            if rec.data.len() != GENSORT_RECORD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a gensort record must be {GENSORT_RECORD} bytes, not {}",
                        rec.data.len()
                    ),
                ));
            }
            w.write_all(&rec.data)
        }
        Format::Lines { .. } => {
            if rec.data.contains(&b'\n') || rec.data.last() == Some(&b'\r') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a line record cannot hold a newline or end in a carriage return",
                ));
            }
            w.write_all(&rec.data)?;
            w.write_all(b"\n")
        }
    }
}

/// What a data set holds, order-independently, and whether it came in order: the
/// record count, record bytes (line endings excluded), the multiset checksum (wrapping
/// `u64` sum of [`record_checksum`]s) and how many records were smaller than the one
/// before them. Feed it the records of the input to get the reference, and the parts of
/// a sorted output in order to check it: same `records` and `checksum`,
/// `out_of_order == 0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SortSummary {
    /// Records seen.
    pub records: u64,
    /// Record bytes seen.
    pub bytes: u64,
    /// Wrapping sum of the records' checksums.
    pub checksum: u64,
    /// Records smaller (in the [`SortRecord`] order) than the record before them.
    pub out_of_order: u64,
    last: Option<SortRecord>,
}

impl SortSummary {
    /// Adds one record (after the previous one, for the order check).
    pub fn add(&mut self, rec: SortRecord) {
        self.records += 1;
        self.bytes += rec.data.len() as u64;
        self.checksum = self
            .checksum
            .wrapping_add(u64::from(record_checksum(&rec.data)));
        if self
            .last
            .as_ref()
            .is_some_and(|l| cmp_records(&rec, l) == std::cmp::Ordering::Less)
        {
            self.out_of_order += 1;
        }
        self.last = Some(rec);
    }

    /// Adds every record of `reader`, in order.
    pub fn add_all<R: Read>(&mut self, reader: RecordReader<R>) -> io::Result<()> {
        for rec in reader {
            self.add(rec?);
        }
        Ok(())
    }

    /// True when both summaries describe the same multiset of records.
    pub fn same_records(&self, other: &SortSummary) -> bool {
        self.records == other.records
            && self.bytes == other.bytes
            && self.checksum == other.checksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(key_field: Option<usize>) -> Format {
        Format::Lines {
            key_field,
            delimiter: b'\t',
        }
    }

    fn read_all(bytes: &[u8], f: Format) -> io::Result<Vec<SortRecord>> {
        RecordReader::new(bytes, f).collect()
    }

    #[test]
    fn formats_parse_and_refuse() {
        assert_eq!(Format::parse("gensort", None, "\t"), Ok(Format::Gensort));
        assert_eq!(
            Format::parse("lines", Some(2), ","),
            Ok(lines(Some(2)).with_delim(b','))
        );
        assert_eq!(Format::parse("lines", None, "\\t"), Ok(lines(None)));
        assert!(Format::parse("gensort", Some(1), "\t").is_err());
        assert!(Format::parse("lines", None, "ab").is_err());
        assert!(Format::parse("lines", None, "").is_err());
        assert!(Format::parse("lines", None, "\n").is_err());
        assert!(Format::parse("csv", None, ",").is_err());
        assert_eq!(Format::Gensort.extension(), "dat");
        assert_eq!(lines(None).extension(), "txt");
    }

    impl Format {
        fn with_delim(self, d: u8) -> Format {
            match self {
                Format::Lines { key_field, .. } => Format::Lines {
                    key_field,
                    delimiter: d,
                },
                f => f,
            }
        }
    }

    #[test]
    fn gensort_records_and_a_partial_tail() {
        let mut bytes: Vec<u8> = (0..250u32).map(|i| (i * 7) as u8).collect();
        let err = read_all(&bytes, Format::Gensort).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("offset 200"), "{err}");
        bytes.truncate(200);
        let recs = read_all(&bytes, Format::Gensort).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].data, &bytes[100..200]);
        assert_eq!(recs[1].key(), &bytes[100..110]);
        assert!(read_all(b"", Format::Gensort).unwrap().is_empty());
        let mut out = Vec::new();
        for r in &recs {
            write_record(&mut out, Format::Gensort, r).unwrap();
        }
        assert_eq!(out, bytes);
        assert!(write_record(&mut out, Format::Gensort, &SortRecord::default()).is_err());
    }

    #[test]
    // `write_record` takes the format by reference too, on purpose.
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn lines_strip_endings_and_find_key_fields() {
        let recs = read_all(b"a\tk1\r\nb\n\nc\tk3\td", lines(Some(1))).unwrap();
        let data: Vec<&[u8]> = recs.iter().map(|r| r.data.as_slice()).collect();
        assert_eq!(data, [&b"a\tk1"[..], b"b", b"", b"c\tk3\td"]);
        let keys: Vec<&[u8]> = recs.iter().map(SortRecord::key).collect();
        // A line lacking the field has an empty key.
        assert_eq!(keys, [&b"k1"[..], b"", b"", b"k3"]);
        let whole = read_all(b"xy\r\n", lines(None)).unwrap();
        assert_eq!(whole[0].key(), b"xy");
        assert!(read_all(b"", lines(None)).unwrap().is_empty());
        assert_eq!(read_all(b"\n", lines(None)).unwrap().len(), 1);
        // A last line ending in a lone \r loses it, as a CRLF line would.
        assert_eq!(read_all(b"z\r", lines(None)).unwrap()[0].data, b"z");
        let mut out = Vec::new();
        // The format by value or by reference.
        let f = lines(None);
        write_record(&mut out, f, &whole[0]).unwrap();
        write_record(&mut out, &f, &recs[2]).unwrap();
        assert_eq!(out, b"xy\n\n");
        assert_eq!(f.name(), "lines");
        let bad = SortRecord::new(b"a\nb".to_vec(), 0, 1);
        assert!(write_record(&mut out, lines(None), &bad).is_err());
    }

    #[test]
    fn long_lines_are_errors() {
        let text = format!("{}\nshort\n", "x".repeat(100));
        let mut r = RecordReader::new(text.as_bytes(), lines(None)).with_max_line_bytes(50);
        assert!(r.next_record().is_err());
        let mut r = RecordReader::new(text.as_bytes(), lines(None)).with_max_line_bytes(100);
        assert_eq!(r.next_record().unwrap().unwrap().data.len(), 100);
        assert_eq!(r.next_record().unwrap().unwrap().data, b"short");
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(r.offset(), text.len() as u64);
        assert_eq!(r.records(), 2);
    }

    #[test]
    #[allow(clippy::needless_borrows_for_generic_args)]
    fn summaries_are_order_independent_and_see_disorder() {
        let text = b"b\na\nc\n";
        let mut unsorted = SortSummary::default();
        unsorted
            .add_all(RecordReader::new(&text[..], lines(None)))
            .unwrap();
        let mut sorted = SortSummary::default();
        sorted
            .add_all(RecordReader::new(&b"a\nb\nc\n"[..], lines(None)))
            .unwrap();
        assert!(sorted.same_records(&unsorted));
        assert_eq!((sorted.out_of_order, unsorted.out_of_order), (0, 1));
        assert_eq!(sorted.records, 3);
        assert_eq!(sorted.bytes, 3);
        let mut other = SortSummary::default();
        // The format by reference.
        let f = lines(None);
        other
            .add_all(RecordReader::new(&b"a\nb\nd\n"[..], &f))
            .unwrap();
        assert_eq!(f.extension(), "txt");
        assert!(!other.same_records(&sorted));
        let mut partial = SortSummary::default();
        assert!(partial
            .add_all(RecordReader::new(&[0u8; 150][..], Format::Gensort))
            .is_err());
    }

    proptest! {
        #[test]
        fn lines_round_trip(lines_in in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40)
                .prop_filter("no trailing cr", |l| l.last() != Some(&b'\r')), 0..30),
            field in proptest::option::of(0usize..3))
        {
            let f = Format::Lines { key_field: field, delimiter: b',' };
            let mut bytes = Vec::new();
            for l in &lines_in {
                write_record(&mut bytes, f, &f.record(l.clone())).unwrap();
            }
            let back = read_all(&bytes, f).unwrap();
            let data: Vec<Vec<u8>> = back.iter().map(|r| r.data.clone()).collect();
            prop_assert_eq!(data, lines_in.clone());
            for (r, l) in back.iter().zip(&lines_in) {
                prop_assert_eq!(r, &f.record(l.clone()));
            }
        }
    }
}
