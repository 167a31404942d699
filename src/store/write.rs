//! The one order in which a context's session is written or removed, under the context's
//! lock: the secret, then the access-token cache, then `config.toml`.
//!
//! The order is the correctness property. The secret comes first because it is the only copy
//! of the session (a rotated refresh token exists nowhere else); a cached token without its
//! secret would hand out tokens of a session that cannot be renewed; `config.toml` comes last
//! so that a context never names a secret that was not written. Each step is a method of the
//! previous step's result, so no caller can take them in another order.

use super::config::{Config, ConfigLock};
use super::lock::ContextLock;
use super::paths::Paths;
use super::tokens::{self, CachedToken};
use crate::error::Result;

/// A write or removal of one context's session, under its lock.
pub struct SessionWrite<'a> {
    paths: &'a Paths,
    lock: &'a ContextLock,
}

/// The secret is written (or removed); next the token cache.
pub struct SecretDone<'a>(SessionWrite<'a>);

/// The token cache is written (or removed); last `config.toml`.
pub struct CacheDone<'a>(SessionWrite<'a>);

impl<'a> SessionWrite<'a> {
    pub fn new(paths: &'a Paths, lock: &'a ContextLock) -> SessionWrite<'a> {
        SessionWrite { paths, lock }
    }

    /// Step 1: the secret, written (or deleted) by `op` with the context's lock as its proof.
    /// The next step comes back whatever `op` returned: a rotated secret that could not be
    /// saved may still leave a usable token to cache.
    pub fn secret<T>(
        self,
        op: impl FnOnce(&'a ContextLock) -> Result<T>,
    ) -> (SecretDone<'a>, Result<T>) {
        let result = op(self.lock);
        (SecretDone(self), result)
    }
}

impl<'a> SecretDone<'a> {
    /// Step 2: the cached access token. A failure comes back beside the next step: the
    /// secret is saved, so a missing cache only costs the next call a refresh.
    pub fn cache(self, token: &CachedToken) -> (CacheDone<'a>, Result<()>) {
        let result = tokens::write(self.0.paths, self.0.lock, token);
        (CacheDone(self.0), result)
    }

    /// Step 2, removing: the cached access token is deleted.
    pub fn uncache(self) -> CacheDone<'a> {
        tokens::remove(self.0.paths, self.0.lock);
        CacheDone(self.0)
    }
}

impl CacheDone<'_> {
    /// Step 3: `config.toml`, with a store lock taken (and the store read) by the caller.
    pub fn config(self, lock: &ConfigLock, config: &Config) -> Result<()> {
        lock.save(config)
    }

    /// Step 3: `config.toml`, read under its lock and changed by `change` (saved only when it
    /// returns true).
    pub fn update_config(self, change: impl FnOnce(&mut Config) -> bool) -> Result<()> {
        let lock = ConfigLock::acquire(self.0.paths)?;
        let mut config = lock.load()?;
        if change(&mut config) {
            lock.save(&config)?;
        }
        Ok(())
    }
}
