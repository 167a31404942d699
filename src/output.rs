//! Everything mycli prints on stdout goes through here: tables, JSON, names, tokens.
//! stdout carries data only; the conversation is on stderr (`ui`).

#![allow(clippy::print_stdout)]

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::store::{Config, Context};
use crate::time;

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

pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::failure(format!("could not render JSON: {e}")))?;
    line(&text)
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

/// "needs login", "expires in 4m", "expired 3m ago": the state column of a context.
pub fn state(ctx: &Context, now: i64) -> String {
    if ctx.needs_login {
        return "needs login".into();
    }
    match ctx
        .access_token_expires_at
        .as_deref()
        .and_then(time::parse_rfc3339)
    {
        Some(exp) if exp > now => format!("expires {}", time::relative(exp, now)),
        Some(exp) => format!("expired {}", time::relative(exp, now)),
        None => "signed in".into(),
    }
}

/// The kubectl-like table of `mycli contexts`: left-aligned columns three spaces apart, no
/// trailing blanks.
pub fn contexts_table(config: &Config, now: i64) -> String {
    let mut rows: Vec<[String; 5]> = Vec::with_capacity(config.contexts.len() + 1);
    rows.push(["CURRENT", "NAME", "ORGANIZATION", "USER", "STATE"].map(String::from));
    let mut contexts: Vec<(&String, &Context)> = config.contexts.iter().collect();
    contexts.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name));
    for (key, ctx) in contexts {
        let marker = if config.current.as_ref() == Some(key) {
            "*"
        } else {
            ""
        };
        rows.push([
            marker.to_string(),
            ctx.name.clone(),
            Context::organization_id(key).unwrap_or("-").to_string(),
            ctx.email.clone().unwrap_or_else(|| ctx.user_id.clone()),
            state(ctx, now),
        ]);
    }
    render(&rows)
}

fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::with_capacity(rows.len() * (widths.iter().sum::<usize>() + 3 * N));
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}
