use crate::app::App;
use crate::cli::RefreshArgs;
use crate::error::Result;
use crate::select::Selection;
use crate::session;
use crate::store::Config;
use crate::time;

pub fn run(app: &App, args: RefreshArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    let keys = match (args.all, args.name.as_deref()) {
        (false, None) => vec![Selection::of(app)?.key(&config)?],
        (all, name) => config.targets(all, name)?,
    };
    if keys.is_empty() {
        app.ui.say("No contexts to refresh.");
        return Ok(());
    }
    super::for_each_context(
        app,
        &keys,
        "some contexts could not be refreshed (see above)",
        |key| {
            let name = &config.contexts[key].name;
            // A refresh whose rotated secret was lost fails `refresh`, whose point is the
            // session.
            let (token, lost) = session::fresh_token_checked(app, key, true)?;
            if let Some(err) = lost {
                return Err(err);
            }
            app.ui.say(&format!(
                "Refreshed {name:?}; the access token expires {}.",
                time::relative(token.expires_at, app.now())
            ));
            Ok(())
        },
    )
}
