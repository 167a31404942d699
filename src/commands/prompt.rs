use crate::app::App;
use crate::error::Result;
use crate::output;
use crate::select::Selection;
use crate::store::Config;

/// Prints the name of the context commands here use, or nothing when there is none. Never
/// fails and never writes to stderr: it runs in every shell prompt.
pub fn run(app: &App) -> Result<()> {
    match name(app) {
        Some(name) => output::line(&name),
        None => Ok(()),
    }
}

fn name(app: &App) -> Option<String> {
    let selection = Selection::of(app).ok()?;
    let config = Config::load(&app.paths).ok()?;
    let key = selection.key(&config).ok()?;
    config.contexts.get(&key).map(|c| c.name.clone())
}
