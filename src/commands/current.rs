use crate::app::App;
use crate::error::Result;
use crate::output;
use crate::select::{Rule, Selection};
use crate::store::{Config, config};

/// Prints the name of the context commands run here use: the current one, unless
/// `--context`, `MYCLI_CONTEXT` or a `.mycli.toml` pin selects another (stderr says which).
pub fn run(app: &App) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let selection = Selection::of(app)?;
    if selection.rule == Rule::Current && config.current.is_none() {
        return Err(config::no_current());
    }
    let key = selection.key(&config)?;
    output::line(&config.contexts[&key].name)?;
    if selection.rule != Rule::Current {
        app.ui
            .say(&format!("(selected by {})", selection.rule.describe()));
    }
    Ok(())
}
