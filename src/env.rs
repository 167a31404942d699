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
/// `TERM=dumb`: a terminal without colour.
pub const TERM: &str = "TERM";
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

/// Checks every variable whose value has a form, for every command: a typo is a usage error
/// (exit 2) naming the variable, never silently the default (`MYCLI_HTTP_TIMEOUT=abc` used to
/// mean 30 s to `refresh`, and `MYCLI_CREDENTIAL_STORE=vault` failed only in `login`).
pub fn check() -> crate::error::Result<()> {
    use crate::error::Error;
    for name in [HTTP_TIMEOUT, LOCK_TIMEOUT, KEYCHAIN_TIMEOUT, LOGIN_TIMEOUT] {
        if let Some(value) = var(name)
            && !value
                .trim()
                .parse::<f64>()
                .is_ok_and(|s| s.is_finite() && s > 0.0)
        {
            return Err(Error::usage(format!(
                "{name}={:?} is not a number of seconds",
                crate::text::clean(&value)
            ))
            .with_hint(format!(
                "set it to a number greater than 0 (e.g. {name}=30), or unset it"
            )));
        }
    }
    let choices: [(&str, &[&str]); 2] = [
        (CREDENTIAL_STORE, &["auto", "keychain", "file"]),
        (PROVIDER, &["workos", "oidc"]),
    ];
    for (name, allowed) in choices {
        if let Some(value) = var(name)
            && !allowed.contains(&value.as_str())
        {
            return Err(Error::usage(format!(
                "{name}={:?} is not one of {}",
                crate::text::clean(&value),
                allowed.join(", ")
            ))
            .with_hint(format!("set {name} to one of them, or unset it")));
        }
    }
    Ok(())
}
