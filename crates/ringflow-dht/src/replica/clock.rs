//! The clock's high-water mark on disk: the highest timestamp this node's HLC issued or
//! observed, saved every few seconds (and on shutdown) and observed again at start, so a
//! restarted node (or one whose wall clock went back) never stamps a write below one it
//! stamped before. Entries in the store give a second floor ([`crate::store::Store::high_water`]).

use std::path::Path;

use super::DhtService;
use crate::DhtError;

/// The saved mark, 0 if there is none yet.
pub(super) fn load(path: &Path) -> Result<u64, DhtError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| DhtError::Corrupt {
                path: path.display().to_string(),
                reason: format!("{} bytes, expected 8", bytes.len()),
            })?;
            Ok(u64::from_le_bytes(raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(DhtError::io(format!("reading {}", path.display()), e)),
    }
}

/// Saves `mark` durably (written beside, synced, renamed over).
fn save(path: &Path, mark: u64) -> Result<(), DhtError> {
    let tmp = path.with_extension("tmp");
    let io = |e| DhtError::io(format!("saving {}", path.display()), e);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&mark.to_le_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

impl DhtService {
    /// Saves the clock's high-water mark if it moved since the last save.
    pub(super) fn save_clock(&self) {
        let mark = self.hlc.borrow().high_water();
        if mark <= self.hlc_saved.get() {
            return;
        }
        match save(&self.hlc_file, mark) {
            Ok(()) => self.hlc_saved.set(mark),
            Err(e) => tracing::warn!(error = %e, "could not save the clock's high-water mark"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_survives_a_save_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dht-hlc");
        assert_eq!(load(&path).expect("absent"), 0);
        save(&path, 42 << 16).expect("save");
        assert_eq!(load(&path).expect("load"), 42 << 16);
        std::fs::write(&path, b"abc").expect("write");
        assert!(matches!(load(&path), Err(DhtError::Corrupt { .. })));
    }
}
