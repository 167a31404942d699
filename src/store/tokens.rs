//! The access-token cache: one small 0600 file per context, so that `mycli token` needs
//! neither the network nor the keychain while the token is valid.

use serde::{Deserialize, Serialize};

use super::lock::ContextLock;
use super::{Paths, atomic};
use crate::error::{Error, Result};
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    /// The context key the token belongs to (guards against a misplaced file).
    pub key: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub access_token: Secret,
    /// Unix seconds when mycli received it (absent in caches written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
}

impl CachedToken {
    /// Valid for more than the margin from `now`: `margin` seconds, or half the token's
    /// lifetime when that is shorter, so a token that lives a minute or less is not refreshed
    /// on every call.
    pub fn fresh(&self, now: i64, margin: i64) -> bool {
        let margin = match self.issued_at {
            Some(issued) => margin
                .min(self.expires_at.saturating_sub(issued) / 2)
                .max(0),
            None => margin,
        };
        self.expires_at.saturating_sub(margin) > now
    }

    /// Valid for at least `secs` more seconds.
    pub fn valid_for(&self, now: i64, secs: i64) -> bool {
        self.expires_at.saturating_sub(secs) > now
    }
}

/// The cached token of a context, if there is a readable one. Never fails: a missing or
/// damaged cache only means the token must be fetched again.
pub fn read(paths: &Paths, key: &str) -> Option<CachedToken> {
    let bytes = super::files::read(&paths.token_cache(key)).ok()?;
    let token: CachedToken = serde_json::from_slice(&bytes).ok()?;
    (token.key == key).then_some(token)
}

/// Writes the cached token of the context whose lock is held (see `store::write`).
pub fn write(paths: &Paths, lock: &ContextLock, token: &CachedToken) -> Result<()> {
    if token.key != lock.key() {
        return Err(Error::failure(format!(
            "refusing to cache a token of {:?} under the lock of {:?} (a bug in mycli)",
            token.key,
            lock.key()
        )));
    }
    paths.ensure(Some(&paths.tokens()))?;
    let bytes = serde_json::to_vec(token).unwrap_or_default();
    atomic::write(&paths.token_cache(&token.key), &bytes)?;
    remove_legacy(paths, &token.key);
    Ok(())
}

/// Removes the cached token of `key`, and only of `key`: a file holding another context's
/// token is left alone.
pub fn remove(paths: &Paths, lock: &ContextLock) {
    let key = lock.key();
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
    let owned = match super::files::read(path) {
        Ok(bytes) => serde_json::from_slice::<CachedToken>(&bytes).map_or(true, |t| t.key == key),
        Err(_) => false,
    };
    if owned {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_at: Option<i64>, expires_at: i64) -> CachedToken {
        CachedToken {
            key: "org_a".into(),
            expires_at,
            access_token: Secret::new("t"),
            issued_at,
        }
    }

    #[test]
    fn the_margin_is_sixty_seconds_or_half_the_lifetime() {
        // A 5-minute token: refreshed within its last 60 s.
        let t = token(Some(1000), 1300);
        assert!(t.fresh(1239, 60));
        assert!(!t.fresh(1240, 60));
        // A 45 s token: refreshed within its last 22 s, not on every call.
        let t = token(Some(1000), 1045);
        assert!(t.fresh(1000, 60));
        assert!(t.fresh(1022, 60));
        assert!(!t.fresh(1023, 60));
        // Already expired at issue, or an unknown issue time.
        assert!(!token(Some(1000), 1000).fresh(1000, 60));
        assert!(!token(None, 1045).fresh(1000, 60));
        // No overflow at the edges.
        assert!(!token(Some(i64::MIN), i64::MIN).fresh(0, 60));
        assert!(token(Some(i64::MIN), i64::MAX).fresh(0, 60));
    }
}
