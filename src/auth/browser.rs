//! Whether a browser can be opened here, and opening one.

use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::env;

type OpenFn = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// What opens a URL for the user: the system's browser, or in tests a stand-in.
#[derive(Clone)]
pub struct Browser {
    open: Arc<OpenFn>,
}

impl Browser {
    /// `BROWSER` or the platform's opener ([`open`]).
    pub fn system() -> Browser {
        Browser {
            open: Arc::new(open),
        }
    }

    /// Opens URLs with `open` instead of a browser.
    pub fn with(open: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Browser {
        Browser {
            open: Arc::new(open),
        }
    }

    pub fn open(&self, url: &str) -> Result<(), String> {
        (self.open)(url)
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Browser")
    }
}

/// `Ok(())` when a browser can be opened; otherwise the reason, for the device-flow notice.
pub fn availability() -> Result<(), &'static str> {
    if env::var(env::BROWSER).is_some() {
        return Ok(());
    }
    if env::var(env::SSH_CONNECTION).is_some() || env::var(env::SSH_TTY).is_some() {
        return Err("this is an SSH session and BROWSER is not set");
    }
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )) && env::var(env::DISPLAY).is_none()
        && env::var(env::WAYLAND_DISPLAY).is_none()
    {
        return Err(
            "there is no desktop session (DISPLAY and WAYLAND_DISPLAY are unset) and BROWSER is not set",
        );
    }
    Ok(())
}

/// Opens `url` with `BROWSER` (a `:`-separated list of commands; `%s` stands for the URL,
/// else it is appended), or the platform's opener. The browser's output never reaches ours.
pub fn open(url: &str) -> Result<(), String> {
    // Only web pages: a hostile IdP must not make mycli open `file:` or other handlers.
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {}
        _ => return Err("not an http(s) URL".into()),
    }
    if let Some(browsers) = env::var(env::BROWSER) {
        let mut last = String::new();
        for cmd in browsers.split(':').filter(|c| !c.trim().is_empty()) {
            match spawn_shell(cmd, url) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        return Err(last);
    }
    webbrowser::open(url).map_err(|e| e.to_string())
}

/// The shell text for one `BROWSER` entry. The URL is passed as `"$1"`, never spliced into
/// the text. `%s` may stand quoted (`'%s'` or `"%s"`, as Python's webbrowser and many
/// dotfiles write it): the quotes go with it, else `'%s'` would hand over the literal `"$1"`.
#[cfg(unix)]
fn browser_script(cmd: &str) -> String {
    if cmd.contains("%s") {
        cmd.replace("'%s'", "%s")
            .replace("\"%s\"", "%s")
            .replace("%s", "\"$1\"")
    } else {
        format!("{cmd} \"$1\"")
    }
}

#[cfg(unix)]
fn spawn_shell(cmd: &str, url: &str) -> Result<(), String> {
    let script = browser_script(cmd);
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not run BROWSER ({cmd}): {e}"))?;
    started(child, cmd)
}

/// A BROWSER command that cannot start (not found, not executable, a launcher that fails at
/// once) exits within moments; one still running after a second, or done with success, has
/// opened the page. Without this check a broken BROWSER left the login waiting silently for
/// its whole timeout.
fn started(mut child: std::process::Child, cmd: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(match status.code() {
                    Some(127) => format!("BROWSER ({cmd}) was not found"),
                    Some(126) => format!("BROWSER ({cmd}) could not be run"),
                    Some(code) => format!("BROWSER ({cmd}) failed with exit status {code}"),
                    None => format!("BROWSER ({cmd}) was ended by a signal"),
                });
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // Still running (a browser in the foreground) or not waitable: it started.
            _ => return Ok(()),
        }
    }
}

#[cfg(not(unix))]
fn spawn_shell(cmd: &str, url: &str) -> Result<(), String> {
    Command::new(cmd)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("could not run BROWSER ({cmd}): {e}"))
}
