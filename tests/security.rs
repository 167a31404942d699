//! What a hostile or broken identity provider can and cannot make mycli do: print terminal
//! escapes, buffer without bound, open non-web URLs, accept tokens meant for someone else.
//! Each test runs the real binary against a scripted HTTP server in this process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::http::{self, Request, Response};
use common::*;
use serde_json::{Value, json};

/// Serves `script` on 127.0.0.1, one request per connection; returns the base URL.
fn hostile_idp(script: impl Fn(&Request) -> Response + Send + Sync + 'static) -> String {
    http::serve(script).base
}

/// An unsigned JWT with these claims (mycli reads claims of tokens fresh from the token
/// endpoint; it does not verify their signature).
fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn assert_no_terminal_control(run: &Run) {
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what} carries control characters from the IdP: {text:?}"
        );
    }
}

/// The run ended with one `error:` line and a `hint:` line under it (lines before them, such as
/// the browser notice, are progress).
fn assert_error_and_hint(run: &Run) {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .collect();
    assert!(
        lines.len() == 2 && lines[1].starts_with("hint: "),
        "one error line and a hint: {run:#?}"
    );
}

/// A well-formed device authorization answer.
fn device_authorization() -> Value {
    json!({"device_code": "dc", "user_code": "BCDF-GHJK",
        "verification_uri": "https://idp.example.com/device",
        "expires_in": 30, "interval": 1})
}

fn workos_sandbox(base: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("MYCLI_ISSUER", base)
        .set("MYCLI_CLIENT_ID", "client_test");
    sb
}

#[test]
fn terminal_escapes_from_the_idp_never_reach_the_terminal() {
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            Response::json(json!({
                "device_code": "dc", "user_code": "EVIL\u{1b}[2J\u{1b}]0;pwned\u{7}-CODE",
                "verification_uri": "https://idp.example.com/\u{1b}[31mdevice\u{202e}\u{200b}",
                "expires_in": 30, "interval": 1
            }))
        } else {
            Response::new(
                400,
                "application/json",
                json!({"error": "access_denied\u{1b}[5m",
                    "error_description": "no\u{1b}[2J\rway"})
                .to_string(),
            )
        }
    });
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("EVIL"), "{run:#?}");
    assert_no_terminal_control(&run);
    // Nor bidi overrides or zero-width characters in the URL the user is told to open.
    assert!(
        !run.stderr.contains('\u{202e}') && !run.stderr.contains('\u{200b}'),
        "{run:#?}"
    );
}

#[test]
fn a_look_alike_host_in_the_device_url_is_shown_as_punycode() {
    // "micrоsoft" with a Cyrillic о: on screen it reads as the real thing. Browsers show such
    // a host as xn--...; so does mycli, where the user is told which page to trust.
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            let mut answer = device_authorization();
            answer["verification_uri"] = json!("https://login.micr\u{43e}soft.com/device");
            answer["verification_uri_complete"] =
                json!("https://login.micr\u{43e}soft.com/device?code=BCDF-GHJK");
            Response::json(answer)
        } else {
            Response::new(400, "application/json", br#"{"error":"access_denied"}"#)
        }
    });
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(!run.stderr.contains('\u{43e}'), "{run:#?}");
    assert_eq!(
        run.stderr.matches("https://login.xn--micrsoft-").count(),
        2,
        "both URLs show the host as punycode: {run:#?}"
    );
}

#[test]
fn names_from_the_idp_are_stored_without_control_characters() {
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            Response::json(device_authorization())
        } else {
            Response::json(json!({
                "user": {"id": "user_\u{1b}[1mx", "email": "eve\u{1b}[2J@example.com"},
                "organization_id": "org_acme",
                "access_token": jwt(json!({"sub": "user_x", "org_id": "org_acme",
                    "exp": now() + 600, "sid": "session_1"})),
                "refresh_token": "rt_hostile"
            }))
        }
    });
    let sb = workos_sandbox(&base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    for args in [&["contexts"][..], &["contexts", "-o", "json"], &["status"]] {
        let run = sb.run(args);
        run.ok();
        assert_no_terminal_control(&run);
    }
    assert!(!sb.config_text().contains('\u{1b}'));
}

#[test]
fn an_endless_answer_is_refused_not_buffered() {
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            Response::json(device_authorization())
        } else {
            let mut body = br#"{"access_token":""#.to_vec();
            body.resize(8 * 1024 * 1024, b'a');
            Response::new(200, "application/json", body)
        }
    });
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("larger than"), "{run:#?}");
    assert!(
        run.stderr.contains("\nhint: "),
        "the error says what to do: {run:#?}"
    );
    assert!(!sb.path("config.toml").exists());
}

#[test]
fn a_verification_uri_that_is_not_a_web_page_is_never_opened() {
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            let mut answer = device_authorization();
            answer["verification_uri_complete"] = json!("file:///etc/passwd");
            Response::json(answer)
        } else {
            Response::new(400, "application/json", br#"{"error":"access_denied"}"#)
        }
    });
    let mut sb = workos_sandbox(&base);
    let marker = sb.tmp.path().join("browser-ran");
    let browser = sb.tmp.path().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    make_executable(&browser);
    sb.set("BROWSER", &browser.display().to_string());
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    // Refused before any process was started, so no browser can still be on its way.
    assert!(
        run.stderr
            .contains("could not open a browser (not an http(s) URL)"),
        "{run:#?}"
    );
    assert!(!marker.exists(), "BROWSER was run on a file: URL");
}

/// A hostile OIDC provider whose authorize endpoint redirects straight back to mycli's
/// loopback and whose token endpoint returns `id_token_claims` (with `nonce` filled in from
/// the authorize request when `echo_nonce`).
fn oidc_idp(id_token_claims: Value, echo_nonce: bool) -> String {
    let nonce = Arc::new(std::sync::Mutex::new(String::new()));
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let base2 = base.clone();
    let url = hostile_idp(move |req| {
        let issuer = base2.get().cloned().unwrap_or_default();
        let query = &req.query;
        match req.path.as_str() {
            "/.well-known/openid-configuration" => Response::json(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
            })),
            "/authorize" => {
                *nonce.lock().unwrap() = query.get("nonce").cloned().unwrap_or_default();
                let mut to = url::Url::parse(&query["redirect_uri"]).unwrap();
                to.query_pairs_mut()
                    .append_pair("code", "c0de")
                    .append_pair("state", &query["state"]);
                Response::new(302, "text/plain", Vec::new()).header("location", to.as_str())
            }
            _ => {
                let mut claims = id_token_claims.clone();
                claims["iss"] = json!(issuer);
                if echo_nonce {
                    claims["nonce"] = json!(*nonce.lock().unwrap());
                }
                Response::json(json!({
                    "access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
                    "refresh_token": "rt", "id_token": jwt(claims)
                }))
            }
        }
    });
    base.set(url.clone()).unwrap();
    url
}

fn oidc_login(base: &str) -> Run {
    let sb = Sandbox::new();
    let browser = sb.curl_browser();
    let mut sb = sb;
    sb.set("BROWSER", &browser.display().to_string());
    let run = sb.run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        base,
        "--client-id",
        "mycli",
        "--org",
        "org_acme",
    ]);
    if run.code != Some(0) {
        assert!(
            !sb.path("config.toml").exists(),
            "a refused token was stored"
        );
    }
    run
}

#[test]
fn an_id_token_for_another_client_is_refused() {
    let exp = now() + 300;
    let base = oidc_idp(
        json!({"aud": "someone-else", "sub": "alice", "org_id": "org_acme", "exp": exp}),
        true,
    );
    let run = oidc_login(&base);
    run.code(1);
    assert!(run.stderr.contains("not meant for this client"), "{run:#?}");
    assert_error_and_hint(&run);

    // Several audiences, this client among them, but authorized for another (azp).
    let base = oidc_idp(
        json!({"aud": ["mycli", "api"], "azp": "api", "sub": "alice", "org_id": "org_acme",
            "exp": exp}),
        true,
    );
    let run = oidc_login(&base);
    run.code(1);
    assert!(run.stderr.contains("not meant for this client"), "{run:#?}");
    // azp naming this client is fine.
    let base = oidc_idp(
        json!({"aud": ["mycli", "api"], "azp": "mycli", "sub": "alice", "org_id": "org_acme",
            "exp": exp}),
        true,
    );
    oidc_login(&base).ok();
}

#[test]
fn an_id_token_without_the_logins_nonce_is_refused() {
    let exp = now() + 300;
    let base = oidc_idp(
        json!({"aud": "mycli", "sub": "alice", "org_id": "org_acme", "exp": exp, "nonce": "replayed"}),
        false,
    );
    let run = oidc_login(&base);
    run.code(1);
    assert!(run.stderr.contains("nonce"), "{run:#?}");
    assert_error_and_hint(&run);
}

#[test]
fn an_expired_id_token_is_refused_and_a_good_one_accepted() {
    let base = oidc_idp(
        json!({"aud": "mycli", "sub": "alice", "org_id": "org_acme", "exp": now() - 3600}),
        true,
    );
    let run = oidc_login(&base);
    run.code(1);
    assert!(run.stderr.contains("expired"), "{run:#?}");
    assert_error_and_hint(&run);

    // The same provider with a valid token: the checks above are what refused it.
    let base = oidc_idp(
        json!({"aud": ["mycli", "api"], "sub": "alice", "org_id": "org_acme", "exp": now() + 300}),
        true,
    );
    oidc_login(&base).ok();
}

/// `mycli login --device` at the OIDC provider `base`, as client `mycli`.
fn oidc_device_login(base: &str) -> Run {
    Sandbox::new().run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        base,
        "--client-id",
        "mycli",
        "--device",
    ])
}

#[test]
fn a_discovery_document_for_another_issuer_or_with_plain_http_endpoints_is_refused() {
    let base = hostile_idp(|_| {
        Response::json(json!({
            "issuer": "https://evil.example.com",
            "authorization_endpoint": "https://evil.example.com/authorize",
            "token_endpoint": "https://evil.example.com/token",
        }))
    });
    let run = oidc_device_login(&base);
    run.code(1);
    assert!(run.stderr.contains("names the issuer"), "{run:#?}");

    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let issuer2 = issuer.clone();
    let base = hostile_idp(move |_| {
        let i = issuer2.get().cloned().unwrap_or_default();
        Response::json(json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": "http://evil.example.com/token",
        }))
    });
    issuer.set(base.clone()).unwrap();
    let run = oidc_device_login(&base);
    run.code(1);
    assert!(run.stderr.contains("unsafe endpoint"), "{run:#?}");
}

#[test]
fn an_https_issuer_may_not_send_the_refresh_token_to_a_plain_http_loopback_endpoint() {
    // The rule: plain-http endpoints only for a plain-http loopback issuer. An https issuer,
    // wherever it runs, that publishes http://127.0.0.1 endpoints would have the refresh token
    // sent in clear text to whatever local process holds that port. The issuer here is an
    // https server on 127.0.0.1 with a certificate from a CA made for the test, which mycli
    // trusts through SSL_CERT_FILE (rustls-native-certs, under the platform verifier).
    let plain = http::serve(|req| {
        Response::new(
            400,
            "application/json",
            json!({"error": "access_denied"}).to_string(),
        )
        .header("x-path", &req.path)
    });
    let plain_base = plain.base.clone();
    let tmp = tempfile::tempdir().unwrap();
    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let issuer2 = issuer.clone();
    let (tls, ca_file) = http::serve_tls(tmp.path(), move |req| {
        let i = issuer2.get().cloned().unwrap_or_default();
        match req.path.as_str() {
            "/plain/.well-known/openid-configuration" => Response::json(json!({
                "issuer": format!("{i}/plain"),
                "authorization_endpoint": format!("{plain_base}/authorize"),
                "device_authorization_endpoint": format!("{plain_base}/device"),
                "token_endpoint": format!("{plain_base}/token"),
            })),
            "/tls/.well-known/openid-configuration" => Response::json(json!({
                "issuer": format!("{i}/tls"),
                "authorization_endpoint": format!("{i}/tls/authorize"),
                "device_authorization_endpoint": format!("{i}/tls/device"),
                "token_endpoint": format!("{i}/tls/token"),
            })),
            _ => Response::new(
                400,
                "application/json",
                json!({"error": "access_denied"}).to_string(),
            ),
        }
    });
    issuer.set(tls.base.clone()).unwrap();
    let mut sb = Sandbox::new();
    sb.set("SSL_CERT_FILE", &ca_file.display().to_string());
    let login = |path: &str| {
        sb.run(&[
            "login",
            "--provider",
            "oidc",
            "--issuer",
            &format!("{}/{path}", tls.base),
            "--client-id",
            "mycli",
            "--device",
        ])
    };

    // The control: an https issuer with https endpoints is trusted and used (the device
    // request reaches it, and is denied).
    let run = login("tls");
    run.code(1);
    assert!(!run.stderr.contains("unsafe endpoint"), "{run:#?}");
    assert!(
        tls.log
            .lock()
            .unwrap()
            .contains(&"answered /tls/device".to_string()),
        "the https device endpoint was not used: {run:#?}"
    );

    // The same issuer publishing http://127.0.0.1 endpoints: refused before any request.
    let run = login("plain");
    run.code(1);
    assert!(
        run.stderr.contains("unsafe endpoint") && run.stderr.contains("is plain http"),
        "{run:#?}"
    );
    assert!(run.stderr.contains(&plain.base), "{run:#?}");
    assert!(
        plain.log.lock().unwrap().is_empty(),
        "mycli sent a request to the plain-http endpoint"
    );
    assert!(!sb.path("config.toml").exists());
    assert!(!sb.path("credentials.toml").exists());
}

#[test]
fn an_organization_id_with_control_characters_is_refused() {
    let base = hostile_idp(|req| {
        if req.path.ends_with("/authorize/device") {
            Response::json(device_authorization())
        } else {
            Response::json(json!({
                "user": {"id": "user_x", "email": "x@example.com"},
                "organization_id": "org_\u{1b}[2Jx",
                "access_token": jwt(json!({"sub": "user_x", "exp": now() + 600})),
                "refresh_token": "rt_hostile"
            }))
        }
    });
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("unusable organization id"), "{run:#?}");
    assert_no_terminal_control(&run);
    assert!(!sb.path("config.toml").exists());
}

/// A WorkOS-shaped IdP whose n-th token-endpoint call gets `answers[n]` (the last one
/// repeats); every request is logged as `PATH grant_type`.
struct Scripted {
    base: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scripted {
    fn start(answers: Vec<Response>) -> Scripted {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = log.clone();
        let answers = std::sync::Mutex::new(answers);
        let base = hostile_idp(move |req| {
            let grant = url::form_urlencoded::parse(&req.body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            seen.lock().unwrap().push(format!("{} {grant}", req.path));
            if req.path.ends_with("/authorize/device") {
                return Response::json(device_authorization());
            }
            if req.path.ends_with("/authenticate") {
                let mut answers = answers.lock().unwrap();
                let r = if answers.len() > 1 {
                    answers.remove(0)
                } else {
                    let a = &answers[0];
                    Response {
                        status: a.status,
                        headers: a.headers.clone(),
                        body: a.body.clone(),
                    }
                };
                return r;
            }
            Response::new(200, "application/json", "{}")
        });
        Scripted { base, log }
    }

    fn count(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }
}

/// A WorkOS token answer for org_acme with this access token.
/// Makes the cached access token of `key` expired, so the next `token` refreshes.
fn expire_cached(sb: &Sandbox, key: &str) {
    let path = sb.token_file(key);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["expires_at"] = json!(now() - 10);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn token_answer(access_token: &str) -> Value {
    json!({
        "user": {"id": "user_x", "email": "x@example.com"},
        "organization_id": "org_acme",
        "access_token": access_token,
        "refresh_token": "rt_1"
    })
}

/// A WorkOS token answer for org_acme whose JWT access token carries `claims` (sub, org_id
/// and sid added).
fn jwt_answer(mut claims: Value) -> Value {
    claims["sub"] = json!("user_x");
    claims["org_id"] = json!("org_acme");
    claims["sid"] = json!("session_1");
    token_answer(&jwt(claims))
}

#[test]
fn an_exp_in_milliseconds_is_clamped_not_a_crash() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": (now() + 600) * 1000}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    let ctx = &sb.contexts_json()[0];
    let expires = ctx["access_token_expires_at"].as_str().unwrap().to_string();
    assert!(expires.starts_with("20"), "{expires}");
    // Believed for a day at most: the token is served from the cache, no refresh.
    let token = sb.run(&["token"]);
    token.ok();
    assert_eq!(idp.count("refresh_token"), 0, "{:?}", idp.log);
}

#[test]
fn an_absurd_expires_in_neither_wraps_nor_refreshes_on_every_call() {
    let mut answer = token_answer("opaque_token");
    answer["expires_in"] = json!(1e300);
    let idp = Scripted::start(vec![Response::json(answer)]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    for _ in 0..3 {
        assert_eq!(sb.run(&["token"]).ok().stdout.trim(), "opaque_token");
    }
    assert_eq!(idp.count("refresh_token"), 0, "{:?}", idp.log);
    let ctx = &sb.contexts_json()[0];
    assert_eq!(ctx["needs_login"], json!(false));
    assert!(
        !ctx["access_token_expires_at"]
            .as_str()
            .unwrap()
            .starts_with("1970")
    );
}

#[test]
fn a_token_that_expired_long_ago_is_refused_not_served_forever() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(json!({"exp": -1e300})))]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(
        run.stderr.contains("already") || run.stderr.contains("expired"),
        "{run:#?}"
    );
    assert!(!sb.path("config.toml").exists());
    assert!(credentials(&sb).is_empty(), "a secret was stored");

    // Expired a minute ago (by the IdP's own `Date`, so no clock skew to allow for): an
    // expired token is never served, not even once.
    let idp = Scripted::start(vec![Response::json(jwt_answer(json!({"exp": now() - 60})))]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("expired"), "{run:#?}");
    assert!(credentials(&sb).is_empty(), "a secret was stored");
}

#[test]
fn absurd_timeouts_from_the_environment_are_clamped() {
    for var in [
        "MYCLI_LOCK_TIMEOUT",
        "MYCLI_HTTP_TIMEOUT",
        "MYCLI_KEYCHAIN_TIMEOUT",
    ] {
        for value in ["1e19", "1e30", "1e300"] {
            let mut sb = Sandbox::new();
            sb.write_config(&context_toml("org_acme", "acme"));
            sb.set(var, value);
            let run = sb.run(&["switch", "acme"]);
            run.ok();
            let run = sb.run(&["switch", "nope"]);
            run.code(1);
            assert!(run.stderr.starts_with("error:"), "{var}={value}: {run:#?}");
        }
    }
}

#[test]
fn a_token_with_control_characters_is_never_stored_or_printed() {
    let evil = "tok\u{1b}]0;PWNED\u{7}\u{1b}[2J\nX-Injected: yes\r\nrm -rf ~";
    // At login.
    let idp = Scripted::start(vec![Response::json(token_answer(evil))]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("RFC 6750"), "{run:#?}");
    assert_no_terminal_control(&run);
    assert!(!sb.path("config.toml").exists());
    assert!(credentials(&sb).is_empty(), "a secret was stored");

    // At refresh: the first answer is fine, the refresh sends the hostile token.
    let good = jwt_answer(json!({"exp": now() + 600}));
    let mut bad = token_answer(evil);
    bad["refresh_token"] = json!("rt_2");
    let idp = Scripted::start(vec![Response::json(good), Response::json(bad)]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    expire_cached(&sb, "org_acme");
    let run = sb.run(&["token"]);
    run.code(1);
    assert_eq!(run.stdout, "", "{run:#?}");
    assert_no_terminal_control(&run);
    assert_eq!(idp.count("refresh_token"), 1);
}

/// A WorkOS-shaped IdP that signs in (device flow) to the organization the device request
/// named, and refreshes any refresh token for the organization asked for; access tokens are
/// opaque `at_<org>_<n>`, valid an hour. Counts the refreshes.
fn refreshing_idp() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let device_org = std::sync::Mutex::new(None::<String>);
    let base = hostile_idp(move |req| {
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&req.body)
                .into_owned()
                .collect();
        if req.path.ends_with("/authorize/device") {
            *device_org.lock().unwrap() = form.get("organization_id").cloned();
            return Response::json(device_authorization());
        }
        let org = if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            form.get("organization_id").cloned()
        } else {
            device_org.lock().unwrap().clone()
        };
        let n = seen.load(std::sync::atomic::Ordering::SeqCst);
        let org_text = org.clone().unwrap_or_default();
        Response::json(json!({
            "user": {"id": "user_x"},
            "organization_id": org,
            "access_token": format!("at_{}_{n}", org_text.replace(':', "")),
            "refresh_token": format!("rt_{n}"),
            "expires_in": 3600
        }))
    });
    (base, count)
}

/// A store with these contexts (file credentials) at the WorkOS-shaped IdP `base`.
fn store_at(base: &str, contexts: &[(&str, &str)]) -> Sandbox {
    let sb = workos_sandbox(base);
    let mut config = format!("current = \"{}\"\n\n", contexts[0].0);
    let mut creds = String::new();
    for (key, name) in contexts {
        config.push_str(
            &context_toml(key, name)
                .replace("https://api.workos.com", base)
                .replacen(
                    &format!("[contexts.{key}]"),
                    &format!("[contexts.\"{key}\"]"),
                    1,
                ),
        );
        creds.push_str(&format!("[\"{key}\"]\nrefresh-token = \"rt_{name}\"\n\n"));
    }
    sb.write_config(&config);
    std::fs::write(sb.path("credentials.toml"), creds).unwrap();
    sb
}

#[test]
fn two_keys_never_share_a_token_cache_or_a_lock() {
    let (base, refreshes) = refreshing_idp();
    let a = "team:1";
    let b = "x-7465616d3a31"; // what older versions named team:1's files
    let long_a = format!("org_{}a", "o".repeat(120));
    let long_b = format!("org_{}b", "o".repeat(120));
    let sb = store_at(
        &base,
        &[
            (a, "team"),
            (b, "hexlike"),
            (&long_a, "long-a"),
            (&long_b, "long-b"),
        ],
    );
    for _ in 0..3 {
        for name in ["team", "hexlike", "long-a", "long-b"] {
            sb.run(&["--context", name, "token"]).ok();
        }
    }
    assert_eq!(
        refreshes.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one refresh per context, then the cache"
    );
    // Logging out of one leaves the other's cached token alone.
    sb.run(&["logout", "team"]).ok();
    let before = refreshes.load(std::sync::atomic::Ordering::SeqCst);
    sb.run(&["--context", "hexlike", "token"]).ok();
    assert_eq!(refreshes.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[test]
fn an_organization_id_always_means_that_organization() {
    let (base, _) = refreshing_idp();
    let sb = workos_sandbox(&base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    // A name may equal its own key, but never another context's.
    sb.run(&["rename", "org_acme", "org_globex"]).ok();
    // org_globex signs in: the context that used its id as a name gives the name up.
    let run = sb.run(&["login", "--org", "org_globex", "--device"]);
    run.ok();
    assert!(run.stderr.contains("renamed"), "{run:#?}");
    let token = sb.run(&["--context", "org_globex", "token"]);
    assert!(token.ok().stdout.starts_with("at_org_globex"), "{token:#?}");
    sb.run(&["switch", "org_acme"]).ok();
    sb.run(&["switch", "org_globex"]).ok();
    assert_eq!(sb.run(&["current"]).ok().stdout.trim(), "org_globex");
    for ctx in sb.contexts_json() {
        let key = ctx["organization_id"].as_str().unwrap();
        let name = ctx["name"].as_str().unwrap();
        assert!(
            name == key || !["org_acme", "org_globex"].contains(&name),
            "{ctx}"
        );
    }

    // `login --name` cannot take another context's organization id either.
    let run = sb.run(&[
        "login",
        "--org",
        "org_acme",
        "--name",
        "org_globex",
        "--device",
    ]);
    run.code(2);
    assert!(run.stderr.contains("organization id"), "{run:#?}");
    let run = sb.run(&["rename", "org_acme", "org_globex"]);
    run.code(1);
}

#[test]
fn in_a_hand_written_store_keys_win_over_names() {
    let (base, _) = refreshing_idp();
    // org_a is named after org_b's id.
    let sb = store_at(&base, &[("org_a", "org_b"), ("org_b", "b")]);
    let token = sb.run(&["--context", "org_b", "token"]);
    assert!(token.ok().stdout.starts_with("at_org_b"), "{token:#?}");
    // The prompt names the context the token came from, through the index and the names file.
    sb.run(&["contexts"]).ok();
    assert_eq!(sb.run(&["--context", "org_b", "prompt"]).ok().stdout, "b\n");
    let mut env = sb.cmd();
    let out = env
        .env("MYCLI_CONTEXT", "org_b")
        .arg("prompt")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\n");
    std::fs::remove_file(sb.path("cache/names")).unwrap();
    assert_eq!(sb.run(&["--context", "org_b", "prompt"]).ok().stdout, "b\n");
    sb.run(&["switch", "org_b"]).ok();
    assert_eq!(sb.run(&["current"]).ok().stdout.trim(), "b");
    sb.run(&["logout", "org_b"]).ok();
    let left: Vec<String> = sb
        .contexts_json()
        .iter()
        .map(|c| c["organization_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["org_a"]);
}

#[test]
fn logout_keeps_the_context_when_its_secret_cannot_be_deleted() {
    let (base, refreshes) = refreshing_idp();
    let mut sb = store_at(&base, &[("org_acme", "acme")]);
    std::fs::create_dir_all(sb.path("locks")).unwrap();
    // flock(2) on credentials.lock, as a hung mycli would hold it.
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sb.path("locks/credentials.lock"))
        .unwrap();
    #[allow(clippy::disallowed_methods)] // a hung mycli holding the lock, played by hand
    holder.lock().unwrap();
    // credentials.lock is waited for the lock timeout plus an HTTP timeout plus 5 s.
    sb.set("MYCLI_LOCK_TIMEOUT", "1");
    sb.set("MYCLI_HTTP_TIMEOUT", "1");
    let run = sb.run(&["logout", "acme"]);
    run.code(1);
    assert!(run.stderr.contains("still in"), "{run:#?}");
    assert!(run.stderr.contains("credentials.toml"), "{run:#?}");
    assert!(!run.stderr.contains("Logged out"), "{run:#?}");
    assert!(credentials(&sb).contains_key("org_acme"));
    assert_eq!(sb.contexts_json().len(), 1, "the context was removed");
    // No WorkOS session id is known for this context: learning it would spend the refresh
    // token that the kept context still needs.
    assert_eq!(
        refreshes.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a logout that kept the context spent its refresh token"
    );

    // Once the lock is free, logout finishes.
    drop(holder);
    sb.run(&["logout", "acme"]).ok();
    assert!(credentials(&sb).is_empty());
    assert!(sb.contexts_json().is_empty());
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_store_that_others_can_write_or_that_is_not_ours_is_refused() {
    let (base, _) = refreshing_idp();
    let sb = store_at(&base, &[("org_acme", "acme")]);
    sb.run(&["token"]).ok();
    let before = store_files(&sb.config_dir);
    set_mode(&sb.config_dir, 0o777);
    for args in [
        &["token"][..],
        &["contexts"],
        &["switch", "acme"],
        &["logout"],
    ] {
        let run = sb.run(args);
        run.code(1);
        assert!(
            run.stderr.contains("can be written by other users"),
            "{args:?}: {run:#?}"
        );
        assert!(
            run.stderr.contains("hint: ") && run.stderr.contains("chmod 700"),
            "{run:#?}"
        );
        assert_eq!(run.stdout, "");
    }
    // A prompt shows nothing from a refused store, and never fails or speaks.
    let run = sb.run(&["prompt"]);
    assert_eq!((run.ok().stdout.as_str(), run.stderr.as_str()), ("", ""));
    assert_eq!(
        store_files(&sb.config_dir),
        before,
        "a refused store was changed"
    );

    // Another user's store (only root can give a directory away).
    set_mode(&sb.config_dir, 0o700);
    if std::os::unix::fs::chown(&sb.config_dir, Some(65534), Some(65534)).is_ok() {
        let run = sb.run(&["token"]);
        run.code(1);
        assert!(run.stderr.contains("belongs to another user"), "{run:#?}");
        std::os::unix::fs::chown(&sb.config_dir, Some(0), Some(0)).unwrap();
    }
}

#[test]
fn a_readable_store_is_made_private_with_one_warning() {
    use std::os::unix::fs::PermissionsExt;
    let (base, _) = refreshing_idp();
    let sb = store_at(&base, &[("org_acme", "acme")]);
    sb.run(&["token"]).ok();
    set_mode(&sb.config_dir, 0o755);
    set_mode(&sb.path("credentials.toml"), 0o644);
    set_mode(&sb.path("tokens"), 0o755);
    set_mode(&sb.token_file("org_acme"), 0o644);
    // A prompt neither speaks nor changes the store: the next command still says what it fixed.
    let run = sb.run(&["prompt"]);
    assert_eq!(
        (run.ok().stdout.as_str(), run.stderr.as_str()),
        ("acme\n", "")
    );
    let run = sb.run(&["token"]);
    run.ok();
    assert_eq!(run.stderr.matches("warning:").count(), 1, "{run:#?}");
    assert!(run.stderr.contains("credentials.toml"), "{run:#?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sb.config_dir), 0o700);
    assert_eq!(mode(&sb.path("credentials.toml")), 0o600);
    assert_eq!(mode(&sb.path("tokens")), 0o700);
    assert_eq!(mode(&sb.token_file("org_acme")), 0o600);
    let again = sb.run(&["token"]);
    assert_eq!(again.ok().stderr, "");
    // A credentials file loosened inside a private directory is caught by any other command.
    set_mode(&sb.path("credentials.toml"), 0o644);
    let run = sb.run(&["contexts"]);
    assert_eq!(run.ok().stderr.matches("warning:").count(), 1, "{run:#?}");
    assert_eq!(mode(&sb.path("credentials.toml")), 0o600);
}

#[test]
fn a_symlinked_lock_file_is_never_followed() {
    let (base, _) = refreshing_idp();
    let sb = store_at(&base, &[("org_acme", "acme")]);
    std::fs::create_dir_all(sb.path("locks")).unwrap();
    set_mode(&sb.path("locks"), 0o700);
    let elsewhere = sb.tmp.path().join("created-elsewhere");
    std::os::unix::fs::symlink(&elsewhere, sb.path("locks/config.lock")).unwrap();
    let run = sb.run(&["switch", "acme"]);
    run.code(1);
    assert!(run.stderr.contains("symbolic link"), "{run:#?}");
    assert!(!elsewhere.exists(), "the lock was created through the link");
}

#[test]
fn symlinked_config_and_credentials_are_written_through() {
    let (base, _) = refreshing_idp();
    let sb = store_at(&base, &[("org_acme", "acme")]);
    let dotfiles = sb.tmp.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    for file in ["config.toml", "credentials.toml"] {
        std::fs::rename(sb.path(file), dotfiles.join(file)).unwrap();
        std::os::unix::fs::symlink(dotfiles.join(file), sb.path(file)).unwrap();
    }
    sb.run(&["rename", "acme", "acme2"]).ok();
    sb.run(&["token"]).ok(); // refreshes: the rotated refresh token is saved
    for file in ["config.toml", "credentials.toml"] {
        let meta = std::fs::symlink_metadata(sb.path(file)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{file} was replaced by a regular file"
        );
    }
    let config = std::fs::read_to_string(dotfiles.join("config.toml")).unwrap();
    assert!(config.contains("name = \"acme2\""), "{config}");
    let creds = std::fs::read_to_string(dotfiles.join("credentials.toml")).unwrap();
    assert!(
        !creds.contains("rt_acme"),
        "the rotated refresh token was not written: {creds}"
    );
}

#[test]
fn verbose_transport_errors_never_show_the_session_id() {
    let sid = "session_SECRET_SID_123";
    let base = hostile_idp(move |req| {
        if req.path.ends_with("/authorize/device") {
            Response::json(device_authorization())
        } else if req.path.ends_with("/sessions/logout") {
            std::thread::sleep(std::time::Duration::from_secs(3));
            Response::json(json!({}))
        } else {
            let mut answer = jwt_answer(json!({"exp": now() + 600}));
            answer["access_token"] = json!(jwt(json!({"sub": "user_x", "org_id": "org_acme",
                "exp": now() + 600, "sid": sid})));
            Response::json(answer)
        }
    });
    let mut sb = workos_sandbox(&base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    sb.set("MYCLI_HTTP_TIMEOUT", "1");
    let run = sb.run(&["-v", "logout"]);
    run.ok();
    assert!(run.stderr.contains("transport error"), "{run:#?}");
    assert!(!run.stderr.contains(sid), "{run:#?}");
    assert!(
        !sb.config_text().contains(sid),
        "the context outlived logout"
    );
}

#[test]
fn quoted_values_in_idp_error_text_are_not_shown() {
    let idp = Scripted::start(vec![Response::new(
        400,
        "application/json",
        json!({"error": "invalid_grant",
            "error_description": "The code 'c0deSECRET99xyz' has expired"})
        .to_string(),
    )]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["-v", "login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("has expired"), "{run:#?}");
    assert!(!run.stderr.contains("c0deSECRET99xyz"), "{run:#?}");
}

#[test]
fn invisible_characters_never_make_two_names_look_alike() {
    let mut answer = token_answer("good_token");
    answer["user"]["email"] = json!("alice\u{202e}moc.evil\u{200b}@example.com");
    answer["expires_in"] = json!(600);
    let idp = Scripted::start(vec![Response::json(answer)]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    for bad in [
        "prod\u{200b}",
        "evil\u{202e}hs.exe",
        "a\u{2028}b",
        "\u{feff}bom",
    ] {
        let run = sb.run(&["rename", "org_acme", bad]);
        run.code(2);
    }
    for args in [&["contexts"][..], &["contexts", "-o", "json"], &["status"]] {
        let run = sb.run(args);
        run.ok();
        assert!(
            !run.stdout.contains('\u{202e}') && !run.stdout.contains('\u{200b}'),
            "{run:#?}"
        );
    }
}

#[test]
fn a_device_answer_that_fails_validation_is_reported_not_polled_again() {
    // 200 without a user id, then what a real IdP says of a consumed device code.
    let idp = Scripted::start(vec![
        Response::json(json!({"access_token": "opaque", "refresh_token": "rt"})),
        Response::new(
            400,
            "application/json",
            json!({"error": "invalid_grant", "error_description": "Device code already used"})
                .to_string(),
        ),
    ]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("who signed in"), "{run:#?}");
    assert!(!run.stderr.contains("already used"), "{run:#?}");
    assert_eq!(idp.count("device_code"), 1, "{:?}", idp.log);
}

#[test]
fn a_store_that_cannot_be_written_fails_before_the_user_is_asked() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": now() + 600}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    std::fs::create_dir_all(&sb.config_dir).unwrap();
    set_mode(&sb.config_dir, 0o700);
    std::fs::write(sb.path("locks"), "not a directory").unwrap();
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(!run.stderr.contains("enter the code"), "{run:#?}");
    assert_eq!(idp.count("/authorize/device"), 0, "{:?}", idp.log);
}

#[test]
fn a_read_only_store_is_one_error_and_a_hint_before_the_user_is_asked() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": now() + 600}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    std::fs::create_dir_all(&sb.config_dir).unwrap();
    set_mode(&sb.config_dir, 0o700);
    // The store dir, bind-mounted read-only in a private mount namespace (a read-only home,
    // a full quota look the same to mycli).
    let script = format!(
        "mount --bind '{dir}' '{dir}' && mount -o remount,ro,bind '{dir}' && \
         exec \"$MYCLI\" login --org org_acme --device",
        dir = sb.config_dir.display()
    );
    let Some(run) = in_mount_namespace(&sb, &script) else {
        return;
    };
    run.code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("error: ") && lines[0].contains("Read-only"),
        "{run:#?}"
    );
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("MYCLI_CONFIG_DIR"),
        "the hint says how to use another store: {run:#?}"
    );
    assert_eq!(idp.count("/authorize/device"), 0, "{:?}", idp.log);
}

#[test]
fn a_relative_config_dir_is_created_only_by_a_command_that_succeeds() {
    let (base, _) = refreshing_idp();
    let mut sb = workos_sandbox(&base);
    sb.set("MYCLI_CONFIG_DIR", "rel/dir");
    let cwd = sb.tmp.path().to_path_buf();
    let run_in = |dir: &std::path::Path, args: &[&str]| {
        let out = sb.cmd().current_dir(dir).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for args in [
        &["switch", "x"][..],
        &["switch", "-"],
        &["rename", "a", "b"],
        &["logout"],
        &["token"],
        &["status"],
        &["contexts"],
    ] {
        let (code, stderr) = run_in(&cwd, args);
        assert_ne!(
            code,
            Some(0).filter(|_| args[0] != "contexts"),
            "{args:?}: {stderr}"
        );
        assert!(
            !cwd.join("rel").exists(),
            "`mycli {args:?}` created the store"
        );
    }
    // A sign-in creates it, under the working directory.
    let (code, stderr) = run_in(&cwd, &["login", "--org", "org_acme", "--device"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(cwd.join("rel/dir/config.toml").exists());
}

#[test]
fn a_refresh_refused_with_an_empty_400_asks_for_a_new_login() {
    let idp = Scripted::start(vec![
        Response::json(jwt_answer(json!({"exp": now() + 600}))),
        Response::new(400, "text/plain", ""),
    ]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    expire_cached(&sb, "org_acme");
    let run = sb.run(&["token"]);
    run.code(4);
    assert!(
        run.stderr.contains("mycli login --org org_acme"),
        "{run:#?}"
    );
    assert_eq!(sb.contexts_json()[0]["needs_login"], json!(true));
}

#[test]
fn a_session_for_another_organization_is_ended_at_the_idp() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": now() + 600}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    let run = sb.run(&["login", "--org", "org_globex", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("not org_globex"), "{run:#?}");
    assert!(run.stderr.contains("was ended"), "{run:#?}");
    assert_eq!(idp.count("/sessions/logout"), 1, "{:?}", idp.log);
    assert!(!sb.path("config.toml").exists());
}

#[test]
fn logout_ends_the_session_without_the_token_cache() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": now() + 600}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    std::fs::remove_dir_all(sb.path("tokens")).unwrap();
    let run = sb.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr.contains("ended at the identity provider"),
        "{run:#?}"
    );
    assert_eq!(idp.count("/sessions/logout"), 1, "{:?}", idp.log);
}

/// An OIDC issuer on a scripted server whose discovery document is `doc(issuer)`; every other
/// request is logged (path and query) and refused with `access_denied`.
fn discovery_idp(
    doc: impl Fn(&str) -> Value + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (issuer2, log2) = (issuer.clone(), log.clone());
    let base = hostile_idp(move |req| {
        let i = issuer2.get().cloned().unwrap_or_default();
        if req.path == "/.well-known/openid-configuration" {
            return Response::json(doc(&i));
        }
        let mut query: Vec<_> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        query.sort();
        log2.lock()
            .unwrap()
            .push(format!("{} {}", req.path, query.join("&")));
        Response::new(
            400,
            "application/json",
            json!({"error": "access_denied"}).to_string(),
        )
    });
    issuer.set(base.clone()).unwrap();
    (base, log)
}

#[test]
fn a_discovery_document_without_a_required_endpoint_names_it() {
    for missing in ["issuer", "authorization_endpoint", "token_endpoint"] {
        let (base, log) = discovery_idp(move |i| {
            let mut doc = json!({
                "issuer": i,
                "authorization_endpoint": format!("{i}/authorize"),
                "token_endpoint": format!("{i}/token"),
                "device_authorization_endpoint": format!("{i}/device"),
            });
            doc[missing] = Value::Null;
            doc
        });
        let run = oidc_device_login(&base);
        run.code(1);
        assert!(
            run.stderr.contains(&format!("no {missing}")),
            "{missing}: {run:#?}"
        );
        assert_error_and_hint(&run);
        assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    }
}

#[test]
fn an_endpoint_with_a_query_is_used_and_a_bad_one_is_named_as_an_endpoint() {
    // RFC 6749 §3.1: an endpoint URL may carry a query (a policy such as `?p=POLICY`), to be
    // kept when parameters are added.
    let (base, log) = discovery_idp(|i| {
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize?p=b2c_1_signin"),
            "token_endpoint": format!("{i}/token?p=b2c_1_signin"),
            "device_authorization_endpoint": format!("{i}/device?p=b2c_1_signin"),
        })
    });
    let run = oidc_device_login(&base);
    run.code(1);
    assert!(!run.stderr.contains("unsafe endpoint"), "{run:#?}");
    assert!(run.stderr.contains("access_denied"), "{run:#?}");
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("/device ") && l.contains("p=b2c_1_signin")),
        "the device endpoint was not asked with its query: {log:?}"
    );

    // An endpoint that is no URL: the error says which, and does not call it the issuer.
    let (base, log) = discovery_idp(|i| {
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": "/token",
        })
    });
    let run = oidc_device_login(&base);
    run.code(1);
    assert!(
        run.stderr.contains("token_endpoint") && !run.stderr.contains("issuer \"/token\""),
        "{run:#?}"
    );
    assert_error_and_hint(&run);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn an_oidc_refresh_that_states_no_claims_keeps_the_contexts_organization() {
    // Opaque access tokens and no ID token on refresh (as some providers answer): the answer
    // is for the grant it refreshed. Every refresh used to fail with "the provider's answer
    // does not say who signed in".
    let refreshes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = refreshes.clone();
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let issuer_of = base.clone();
    let url = hostile_idp(move |req| {
        let issuer = issuer_of.get().cloned().unwrap_or_default();
        match req.path.as_str() {
            "/.well-known/openid-configuration" => Response::json(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
            })),
            _ => {
                let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                Response::json(json!({
                    "access_token": format!("opaque{n}"), "token_type": "Bearer",
                    "expires_in": 300, "refresh_token": format!("rt{n}")
                }))
            }
        }
    });
    base.set(url.clone()).unwrap();
    let sb = store_at(&url, &[("org_acme", "acme")]);
    let config = sb
        .config_text()
        .replace("provider = \"workos\"", "provider = \"oidc\"");
    sb.write_config(&config);
    let run = sb.run(&["token"]);
    assert_eq!(run.ok().stdout, "opaque1\n", "{run:#?}");
    assert_eq!(credentials(&sb)["org_acme"], "rt1");
    // The context is still itself: same organization, same user.
    let ctx = &sb.contexts_json()[0];
    assert_eq!(ctx["organization_id"], "org_acme");
    assert_eq!(ctx["user"]["id"], "user_acme");
    sb.run(&["refresh"]).ok();
    assert_eq!(refreshes.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[test]
fn a_plain_http_issuer_written_into_config_toml_never_gets_the_refresh_token() {
    let idp = Scripted::start(vec![Response::json(jwt_answer(
        json!({"exp": now() + 600}),
    ))]);
    let sb = workos_sandbox(&idp.base);
    sb.run(&["login", "--org", "org_acme", "--device"]).ok();
    // A hand edit (or a typo) makes the context's issuer plain http to a host off loopback:
    // refresh and logout would send the refresh token there in clear text.
    let text = sb.config_text();
    let edited = text.replace(
        &format!("issuer = \"{}\"", idp.base),
        "issuer = \"http://idp.invalid\"",
    );
    assert_ne!(edited, text);
    sb.write_config(&edited);
    std::fs::remove_file(sb.token_file("org_acme")).unwrap();
    let run = sb.run(&["token"]);
    run.code(1);
    assert!(run.stderr.contains("plain-http issuer"), "{run:#?}");
    assert_error_and_hint(&run);
    let run = sb.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr.contains("plain-http issuer") && run.stderr.contains("may still be active"),
        "{run:#?}"
    );
}
