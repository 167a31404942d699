//! The access-token cache: one small 0600 file per context, so that `mycli token` needs
//! neither the network nor the keychain while the token is valid.

use serde::{Deserialize, Serialize};

use super::{Paths, atomic};
use crate::error::Result;
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    /// The context key the token belongs to (guards against a misplaced file).
    pub key: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub access_token: Secret,
}

impl CachedToken {
    /// Valid for more than `margin` seconds from `now`.
    pub fn fresh(&self, now: i64, margin: i64) -> bool {
        self.expires_at.saturating_sub(margin) > now
    }
}

/// The cached token of a context, if there is a readable one. Never fails: a missing or
/// damaged cache only means the token must be fetched again.
pub fn read(paths: &Paths, key: &str) -> Option<CachedToken> {
    let bytes = std::fs::read(paths.token_cache(key)).ok()?;
    let token: CachedToken = serde_json::from_slice(&bytes).ok()?;
    (token.key == key).then_some(token)
}

pub fn write(paths: &Paths, token: &CachedToken) -> Result<()> {
    paths.ensure(Some(&paths.tokens()))?;
    let bytes = serde_json::to_vec(token).unwrap_or_default();
    atomic::write(&paths.token_cache(&token.key), &bytes)?;
    remove_legacy(paths, &token.key);
    Ok(())
}

/// Removes the cached token of `key`, and only of `key`: a file holding another context's
/// token is left alone.
pub fn remove(paths: &Paths, key: &str) {
    remove_if_owned(&paths.token_cache(key), key);
    remove_legacy(paths, key);
}

/// The cache file name of older versions (`tokens/<key>.json`), which could be shared by two
/// keys: removed once the key's own file exists, if it holds this key's token.
fn remove_legacy(paths: &Paths, key: &str) {
    if let Some(path) = paths.legacy_token_cache(key) {
        remove_if_owned(&path, key);
    }
}

fn remove_if_owned(path: &std::path::Path, key: &str) {
    let owned = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<CachedToken>(&bytes).map_or(true, |t| t.key == key),
        Err(_) => false,
    };
    if owned {
        let _ = std::fs::remove_file(path);
    }
}
