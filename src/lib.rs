//! mycli: enterprise single sign-on for the terminal, one session per organization.
//!
//! The binary is a thin shell around [`run`]; everything testable lives in this library.

// stderr is the conversation, and only `ui` speaks it (tests may print).
#![cfg_attr(not(test), deny(clippy::print_stderr))]

pub mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod complete;
pub mod env;
pub mod error;
pub mod interrupt;
pub mod output;
pub mod secret;
pub mod select;
pub mod session;
pub mod store;
pub mod text;
pub mod time;
pub mod ui;
pub mod vocab;

use app::App;
use cli::{Cli, Command};
use error::{Kind, Result};
use store::Paths;
use ui::Ui;

/// Ctrl-C or SIGTERM ends the process with exit code 130 (spec §4): at once, except while a
/// rotated refresh token is in flight (see `interrupt`).
pub fn exit_130_on_ctrl_c() {
    interrupt::install();
}

/// Runs one parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let ui = Ui::new(cli.quiet, cli.verbose);
    // A wait for another process's lock is said once; `mycli token` keeps stderr for errors.
    if !matches!(cli.command, Command::Token) {
        store::lock::on_wait(move |path| {
            ui.say(&format!(
                "Waiting for another mycli process to release {}...",
                path.display()
            ));
        });
    }
    match dispatch(cli, ui) {
        Ok(()) => 0,
        Err(err) => {
            if err.kind != Kind::BrokenPipe && !err.message.is_empty() {
                ui.error(&err);
            }
            err.kind.exit_code()
        }
    }
}

fn dispatch(cli: Cli, ui: Ui) -> Result<()> {
    check_output_format(&cli)?;
    if let Command::Help(args) = cli.command {
        return commands::help::run(args);
    }
    // A prompt segment prints nothing rather than an error in every prompt.
    if !matches!(cli.command, Command::Completions(_) | Command::Prompt) {
        env::check()?;
    }
    let app = App::new(
        Paths::resolve(cli.config_dir.as_deref())?,
        ui,
        cli.context.filter(|c| !c.is_empty()),
        cli.output,
    );
    let check = match &cli.command {
        Command::Completions(_) | Command::Help(_) => None,
        Command::Token => Some(store::paths::Check::Dir),
        Command::Prompt => Some(store::paths::Check::Refusal),
        _ => Some(store::paths::Check::Full),
    };
    match check.map(|how| app.paths.check_private(how)) {
        // A refused store shows no name in a prompt, silently.
        Some(Err(_)) if matches!(cli.command, Command::Prompt) => return Ok(()),
        Some(Err(err)) => return Err(err),
        Some(Ok(Some(fixed))) => app.ui.warn(&fixed),
        Some(Ok(None)) | None => {}
    }
    match cli.command {
        Command::Login(args) => commands::login::run(&app, args),
        Command::Switch(args) => commands::switch::run(&app, args),
        Command::Contexts => commands::contexts::run(&app),
        Command::Current => commands::current::run(&app),
        Command::Token => commands::token::run(&app),
        Command::Refresh(args) => commands::refresh::run(&app, args),
        Command::Status(args) => commands::status::run(&app, args),
        Command::Logout(args) => commands::logout::run(&app, args),
        Command::Rename(args) => commands::rename::run(&app, args),
        Command::Pin(args) => commands::pin::run(&app, args),
        Command::Exec(args) => commands::exec::run(&app, args),
        Command::Shell(args) => commands::shell::run(&app, args),
        Command::Prompt => commands::prompt::run(&app),
        Command::Completions(args) => commands::completions::run(args),
        Command::Help(args) => commands::help::run(args),
    }
}

/// `-o` only where the command has that format (the table in `Command::output_formats`).
fn check_output_format(cli: &Cli) -> Result<()> {
    use clap::ValueEnum;
    let Some(format) = cli.output else {
        return Ok(());
    };
    let allowed = cli.command.output_formats();
    if allowed.contains(&format) {
        return Ok(());
    }
    let name = |f: &cli::OutputFormat| {
        f.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    let command = cli.command.name();
    let err = error::Error::usage(format!("`mycli {command}` has no {} output", name(&format)));
    Err(if allowed.is_empty() {
        err.with_hint(format!(
            "`mycli {command}` takes no -o; `contexts` and `status` take table, json or name, `token` json or exec-credential"
        ))
    } else {
        err.with_hint(format!(
            "use -o {}",
            allowed.iter().map(name).collect::<Vec<_>>().join(", -o ")
        ))
    })
}
