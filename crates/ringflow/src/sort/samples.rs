//! Where the splitters come from: a sample the client draws from records it streams
//! itself, or the samples a sample job left in the DHT (or in files), weighed so that
//! every kept sample stands for the same number of input records.

use std::path::{Path, PathBuf};

use ringflow_ops::Reservoir;
use ringflow_ring::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ops::{self, Format, KeyData, RecordReader, SortRecord};
use super::SortError;
use crate::{Cluster, DhtClient};

/// Count, size and checksum of a side (input or output) of a sort.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SideInfo {
    /// Records.
    pub records: u64,
    /// Bytes as the operators counted them.
    pub bytes: u64,
    /// Wrapping sum of the records' CRC-32s, 16 hex digits.
    #[serde(with = "hex_u64")]
    pub checksum: u64,
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

/// Records that the client streams to the workers itself. The driver makes two passes:
/// one for the sample, one to send them.
pub trait RecordSource: Send + Sync {
    /// A fresh pass over every record, in a stable order.
    fn records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<SortRecord, SortError>> + '_>, SortError>;

    /// What the records are, for the user (`3 input file(s)`).
    fn describe(&self) -> String;
}

/// Files the client reads and streams (`ringflow sort --from-client`).
pub struct ClientFiles {
    /// The files, in order.
    pub files: Vec<PathBuf>,
    /// How records are delimited and keyed.
    pub format: Format,
}

impl ClientFiles {
    /// The regular files of `paths`, in order (directories: their files by name, hidden
    /// and `.tmp` files left out).
    pub fn list(paths: &[PathBuf], format: Format) -> Result<Self, SortError> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| SortError::io(format!("listing {}", p.display()), e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && !f
                                .file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with('.') || n.ends_with(".tmp"))
                    })
                    .collect();
                names.sort();
                files.extend(names);
            } else {
                files.push(p.clone());
            }
        }
        Ok(ClientFiles { files, format })
    }
}

impl RecordSource for ClientFiles {
    fn records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<SortRecord, SortError>> + '_>, SortError> {
        let format = self.format;
        let iter = self.files.iter().flat_map(move |f| {
            let reader: Box<dyn Iterator<Item = Result<SortRecord, SortError>>> =
                match std::fs::File::open(f) {
                    Ok(file) => Box::new(RecordReader::new(file, format).map(move |r| {
                        r.map_err(|e| SortError::io(format!("reading {}", f.display()), e))
                    })),
                    Err(e) => Box::new(std::iter::once(Err(SortError::io(
                        format!("opening {}", f.display()),
                        e,
                    )))),
                };
            reader
        });
        Ok(Box::new(iter))
    }

    fn describe(&self) -> String {
        format!("{} input file(s)", self.files.len())
    }
}

/// Byte strings held by the client, each its own key ([`crate::Sorter`]).
pub struct Values(pub Vec<Vec<u8>>);

impl RecordSource for Values {
    fn records(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<SortRecord, SortError>> + '_>, SortError> {
        Ok(Box::new(self.0.iter().map(|data| {
            Ok(SortRecord {
                key_off: 0,
                key_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data: data.clone(),
            })
        })))
    }

    fn describe(&self) -> String {
        format!("{} value(s)", self.0.len())
    }
}

/// First pass over client-held records: count, checksum and a uniform sample of at most
/// `max` (reservoir sampling with a fixed seed, so a rerun picks the same splitters).
pub fn client_sample(
    source: &dyn RecordSource,
    max: usize,
) -> Result<(SideInfo, Vec<KeyData>), SortError> {
    let mut info = SideInfo {
        records: 0,
        bytes: 0,
        checksum: 0,
    };
    let mut sample = Reservoir::new(max, SplitMix64::new(0x5EED));
    for rec in source.records()? {
        let rec = rec?;
        info.records += 1;
        info.bytes += rec.data.len() as u64;
        info.checksum = info
            .checksum
            .wrapping_add(u64::from(ops::record_checksum(&rec.data)));
        sample.offer_with(|| (rec.key().to_vec(), rec.data.clone()));
    }
    let sample = sample.take();
    Ok((info, sample))
}

/// Reads a sample job's samples back from the DHT: (all samples, weighted to equal
/// shares; records seen by the sample instances). Deletes them afterwards.
pub async fn read_dht(
    cluster: &Cluster,
    run: &str,
    instances: usize,
) -> Result<(Vec<KeyData>, u64), SortError> {
    let dht = DhtClient::connect(&cluster.coordinator, &cluster.identity, &cluster.name)
        .await
        .map_err(|source| SortError::Dht {
            what: "connecting to the DHT",
            source,
        })?;
    let r = read_dht_with(&dht, run, instances).await;
    dht.close().await;
    r
}

async fn read_dht_with(
    dht: &DhtClient,
    run: &str,
    instances: usize,
) -> Result<(Vec<KeyData>, u64), SortError> {
    let keys: Vec<String> = (0..instances)
        .map(|i| format!("sort:{run}:sample:{i}"))
        .collect();
    let values = dht
        .get_many(keys.clone())
        .await
        .map_err(|source| SortError::Dht {
            what: "reading the samples",
            source,
        })?;
    let mut per_instance = Vec::new();
    for (key, v) in keys.iter().zip(values) {
        let Some(v) = v else {
            return Err(SortError::Failed(format!(
                "no samples under {key} in the DHT"
            )));
        };
        let parsed = parse_samples(&v)
            .map_err(|e| SortError::Invalid(format!("the samples under {key}: {e}")))?;
        per_instance.push(parsed);
    }
    if let Err(e) = dht.delete_many(keys).await {
        tracing::warn!(error = %e, "could not delete the samples from the DHT");
    }
    let seen = per_instance.iter().map(|(s, _)| *s).sum();
    Ok((weigh_samples(per_instance), seen))
}

/// Reads a sample job's samples from the `sink.file` parts in `dir` (one line per
/// instance).
pub fn read_files(dir: &Path, instances: usize) -> Result<(Vec<KeyData>, u64), SortError> {
    let mut per_instance = Vec::new();
    for i in 0..instances {
        let path = dir.join(format!("part-{i:05}.jsonl"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SortError::Failed(format!(
                "cannot read the samples in {}: {e} (the output directory must be on a \
                 filesystem the workers share with this client)",
                path.display()
            ))
        })?;
        let invalid =
            |e: String| SortError::Invalid(format!("the samples in {}: {e}", path.display()));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| invalid(e.to_string()))?;
            let inner = v.get("value").unwrap_or(&v);
            let parsed = parse_samples(inner.to_string().as_bytes()).map_err(invalid)?;
            per_instance.push(parsed);
        }
    }
    if per_instance.len() != instances {
        return Err(SortError::Failed(format!(
            "expected samples from {instances} instances in {}, found {}",
            dir.display(),
            per_instance.len()
        )));
    }
    let seen = per_instance.iter().map(|(s, _)| *s).sum();
    Ok((weigh_samples(per_instance), seen))
}

/// `{"instance", "seen", "samples": [{"key": hex, "data": hex}]}` → (seen, samples).
fn parse_samples(bytes: &[u8]) -> Result<(u64, Vec<KeyData>), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let seen = v["seen"].as_u64().ok_or("no 'seen' count")?;
    let out = ops::samples_from_value(&v)?;
    Ok((seen, out))
}

/// Makes every kept sample stand for the same number of input records: the instance
/// that saw the most records per sample keeps all its samples, the others keep an
/// evenly spaced proportional share (their samples come sorted, so every k-th one).
pub fn weigh_samples(per_instance: Vec<(u64, Vec<KeyData>)>) -> Vec<KeyData> {
    let rate = |seen: u64, n: usize| seen as f64 / n.max(1) as f64;
    let max_rate = per_instance
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(seen, s)| rate(*seen, s.len()))
        .fold(0.0f64, f64::max);
    let mut all = Vec::new();
    for (seen, s) in per_instance {
        let n = s.len();
        if n == 0 {
            continue;
        }
        let keep = ((n as f64) * rate(seen, n) / max_rate).round() as usize;
        let keep = keep.clamp(1, n);
        if keep == n {
            all.extend(s);
            continue;
        }
        // Positions (i + 0.5) * n / keep: evenly spaced through the sorted samples.
        let mut s: Vec<Option<KeyData>> = s.into_iter().map(Some).collect();
        for i in 0..keep {
            let pos = (((2 * i + 1) * n) / (2 * keep)).min(n - 1);
            if let Some(x) = s[pos].take() {
                all.push(x);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_weighed_to_equal_shares() {
        let s = |n: usize, tag: u8| -> Vec<KeyData> {
            (0..n).map(|i| (vec![tag, i as u8], vec![tag])).collect()
        };
        // A saw 10x as many records per sample as B: B keeps a tenth, evenly spaced.
        let all = weigh_samples(vec![(1000, s(10, 1)), (100, s(10, 2)), (0, Vec::new())]);
        let a: Vec<_> = all.iter().filter(|k| k.0[0] == 1).collect();
        let b: Vec<_> = all.iter().filter(|k| k.0[0] == 2).collect();
        assert_eq!((a.len(), b.len()), (10, 1));
        assert_eq!(b[0].0, vec![2, 5]);
        // Equal rates keep everything.
        assert_eq!(weigh_samples(vec![(50, s(5, 1)), (50, s(5, 2))]).len(), 10);
    }

    #[test]
    fn a_client_sample_counts_every_record_and_keeps_at_most_max() {
        let values = Values((0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect());
        let (info, sample) = client_sample(&values, 50).unwrap();
        assert_eq!(info.records, 1000);
        assert_eq!(info.bytes, 4000);
        assert_eq!(sample.len(), 50);
        let (_, again) = client_sample(&values, 50).unwrap();
        assert_eq!(sample, again, "the sample is deterministic");
        let (_, all) = client_sample(&values, 5000).unwrap();
        assert_eq!(all.len(), 1000);
    }

    #[test]
    fn a_missing_client_file_is_an_error_naming_it() {
        let files = ClientFiles {
            files: vec![PathBuf::from("/nonexistent/ringflow-input")],
            format: Format::parse("lines", None, "\t").unwrap(),
        };
        let err = client_sample(&files, 10).unwrap_err().to_string();
        assert!(err.contains("opening /nonexistent/ringflow-input"), "{err}");
    }
}
