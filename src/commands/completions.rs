use clap_complete::env::EnvCompleter;

use crate::cli::{CompletionsArgs, Shell};
use crate::error::{Error, Result};
use crate::output;

/// Prints the registration script of the dynamic completer: the shell calls back into
/// `mycli` on <TAB>, which is how context names complete (`mycli switch <TAB>`).
pub fn run(args: CompletionsArgs) -> Result<()> {
    output::block(&script(args.shell)?)
}

pub fn script(shell: Shell) -> Result<String> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Powershell => &clap_complete::env::Powershell,
        Shell::Elvish => &clap_complete::env::Elvish,
    };
    let mut buf = Vec::new();
    completer
        .write_registration("COMPLETE", "mycli", "mycli", "mycli", &mut buf)
        .map_err(|e| Error::failure(format!("could not render the completion script: {e}")))?;
    String::from_utf8(buf).map_err(|_| Error::failure("the completion script is not UTF-8"))
}

/// File name of the committed script for a shell, under `completions/`.
pub fn file_name(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "mycli.bash",
        Shell::Zsh => "_mycli",
        Shell::Fish => "mycli.fish",
        Shell::Powershell => "_mycli.ps1",
        Shell::Elvish => "mycli.elv",
    }
}
