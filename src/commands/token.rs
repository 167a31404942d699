use serde::Serialize;

use crate::app::App;
use crate::cli::OutputFormat;
use crate::env;
use crate::error::{Error, Result};
use crate::output;
use crate::select::{Selection, Target};
use crate::session::{self, MARGIN_SECS};
use crate::store::config::index_is_current;
use crate::store::tokens::CachedToken;
use crate::store::{Config, Context, tokens};
use crate::time;

/// Prints a valid access token and nothing else (or, with `-o json` / `-o exec-credential`,
/// the token in a JSON document for another program).
///
/// The hot path, in every format (kubectl runs `-o exec-credential` before each of its
/// commands), reads the `current` pointer of `current.toml` and the index's header (or the
/// organization of a `.mycli.toml` pin and the index's header, or a `--context` name in
/// `cache/names`) and the context's cached token, and for JSON the context's name from
/// `cache/names`: no parse of the contexts, no keychain, no network, no runtime.
pub fn run(app: &App) -> Result<()> {
    let format = Format::of(app.output)?;
    let selection = Selection::of(app)?;
    if let Some((key, name)) = quick_key(app, &selection)?
        && let Some(token) = tokens::read(&app.paths, &key)
        && token.fresh(app.now(), MARGIN_SECS)
    {
        match (format, name) {
            (Format::Json, None) => {
                if let Some(Some(name)) = Config::indexed_name(&app.paths, &key, false) {
                    return print(format, &token, &key, &name);
                }
            }
            (_, name) => return print(format, &token, &key, name.as_deref().unwrap_or_default()),
        }
    }
    let config = Config::load(&app.paths)?;
    let key = selection.key(&config)?;
    let token = match tokens::read(&app.paths, &key) {
        Some(token) if token.fresh(app.now(), MARGIN_SECS) => token,
        _ => session::fresh_token(app, &key, session::Want::Usable)?,
    };
    print(format, &token, &key, &config.contexts[&key].name)
}

/// The token of context `key` in `format` (`name`, the context's, is printed in JSON alone).
fn print(format: Format, token: &CachedToken, key: &str, name: &str) -> Result<()> {
    match format {
        Format::Plain => output::line(token.access_token.expose()),
        Format::Json => output::json(&TokenJson {
            access_token: token.access_token.expose(),
            token_type: "Bearer",
            expires_at: time::rfc3339(token.expires_at),
            context: name,
            organization_id: Context::organization_id(key),
        }),
        Format::ExecCredential(api_version) => output::json(&exec_credential(api_version, token)),
    }
}

/// The key of the selected context (and its name, when that was looked up) when it is known
/// without parsing the contexts.
fn quick_key(app: &App, selection: &Selection) -> Result<Option<(String, Option<String>)>> {
    match &selection.target {
        Target::Current => Ok(Config::read_current(&app.paths)?.map(|key| (key, None))),
        // A cached token under the pinned organization's key is that context's while
        // config.toml is as it was indexed; otherwise the store is parsed and checked.
        Target::Organization(org) if index_is_current(&app.paths)? => Ok(Some((org.clone(), None))),
        // A name or key from `--context`, `MYCLI_CONTEXT` or a personal pin, found in
        // cache/names while it is of config.toml as it is now.
        Target::Query(query) => Ok(Config::named_entry(&app.paths, query)
            .flatten()
            .map(|(key, name)| (key, Some(name)))),
        Target::Organization(_) => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Plain,
    Json,
    ExecCredential(&'static str),
}

const EXEC_V1: &str = "client.authentication.k8s.io/v1";
const EXEC_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

impl Format {
    fn of(output: Option<OutputFormat>) -> Result<Format> {
        Ok(match output {
            Some(OutputFormat::Json) => Format::Json,
            Some(OutputFormat::ExecCredential) => {
                Format::ExecCredential(exec_api_version(env::var(env::KUBERNETES_EXEC_INFO))?)
            }
            _ => Format::Plain,
        })
    }
}

/// The ExecCredential version kubectl asks for in `KUBERNETES_EXEC_INFO` (v1 when it does
/// not say).
fn exec_api_version(info: Option<String>) -> Result<&'static str> {
    let Some(info) = info else {
        return Ok(EXEC_V1);
    };
    let asked = serde_json::from_str::<serde_json::Value>(&info)
        .ok()
        .and_then(|v| v.get("apiVersion")?.as_str().map(str::to_string));
    match asked.as_deref() {
        None | Some(EXEC_V1) => Ok(EXEC_V1),
        Some(EXEC_V1BETA1) => Ok(EXEC_V1BETA1),
        Some(other) => Err(Error::failure(format!(
            "{} asks for an ExecCredential of version {:?}, which mycli does not speak",
            env::KUBERNETES_EXEC_INFO,
            crate::auth::http::clean(other)
        ))
        .with_hint(format!(
            "set `apiVersion: {EXEC_V1}` (or v1beta1) in the kubeconfig's exec entry"
        ))),
    }
}

/// `mycli token -o json`: the shape `az account get-access-token` users expect.
#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_at: String,
    context: &'a str,
    organization_id: Option<&'a str>,
}

/// A Kubernetes client-go credential plugin answer (`client.authentication.k8s.io`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredential<'a> {
    api_version: &'static str,
    kind: &'static str,
    spec: serde_json::Map<String, serde_json::Value>,
    status: ExecStatus<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus<'a> {
    token: &'a str,
    expiration_timestamp: String,
}

fn exec_credential<'a>(api_version: &'static str, token: &'a CachedToken) -> ExecCredential<'a> {
    ExecCredential {
        api_version,
        kind: "ExecCredential",
        spec: serde_json::Map::new(),
        status: ExecStatus {
            token: token.access_token.expose(),
            expiration_timestamp: time::rfc3339(token.expires_at),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_credential_version_follows_kubectl() {
        assert_eq!(exec_api_version(None).unwrap(), EXEC_V1);
        let beta = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
        assert_eq!(exec_api_version(Some(beta.into())).unwrap(), EXEC_V1BETA1);
        assert_eq!(exec_api_version(Some("not json".into())).unwrap(), EXEC_V1);
        let alpha = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        assert!(exec_api_version(Some(alpha.into())).is_err());
    }
}
