//! Atomic file replacement: a temporary file in the same directory, fsync, rename.
//!
//! A crash at any instant leaves the old file or the new one, never a torn one. The directory
//! is not fsynced: after a power loss the rename may be undone, which leaves the old file, and
//! it would cost `mycli switch` a second disk flush.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with `contents`; the new file is 0600 on Unix.
pub fn write(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, true)?;
    if let Some(dir) = path.parent() {
        remove_abandoned(dir);
    }
    Ok(())
}

/// Replaces `path` atomically but without fsync: for derived data that is rebuilt when lost.
pub fn write_unsynced(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, false)
}

fn replace(path: &Path, contents: &[u8], sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, &e))?;
    tmp.write_all(contents)
        .and_then(|()| {
            if sync {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io("write", tmp.path(), &e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, &e.error))?;
    Ok(())
}

/// Removes temporary files that a killed writer left behind (they may hold a secret). Only
/// files older than a minute: younger ones may belong to a writer still at work.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(".tmp-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < old);
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
