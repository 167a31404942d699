//! One module per command, each with a `run` function.

pub mod completions;
pub mod contexts;
pub mod current;
pub mod exec;
pub mod help;
pub mod login;
pub mod logout;
pub mod pin;
pub mod prompt;
pub mod refresh;
pub mod rename;
pub mod shell;
pub mod status;
pub mod switch;
pub mod token;

use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::select::Selection;
use crate::store::Config;

/// Runs `one` on the contexts `refresh` and `logout` act on: NAME, every one with `--all`,
/// else the one selected here (flag, environment, pin, `current`). `nothing` is said when
/// `--all` finds none; errors follow `for_each_context`.
pub fn for_each_target(
    app: &App,
    all: bool,
    name: Option<&str>,
    nothing: &str,
    summary: &str,
    mut one: impl FnMut(&Config, &str) -> Result<()>,
) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let keys = match (all, name) {
        (false, None) => vec![Selection::of(app)?.key(&config)?],
        (all, name) => config.targets(all, name)?,
    };
    if keys.is_empty() {
        app.ui.say(nothing);
        return Ok(());
    }
    for_each_context(app, &keys, summary, |key| one(&config, key))
}

/// Runs `one` on each context of a `--all` (or single) command, with one policy: with one
/// context its error is the command's; with several, each error is printed as it happens, the
/// others still run, and the worst outcome decides the exit code (a needed login over a
/// failure) under the `summary` line.
pub fn for_each_context(
    app: &App,
    keys: &[String],
    summary: &str,
    mut one: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    if let [key] = keys {
        return one(key);
    }
    let mut worst: Option<Kind> = None;
    for key in keys {
        if let Err(err) = one(key) {
            app.ui.error(&err);
            worst = Some(match worst {
                Some(w) if severity(w) >= severity(err.kind) => w,
                _ => err.kind,
            });
        }
    }
    match worst {
        None => Ok(()),
        Some(kind) => Err(Error::new(kind, summary)),
    }
}

fn severity(kind: Kind) -> u8 {
    match kind {
        Kind::NeedsLogin => 3,
        Kind::Failure => 2,
        Kind::Usage => 1,
        Kind::BrokenPipe | Kind::Exit(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    fn outcomes(results: Vec<Result<()>>) -> Result<()> {
        let t = testing::app();
        let keys: Vec<String> = (0..results.len()).map(|i| format!("org_{i}")).collect();
        let mut results = results.into_iter();
        for_each_context(&t.app, &keys, "some failed", |_| {
            results.next().unwrap_or(Ok(()))
        })
    }

    #[test]
    fn the_worst_outcome_decides_and_every_context_runs() {
        assert!(outcomes(vec![Ok(()), Ok(())]).is_ok());
        let err = outcomes(vec![
            Err(Error::needs_login("a")),
            Err(Error::failure("b")),
            Ok(()),
        ])
        .unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (Kind::NeedsLogin, "some failed")
        );
        let err = outcomes(vec![Ok(()), Err(Error::failure("b"))]).unwrap_err();
        assert_eq!(err.kind, Kind::Failure);
        // One context: its own error, not the summary.
        let err = outcomes(vec![Err(Error::needs_login("only"))]).unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (Kind::NeedsLogin, "only"));
    }
}
