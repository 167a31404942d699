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
    replace(path, contents, true, None, true)?;
    if let Some(dir) = path.parent() {
        remove_abandoned(dir);
    }
    Ok(())
}

/// Replaces `path` atomically but without fsync: for derived data that is rebuilt when lost.
/// A killed writer leaves its temporary file here as anywhere else, so the same clean-up runs.
pub fn write_unsynced(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, false, None, true)?;
    if let Some(dir) = path.parent() {
        remove_abandoned(dir);
    }
    Ok(())
}

/// Replaces `path` with `contents` made readable by all (0644), like a file meant to be
/// committed; synced like `write`. A symbolic link at `path` is replaced, never followed: the
/// file is in a working tree, where a cloned repository may have linked it to any file of the
/// user's (`~/.bashrc`, the store's `credentials.toml`).
pub fn write_shared(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, true, Some(0o644), false)
}

/// Room for `len` bytes in `dir`, held until dropped: an unnamed temporary file (nothing is
/// left behind, even by SIGKILL) with the space allocated, so a full disk shows up now. It is
/// dropped right before the `write` it was made for, which then finds the room free.
pub fn reserve(dir: &Path, len: u64) -> Result<std::fs::File> {
    let file =
        tempfile::tempfile_in(dir).map_err(|e| Error::io("create a temporary file in", dir, &e))?;
    let allocated = match fs4::FileExt::allocate(&file, len) {
        // Filesystems without fallocate: writing the bytes proves the room as well.
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            let zeros = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20)];
            (&file).write_all(&zeros).and_then(|()| file.sync_all())
        }
        other => other,
    };
    allocated.map_err(|e| Error::io("reserve room for a new secret in", dir, &e))?;
    Ok(file)
}

fn replace(
    path: &Path,
    contents: &[u8],
    sync: bool,
    mode: Option<u32>,
    follow: bool,
) -> Result<()> {
    // A symlinked store file (a dotfile manager's link) is written through on purpose: its
    // target is replaced atomically and the link stays a link.
    let target = if follow {
        through_symlink(path)?
    } else {
        path.to_path_buf()
    };
    let path = target.as_path();
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
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the permissions of", tmp.path(), &e))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, &e.error))?;
    Ok(())
}

/// The file a symbolic link at `path` points to, or `path` itself when it is not a link.
fn through_symlink(path: &Path) -> Result<std::path::PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| Error::io("follow the symbolic link", path, &e))
        }
        _ => Ok(path.to_path_buf()),
    }
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
