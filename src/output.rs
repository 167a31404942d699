//! Everything mycli prints on stdout goes through here: tables, JSON, names, tokens.
//! stdout carries data only; the conversation is on stderr (`ui`).

#![allow(clippy::print_stdout)]

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::select::Rule;
use crate::store::{Config, Context};

pub use crate::vocab::OutputFormat;

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

/// The `-o` of a command that prints contexts: table (the default), json or name (any other
/// format was refused before the command ran: `Command::output_formats`).
pub fn listing_format(output: Option<OutputFormat>) -> OutputFormat {
    output.unwrap_or(OutputFormat::Table)
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
    /// Whether this is the context commands here use (spec §8), which may differ from the
    /// `current` pointer.
    pub selected: bool,
    /// The rule that selected it, when `selected`.
    pub selected_by: Option<SelectedByJson>,
    /// How the person authenticated at the IdP (WorkOS `authentication_method`), when known.
    pub authentication_method: Option<&'a str>,
    /// Who acts as the user in an impersonated session; null otherwise.
    pub impersonator: Option<ImpersonatorJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ImpersonatorJson<'a> {
    pub email: &'a str,
    pub reason: Option<&'a str>,
}

/// `status -o json`: the context's object, plus what its access token says about the user's
/// rights there, when the token carries it.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    #[serde(flatten)]
    pub context: ContextJson<'a>,
    /// Only when the token states it: otherwise the object is exactly the listing's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct SelectedByJson {
    /// `flag`, `env`, `pin` or `current`.
    pub rule: &'static str,
    /// The pin file, for `pin`.
    pub path: Option<String>,
}

impl SelectedByJson {
    pub fn new(rule: &Rule) -> Self {
        SelectedByJson {
            rule: rule.as_str(),
            path: match rule {
                Rule::Pin(path) => Some(path.display().to_string()),
                _ => None,
            },
        }
    }
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
            selected: false,
            selected_by: None,
            authentication_method: ctx.authentication_method.as_deref(),
            impersonator: ctx.impersonator.as_ref().map(|i| ImpersonatorJson {
                email: &i.email,
                reason: i.reason.as_deref(),
            }),
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

/// Prints the kubectl-like table of `mycli contexts`, rendered by comfy-table: borderless
/// columns three spaces apart, no trailing blanks, sorted by name, aligned by display width
/// (wide CJK characters and emoji take two columns). On a terminal the table is fitted to its
/// width: the widest cells are cut with `…`, rows never wrap. Piped, it is never cut. `*` marks
/// the `selected` context (the one commands here use).
pub fn contexts_table(config: &Config, selected: Option<&str>) -> Result<()> {
    const HEADER: [&str; 5] = ["CURRENT", "NAME", "ORGANIZATION", "USER", "STATE"];
    let mut contexts: Vec<(&String, &Context)> = config.contexts.iter().collect();
    contexts.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name));
    let rows: Vec<[&str; 5]> = contexts
        .iter()
        .map(|(key, ctx)| {
            [
                if selected == Some(key.as_str()) {
                    "*"
                } else {
                    ""
                },
                ctx.name.as_str(),
                match (&ctx.organization_name, Context::organization_id(key)) {
                    (Some(name), Some(_)) => name.as_str(),
                    (_, id) => id.unwrap_or("-"),
                },
                ctx.email.as_deref().unwrap_or(&ctx.user_id),
                state(ctx),
            ]
        })
        .collect();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    match terminal_width() {
        Some(width) => {
            // Headings stay whole; the widest cells (emails, organizations) give way first.
            let mut least = HEADER.map(|h| {
                if h == "STATE" {
                    "needs login".len()
                } else {
                    h.len()
                }
            });
            // Names are what `switch` and `--context` take: cut to a common prefix, two
            // contexts would look the same. They stay whole while the other columns' headings
            // still fit beside them.
            let others: usize = least.iter().sum::<usize>() - least[1] + 3 * 4;
            let longest = rows
                .iter()
                .map(|row| unicode_width::UnicodeWidthStr::width(row[1]))
                .max()
                .unwrap_or(0);
            least[1] = longest
                .min(usize::from(width).saturating_sub(others))
                .max(least[1]);
            let table = comfy_rows(Some(&HEADER), &rows, Fit::Terminal(width, least));
            write_lines(&mut out, &table)?;
        }
        None => {
            // Piped, nothing is cut: every column's display width is known up front, so the
            // rows are rendered in slices with those widths, which keeps memory flat at
            // 10,000 contexts.
            let mut widths = HEADER.map(unicode_width::UnicodeWidthStr::width);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(unicode_width::UnicodeWidthStr::width(*cell));
                }
            }
            let header = comfy_rows(Some(&HEADER), &[], Fit::Widths(widths));
            write_lines(&mut out, &header)?;
            for slice in rows.chunks(256) {
                write_lines(&mut out, &comfy_rows(None, slice, Fit::Widths(widths)))?;
            }
        }
    }
    out.flush().map_err(stdout_error)
}

/// How a table's columns get their widths.
enum Fit {
    /// Fitted to a terminal this wide, no column narrower than these widths.
    Terminal(u16, [usize; 5]),
    /// Exactly these content widths (piped output, rendered in slices).
    Widths([usize; 5]),
}

/// A borderless comfy-table of five columns, three spaces apart.
fn comfy_rows(header: Option<&[&str; 5]>, rows: &[[&str; 5]], fit: Fit) -> comfy_table::Table {
    let one_line = |cells: &[&str; 5]| {
        let mut row = comfy_table::Row::from(cells.to_vec());
        if matches!(fit, Fit::Terminal(..)) {
            row.max_height(1);
        }
        row
    };
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    if let Some(header) = header {
        table.set_header(one_line(header));
    }
    for row in rows {
        table.add_row(one_line(row));
    }
    match fit {
        Fit::Terminal(width, _) => {
            table
                .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
                .set_width(width)
                .set_truncation_indicator("…");
        }
        Fit::Widths(_) => {
            table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        }
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        let gutter: usize = if i < 4 { 3 } else { 0 };
        column.set_padding((0, u16::try_from(gutter).unwrap_or(0)));
        let fixed = |w: usize| {
            comfy_table::Width::Fixed(u16::try_from(w.saturating_add(gutter)).unwrap_or(u16::MAX))
        };
        match &fit {
            Fit::Terminal(_, least) => {
                column.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(fixed(
                    least.get(i).copied().unwrap_or(0),
                )));
            }
            Fit::Widths(widths) => {
                column.set_constraint(comfy_table::ColumnConstraint::Absolute(fixed(
                    widths.get(i).copied().unwrap_or(0),
                )));
            }
        }
    }
    table
}

fn write_lines(out: &mut impl Write, table: &comfy_table::Table) -> Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end()).map_err(stdout_error)?;
    }
    Ok(())
}

/// A borderless table in the style of `mycli contexts` (three-space gutters, display-width
/// aligned, fitted to the terminal with `…`, never cut when piped).
///
/// The columns in `whole` (a context name, a state) are not cut while every other column's
/// heading still fits beside them: cut to a common prefix, `acme-production-eu-east` and
/// `acme-production-eu-west` would look the same.
pub fn table<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    whole: &[usize],
) -> Result<()> {
    let width = terminal_width();
    let one_line = |cells: Vec<&str>| {
        let mut row = comfy_table::Row::from(cells);
        if width.is_some() {
            row.max_height(1);
        }
        row
    };
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(one_line(header.to_vec()));
    match width {
        Some(w) => {
            table
                .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
                .set_width(w)
                .set_truncation_indicator("…");
        }
        None => {
            table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        }
    }
    for row in rows {
        table.add_row(one_line(row.iter().map(String::as_str).collect()));
    }
    let last = N.saturating_sub(1);
    let least = least_widths(header, rows, whole, width);
    for (i, column) in table.column_iter_mut().enumerate() {
        let gutter = if i < last { 3 } else { 0 };
        column.set_padding((0, gutter));
        if width.is_some() {
            column.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(
                comfy_table::Width::Fixed(
                    u16::try_from(least[i] + usize::from(gutter)).unwrap_or(u16::MAX),
                ),
            ));
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end()).map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

/// The narrowest each column of a fitted table may become: its heading, and for the columns in
/// `whole` their longest cell, as far as the terminal leaves room beside the other headings.
fn least_widths<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
    whole: &[usize],
    width: Option<u16>,
) -> [usize; N] {
    let mut least = header.map(str::len);
    let Some(width) = width else {
        return least;
    };
    let gutters = 3 * N.saturating_sub(1);
    let mut room = usize::from(width).saturating_sub(least.iter().sum::<usize>() + gutters);
    for &i in whole {
        let longest = rows
            .iter()
            .map(|row| unicode_width::UnicodeWidthStr::width(row[i].as_str()))
            .max()
            .unwrap_or(0);
        let more = longest.saturating_sub(least[i]).min(room);
        least[i] += more;
        room -= more;
    }
    least
}

/// The width of the terminal stdout is, or `None` when stdout is not a terminal.
fn terminal_width() -> Option<u16> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout)
        .map(|(w, _)| w.0)
        .filter(|w| *w > 0)
}
