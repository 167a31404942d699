use crate::app::App;
use crate::cli::SwitchArgs;
use crate::error::{Error, Result};
use crate::store::{Config, ConfigLock};

pub fn run(app: &App, args: SwitchArgs) -> Result<()> {
    // No store, nothing to act on: fail without creating one (taking the lock would).
    if !app.paths.dir.exists() {
        return Err(Config::default().unknown(&args.target));
    }
    let lock = ConfigLock::acquire(&app.paths)?;
    let mut config = lock.load_for_pointers()?;
    let key = if args.target == "-" {
        match &config.previous {
            Some(prev) if config.contexts.contains_key(prev) => prev.clone(),
            _ => {
                return Err(Error::failure("there is no previous context to return to")
                    .with_hint("switch by name: `mycli switch NAME`"));
            }
        }
    } else {
        config.resolve(&args.target)?
    };
    config.set_current(&key);
    lock.save_pointers(&config)?;
    drop(lock);
    let ctx = &config.contexts[&key];
    app.ui.say(&format!("Switched to context {:?}.", ctx.name));
    Ok(())
}
