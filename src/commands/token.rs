use crate::app::App;
use crate::error::Result;
use crate::output;
use crate::session::{self, MARGIN_SECS};
use crate::store::{Config, cache};

/// Prints a valid access token and nothing else.
///
/// The hot path reads the `current` pointer from the top of `config.toml` and the context's
/// cached token: no parse of the contexts, no keychain, no network, no runtime.
pub fn run(app: &App) -> Result<()> {
    let key = match &app.context {
        Some(name) => Config::load(&app.paths)?.resolve(name)?,
        None => match Config::read_current(&app.paths)? {
            Some(key) => key,
            None => Config::load(&app.paths)?.selected(None)?,
        },
    };
    if let Some(token) = cache::read(&app.paths, &key)
        && token.fresh(app.now(), MARGIN_SECS)
    {
        return output::line(token.access_token.expose());
    }
    let token = session::fresh_token(app, &key, false)?;
    output::line(token.access_token.expose())
}
