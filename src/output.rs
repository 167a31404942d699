//! Everything mycli prints on stdout goes through here: tables, JSON, names, tokens.
//! stdout carries data only; the conversation is on stderr (`ui`).

#![allow(clippy::print_stdout)]

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::store::{Config, Context};

/// `--output`: how a command that prints data prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Name,
}

/// Writes `text` and a newline to stdout. A closed pipe ends the program quietly.
pub fn line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes a block that already ends with newlines.
pub fn block(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Pretty JSON, streamed to stdout (10,000 contexts never sit in memory as one string).
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| match e.io_error_kind() {
        Some(kind) => stdout_error(std::io::Error::from(kind)),
        None => Error::failure(format!("could not render JSON: {e}")),
    })?;
    writeln!(out)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::new(Kind::BrokenPipe, "")
    } else {
        Error::failure(format!("could not write to stdout: {e}"))
    }
}

/// The documented JSON object of a context (`contexts -o json`, `status -o json`).
/// Fields are only ever added.
#[derive(Debug, Serialize)]
pub struct ContextJson<'a> {
    pub name: &'a str,
    pub organization_id: Option<&'a str>,
    pub organization_name: Option<&'a str>,
    pub user: UserJson<'a>,
    pub current: bool,
    pub provider: ProviderJson<'a>,
    pub storage: &'static str,
    pub access_token_expires_at: Option<&'a str>,
    pub needs_login: bool,
    pub method: &'static str,
    pub signed_in_at: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct UserJson<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ProviderJson<'a> {
    pub kind: &'static str,
    pub issuer: &'a str,
    pub client_id: &'a str,
}

impl<'a> ContextJson<'a> {
    pub fn new(key: &'a str, ctx: &'a Context, current: bool) -> Self {
        ContextJson {
            name: &ctx.name,
            organization_id: Context::organization_id(key),
            organization_name: ctx.organization_name.as_deref(),
            user: UserJson {
                id: &ctx.user_id,
                email: ctx.email.as_deref(),
            },
            current,
            provider: ProviderJson {
                kind: ctx.provider.as_str(),
                issuer: &ctx.issuer,
                client_id: &ctx.client_id,
            },
            storage: ctx.storage.as_str(),
            access_token_expires_at: ctx.access_token_expires_at.as_deref(),
            needs_login: ctx.needs_login,
            method: ctx.method.as_str(),
            signed_in_at: ctx.signed_in_at.as_deref(),
        }
    }
}

/// The session's state, the STATE column: `signed in` or `needs login`. An access token that
/// has expired is not the session's state (the next `token` refreshes it silently); its expiry
/// is in `status` and in JSON.
pub fn state(ctx: &Context) -> &'static str {
    if ctx.needs_login {
        "needs login"
    } else {
        "signed in"
    }
}

/// Prints the kubectl-like table of `mycli contexts`: left-aligned columns three spaces apart,
/// no trailing blanks, sorted by name. Streamed, borrowing from the store.
pub fn contexts_table(config: &Config) -> Result<()> {
    let mut contexts: Vec<(&String, &Context)> = config.contexts.iter().collect();
    contexts.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name));
    let row = |i: usize| -> [&str; 5] {
        let (key, ctx) = contexts[i];
        [
            if config.current.as_ref() == Some(key) {
                "*"
            } else {
                ""
            },
            &ctx.name,
            match (&ctx.organization_name, Context::organization_id(key)) {
                (Some(name), Some(_)) => name,
                (_, id) => id.unwrap_or("-"),
            },
            ctx.email.as_deref().unwrap_or(&ctx.user_id),
            state(ctx),
        ]
    };
    const HEADER: [&str; 5] = ["CURRENT", "NAME", "ORGANIZATION", "USER", "STATE"];
    let mut widths = HEADER.map(|h| h.chars().count());
    for i in 0..contexts.len() {
        for (w, cell) in widths.iter_mut().zip(row(i)) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut line = String::new();
    for cells in std::iter::once(HEADER).chain((0..contexts.len()).map(row)) {
        line.clear();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end()).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}
