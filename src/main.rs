use std::process::ExitCode;

use clap::Parser;
use mycli::cli::Cli;

fn main() -> ExitCode {
    // Answers shell completion requests (`_MYCLI_COMPLETE=bash mycli ...`) and exits; otherwise a no-op.
    mycli::complete::answer_shell();
    mycli::exit_130_on_ctrl_c();
    ExitCode::from(mycli::run(Cli::parse()))
}
