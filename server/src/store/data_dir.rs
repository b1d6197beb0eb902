//! The data directory's exclusive lock: one server process per embedded store.
//!
//! Two servers on one directory would each keep their own in-memory revision and diverge (the
//! second's writes make revisions the first never publishes, and every write to the first then
//! conflicts). So opening the store takes an exclusive advisory lock (`flock`) on
//! `<data-dir>/tailor.lock` and holds it for as long as the store lives. The kernel releases it
//! when the process exits, however it exits (`kill -9` included), so a stale lock file never
//! blocks a restart. The file names its holder (process id, start time) so that the refusal can
//! say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::StoreError;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "tailor.lock";

/// Held for as long as the store that took it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    // Never read: holding the open file is what holds the lock.
    _file: File,
}

impl DataDirLock {
    /// Takes the exclusive lock on `data_dir`, or fails with [`StoreError::Locked`] naming the
    /// directory and the process that holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io_error = |doing: &str, e: std::io::Error| StoreError::Backend {
            message: format!("{doing} {}", path.display()),
            source: Box::new(e),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("opening the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    directory: data_dir.to_path_buf(),
                    holder: read_holder(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_error("locking", e)),
        }
        let holder = format!(
            "process {} (started at Unix time {})",
            std::process::id(),
            super::unix_now()
        );
        write_holder(&mut file, &holder).map_err(|e| io_error("writing", e))?;
        Ok(DataDirLock { _file: file })
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    match file.read_to_string(&mut text) {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        // The holder writes its name right after locking; an empty file means it is starting.
        Ok(_) => "another process (starting up)".to_string(),
        Err(e) => format!("another process (its lock file is unreadable: {e})"),
    }
}

fn write_holder(file: &mut File, holder: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(holder.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
