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
        if let Some(dir) = flag {
            return Ok(Paths {
                dir: dir.to_path_buf(),
            });
        }
        if let Some(dir) = env::var(env::CONFIG_DIR) {
            return Ok(Paths {
                dir: PathBuf::from(dir),
            });
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
