//! The conversation on stderr: progress, prompts, warnings, errors. Never data, never secrets.

#![allow(clippy::print_stderr)]

use std::io::IsTerminal;

use crate::env;
use crate::error::Error;

/// `eprintln!` that ignores a failed write: stderr may be a closed pipe, a full device or a
/// terminal that hung up, and `eprintln!` panics on each (exit 134 in a release build,
/// perhaps in the middle of a refresh). The conversation is lost; the command goes on.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub(crate) use emit;

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    color: bool,
}

impl Ui {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        // NO_COLOR (no-color.org), a terminal that says it cannot (TERM=dumb), or no terminal.
        let color = env::var(env::NO_COLOR).is_none()
            && env::var(env::TERM).as_deref() != Some("dumb")
            && std::io::stderr().is_terminal();
        Ui {
            quiet,
            verbose,
            color,
        }
    }

    /// Whether stderr, where the conversation goes, is a terminal.
    pub fn stderr_is_terminal(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    /// A line of conversation, silenced by `--quiet`.
    pub fn say(&self, text: &str) {
        if !self.quiet {
            emit!("{}", lines(text));
        }
    }

    /// What the user must see to act on, such as a sign-in's URL or code: printed even with
    /// `--quiet`, which silences only the conversation around it.
    pub fn show(&self, text: &str) {
        emit!("{}", lines(text));
    }

    /// A question on stderr, without a newline, flushed so it shows before the answer.
    pub fn prompt(&self, text: &str) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", lines(text));
        let _ = err.flush();
    }

    pub fn warn(&self, text: &str) {
        if !self.quiet {
            emit!("{} {}", self.paint("warning:", "33"), line(text));
        }
    }

    /// A line of `--verbose` output.
    pub fn debug(&self, text: &str) {
        if self.verbose {
            emit!("{}", self.paint(&lines(text), "2"));
        }
    }

    /// A `hint:` line after a warning.
    pub fn hint(&self, text: &str) {
        if !self.quiet {
            emit!("{} {}", self.paint("hint:", "1;36"), line(text));
        }
    }

    pub fn error(&self, err: &Error) {
        emit!("{} {}", self.paint("error:", "1;31"), line(&err.message));
        if let Some(hint) = &err.hint {
            emit!("{} {}", self.paint("hint:", "1;36"), line(hint));
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// One line of conversation: nothing in it may move the cursor, recolour or retitle the
/// terminal, nor start a line that looks like mycli's own.
fn line(text: &str) -> std::borrow::Cow<'_, str> {
    crate::text::for_terminal(text, false)
}

/// Conversation that may span lines (a QR code, a blank line before a note).
fn lines(text: &str) -> std::borrow::Cow<'_, str> {
    crate::text::for_terminal(text, true)
}
