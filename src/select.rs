//! Which context a command works on (spec §8), highest first: the `--context` flag,
//! `MYCLI_CONTEXT`, the nearest `.mycli.toml` above the working directory, the `current`
//! pointer.
//!
//! A pin file only selects among the user's own contexts: it holds `organization = "ORG_ID"`
//! (shareable: every teammate resolves to their own session for that organization) or
//! `context = "NAME"` (personal), and nothing else. Provider, issuer and client id are never
//! read from it, so a cloned repository cannot send a login anywhere.

use std::path::{Path, PathBuf};

use crate::app::App;
use crate::env;
use crate::error::{Error, Kind, Result};
use crate::session;
use crate::store::text;
use crate::store::{Config, Context};

/// The name of a pin file.
pub const PIN_FILE: &str = ".mycli.toml";

/// A pin file larger than this is not a pin.
const MAX_PIN_BYTES: u64 = 4096;

/// The rule that chose the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The `--context` flag.
    Flag,
    /// `MYCLI_CONTEXT`.
    Env,
    /// A `.mycli.toml` file (its path).
    Pin(PathBuf),
    /// The `current` pointer (`mycli switch`).
    Current,
}

impl Rule {
    /// How `status` and friends name the rule.
    pub fn describe(&self) -> String {
        match self {
            Rule::Flag => "the --context flag".to_string(),
            Rule::Env => env::CONTEXT.to_string(),
            Rule::Pin(path) => {
                crate::text::for_terminal(&path.display().to_string(), false).into_owned()
            }
            Rule::Current => "the current context (`mycli switch`)".to_string(),
        }
    }

    /// The rule's name in JSON output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Flag => "flag",
            Rule::Env => "env",
            Rule::Pin(_) => "pin",
            Rule::Current => "current",
        }
    }
}

/// What a pin file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// `organization = "ORG_ID"`: the user's own session for that organization.
    Organization(String),
    /// `context = "NAME"`: a context by name (or organization id).
    Context(String),
}

/// What the winning rule asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A context name or organization id (flag, environment, `context =` pin).
    Query(String),
    /// An organization id (`organization =` pin): exactly that key, never a name.
    Organization(String),
    /// Whatever `current` points at.
    Current,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub rule: Rule,
    pub target: Target,
}

impl Selection {
    /// The selection in effect for this command. The directory walk happens only when neither
    /// the flag nor the environment decided.
    pub fn of(app: &App) -> Result<Selection> {
        if let Some(query) = &app.context {
            let rule = if flag_given(std::env::args_os()) {
                Rule::Flag
            } else {
                Rule::Env
            };
            return Ok(Selection {
                rule,
                target: Target::Query(query.clone()),
            });
        }
        Selection::below()
    }

    /// The selection of the working directory alone: its pin, else the `current` pointer.
    pub fn below() -> Result<Selection> {
        match find_pin()? {
            Some((path, pin)) => Ok(Selection {
                target: match pin {
                    Pin::Organization(org) => Target::Organization(org),
                    Pin::Context(name) => Target::Query(name),
                },
                rule: Rule::Pin(path),
            }),
            None => Ok(Selection {
                rule: Rule::Current,
                target: Target::Current,
            }),
        }
    }

    /// The key of the selected context in `config`.
    pub fn key(&self, config: &Config) -> Result<String> {
        match &self.target {
            Target::Current => config.selected(None),
            Target::Query(query) => match (config.resolve(query), &self.rule) {
                (Ok(key), _) => Ok(key),
                (Err(err), Rule::Pin(path)) => Err(Error::new(
                    err.kind,
                    format!("{} (selected by {})", err.message, path.display()),
                )
                .with_hint(format!(
                    "sign in to it, or change the pin with `mycli pin NAME` (`mycli pin --clear` removes {PIN_FILE})"
                ))),
                (Err(err), _) => Err(err),
            },
            Target::Organization(org) => {
                if config.contexts.contains_key(org) {
                    return Ok(org.clone());
                }
                let by = match &self.rule {
                    Rule::Pin(path) => format!(" (pinned by {})", path.display()),
                    _ => String::new(),
                };
                Err(Error::new(
                    Kind::NeedsLogin,
                    format!("you are not signed in to organization {org}{by}"),
                )
                .with_hint(session::login_command(org)))
            }
        }
    }

    /// The organization a pin selects, for `mycli login` without `--org`: the pinned id, or
    /// the organization of the pinned context.
    pub fn pinned_organization(&self, config: &Config) -> Option<String> {
        if !matches!(self.rule, Rule::Pin(_)) {
            return None;
        }
        match &self.target {
            Target::Organization(org) => Some(org.clone()),
            Target::Query(name) => config
                .find(name)
                .and_then(|(key, _)| Context::organization_id(key))
                .map(str::to_string),
            Target::Current => None,
        }
    }
}

impl Selection {
    /// The context name a personal pin gives that no context has yet: `mycli login` without
    /// `--org` or `--name` there gives the new context that name, so the pin then selects it.
    pub fn pinned_missing_name(&self, config: &Config) -> Option<String> {
        match (&self.rule, &self.target) {
            (Rule::Pin(_), Target::Query(name)) if config.find(name).is_none() => {
                Some(name.clone())
            }
            _ => None,
        }
    }
}

/// Whether `--context` is on the command line (otherwise clap took it from `MYCLI_CONTEXT`).
/// Arguments after `--` belong to another program.
fn flag_given(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--context" || a.to_string_lossy().starts_with("--context="))
}

/// The nearest pin file from the working directory up, stopping at the root or before a
/// `MYCLI_CEILING_DIRS` entry (the working directory itself is always looked at).
pub fn find_pin() -> Result<Option<(PathBuf, Pin)>> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    // Paths need not be UTF-8: one entry that is not must not void the others.
    let ceilings = std::env::var_os(env::CEILING_DIRS).unwrap_or_default();
    find_pin_from(&cwd, &ceilings)
}

fn find_pin_from(start: &Path, ceilings: &std::ffi::OsStr) -> Result<Option<(PathBuf, Pin)>> {
    // The working directory is physical (getcwd), so a ceiling reached through a symbolic
    // link (a symlinked $HOME, macOS's /tmp) is compared as written and resolved, as git does.
    let ceilings: Vec<PathBuf> = std::env::split_paths(ceilings)
        .filter(|p| p.is_absolute())
        .flat_map(|p| {
            let written: PathBuf = p.components().collect();
            let resolved = std::fs::canonicalize(&p).ok().filter(|r| *r != written);
            std::iter::once(written).chain(resolved)
        })
        .collect();
    let mut dir = start;
    loop {
        let path = dir.join(PIN_FILE);
        if let Some(pin) = read_pin(&path)? {
            return Ok(Some((path, pin)));
        }
        let Some(parent) = dir.parent() else {
            return Ok(None);
        };
        if ceilings.iter().any(|c| c.as_path() == parent) {
            return Ok(None);
        }
        dir = parent;
    }
}

/// The pin in `path`, `None` when there is no such file, or when another user left it in a
/// directory anyone may write to (`/tmp`): there it is not a pin of this tree but a trap.
fn read_pin(path: &Path) -> Result<Option<Pin>> {
    use std::io::Read;
    let file = match crate::store::files::open_no_wait(path) {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        // Unreadable: still another user's trap, or this user's problem to fix.
        Err(_) if planted(path) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::io("read the pin file", path, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("read the pin file", path, &e))?;
    if planted(path) {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err(bad_pin(path, None, "not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_PIN_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read the pin file", path, &e))?;
    if text.len() as u64 > MAX_PIN_BYTES {
        return Err(bad_pin(path, None, "larger than a pin can be"));
    }
    parse_pin(&text, path).map(Some)
}

/// Whether the file at `path` was put there by another user (not root) in a directory anyone
/// may write to: someone else's file in `/tmp` must not steer the commands run below it (git's
/// CVE-2022-24765, for `.git`). A symbolic link counts as put there by its owner, whatever it
/// points to (a link to a root-owned file would otherwise stop mycli for everyone below).
/// Another user's pin in a directory only they can write (a checkout someone gave you, a bind
/// mount in a container) still counts.
#[cfg(unix)]
fn planted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() == me || meta.uid() == 0 {
        return false;
    }
    path.parent()
        .and_then(|dir| std::fs::metadata(dir).ok())
        .is_none_or(|dir| dir.mode() & 0o002 != 0)
}

#[cfg(not(unix))]
fn planted(_path: &Path) -> bool {
    false
}

/// Parses a pin file: exactly one of `organization` and `context`, each a plain string.
pub fn parse_pin(text: &str, path: &Path) -> Result<Pin> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| bad_pin_text(path, text::parse_error(path, text, &e)))?;
    let mut found = None;
    for (key, value) in &table {
        let line = key_line(text, key);
        let make = match key.as_str() {
            "organization" => Pin::Organization,
            "context" => Pin::Context,
            "provider" | "issuer" | "client-id" | "client_id" | "kind" | "org-claim"
            | "org_claim" => {
                return Err(bad_pin(
                    path,
                    line,
                    &format!(
                        "`{key}` is not allowed: a pin selects among your own contexts and never chooses the identity provider"
                    ),
                ));
            }
            _ => {
                return Err(bad_pin(path, line, &format!("unknown key `{key}`")));
            }
        };
        let Some(value) = value.as_str() else {
            return Err(bad_pin(path, line, &format!("`{key}` must be a string")));
        };
        if value.is_empty()
            || value.len() > 256
            || value
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || crate::text::is_invisible(c))
        {
            return Err(bad_pin(
                path,
                line,
                &format!("`{key}` is not a usable name or organization id"),
            ));
        }
        if found.is_some() {
            let both = key_line(text, "organization").max(key_line(text, "context"));
            return Err(bad_pin(
                path,
                both,
                "a pin holds either `organization` or `context`, not both",
            ));
        }
        found = Some(make(value.to_string()));
    }
    found.ok_or_else(|| bad_pin(path, None, "it holds neither `organization` nor `context`"))
}

fn bad_pin(path: &Path, line: Option<usize>, what: &str) -> Error {
    bad_pin_text(path, text::at_line(path, line, what))
}

fn bad_pin_text(path: &Path, message: String) -> Error {
    Error::failure(message).with_hint(format!(
        "a pin holds only `organization = \"ORG_ID\"` or `context = \"NAME\"`; fix it, or remove {}",
        path.display()
    ))
}

/// The line where `key` is defined (as `key = ...`, `"key" = ...` or `[key]`).
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix('[')
                .unwrap_or(l)
                .trim_start_matches('[')
                .trim_start();
            let rest = rest
                .strip_prefix(&format!("\"{key}\""))
                .or_else(|| rest.strip_prefix(&format!("'{key}'")))
                .or_else(|| rest.strip_prefix(key));
            rest.is_some_and(|r| {
                let r = r.trim_start();
                r.starts_with('=') || r.starts_with(']') || r.starts_with('.')
            })
        })
        .map(|i| i + 1)
}

/// The text of a pin file for `pin`.
pub fn pin_text(pin: &Pin) -> String {
    let (key, value) = match pin {
        Pin::Organization(org) => ("organization", org),
        Pin::Context(name) => ("context", name),
    };
    // Both were validated: no quotes, backslashes or control characters need escaping in a
    // name; an organization id is checked the same way before it is written.
    format!(
        "# Selects the mycli context for commands run in this directory and below it.\n{key} = {}\n",
        toml::Value::String(value.clone())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pin> {
        parse_pin(text, Path::new("/p/.mycli.toml"))
    }

    #[test]
    fn a_pin_holds_one_of_two_keys() {
        assert_eq!(
            parse("organization = \"org_1\"\n").unwrap(),
            Pin::Organization("org_1".into())
        );
        assert_eq!(
            parse("# mine\ncontext = 'acme'").unwrap(),
            Pin::Context("acme".into())
        );
        assert!(parse("").is_err());
        assert!(parse("organization = \"a\"\ncontext = \"b\"").is_err());
        assert!(parse("organization = 3").is_err());
        assert!(parse("organization = \"a b\"").is_err());
        assert!(parse("organization = \"org_\\u202eevil\"").is_err());
    }

    #[test]
    fn provider_keys_and_unknown_keys_are_refused_with_their_line() {
        let err = parse("organization = \"org_1\"\n\nissuer = \"https://evil\"\n").unwrap_err();
        assert!(
            err.message
                .starts_with("/p/.mycli.toml, line 3: `issuer` is not allowed"),
            "{}",
            err.message
        );
        let err = parse("context = \"a\"\n[provider]\nkind = \"oidc\"\n").unwrap_err();
        assert!(err.message.contains("line 2"), "{}", err.message);
        let err = parse("colour = \"red\"\n").unwrap_err();
        assert!(
            err.message.contains("line 1: unknown key `colour`"),
            "{}",
            err.message
        );
        let err = parse("organization = \n").unwrap_err();
        assert!(err.message.contains("line 1"), "{}", err.message);
    }

    #[test]
    fn pin_text_round_trips() {
        for pin in [
            Pin::Organization("org_1".into()),
            Pin::Context("é-1".into()),
        ] {
            assert_eq!(parse(&pin_text(&pin)).unwrap(), pin);
        }
    }

    #[test]
    fn the_walk_stops_at_a_ceiling() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        let deep = top.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(top.join(PIN_FILE), "context = \"x\"").unwrap();
        let found = find_pin_from(&deep, "".as_ref()).unwrap().unwrap();
        assert_eq!(found.0, top.join(PIN_FILE));
        let ceiling = top.display().to_string();
        assert!(find_pin_from(&deep, ceiling.as_ref()).unwrap().is_none());
        let ceiling = top.join("a").display().to_string();
        assert!(find_pin_from(&deep, ceiling.as_ref()).unwrap().is_none());
        // The working directory itself is always looked at.
        assert!(find_pin_from(&top, ceiling.as_ref()).unwrap().is_some());
        let relative = "relative/dir";
        assert!(find_pin_from(&deep, relative.as_ref()).unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_ceiling_reached_through_a_symbolic_link_stops_the_walk() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        let deep = real.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(real.join(PIN_FILE), "organization = \"org_acme\"\n").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let start = std::fs::canonicalize(&deep).unwrap();
        // The ceiling is `link/a`: the walk from real/a/b must not reach real/.
        let ceiling = link.join("a").display().to_string();
        assert!(find_pin_from(&start, ceiling.as_ref()).unwrap().is_none());
        assert!(find_pin_from(&start, "".as_ref()).unwrap().is_some());
    }

    #[test]
    fn the_flag_is_told_from_the_environment() {
        let args = |s: &str| {
            s.split(' ')
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert!(flag_given(args("mycli --context a token")));
        assert!(flag_given(args("mycli token --context=a")));
        assert!(!flag_given(args("mycli token")));
        assert!(!flag_given(args("mycli exec -- env --context a")));
    }
}
