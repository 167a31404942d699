//! Signing in and keeping sessions alive: providers (WorkOS, OIDC discovery), PKCE on a
//! loopback redirect, the device flow, token refresh and the end of a session.
//!
//! Auth never touches the store or prints data; it returns `Session`s.

pub mod browser;
pub mod device;
pub mod http;
pub mod loopback;
pub mod pkce;
pub mod provider;

use std::future::Future;

use serde_json::Value;

pub use http::{Http, IdpError, Reply};
pub use provider::{Provider, ProviderConfig, Session};

use crate::error::{Error, Result};

/// Runs a future on a fresh single-threaded runtime (Ctrl-C is handled for the whole
/// process: see `exit_130_on_ctrl_c`).
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failure(format!("could not start the async runtime: {e}")))?;
    runtime.block_on(future)
}

/// The claims of a JWT, read without checking its signature: only used to learn the expiry,
/// the session id and the organization of tokens that came straight from the IdP over TLS
/// (OpenID Connect Core §3.1.3.7 allows this for tokens from the token endpoint).
pub fn claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Map<String, Value>>(token).ok()
}

/// A claim as text (strings as they are, numbers printed).
pub fn claim_text(claims: Option<&serde_json::Map<String, Value>>, name: &str) -> Option<String> {
    match claims?.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
