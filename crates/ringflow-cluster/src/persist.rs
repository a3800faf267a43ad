//! Atomic, durable state files in a node's data directory, and the directory lock.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use crate::ClusterError;

/// Takes an exclusive, non-blocking `flock` on `dir/LOCK` (creating `dir`), so that two
/// processes never share a data directory. The lock lasts as long as the returned file.
pub(crate) fn lock_dir(dir: &Path) -> Result<fs::File, ClusterError> {
    use std::os::fd::AsRawFd;
    fs::create_dir_all(dir)
        .map_err(|e| ClusterError::io(format!("creating data directory {}", dir.display()), e))?;
    let path = dir.join("LOCK");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ClusterError::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock(2) on a file descriptor we own and keep open.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(ClusterError::Config(format!(
            "data directory {} is in use by another process (lock {} is held)",
            dir.display(),
            path.display()
        )));
    }
    Ok(f)
}

/// A JSON file replaced atomically on every save (write temp, fsync, rename, fsync dir),
/// in a data directory locked against other processes for as long as this value lives.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    _lock: fs::File,
}

impl StateFile {
    /// The file `name` inside `dir`, creating and locking `dir`.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Self, ClusterError> {
        let lock = lock_dir(dir)?;
        Ok(Self {
            path: dir.join(name),
            _lock: lock,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state, `None` if the file does not exist yet.
    pub(crate) fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, ClusterError> {
        read_json(&self.path)
    }

    /// Replaces the state durably.
    pub(crate) fn save<T: Serialize>(&self, value: &T) -> Result<(), ClusterError> {
        write_json(&self.path, value)
    }
}

/// Reads a JSON file written by [`write_json`]; `None` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ClusterError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClusterError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ClusterError::CorruptState {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Replaces the JSON file at `path` atomically and durably (write a temporary file,
/// fsync, rename, fsync the directory). The caller owns the directory's lock.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ClusterError> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let bytes = serde_json::to_vec(value).map_err(|e| ClusterError::Unexpected(e.to_string()))?;
    let mut f = fs::File::create(&tmp).map_err(|e| ClusterError::io(ctx("creating"), e))?;
    f.write_all(&bytes)
        .map_err(|e| ClusterError::io(ctx("writing"), e))?;
    f.sync_all()
        .map_err(|e| ClusterError::io(ctx("syncing"), e))?;
    drop(f);
    fs::rename(&tmp, path)
        .map_err(|e| ClusterError::io(format!("renaming to {}", path.display()), e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ClusterError::io(format!("syncing directory {}", dir.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip_and_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::open(&dir.path().join("sub"), "s.json").unwrap();
        assert_eq!(f.load::<Vec<u32>>().unwrap(), None);
        f.save(&vec![1u32, 2, 3]).unwrap();
        assert_eq!(f.load::<Vec<u32>>().unwrap(), Some(vec![1, 2, 3]));
        std::fs::write(f.path(), b"{not json").unwrap();
        assert!(matches!(
            f.load::<Vec<u32>>(),
            Err(ClusterError::CorruptState { .. })
        ));
    }

    #[test]
    fn a_second_owner_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateFile::open(dir.path(), "s.json").unwrap();
        let err = StateFile::open(dir.path(), "s.json").unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        StateFile::open(dir.path(), "s.json").unwrap();
    }
}
