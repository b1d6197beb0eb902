//! Config files on disk: the last-known-good cache (written atomically) and bootstrap files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tailor_core::{compile, ConfigDocument, Snapshot};

use crate::error::ConfigSourceError;

/// Reads and compiles a config file (JSON, or YAML when the extension is `.yaml`/`.yml`).
pub fn load_file(path: &Path) -> Result<Snapshot, ConfigSourceError> {
    let text = std::fs::read_to_string(path)?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let doc = if yaml {
        ConfigDocument::from_yaml(&text)?
    } else {
        ConfigDocument::from_json(&text)?
    };
    Ok(compile(doc)?)
}

/// Why the cache could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheWriteError {
    /// Creating the directory, writing or syncing the temporary file, or the rename failed: the
    /// old file (if any) is still in place.
    #[error("could not write {}", .path.display())]
    Write {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file was replaced, but a crash could still bring the old one back.
    #[error("replaced {} but could not make the rename durable (fsync of its directory)", .path.display())]
    SyncDirectory {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl CacheWriteError {
    /// The underlying I/O error, for logs (a `Display` of this error names only the step).
    pub(crate) fn io_error(&self) -> &io::Error {
        match self {
            CacheWriteError::Write { source, .. }
            | CacheWriteError::SyncDirectory { source, .. } => source,
        }
    }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// fsync, rename, fsync of the directory. A crash leaves either the old file or the new one,
/// never a mix, and once this returns `Ok` the new one stays.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheWriteError> {
    write_atomically_with(path, bytes, sync_directory)
}

/// The steps, with the directory fsync passed in so that its failure can be tested (a real one
/// cannot be provoked reliably).
fn write_atomically_with(
    path: &Path,
    bytes: &[u8],
    sync_dir: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), CacheWriteError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    replace(path, dir, bytes).map_err(|source| CacheWriteError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    sync_dir(dir).map_err(|source| CacheWriteError::SyncDirectory {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a synced temporary file next to `path` and renames it over `path`.
fn replace(path: &Path, dir: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tailor-cache.json");
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Makes a rename in `dir` durable: the rename is a change of the directory, which has its own
/// fsync.
#[cfg(unix)]
fn sync_directory(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `std` cannot open a directory on this platform (Windows), so there is no directory to sync;
/// the rename is as durable as the file system makes it.
#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("tailor-cache-test-{}", std::process::id()));
        let path = dir.join("config.json");
        write_atomically(&path, b"{\"revision\": 1}").unwrap();
        write_atomically(&path, b"{\"revision\": 2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"revision\": 2}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        let snap = load_file(&path).unwrap();
        assert_eq!(snap.revision(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_directory_fsync_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let failing = |_: &Path| Err(std::io::Error::other("fsync failed"));
        let result = write_atomically_with(&path, b"{}", failing);
        let Err(e @ CacheWriteError::SyncDirectory { .. }) = result else {
            panic!("expected a directory fsync error, got {result:?}");
        };
        assert_eq!(e.io_error().to_string(), "fsync failed");
        // The rename itself happened; only its durability is in doubt.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }

    #[test]
    fn a_failed_replace_is_a_write_error_and_skips_the_directory_fsync() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way: the rename onto it fails.
        let path = dir.path().join("config.json");
        std::fs::create_dir(&path).unwrap();
        let result = write_atomically_with(&path, b"{}", |_| panic!("synced after a failed write"));
        assert!(
            matches!(result, Err(CacheWriteError::Write { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn garbage_file_is_a_parse_error() {
        let dir = std::env::temp_dir().join(format!("tailor-cache-bad-{}", std::process::id()));
        let path = dir.join("config.json");
        write_atomically(&path, b"not json").unwrap();
        assert!(matches!(load_file(&path), Err(ConfigSourceError::Parse(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
