//! What a hostile or broken identity provider can and cannot make mycli do: print terminal
//! escapes, buffer without bound, open non-web URLs, accept tokens meant for someone else.
//! Each test runs the real binary against a scripted HTTP server in this process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

/// One scripted answer: status, content type, body, extra headers.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    location: Option<String>,
}

fn json_answer(value: Value) -> Answer {
    Answer {
        status: 200,
        content_type: "application/json",
        body: value.to_string().into_bytes(),
        location: None,
    }
}

type Script = dyn Fn(&str, &HashMap<String, String>, &str) -> Answer + Send + Sync;

/// Serves `script(method, query, path)` on 127.0.0.1; returns the base URL.
fn hostile_idp(script: Arc<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let script = script.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let mut parts = request_line.split(' ');
                let method = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let answer = script(&method, &query, path);
                let location = answer
                    .location
                    .map(|l| format!("location: {l}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    writer,
                    "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n{location}connection: close\r\n\r\n",
                    answer.status,
                    answer.content_type,
                    answer.body.len()
                );
                let _ = writer.write_all(&answer.body);
            });
        }
    });
    base
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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_no_terminal_control(run: &Run) {
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what} carries control characters from the IdP: {text:?}"
        );
    }
}

fn workos_sandbox(base: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("MYCLI_ISSUER", base)
        .set("MYCLI_CLIENT_ID", "client_test");
    sb
}

#[test]
fn terminal_escapes_from_the_idp_never_reach_the_terminal() {
    let base = hostile_idp(Arc::new(|_, _, path| {
        if path.ends_with("/authorize/device") {
            json_answer(json!({
                "device_code": "dc", "user_code": "EVIL\u{1b}[2J\u{1b}]0;pwned\u{7}-CODE",
                "verification_uri": "https://idp.example.com/\u{1b}[31mdevice",
                "expires_in": 30, "interval": 1
            }))
        } else {
            Answer {
                status: 400,
                content_type: "application/json",
                body: json!({"error": "access_denied\u{1b}[5m",
                    "error_description": "no\u{1b}[2J\rway"})
                .to_string()
                .into_bytes(),
                location: None,
            }
        }
    }));
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("EVIL"), "{run:#?}");
    assert_no_terminal_control(&run);
}

#[test]
fn names_from_the_idp_are_stored_without_control_characters() {
    let base = hostile_idp(Arc::new(|_, _, path| {
        if path.ends_with("/authorize/device") {
            json_answer(json!({"device_code": "dc", "user_code": "BCDF-GHJK",
                "verification_uri": "https://idp.example.com/device",
                "expires_in": 30, "interval": 1}))
        } else {
            json_answer(json!({
                "user": {"id": "user_\u{1b}[1mx", "email": "eve\u{1b}[2J@example.com"},
                "organization_id": "org_acme",
                "access_token": jwt(json!({"sub": "user_x", "org_id": "org_acme",
                    "exp": now() + 600, "sid": "session_1"})),
                "refresh_token": "rt_hostile"
            }))
        }
    }));
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
    let base = hostile_idp(Arc::new(|_, _, path| {
        if path.ends_with("/authorize/device") {
            json_answer(json!({"device_code": "dc", "user_code": "BCDF-GHJK",
                "verification_uri": "https://idp.example.com/device",
                "expires_in": 30, "interval": 1}))
        } else {
            let mut body = br#"{"access_token":""#.to_vec();
            body.resize(8 * 1024 * 1024, b'a');
            Answer {
                status: 200,
                content_type: "application/json",
                body,
                location: None,
            }
        }
    }));
    let sb = workos_sandbox(&base);
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    assert!(run.stderr.contains("larger than"), "{run:#?}");
    assert!(!sb.path("config.toml").exists());
}

#[test]
fn a_verification_uri_that_is_not_a_web_page_is_never_opened() {
    let base = hostile_idp(Arc::new(|_, _, path| {
        if path.ends_with("/authorize/device") {
            json_answer(json!({"device_code": "dc", "user_code": "BCDF-GHJK",
                "verification_uri": "https://idp.example.com/device",
                "verification_uri_complete": "file:///etc/passwd",
                "expires_in": 30, "interval": 1}))
        } else {
            Answer {
                status: 400,
                content_type: "application/json",
                body: br#"{"error":"access_denied"}"#.to_vec(),
                location: None,
            }
        }
    }));
    let mut sb = workos_sandbox(&base);
    let marker = sb.tmp.path().join("browser-ran");
    let browser = sb.tmp.path().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    make_executable(&browser);
    sb.set("BROWSER", &browser.display().to_string());
    let run = sb.run(&["login", "--org", "org_acme", "--device"]);
    run.code(1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!marker.exists(), "BROWSER was run on a file: URL");
    assert!(run.stderr.contains("could not open a browser"), "{run:#?}");
}

/// A hostile OIDC provider whose authorize endpoint redirects straight back to mycli's
/// loopback and whose token endpoint returns `id_token_claims` (with `nonce` filled in from
/// the authorize request when `echo_nonce`).
fn oidc_idp(id_token_claims: Value, echo_nonce: bool) -> String {
    let nonce = Arc::new(std::sync::Mutex::new(String::new()));
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let base2 = base.clone();
    let url = hostile_idp(Arc::new(move |_, query, path| {
        let issuer = base2.get().cloned().unwrap_or_default();
        match path {
            "/.well-known/openid-configuration" => json_answer(json!({
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
                Answer {
                    status: 302,
                    content_type: "text/plain",
                    body: Vec::new(),
                    location: Some(to.to_string()),
                }
            }
            _ => {
                let mut claims = id_token_claims.clone();
                claims["iss"] = json!(issuer);
                if echo_nonce {
                    claims["nonce"] = json!(*nonce.lock().unwrap());
                }
                json_answer(json!({
                    "access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
                    "refresh_token": "rt", "id_token": jwt(claims)
                }))
            }
        }
    }));
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

    // The same provider with a valid token: the checks above are what refused it.
    let base = oidc_idp(
        json!({"aud": ["mycli", "api"], "sub": "alice", "org_id": "org_acme", "exp": now() + 300}),
        true,
    );
    oidc_login(&base).ok();
}

#[test]
fn a_discovery_document_for_another_issuer_or_with_plain_http_endpoints_is_refused() {
    let base = hostile_idp(Arc::new(|_, _, _| {
        json_answer(json!({
            "issuer": "https://evil.example.com",
            "authorization_endpoint": "https://evil.example.com/authorize",
            "token_endpoint": "https://evil.example.com/token",
        }))
    }));
    let run = Sandbox::new().run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        &base,
        "--client-id",
        "mycli",
        "--device",
    ]);
    run.code(1);
    assert!(run.stderr.contains("names the issuer"), "{run:#?}");

    let issuer = Arc::new(std::sync::OnceLock::<String>::new());
    let issuer2 = issuer.clone();
    let base = hostile_idp(Arc::new(move |_, _, _| {
        let i = issuer2.get().cloned().unwrap_or_default();
        json_answer(json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": "http://evil.example.com/token",
        }))
    }));
    issuer.set(base.clone()).unwrap();
    let run = Sandbox::new().run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        &base,
        "--client-id",
        "mycli",
        "--device",
    ]);
    run.code(1);
    assert!(run.stderr.contains("unsafe endpoint"), "{run:#?}");
}
