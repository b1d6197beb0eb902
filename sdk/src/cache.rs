//! Config files on disk: the last-known-good cache (written atomically) and bootstrap files.

use std::io::Write;
use std::path::Path;

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

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
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
    fn garbage_file_is_a_parse_error() {
        let dir = std::env::temp_dir().join(format!("tailor-cache-bad-{}", std::process::id()));
        let path = dir.join("config.json");
        write_atomically(&path, b"not json").unwrap();
        assert!(matches!(load_file(&path), Err(ConfigSourceError::Parse(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
