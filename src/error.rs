//! One error type for the whole program: what happened, what to do, and the exit code.
//!
//! Messages never carry a secret: callers build them from names, paths and server error
//! codes, not from tokens.

use std::fmt;
use std::path::Path;

/// How an error ends the process (spec §3, "Exit codes"). Exit 130 (Ctrl-C) is not an error
/// value: the signal handling of `interrupt` ends the process directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exit 1: the IdP failed, the store is broken, an unknown context, ...
    Failure,
    /// Exit 2: a bad flag value or argument that clap could not catch.
    Usage,
    /// Exit 4: the selected context needs `mycli login`.
    NeedsLogin,
    /// Exit 0, silently: stdout was closed by the reader (`mycli contexts | head -1`).
    BrokenPipe,
    /// This exit code: the status of a command `mycli exec` ran (127 when it was not found),
    /// or 130 for a picker cancelled with Esc. An empty message prints nothing.
    Exit(u8),
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Failure => 1,
            Kind::Usage => 2,
            Kind::NeedsLogin => 4,
            Kind::BrokenPipe => 0,
            Kind::Exit(code) => code,
        }
    }
}

/// A user-facing error: one line saying what happened, optionally a hint with the command to run.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    /// Passing trouble on the way to the IdP (no answer, a 5xx, an HTML page): the same
    /// request may succeed when tried again.
    pub transient: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            transient: false,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Error::new(Kind::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(Kind::Usage, message)
    }

    pub fn needs_login(message: impl Into<String>) -> Self {
        Error::new(Kind::NeedsLogin, message)
    }

    /// Marks the error as passing trouble (see `transient`).
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An I/O failure on a file of the store, naming the file.
    pub fn io(what: &str, path: &Path, err: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        let hint = match err.kind() {
            ErrorKind::PermissionDenied => {
                format!("check the owner and permissions of {}", path.display())
            }
            ErrorKind::ReadOnlyFilesystem => "that file system is read-only; for the store, \
                 pick a writable directory with --config-dir DIR or MYCLI_CONFIG_DIR"
                .to_string(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                "free some disk space and try again".to_string()
            }
            _ => format!(
                "check {} and the directories above it, then try again",
                path.display()
            ),
        };
        Error {
            kind: Kind::Failure,
            message: format!("could not {what} {}: {}", path.display(), plain_io(err)),
            hint: Some(hint),
            transient: false,
        }
    }
}

/// An `io::Error` without the "(os error N)" suffix.
pub fn plain_io(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
