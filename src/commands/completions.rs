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
        .write_registration(
            crate::complete::COMPLETE_VAR,
            "mycli",
            "mycli",
            "mycli",
            &mut buf,
        )
        .map_err(|e| Error::failure(format!("could not render the completion script: {e}")))?;
    let script =
        String::from_utf8(buf).map_err(|_| Error::failure("the completion script is not UTF-8"))?;
    Ok(match shell {
        Shell::Zsh => autoloadable_zsh(&script),
        _ => script,
    })
}

/// The generated zsh script only registers its function with `compdef`. Installed as
/// `_mycli` in `$fpath`, compinit autoloads the file as the completion function itself, so the
/// first <TAB> of every shell only registered it and completed nothing. Autoloaded, it now
/// defines the function and completes at once; sourced, it registers as before.
fn autoloadable_zsh(script: &str) -> String {
    const REGISTER: &str = "compdef _clap_dynamic_completer_mycli mycli";
    script.replacen(
        REGISTER,
        "if [ \"$funcstack[1]\" = \"_mycli\" ]; then\n    \
         _clap_dynamic_completer_mycli \"$@\"\nelse\n    \
         compdef _clap_dynamic_completer_mycli mycli\nfi",
        1,
    )
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
