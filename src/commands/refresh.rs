use crate::app::App;
use crate::cli::RefreshArgs;
use crate::error::Result;
use crate::session;
use crate::time;

pub fn run(app: &App, args: RefreshArgs) -> Result<()> {
    super::for_each_target(
        app,
        args.all,
        args.name.as_deref(),
        "No contexts to refresh.",
        "some contexts could not be refreshed (see above)",
        |config, key| {
            let name = &config.contexts[key].name;
            // A refresh whose rotated secret was lost fails `refresh`, whose point is the
            // session.
            let (token, lost) = session::fresh_token_checked(app, key, session::Want::New)?;
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
