//! Atomic file replacement: a temporary file in the same directory, fsync, rename.
//!
//! A crash at any instant leaves the old file or the new one, never a torn one. The directory
//! is not fsynced: after a power loss the rename may be undone, which leaves the old file, and
//! it would cost `mycli switch` a second disk flush.

use std::io::{Seek, Write};
use std::path::Path;

use tempfile::NamedTempFile;

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

fn temp_in(dir: &Path) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, &e))
}

/// A temporary file in `dir` with `len` bytes of disk allocated: a later
/// `fill_and_replace` of up to `len` bytes needs no new space, so a full disk shows up now.
pub fn reserve(dir: &Path, len: u64) -> Result<NamedTempFile> {
    let tmp = temp_in(dir)?;
    let allocated = match fs4::FileExt::allocate(tmp.as_file(), len) {
        // Filesystems without fallocate: writing the bytes proves the room as well.
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            let zeros = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20)];
            tmp.as_file()
                .write_all(&zeros)
                .and_then(|()| tmp.as_file().sync_all())
        }
        other => other,
    };
    allocated.map_err(|e| Error::io("reserve room for a new secret in", dir, &e))?;
    Ok(tmp)
}

/// Writes `contents` into a file made by `reserve`, fsyncs it and renames it over `path`.
/// On failure the temporary file comes back, to try again.
pub fn fill_and_replace(
    mut tmp: NamedTempFile,
    contents: &[u8],
    path: &Path,
) -> std::result::Result<(), (NamedTempFile, Error)> {
    let written = tmp
        .as_file_mut()
        .rewind()
        .and_then(|()| tmp.as_file_mut().write_all(contents))
        .and_then(|()| tmp.as_file().set_len(contents.len() as u64))
        .and_then(|()| tmp.as_file().sync_all());
    if let Err(e) = written {
        let err = Error::io("write", tmp.path(), &e);
        return Err((tmp, err));
    }
    tmp.persist(path).map(|_| ()).map_err(|e| {
        let err = Error::io("replace", path, &e.error);
        (e.file, err)
    })
}

fn replace(path: &Path, contents: &[u8], sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = temp_in(dir)?;
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
pub fn remove_abandoned(dir: &Path) {
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
