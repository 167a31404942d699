//! Dynamic completion of context names: read-only, from `config.toml` alone, silent on any
//! error (it runs on every <TAB>).

use clap_complete::CompletionCandidate;

use crate::cli::Cli;
use crate::store::{Config, Context, Paths};

/// The variable the completion scripts set to ask for candidates. Not clap's default
/// `COMPLETE`: a variable of that common name, set for anything else, would turn every
/// command into a completion request.
pub const COMPLETE_VAR: &str = "_MYCLI_COMPLETE";

/// The shell asking (`_MYCLI_COMPLETE`), remembered before the completer clears the variable.
static SHELL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Answers a shell's completion request (`_MYCLI_COMPLETE=bash mycli -- ...`) and exits; otherwise
/// returns at once.
pub fn answer_shell() {
    // Not a completion request (every other run, `mycli token` included): nothing to do, not
    // even the completer's look at the working directory.
    let Some(shell) = std::env::var_os(COMPLETE_VAR) else {
        return;
    };
    let _ = SHELL.set(shell.to_string_lossy().into_owned());
    clap_complete::CompleteEnv::with_factory(command)
        .var(COMPLETE_VAR)
        .complete();
}

/// The command line the completer walks. Flags are offered only once the word being completed
/// starts with `-`: `mycli switch <TAB>` lists context names, as `kubectl config use-context
/// <TAB>` does, and `mycli switch -<TAB>` the flags. (The engine drops hidden candidates when
/// visible ones exist, so hidden flags still parse and still complete when nothing else does.)
pub fn command() -> clap::Command {
    let words: Vec<String> = std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(words.len().saturating_sub(1));
    let current = words.get(index).map_or("", String::as_str);
    if current.starts_with('-') {
        Cli::command()
    } else {
        hide_flags(Cli::command())
    }
}

fn hide_flags(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_flag(true)
        .disable_version_flag(true)
        .mut_args(|a| if a.is_positional() { a } else { a.hide(true) })
        .mut_subcommands(hide_flags)
}

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
    // bash inserts candidates as they are; zsh and fish quote them themselves.
    let bash = SHELL.get().is_some_and(|s| s == "bash");
    config
        .contexts
        .iter()
        .map(|(key, ctx)| {
            let help = ctx
                .organization_name
                .as_deref()
                .or(Context::organization_id(key))
                .unwrap_or("no organization");
            CompletionCandidate::new(for_the_shell(&ctx.name, bash))
                .help(Some(help.to_string().into()))
        })
        .collect()
}

/// A name as bash must insert it: shell metacharacters (`'`, `;`, `$`, `*`, ...) escaped with
/// a backslash, letters of any script left alone.
fn for_the_shell(name: &str, bash: bool) -> String {
    if !bash {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        let safe =
            c.is_alphanumeric() || "._-+,:@%^=/".contains(c) || !(c.is_ascii() || c.is_control());
        if !safe {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    fn bash_gets_metacharacters_escaped() {
        assert_eq!(for_the_shell("it's;x", true), "it\\'s\\;x");
        assert_eq!(for_the_shell("a*b $x", true), "a\\*b\\ \\$x");
        assert_eq!(
            for_the_shell("日本支社-globex🚀", true),
            "日本支社-globex🚀"
        );
        assert_eq!(for_the_shell("it's", false), "it's");
    }

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
