//! HTTP to the identity provider: one client with a timeout, `-v` logging with secrets
//! redacted, and every way an IdP can fail turned into one clear error.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::env;
use crate::error::{Error, Result};
pub use crate::text::clean;
use crate::time::Clock;
use crate::ui::Ui;

/// Parameter names whose values are never shown.
const SECRET_FIELDS: &[&str] = &[
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "id_token",
    "device_code",
    "token",
    "client_secret",
    "pending_authentication_token",
    "state",
    "nonce",
    "session_id",
];

pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    ui: Ui,
    /// What an answer's `expires_in` counts from.
    pub clock: Clock,
    /// How many seconds the IdP's clock is ahead of this machine's, from the `Date` header of
    /// its last answer; 0 when unknown or within `CLOCK_TOLERANCE`.
    server_offset: std::sync::atomic::AtomicI64,
}

/// Clock differences up to this many seconds are ignored: a `Date` header has one-second
/// resolution and comes after the network's delay, and an `exp` is then kept exactly.
const CLOCK_TOLERANCE: i64 = 30;

/// An error answer of the IdP, in either of WorkOS's shapes or RFC 6749's.
#[derive(Debug, Clone)]
pub struct IdpError {
    pub status: u16,
    /// `error` (OAuth shape) or `code` (WorkOS shape).
    pub code: Option<String>,
    /// `error_description` or `message`.
    pub description: Option<String>,
    pub body: Value,
}

impl IdpError {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// A 400 or 401 that gives no error code: from a token endpoint, the grant was refused.
    pub fn refused_without_reason(&self) -> bool {
        self.code.is_none() && matches!(self.status, 400 | 401)
    }

    /// "invalid_grant: Refresh token already used", or the HTTP status.
    pub fn summary(&self) -> String {
        match (&self.code, &self.description) {
            (Some(c), Some(d)) => format!("{c}: {d}"),
            (Some(c), None) => c.clone(),
            (None, Some(d)) => format!("HTTP {}: {d}", self.status),
            (None, None) => format!("HTTP {}", self.status),
        }
    }
}

/// What a call to the IdP produced.
pub enum Reply<T> {
    Ok(T),
    /// The IdP answered with a structured error (4xx with a JSON error body).
    Refused(IdpError),
}

impl Http {
    /// The one HTTP client of a command (`App::http`).
    pub fn new(ui: Ui, clock: Clock) -> Result<Http> {
        let timeout = env::seconds(env::HTTP_TIMEOUT, 30.0);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // Servers close idle keep-alive connections (Node and Apache after 5 s). A device
            // poll every 5 s reusing one races that close and fails the sign-in, so only
            // connections idle for less than 2 s are reused.
            .pool_idle_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mycli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::failure(format!("could not set up HTTP: {e}")))?;
        Ok(Http {
            client,
            timeout,
            ui,
            clock,
            server_offset: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Seconds the IdP's clock runs ahead of this machine's (negative: behind), as its last
    /// answer's `Date` header showed; 0 when that is unknown or too small to matter. Expiry
    /// times the IdP states in its own clock (`exp`) are moved by it, so a machine whose clock
    /// is off neither serves a dead token nor refuses a fresh one.
    pub fn server_offset(&self) -> i64 {
        self.server_offset
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Remembers the offset the answer's `Date` header shows; an answer without a readable one
    /// resets it to 0, so the `exp` of a token answer is never moved by another answer's clock
    /// (a discovery document a CDN cached an hour ago carries that hour-old `Date`).
    fn note_server_date(&self, headers: &reqwest::header::HeaderMap) {
        let Some(date) = headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::time::parse_http_date)
        else {
            self.server_offset
                .store(0, std::sync::atomic::Ordering::Relaxed);
            return;
        };
        let offset = date.saturating_sub(self.clock.now());
        let offset = if offset.unsigned_abs() > CLOCK_TOLERANCE.unsigned_abs() {
            self.ui.debug(&format!(
                "the identity provider's clock is {offset} s {} this machine's; its expiry times are corrected for it",
                if offset > 0 { "ahead of" } else { "behind" }
            ));
            offset.clamp(-crate::time::MAX_UNIX, crate::time::MAX_UNIX)
        } else {
            0
        };
        self.server_offset
            .store(offset, std::sync::atomic::Ordering::Relaxed);
    }

    /// `-v`: the request line and its form fields, secrets redacted.
    fn log_post(&self, url: &str, fields: &[(&str, &str)]) {
        if self.ui.verbose {
            let shown: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", redact_value(k, v)))
                .collect();
            self.ui
                .debug(&format!("> POST {} [{}]", redact_url(url), shown.join("&")));
        }
    }

    /// POSTs a form and decodes a JSON answer.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<Reply<T>> {
        self.log_post(url, fields);
        let request = self.client.post(url).form(fields);
        self.send(url, request).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<Reply<T>> {
        self.ui.debug(&format!("> GET {}", redact_url(url)));
        let request = self.client.get(url).header("accept", "application/json");
        self.send(url, request).await
    }

    /// A form POST whose success body does not matter (RFC 7009 answers 200 with no body).
    pub async fn post_form_status(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<std::result::Result<u16, IdpError>> {
        self.log_post(url, fields);
        let response = self
            .with_progress(url, self.client.post(url).form(fields).send())
            .await
            .map_err(|e| self.transport(url, &e))?;
        self.status_only(response).await
    }

    /// A GET whose body does not matter; any 2xx or 3xx counts as success.
    pub async fn get_status(&self, url: &str) -> Result<std::result::Result<u16, IdpError>> {
        self.ui.debug(&format!("> GET {}", redact_url(url)));
        let response = self
            .with_progress(url, self.client.get(url).send())
            .await
            .map_err(|e| self.transport(url, &e))?;
        self.status_only(response).await
    }

    /// Waits for `request`; on a terminal, says which host it is waiting for once that takes
    /// more than two seconds (an IdP that hangs was 30 s of silence).
    async fn with_progress<F: std::future::Future>(&self, url: &str, request: F) -> F::Output {
        if self.ui.quiet || !self.ui.stderr_is_terminal() {
            return request.await;
        }
        tokio::pin!(request);
        tokio::select! {
            answer = &mut request => return answer,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        self.ui.say(&format!("Contacting {}…", host_of(url)));
        request.await
    }

    async fn status_only(
        &self,
        response: reqwest::Response,
    ) -> Result<std::result::Result<u16, IdpError>> {
        let status = response.status().as_u16();
        if (200..400).contains(&status) {
            self.ui.debug(&format!("< {status}"));
            return Ok(Ok(status));
        }
        let body = read_capped(response)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let err = idp_error(status, value);
        self.log_refusal(&err);
        Ok(Err(err))
    }

    /// `-v`: a refusal's status and error fields.
    fn log_refusal(&self, err: &IdpError) {
        self.ui.debug(&format!(
            "< {} error={} error_description={}",
            err.status,
            err.code.as_deref().unwrap_or("-"),
            err.description.as_deref().unwrap_or("-")
        ));
    }

    /// POSTs a form whose effect the server may apply even when its answer is lost: a refresh,
    /// which rotates the refresh token. When the request was sent but no whole answer came back
    /// (a timeout, a dropped connection, a cut-off body), it is sent once more with the same
    /// fields: WorkOS answers a replay inside its grace window (~30 s) with the same rotated
    /// pair. Not after Ctrl-C: the user asked to stop.
    pub async fn post_form_lost_answer_retried<T: DeserializeOwned>(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<Reply<T>> {
        self.log_post(url, fields);
        match self.attempt(url, self.client.post(url).form(fields)).await {
            Err(Failure::Lost(err)) if !crate::interrupt::pending() => {
                self.ui.debug(&format!(
                    "the answer was lost ({}); sending the same request once more",
                    err.message
                ));
                self.log_post(url, fields);
                self.send(url, self.client.post(url).form(fields)).await
            }
            other => other.map_err(Failure::into_error),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply<T>> {
        self.attempt(url, request)
            .await
            .map_err(Failure::into_error)
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply<T>, Failure> {
        let lost = |e: &reqwest::Error| {
            let err = self.transport(url, e);
            if e.is_connect() {
                Failure::Other(err)
            } else {
                Failure::Lost(err)
            }
        };
        let response = self
            .with_progress(url, request.header("accept", "application/json").send())
            .await
            .map_err(|e| lost(&e))?;
        self.note_server_date(response.headers());
        let status = response.status().as_u16();
        let html = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("html"));
        let host = host_of(url);
        let body = match read_capped(response).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                return Err(Failure::Other(
                    Error::failure(format!(
                        "{host} sent an answer larger than {} KiB; refusing it",
                        MAX_BODY / 1024
                    ))
                    .with_hint(issuer_hint()),
                ));
            }
            Err(e) => return Err(lost(&e)),
        };
        let looks_html = html || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        self.decode(&host, status, looks_html, &body)
            .map_err(Failure::Other)
    }

    /// A whole answer: the JSON of a 2xx, or the IdP's refusal, or a clear error.
    fn decode<T: DeserializeOwned>(
        &self,
        host: &str,
        status: u16,
        looks_html: bool,
        body: &[u8],
    ) -> Result<Reply<T>> {
        if (200..300).contains(&status) {
            self.ui.debug(&format!("< {status}"));
            if looks_html {
                return Err(Error::failure(format!(
                    "{host} answered with an HTML page instead of JSON (HTTP {status})"
                ))
                .with_hint(issuer_hint())
                .transient());
            }
            return serde_json::from_slice::<T>(body)
                .map(Reply::Ok)
                .map_err(|e| {
                    let what = if e.is_eof() {
                        "a truncated JSON answer"
                    } else {
                        "a JSON answer mycli does not understand"
                    };
                    Error::failure(format!("{host} sent {what} (HTTP {status})"))
                        .with_hint(issuer_hint())
                });
        }

        let value: Option<Value> = serde_json::from_slice(body).ok();
        match value {
            Some(value) if value.is_object() && status < 500 => {
                let err = idp_error(status, value);
                self.log_refusal(&err);
                Ok(Reply::Refused(err))
            }
            // A 400 or 401 without a JSON body is still a refusal (Glewlwyd answers a spent
            // refresh token so), only without a reason.
            _ if matches!(status, 400 | 401) && !looks_html => {
                self.ui.debug(&format!("< {status} (no error body)"));
                Ok(Reply::Refused(IdpError {
                    status,
                    code: None,
                    description: None,
                    body: Value::Null,
                }))
            }
            _ => {
                self.ui.debug(&format!("< {status}"));
                let shape = if looks_html { " with an HTML page" } else { "" };
                let msg = if status >= 500 {
                    format!(
                        "{host} failed with HTTP {status}{shape}; the identity provider may be down"
                    )
                } else {
                    format!("{host} answered HTTP {status}{shape} instead of JSON")
                };
                let err = Error::failure(msg).with_hint(if status >= 500 {
                    "try again in a moment".to_string()
                } else {
                    issuer_hint()
                });
                Err(if status >= 500 || looks_html {
                    err.transient()
                } else {
                    err
                })
            }
        }
    }

    fn transport(&self, url: &str, err: &reqwest::Error) -> Error {
        self.transport_error(url, err).transient()
    }

    fn transport_error(&self, url: &str, err: &reqwest::Error) -> Error {
        let host = host_of(url);
        // reqwest's text names the full URL, query and all (a WorkOS session_id).
        let mut detail = chain(err);
        if let Some(u) = err.url() {
            detail = detail.replace(u.as_str(), &redact_url(u.as_str()));
        }
        self.ui.debug(&format!("< transport error: {detail}"));
        let detail = detail.to_lowercase();
        if err.is_timeout() {
            Error::failure(format!(
                "{host} did not answer within {} s",
                self.timeout.as_secs_f64()
            ))
            .with_hint(format!(
                "the identity provider may be down or slow; try again, or raise {}",
                env::HTTP_TIMEOUT
            ))
        } else if let Some((why, hint)) = tls_failure(&detail) {
            Error::failure(format!("TLS failure talking to {host}: {why}")).with_hint(hint)
        } else if err.is_body() || err.is_decode() {
            Error::failure(format!("the answer from {host} was cut off")).with_hint(
                "the identity provider or a proxy closed the connection early; try again",
            )
        } else if err.is_connect()
            && (detail.contains("dns error")
                || detail.contains("failed to lookup address")
                || detail.contains("name or service not known")
                || detail.contains("no such host"))
        {
            Error::failure(format!("could not resolve {host}: no such host"))
                .with_hint("check the spelling of the issuer URL and your DNS / network connection")
        } else if err.is_connect() {
            Error::failure(format!("could not connect to {host}"))
                .with_hint("check your network connection and the issuer URL")
        } else {
            Error::failure(format!("the connection to {host} failed"))
                .with_hint("check your network connection and try again")
        }
    }
}

/// What went wrong in a TLS handshake, and what to check, read from the lowercased error chain;
/// `None` when the failure was not TLS.
fn tls_failure(detail: &str) -> Option<(&'static str, &'static str)> {
    let has = |words: &[&str]| words.iter().any(|w| detail.contains(w));
    if has(&["certificate", "unknownissuer"]) {
        Some((
            "the server's certificate was not accepted",
            "check the issuer URL; a proxy that intercepts TLS needs its CA in the system trust store",
        ))
    } else if has(&["corrupt message", "invalidcontenttype"]) {
        // rustls read something that is not TLS: an https:// URL at a plain-http port.
        Some((
            "the server does not speak TLS",
            "check the issuer URL's scheme and port",
        ))
    } else if has(&[
        "tls",
        "handshake",
        "fatal alert",
        "peer is incompatible",
        "peer misbehaved",
    ]) {
        Some((
            "the TLS handshake failed",
            "check the issuer URL; a proxy that intercepts TLS needs its CA in the system trust store",
        ))
    } else {
        None
    }
}

/// Why a request produced no answer to use.
enum Failure {
    /// The request may have reached the server, but no whole answer came back.
    Lost(Error),
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Lost(e) | Failure::Other(e) => e,
        }
    }
}

/// The most mycli reads of one answer: IdP answers are small, and a hostile or broken server
/// must not make mycli buffer without bound.
const MAX_BODY: usize = 1024 * 1024;

/// The body, or `None` when it is larger than `MAX_BODY`.
async fn read_capped(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn issuer_hint() -> String {
    "check the issuer URL (--issuer, MYCLI_ISSUER or [provider] in config.toml)".into()
}

/// Both error shapes: `{error, error_description}` and `{code, message}`.
fn idp_error(status: u16, body: Value) -> IdpError {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(clean);
    IdpError {
        status,
        code: text("error").or_else(|| text("code")),
        description: text("error_description")
            .or_else(|| text("message"))
            .map(|d| scrub_quoted(&d)),
        body,
    }
}

/// An IdP's error text with quoted token-like values (no spaces, 6 characters or more)
/// replaced: "The code 'Xy7…' has expired" must not put the code on the screen or in a log.
fn scrub_quoted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '\'' | '"' | '`')
            && let Some(len) = chars[i + 1..].iter().position(|&q| q == c)
        {
            let inner = &chars[i + 1..i + 1 + len];
            if inner.len() >= 6 && !inner.iter().any(|c| c.is_whitespace()) {
                out.push(c);
                out.push_str("[redacted]");
                out.push(c);
                i += len + 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "the identity provider".into())
}

fn redact_value<'a>(name: &str, value: &'a str) -> &'a str {
    if SECRET_FIELDS.contains(&name) {
        "[redacted]"
    } else {
        value
    }
}

/// A URL with the values of secret query parameters replaced by `[redacted]`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "[unparsable URL]".into();
    };
    if parsed.query().is_none() {
        return url.to_string();
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = redact_value(&k, &v).to_string();
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string().replace("%5Bredacted%5D", "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_a_date_leaves_no_clock_offset_behind() {
        let now = 1_800_000_000;
        let http = Http::new(Ui::new(true, false), Clock::fixed(now)).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        // An hour ahead of 2027-01-15T08:00:00Z (a cached discovery answer, say).
        headers.insert("date", "Fri, 15 Jan 2027 09:00:00 GMT".parse().unwrap());
        http.note_server_date(&headers);
        assert_eq!(http.server_offset(), 3600);
        // The token endpoint's answer names no time: its `exp` must not be moved by the
        // offset of another answer.
        http.note_server_date(&reqwest::header::HeaderMap::new());
        assert_eq!(http.server_offset(), 0);
    }

    #[test]
    fn redacts_secret_query_values() {
        let u = redact_url("http://127.0.0.1:1/logout?session_id=abc&return_to=x&code=zzz");
        assert!(!u.contains("abc") && !u.contains("zzz"), "{u}");
        assert!(u.contains("return_to=x"));
    }

    #[test]
    fn quoted_values_in_error_text_are_scrubbed() {
        assert_eq!(
            scrub_quoted("The code 'Xy7abcDEF123' has expired"),
            "The code '[redacted]' has expired"
        );
        assert_eq!(
            scrub_quoted("The user's session isn't \"valid\""),
            "The user's session isn't \"valid\""
        );
        assert_eq!(scrub_quoted("it's 'abcdefgh"), "it's 'abcdefgh");
    }

    #[test]
    fn clean_drops_invisible_characters() {
        assert_eq!(clean("alice\u{202e}b\u{200b}@x.com\n"), "aliceb@x.com ");
    }

    #[test]
    fn reads_both_error_shapes() {
        let a = idp_error(
            400,
            serde_json::json!({"error":"invalid_grant","error_description":"nope"}),
        );
        assert!(a.is("invalid_grant"));
        let b = idp_error(
            403,
            serde_json::json!({"code":"organization_selection_required","message":"pick"}),
        );
        assert!(b.is("organization_selection_required"));
        assert_eq!(b.summary(), "organization_selection_required: pick");
    }
}
