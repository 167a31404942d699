use std::path::Path;

use crate::app::App;
use crate::cli::PinArgs;
use crate::error::{Error, Result};
use crate::output;
use crate::select::{self, PIN_FILE, Pin, Rule, Selection};
use crate::store::{Config, Context, atomic};

/// `mycli pin [NAME|ORG_ID] [--personal] [--clear]`: writes, clears or shows the
/// `.mycli.toml` of the working directory.
pub fn run(app: &App, args: PinArgs) -> Result<()> {
    let here = std::env::current_dir()
        .map_err(|e| Error::failure(format!("could not read the working directory: {e}")))?;
    let path = here.join(PIN_FILE);
    if args.clear {
        return clear(app, &path);
    }
    match args.target {
        Some(target) => write(app, &path, &target, args.personal),
        None => show(app),
    }
}

/// Prints the pin in effect here (`VALUE<TAB>FILE`) and, on stderr, what it selects.
fn show(app: &App) -> Result<()> {
    let Some((path, pin)) = select::find_pin()? else {
        app.ui.say(&format!(
            "No {PIN_FILE} here or above: commands here use the current context."
        ));
        return Ok(());
    };
    let value = match &pin {
        Pin::Organization(org) | Pin::Context(org) => org,
    };
    let shown = path.display().to_string();
    output::line(&format!(
        "{value}\t{}",
        crate::text::for_terminal(&shown, false)
    ))?;
    let config = Config::load(&app.paths)?;
    let selection = Selection::below()?;
    match selection.key(&config) {
        Ok(key) => app.ui.say(&format!(
            "It selects the context {:?}.",
            config.contexts[&key].name
        )),
        Err(err) => app.ui.warn(&err.message),
    }
    warn_overridden(app);
    Ok(())
}

fn write(app: &App, path: &Path, target: &str, personal: bool) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let pin = match config.find(target) {
        Some((key, ctx)) => match Context::organization_id(key) {
            Some(org) if !personal => Pin::Organization(org.to_string()),
            None if !personal => {
                app.ui.say(&format!(
                    "{:?} belongs to no organization; pinning it by name.",
                    ctx.name
                ));
                Pin::Context(ctx.name.clone())
            }
            _ => Pin::Context(ctx.name.clone()),
        },
        // An organization you have not signed in to yet: teammates may have.
        None if !personal && looks_like_org_id(target) => {
            app.ui.warn(&format!(
                "you are not signed in to {target}; run `mycli login --org {}` to use this pin",
                crate::text::shell_word(target)
            ));
            Pin::Organization(target.to_string())
        }
        None => return Err(config.unknown(target)),
    };
    let text = select::pin_text(&pin);
    // What is written must read back as the same pin.
    if select::parse_pin(&text, path).ok().as_ref() != Some(&pin) {
        return Err(Error::usage(format!(
            "{target:?} cannot be written to a pin"
        )));
    }
    let existed = path.exists();
    atomic::write_shared(path, text.as_bytes())?;
    let what = match &pin {
        Pin::Organization(org) => format!("organization {org}"),
        Pin::Context(name) => format!("context {name:?}"),
    };
    app.ui.say(&format!(
        "{} {} ({what}): commands here and below use it.",
        if existed { "Replaced" } else { "Wrote" },
        path.display()
    ));
    if matches!(pin, Pin::Organization(_)) {
        app.ui.say(
            "It names the organization, not your context: commit it, and each teammate uses their own session.",
        );
    }
    warn_overridden(app);
    Ok(())
}

fn clear(app: &App, path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => app.ui.say(&format!("Removed {}.", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            app.ui
                .say(&format!("There is no {PIN_FILE} in this directory."));
        }
        Err(e) => return Err(Error::io("remove", path, &e)),
    }
    if let Ok(Some((parent, _))) = select::find_pin() {
        app.ui.say(&format!(
            "{} still applies here; clear it there to stop it.",
            parent.display()
        ));
    }
    Ok(())
}

/// `MYCLI_CONTEXT` (or `--context`) outranks any pin: say so where the pin is written.
fn warn_overridden(app: &App) {
    if let Ok(selection) = Selection::of(app)
        && matches!(selection.rule, Rule::Flag | Rule::Env)
    {
        app.ui.warn(&format!(
            "{} overrides the pin in this shell",
            selection.rule.describe()
        ));
    }
}

fn looks_like_org_id(text: &str) -> bool {
    text.starts_with("org_")
        && text.len() <= 128
        && text[4..].chars().all(|c| c.is_ascii_alphanumeric())
        && text.len() > 4
}
