use crate::app::App;
use crate::cli::OutputFormat;
use crate::error::Result;
use crate::output::{self, ContextJson};
use crate::store::Config;

pub fn run(app: &App) -> Result<()> {
    let config = Config::load(&app.paths)?;
    match app.output.unwrap_or(OutputFormat::Table) {
        OutputFormat::Json => {
            let mut items: Vec<ContextJson> = config
                .contexts
                .iter()
                .map(|(k, c)| ContextJson::new(k, c, config.current.as_ref() == Some(k)))
                .collect();
            items.sort_by(|a, b| a.name.cmp(b.name));
            output::json(&items)
        }
        OutputFormat::Name => {
            let mut names: Vec<&str> = config.contexts.values().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            let mut text = String::with_capacity(names.len() * 16);
            for n in names {
                text.push_str(n);
                text.push('\n');
            }
            output::block(&text)
        }
        OutputFormat::Table => {
            if config.contexts.is_empty() {
                app.ui
                    .say("No contexts yet. Sign in with `mycli login --org ORG_ID`.");
                return Ok(());
            }
            output::contexts_table(&config)
        }
    }
}
