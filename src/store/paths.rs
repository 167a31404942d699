//! Where the store lives on disk.
//!
//! ```text
//! <config dir>/            0700
//!   config.toml            contexts and `[provider]` defaults
//!   current.toml           the `current` and `previous` pointers
//!   cache/config.index     derived copy of config.toml for fast loading
//!   credentials.toml       0600, refresh tokens of contexts stored in the file backend
//!   tokens/<key>.json      0600, cached access token and its expiry, one file per context
//!   locks/config.lock      sidecar lock for read-modify-write of config.toml
//!   locks/credentials.lock sidecar lock for credentials.toml
//!   locks/context-<key>.lock  held across a context's refresh
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

/// A file name for a context key: the key itself when it is plain, otherwise a hex encoding,
/// so that any organization id an IdP sends maps to one safe file name.
pub fn file_stem(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 100
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if plain {
        key.to_string()
    } else {
        let mut out = String::from("x-");
        for b in key.bytes().take(100) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
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
