use crate::app::App;
use crate::cli::RefreshArgs;
use crate::error::{Error, Kind, Result};
use crate::session;
use crate::store::Config;
use crate::time;

pub fn run(app: &App, args: RefreshArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let keys = config.targets(args.all, args.name.as_deref().or(app.context.as_deref()))?;
    if keys.is_empty() {
        app.ui.say("No contexts to refresh.");
        return Ok(());
    }
    let mut worst: Option<Error> = None;
    for key in &keys {
        let name = &config.contexts[key].name;
        // A refresh whose rotated secret was lost fails `refresh`, whose point is the session.
        let refreshed =
            session::fresh_token_checked(app, key, true).and_then(|(token, lost)| match lost {
                Some(err) => Err(err),
                None => Ok(token),
            });
        match refreshed {
            Ok(token) => app.ui.say(&format!(
                "Refreshed {name:?}; the access token expires {}.",
                time::relative(token.expires_at, app.now())
            )),
            Err(err) if keys.len() == 1 => return Err(err),
            Err(err) => {
                app.ui.error(&err);
                let replace = match &worst {
                    None => true,
                    Some(w) => w.kind != Kind::NeedsLogin && err.kind == Kind::NeedsLogin,
                };
                if replace {
                    worst = Some(err);
                }
            }
        }
    }
    match worst {
        None => Ok(()),
        Some(err) => Err(Error::new(
            err.kind,
            "some contexts could not be refreshed (see above)",
        )),
    }
}
