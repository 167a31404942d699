//! Dynamic completion of context names: read-only, from `config.toml` alone, silent on any
//! error (it runs on every <TAB>).

use clap_complete::CompletionCandidate;

use crate::store::{Config, Paths};

pub fn context_names() -> Vec<CompletionCandidate> {
    let Ok(paths) = Paths::resolve(None) else {
        return Vec::new();
    };
    let Ok(config) = Config::load(&paths) else {
        return Vec::new();
    };
    config
        .contexts
        .iter()
        .map(|(key, ctx)| {
            let help = ctx.organization_name.as_deref().unwrap_or(key);
            CompletionCandidate::new(&ctx.name).help(Some(help.to_string().into()))
        })
        .collect()
}
