use std::time::Duration;

use crate::app::App;
use crate::auth::device;
use crate::auth::loopback::Loopback;
use crate::auth::pkce::{self, Pkce};
use crate::auth::provider::refused;
use crate::auth::{self, Http, IdpError, Provider, ProviderConfig, Reply, Session, browser};
use crate::cli::LoginArgs;
use crate::env;
use crate::error::{Error, Result};
use crate::select::Selection;
use crate::session;
use crate::store::credentials::Preference;
use crate::store::tokens::{self, CachedToken};
use crate::store::write::SessionWrite;
use crate::store::{self, Config, ConfigLock, Context, Method, NO_ORG_KEY, ProviderKind};
use crate::time;

enum Flow {
    Pkce { open_browser: bool },
    Device { open_browser: bool },
}

pub fn run(app: &App, mut args: LoginArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    if args.org.is_none() {
        let selection = Selection::of(app)?;
        if let Some(org) = selection.pinned_organization(&config) {
            app.ui.say(&format!(
                "Signing in to {org}, which this directory's {} pins.",
                crate::select::PIN_FILE
            ));
            args.org = Some(org);
        } else if args.name.is_none()
            && let Some(name) = selection.pinned_missing_name(&config)
        {
            app.ui.say(&format!(
                "This directory's {} pins the context {name:?}, which does not exist yet: the new context gets that name.",
                crate::select::PIN_FILE
            ));
            args.name = Some(name);
        }
    }
    let pref = Preference::from_env(args.insecure_storage)?;
    // A login for a known context (`--org` of a known organization, or `--context NAME`)
    // renews it with the provider it remembers, whatever the defaults are today: flags alone
    // say otherwise. That is what makes every "run `mycli login --org X`" hint work as printed.
    let renewing = match (&args.org, app.context.as_deref()) {
        (Some(org), _) => config.contexts.get(org),
        (None, Some(name)) => {
            let key = config.resolve(name)?;
            args.org = Context::organization_id(&key).map(str::to_string);
            config.contexts.get(&key)
        }
        (None, None) => None,
    };
    let provider_config = match renewing {
        Some(ctx) => {
            let kind = args.provider.unwrap_or(ctx.provider);
            ProviderConfig::resolve(
                Some(kind),
                args.issuer
                    .as_deref()
                    .or((kind == ctx.provider).then_some(ctx.issuer.as_str())),
                args.client_id.as_deref().or(Some(&ctx.client_id)),
                &config.provider,
            )?
            .remembering(ctx.org_claim.as_deref().filter(|_| kind == ctx.provider))
        }
        None => ProviderConfig::resolve(
            args.provider,
            args.issuer.as_deref(),
            args.client_id.as_deref(),
            &config.provider,
        )?,
    };
    if let Some(org) = &args.org {
        check_org(org, provider_config.kind)?;
    }
    if let Some(name) = &args.name {
        store::validate_name(name).map_err(|why| Error::usage(why).with_hint(store::NAME_RULE))?;
        check_name_free(&config, name, args.org.as_deref())?;
    }

    if let (Some(org), false) = (&args.org, args.force)
        && let Some(ctx) = config.contexts.get(org)
        && same_provider(ctx, &provider_config)
        && usable(app, org, ctx)?
    {
        let lock = ConfigLock::acquire(&app.paths)?;
        let mut config = lock.load()?;
        if let Some(name) = &args.name {
            check_name_free(&config, name, Some(org))?;
            if let Some(c) = config.contexts.get_mut(org) {
                c.name = name.clone();
            }
        }
        if config.contexts.contains_key(org) {
            config.set_current(org);
            lock.save(&config)?;
        }
        let renamed = match &args.name {
            Some(name) if *name != ctx.name => format!(" (renamed from {:?})", ctx.name),
            _ => String::new(),
        };
        app.ui.say(&format!(
            "You are already signed in to {} as {}; switched to context {:?}{renamed}.",
            org_label(org, ctx.organization_name.as_deref()),
            ctx.email.as_deref().unwrap_or(&ctx.user_id),
            args.name.as_deref().unwrap_or(&ctx.name)
        ));
        app.ui.say("Use `mycli login --force` to sign in again.");
        return Ok(());
    }

    // Until the session is being stored, Ctrl-C leaves nothing behind: say so.
    crate::interrupt::note_on_cancel(Some(crate::interrupt::NOTHING_STORED));
    let flow = if args.device {
        Flow::Device {
            open_browser: !args.no_browser && browser::availability().is_ok(),
        }
    } else if args.no_browser {
        Flow::Pkce {
            open_browser: false,
        }
    } else {
        match browser::availability() {
            Ok(()) => Flow::Pkce { open_browser: true },
            Err(why) => {
                app.ui.say(&format!(
                    "No browser can be opened here: {why}. Using the device code flow."
                ));
                Flow::Device {
                    open_browser: false,
                }
            }
        }
    };

    if pref == Preference::Keychain {
        app.credentials().probe_keychain()?;
    }
    // A store that cannot be written must fail now, not after the user approved the sign-in.
    app.paths.probe_writable()?;
    app.credentials().check_file()?;
    let http = app.http()?;
    let org = args.org.as_deref();
    let (provider, session, method) = auth::block_on(async {
        let provider = Provider::discover(&http, provider_config.clone()).await?;
        match flow {
            Flow::Pkce { open_browser } => {
                let s = sign_in_pkce(app, &http, &provider, &args, open_browser).await?;
                Ok((provider, s, Method::Pkce))
            }
            Flow::Device { open_browser } => {
                let s =
                    sign_in_device(app, &http, &provider, org, open_browser, !args.no_qr).await?;
                Ok((provider, s, Method::Device))
            }
        }
    })?;

    let refusal = if let Some(dead) = session.dead_on_arrival(app.now()) {
        Some(Error {
            message: format!("{}; nothing was stored", dead.message),
            ..dead
        })
    } else if let Some(got) = &session.organization_id
        && (got.is_empty()
            || got.len() > 256
            || got == NO_ORG_KEY
            || got.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        Some(Error::failure(
            "the identity provider sent an unusable organization id; nothing was stored",
        ))
    } else if let Some(want) = org
        && session.organization_id.as_deref() != Some(want)
    {
        Some(
            Error::failure(format!(
                "the identity provider signed you in to {}, not {want}; nothing was stored",
                session
                    .organization_id
                    .as_deref()
                    .map_or("no organization".to_string(), |o| format!(
                        "organization {o}"
                    ))
            ))
            .with_hint(format!(
                "make sure your account belongs to {want} and choose it when signing in"
            )),
        )
    } else {
        None
    };
    if let Some(err) = refusal {
        let ended = auth::block_on(async { Ok(end_refused(&http, &provider, &session).await) })?;
        return Err(with_end(err, ended));
    }
    crate::interrupt::note_on_cancel(None);
    let offset = http.server_offset();
    let key = session
        .organization_id
        .clone()
        .unwrap_or_else(|| NO_ORG_KEY.to_string());
    if let Err(err) = save(app, &args, pref, &provider_config, session.clone(), method) {
        // A session that no context here names (a new one whose save failed) would live on at
        // the IdP with nothing to end it: end it now. A re-login keeps its context, whose
        // secret may already be the new one.
        let unnamed = Config::load(&app.paths).is_ok_and(|c| !c.contexts.contains_key(&key));
        if !unnamed {
            return Err(err);
        }
        let ended = auth::block_on(async { Ok(end_refused(&http, &provider, &session).await) })?;
        return Err(with_end(err, ended));
    }
    if offset != 0 {
        app.ui.warn(&format!(
            "this machine's clock is {} s {} the identity provider's; mycli corrects its token times for it, but other programs will not",
            offset.unsigned_abs(),
            if offset > 0 { "behind" } else { "ahead of" }
        ));
    }
    Ok(())
}

/// Ends, best effort, a session the IdP just created and mycli refuses to keep (another
/// organization, none), so that no working refresh token outlives the refusal: WorkOS session
/// logout with its `sid`, RFC 7009 revocation of the refresh token for OIDC. True when the
/// IdP confirmed it.
async fn end_refused(http: &Http, provider: &Provider, session: &Session) -> bool {
    match provider.config.kind {
        ProviderKind::Workos => match &session.session_id {
            Some(sid) => matches!(provider.workos_logout(http, sid).await, Ok(Ok(()))),
            None => false,
        },
        ProviderKind::Oidc => match &session.refresh_token {
            Some(rt) => matches!(provider.revoke(http, rt, "refresh_token").await, Ok(Ok(()))),
            None => false,
        },
    }
}

/// The error of a refused sign-in, saying whether the session it created was ended.
fn with_end(mut err: Error, ended: bool) -> Error {
    err.message.push_str(if ended {
        "; the session it created was ended at the identity provider"
    } else {
        "; the session it created could not be ended at the identity provider and may stay \
         active until it expires"
    });
    err
}

async fn sign_in_pkce(
    app: &App,
    http: &Http,
    provider: &Provider,
    args: &LoginArgs,
    open_browser: bool,
) -> Result<Session> {
    let loopback = Loopback::bind(args.port).await?;
    let pkce = Pkce::new()?;
    let state = pkce::random_token()?;
    let nonce = pkce::random_token()?;
    let redirect_uri = loopback.redirect_uri();
    let url = provider.authorize_url(
        &redirect_uri,
        &pkce.challenge,
        &state,
        &nonce,
        args.org.as_deref(),
        args.login_hint.as_deref(),
    )?;
    if open_browser {
        app.ui
            .say("Opening your browser to sign in. If it does not open, visit:");
        app.ui.say(&format!("  {url}"));
        if let Err(why) = app.browser.open(&url) {
            if app.ui.quiet {
                // The URL above was not shown, and nothing else can finish the sign-in.
                app.ui.show(&format!(
                    "Could not open a browser ({why}); open this URL to sign in:\n  {url}"
                ));
            } else {
                app.ui.warn(&format!(
                    "could not open a browser ({why}); open the URL above yourself"
                ));
            }
        }
    } else {
        app.ui
            .show("Open this URL in a browser on this machine to sign in:");
        app.ui.show(&format!("  {url}"));
    }
    app.ui
        .say("Waiting for the sign-in to finish (Ctrl-C to cancel)...");
    let code = loopback
        .wait(
            &state,
            &provider.config.issuer,
            provider.iss_required,
            login_timeout(),
        )
        .await?;
    let reply = provider
        .exchange_code(http, &code, &pkce.verifier, &redirect_uri, &nonce)
        .await?;
    finish(app, http, provider, reply, args.org.as_deref()).await
}

async fn sign_in_device(
    app: &App,
    http: &Http,
    provider: &Provider,
    org: Option<&str>,
    open_browser: bool,
    qr: bool,
) -> Result<Session> {
    let auth = provider.device_start(http, org).await?;
    app.ui.show(&format!(
        "To sign in, open {} and enter the code: {}",
        shown_url(&auth.verification_uri),
        auth::http::clean(&auth.user_code)
    ));
    // The page with the code filled in, and on a terminal its QR code for a phone.
    let complete = auth
        .verification_uri_complete
        .as_deref()
        .map(shown_url)
        .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http")));
    if let Some(complete) = &complete {
        app.ui.show(&format!(
            "Or open this URL, which carries the code: {complete}"
        ));
        if qr
            && app.ui.stderr_is_terminal()
            && let Some(code) = qr_code(complete)
        {
            app.ui.say(&code);
        }
    }
    if open_browser {
        let target = shown_url(
            auth.verification_uri_complete
                .as_deref()
                .unwrap_or(&auth.verification_uri),
        );
        if let Err(why) = app.browser.open(&target) {
            app.ui.warn(&format!("could not open a browser ({why})"));
        }
    }
    app.ui.say("Waiting for approval (Ctrl-C to cancel)...");
    let reply = device::poll(&app.ui, http, provider, &auth).await?;
    finish(app, http, provider, reply, org).await
}

/// A URL from the IdP as the user should see it: without control or format characters, and,
/// when it parses, as the URL crate writes it: a non-ASCII host as punycode (`xn--...`, as
/// browsers show a look-alike such as a Cyrillic "о" in "microsoft"), other non-ASCII
/// percent-encoded.
fn shown_url(raw: &str) -> String {
    let clean = auth::http::clean(raw);
    match url::Url::parse(&clean) {
        Ok(url) => url.to_string(),
        Err(_) => clean,
    }
}

/// `url` as a QR code drawn with half blocks, light on dark as terminals show it best.
fn qr_code(url: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// The end of a sign-in. When WorkOS asks which organization to use, the pending
/// authentication is completed with the organization selection grant (as a public client) for
/// `--org`, or, on a terminal, for the organization the user picks from the list; otherwise
/// the refusal becomes the error.
async fn finish(
    app: &App,
    http: &Http,
    provider: &Provider,
    reply: Reply<Session>,
    org: Option<&str>,
) -> Result<Session> {
    let err = match reply {
        Reply::Ok(session) => return Ok(session),
        Reply::Refused(err) => err,
    };
    let Some(pending) = pending_token(&err).filter(|_| err.is("organization_selection_required"))
    else {
        return Err(sign_in_refused(&err));
    };
    let orgs = listed_orgs(&err);
    let chosen = match org {
        Some(org) => org.to_string(),
        None => match pick_organization(app, &orgs)? {
            Some(org) => org,
            None => return Err(sign_in_refused(&err)),
        },
    };
    // WorkOS names the organizations only here: keep the chosen one's name for the context.
    let listed_name = orgs
        .iter()
        .find(|(id, name)| *id == chosen && !name.is_empty() && name != id)
        .map(|(_, name)| name.clone());
    match provider.select_organization(http, &pending, &chosen).await? {
        Reply::Ok(mut session) if session.organization_id.as_deref() == Some(&chosen) => {
            if session.organization_name.is_none() {
                session.organization_name = listed_name;
            }
            Ok(session)
        }
        Reply::Ok(other) => {
            let ended = end_refused(http, provider, &other).await;
            Err(with_end(
                Error::failure(format!(
                    "the identity provider did not sign you in to {chosen}; nothing was stored"
                )),
                ended,
            ))
        }
        Reply::Refused(selection)
            if selection.is("organization_membership_not_found")
                || selection.is("invalid_organization_id")
                || selection.is("organization_not_found") =>
        {
            let yours: Vec<&str> = orgs.iter().map(|(id, _)| id.as_str()).collect();
            Err(
                Error::failure(format!("you are not a member of {chosen}; nothing was stored"))
                    .with_hint(if yours.is_empty() {
                        "check the organization id with your administrator".to_string()
                    } else {
                        format!("your organizations: {}", crate::text::first_of(&yours, 10))
                    }),
            )
        }
        Reply::Refused(selection) => Err(Error::failure(format!(
            "the identity provider asked which organization to use and refused {chosen}: {}",
            selection.summary()
        ))
        .with_hint(format!(
            "run `mycli login --org {}` and sign in with the browser, where the organization is chosen",
            crate::text::shell_word(&chosen)
        ))),
    }
}

/// On a terminal, asks which of `orgs` to sign in to; `None` when there is no terminal or
/// nothing to choose from.
fn pick_organization(app: &App, orgs: &[(String, String)]) -> Result<Option<String>> {
    use std::io::{BufRead, IsTerminal};
    if orgs.is_empty()
        || app.ui.quiet
        || !std::io::stdin().is_terminal()
        || !std::io::stderr().is_terminal()
    {
        return Ok(None);
    }
    app.ui.say("Your account belongs to several organizations:");
    let width = orgs
        .iter()
        .map(|(id, _)| id.chars().count())
        .max()
        .unwrap_or(0);
    for (i, (id, name)) in orgs.iter().enumerate() {
        app.ui
            .say(format!("  {}) {id:<width$}  {name}", i + 1).trim_end());
    }
    loop {
        app.ui
            .prompt(&format!("Sign in to which one? [1-{}] ", orgs.len()));
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).unwrap_or(0) == 0 {
            // Ctrl-D: a cancel, as Ctrl-C is.
            app.ui
                .say(&format!("\n{}", crate::interrupt::NOTHING_STORED));
            return Err(Error::new(crate::error::Kind::Exit(130), ""));
        }
        let answer = answer.trim();
        if let Ok(n) = answer.parse::<usize>()
            && (1..=orgs.len()).contains(&n)
        {
            return Ok(Some(orgs[n - 1].0.clone()));
        }
        if let Some((id, _)) = orgs.iter().find(|(id, _)| id == answer) {
            return Ok(Some(id.clone()));
        }
    }
}

/// The organizations (id, name) of an `organization_selection_required` answer.
fn listed_orgs(err: &IdpError) -> Vec<(String, String)> {
    err.body
        .get("organizations")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|o| {
                    let id = o.get("id")?.as_str()?;
                    let name = o.get("name").and_then(|n| n.as_str()).unwrap_or("");
                    Some((auth::http::clean(id), auth::http::clean(name)))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pending_token(err: &IdpError) -> Option<crate::secret::Secret> {
    err.body
        .get("pending_authentication_token")
        .and_then(|v| v.as_str())
        .map(crate::secret::Secret::new)
}

fn login_timeout() -> Duration {
    env::seconds(env::LOGIN_TIMEOUT, 300.0)
}

/// The IdP refused to finish a sign-in: say why, and what to do.
fn sign_in_refused(err: &IdpError) -> Error {
    if err.is("organization_selection_required") {
        let orgs = listed_orgs(err);
        let listed: Vec<String> = orgs
            .iter()
            .map(|(id, name)| {
                if name.is_empty() {
                    id.clone()
                } else {
                    format!("{id} ({name})")
                }
            })
            .collect();
        let example = orgs.first().map_or("ORG_ID", |(id, _)| id.as_str());
        return Error::failure(format!(
            "your account belongs to several organizations; choose one: {}",
            if listed.is_empty() {
                "(the provider did not list them)".to_string()
            } else {
                crate::text::first_of(&listed, 10)
            }
        ))
        .with_hint(format!(
            "run `mycli login --org {}`",
            crate::text::shell_word(example)
        ));
    }
    refused("the identity provider refused the sign-in", err)
}

/// Stores a new session: the secret, the cached access token, then the context.
fn save(
    app: &App,
    args: &LoginArgs,
    pref: Preference,
    provider: &ProviderConfig,
    session: Session,
    method: Method,
) -> Result<()> {
    let key = session
        .organization_id
        .clone()
        .unwrap_or_else(|| NO_ORG_KEY.to_string());
    let refresh_token = session.refresh_token.clone().ok_or_else(|| {
        Error::failure("the identity provider issued no refresh token; nothing was stored")
            .with_hint("the client must be allowed the offline_access scope / refresh tokens")
    })?;

    let context_lock = session::lock_context(app, &key)?;
    // The store lock comes before any secret is written: a login that cannot take it (a hung
    // mycli holds it) or whose name was taken meanwhile must leave no orphaned secret behind.
    let lock = ConfigLock::acquire(&app.paths)?;
    let mut config = lock.load()?;
    let existing = config.contexts.get(&key).cloned();
    let named_after_id = existing.is_none() && args.name.is_none();
    free_key_as_name(app, &mut config, &key);
    let name = match (&args.name, &existing) {
        (Some(name), _) => {
            check_name_free(&config, name, Some(&key))?;
            name.clone()
        }
        (None, Some(ctx)) => ctx.name.clone(),
        (None, None) => config.unique_name(&default_name(&key, &session), &key),
    };
    // The one write order (`SessionWrite`): the secret, the cached token, then config.toml.
    let creds = app.credentials();
    let (secret_done, saved) = SessionWrite::new(&app.paths, &context_lock).secret(|lock| {
        let saved = creds.save(lock, &refresh_token, pref)?;
        if let Some(old) = &existing
            && old.storage != saved.storage
        {
            let _ = creds.delete(lock, old.storage);
        }
        Ok(saved)
    });
    let saved = saved?;
    if let Some(why) = &saved.fallback_reason {
        app.ui.warn(&format!(
            "{why}; the refresh token is stored in {} (0600) instead of the OS keychain",
            app.paths.credentials().display()
        ));
    } else if pref == Preference::File {
        // Chosen explicitly: a note, not a warning.
        app.ui.say(&format!(
            "The refresh token is stored in {} (0600), not in the OS keychain, as {} asks.",
            app.paths.credentials().display(),
            if args.insecure_storage {
                "--insecure-storage".to_string()
            } else {
                format!("{}=file", env::CREDENTIAL_STORE)
            }
        ));
    }
    let (cache_done, cached) = secret_done.cache(&CachedToken {
        key: key.clone(),
        expires_at: session.expires_at,
        access_token: session.access_token.clone(),
        issued_at: Some(app.now()),
    });
    let is_new = existing.is_none();
    let ctx = Context {
        name: name.clone(),
        organization_name: session
            .organization_name
            .clone()
            .or_else(|| existing.and_then(|e| e.organization_name)),
        user_id: session.user_id.clone(),
        email: session.email.clone(),
        provider: provider.kind,
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
        method,
        storage: saved.storage,
        needs_login: false,
        access_token_expires_at: Some(time::rfc3339(session.expires_at)),
        signed_in_at: Some(time::rfc3339(app.now())),
        session_id: session.session_id.clone(),
        authentication_method: session.authentication_method.clone(),
        org_claim: (provider.kind == ProviderKind::Oidc).then(|| provider.org_claim.clone()),
        impersonator: session.impersonator.clone(),
    };
    config.contexts.insert(key.clone(), ctx);
    config.set_current(&key);
    if let Err(e) = cache_done.config(&lock, &config) {
        if !is_new {
            // The context stays as it was, and its new secret (already saved) is the one that
            // works: the session is kept, only this login's details are not.
            return Err(e);
        }
        // A new context that config.toml cannot name: its secret would be unreachable, so it
        // goes too (the disk may have filled during the sign-in).
        let removed = creds.delete(&context_lock, saved.storage);
        tokens::remove(&app.paths, &context_lock);
        return Err(Error {
            message: match removed {
                Ok(()) => format!("{}; nothing was stored", e.message),
                Err(why) => format!(
                    "{}, and the new refresh token could not be removed either ({})",
                    e.message, why.message
                ),
            },
            ..e
        });
    }
    if let Err(e) = cached {
        // The secret is saved: without the cache the next command refreshes, nothing more.
        app.ui.warn(&format!(
            "could not cache the access token ({}); the next command will refresh it",
            e.message
        ));
    }

    app.ui.say(&format!(
        "Signed in to {} as {} with {}. Context {name:?} is now current.",
        match Context::organization_id(&key) {
            Some(org) => org_label(org, session.organization_name.as_deref()),
            None => "no organization".to_string(),
        },
        session.email.as_deref().unwrap_or(&session.user_id),
        method.describe(),
    ));
    if let Some(who) = &session.impersonator {
        app.ui.warn(&format!(
            "this session is impersonated by {}{}",
            who.email,
            who.reason
                .as_deref()
                .map(|r| format!(" (reason: {r})"))
                .unwrap_or_default()
        ));
    }
    if named_after_id && Context::organization_id(&key).is_some() && name.starts_with(key.as_str())
    {
        app.ui.say(&format!(
            "The identity provider did not name the organization; rename the context with `mycli rename {} NEW_NAME`.",
            crate::text::shell_word(&name)
        ));
    }
    Ok(())
}

/// A session is usable when it is not marked and its token is fresh or refreshes.
fn usable(app: &App, key: &str, ctx: &Context) -> Result<bool> {
    if ctx.needs_login {
        return Ok(false);
    }
    match session::fresh_token(app, key, session::Want::Usable) {
        Ok(_) => Ok(true),
        Err(e) if e.kind == crate::error::Kind::NeedsLogin => Ok(false),
        Err(e) => Err(e),
    }
}

fn same_provider(ctx: &Context, p: &ProviderConfig) -> bool {
    ctx.provider == p.kind && ctx.issuer == p.issuer && ctx.client_id == p.client_id
}

/// A name may be used by no other context, neither as its name nor as its key.
fn check_name_free(config: &Config, name: &str, key: Option<&str>) -> Result<()> {
    match config.name_taken(name, key.unwrap_or_default()) {
        Some(k) if k == name => Err(Error::usage(format!(
            "{name:?} is the organization id of another context; a name cannot be one"
        ))
        .with_hint("pick another --name")),
        Some(k) => Err(Error::usage(format!(
            "a context named {name:?} already exists (organization {k})"
        ))
        .with_hint("pick another --name, or rename that context first")),
        None => Ok(()),
    }
}

/// A new key may be another context's name (renamed to an organization id before that
/// organization signed in). An organization id always means that organization, so that
/// context gives the name up: it takes its own key as its name (or a free variant of it).
fn free_key_as_name(app: &App, config: &mut Config, key: &str) {
    let Some(other) = config
        .contexts
        .iter()
        .find(|(k, c)| k.as_str() != key && c.name == key)
        .map(|(k, _)| k.clone())
    else {
        return;
    };
    let base = if store::validate_name(&other).is_ok() {
        other.clone()
    } else {
        "org".to_string()
    };
    let renamed = config.unique_name(&base, &other);
    if let Some(ctx) = config.contexts.get_mut(&other) {
        ctx.name = renamed.clone();
    }
    app.ui.warn(&format!(
        "context {key:?} (organization {other}) was renamed to {renamed:?}: {key:?} is the \
         organization id of the context being signed in"
    ));
}

/// `--org` must look like an organization id: WorkOS `org_...`, OIDC a plain token.
fn check_org(org: &str, kind: ProviderKind) -> Result<()> {
    let plain = !org.is_empty()
        && org.len() <= 128
        && org != NO_ORG_KEY
        && org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:@".contains(c));
    let workos_ok = org
        .strip_prefix("org_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if !plain || (kind == ProviderKind::Workos && !workos_ok) {
        let shown = auth::http::clean(org);
        let err = Error::usage(format!("--org {shown:?} is not an organization id"));
        return Err(match kind {
            ProviderKind::Workos => {
                err.with_hint("WorkOS organization ids look like org_01H93RZAP85YGYZJXYPAZ9QTXF")
            }
            ProviderKind::Oidc => err.with_hint("use letters, digits and _ - . : @ only"),
        });
    }
    Ok(())
}

fn default_name(key: &str, session: &Session) -> String {
    if key == NO_ORG_KEY {
        return "personal".to_string();
    }
    let from_org_name = session.organization_name.as_deref().map(|n| {
        n.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    });
    match from_org_name {
        Some(n) if store::validate_name(&n).is_ok() && !mixes_lookalike_scripts(&n) => n,
        _ if store::validate_name(key).is_ok() => key.to_string(),
        _ => "org".to_string(),
    }
}

/// Whether `name` mixes Latin, Greek and Cyrillic letters: `Аcme` with a Cyrillic `А` looks
/// exactly like `acme`, and an organization named so must not hand its context a name that
/// passes for another's. One of these scripts alone, or any of them beside CJK, is a name.
fn mixes_lookalike_scripts(name: &str) -> bool {
    let mut seen = [false; 3];
    for c in name.chars().filter(|c| c.is_alphabetic()) {
        match c as u32 {
            0x41..=0x5a | 0x61..=0x7a | 0xc0..=0x24f | 0x1e00..=0x1eff => seen[0] = true,
            0x370..=0x3ff | 0x1f00..=0x1fff => seen[1] = true,
            0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => seen[2] = true,
            _ => {}
        }
    }
    seen.iter().filter(|s| **s).count() > 1
}

fn org_label(org: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} ({org})"),
        None => org.to_string(),
    }
}
