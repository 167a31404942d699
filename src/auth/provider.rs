//! The two kinds of provider behind one type: WorkOS User Management (fixed paths, no
//! `expires_in`, two error shapes) and any OpenID Connect provider (discovery).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{self, Http, IdpError, Reply};
use super::{claim_text, claims};
use crate::env;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::time;
use crate::vocab::{Impersonator, ProviderDefaults, ProviderKind};

pub const WORKOS_BASE: &str = "https://api.workos.com";
pub const OIDC_SCOPES: &str = "openid profile email offline_access";
const DEFAULT_ORG_CLAIM: &str = "org_id";

/// Which IdP, where, and as which client.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub issuer: String,
    pub client_id: String,
    pub org_claim: String,
}

impl ProviderConfig {
    /// Flag, then environment, then `[provider]` in config.toml.
    pub fn resolve(
        kind: Option<ProviderKind>,
        issuer: Option<&str>,
        client_id: Option<&str>,
        defaults: &ProviderDefaults,
    ) -> Result<ProviderConfig> {
        let kind = match kind {
            Some(k) => k,
            None => match env::var(env::PROVIDER) {
                Some(text) => ProviderKind::parse(&text).ok_or_else(|| {
                    Error::usage(format!("{}={text:?} is not a provider kind", env::PROVIDER))
                        .with_hint(format!("use {}", ProviderKind::NAMES.join(" or ")))
                })?,
                None => defaults.kind.unwrap_or(ProviderKind::Workos),
            },
        };
        let issuer = issuer
            .map(str::to_string)
            .or_else(|| env::var(env::ISSUER))
            .or_else(|| defaults.issuer.clone());
        let issuer = match (issuer, kind) {
            (Some(i), _) => i,
            (None, ProviderKind::Workos) => WORKOS_BASE.to_string(),
            (None, ProviderKind::Oidc) => {
                return Err(Error::usage("an OIDC provider needs an issuer URL").with_hint(
                    "pass --issuer URL, set MYCLI_ISSUER, or set provider.issuer in config.toml",
                ));
            }
        };
        let client_id = client_id
            .map(str::to_string)
            .or_else(|| env::var(env::CLIENT_ID))
            .or_else(|| env::var(env::WORKOS_CLIENT_ID))
            .or_else(|| defaults.client_id.clone())
            .ok_or_else(|| {
                Error::usage("no OAuth client id is configured").with_hint(
                    "pass --client-id ID, set MYCLI_CLIENT_ID, or set provider.client-id in config.toml",
                )
            })?;
        Ok(ProviderConfig {
            kind,
            issuer: check_issuer(&issuer)?,
            client_id,
            org_claim: org_claim(defaults),
        })
    }

    /// The provider a session was signed in with (its kind, issuer and client), whatever the
    /// defaults are today.
    pub fn of_session(
        kind: ProviderKind,
        issuer: &str,
        client_id: &str,
        defaults: &ProviderDefaults,
    ) -> ProviderConfig {
        ProviderConfig {
            kind,
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            org_claim: org_claim(defaults),
        }
    }
}

impl ProviderConfig {
    /// With the organization claim a context remembers (OIDC contexts record it), instead of
    /// today's default.
    pub fn remembering(mut self, org_claim: Option<&str>) -> ProviderConfig {
        if let Some(claim) = org_claim {
            self.org_claim = claim.to_string();
        }
        self
    }
}

fn org_claim(defaults: &ProviderDefaults) -> String {
    env::var(env::ORG_CLAIM)
        .or_else(|| defaults.org_claim.clone())
        .unwrap_or_else(|| DEFAULT_ORG_CLAIM.to_string())
}

/// The hint under an answer that broke the protocol: nothing the user typed can fix it.
const MISBEHAVING: &str = "run `mycli login` again; if it repeats, the identity provider (or a proxy in \
     front of it) is misbehaving: tell its administrators";

/// An issuer must be https, or plain http on a loopback host. Returns it without a trailing `/`.
pub fn check_issuer(issuer: &str) -> Result<String> {
    let url = url::Url::parse(issuer).map_err(|e| {
        Error::usage(format!("the issuer {issuer:?} is not a valid URL: {e}"))
            .with_hint("it looks like https://idp.example.com")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(Error::usage(format!(
                "refusing the plain-http issuer {issuer}: tokens would cross the network unencrypted"
            ))
            .with_hint("use https:// (plain http is accepted only for 127.0.0.1, [::1] and localhost)"));
        }
        other => {
            return Err(Error::usage(format!(
                "the issuer must be an https:// URL, not {other}://"
            ))
            .with_hint("it looks like https://idp.example.com"));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::usage(format!(
            "the issuer {issuer} must not have a query or fragment"
        ))
        .with_hint(
            "use the issuer URL exactly as the provider publishes it, without ?... or #...",
        ));
    }
    Ok(issuer.trim_end_matches('/').to_string())
}

/// An endpoint a discovery document publishes (`name` is its key): an absolute https URL, or
/// plain http on loopback only for a loopback issuer. An https issuer pointing at
/// `http://127.0.0.1` would send the refresh token in clear text to whatever local process
/// holds that port. A query is kept (RFC 6749 §3.1 allows one), a fragment is not.
fn check_endpoint(issuer: &str, name: &str, endpoint: &str) -> Result<()> {
    let unsafe_endpoint = |why: String| {
        Error::failure(format!(
            "the provider published an unsafe endpoint: its {name} {:?} {why}",
            http::clean(endpoint)
        ))
        .with_hint("the identity provider's discovery document is wrong; tell its administrators")
    };
    let url =
        url::Url::parse(endpoint).map_err(|e| unsafe_endpoint(format!("is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if !is_loopback(&url) => {
            return Err(unsafe_endpoint(
                "is plain http to a host that is not loopback".into(),
            ));
        }
        "http" if !issuer.starts_with("http://") => {
            return Err(unsafe_endpoint(format!(
                "is plain http, but the issuer {issuer} is https"
            )));
        }
        "http" => {}
        other => return Err(unsafe_endpoint(format!("is {other}://, not https://"))),
    }
    if url.fragment().is_some() {
        return Err(unsafe_endpoint("has a fragment (#...)".into()));
    }
    Ok(())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A signed-in session as the IdP returned it.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Unix seconds.
    pub expires_at: i64,
    pub organization_id: Option<String>,
    pub organization_name: Option<String>,
    pub user_id: String,
    pub email: Option<String>,
    /// The IdP's session id (WorkOS `sid` claim of the access token).
    pub session_id: Option<String>,
    /// WorkOS `authentication_method` (`SSO`, `Password`, ...).
    pub authentication_method: Option<String>,
    /// Who acts as the user: WorkOS `impersonator`, else the token's `act` claim.
    pub impersonator: Option<Impersonator>,
}

impl Session {
    /// The access token had expired when it arrived (a broken IdP, or a clock the `Date`
    /// header could not correct): it is never served.
    pub fn dead_on_arrival(&self, now: i64) -> Option<Error> {
        (self.expires_at <= now).then(|| {
            Error::failure(format!(
                "the identity provider issued an access token that expired at {}",
                time::rfc3339(self.expires_at)
            ))
            .with_hint("check that this machine's clock is right")
        })
    }
}

/// An impersonated session: WorkOS's `impersonator: {email, reason}`, else an RFC 8693 `act`
/// claim in the access token (`email` or `sub` of the actor).
fn impersonator(
    workos: Option<&Value>,
    access: Option<&Map<String, Value>>,
) -> Option<Impersonator> {
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(http::clean)
    };
    if let Some(email) = text(workos, "email") {
        return Some(Impersonator {
            email,
            reason: text(workos, "reason"),
        });
    }
    let act = access.and_then(|c| c.get("act"));
    text(act, "email")
        .or_else(|| text(act, "sub"))
        .map(|email| Impersonator {
            email,
            reason: None,
        })
}

/// A token endpoint answer, WorkOS's or RFC 6749's.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    id_token: Option<Secret>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<f64>,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    user: Option<WorkosUser>,
    #[serde(default)]
    authentication_method: Option<String>,
    #[serde(default)]
    impersonator: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WorkosUser {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

/// A number of seconds as IdPs send it: a JSON number, or a string holding one (Entra ID's v1
/// endpoints send `"expires_in": "3599"`). Anything else counts as absent, and what is read is
/// validated where it is used.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// RFC 8628 §3.2.
#[derive(Debug, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub expires_in: Option<f64>,
    #[serde(default, deserialize_with = "seconds")]
    pub interval: Option<f64>,
}

/// The discovery document. The three required members are optional here so that a document
/// without one is reported by name, not as an answer mycli does not understand.
#[derive(Debug, Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3: `true` promises an `iss` on every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<Value>,
}

/// A provider with its endpoints known.
pub struct Provider {
    pub config: ProviderConfig,
    pub authorize: String,
    pub token: String,
    pub device: Option<String>,
    pub revocation: Option<String>,
    /// WorkOS: the session logout endpoint.
    pub logout: Option<String>,
    /// The provider promised `iss` on authorization responses (RFC 9207): one without it
    /// is refused.
    pub iss_required: bool,
}

impl Provider {
    /// WorkOS paths are fixed; OIDC endpoints come from the discovery document.
    pub async fn discover(http: &Http, config: ProviderConfig) -> Result<Provider> {
        // Every use of a provider comes through here, a context's too, whose issuer is read
        // from config.toml as a hand edit left it: the rule for a typed issuer holds before
        // a refresh token is sent anywhere.
        if let Err(err) = check_issuer(&config.issuer) {
            return Err(Error::failure(err.message).with_hint(
                "correct the context's `issuer` in config.toml (https://, plain http only on \
                 loopback), or sign in again",
            ));
        }
        match config.kind {
            ProviderKind::Workos => {
                let base = &config.issuer;
                Ok(Provider {
                    authorize: format!("{base}/user_management/authorize"),
                    token: format!("{base}/user_management/authenticate"),
                    device: Some(format!("{base}/user_management/authorize/device")),
                    revocation: None,
                    logout: Some(format!("{base}/user_management/sessions/logout")),
                    iss_required: false,
                    config,
                })
            }
            ProviderKind::Oidc => {
                let url = format!("{}/.well-known/openid-configuration", config.issuer);
                let doc: Discovery = match http.get_json(&url).await? {
                    Reply::Ok(doc) => doc,
                    Reply::Refused(err) => {
                        if let Some(mismatch) = kind_mismatch(http, &config).await {
                            return Err(mismatch);
                        }
                        return Err(Error::failure(format!(
                            "the OpenID configuration at {url} could not be read ({})",
                            err.summary()
                        ))
                        .with_hint("check the issuer URL"));
                    }
                };
                let required = |name: &str, value: Option<String>| {
                    value.ok_or_else(|| {
                        Error::failure(format!("the OpenID configuration at {url} has no {name}"))
                            .with_hint(
                                "the identity provider's discovery document is incomplete; tell \
                             its administrators",
                            )
                    })
                };
                let issuer = required("issuer", doc.issuer)?;
                let authorization_endpoint =
                    required("authorization_endpoint", doc.authorization_endpoint)?;
                let token_endpoint = required("token_endpoint", doc.token_endpoint)?;
                if issuer.trim_end_matches('/') != config.issuer {
                    return Err(Error::failure(format!(
                        "the discovery document names the issuer {:?}, not {:?}",
                        http::clean(&issuer),
                        config.issuer
                    ))
                    .with_hint("use the issuer URL exactly as the provider publishes it"));
                }
                if let Some(methods) = &doc.code_challenge_methods_supported
                    && !methods.iter().any(|m| m == "S256")
                {
                    return Err(Error::failure(
                        "the provider does not support PKCE with S256, which mycli requires",
                    )
                    .with_hint(
                        "ask the identity provider's administrators to enable PKCE (S256) for \
                         this client",
                    ));
                }
                for (name, endpoint) in [
                    ("authorization_endpoint", Some(&authorization_endpoint)),
                    ("token_endpoint", Some(&token_endpoint)),
                    (
                        "device_authorization_endpoint",
                        doc.device_authorization_endpoint.as_ref(),
                    ),
                    ("revocation_endpoint", doc.revocation_endpoint.as_ref()),
                ] {
                    if let Some(endpoint) = endpoint {
                        check_endpoint(&config.issuer, name, endpoint)?;
                    }
                }
                let _ = doc.end_session_endpoint;
                Ok(Provider {
                    authorize: authorization_endpoint,
                    token: token_endpoint,
                    device: doc.device_authorization_endpoint,
                    revocation: doc.revocation_endpoint,
                    logout: None,
                    iss_required: doc.authorization_response_iss_parameter_supported
                        == Some(Value::Bool(true)),
                    config,
                })
            }
        }
    }

    /// The URL the browser opens.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        challenge: &str,
        state: &Secret,
        nonce: &Secret,
        org: Option<&str>,
        login_hint: Option<&str>,
    ) -> Result<String> {
        let mut url = url::Url::parse(&self.authorize)
            .map_err(|e| Error::failure(format!("bad authorization endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", state.expose());
            match self.config.kind {
                ProviderKind::Workos => {
                    q.append_pair("provider", "authkit");
                    if let Some(org) = org {
                        q.append_pair("organization_id", org);
                    }
                }
                ProviderKind::Oidc => {
                    q.append_pair("scope", OIDC_SCOPES)
                        .append_pair("nonce", nonce.expose());
                    if let Some(org) = org {
                        q.append_pair("organization", org);
                    }
                }
            }
            if let Some(hint) = login_hint {
                q.append_pair("login_hint", hint);
            }
        }
        Ok(url.to_string())
    }

    pub async fn exchange_code(
        &self,
        http: &Http,
        code: &Secret,
        verifier: &Secret,
        redirect_uri: &str,
        nonce: &Secret,
    ) -> Result<Reply<Session>> {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.config.client_id.as_str()),
            ("code", code.expose()),
            ("code_verifier", verifier.expose()),
        ];
        if self.config.kind == ProviderKind::Oidc {
            fields.push(("redirect_uri", redirect_uri));
        }
        self.token_request(http, &fields, Some(nonce)).await
    }

    pub async fn device_start(
        &self,
        http: &Http,
        org: Option<&str>,
    ) -> Result<DeviceAuthorization> {
        let url = self.device.as_deref().ok_or_else(|| {
            Error::failure("the provider does not offer the device code flow")
                .with_hint("sign in with the browser instead (drop --device, or set BROWSER)")
        })?;
        let mut fields = vec![("client_id", self.config.client_id.as_str())];
        if self.config.kind == ProviderKind::Oidc {
            fields.push(("scope", OIDC_SCOPES));
            if let Some(org) = org {
                fields.push(("organization", org));
            }
        } else if let Some(org) = org {
            fields.push(("organization_id", org));
        }
        match http.post_form::<DeviceAuthorization>(url, &fields).await? {
            Reply::Ok(d) => Ok(d),
            Reply::Refused(err) => Err(match kind_mismatch(http, &self.config).await {
                Some(mismatch) => mismatch,
                None => refused("could not start the device sign-in", &err),
            }),
        }
    }

    pub async fn device_poll(&self, http: &Http, device_code: &Secret) -> Result<Reply<Session>> {
        let fields = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", self.config.client_id.as_str()),
            ("device_code", device_code.expose()),
        ];
        self.token_request(http, &fields, None).await
    }

    /// WorkOS: completes a pending authentication for one organization of the user.
    pub async fn select_organization(
        &self,
        http: &Http,
        pending: &Secret,
        org: &str,
    ) -> Result<Reply<Session>> {
        let fields = [
            (
                "grant_type",
                "urn:workos:oauth:grant-type:organization-selection",
            ),
            ("client_id", self.config.client_id.as_str()),
            ("pending_authentication_token", pending.expose()),
            ("organization_id", org),
        ];
        self.token_request(http, &fields, None).await
    }

    /// Exchanges a refresh token. WorkOS is told the organization, so the new access token
    /// is scoped to the context's organization and not to the session's most recent one.
    pub async fn refresh(
        &self,
        http: &Http,
        refresh_token: &Secret,
        org: Option<&str>,
    ) -> Result<Reply<Session>> {
        let mut fields = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.config.client_id.as_str()),
            ("refresh_token", refresh_token.expose()),
        ];
        if let (ProviderKind::Workos, Some(org)) = (self.config.kind, org) {
            fields.push(("organization_id", org));
        }
        match http
            .post_form_lost_answer_retried::<TokenResponse>(&self.token, &fields)
            .await?
        {
            Reply::Ok(resp) => Ok(Reply::Ok(self.session(
                resp,
                Answering::Refresh(org),
                http.clock.now(),
                http.server_offset(),
            )?)),
            Reply::Refused(err) => Ok(Reply::Refused(err)),
        }
    }

    async fn token_request(
        &self,
        http: &Http,
        fields: &[(&str, &str)],
        nonce: Option<&Secret>,
    ) -> Result<Reply<Session>> {
        match http.post_form::<TokenResponse>(&self.token, fields).await? {
            Reply::Ok(resp) => Ok(Reply::Ok(self.session(
                resp,
                Answering::SignIn(nonce),
                http.clock.now(),
                http.server_offset(),
            )?)),
            Reply::Refused(err) => Ok(Reply::Refused(err)),
        }
    }

    /// Normalizes a token response: identity, organization, expiry. `offset`: how far the
    /// IdP's clock runs ahead of ours (`Http::server_offset`); times the IdP states in its own
    /// clock are moved into ours.
    fn session(
        &self,
        resp: TokenResponse,
        answering: Answering,
        now: i64,
        offset: i64,
    ) -> Result<Session> {
        let nonce = match answering {
            Answering::SignIn(nonce) => nonce,
            Answering::Refresh(_) => None,
        };
        let access = claims(resp.access_token.expose());
        let id = match &resp.id_token {
            Some(t) => {
                let c = claims(t.expose()).ok_or_else(|| {
                    Error::failure("the provider sent an ID token that is not a JWT")
                        .with_hint(MISBEHAVING)
                })?;
                self.check_id_token(&c, nonce, now.saturating_add(offset))?;
                Some(c)
            }
            None => None,
        };
        let claim = |name: &str| {
            claim_text(id.as_ref(), name).or_else(|| claim_text(access.as_ref(), name))
        };
        for (what, token) in [
            ("an access token", Some(&resp.access_token)),
            ("a refresh token", resp.refresh_token.as_ref()),
        ] {
            if token.is_some_and(|t| !is_b64token(t.expose())) {
                return Err(Error::failure(format!(
                    "the identity provider sent {what} with characters a bearer token cannot \
                     have (RFC 6750); refusing it, nothing was stored"
                ))
                .with_hint("the identity provider, or a proxy in front of it, is misbehaving; tell its administrators"));
            }
        }
        let exp = access
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_f64)
            .map(|exp| exp - offset as f64);
        // At or before `now` when the token was dead on arrival: login refuses it, a refresh
        // saves the rotated secret first and then refuses it (`Session::dead_on_arrival`).
        let expires_at = expiry(now, resp.expires_in, exp);
        let (organization_id, user_id, email) = match self.config.kind {
            ProviderKind::Workos => {
                let org = resp.organization_id.or_else(|| claim("org_id"));
                let (id, email) = match resp.user {
                    Some(u) => (u.id, u.email),
                    None => (claim("sub").unwrap_or_default(), claim("email")),
                };
                (org, id, email)
            }
            ProviderKind::Oidc => (
                claim(&self.config.org_claim),
                claim("sub").unwrap_or_default(),
                claim("email"),
            ),
        };
        // A refresh answer with an opaque access token and no ID token says nothing about whom
        // or which organization it is for: it is for the grant it refreshed, whose identity
        // and organization the context keeps. One that states claims is held to them.
        let says_nothing = id.is_none() && access.is_none();
        let organization_id = match answering {
            Answering::Refresh(org) if says_nothing && self.config.kind == ProviderKind::Oidc => {
                org.map(str::to_string)
            }
            _ => organization_id,
        };
        if user_id.is_empty() && !matches!(answering, Answering::Refresh(_)) {
            return Err(Error::failure(
                "the provider's answer does not say who signed in (no user id)",
            )
            .with_hint(MISBEHAVING));
        }
        // Everything stored from the IdP is printed later: no control characters.
        let clean = |s: String| http::clean(&s);
        Ok(Session {
            access_token: resp.access_token,
            refresh_token: resp.refresh_token,
            expires_at,
            organization_id,
            organization_name: claim("org_name").map(clean),
            user_id: clean(user_id),
            email: email.map(clean),
            session_id: claim_text(access.as_ref(), "sid").map(clean),
            authentication_method: resp.authentication_method.map(clean),
            impersonator: impersonator(resp.impersonator.as_ref(), access.as_ref()),
        })
    }

    fn check_id_token(
        &self,
        c: &Map<String, Value>,
        nonce: Option<&Secret>,
        now: i64,
    ) -> Result<()> {
        let iss = c.get("iss").and_then(Value::as_str).unwrap_or_default();
        if iss.trim_end_matches('/') != self.config.issuer {
            return Err(Error::failure(format!(
                "the ID token was issued by {:?}, not by {:?}; refusing it",
                http::clean(iss),
                self.config.issuer
            ))
            .with_hint("use the issuer URL exactly as the provider publishes it (--issuer)"));
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => *a == self.config.client_id,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.client_id)),
            _ => false,
        };
        // OIDC Core §3.1.3.7: an `azp` present must name this client (a token for several
        // audiences may have been issued to another of them).
        let azp_ok = c
            .get("azp")
            .is_none_or(|azp| azp.as_str() == Some(&self.config.client_id));
        if !aud_ok || !azp_ok {
            return Err(Error::failure(
                "the ID token is not meant for this client (aud, azp); refusing it",
            )
            .with_hint(format!(
                "check the client id ({:?}): it must be the one registered at the identity provider",
                http::clean(&self.config.client_id)
            )));
        }
        if let Some(expected) = nonce
            && c.get("nonce").and_then(Value::as_str) != Some(expected.expose())
        {
            return Err(Error::failure(
                "the ID token does not carry this sign-in's nonce; refusing it",
            )
            .with_hint(MISBEHAVING));
        }
        if let Some(exp) = c.get("exp").and_then(Value::as_f64)
            && (exp as i64).saturating_add(EXPIRY_SKEW) < now
        {
            return Err(
                Error::failure("the ID token has already expired; refusing it")
                    .with_hint("check that this machine's clock is right"),
            );
        }
        Ok(())
    }

    /// WorkOS: ends the session named by the access token's `sid` claim.
    pub async fn workos_logout(
        &self,
        http: &Http,
        sid: &str,
    ) -> Result<std::result::Result<(), String>> {
        let Some(base) = &self.logout else {
            return Ok(Err("the provider has no logout endpoint".into()));
        };
        let mut url =
            url::Url::parse(base).map_err(|e| Error::failure(format!("bad logout URL: {e}")))?;
        url.query_pairs_mut().append_pair("session_id", sid);
        Ok(match http.get_status(url.as_str()).await? {
            Ok(_) => Ok(()),
            Err(err) => Err(err.summary()),
        })
    }

    /// RFC 7009 revocation of a token; `Ok(Err(..))` says why the server did not confirm.
    pub async fn revoke(
        &self,
        http: &Http,
        token: &Secret,
        hint: &str,
    ) -> Result<std::result::Result<(), IdpError>> {
        let Some(url) = &self.revocation else {
            return Ok(Err(IdpError {
                status: 0,
                code: None,
                description: Some("the provider offers no revocation endpoint".into()),
                body: Value::Null,
            }));
        };
        let fields = [
            ("token", token.expose()),
            ("token_type_hint", hint),
            ("client_id", self.config.client_id.as_str()),
        ];
        http.post_form_status(url, &fields)
            .await
            .map(|r| r.map(|_| ()))
    }
}

/// After a refusal that may come from talking to the wrong kind of server: a WorkOS base URL
/// that answers OpenID Connect discovery is an OIDC issuer, and an OIDC issuer without
/// discovery that serves WorkOS's JWKS for the client is a WorkOS API. Read-only probes, made
/// only once something has already failed.
pub async fn kind_mismatch(http: &Http, config: &ProviderConfig) -> Option<Error> {
    let (url, other) = match config.kind {
        ProviderKind::Workos => (
            format!("{}/.well-known/openid-configuration", config.issuer),
            ProviderKind::Oidc,
        ),
        ProviderKind::Oidc => (
            format!("{}/sso/jwks/{}", config.issuer, config.client_id),
            ProviderKind::Workos,
        ),
    };
    let looks_like_other = match config.kind {
        ProviderKind::Workos => matches!(
            http.get_json::<Discovery>(&url).await,
            Ok(Reply::Ok(d)) if d.issuer.is_some() && d.token_endpoint.is_some()
        ),
        ProviderKind::Oidc => matches!(
            http.get_json::<Value>(&url).await,
            Ok(Reply::Ok(v)) if v.get("keys").is_some_and(Value::is_array)
        ),
    };
    looks_like_other.then(|| {
        let what = match other {
            ProviderKind::Oidc => "an OpenID Connect issuer (it answers OIDC discovery)",
            ProviderKind::Workos => "a WorkOS API (it serves WorkOS's keys for this client)",
        };
        Error::usage(format!(
            "{} is {what}, but the provider kind is {}",
            config.issuer,
            config.kind.as_str()
        ))
        .with_hint(format!(
            "add `--provider {}` (or set MYCLI_PROVIDER={})",
            other.as_str(),
            other.as_str()
        ))
    })
}

/// What a token answer answers: a sign-in (whose ID token must carry the login's nonce) or a
/// refresh of a context's grant for this organization.
#[derive(Debug, Clone, Copy)]
enum Answering<'a> {
    SignIn(Option<&'a Secret>),
    Refresh(Option<&'a str>),
}

/// The longest access-token lifetime mycli believes: a day. A longer one (an `exp` in
/// milliseconds, `expires_in: 1e300`) is clamped to it, which only means an earlier refresh.
const MAX_LIFETIME: i64 = 86_400;
/// How far in the past an ID token's `exp` may lie (clock skew) before it is refused. An
/// access token gets none: its `exp` is already moved into this machine's clock by the IdP's
/// `Date`, and an expired access token is never served.
const EXPIRY_SKEW: i64 = 300;
/// The lifetime assumed when the answer says nothing.
const DEFAULT_LIFETIME: i64 = 300;

/// When an access token expires (Unix seconds), from the answer's `expires_in`, else the
/// token's `exp` claim; at or before `now` when it was dead on arrival (never before 1970).
fn expiry(now: i64, expires_in: Option<f64>, exp: Option<f64>) -> i64 {
    let latest = now.saturating_add(MAX_LIFETIME);
    if let Some(secs) = expires_in.filter(|s| s.is_finite() && *s > 0.0) {
        // `as` saturates; the value is already within 0..=MAX_LIFETIME (under a second: dead).
        return now.saturating_add(secs.min(MAX_LIFETIME as f64) as i64);
    }
    match exp.filter(|e| e.is_finite()) {
        Some(exp) if exp >= latest as f64 => latest,
        Some(exp) => (exp as i64).max(0),
        None => now.saturating_add(DEFAULT_LIFETIME),
    }
}

/// RFC 6750 §2.1 `b64token`, the only text a bearer token may be: `mycli token` prints it
/// for shells and HTTP headers, so nothing else ever reaches them.
pub fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A refused request as an error: the IdP's own code and words.
pub fn refused(what: &str, err: &IdpError) -> Error {
    let error = Error::failure(format!("{what}: {}", err.summary()));
    if err.status == 429 {
        error.with_hint("the identity provider is rate limiting; wait a minute and try again")
    } else if err.is("invalid_client") || err.is("unauthorized_client") {
        error.with_hint(
            "check the client id (--client-id, MYCLI_CLIENT_ID or provider.client-id in \
             config.toml) and that the identity provider allows this sign-in for it",
        )
    } else {
        error.with_hint(
            "run `mycli login` again; if the identity provider keeps refusing, its \
             administrators can tell why",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_b64tokens() {
        assert!(is_b64token("eyJ.a-b_c~d+e/f=="));
        for bad in [
            "",
            "==",
            "a b",
            "tok\nX-Injected: yes",
            "a\u{1b}]0;x",
            "a=b",
            "é",
        ] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_https_issuer_may_not_publish_plain_http_endpoints() {
        let check =
            |issuer: &str, endpoint: &str| check_endpoint(issuer, "token_endpoint", endpoint);
        let https = "https://idp.example.com";
        assert!(check(https, "https://idp.example.com/token").is_ok());
        assert!(check(https, "https://idp.example.com/token?p=policy").is_ok());
        assert!(check(https, "https://idp.example.com/token#x").is_err());
        assert!(check(https, "/token").is_err());
        assert!(check(https, "http://127.0.0.1:8080/token").is_err());
        assert!(check(https, "HTTP://localhost/token").is_err());
        assert!(check(https, "http://evil.example.com/token").is_err());
        let loopback = "http://127.0.0.1:4000";
        assert!(check(loopback, "http://127.0.0.1:4000/token").is_ok());
        assert!(check(loopback, "http://evil.example.com/token").is_err());
    }

    #[test]
    fn lifetimes_are_clamped_and_dead_tokens_refused() {
        let now = 1_800_000_000;
        assert_eq!(expiry(now, Some(3600.0), None), now + 3600);
        assert_eq!(expiry(now, Some(1e300), None), now + MAX_LIFETIME);
        assert_eq!(expiry(now, None, Some(1.8e12)), now + MAX_LIFETIME);
        assert_eq!(expiry(now, None, Some((now + 60) as f64)), now + 60);
        assert_eq!(expiry(now, None, Some(-1e300)), 0);
        assert_eq!(expiry(now, Some(1e-140), None), now, "dead on arrival");
        assert_eq!(expiry(now, Some(f64::NAN), None), now + DEFAULT_LIFETIME);
        assert_eq!(expiry(i64::MAX, Some(1e300), None), i64::MAX);
    }

    mod hostile_answers {
        use proptest::prelude::*;
        use serde_json::json;

        use super::*;

        fn provider() -> Provider {
            Provider {
                config: ProviderConfig {
                    kind: ProviderKind::Workos,
                    issuer: "https://idp.example.com".into(),
                    client_id: "client_test".into(),
                    org_claim: "org_id".into(),
                },
                authorize: String::new(),
                token: String::new(),
                device: None,
                revocation: None,
                logout: None,
                iss_required: false,
            }
        }

        fn jwt(claims: &Value) -> String {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.sig",
                b64.encode(br#"{"alg":"RS256"}"#),
                b64.encode(claims.to_string())
            )
        }

        fn number() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|n| json!(n)),
                prop::sample::select(vec![1e12, 1e300, -1e300, 0.0, -1.0, 3e11, 1.8e9])
                    .prop_map(|n| json!(n)),
                Just(json!("soon")),
                prop::sample::select(vec!["3600", " 60 ", "1e300", "-5", "NaN", "inf"])
                    .prop_map(|n| json!(n)),
                Just(Value::Null),
            ]
        }

        fn token_text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[A-Za-z0-9._~+/-]{1,40}=?",
                ".{0,20}",
                Just("tok\u{1b}]0;PWNED\u{7}\nX-Injected: yes".to_string()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn a_token_answer_never_panics_and_what_passes_is_sane(
                exp in number(),
                expires_in in number(),
                opaque in token_text(),
                as_jwt in any::<bool>(),
                refresh in prop::option::of(token_text()),
                offset in prop_oneof![Just(0i64), -100_000i64..100_000, Just(-time::MAX_UNIX), Just(time::MAX_UNIX)],
            ) {
                let access = if as_jwt {
                    jwt(&json!({"sub": "user_1", "org_id": "org_acme", "exp": exp, "sid": "s"}))
                } else {
                    opaque
                };
                let mut answer = json!({
                    "access_token": access,
                    "user": {"id": "user_1"},
                    "organization_id": "org_acme",
                    "expires_in": expires_in,
                });
                if let Some(r) = refresh {
                    answer["refresh_token"] = json!(r);
                }
                let Ok(resp) = serde_json::from_value::<TokenResponse>(answer) else {
                    return Ok(());
                };
                let now = 1_800_000_000;
                if let Ok(session) = provider().session(resp, Answering::SignIn(None), now, offset) {
                    prop_assert!(is_b64token(session.access_token.expose()));
                    prop_assert!(session.refresh_token.iter().all(|r| is_b64token(r.expose())));
                    prop_assert!(session.expires_at >= 0);
                    prop_assert!(session.expires_at <= now + MAX_LIFETIME + 1);
                    let _ = time::rfc3339(session.expires_at);
                }
            }
        }
    }
}
