use crate::app::App;
use crate::cli::OutputFormat;
use crate::error::Result;
use crate::output::{self, ContextJson, SelectedByJson};
use crate::select::{Rule, Selection};
use crate::store::Config;

pub fn run(app: &App) -> Result<()> {
    let format = output::listing_format(app.output);
    let config = Config::load(&app.paths)?;
    let selected = selected_here(app, &config);
    match format {
        OutputFormat::Json => {
            let mut items: Vec<ContextJson> = config
                .contexts
                .iter()
                .map(|(k, c)| {
                    let mut item = ContextJson::new(k, c, config.current.as_ref() == Some(k));
                    if let Some((key, rule)) = &selected
                        && key == k
                    {
                        item.selected = true;
                        item.selected_by = Some(SelectedByJson::new(rule));
                    }
                    item
                })
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
        OutputFormat::Table | OutputFormat::ExecCredential => {
            if config.contexts.is_empty() {
                app.ui
                    .say("No contexts yet. Sign in with `mycli login --org ORG_ID`.");
                return Ok(());
            }
            output::contexts_table(&config, selected.as_ref().map(|(k, _)| k.as_str()))
        }
    }
}

/// The key of the context commands run here use; says on stderr when that is not the
/// current one, and why.
fn selected_here(app: &App, config: &Config) -> Option<(String, Rule)> {
    let selection = match Selection::of(app) {
        Ok(selection) => selection,
        Err(err) => {
            app.ui.warn(&err.message);
            return None;
        }
    };
    match selection.key(config) {
        Ok(key) => {
            if selection.rule != Rule::Current && config.current.as_ref() != Some(&key) {
                let current = match config.current.as_ref().and_then(|c| config.contexts.get(c)) {
                    Some(c) => format!("the current context is {:?}", c.name),
                    None => "no context is current".to_string(),
                };
                app.ui.say(&format!(
                    "Commands here use {:?}, selected by {}; {current}.",
                    config.contexts[&key].name,
                    selection.rule.describe()
                ));
            }
            Some((key, selection.rule))
        }
        Err(err) if selection.rule != Rule::Current => {
            app.ui.warn(&format!(
                "{} selects no usable context here: {}",
                selection.rule.describe(),
                err.message
            ));
            None
        }
        Err(_) => None,
    }
}
