use crate::app::App;
use crate::cli::RenameArgs;
use crate::error::{Error, Result};
use crate::store::{self, Config, ConfigLock};

pub fn run(app: &App, args: RenameArgs) -> Result<()> {
    store::validate_name(&args.new).map_err(|why| Error::usage(why).with_hint(store::NAME_RULE))?;
    // No store, nothing to act on: fail without creating one (taking the lock would).
    if !app.paths.dir.exists() {
        return Err(Config::default().unknown(&args.old));
    }
    let lock = ConfigLock::acquire(&app.paths)?;
    let mut config = lock.load()?;
    let key = config.resolve(&args.old)?;
    if config.contexts[&key].name == args.new {
        app.ui
            .say(&format!("Context {:?} already has that name.", args.new));
        return Ok(());
    }
    if config.contexts.keys().any(|k| *k == args.new && *k != key) {
        return Err(Error::failure(format!(
            "{:?} is the organization id of another context; a name cannot be one",
            args.new
        ))
        .with_hint("pick another name (`mycli contexts` shows each context's organization id)"));
    }
    if config.contexts.values().any(|c| c.name == args.new) {
        return Err(
            Error::failure(format!("a context named {:?} already exists", args.new))
                .with_hint("pick another name, or rename that context first"),
        );
    }
    let Some(ctx) = config.contexts.get_mut(&key) else {
        return Err(config.unknown(&args.old));
    };
    let old = std::mem::replace(&mut ctx.name, args.new.clone());
    lock.save(&config)?;
    app.ui
        .say(&format!("Renamed context {old:?} to {:?}.", args.new));
    Ok(())
}
