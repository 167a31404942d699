//! Exclusive locks on sidecar lock files, with a bounded wait.
//!
//! A lock file is never the file that gets replaced: an atomic rename swaps the inode, so a
//! lock on the replaced file would guard nothing. The OS drops the lock when the holder dies,
//! so a killed process never leaves the store locked.

// The one module allowed to lock files (clippy.toml `disallowed-methods`).
#![allow(clippy::disallowed_methods)]

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

type Notice = dyn Fn(&Path) + Send + Sync;

static ON_WAIT: OnceLock<Box<Notice>> = OnceLock::new();

/// Sets what happens, once per lock, when a wait for it passes [`NOTICE_AFTER`] (the command
/// says so on stderr; the store itself never prints). The first call wins.
pub fn on_wait(notice: impl Fn(&Path) + Send + Sync + 'static) {
    let _ = ON_WAIT.set(Box::new(notice));
}

/// Waits shorter than this (another process's refresh) pass without a word.
const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// Proof that an exclusive lock is held; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// Waits at most `wait` for the exclusive lock on `path`, creating the file if needed.
    pub fn acquire(path: &Path, wait: Duration) -> Result<LockGuard> {
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).read(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // A symlinked lock file is refused, never followed: following it would create or
            // lock a file elsewhere, with this user's rights.
            let nofollow = rustix::fs::OFlags::NOFOLLOW.bits();
            options
                .mode(0o600)
                .custom_flags(i32::try_from(nofollow).unwrap_or(0));
        }
        let file = options.open(path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                return Error::failure(format!(
                    "the lock file {} is a symbolic link; mycli does not follow it",
                    path.display()
                ))
                .with_hint(format!(
                    "remove it (`rm {}`); mycli recreates it",
                    path.display()
                ));
            }
            Error::io("open the lock file", path, &e)
        })?;
        let started = Instant::now();
        let deadline = started + wait;
        let mut announced = false;
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(LockGuard { file });
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !announced
                        && started.elapsed() >= NOTICE_AFTER
                        && let Some(notice) = ON_WAIT.get()
                    {
                        announced = true;
                        notice(path);
                    }
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", path, &e));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::failure(format!(
                    "timed out after {} s waiting for the lock {}: another mycli process holds it",
                    wait.as_secs_f64().round(),
                    path.display()
                ))
                .with_hint(
                    "wait for the other mycli command to finish; if it hangs, stop it \
                     (the lock is released when its process ends)",
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Proof that one context's lock is held: what writing that context's secret or cached token
/// requires (`Credentials::save`, `tokens::write`), so they cannot be written without it.
#[derive(Debug)]
pub struct ContextLock {
    _guard: LockGuard,
    key: String,
}

impl ContextLock {
    /// Waits at most `wait` for the lock of context `key`.
    pub fn acquire(paths: &super::Paths, key: &str, wait: Duration) -> Result<ContextLock> {
        paths.ensure(Some(&paths.locks()))?;
        Ok(ContextLock {
            _guard: LockGuard::acquire(&paths.context_lock(key), wait)?,
            key: key.to_string(),
        })
    }

    /// The context key this lock belongs to.
    pub fn key(&self) -> &str {
        &self.key
    }
}
