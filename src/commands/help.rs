//! `mycli help [COMMAND|TOPIC]`: a command's help, as `mycli COMMAND --help` prints it, or a
//! topic (`environment`).

use crate::cli::{self, Cli, HelpArgs};
use crate::error::{Error, Result};
use crate::output;

pub fn run(args: HelpArgs) -> Result<()> {
    if let [topic] = args.topic.as_slice()
        && matches!(topic.as_str(), "environment" | "env")
    {
        return output::block(&cli::environment_help());
    }
    let mut cmd = Cli::command();
    cmd.build();
    // Unknown names get mycli's own error, with the list, before clap sees them.
    let mut target = &cmd;
    for name in &args.topic {
        let known: Vec<String> = target
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        target = target.find_subcommand(name).ok_or_else(|| {
            Error::usage(format!("there is no command or help topic {name:?}")).with_hint(format!(
                "commands: {}; topic: environment",
                known.join(", ")
            ))
        })?;
    }
    // Exactly what `mycli COMMAND --help` prints.
    let argv = std::iter::once("mycli")
        .chain(args.topic.iter().map(String::as_str))
        .chain(std::iter::once("--help"));
    match cmd.try_get_matches_from_mut(argv) {
        Err(help) if help.kind() == clap::error::ErrorKind::DisplayHelp => {
            output::block(&help.render().to_string())
        }
        _ => Err(Error::usage("could not render that help")),
    }
}
