//! Where the store lives on disk.
//!
//! ```text
//! <config dir>/            0700
//!   config.toml            contexts and `[provider]` defaults
//!   current.toml           the `current` and `previous` pointers
//!   cache/config.index     derived copy of config.toml for fast loading
//!   credentials.toml       0600, refresh tokens of contexts stored in the file backend
//!   tokens/x-<sha256 of key>.json  0600, cached access token and its expiry, one per context
//!   locks/config.lock      sidecar lock for read-modify-write of config.toml
//!   locks/credentials.lock sidecar lock for credentials.toml
//!   locks/context-x-<sha256 of key>.lock  held across a context's refresh
//! ```

use std::path::{Path, PathBuf};

use crate::env;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    /// Resolves the config directory: `--config-dir`, `MYCLI_CONFIG_DIR`, then the platform
    /// config dir (`$XDG_CONFIG_HOME/mycli`, `~/.config/mycli`).
    pub fn resolve(flag: Option<&Path>) -> Result<Paths> {
        // A relative directory is taken from the working directory of the command.
        let absolute = |dir: &Path| {
            std::path::absolute(dir)
                .map(|dir| Paths { dir })
                .map_err(|e| Error::io("find the store directory", dir, &e))
        };
        if let Some(dir) = flag {
            return absolute(dir);
        }
        if let Some(dir) = env::var(env::CONFIG_DIR) {
            return absolute(Path::new(&dir));
        }
        Paths::platform_default()
    }

    fn platform_default() -> Result<Paths> {
        use etcetera::BaseStrategy;
        let strategy = etcetera::choose_base_strategy().map_err(|_| {
            Error::failure("could not find a home directory for the mycli config")
                .with_hint("set MYCLI_CONFIG_DIR or pass --config-dir DIR")
        })?;
        Ok(Paths {
            dir: strategy.config_dir().join("mycli"),
        })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    pub fn pointers(&self) -> PathBuf {
        self.dir.join("current.toml")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    pub fn index(&self) -> PathBuf {
        self.cache().join("config.index")
    }

    /// Every context's key and name, for `mycli prompt` (derived like the index).
    pub fn names(&self) -> PathBuf {
        self.cache().join("names")
    }

    pub fn credentials(&self) -> PathBuf {
        self.dir.join("credentials.toml")
    }

    pub fn locks(&self) -> PathBuf {
        self.dir.join("locks")
    }

    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens")
    }

    /// The cached access token of a context.
    pub fn token_cache(&self, key: &str) -> PathBuf {
        self.tokens().join(format!("{}.json", file_stem(key)))
    }

    /// Where older versions cached the access token of a plain key.
    pub fn legacy_token_cache(&self, key: &str) -> Option<PathBuf> {
        legacy_stem(key).map(|stem| self.tokens().join(format!("{stem}.json")))
    }

    /// The lock held across a context's refresh.
    pub fn context_lock(&self, key: &str) -> PathBuf {
        self.locks()
            .join(format!("context-{}.lock", file_stem(key)))
    }

    /// Creates the directory (0700) and a subdirectory of it, if missing.
    pub fn ensure(&self, sub: Option<&Path>) -> Result<()> {
        create_private_dir(&self.dir)?;
        if let Some(sub) = sub {
            create_private_dir(sub)?;
        }
        Ok(())
    }
}

/// The file name of a context key: `x-` and the SHA-256 of the whole key in lowercase hex.
/// Injective in practice (no two keys share a token cache or a lock, however long or alike
/// they are), safe for any key an IdP sends, and the same on case-insensitive filesystems.
pub fn file_stem(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::with_capacity(66);
    out.push_str("x-");
    for b in Sha256::digest(key.as_bytes()) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The name older versions gave the token cache of a plain key (`tokens/org_acme.json`):
/// such a file is removed when the new one is written.
pub fn legacy_stem(key: &str) -> Option<&str> {
    let plain = !key.is_empty()
        && key.len() <= 100
        && !key.starts_with('.')
        && !key.starts_with("x-")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    plain.then_some(key)
}

impl Paths {
    /// Fails when the store cannot be written (a read-only mount, a file where a directory
    /// belongs), before anything is asked of the user. Creates nothing when the directory does
    /// not exist yet: then its nearest existing parent must be writable.
    pub fn probe_writable(&self) -> Result<()> {
        if !self.dir.exists() {
            #[cfg(unix)]
            if let Some(parent) = self.dir.ancestors().skip(1).find(|p| p.is_dir()) {
                use rustix::fs::Access;
                rustix::fs::access(parent, Access::WRITE_OK | Access::EXEC_OK)
                    .map_err(|e| Error::io("create the store in", parent, &e.into()))?;
            }
            return Ok(());
        }
        self.ensure(Some(&self.locks()))?;
        self.ensure(Some(&self.tokens()))?;
        for dir in [&self.dir, &self.locks(), &self.tokens()] {
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| Error::io("write in", dir, &e))?;
        }
        Ok(())
    }
}

/// How thoroughly `Paths::check_private` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// One stat of the store directory (the hot path of `mycli token`); the rest only when
    /// the directory itself is loose.
    Dir,
    /// The directory, `credentials.toml` and the subdirectories.
    Full,
    /// Only whether the store is refused; nothing is tightened (`mycli prompt`, which must
    /// neither speak nor leave a loose store looking fixed to the next command's `Dir`).
    Refusal,
}

impl Paths {
    /// Checks the store the way ssh checks `~/.ssh`: a directory that belongs to another user
    /// or that group or others can write is refused (anyone who can write it can point the
    /// issuer at their own server and collect the refresh token). Looser modes of what the
    /// user owns are tightened to 0700 / 0600; the returned text says what was changed, for
    /// one warning. A missing directory is fine: it is created 0700.
    #[cfg(unix)]
    pub fn check_private(&self, how: Check) -> Result<Option<String>> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.dir, &e)),
        };
        let me = rustix::process::geteuid().as_raw();
        let dir = self.dir.display();
        if meta.uid() != me {
            return Err(Error::failure(format!(
                "the store {dir} belongs to another user (uid {}); refusing to use it",
                meta.uid()
            ))
            .with_hint(
                "use a directory of your own (--config-dir DIR or MYCLI_CONFIG_DIR), \
                 or make it yours with chown",
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Error::failure(format!(
                "the store {dir} can be written by other users (mode {mode:04o}); refusing to use it"
            ))
            .with_hint(format!(
                "anyone who can write it may have changed its files: check config.toml \
                 (issuers, client ids), then run `chmod 700 {dir}`"
            )));
        }
        if how == Check::Refusal || (mode & 0o077 == 0 && how == Check::Dir) {
            return Ok(None);
        }
        let mut fixed = Vec::new();
        if mode & 0o077 != 0 {
            tighten(&self.dir, &mut fixed)?;
        }
        tighten(&self.credentials(), &mut fixed)?;
        for sub in [self.tokens(), self.locks(), self.cache()] {
            if tighten(&sub, &mut fixed)? {
                // A loose subdirectory was not made by mycli: its files may be loose too.
                if let Ok(entries) = std::fs::read_dir(&sub) {
                    for entry in entries.flatten() {
                        tighten(&entry.path(), &mut fixed)?;
                    }
                }
            }
        }
        if mode & 0o077 != 0 {
            for file in [self.config(), self.pointers()] {
                tighten(&file, &mut fixed)?;
            }
        }
        Ok((!fixed.is_empty()).then(|| {
            let more = match fixed.len() {
                0..=3 => String::new(),
                n => format!(" and {} more", n - 3),
            };
            format!(
                "{}{more} could be read by other users; mycli made {} private (0700 directories, 0600 files)",
                fixed[..fixed.len().min(3)].join(", "),
                if fixed.len() == 1 { "it" } else { "them" }
            )
        }))
    }

    #[cfg(not(unix))]
    pub fn check_private(&self, _how: Check) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Removes group and other bits from a file or directory the user owns (symlinks are left
/// alone); true when it had some. Another user's file in the store is refused.
#[cfg(unix)]
fn tighten(path: &Path, fixed: &mut Vec<String>) -> Result<bool> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_symlink() => meta,
        _ => return Ok(false),
    };
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(Error::failure(format!(
            "{} belongs to another user (uid {}); refusing to use the store",
            path.display(),
            meta.uid()
        ))
        .with_hint("remove it, or make it yours with chown"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))
        .map_err(|e| Error::io("change the mode of", path, &e))?;
    fixed.push(format!("{} ({mode:04o})", path.display()));
    Ok(true)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io("create the directory", dir, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_injective_and_case_safe() {
        let stems: std::collections::BTreeSet<String> = [
            "team:1",
            "x-7465616d3a31",
            "org_ABC",
            "org_abc",
            &"o".repeat(121),
            &format!("{}a", "o".repeat(120)),
        ]
        .iter()
        .map(|k| file_stem(k).to_lowercase())
        .collect();
        assert_eq!(stems.len(), 6);
        assert!(stems.iter().all(|s| s.len() == 66 && s.starts_with("x-")));
    }
}
