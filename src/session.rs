//! Keeping a context's session alive: the one place that refreshes.
//!
//! lock the context -> re-read -> refresh only if still stale -> save the rotated refresh
//! token first -> cache the access token -> unlock. Thirty-two processes asking at once make
//! one refresh; the others find the fresh token when they get the lock.

use std::time::Duration;

use crate::app::App;
use crate::auth::{self, Provider, ProviderConfig, Reply, Session};
use crate::env;
use crate::error::{Error, Kind, Result};
use crate::interrupt;
use crate::store::credentials::{Preference, SaveSlot};
use crate::store::lock::ContextLock;
use crate::store::tokens::{self, CachedToken};
use crate::store::write::SessionWrite;
use crate::store::{Config, Context, Storage};
use crate::time;

/// A token must be valid this long for `mycli token` to hand it out without refreshing.
pub const MARGIN_SECS: i64 = 60;

/// Errors that end a session for good: only a new login helps.
const TERMINAL: &[&str] = &[
    "invalid_grant",
    "expired_token",
    "sso_required",
    "mfa_enrollment",
    "invalid_refresh_token",
];

/// Takes the context's refresh lock. The wait covers another process's refresh of up to one
/// full HTTP timeout.
pub fn lock_context(app: &App, key: &str) -> Result<ContextLock> {
    let wait =
        crate::store::lock_wait() + env::seconds(env::HTTP_TIMEOUT, 30.0) + Duration::from_secs(5);
    ContextLock::acquire(&app.paths, key, wait)
}

/// How fresh a caller needs the access token to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// What `mycli token` may hand out: fresh by the refresh margin.
    Usable,
    /// Valid for at least this many more seconds (`mycli exec`), else refreshed.
    ValidFor(i64),
    /// A new one, whatever the cache holds (`mycli refresh`).
    New,
}

impl Want {
    /// Whether `token` will do, `now`, for a caller that asked at `asked_at` (before waiting
    /// for the lock). A token fetched after that is as fresh as the IdP makes them, even when
    /// it lives less than `ValidFor` asks: fetching another would refresh once per caller.
    fn met_by(self, token: &CachedToken, now: i64, asked_at: i64) -> bool {
        match self {
            Want::Usable => token.fresh(now, MARGIN_SECS),
            Want::ValidFor(secs) => {
                token.valid_for(now, secs) || token.issued_at.is_some_and(|at| at > asked_at)
            }
            Want::New => false,
        }
    }
}

/// A valid access token for `key`: the cached one when it is fresh (and `force` is false),
/// else a refreshed one. A refresh whose rotated secret could not be saved still returns the
/// token, after a warning that says what was lost.
pub fn fresh_token(app: &App, key: &str, want: Want) -> Result<CachedToken> {
    let (token, unsaved) = fresh_token_checked(app, key, want)?;
    if let Some(err) = unsaved {
        app.ui.warn(&err.message);
        if let Some(hint) = &err.hint {
            app.ui.hint(hint);
        }
    }
    Ok(token)
}

/// `fresh_token`, with the error of a rotated secret that could not be saved returned beside
/// the token instead of printed.
pub fn fresh_token_checked(
    app: &App,
    key: &str,
    want: Want,
) -> Result<(CachedToken, Option<Error>)> {
    let asked_at = app.now();
    let lock = lock_context(app, key)?;
    // Checked again under the lock: a process that waited for it finds the token the holder
    // just fetched, so a storm of callers makes one refresh.
    if let Some(token) = tokens::read(&app.paths, key)
        && want.met_by(&token, app.now(), asked_at)
    {
        return Ok((token, None));
    }
    let config = Config::load(&app.paths)?;
    let ctx = config
        .contexts
        .get(key)
        .ok_or_else(|| {
            Error::failure(format!("the context {key:?} is no longer in the store"))
                .with_hint("`mycli contexts` lists the contexts there are")
        })?
        .clone();
    if ctx.needs_login {
        return Err(needs_login(key, &ctx, "needs a new login"));
    }
    let creds = app.credentials();
    let Some(refresh_token) = creds.load(key, ctx.storage)? else {
        mark_needs_login(app, &lock)?;
        return Err(needs_login(key, &ctx, "has no stored refresh token"));
    };
    // Everything the save of the rotated secret needs is secured now, while a failure still
    // costs nothing: once the request is sent, the stored secret is spent.
    let slot = creds.prepare(&lock, ctx.storage, save_preference(ctx.storage)?)?;
    let provider_config =
        ProviderConfig::of_session(ctx.provider, &ctx.issuer, &ctx.client_id, &config.provider)
            .remembering(ctx.org_claim.as_deref());
    let org = Context::organization_id(key).map(str::to_string);
    let http = app.http()?;
    // From the request until the rotated secret is saved, Ctrl-C and SIGTERM wait: exiting in
    // between would lose the session. The guard's drop exits 130 when one arrived.
    let (reply, _deferred) = auth::block_on(async {
        let provider = Provider::discover(&http, provider_config).await?;
        let deferred = interrupt::defer(app.ui);
        let reply = provider
            .refresh(&http, &refresh_token, org.as_deref())
            .await?;
        Ok((reply, deferred))
    })?;
    match reply {
        Reply::Ok(session) => save_refreshed(app, &lock, &ctx, session, slot),
        Reply::Refused(err)
            if TERMINAL.iter().any(|c| err.is(c)) || err.refused_without_reason() =>
        {
            drop(slot);
            mark_needs_login(app, &lock)?;
            let _ = creds.delete(&lock, ctx.storage);
            Err(needs_login(
                key,
                &ctx,
                &format!("was ended by the identity provider ({})", err.summary()),
            ))
        }
        Reply::Refused(err) => Err(Error::failure(format!(
            "the identity provider refused to refresh {:?}: {}",
            ctx.name,
            err.summary()
        ))
        .with_hint("the session is kept; try again later, or run `mycli login --force`")),
    }
}

/// Where a rotated secret of a context stored in `storage` may go.
fn save_preference(storage: Storage) -> Result<Preference> {
    Ok(match storage {
        Storage::File => Preference::File,
        Storage::Keychain => match Preference::from_env(false)? {
            Preference::File => Preference::Auto,
            other => other,
        },
    })
}

/// Saves a refresh's result in the one write order (`SessionWrite`): the rotated refresh
/// token, the access token, then the expiry in config.toml. When the secret cannot be saved,
/// the token is still cached and returned (it works until it expires) with the error.
fn save_refreshed(
    app: &App,
    lock: &ContextLock,
    ctx: &Context,
    session: Session,
    slot: SaveSlot,
) -> Result<(CachedToken, Option<Error>)> {
    let key = lock.key();
    let (secret_done, saved) =
        SessionWrite::new(&app.paths, lock).secret(|_| match &session.refresh_token {
            Some(rotated) => slot.save(rotated).map(Some),
            None => Ok(None),
        });
    let mut storage = ctx.storage;
    let mut unsaved = None;
    match saved {
        Ok(Some(saved)) => {
            if let Some(why) = &saved.fallback_reason {
                app.ui.warn(&format!(
                    "{why}; the refresh token of {:?} is now stored in {} (0600)",
                    ctx.name,
                    app.paths.credentials().display()
                ));
            }
            storage = saved.storage;
        }
        Ok(None) => {}
        Err(err) => unsaved = Some(lost_session(key, ctx, &err, session.expires_at)),
    }
    if let Some(org) = Context::organization_id(key)
        && session.organization_id.as_deref() != Some(org)
    {
        return Err(Error::failure(format!(
            "the refreshed token is for organization {}, not {org}; it was not used",
            session.organization_id.as_deref().unwrap_or("(none)")
        ))
        .with_hint(format!(
            "run `mycli login --org {} --force`",
            crate::text::shell_word(org)
        )));
    }
    // The rotated secret is saved above: refusing a dead token now costs no session.
    if let Some(dead) = session.dead_on_arrival(app.now()) {
        return Err(Error {
            message: format!("{}; it was not used (the session is kept)", dead.message),
            ..dead
        });
    }
    let token = CachedToken {
        key: key.to_string(),
        expires_at: session.expires_at,
        access_token: session.access_token,
        issued_at: Some(app.now()),
    };
    // The token works whether or not it is cached: a cache that cannot be written only costs
    // the next call a refresh.
    let (cache_done, cached) = secret_done.cache(&token);
    if let Err(err) = cached
        && unsaved.is_none()
    {
        app.ui.warn(&format!(
            "the token was refreshed, but not cached: {}",
            err.message
        ));
    }
    if unsaved.is_some() {
        return Ok((token, unsaved));
    }
    // The session is saved; config.toml only learns the new expiry (and where the secret went
    // after a keychain fallback). A store locked by a hung process must not fail the caller.
    let recorded = cache_done.update_config(|config| match config.contexts.get_mut(key) {
        Some(c) => {
            c.access_token_expires_at = Some(time::rfc3339(token.expires_at));
            c.storage = storage;
            c.needs_login = false;
            true
        }
        None => false,
    });
    if let Err(err) = recorded {
        app.ui.warn(&format!(
            "the token was refreshed, but config.toml was not updated: {}",
            err.message
        ));
    }
    Ok((token, None))
}

/// What a refresh whose rotated secret could not be saved cost, and what to do.
fn lost_session(key: &str, ctx: &Context, err: &Error, expires_at: i64) -> Error {
    Error::failure(format!(
        "the renewed refresh token of {:?} could not be saved ({}); this access token works \
         until {}, then the session needs a new login",
        ctx.name,
        err.message,
        time::rfc3339(expires_at)
    ))
    .with_hint(format!("fix the cause above, then {}", login_command(key)))
}

/// Marks a context as needing a new login; it stays in the store. Its cached token goes.
pub fn mark_needs_login(app: &App, lock: &ContextLock) -> Result<()> {
    let key = lock.key();
    SessionWrite::new(&app.paths, lock)
        .secret(|_| Ok(()))
        .0
        .uncache()
        .update_config(|config| match config.contexts.get_mut(key) {
            Some(c) if !c.needs_login => {
                c.needs_login = true;
                true
            }
            _ => false,
        })
}

/// Exit 4, with the exact command that signs in again.
pub fn needs_login(key: &str, ctx: &Context, why: &str) -> Error {
    Error::new(
        Kind::NeedsLogin,
        format!("the session of context {:?} {why}", ctx.name),
    )
    .with_hint(match Context::organization_id(key) {
        Some(_) => login_command(key),
        // `mycli login` alone would use today's defaults; the name renews this session.
        None => format!(
            "run `mycli login --context {}`",
            crate::text::shell_word(&ctx.name)
        ),
    })
}

pub fn login_command(key: &str) -> String {
    match Context::organization_id(key) {
        Some(org) => format!("run `mycli login --org {}`", crate::text::shell_word(org)),
        None => "run `mycli login`".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::app::testing::{self, Idp, NOW, TestApp};

    const KEY: &str = "org_acme";

    /// A WorkOS-shaped IdP whose refresh answers `refresh` (status, body).
    fn idp(refresh: (u16, serde_json::Value)) -> Idp {
        Idp::start(move |_| (refresh.0, refresh.1.to_string()))
    }

    fn rotated() -> (u16, serde_json::Value) {
        (
            200,
            json!({
                "access_token": "at-new",
                "refresh_token": "rt-new",
                "expires_in": 300,
                "organization_id": KEY,
                "user": {"id": "user_1"},
            }),
        )
    }

    fn signed_in(idp: &Idp, storage: Storage, expires_at: Option<i64>) -> TestApp {
        let t = testing::app();
        t.sign_in(&idp.url, KEY, storage, expires_at);
        t
    }

    #[test]
    fn a_fresh_cached_token_is_returned_without_asking_the_idp() {
        let idp = idp(rotated());
        let t = signed_in(&idp, Storage::Keychain, Some(NOW + MARGIN_SECS + 1));
        let token = fresh_token(&t.app, KEY, Want::Usable).unwrap();
        assert_eq!(token.access_token.expose(), "at-org_acme");
        assert!(idp.requests.lock().unwrap().is_empty());
    }

    #[test]
    fn a_token_inside_the_margin_is_refreshed_and_the_rotated_secret_saved() {
        let idp = idp(rotated());
        let t = signed_in(&idp, Storage::Keychain, Some(NOW + MARGIN_SECS));
        let token = fresh_token(&t.app, KEY, Want::Usable).unwrap();
        assert_eq!(token.access_token.expose(), "at-new");
        assert_eq!(token.expires_at, NOW + 300);
        let calls = idp.calls("/user_management/authenticate");
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].field("refresh_token").as_deref(),
            Some("rt-org_acme")
        );
        assert_eq!(calls[0].field("organization_id").as_deref(), Some(KEY));
        let creds = t.app.credentials();
        let saved = creds.load(KEY, Storage::Keychain).unwrap().unwrap();
        assert_eq!(saved.expose(), "rt-new");
        let ctx = t.context(KEY).unwrap();
        assert_eq!(ctx.access_token_expires_at, Some(time::rfc3339(NOW + 300)));
        // The next call is served from the cache, until the clock moves past the margin.
        fresh_token(&t.app, KEY, Want::Usable).unwrap();
        assert_eq!(idp.calls("/").len(), 1);
        t.app.clock.set(NOW + 300 - MARGIN_SECS);
        fresh_token(&t.app, KEY, Want::Usable).unwrap();
        assert_eq!(idp.calls("/").len(), 2);
    }

    #[test]
    fn force_refreshes_a_fresh_token() {
        let idp = idp(rotated());
        let t = signed_in(&idp, Storage::File, Some(NOW + 3600));
        let token = fresh_token(&t.app, KEY, Want::New).unwrap();
        assert_eq!(token.access_token.expose(), "at-new");
        let saved = t.app.credentials().load(KEY, Storage::File).unwrap();
        assert_eq!(saved.unwrap().expose(), "rt-new");
    }

    #[test]
    fn a_terminal_refusal_marks_the_context_and_forgets_the_secret() {
        let idp = idp((400, json!({"error": "invalid_grant"})));
        let t = signed_in(&idp, Storage::Keychain, None);
        let err = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert_eq!(err.kind, Kind::NeedsLogin);
        assert!(err.message.contains("invalid_grant"), "{}", err.message);
        assert_eq!(
            err.hint.as_deref(),
            Some("run `mycli login --org org_acme`")
        );
        assert!(t.context(KEY).unwrap().needs_login);
        let creds = t.app.credentials();
        assert!(creds.load(KEY, Storage::Keychain).unwrap().is_none());
        // Marked: no further request until a new login.
        let again = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert_eq!(again.kind, Kind::NeedsLogin);
        assert_eq!(idp.calls("/").len(), 1);
    }

    #[test]
    fn another_refusal_keeps_the_session() {
        let idp = idp((400, json!({"code": "rate_limited", "message": "slow"})));
        let t = signed_in(&idp, Storage::Keychain, None);
        let err = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert_eq!(err.kind, Kind::Failure);
        assert!(err.hint.unwrap().contains("the session is kept"));
        assert!(!t.context(KEY).unwrap().needs_login);
        let creds = t.app.credentials();
        let kept = creds.load(KEY, Storage::Keychain).unwrap().unwrap();
        assert_eq!(kept.expose(), "rt-org_acme");
    }

    #[test]
    fn no_stored_secret_means_a_new_login() {
        let idp = idp(rotated());
        let t = signed_in(&idp, Storage::Keychain, None);
        t.app
            .credentials()
            .delete(&t.lock(KEY), Storage::Keychain)
            .unwrap();
        let err = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert_eq!(err.kind, Kind::NeedsLogin);
        assert!(t.context(KEY).unwrap().needs_login);
        assert!(idp.calls("/").is_empty());
    }

    #[test]
    fn a_token_for_another_organization_is_not_used() {
        let (status, mut body) = rotated();
        body["organization_id"] = json!("org_other");
        let idp = idp((status, body));
        let t = signed_in(&idp, Storage::Keychain, None);
        let err = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert!(err.message.contains("org_other"), "{}", err.message);
        assert!(crate::store::tokens::read(&t.app.paths, KEY).is_none());
    }

    #[test]
    fn a_locked_keychain_fails_the_refresh_before_any_request() {
        let idp = idp(rotated());
        let t = signed_in(&idp, Storage::Keychain, None);
        testing::fail_next_keychain_call(&t, KEY);
        let err = fresh_token(&t.app, KEY, Want::Usable).unwrap_err();
        assert!(err.message.contains("keychain"), "{}", err.message);
        assert!(idp.calls("/").is_empty());
        assert!(!t.context(KEY).unwrap().needs_login);
    }
}
