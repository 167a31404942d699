//! Every environment variable mycli reads, in one place.

pub const CONFIG_DIR: &str = "MYCLI_CONFIG_DIR";
pub const CONTEXT: &str = "MYCLI_CONTEXT";
pub const PROVIDER: &str = "MYCLI_PROVIDER";
pub const ISSUER: &str = "MYCLI_ISSUER";
pub const CLIENT_ID: &str = "MYCLI_CLIENT_ID";
pub const WORKOS_CLIENT_ID: &str = "WORKOS_CLIENT_ID";
pub const CREDENTIAL_STORE: &str = "MYCLI_CREDENTIAL_STORE";
pub const HTTP_TIMEOUT: &str = "MYCLI_HTTP_TIMEOUT";
pub const LOCK_TIMEOUT: &str = "MYCLI_LOCK_TIMEOUT";
pub const KEYCHAIN_TIMEOUT: &str = "MYCLI_KEYCHAIN_TIMEOUT";
pub const LOGIN_TIMEOUT: &str = "MYCLI_LOGIN_TIMEOUT";
pub const ORG_CLAIM: &str = "MYCLI_ORG_CLAIM";
pub const NO_COLOR: &str = "NO_COLOR";
pub const BROWSER: &str = "BROWSER";
pub const DISPLAY: &str = "DISPLAY";
pub const WAYLAND_DISPLAY: &str = "WAYLAND_DISPLAY";
pub const SSH_CONNECTION: &str = "SSH_CONNECTION";
pub const SSH_TTY: &str = "SSH_TTY";
pub const DBUS_SESSION_BUS_ADDRESS: &str = "DBUS_SESSION_BUS_ADDRESS";
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// Directories the search for a `.mycli.toml` pin does not enter (like git's
/// `GIT_CEILING_DIRECTORIES`).
pub const CEILING_DIRS: &str = "MYCLI_CEILING_DIRS";
/// The access token `mycli exec` hands to its command (the default name).
pub const TOKEN: &str = "MYCLI_TOKEN";
/// The shell `mycli shell` starts.
pub const SHELL: &str = "SHELL";
/// What kubectl asks of a credential plugin (the apiVersion it wants).
pub const KUBERNETES_EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";

/// A variable's value, treating an empty value as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The longest duration mycli takes from the environment: a day. Longer values are clamped,
/// so no deadline computed from one can overflow.
pub const MAX_SECONDS: f64 = 86_400.0;

/// A duration in seconds from the environment, or the default when unset or unparsable;
/// clamped to `MAX_SECONDS`.
pub fn seconds(name: &str, default: f64) -> std::time::Duration {
    let secs = var(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default)
        .min(MAX_SECONDS);
    std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::from_secs(30))
}
