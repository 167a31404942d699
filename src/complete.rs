//! Dynamic completion of context names: read-only, from `config.toml` alone, silent on any
//! error (it runs on every <TAB>).

use clap_complete::CompletionCandidate;

use crate::store::{Config, Paths};

pub fn context_names() -> Vec<CompletionCandidate> {
    let flag = config_dir_flag(std::env::args_os().map(|a| a.to_string_lossy().into_owned()));
    let Ok(paths) = Paths::resolve(flag.as_deref().map(std::path::Path::new)) else {
        return Vec::new();
    };
    // Read-only: config.toml itself, not the index (which a load may rebuild and write).
    let path = paths.config();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let Ok(config) = Config::parse(&text, &path) else {
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

/// The `--config-dir` of the command line being completed, if it has one.
fn config_dir_flag(args: impl Iterator<Item = String>) -> Option<String> {
    let mut found = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "--config-dir" {
            found = args.next_if(|v| !v.is_empty()).or(found);
        } else if let Some(v) = arg.strip_prefix("--config-dir=") {
            found = Some(v.to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_config_dir_of_the_line_being_completed() {
        let line = |s: &str| {
            s.split(' ')
                .map(String::from)
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            config_dir_flag(line("mycli -- mycli --config-dir /x switch ")),
            Some("/x".into())
        );
        assert_eq!(
            config_dir_flag(line("mycli -- mycli --config-dir=/y switch a")),
            Some("/y".into())
        );
        assert_eq!(config_dir_flag(line("mycli -- mycli switch ")), None);
    }
}
