use crate::app::App;
use crate::auth::{self, Provider, ProviderConfig, claim_text, claims};
use crate::cli::LogoutArgs;
use crate::error::{Error, Result};
use crate::session;
use crate::store::credentials;
use crate::store::tokens;
use crate::store::write::SessionWrite;
use crate::store::{Config, Context, ProviderKind, Storage};

pub fn run(app: &App, args: LogoutArgs) -> Result<()> {
    let mut current_gone = false;
    let result = super::for_each_target(
        app,
        args.all,
        args.name.as_deref(),
        "No contexts to log out of.",
        "some contexts could not be logged out of (see above)",
        |config, key| {
            logout_one(app, config, key, !args.all)?;
            current_gone |= config.current.as_deref() == Some(key);
            Ok(())
        },
    );
    // `--all` says what is current once, after the last one.
    if args.all
        && current_gone
        && let Ok(config) = Config::load(&app.paths)
        && config.current.is_none()
    {
        app.ui.say(&no_current_now(&config));
    }
    result
}

fn logout_one(app: &App, config: &Config, key: &str, say_what_is_current: bool) -> Result<()> {
    let Some(ctx) = config.contexts.get(key) else {
        return Err(config.unknown(key));
    };
    let context_lock = session::lock_context(app, key)?;
    let creds = app.credentials();
    let refresh_token = creds.load(key, ctx.storage).unwrap_or(None);
    let cached = tokens::read(&app.paths, key);

    // A context marked as needing login was already ended by the IdP (its refresh token was
    // refused); there is nothing left to end there. A WorkOS session whose id is not known here
    // is ended after the secret is deleted: learning its id spends the refresh token, which
    // must not happen while a failed delete could still keep the context.
    let sid = workos_sid(ctx, cached.as_ref());
    let learn_sid = ctx.provider == ProviderKind::Workos && sid.is_none();
    let server_end = if ctx.needs_login {
        Some(Ok(()))
    } else if learn_sid {
        None
    } else {
        Some(end_at_idp(
            app,
            config,
            key,
            ctx,
            refresh_token.as_ref(),
            sid,
            cached.as_ref(),
        )?)
    };

    // A refresh token that could not be deleted keeps its context: removing the context would
    // leave a working secret that no command can reach.
    // The one write order (`SessionWrite`): the secret, the cached token, then config.toml.
    let (secret_done, deleted) =
        SessionWrite::new(&app.paths, &context_lock).secret(|lock| creds.delete(lock, ctx.storage));
    if let Err(e) = deleted {
        let ended = match server_end {
            Some(Ok(())) => "the session was ended at the identity provider, but ",
            _ => "",
        };
        let place = match ctx.storage {
            Storage::File => app.paths.credentials().display().to_string(),
            Storage::Keychain => format!(
                "the OS keychain (service {}, account {:?})",
                credentials::SERVICE,
                creds.account(key)
            ),
        };
        return Err(Error::failure(format!(
            "{ended}the refresh token of {:?} is still in {place}, so the context is kept: {}",
            ctx.name, e.message
        ))
        .with_hint(format!(
            "fix the cause and run `mycli logout {}` again",
            crate::text::shell_word(&ctx.name)
        )));
    }
    let mut was_current = false;
    let mut left = None;
    secret_done.uncache().update_config(|fresh| {
        was_current = fresh.current.as_deref() == Some(key);
        let removed = fresh.remove(key).is_some();
        left = Some(no_current_now(fresh));
        removed
    })?;

    let server_end = match server_end {
        Some(outcome) => outcome,
        None => end_at_idp(app, config, key, ctx, refresh_token.as_ref(), None, None)
            .unwrap_or_else(|e| Err(e.message)),
    };
    match server_end {
        Ok(()) if ctx.needs_login => app.ui.say(&format!(
            "Logged out of {:?}: the identity provider had already ended the session; removed here.",
            ctx.name
        )),
        Ok(()) => app.ui.say(&format!(
            "Logged out of {:?}: the session was ended at the identity provider and removed here.",
            ctx.name
        )),
        Err(why) => {
            app.ui
                .say(&format!("Logged out of {:?}: removed here.", ctx.name));
            app.ui.warn(&format!(
                "the session could not be ended at the identity provider ({why}); the server-side session may still be active until it expires"
            ));
        }
    }
    if let (true, true, Some(left)) = (was_current, say_what_is_current, left) {
        app.ui.say(&left);
    }
    Ok(())
}

/// Logging out of the current context leaves none current: say so, with the command that
/// picks another (the previous context when there is one).
fn no_current_now(config: &Config) -> String {
    let next = config
        .previous
        .as_ref()
        .and_then(|k| config.contexts.get(k))
        .or_else(|| config.contexts.values().min_by(|a, b| a.name.cmp(&b.name)));
    match next {
        Some(ctx) => format!(
            "No context is current now; pick one with `mycli switch {}` (`mycli contexts` lists them).",
            crate::text::shell_word(&ctx.name)
        ),
        None => "No context is left; sign in with `mycli login --org ORG_ID`.".to_string(),
    }
}

/// The WorkOS session id of a context: kept with it since login; older contexts: the cached
/// access token's `sid` claim.
fn workos_sid(ctx: &Context, cached: Option<&tokens::CachedToken>) -> Option<String> {
    ctx.session_id.clone().or_else(|| {
        cached.and_then(|t| claim_text(claims(t.access_token.expose()).as_ref(), "sid"))
    })
}

/// Ends the session at the IdP: WorkOS session logout with its `sid` (learned by one refresh
/// when `sid` is `None`: only once the secret is deleted here), OIDC RFC 7009 revocation of
/// the refresh token. `Err` says, in plain words, why it did not happen.
fn end_at_idp(
    app: &App,
    config: &Config,
    key: &str,
    ctx: &Context,
    refresh_token: Option<&crate::secret::Secret>,
    sid: Option<String>,
    cached: Option<&tokens::CachedToken>,
) -> Result<std::result::Result<(), String>> {
    let provider_config =
        ProviderConfig::of_session(ctx.provider, &ctx.issuer, &ctx.client_id, &config.provider);
    let http = app.http()?;
    let outcome = auth::block_on(async {
        let provider = Provider::discover(&http, provider_config).await?;
        Ok(match ctx.provider {
            ProviderKind::Workos => {
                let mut sid = sid;
                if let (None, Some(rt)) = (&sid, refresh_token)
                    && let Ok(auth::Reply::Ok(session)) = provider
                        .refresh(&http, rt, Context::organization_id(key))
                        .await
                {
                    sid = session.session_id;
                }
                match sid {
                    Some(sid) => provider.workos_logout(&http, &sid).await?,
                    None => Err("no session id is known for it".to_string()),
                }
            }
            ProviderKind::Oidc => match refresh_token {
                Some(rt) => {
                    let result = provider.revoke(&http, rt, "refresh_token").await?;
                    if let (Ok(()), Some(at)) = (&result, cached) {
                        // Best effort; servers may answer unsupported_token_type.
                        let _ = provider
                            .revoke(&http, &at.access_token, "access_token")
                            .await;
                    }
                    result.map_err(|e| e.summary())
                }
                None => Err("no refresh token was stored to revoke".to_string()),
            },
        })
    });
    Ok(outcome.unwrap_or_else(|e| Err(e.message)))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::app::testing::{self, Idp, NOW, TestApp};
    use crate::secret::Secret;
    use crate::store::Storage;
    use crate::store::tokens::CachedToken;

    const KEY: &str = "org_acme";
    const LOGOUT: &str = "/user_management/sessions/logout";

    fn signed_in(idp: &Idp, sid: Option<&str>) -> TestApp {
        let t = testing::app();
        t.sign_in(&idp.url, KEY, Storage::Keychain, None);
        if let Some(sid) = sid {
            let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
            let jwt = format!(
                "{}.{}.sig",
                part(json!({"alg": "RS256", "typ": "JWT"})),
                part(json!({"sid": sid, "exp": NOW + 300}))
            );
            let token = CachedToken {
                key: KEY.into(),
                expires_at: NOW + 300,
                access_token: Secret::new(jwt),
                issued_at: None,
            };
            tokens::write(&t.app.paths, &t.lock(KEY), &token).unwrap();
        }
        t
    }

    fn logout(t: &TestApp) -> Result<()> {
        run(
            &t.app,
            LogoutArgs {
                name: Some("acme".into()),
                all: false,
            },
        )
    }

    /// Nothing of the context is left here: not in config.toml, not its secret, not its token.
    fn assert_forgotten(t: &TestApp) {
        assert!(t.context(KEY).is_none());
        let creds = t.app.credentials();
        assert!(creds.load(KEY, Storage::Keychain).unwrap().is_none());
        assert!(tokens::read(&t.app.paths, KEY).is_none());
    }

    #[test]
    fn the_session_is_ended_at_the_idp_with_its_sid() {
        let idp = Idp::start(|_| (200, "{}".into()));
        let t = signed_in(&idp, Some("session_1"));
        logout(&t).unwrap();
        let calls = idp.calls(LOGOUT);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].path, format!("{LOGOUT}?session_id=session_1"));
        assert_forgotten(&t);
    }

    #[test]
    fn without_a_known_sid_one_refresh_learns_it() {
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let jwt = format!(
            "{}.{}.sig",
            part(json!({"alg": "RS256", "typ": "JWT"})),
            part(json!({"sid": "session_9", "exp": NOW + 300}))
        );
        let idp = Idp::start(move |r| match r.path.as_str() {
            "/user_management/authenticate" => (
                200,
                json!({
                    "access_token": jwt,
                    "refresh_token": "rt-new",
                    "expires_in": 300,
                    "organization_id": KEY,
                    "user": {"id": "user_1"},
                })
                .to_string(),
            ),
            _ => (200, "{}".into()),
        });
        let t = signed_in(&idp, None);
        logout(&t).unwrap();
        let refreshes = idp.calls("/user_management/authenticate");
        assert_eq!(refreshes.len(), 1);
        assert_eq!(
            refreshes[0].field("refresh_token").as_deref(),
            Some("rt-org_acme")
        );
        let calls = idp.calls(LOGOUT);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].path, format!("{LOGOUT}?session_id=session_9"));
        assert_forgotten(&t);
    }

    #[test]
    fn without_a_sid_or_an_answering_idp_it_is_still_removed_here() {
        let idp = Idp::start(|_| (200, "{}".into()));
        let t = signed_in(&idp, None);
        logout(&t).unwrap();
        assert!(idp.calls(LOGOUT).is_empty(), "no sid was learned");
        assert_forgotten(&t);

        let idp = Idp::start(|_| (500, "{}".into()));
        let t = signed_in(&idp, Some("session_1"));
        logout(&t).unwrap();
        assert_eq!(idp.calls(LOGOUT).len(), 1);
        assert_forgotten(&t);
    }

    #[test]
    fn a_context_that_needs_login_is_not_ended_again() {
        let idp = Idp::start(|_| (200, "{}".into()));
        let t = signed_in(&idp, Some("session_1"));
        crate::session::mark_needs_login(&t.app, &t.lock(KEY)).unwrap();
        logout(&t).unwrap();
        assert!(idp.calls("/").is_empty());
        assert_forgotten(&t);
    }

    #[test]
    fn a_keychain_that_fails_does_not_keep_the_context() {
        let idp = Idp::start(|_| (200, "{}".into()));
        let t = signed_in(&idp, Some("session_1"));
        testing::fail_next_keychain_call(&t, KEY);
        logout(&t).unwrap();
        assert_eq!(idp.calls(LOGOUT).len(), 1);
        assert_forgotten(&t);
    }

    #[test]
    fn an_unknown_context_is_an_error() {
        let idp = Idp::start(|_| (200, "{}".into()));
        let t = signed_in(&idp, None);
        let err = run(
            &t.app,
            LogoutArgs {
                name: Some("nope".into()),
                all: false,
            },
        )
        .unwrap_err();
        assert!(err.message.contains("nope"), "{}", err.message);
        assert!(t.context(KEY).is_some());
    }
}
