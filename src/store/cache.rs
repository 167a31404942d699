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
    atomic::write(&paths.token_cache(&token.key), &bytes)
}

pub fn remove(paths: &Paths, key: &str) {
    let _ = std::fs::remove_file(paths.token_cache(key));
}
