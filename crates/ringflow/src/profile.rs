//! Client profiles: where a CLI finds the cluster when no flag says so.
//!
//! `ringflow local` writes one to the default location, so that `ringflow status` in a
//! second terminal works with no flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything a client needs to reach a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Coordinator address, `HOST:PORT`.
    pub cluster: String,
    /// Cluster name (checked in the handshake).
    pub cluster_name: String,
    /// Directory holding `ca.crt` and the client certificate.
    pub certs_dir: PathBuf,
    /// Base name of the client certificate files.
    pub cert_name: String,
}

/// Errors reading or writing a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The profile file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("{path}: {reason}")]
    Invalid {
        /// The profile file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The default profile path: `$RINGFLOW_PROFILE`, else `$XDG_CONFIG_HOME/ringflow/profile.toml`,
/// else `$HOME/.config/ringflow/profile.toml`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGFLOW_PROFILE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ringflow").join("profile.toml"))
}

impl Profile {
    /// Reads a profile; `Ok(None)` if the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, ProfileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ProfileError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| ProfileError::Invalid {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Writes the profile, creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let io = |source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string(self).map_err(|e| ProfileError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/profile.toml");
        assert_eq!(Profile::load(&path).unwrap(), None);
        let p = Profile {
            cluster: "127.0.0.1:7400".into(),
            cluster_name: "ringflow".into(),
            certs_dir: dir.path().join("certs"),
            cert_name: "client".into(),
        };
        p.save(&path).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), Some(p));
        std::fs::write(&path, "cluster = 3").unwrap();
        assert!(Profile::load(&path).is_err());
    }
}
