//! The profile store: paths, `config.toml`, locks, atomic writes, credential backends and the
//! access-token cache. The store never prints.

pub mod atomic;
pub mod config;
pub mod credentials;
pub mod files;
pub mod index;
pub mod lock;
pub mod names;
pub mod paths;
mod platform;
pub mod text;
pub mod tokens;
pub mod write;

use std::time::Duration;

pub use config::{Config, ConfigLock, Context, Method, NO_ORG_KEY, ProviderKind, Storage};
pub use names::{NAME_RULE, did_you_mean, validate_name};
pub use paths::Paths;

use crate::env;

/// How long to wait for a store lock before giving up (`MYCLI_LOCK_TIMEOUT`, seconds).
pub fn lock_wait() -> Duration {
    env::seconds(env::LOCK_TIMEOUT, 10.0)
}
