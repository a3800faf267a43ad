//! A checkpoint store in a directory (local disk, or a shared filesystem mounted on
//! every worker): the other choice besides the cluster's DHT.
//!
//! Each key is one file. Its path is the key's `/`-separated segments, each
//! percent-encoded (anything but `A-Z a-z 0-9 - _ .`, and the segments `.` and `..`), so
//! no key can name a file outside the directory. A write goes to a temporary file that is
//! synced and renamed, and the directory is synced: `put` returning `Ok` means durable.
//! The store survives the loss of a worker only if the directory does (a shared
//! filesystem); on one machine's disk it survives process kills, not that disk's loss.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ringflow_stream::checkpoint::CheckpointStore;

/// Checkpoint parts as files under a root directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created at the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`.
    fn path(&self, key: &[u8]) -> PathBuf {
        let mut p = self.root.clone();
        for seg in key.split(|b| *b == b'/') {
            p.push(encode_segment(seg));
        }
        p
    }
}

/// Percent-encodes a key segment into a safe file name.
fn encode_segment(seg: &[u8]) -> String {
    if seg.is_empty() {
        return "%".into();
    }
    if seg == b"." || seg == b".." {
        return seg.iter().map(|_| "%2E").collect();
    }
    let mut out = String::with_capacity(seg.len());
    for &b in seg {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn io(doing: &str, path: &Path, e: std::io::Error) -> String {
    format!("checkpoint directory: {doing} {}: {e}", path.display())
}

impl CheckpointStore for DirStore {
    fn put(&self, items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        let mut dirs = std::collections::BTreeSet::new();
        for (key, value) in items {
            let path = self.path(&key);
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp~");
            let tmp = PathBuf::from(tmp);
            let mut f = fs::File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
            f.write_all(&value)
                .and_then(|()| f.sync_all())
                .map_err(|e| io("writing", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
            dirs.insert(dir);
        }
        for dir in dirs {
            fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("syncing", &dir, e))?;
        }
        Ok(())
    }

    fn get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String> {
        keys.iter()
            .map(|k| {
                let path = self.path(k);
                match fs::read(&path) {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io("reading", &path, e)),
                }
            })
            .collect()
    }

    fn delete(&self, keys: Vec<Vec<u8>>) -> Result<(), String> {
        for k in keys {
            let path = self.path(&k);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("deleting", &path, e)),
            }
            // Empty directories left behind go too (best effort, up to the root).
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == self.root || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_stay_inside_and_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::new(dir.path().join("cp"));
        let keys: Vec<Vec<u8>> = vec![
            b"ringflow/checkpoints/job-1/3/count/0/0".to_vec(),
            b"../../escape".to_vec(),
            b"a b/\xff/".to_vec(),
        ];
        s.put(keys.iter().map(|k| (k.clone(), k.repeat(2))).collect())
            .unwrap();
        assert!(!dir.path().join("escape").exists());
        let got = s.get(keys.clone()).unwrap();
        for (k, v) in keys.iter().zip(&got) {
            assert_eq!(v.as_deref(), Some(&k.repeat(2)[..]));
        }
        assert_eq!(s.get(vec![b"nope".to_vec()]).unwrap(), vec![None]);
        s.delete(keys.clone()).unwrap();
        assert!(s.get(keys).unwrap().iter().all(Option::is_none));
        // Deleting again is no error; emptied directories are gone.
        s.delete(vec![b"ringflow/checkpoints/job-1/3/count/0/0".to_vec()])
            .unwrap();
        assert!(!dir.path().join("cp/ringflow").exists());
    }
}
