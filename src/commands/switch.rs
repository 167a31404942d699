use std::io::IsTerminal;

use crate::app::App;
use crate::cli::SwitchArgs;
use crate::error::{Error, Kind, Result};
use crate::select::{Rule, Selection};
use crate::store::{Config, ConfigLock, Context};

pub fn run(app: &App, args: SwitchArgs) -> Result<()> {
    let target = match args.target {
        Some(target) => target,
        None => pick(app)?,
    };
    // No store, nothing to act on: fail without creating one (taking the lock would).
    if !app.paths.dir.exists() {
        return Err(if target == "-" {
            Error::failure("there is no previous context to return to: there are no contexts")
                .with_hint("sign in with `mycli login --org ORG_ID`")
        } else {
            Config::default().unknown(&target)
        });
    }
    let lock = ConfigLock::acquire(&app.paths)?;
    let mut config = lock.load_for_pointers()?;
    let key = if target == "-" {
        match &config.previous {
            Some(prev) if config.contexts.contains_key(prev) => prev.clone(),
            _ => {
                return Err(Error::failure("there is no previous context to return to")
                    .with_hint("switch by name: `mycli switch NAME`"));
            }
        }
    } else {
        config.resolve(&target)?
    };
    config.set_current(&key);
    lock.save_pointers(&config)?;
    drop(lock);
    let ctx = &config.contexts[&key];
    app.ui.say(&format!("Switched to context {:?}.", ctx.name));
    warn_overridden(app, &config, &key);
    Ok(())
}

/// `MYCLI_CONTEXT` or a pin outranks `current`: say so where the switch ran.
fn warn_overridden(app: &App, config: &Config, key: &str) {
    let Ok(selection) = Selection::of(app) else {
        return;
    };
    if selection.rule == Rule::Current {
        return;
    }
    let chosen = selection.key(config).ok();
    if chosen.as_deref() == Some(key) {
        return;
    }
    let what = match chosen.as_ref().and_then(|k| config.contexts.get(k)) {
        Some(c) => format!("{:?}", c.name),
        None => "another context".to_string(),
    };
    let (by, fix) = match &selection.rule {
        Rule::Pin(path) => (
            path.display().to_string(),
            format!(
                "`mycli pin --clear` in {}",
                path.parent()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
        ),
        Rule::Env => (
            crate::env::CONTEXT.to_string(),
            format!("`unset {}`", crate::env::CONTEXT),
        ),
        _ => (
            "the --context flag".to_string(),
            "drop --context".to_string(),
        ),
    };
    app.ui.warn(&format!(
        "{by} still selects {what} here, so commands here do not use the switched-to context; {fix} to stop that"
    ));
}

/// One line of the picker: marker, name, organization, user, state.
struct Choice {
    target: String,
    label: String,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// The picker of `mycli switch` with no argument: on a terminal, type to filter, arrows and
/// Enter to choose, Esc to cancel (exit 130, nothing changed). Off a terminal, a usage error
/// that lists the names.
fn pick(app: &App) -> Result<String> {
    let config = Config::load(&app.paths)?;
    let mut contexts: Vec<(&String, &Context)> = config.contexts.iter().collect();
    contexts.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        let names: Vec<&str> = contexts.iter().map(|(_, c)| c.name.as_str()).collect();
        let listed = if names.is_empty() {
            "there are no contexts".to_string()
        } else {
            format!("known contexts: {}", names.join(", "))
        };
        return Err(Error::usage(format!(
            "which context? `mycli switch` needs a NAME when it cannot ask ({listed})"
        ))
        .with_hint("mycli switch NAME (or `-` for the previous one)"));
    }
    if contexts.is_empty() {
        return Err(Error::failure("there are no contexts to switch to")
            .with_hint("sign in with `mycli login --org ORG_ID`"));
    }
    let rows: Vec<[String; 5]> = contexts
        .iter()
        .map(|(key, ctx)| {
            [
                if config.current.as_ref() == Some(*key) {
                    "*"
                } else {
                    " "
                }
                .to_string(),
                ctx.name.clone(),
                ctx.organization_name
                    .clone()
                    .or_else(|| Context::organization_id(key).map(str::to_string))
                    .unwrap_or_else(|| "-".to_string()),
                ctx.email.clone().unwrap_or_else(|| ctx.user_id.clone()),
                if ctx.needs_login {
                    "needs login".to_string()
                } else {
                    "signed in".to_string()
                },
            ]
        })
        .collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    let choices: Vec<Choice> = contexts
        .iter()
        .zip(&rows)
        .map(|((key, _), row)| {
            let mut label = String::new();
            for (i, cell) in row.iter().enumerate() {
                label.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i].saturating_sub(display_width(cell)) + 2;
                    label.extend(std::iter::repeat_n(' ', pad));
                }
            }
            Choice {
                target: (*key).clone(),
                label: label.trim_end().to_string(),
            }
        })
        .collect();
    let start = contexts
        .iter()
        .position(|(k, _)| config.current.as_ref() == Some(*k))
        .unwrap_or(0);
    let answer = inquire::Select::new("Switch to which context?", choices)
        .with_starting_cursor(start)
        .with_page_size(12)
        .with_help_message("type to filter, ↑↓ to move, Enter to switch, Esc to cancel")
        .prompt();
    match answer {
        Ok(choice) => Ok(choice.target),
        Err(
            inquire::InquireError::OperationCanceled | inquire::InquireError::OperationInterrupted,
        ) => {
            app.ui.say("Cancelled; nothing changed.");
            Err(Error::new(Kind::Exit(130), ""))
        }
        Err(e) => Err(Error::failure(format!("the picker failed: {e}"))
            .with_hint("pass the name: `mycli switch NAME`")),
    }
}

/// Columns a string takes on a terminal (wide characters count twice).
fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}
