use std::ffi::OsString;

use crate::app::App;
use crate::cli::ShellArgs;
use crate::commands::exec::{self, Ended};
use crate::env;
use crate::error::{Error, Kind, Result};
use crate::select::Selection;
use crate::store::Config;

/// `mycli shell [NAME]`: `$SHELL` (or `sh`) with `MYCLI_CONTEXT` pinned for that shell and
/// its children only; `exit` returns, with the shell's exit status.
pub fn run(app: &App, args: ShellArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let key = match &args.name {
        Some(name) => config.resolve(name)?,
        None => Selection::of(app)?.key(&config)?,
    };
    let ctx = &config.contexts[&key];
    let program: OsString = std::env::var_os(env::SHELL)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| OsString::from("sh"));
    app.ui.say(&format!(
        "Starting {} with context {:?}; `exit` returns.",
        program.to_string_lossy(),
        ctx.name
    ));
    let mut cmd = exec::child(app, &key, &program, &[]);
    // A token from an outer `mycli exec` belongs to another context.
    cmd.env_remove(env::TOKEN);
    crate::interrupt::hand_over();
    match exec::run_child(cmd, &program)? {
        Ended { code: 0, .. } => Ok(()),
        Ended { code, .. } => Err(Error::new(Kind::Exit(code), "")),
    }
}
