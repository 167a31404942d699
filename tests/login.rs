#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `mycli login` end to end: the real binary against the fake WorkOS / OIDC IdP over real HTTP.
//! PKCE on a loopback redirect, the device flow and its polling schedule, the automatic device
//! fallback, organizations, idempotent re-login, bad input, IdP faults and Ctrl-C.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{self, Connections, Response};
use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `mycli login ARGS` to the end and checks it did not panic.
fn login(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["login"];
    all.extend_from_slice(args);
    let run = sb.run(&all);
    assert_no_panic("login", &run.stderr);
    run
}

/// Starts `mycli login ARGS` in the background.
fn spawn_login(sb: &Sandbox, args: &[&str]) -> Bg {
    let mut all = vec!["login"];
    all.extend_from_slice(args);
    sb.spawn(&all)
}

/// A BROWSER program that only leaves a marker file behind; the marker's path.
fn marker_browser(sb: &mut Sandbox) -> PathBuf {
    let marker = sb.tmp.path().join("browser-ran");
    let script = sb.tmp.path().join("marker-browser.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    make_executable(&script);
    sb.set("BROWSER", &script.display().to_string());
    marker
}

/// A sandbox on `idp` whose BROWSER follows the authorize redirect with curl.
fn pkce_sandbox(idp: &Idp) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_idp(idp);
    let browser = sb.curl_browser();
    sb.set("BROWSER", &browser.display().to_string());
    // A login that waits for a callback that never comes fails the test in 20 s, not 300.
    sb.set("MYCLI_LOGIN_TIMEOUT", "20");
    sb
}

fn assert_store_empty(sb: &Sandbox) {
    let files = store_files(&sb.config_dir);
    assert!(
        files.is_empty(),
        "the store should be untouched, found {:?}",
        files.keys().collect::<Vec<_>>()
    );
}

/// The refresh tokens in credentials.toml and the access tokens in the token cache.
fn secrets(sb: &Sandbox) -> Vec<String> {
    let mut out: Vec<String> = credentials(sb).into_values().collect();
    if let Ok(dir) = std::fs::read_dir(sb.path("tokens")) {
        for entry in dir {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let cached: Value = serde_json::from_slice(&bytes).unwrap();
            out.push(cached["access_token"].as_str().unwrap().to_string());
        }
    }
    assert!(out.iter().all(|s| s.len() >= 20), "odd secrets: {out:?}");
    out
}

fn assert_no_secret_in(sb: &Sandbox, what: &str, text: &str) {
    let secrets = secrets(sb);
    assert!(!secrets.is_empty(), "no secret was stored");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into {what}:\n{text}"
        );
    }
}

/// Fetches `url` like a browser: follows the IdP's redirect to the loopback callback.
fn browse(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-L", "--max-redirs", "3", "-o", "/dev/null"])
        .args(["-w", "%{http_code}", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A GET without following redirects: the status.
fn get_status(url: &str) -> u16 {
    ureq::get(url)
        .config()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .call()
        .unwrap()
        .status()
        .as_u16()
}

fn context<'a>(contexts: &'a [Value], org: Option<&str>) -> &'a Value {
    contexts
        .iter()
        .find(|c| c["organization_id"].as_str() == org)
        .unwrap_or_else(|| panic!("no context for {org:?}: {contexts:#?}"))
}

fn device_polls(idp: &Idp) -> u64 {
    idp.stats()["grants"]["device_code"].as_u64().unwrap()
}

fn gaps(stats: &Value) -> Vec<u64> {
    stats["last_poll_gaps_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect()
}

/// The organization id of the current context, as `contexts -o json` reports it.
fn current(sb: &Sandbox) -> Option<String> {
    let contexts = sb.contexts_json();
    let current: Vec<&Value> = contexts.iter().filter(|c| c["current"] == true).collect();
    assert!(
        current.len() <= 1,
        "several current contexts: {contexts:#?}"
    );
    current
        .first()
        .map(|c| c["organization_id"].as_str().unwrap_or("_none").to_string())
}

const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// 1. PKCE against WorkOS
// ---------------------------------------------------------------------------------------------

#[test]
fn pkce_login_stores_the_org_context_and_shows_no_secret() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    let run = login(
        &sb,
        &["--org", "org_acme", "--login-hint", "alice@example.com"],
    );
    run.ok();
    assert_eq!(run.stdout, "", "stdout carries data only");
    for needle in ["Signed in", "org_acme", "alice@example.com", "PKCE"] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} missing:\n{}",
            run.stderr
        );
    }

    let stats = idp.stats();
    let q = &stats["last_authorize_query"];
    assert_eq!(q["client_id"], "client_test");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["provider"], "authkit");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].as_str().unwrap().len() >= 43, "{q:#}");
    assert!(q["state"].as_str().unwrap().len() >= 22, "{q:#}");
    assert_eq!(q["organization_id"], "org_acme");
    assert_eq!(q["login_hint"], "alice@example.com");
    let redirect = q["redirect_uri"].as_str().unwrap();
    let port = redirect
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.strip_suffix("/callback"))
        .unwrap_or_else(|| panic!("redirect_uri {redirect}"));
    assert!(port.parse::<u16>().unwrap() > 0);
    assert_eq!(stats["grants"]["authorization_code"], 1);
    assert_eq!(stats["last_token_request"]["code_verifier"], "<present>");

    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 1);
    let ctx = context(&contexts, Some("org_acme"));
    assert_eq!(ctx["current"], true);
    assert_eq!(ctx["method"], "pkce");
    assert_eq!(ctx["user"]["email"], "alice@example.com");
    assert_eq!(ctx["provider"]["kind"], "workos");
    assert_eq!(ctx["provider"]["issuer"], idp.base.as_str());
    assert_eq!(ctx["provider"]["client_id"], "client_test");
    assert_eq!(ctx["storage"], "file");
    assert_eq!(current(&sb).as_deref(), Some("org_acme"));
    assert!(sb.config()["contexts"].get("org_acme").is_some());

    assert_no_secret_in(&sb, "stdout", &run.stdout);
    assert_no_secret_in(&sb, "stderr", &run.stderr);
    assert_no_secret_in(&sb, "config.toml", &sb.config_text());
    assert_eq!(mode(&sb.path("credentials.toml")), 0o600);
    assert_eq!(mode(&sb.config_dir), 0o700);
    for (path, _) in store_files(&sb.config_dir) {
        if path.starts_with(sb.path("tokens")) {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. --port and --no-browser
// ---------------------------------------------------------------------------------------------

#[test]
fn port_flag_sets_the_redirect_uri() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    // Another process may take the port between free_port and mycli's bind: try another.
    let mut port = free_port();
    for attempt in 1.. {
        let run = login(&sb, &["--org", "org_acme", "--port", &port.to_string()]);
        if attempt < 5 && run.stderr.contains("could not listen on") {
            port = free_port();
            continue;
        }
        run.ok();
        break;
    }
    let q = &idp.stats()["last_authorize_query"];
    assert_eq!(
        q["redirect_uri"].as_str().unwrap(),
        format!("http://127.0.0.1:{port}/callback")
    );
    assert!(
        q.get("login_hint").is_none(),
        "no --login-hint, no login_hint: {q:#}"
    );
}

#[test]
fn port_with_device_is_a_usage_error() {
    // The device flow has no redirect: a --port there would be silently ignored.
    let sb = Sandbox::new();
    let run = sb.run(&["login", "--device", "--port", "8400", "--org", "org_acme"]);
    run.code(2);
    assert!(run.stderr.contains("--port"), "{}", run.stderr);
    assert!(!sb.config_dir.exists());
}

#[test]
fn no_browser_prints_the_url_and_never_runs_the_browser() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let marker = marker_browser(&mut sb);
    let mut bg = spawn_login(&sb, &["--org", "org_acme", "--no-browser"]);
    let stderr = bg.wait_stderr("Waiting for the sign-in");
    let url = authorize_url(&stderr);
    assert!(url.starts_with(&format!("{}/user_management/authorize?", idp.base)));
    assert!(
        bg.stdout.lock().unwrap().is_empty(),
        "the URL goes to stderr"
    );
    assert_eq!(browse(&url), "200");
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(!marker.exists(), "--no-browser ran BROWSER");
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_acme");
}

/// `--quiet` silences the conversation, not what the sign-in needs the user to see: without
/// the URL or the code nobody can approve it, and the login would only wait for its timeout.
#[test]
fn quiet_still_shows_the_url_and_the_code_a_sign_in_needs() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);

    let bg = sb.spawn(&["-q", "login", "--org", "org_acme", "--no-browser"]);
    assert!(
        wait_for(LONG, || bg.stderr().contains("authorize?")),
        "-q hid the authorize URL: {:?}",
        bg.stderr()
    );
    let url = authorize_url(&bg.stderr());
    assert_eq!(browse(&url), "200");
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(!run.stderr.contains("Waiting"), "{}", run.stderr);
    assert!(!run.stderr.contains("Signed in"), "{}", run.stderr);

    let bg = sb.spawn(&["-q", "login", "--org", "org_globex", "--device"]);
    assert!(
        wait_for(LONG, || device_polls(&idp) >= 1),
        "the device login did not start"
    );
    let stats = idp.stats();
    let user_code = stats["last_device"]["user_code"].as_str().unwrap();
    assert!(
        bg.stderr().contains(user_code),
        "-q hid the user code: {:?}",
        bg.stderr()
    );
    assert!(bg.stderr().contains(&format!("{}/device", idp.base)));
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_no_opaque_code(&run.stderr);
    assert!(!run.stderr.contains("Waiting"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// 3. The loopback callback
// ---------------------------------------------------------------------------------------------

#[test]
fn stray_callbacks_are_ignored_and_the_real_one_completes() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let (bg, port, url) = start_pkce_login(&sb);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        get_status(&format!("{base}/callback?code=x&state=WRONG")),
        400
    );
    assert_eq!(get_status(&format!("{base}/callback?code=x")), 400);
    assert_eq!(get_status(&format!("{base}/other?code=x&state=WRONG")), 404);
    assert_eq!(get_status(&format!("{base}/")), 404);
    assert_store_empty(&sb);

    // Still waiting: the real callback is answered and completes the login.
    assert_eq!(browse(&url), "200");
    let (run, _) = bg.finish(LONG);
    run.ok();
    // The forged code was never sent to the IdP: only the real one was exchanged.
    assert_eq!(idp.stats()["grants"]["authorization_code"], 1);
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_acme");
}

#[test]
fn wrong_state_from_the_idp_keeps_waiting_until_the_login_timeout() {
    let idp = Idp::start();
    idp.scenario(json!({"authorize_wrong_state": true}));
    let mut sb = pkce_sandbox(&idp);
    sb.set("MYCLI_LOGIN_TIMEOUT", "1.5");
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(1);
    // A fractional timeout is said as set, not truncated to "1 s".
    assert!(
        run.stderr.contains("no sign-in arrived within 1.5 s"),
        "{}",
        run.stderr
    );
    assert_eq!(idp.stats()["grants"]["authorization_code"], 0);
    assert_store_empty(&sb);
}

#[test]
fn an_error_on_the_callback_ends_the_login() {
    let idp = Idp::start();
    idp.scenario(json!({"authorize_error": "access_denied"}));
    let sb = pkce_sandbox(&idp);
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(1);
    assert!(
        run.stderr.contains("access_denied") && run.stderr.contains("Scenario: access_denied"),
        "the IdP's error and description: {}",
        run.stderr
    );
    assert_eq!(idp.stats()["grants"]["authorization_code"], 0);
    assert_store_empty(&sb);

    // A refused parameter: the hint names both places it can come from.
    idp.scenario(json!({"authorize_error": "invalid_request"}));
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(1);
    assert!(
        run.stderr.contains("hint:")
            && run.stderr.contains("--org")
            && run.stderr.contains("--client-id"),
        "{}",
        run.stderr
    );
    assert_store_empty(&sb);
}

#[test]
fn an_iss_from_another_issuer_is_refused() {
    let idp = Idp::start();
    idp.scenario(json!({"authorize_iss": "http://evil.example"}));
    let sb = pkce_sandbox(&idp);
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(1);
    assert!(run.stderr.contains("evil.example"), "{}", run.stderr);
    assert!(
        run.stderr
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("hint: "),
        "{}",
        run.stderr
    );
    assert_eq!(
        idp.stats()["grants"]["authorization_code"],
        0,
        "the code of a mixed-up response must not be exchanged"
    );
    assert_store_empty(&sb);
}

// ---------------------------------------------------------------------------------------------
// 4. Device flow
// ---------------------------------------------------------------------------------------------

fn device_sandbox(idp: &Idp) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_idp(idp);
    sb
}

/// The device flow end to end, with its timers: the first poll waits the interval, and a
/// `slow_down` adds 5 s (RFC 8628 §3.5). The other timer cases (no interval means 5 s, 429,
/// expiry, failed polls) are unit tests of `auth::device` under tokio's paused clock.
#[test]
fn device_login_shows_the_code_not_the_secret_and_honours_interval_and_slow_down() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "slow_down_next": 1}));
    let sb = device_sandbox(&idp);
    let mut bg = spawn_login(&sb, &["--org", "org_acme", "--device"]);
    bg.wait_stderr("Waiting for approval");
    assert!(wait_for(LONG, || device_polls(&idp) >= 1), "no poll");
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_eq!(run.stdout, "");

    let stats = idp.stats();
    let user_code = stats["last_device"]["user_code"].as_str().unwrap();
    assert!(run.stderr.contains(user_code), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{}/device", idp.base)),
        "verification_uri: {}",
        run.stderr
    );
    assert_no_opaque_code(&run.stderr);
    assert_no_secret_in(&sb, "stderr", &run.stderr);
    assert_eq!(stats["last_device_request"]["organization_id"], "org_acme");

    assert!(
        stats["last_device"]["first_poll_delay_ms"]
            .as_u64()
            .unwrap()
            >= 950,
        "the first poll must wait the interval: {stats:#}"
    );
    let gaps = gaps(&stats);
    assert_eq!(gaps.len(), 1, "{stats:#}");
    assert!(
        gaps[0] >= 5950,
        "the gap after slow_down must be 1 + 5 s: {gaps:?}"
    );
    assert_eq!(
        stats["slow_downs"], 1,
        "an extra slow_down was earned: {stats:#}"
    );

    let contexts = sb.contexts_json();
    let ctx = context(&contexts, Some("org_acme"));
    assert_eq!(ctx["method"], "device");
    assert_eq!(ctx["current"], true);
    assert!(run.stderr.contains("device code"), "{}", run.stderr);
}

#[test]
fn device_polling_rides_out_a_passing_idp_failure() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let sb = device_sandbox(&idp);
    let mut bg = spawn_login(&sb, &["--org", "org_acme", "--device"]);
    bg.wait_stderr("Waiting for approval");
    idp.scenario(json!({"fail_next": ["500", "502_html"]}));
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_eq!(
        run.stderr.matches("polling again").count(),
        2,
        "each failed poll is reported: {}",
        run.stderr
    );
    assert_eq!(sb.contexts_json().len(), 1);
}

#[test]
fn an_approval_whose_answer_was_lost_says_so_instead_of_code_already_used() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 3}));
    let sb = device_sandbox(&idp);
    let mut bg = spawn_login(&sb, &["--org", "org_acme", "--device"]);
    bg.wait_stderr("Waiting for approval");
    // Approved before the first poll (3 s away); that poll's answer, the session, is lost on
    // the way after the IdP spent the device code. The next poll can only hear "already used".
    idp.approve_device(json!({}));
    idp.scenario(json!({"fail_next": ["drop_after_rotate"]}));
    let (run, _) = bg.finish(LONG);
    run.code(1);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .collect();
    assert!(
        errors.len() == 2
            && errors[0].contains("answer")
            && errors[0].contains("lost")
            && errors[0].contains("Device code already used"),
        "the error says the approval's answer was lost: {run:#?}"
    );
    assert!(
        errors[1].starts_with("hint: ") && errors[1].contains("mycli login"),
        "{run:#?}"
    );
    assert_eq!(idp.stats()["faults_injected"], json!(["drop_after_rotate"]));
    assert_store_empty(&sb);
}

#[test]
fn device_polling_gives_up_after_three_failures_in_a_row() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let sb = device_sandbox(&idp);
    let mut bg = spawn_login(&sb, &["--org", "org_acme", "--device"]);
    bg.wait_stderr("Waiting for approval");
    idp.scenario(json!({"fail_next": ["500", "500", "500"]}));
    let (run, _) = bg.finish(LONG);
    run.code(1);
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    assert_store_empty(&sb);
}

#[test]
fn org_selection_during_a_device_login_is_completed_for_the_requested_org() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true,
        "org_selection_public": true}));
    let sb = device_sandbox(&idp);
    let bg = spawn_login(&sb, &["--org", "org_globex", "--device"]);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_eq!(idp.stats()["grants"]["organization_selection"], 1);
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_globex");
}

#[test]
fn org_selection_refused_for_a_public_client_says_what_to_do() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true}));
    let sb = device_sandbox(&idp);
    let bg = spawn_login(&sb, &["--org", "org_globex", "--device"]);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.code(1);
    assert!(run.stderr.contains("refused org_globex"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_store_empty(&sb);
}

#[test]
fn a_denied_device_login_exits_1_and_stores_nothing() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let sb = device_sandbox(&idp);
    let bg = spawn_login(&sb, &["--org", "org_acme", "--device"]);
    idp.approve_device(json!({"deny": true}));
    let (run, _) = bg.finish(LONG);
    run.code(1);
    assert!(run.stderr.contains("denied"), "{}", run.stderr);
    assert_store_empty(&sb);
}

#[test]
fn an_expired_device_code_exits_1_and_stores_nothing() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "device_expires_in": 2}));
    let sb = device_sandbox(&idp);
    let (run, elapsed) = spawn_login(&sb, &["--org", "org_acme", "--device"]).finish(LONG);
    run.code(1);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_store_empty(&sb);
}

// ---------------------------------------------------------------------------------------------
// 5. Automatic device fallback
// ---------------------------------------------------------------------------------------------

/// Runs `login --org org_acme` with no flow flag, approving a device code if one shows up.
fn login_choosing_the_flow(idp: &Idp, sb: &Sandbox) -> Run {
    idp.scenario(json!({"device_interval": 1}));
    let mut bg = spawn_login(sb, &["--org", "org_acme"]);
    let waited = wait_for(Duration::from_secs(20), || {
        let e = bg.stderr();
        e.contains("Waiting for approval")
            || e.contains("Signed in")
            || !e.is_empty() && !bg.running()
    });
    assert!(waited, "{}", bg.stderr());
    if bg.stderr().contains("Waiting for approval") {
        idp.approve_device(json!({}));
    }
    let (run, _) = bg.finish(LONG);
    run.ok();
    run
}

#[test]
fn no_browser_and_no_display_falls_back_to_the_device_flow() {
    let idp = Idp::start();
    let sb = device_sandbox(&idp);
    let run = login_choosing_the_flow(&idp, &sb);
    assert!(
        run.stderr.contains("device code flow") && run.stderr.contains("DISPLAY"),
        "stderr must say why: {}",
        run.stderr
    );
    assert_eq!(sb.contexts_json()[0]["method"], "device");
    assert_eq!(idp.stats()["last_authorize_query"], Value::Null);
}

#[test]
fn ssh_without_browser_falls_back_to_the_device_flow_even_with_a_display() {
    let idp = Idp::start();
    let mut sb = device_sandbox(&idp);
    sb.set("DISPLAY", ":0");
    sb.set("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22");
    let run = login_choosing_the_flow(&idp, &sb);
    assert!(
        run.stderr.contains("device code flow") && run.stderr.contains("SSH"),
        "stderr must say why: {}",
        run.stderr
    );
    assert_eq!(sb.contexts_json()[0]["method"], "device");
    assert_eq!(idp.stats()["last_authorize_query"], Value::Null);
}

#[test]
fn a_display_and_a_browser_use_pkce() {
    let idp = Idp::start();
    let mut sb = pkce_sandbox(&idp);
    sb.set("DISPLAY", ":0");
    let run = login_choosing_the_flow(&idp, &sb);
    assert!(!run.stderr.contains("device code flow"), "{}", run.stderr);
    assert_eq!(sb.contexts_json()[0]["method"], "pkce");
    let stats = idp.stats();
    assert_eq!(stats["grants"]["device_code"], 0);
    assert_eq!(stats["grants"]["authorization_code"], 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Organizations
// ---------------------------------------------------------------------------------------------

fn assert_lists_the_orgs(run: &Run) {
    run.code(1);
    for needle in [
        "org_acme (Acme Corp)",
        "org_globex (Globex Corporation)",
        "mycli login --org",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} missing:\n{}",
            run.stderr
        );
    }
}

#[test]
fn several_orgs_without_org_lists_them_with_a_hint() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    let run = login(&sb, &[]);
    assert_lists_the_orgs(&run);
    assert_store_empty(&sb);
}

#[test]
fn several_orgs_without_org_on_the_device_flow_lists_them_too() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let sb = device_sandbox(&idp);
    let bg = spawn_login(&sb, &["--device"]);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    assert_lists_the_orgs(&run);
    assert_store_empty(&sb);
}

#[test]
fn a_user_without_org_is_stored_under_the_no_org_key() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    let run = login(&sb, &["--login-hint", "carol@example.com"]);
    run.ok();
    assert!(run.stderr.contains("carol@example.com"), "{}", run.stderr);
    assert!(
        sb.config()["contexts"].get("_none").is_some(),
        "{}",
        sb.config_text()
    );
    assert_eq!(current(&sb).as_deref(), Some("_none"));
    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0]["organization_id"], Value::Null);
    assert_eq!(contexts[0]["user"]["email"], "carol@example.com");
    assert_eq!(contexts[0]["current"], true);
}

#[test]
fn a_session_for_another_org_is_refused_and_not_stored() {
    let idp = Idp::start();
    idp.scenario(json!({"force_org": "org_globex"}));
    let sb = pkce_sandbox(&idp);
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(1);
    assert!(
        run.stderr.contains("signed you in to") && run.stderr.contains("not org_acme"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("org_globex"), "{}", run.stderr);
    assert_store_empty(&sb);
}

#[test]
fn an_org_the_user_is_not_in_is_refused_by_the_idp() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    let run = login(
        &sb,
        &["--login-hint", "bob@example.com", "--org", "org_globex"],
    );
    run.code(1);
    assert!(
        run.stderr.contains("organization_invalid"),
        "{}",
        run.stderr
    );
    assert_store_empty(&sb);
}

// ---------------------------------------------------------------------------------------------
// 7. Re-login and several organizations
// ---------------------------------------------------------------------------------------------

#[test]
fn two_orgs_live_side_by_side() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    login(&sb, &["--org", "org_acme"]).ok();
    login(&sb, &["--org", "org_globex"]).ok();
    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 2);
    assert_eq!(context(&contexts, Some("org_globex"))["current"], true);
    assert_eq!(context(&contexts, Some("org_acme"))["current"], false);
    assert_eq!(current(&sb).as_deref(), Some("org_globex"));
    assert_eq!(
        secrets(&sb).len(),
        4,
        "two refresh tokens, two access tokens"
    );

    // previous = acme: `switch -` goes back to it, and a second time returns to globex.
    sb.run(&["switch", "-"]).ok();
    assert_eq!(current(&sb).as_deref(), Some("org_acme"));
    sb.run(&["switch", "-"]).ok();
    assert_eq!(current(&sb).as_deref(), Some("org_globex"));
    sb.run(&["switch", "-"]).ok();
    let acme_name = context(&sb.contexts_json(), Some("org_acme"))["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sb.run(&["current"]).stdout.trim(), acme_name);
}

#[test]
fn relogin_with_a_usable_session_switches_without_the_idp() {
    let idp = Idp::start();
    let mut sb = pkce_sandbox(&idp);
    login(&sb, &["--org", "org_acme"]).ok();
    login(&sb, &["--org", "org_globex"]).ok();
    assert_eq!(current(&sb).as_deref(), Some("org_globex"));
    let before = secrets(&sb);

    idp.admin("/__admin/reset-stats", json!({}));
    let marker = marker_browser(&mut sb);
    sb.set("MYCLI_LOGIN_TIMEOUT", "5");
    let run = login(&sb, &["--org", "org_acme"]);
    run.ok();
    // The words the contract quotes, as a script greps for them.
    assert!(run.stderr.contains("already signed in"), "{}", run.stderr);
    assert_eq!(current(&sb).as_deref(), Some("org_acme"));
    let stats = idp.stats();
    assert_eq!(
        stats["requests"],
        json!({}),
        "no request reached the IdP: {stats:#}"
    );
    assert_eq!(stats["last_authorize_query"], Value::Null);
    assert!(!marker.exists(), "an already-signed-in login ran BROWSER");
    assert_eq!(secrets(&sb), before);
    // The switch remembered globex as the previous context.
    sb.run(&["switch", "-"]).ok();
    assert_eq!(current(&sb).as_deref(), Some("org_globex"));

    let browser = sb.curl_browser();
    sb.set("BROWSER", &browser.display().to_string());
    let run = login(&sb, &["--org", "org_acme", "--force"]);
    run.ok();
    assert!(run.stderr.contains("Signed in"), "{}", run.stderr);
    assert!(!run.stderr.to_lowercase().contains("already signed in"));
    assert_eq!(idp.stats()["grants"]["authorization_code"], 1);
    assert_ne!(secrets(&sb), before, "--force must fetch a new session");
    assert_eq!(sb.contexts_json().len(), 2);
}

#[test]
fn relogin_with_a_name_renames_the_usable_context() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    login(&sb, &["--org", "org_acme"]).ok();
    idp.admin("/__admin/reset-stats", json!({}));
    let run = login(&sb, &["--org", "org_acme", "--name", "acme"]);
    run.ok();
    assert!(run.stderr.contains("\"acme\""), "{}", run.stderr);
    assert_eq!(idp.stats()["requests"], json!({}));
    assert_eq!(sb.run(&["current"]).stdout.trim(), "acme");
}

// ---------------------------------------------------------------------------------------------
// 8. Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn a_malformed_org_is_a_usage_error() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    for org in ["bad", "org_ with space", "org_", "_none", ""] {
        let run = login(&sb, &["--org", org]);
        run.code(2);
        assert!(
            run.stderr.contains("organization id"),
            "{org:?}: {}",
            run.stderr
        );
    }
    assert_eq!(idp.stats()["requests"], json!({}));
    assert_store_empty(&sb);
}

#[test]
fn a_plain_http_issuer_is_refused() {
    let sb = Sandbox::new();
    let run = login(
        &sb,
        &[
            "--issuer",
            "http://example.com",
            "--client-id",
            "client_test",
            "--org",
            "org_acme",
            "--device",
        ],
    );
    run.code(2);
    assert!(
        run.stderr.contains("http://example.com") && run.stderr.contains("https://"),
        "{}",
        run.stderr
    );
    assert_store_empty(&sb);
    // Other shapes an issuer cannot have: each is one error and a hint.
    for bad in [
        "ftp://idp.example.com",
        "https://idp.example.com/?tenant=a",
        "not a url",
    ] {
        let run = login(
            &sb,
            &[
                "--issuer",
                bad,
                "--client-id",
                "client_test",
                "--org",
                "org_acme",
                "--device",
            ],
        );
        run.code(2);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(
            lines.len() == 2 && lines[0].starts_with("error: ") && lines[1].starts_with("hint: "),
            "{bad}: {run:#?}"
        );
    }
}

#[test]
fn https_and_loopback_issuers_are_accepted() {
    let sb = Sandbox::new();
    let dead = DeadPort::new();
    let port = dead.port.to_string();
    for issuer in [
        format!("https://127.0.0.1:{port}"),
        "http://localhost:1".to_string(),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let run = login(
            &sb,
            &[
                "--issuer",
                &issuer,
                "--client-id",
                "client_test",
                "--org",
                "org_acme",
                "--device",
            ],
        );
        run.code(1);
        assert!(
            run.stderr.contains("could not connect"),
            "{issuer}: {}",
            run.stderr
        );
    }
    assert_store_empty(&sb);
}

#[test]
fn a_missing_client_id_is_a_usage_error() {
    let sb = Sandbox::new();
    let run = login(&sb, &["--org", "org_acme"]);
    run.code(2);
    assert!(run.stderr.contains("client id"), "{}", run.stderr);
    assert!(run.stderr.contains("--client-id"), "hint: {}", run.stderr);
    assert_store_empty(&sb);
}

#[test]
fn an_unknown_client_id_is_one_error_and_a_hint_naming_where_it_comes_from() {
    let idp = Idp::start();
    for provider in [
        &["--issuer", &idp.base][..],
        &[
            "--provider",
            "oidc",
            "--issuer",
            &format!("{}/oidc", idp.base),
        ],
    ] {
        let sb = Sandbox::new();
        let run = sb.run(
            &[
                &[
                    "login",
                    "--device",
                    "--org",
                    "org_acme",
                    "--client-id",
                    "client_typo",
                ][..],
                provider,
            ]
            .concat(),
        );
        run.code(1);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert!(
            lines.len() == 2
                && lines[0].starts_with("error: ")
                && lines[0].contains("invalid_client"),
            "{run:#?}"
        );
        assert!(
            lines[1].starts_with("hint: ")
                && lines[1].contains("--client-id")
                && lines[1].contains("MYCLI_CLIENT_ID"),
            "{run:#?}"
        );
        assert_store_empty(&sb);
    }
}

#[test]
fn a_name_clash_is_refused_before_any_network_call() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    sb.write_config(&context_toml("org_acme", "work"));
    let before = sb.config_text();
    let run = login(&sb, &["--org", "org_globex", "--name", "work"]);
    run.code(2);
    assert!(
        run.stderr.contains("\"work\"") && run.stderr.contains("already exists"),
        "{}",
        run.stderr
    );
    assert_eq!(idp.stats()["requests"], json!({}), "no network call");
    assert_eq!(sb.config_text(), before);
}

// ---------------------------------------------------------------------------------------------
// 9. Faults
// ---------------------------------------------------------------------------------------------

fn error_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("error:")).count()
}

#[test]
fn an_idp_that_is_down_is_one_clear_line() {
    let dead = DeadPort::new();
    let port = dead.port;
    let base = format!("http://127.0.0.1:{port}");
    let sb = Sandbox::new();
    let run = login(
        &sb,
        &[
            "--issuer",
            &base,
            "--client-id",
            "client_test",
            "--org",
            "org_acme",
            "--device",
        ],
    );
    run.code(1);
    assert_eq!(error_lines(&run.stderr), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("could not connect to 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );

    // OIDC: discovery is the first call, before any browser.
    let oidc = format!("{base}/oidc");
    let run = login(
        &sb,
        &[
            "--provider",
            "oidc",
            "--issuer",
            &oidc,
            "--client-id",
            "client_test",
            "--no-browser",
        ],
    );
    run.code(1);
    assert_eq!(error_lines(&run.stderr), 1, "{}", run.stderr);
    assert!(run.stderr.contains("could not connect"), "{}", run.stderr);
    assert_store_empty(&sb);
}

/// A TLS failure is named as one, whether the certificate is not trusted or the server does
/// not speak TLS at all (an https:// issuer on a plain-http port): "could not connect" sent
/// the user to check a network that worked.
#[test]
fn a_tls_failure_is_one_line_that_says_tls() {
    let tmp = tempfile::tempdir().unwrap();
    // A certificate from a CA nobody trusts here (the sandbox has no SSL_CERT_FILE).
    let (untrusted, _ca) = http::serve_tls(tmp.path(), |_| Response::json(json!({})));
    // A real HTTP server, which answers a ClientHello with a plain-text 400.
    let plain = Idp::start();
    let plain_as_https = plain.base.replacen("http://", "https://", 1);
    let sb = Sandbox::new();
    for (what, issuer) in [
        ("untrusted certificate", untrusted.base.clone()),
        ("no TLS at all", plain_as_https),
    ] {
        for kind in ["workos", "oidc"] {
            let run = login(
                &sb,
                &[
                    "--provider",
                    kind,
                    "--issuer",
                    &issuer,
                    "--client-id",
                    "client_test",
                    "--org",
                    "org_acme",
                    "--device",
                ],
            );
            run.code(1);
            assert_eq!(
                error_lines(&run.stderr),
                1,
                "{what}, {kind}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains("TLS failure"),
                "{what}, {kind}: {}",
                run.stderr
            );
            assert!(
                !run.stderr.contains("could not connect"),
                "{what}, {kind}: {}",
                run.stderr
            );
            assert_store_empty(&sb);
        }
    }
}

#[test]
fn bad_token_answers_are_named_and_store_nothing() {
    let idp = Idp::start();
    for (fault, expect) in [
        ("500", "HTTP 500"),
        ("502_html", "HTTP 502 with an HTML page"),
        ("html", "HTML page instead of JSON"),
        ("truncated", "truncated JSON"),
    ] {
        idp.scenario(json!({"fail_next": [fault]}));
        let sb = pkce_sandbox(&idp);
        let run = login(&sb, &["--org", "org_acme"]);
        run.code(1);
        assert!(run.stderr.contains(expect), "{fault}: {}", run.stderr);
        assert_eq!(error_lines(&run.stderr), 1, "{}", run.stderr);
        assert_store_empty(&sb);
    }
    let stats = idp.stats();
    assert_eq!(
        stats["faults_injected"],
        json!(["500", "502_html", "html", "truncated"])
    );
}

#[test]
fn a_hanging_idp_times_out() {
    let idp = Idp::start();
    idp.scenario(json!({"fail_next": ["hang"]}));
    let mut sb = pkce_sandbox(&idp);
    sb.set("MYCLI_HTTP_TIMEOUT", "2");
    let (run, elapsed) = spawn_login(&sb, &["--org", "org_acme"]).finish(LONG);
    run.code(1);
    assert!(
        run.stderr.contains("did not answer within 2 s"),
        "{}",
        run.stderr
    );
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(6500),
        "took {elapsed:?}"
    );
    assert_store_empty(&sb);
}

// ---------------------------------------------------------------------------------------------
// 10. Ctrl-C
// ---------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_during_device_polling_exits_130_and_changes_nothing() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    login(&sb, &["--org", "org_acme"]).ok();
    let before = store_files(&sb.config_dir);
    assert!(!before.is_empty());

    idp.scenario(json!({"device_interval": 1}));
    let mut bg = spawn_login(&sb, &["--org", "org_globex", "--device"]);
    bg.wait_stderr("Waiting for approval");
    assert!(wait_for(Duration::from_secs(15), || device_polls(&idp) >= 1));
    bg.sigint();
    let (run, elapsed) = bg.finish(LONG);
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert!(elapsed < Duration::from_secs(15));
    assert_eq!(
        store_files(&sb.config_dir),
        before,
        "Ctrl-C changed the store"
    );
    assert_eq!(current(&sb).as_deref(), Some("org_acme"));
}

#[test]
fn ctrl_c_during_the_pkce_wait_exits_130_and_frees_the_port() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let (bg, port, _) = start_pkce_wait(&sb);
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_err(),
        "mycli should hold the loopback port while it waits"
    );
    bg.sigint();
    let (run, _) = bg.finish(LONG);
    assert_eq!(run.code, Some(130), "{run:#?}");
    TcpListener::bind(("127.0.0.1", port)).expect("the loopback port is free after Ctrl-C");
    assert_store_empty(&sb);
}

// ---------------------------------------------------------------------------------------------
// 11. OIDC dialect
// ---------------------------------------------------------------------------------------------

fn oidc_args(idp: &Idp) -> Vec<String> {
    [
        "--provider",
        "oidc",
        "--issuer",
        &format!("{}/oidc", idp.base),
    ]
    .into_iter()
    .map(str::to_string)
    .chain(["--client-id".into(), "client_test".into()])
    .collect()
}

fn assert_oidc_context(sb: &Sandbox, idp: &Idp, method: &str) {
    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 1);
    let ctx = context(&contexts, Some("org_globex"));
    assert_eq!(ctx["provider"]["kind"], "oidc");
    assert_eq!(ctx["provider"]["issuer"], format!("{}/oidc", idp.base));
    assert_eq!(ctx["provider"]["client_id"], "client_test");
    assert_eq!(ctx["user"]["email"], "alice@example.com");
    assert_eq!(ctx["method"], method);
    assert_eq!(ctx["current"], true);
}

#[test]
fn oidc_pkce_login() {
    let idp = Idp::start();
    let sb = pkce_sandbox(&idp);
    let mut args = oidc_args(&idp);
    args.extend(["--org".into(), "org_globex".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = login(&sb, &args);
    run.ok();
    assert_eq!(run.stdout, "");
    assert_no_secret_in(&sb, "stderr", &run.stderr);
    assert_oidc_context(&sb, &idp, "pkce");

    let q = &idp.stats()["last_authorize_query"];
    let scope: Vec<&str> = q["scope"].as_str().unwrap().split(' ').collect();
    assert!(
        scope.contains(&"openid") && scope.contains(&"offline_access"),
        "{q:#}"
    );
    assert!(q["nonce"].as_str().unwrap().len() >= 22, "{q:#}");
    assert_eq!(q["organization"], "org_globex");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.get("provider").is_none(), "{q:#}");
}

#[test]
fn oidc_device_login() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let sb = device_sandbox(&idp);
    let mut args = oidc_args(&idp);
    args.extend(["--org".into(), "org_globex".into(), "--device".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bg = spawn_login(&sb, &args);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_no_opaque_code(&run.stderr);
    assert_oidc_context(&sb, &idp, "device");
    let req = &idp.stats()["last_device_request"];
    assert_eq!(req["organization"], "org_globex");
    assert!(
        req["scope"].as_str().unwrap().contains("offline_access"),
        "{req:#}"
    );
}

/// Entra ID's v1 endpoints send `expires_in` and `interval` as JSON strings (`"3599"`): the
/// numbers are read, not the whole answer refused as one mycli does not understand.
#[test]
fn oidc_numbers_sent_as_strings_are_read() {
    let idp = Idp::start();
    idp.scenario(
        json!({"device_interval": 1, "numbers_as_strings": true, "access_token_ttl": 3600}),
    );
    let sb = device_sandbox(&idp);
    let mut args = oidc_args(&idp);
    args.extend(["--org".into(), "org_globex".into(), "--device".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bg = spawn_login(&sb, &args);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(LONG);
    run.ok();
    assert_oidc_context(&sb, &idp, "device");
    // The interval of "1" was honoured, not replaced by the 5 s default.
    let delay = idp.stats()["last_device"]["first_poll_delay_ms"]
        .as_u64()
        .unwrap();
    assert!(delay < 4000, "first poll after {delay} ms");
}

// ---------------------------------------------------------------------------------------------
// Keep-alive connections the server has dropped
// ---------------------------------------------------------------------------------------------

/// A minimal WorkOS device endpoint whose connections serve one request each and are then
/// dropped when the next request arrives on them: what a client sees when a server (Node,
/// Apache: 5 s) closes an idle keep-alive connection just as the client reuses it.
fn one_request_per_connection_idp(interval: u64) -> (String, Arc<Mutex<Vec<String>>>) {
    let server = http::serve_with(Connections::OneRequestThenDrop, move |req| {
        Response::json(if req.path.ends_with("/authorize/device") {
            json!({"device_code": "dc", "user_code": "BCDF-GHJK",
                "verification_uri": "http://127.0.0.1:1/device",
                "expires_in": 60, "interval": interval})
        } else {
            json!({"user": {"id": "user_alice", "email": "alice@example.com"},
                "organization_id": "org_acme", "access_token": "at_not_a_jwt",
                "refresh_token": "rt_opaque_refresh_token"})
        })
    });
    (server.base, server.log)
}

#[test]
fn device_polling_survives_a_server_closing_idle_connections() {
    let (base, log) = one_request_per_connection_idp(3);
    let sb = Sandbox::new();
    let (run, _) = spawn_login(
        &sb,
        &[
            "--issuer",
            &base,
            "--client-id",
            "client_test",
            "--org",
            "org_acme",
            "--device",
        ],
    )
    .finish(LONG);
    let log = log.lock().unwrap().clone();
    assert_eq!(run.code, Some(0), "{run:#?}\nserver: {log:?}");
    assert!(
        !log.iter().any(|l| l.starts_with("dropped")),
        "a connection idle for the whole poll interval was reused: {log:?}"
    );
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_acme");
}

/// On a terminal, a user of several organizations picks one from the list instead of
/// starting over with `--org`.
#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_the_user_picks_the_organization() {
    use std::io::Write;
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "org_selection_public": true}));
    let sb = device_sandbox(&idp);
    let mut child = sb
        .terminal_cmd(&format!("'{BIN}' login --device"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs the binary on a terminal");
    let mut stdin = child.stdin.take().unwrap();
    idp.approve_device(json!({}));
    stdin.write_all(b"2\n").unwrap();
    stdin.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The names are aligned, and the chosen one names the context.
    assert!(text.contains("1) org_acme    Acme Corp"), "{text}");
    assert!(text.contains("2) org_globex  Globex Corporation"), "{text}");
    assert!(text.contains("\"globex-corporation\""), "{text}");
    assert!(text.contains("Sign in to which one?"), "{text}");
    assert_eq!(idp.stats()["grants"]["organization_selection"], 1);
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_globex");
}
