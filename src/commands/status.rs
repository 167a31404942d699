use crate::app::App;
use crate::cli::{OutputFormat, StatusArgs};
use crate::error::Result;
use crate::output::{self, ContextJson, SelectedByJson, StatusJson};
use crate::select::{Rule, Selection};
use crate::session;
use crate::store::cache;
use crate::store::{Config, Context, Method, Storage};
use crate::time;

pub fn run(app: &App, args: StatusArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    // The rule that selects a context here, and that context; `status NAME` may show another.
    let here = match args.name.as_deref() {
        Some(_) => Selection::of(app)
            .ok()
            .and_then(|s| s.key(&config).ok().map(|k| (k, s.rule))),
        None => {
            let selection = Selection::of(app)?;
            Some((selection.key(&config)?, selection.rule))
        }
    };
    let key = match args.name.as_deref() {
        Some(name) => config.resolve(name)?,
        None => here.as_ref().map(|(k, _)| k.clone()).unwrap_or_default(),
    };
    let rule = here.and_then(|(k, rule)| (k == key).then_some(rule));
    let mut ctx = config.contexts[&key].clone();
    let now = app.now();

    // A context whose token is stale and whose secret is gone needs a login too.
    let fresh = cache::read(&app.paths, &key).is_some_and(|t| t.fresh(now, 0));
    let mut secret_note = None;
    if !ctx.needs_login && !fresh {
        match app.credentials().load(&key, ctx.storage) {
            Ok(Some(_)) => {}
            Ok(None) => ctx.needs_login = true,
            Err(e) => secret_note = Some(e.message),
        }
    }
    let current = config.current.as_deref() == Some(key.as_str());

    match output::listing_format(app.output)? {
        OutputFormat::Json => {
            let mut item = ContextJson::new(&key, &ctx, current);
            item.selected = rule.is_some();
            item.selected_by = rule.as_ref().map(SelectedByJson::new);
            let (role, permissions) = rights(app, &key);
            output::json(&StatusJson {
                context: item,
                role,
                permissions,
            })?
        }
        OutputFormat::Name => output::line(&ctx.name)?,
        OutputFormat::Table | OutputFormat::ExecCredential => {
            let selected_by = rule.as_ref().map_or(
                "not selected here (shown because it was named)".to_string(),
                Rule::describe,
            );
            output::block(&describe(
                app,
                &key,
                &ctx,
                current,
                now,
                secret_note,
                &selected_by,
            ))?
        }
    }
    if ctx.needs_login {
        return Err(session::needs_login(&key, &ctx, "needs a new login"));
    }
    Ok(())
}

/// The user's role and permissions in the organization, as the cached access token states them
/// (WorkOS `role`, `permissions` claims); read from the cache, never the network.
fn rights(app: &App, key: &str) -> (Option<String>, Option<Vec<String>>) {
    let Some(claims) =
        cache::read(&app.paths, key).and_then(|t| crate::auth::claims(t.access_token.expose()))
    else {
        return (None, None);
    };
    let role = claims
        .get("role")
        .and_then(|v| v.as_str())
        .map(crate::auth::http::clean);
    let permissions = claims
        .get("permissions")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_str().map(crate::auth::http::clean))
                .collect()
        });
    (role, permissions)
}

fn describe(
    app: &App,
    key: &str,
    ctx: &Context,
    current: bool,
    now: i64,
    secret_note: Option<String>,
    selected_by: &str,
) -> String {
    let org = match Context::organization_id(key) {
        Some(id) => match &ctx.organization_name {
            Some(n) => format!("{n} ({id})"),
            None => id.to_string(),
        },
        None => "none".to_string(),
    };
    let user = match &ctx.email {
        Some(e) => format!("{e} ({})", ctx.user_id),
        None => ctx.user_id.clone(),
    };
    let secret = match ctx.storage {
        Storage::Keychain => "OS keychain (service \"mycli\")".to_string(),
        Storage::File => format!("file {}", app.paths.credentials().display()),
    };
    let secret = match secret_note {
        Some(note) => format!("{secret}; {note}"),
        None => secret,
    };
    let expiry = match ctx
        .access_token_expires_at
        .as_deref()
        .and_then(time::parse_rfc3339)
    {
        Some(exp) if exp > now => format!(
            "expires {} ({})",
            time::relative(exp, now),
            time::rfc3339(exp)
        ),
        Some(exp) if ctx.needs_login => format!("expired {}", time::relative(exp, now)),
        Some(exp) => format!(
            "expired {} (refreshed on next use)",
            time::relative(exp, now)
        ),
        None => "unknown".to_string(),
    };
    let state = if ctx.needs_login {
        format!("needs login: {}", session::login_command(key))
    } else {
        "signed in".to_string()
    };
    let method = match ctx.method {
        Method::Pkce => "browser (PKCE)",
        Method::Device => "device code",
    };
    let impersonated = match &ctx.impersonator {
        Some(who) => format!(
            "\n  Impersonated:  by {}{}",
            who.email,
            who.reason
                .as_deref()
                .map(|r| format!(" (reason: {r})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    let title = if current {
        format!("{} (current)", ctx.name)
    } else {
        ctx.name.clone()
    };
    format!(
        "{title}\n  Organization:  {org}\n  User:          {user}{impersonated}\n  Provider:      {} {} (client {})\n  \
         Signed in by:  {method}{}\n  Secret:        {secret}\n  Access token:  {expiry}\n  State:         {state}\n  \
         Selected by:   {selected_by}\n",
        ctx.provider.as_str(),
        ctx.issuer,
        ctx.client_id,
        ctx.signed_in_at
            .as_deref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default(),
    )
}
