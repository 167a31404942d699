use crate::app::App;
use crate::error::Result;
use crate::output;
use crate::select::{Selection, Target};
use crate::store::Config;

/// Prints the name of the context commands here use, or nothing when there is none. Never
/// fails and never writes to stderr: it runs in every shell prompt.
pub fn run(app: &App) -> Result<()> {
    match name(app) {
        Some(name) => output::line(&name),
        None => Ok(()),
    }
}

/// Like `mycli token`, it reads the pointer (or the pin) and, for the name, looks one context
/// up in `cache/names` (or the index); the whole store is loaded only when neither is of
/// `config.toml` as it is now, which is also how a broken store or a dangling pointer shows.
fn name(app: &App) -> Option<String> {
    let selection = Selection::of(app).ok()?;
    // A name or organization id from the flag or the environment; a key otherwise.
    let (query, by_name) = match &selection.target {
        Target::Current => (Config::current_pointer(&app.paths).ok()??, false),
        Target::Organization(org) => (org.clone(), false),
        Target::Query(query) => (query.clone(), true),
    };
    match Config::indexed_name(&app.paths, &query, by_name) {
        Some(found) => found,
        None => slow(app, &selection),
    }
}

fn slow(app: &App, selection: &Selection) -> Option<String> {
    let config = Config::load(&app.paths).ok()?;
    let key = selection.key(&config).ok()?;
    config.contexts.get(&key).map(|c| c.name.clone())
}
