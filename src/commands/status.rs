use crate::app::App;
use crate::cli::{OutputFormat, StatusArgs};
use crate::error::Result;
use crate::output::{self, ContextJson, SelectedByJson, StatusJson};
use crate::select::{Rule, Selection};
use crate::session;
use crate::store::tokens;
use crate::store::{Config, Context, Storage};
use crate::time;

pub fn run(app: &App, args: StatusArgs) -> Result<()> {
    let config = Config::load(&app.paths)?;
    if args.all {
        return all(app, &config);
    }
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

    let secret_note = check_secret(app, &key, &mut ctx, now);
    let current = config.current.as_deref() == Some(key.as_str());

    match output::listing_format(app.output) {
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

/// A context whose token is stale and whose secret is gone needs a login too: marks `ctx`, or
/// says why the secret could not be read.
fn check_secret(app: &App, key: &str, ctx: &mut Context, now: i64) -> Option<String> {
    let fresh = tokens::read(&app.paths, key).is_some_and(|t| t.fresh(now, 0));
    if ctx.needs_login || fresh {
        return None;
    }
    match app.credentials().load(key, ctx.storage) {
        Ok(Some(_)) => None,
        Ok(None) => {
            ctx.needs_login = true;
            None
        }
        Err(e) => Some(e.message),
    }
}

/// `status --all`: every context, the selected one marked with the rule that chose it (§8).
/// Exit 4 when any context needs a login, so a morning check can be `mycli status --all`.
fn all(app: &App, config: &Config) -> Result<()> {
    let now = app.now();
    let here = Selection::of(app)
        .ok()
        .and_then(|s| s.key(config).ok().map(|k| (k, s.rule)));
    let mut keys: Vec<&String> = config.contexts.keys().collect();
    keys.sort_by(|a, b| config.contexts[*a].name.cmp(&config.contexts[*b].name));
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let mut ctx = config.contexts[key].clone();
        check_secret(app, key, &mut ctx, now);
        let rule = here
            .as_ref()
            .and_then(|(k, rule)| (k == key).then_some(rule.clone()));
        rows.push((key.as_str(), ctx, rule));
    }
    match output::listing_format(app.output) {
        OutputFormat::Json => {
            let items: Vec<StatusJson> = rows
                .iter()
                .map(|(key, ctx, rule)| {
                    let mut item =
                        ContextJson::new(key, ctx, config.current.as_deref() == Some(*key));
                    item.selected = rule.is_some();
                    item.selected_by = rule.as_ref().map(SelectedByJson::new);
                    let (role, permissions) = rights(app, key);
                    StatusJson {
                        context: item,
                        role,
                        permissions,
                    }
                })
                .collect();
            output::json(&items)?;
        }
        OutputFormat::Name => {
            let names: String = rows
                .iter()
                .map(|(_, c, _)| format!("{}\n", c.name))
                .collect();
            output::block(&names)?;
        }
        OutputFormat::Table | OutputFormat::ExecCredential => {
            if rows.is_empty() {
                app.ui
                    .say("No contexts yet. Sign in with `mycli login --org ORG_ID`.");
                return Ok(());
            }
            let lines: Vec<[String; 5]> = rows
                .iter()
                .map(|(key, ctx, rule)| {
                    [
                        ctx.name.clone(),
                        match (&ctx.organization_name, Context::organization_id(key)) {
                            (Some(n), Some(_)) => n.clone(),
                            (_, id) => id.unwrap_or("-").to_string(),
                        },
                        output::state(ctx).to_string(),
                        token_state(ctx, now),
                        rule.as_ref().map(Rule::describe).unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "NAME",
                    "ORGANIZATION",
                    "STATE",
                    "ACCESS TOKEN",
                    "SELECTED BY",
                ],
                &lines,
                // The name first, then the state: "needs login" must never read "need…".
                &[0, 2],
            )?;
        }
    }
    let stale: Vec<&str> = rows
        .iter()
        .filter(|(_, c, _)| c.needs_login)
        .map(|(_, c, _)| c.name.as_str())
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::needs_login(format!(
            "{} need{} a new login: {}",
            if stale.len() == 1 {
                "1 context"
            } else {
                "some contexts"
            },
            if stale.len() == 1 { "s" } else { "" },
            stale.join(", ")
        ))
        .with_hint("`mycli status NAME` says which `mycli login` to run"))
    }
}

/// The access token column of `status --all`.
fn token_state(ctx: &Context, now: i64) -> String {
    match ctx
        .access_token_expires_at
        .as_deref()
        .and_then(time::parse_rfc3339)
    {
        Some(exp) if exp > now => format!("expires {}", time::relative(exp, now)),
        Some(_) if ctx.needs_login => "expired".to_string(),
        Some(exp) => format!("expired {} (refreshed on use)", time::relative(exp, now)),
        None => "unknown".to_string(),
    }
}

/// The user's role and permissions in the organization, as the cached access token states them
/// (WorkOS `role`, `permissions` claims); read from the cache, never the network.
fn rights(app: &App, key: &str) -> (Option<String>, Option<Vec<String>>) {
    let Some(claims) =
        tokens::read(&app.paths, key).and_then(|t| crate::auth::claims(t.access_token.expose()))
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
    let method = ctx.method.describe();
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
