use crate::App;
use crate::error::Result;
use crate::output;
use crate::store::Config;

/// Prints the name of the current context (or of the one `--context` selects).
pub fn run(app: &App) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let key = config.selected(app.context.as_deref())?;
    output::line(&config.contexts[&key].name)
}
