use crate::app::App;
use crate::error::Result;
use crate::output;
use crate::store::{Config, config};

/// Prints the name of the current context (or of the one `--context` selects).
pub fn run(app: &App) -> Result<()> {
    let config = Config::load(&app.paths)?;
    if app.context.is_none() && config.current.is_none() {
        return Err(config::no_current());
    }
    let key = config.selected(app.context.as_deref())?;
    output::line(&config.contexts[&key].name)
}
