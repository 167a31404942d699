#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The token lifecycle through the real binary over real HTTP: `token`, refresh on expiry,
//! the 32-process storm, revoked and lost sessions, transient IdP faults, `refresh`,
//! `status`, `logout` (WorkOS and OIDC), secrets never printed, and a hung lock holder.
//!
//! Every test signs in with the real `mycli login --device` against `tests/idp/workos-idp.mjs`
//! (a strict IdP that rotates refresh tokens and revokes the whole session when a retired one
//! is reused), and every output of every command is checked for secrets at the end.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// `common::World` (a sandbox at its own test IdP, with every output any command printed and
/// every secret the store ever held), signed in and run through `wait_with_output`.
impl World {
    /// Signs in with the real device flow, approved at the IdP as alice.
    fn login(&mut self, args: &[&str]) -> Run {
        let mut all = vec!["login", "--device"];
        all.extend_from_slice(args);
        let child = self
            .sb
            .cmd()
            .args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.idp().approve_device(json!({}));
        let run = self.finish(&all.join(" "), child, false);
        run.ok();
        run
    }

    fn login_org(&mut self, org: &str, name: &str) -> Run {
        self.login(&["--org", org, "--name", name])
    }

    fn run(&mut self, args: &[&str]) -> Run {
        self.run_env(&[], args)
    }

    fn run_env(&mut self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = self.sb.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.finish(&args.join(" "), child, args.contains(&"token"))
    }

    /// Starts a command without waiting for it (for the storms).
    fn spawn(&self, args: &[&str]) -> Child {
        self.sb
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits for a command, logs its output and harvests the secrets now in the store.
    fn finish(&mut self, what: &str, child: Child, token_stdout: bool) -> Run {
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.log_run(what, &run, token_stdout);
        self.harvest();
        run
    }

    /// Remembers every refresh and access token the store holds right now.
    fn harvest(&mut self) {
        let refresh_tokens: Vec<String> = self
            .credential_keys()
            .iter()
            .filter_map(|key| self.refresh_token(key))
            .collect();
        self.harvest_with(refresh_tokens);
    }

    /// No refresh token in any output; an access token only on the stdout of `token`.
    fn assert_no_secrets(&self) {
        assert!(
            !self.refresh_tokens.is_empty() && !self.access_tokens.is_empty(),
            "the secrets check found no secrets to look for"
        );
        self.assert_no_secret_printed(|l, at| l.token_stdout && l.run.stdout == format!("{at}\n"));
    }

    fn credentials_text(&self) -> String {
        std::fs::read_to_string(self.sb.path("credentials.toml")).unwrap_or_default()
    }

    fn credentials_bytes(&self) -> Vec<u8> {
        std::fs::read(self.sb.path("credentials.toml")).unwrap_or_default()
    }

    fn credential_keys(&self) -> Vec<String> {
        let table: toml::Table = toml::from_str(&self.credentials_text()).unwrap_or_default();
        table.keys().cloned().collect()
    }

    /// The refresh token of a context in credentials.toml.
    fn refresh_token(&self, key: &str) -> Option<String> {
        let table: toml::Table = toml::from_str(&self.credentials_text()).unwrap_or_default();
        table
            .get(key)?
            .get("refresh-token")?
            .as_str()
            .map(str::to_string)
    }

    /// Moves the cached token's expiry to 30 s from now: inside the 60 s refresh margin.
    fn make_stale(&self, key: &str) {
        self.expire_cached_in(key, 30);
    }

    fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap()
    }

    /// The IdP's view of the session with this id.
    fn session(&self, sid: &str) -> Value {
        let sessions = self.idp().get("/__admin/sessions");
        sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == sid)
            .unwrap_or_else(|| panic!("no session {sid} at the IdP"))
            .clone()
    }

    fn contexts(&mut self) -> Vec<Value> {
        contexts_of(&self.run(&["contexts", "-o", "json"]))
    }

    fn context(&mut self, name: &str) -> Value {
        context_named(self.contexts(), name)
    }
}

/// A refresh grant made directly at the IdP with `rt`: the HTTP status and the answer.
fn refresh_at_idp(url: &str, rt: &str) -> (u16, Value) {
    let mut resp = ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .send_form([
            ("grant_type", "refresh_token"),
            ("client_id", "client_test"),
            ("refresh_token", rt),
        ])
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An error is one clear message (plus a hint), not a panic or a backtrace.
fn assert_clear_error(run: &Run) {
    assert!(
        run.stderr.starts_with("error: "),
        "expected `error: ...` on stderr: {run:#?}"
    );
    assert!(
        run.stderr.lines().count() <= 3,
        "the error should be short: {run:#?}"
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{run:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. token
// ---------------------------------------------------------------------------------------------

#[test]
fn token_prints_only_the_access_token_and_makes_no_request_while_valid() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");

    let first = w.run(&["token"]);
    let token = printed_token(&first);
    assert_eq!(first.stderr, "", "token wrote to stderr");
    assert_valid_for(&token, "org_acme", &w.base);
    assert_eq!(Some(token.clone()), w.cached("org_acme"));

    let before = w.stats()["requests"].clone();
    for _ in 0..20 {
        let run = w.run(&["token"]);
        assert_eq!(printed_token(&run), token);
        assert_eq!(run.stderr, "", "token wrote to stderr");
    }
    assert_eq!(
        w.stats()["requests"],
        before,
        "a valid cached token must not cost a request to the IdP"
    );

    // The other context, by --context and by MYCLI_CONTEXT, without touching `current`.
    let globex = printed_token(&w.run(&["--context", "globex", "token"]));
    assert_valid_for(&globex, "org_globex", &w.base);
    assert_ne!(globex, token);
    let by_env = printed_token(&w.run_env(&[("MYCLI_CONTEXT", "globex")], &["token"]));
    assert_eq!(by_env, globex);
    assert_eq!(w.run(&["current"]).stdout, "acme\n");
    assert_eq!(w.stats()["requests"], before);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 2. Expiry: refresh, rotation saved, the rotated token used next time
// ---------------------------------------------------------------------------------------------

#[test]
fn expired_token_refreshes_and_the_rotated_refresh_token_is_used_next() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    let login_token = w.cached("org_acme").unwrap();
    let rt0 = w.refresh_token("org_acme").unwrap();
    let sid = claims(&login_token)["sid"].as_str().unwrap().to_string();

    w.expire_cached_in("org_acme", 30);
    let first = w.run(&["token"]);
    let t1 = printed_token(&first);
    assert_ne!(t1, login_token, "an expiring token must be refreshed");
    assert_eq!(claims(&t1)["org_id"], "org_acme");
    assert_eq!(claims(&t1)["sid"], sid.as_str(), "same session");
    let rt1 = w.refresh_token("org_acme").unwrap();
    assert_ne!(rt1, rt0, "the rotated refresh token must be saved");
    assert_eq!(Some(t1.clone()), w.cached("org_acme"));
    assert_eq!(w.refreshes(), 1);

    // The second expiry refreshes with the rotated token: no reuse, session alive.
    w.expire_cached_in("org_acme", 30);
    let t2 = printed_token(&w.run(&["token"]));
    assert_ne!(t2, t1);
    assert_eq!(claims(&t2)["org_id"], "org_acme");
    let rt2 = w.refresh_token("org_acme").unwrap();
    assert_ne!(rt2, rt1);
    let stats = w.stats();
    assert_eq!(stats["grants"]["refresh_token"], 2);
    assert_eq!(stats["refresh_success"], 2);
    assert_eq!(stats["refresh_reuse_detected"], 0);
    assert_eq!(w.session(&sid)["revoked"], false);
    assert_eq!(w.context("acme")["needs_login"], false);
    w.assert_no_secrets();
}

#[test]
fn a_token_that_lives_under_a_minute_is_refreshed_only_in_its_second_half() {
    // margin = min(60 s, lifetime / 2): a 45 s token is served for its first 22 s.
    let mut w = World::with_scenario(json!({"access_token_ttl": 45}));
    w.login_org("org_acme", "acme");
    let login_token = w.cached("org_acme").unwrap();
    for _ in 0..3 {
        assert_eq!(printed_token(&w.run(&["token"])), login_token);
    }
    assert_eq!(w.refreshes(), 0, "a 45 s token was refreshed at once");
    // In its last 22 s it is refreshed once, and the new one is served again.
    let path = w.cache_path("org_acme");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["issued_at"] = json!(now() - 25);
    v["expires_at"] = json!(now() + 20);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let fresh = printed_token(&w.run(&["token"]));
    assert_ne!(fresh, login_token);
    assert_eq!(printed_token(&w.run(&["token"])), fresh);
    assert_eq!(w.refreshes(), 1);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 3. The storm
// ---------------------------------------------------------------------------------------------

#[test]
fn thirty_two_token_processes_at_expiry_make_exactly_one_refresh() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    let old = w.cached("org_acme").unwrap();
    let sid = claims(&old)["sid"].as_str().unwrap().to_string();
    // A slow refresh keeps the others waiting while it is in flight.
    w.idp().scenario(json!({"refresh_delay_ms": 300}));
    w.make_stale("org_acme");
    let before = w.refreshes();

    let children: Vec<Child> = (0..32).map(|_| w.spawn(&["token"])).collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| w.finish("token (storm)", c, true))
        .collect();

    let tokens: BTreeSet<String> = runs.iter().map(printed_token).collect();
    assert_eq!(tokens.len(), 1, "all 32 must print the same token");
    let token = tokens.into_iter().next().unwrap();
    assert_ne!(token, old, "the stale token must not be handed out");
    assert_valid_for(&token, "org_acme", &w.base);
    assert_eq!(Some(token), w.cached("org_acme"));
    for run in &runs {
        assert_eq!(run.stderr, "", "token wrote to stderr");
    }
    assert_eq!(
        w.refreshes() - before,
        1,
        "exactly one refresh must reach the IdP"
    );
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    assert_eq!(w.session(&sid)["revoked"], false);
    w.assert_no_secrets();
}

#[test]
fn storm_over_two_contexts_makes_one_refresh_each() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    w.login_org("org_globex", "globex");
    let old_acme = w.cached("org_acme").unwrap();
    let old_globex = w.cached("org_globex").unwrap();
    w.idp().scenario(json!({"refresh_delay_ms": 300}));
    w.make_stale("org_acme");
    w.make_stale("org_globex");
    let before = w.refreshes();

    let children: Vec<(&str, Child)> = (0..32)
        .map(|i| {
            let name = if i % 2 == 0 { "acme" } else { "globex" };
            (name, w.spawn(&["--context", name, "token"]))
        })
        .collect();
    let mut acme = BTreeSet::new();
    let mut globex = BTreeSet::new();
    for (name, child) in children {
        let run = w.finish(&format!("--context {name} token (storm)"), child, true);
        let token = printed_token(&run);
        if name == "acme" {
            acme.insert(token);
        } else {
            globex.insert(token);
        }
    }
    assert_eq!(acme.len(), 1, "all acme processes print the same token");
    assert_eq!(globex.len(), 1, "all globex processes print the same token");
    let acme = acme.into_iter().next().unwrap();
    let globex = globex.into_iter().next().unwrap();
    assert_ne!(acme, old_acme);
    assert_ne!(globex, old_globex);
    assert_valid_for(&acme, "org_acme", &w.base);
    assert_valid_for(&globex, "org_globex", &w.base);
    assert_eq!(w.refreshes() - before, 2, "one refresh per context");
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 4. A session ended at the IdP
// ---------------------------------------------------------------------------------------------

/// After the IdP ended acme's session: exit 4 with the login hint, the context kept and
/// marked, globex untouched; a new login brings acme back.
fn assert_acme_needs_login_and_globex_works(w: &mut World) {
    w.make_stale("org_acme");
    let run = w.run(&["token"]);
    run.code(4);
    assert_eq!(run.stdout, "");
    assert_clear_error(&run);
    assert!(
        run.stderr.contains("mycli login --org org_acme"),
        "the hint must say how to sign in again: {run:#?}"
    );

    let acme = w.context("acme");
    assert_eq!(acme["needs_login"], true, "{acme:#}");
    assert_eq!(acme["organization_id"], "org_acme");
    assert_eq!(acme["current"], true, "the context stays current");
    w.run(&["status"]).code(4);
    let json = w.run(&["status", "-o", "json"]);
    json.code(4);
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap()["needs_login"],
        true
    );
    assert!(json.stderr.contains("mycli login --org org_acme"));

    // A marked context does not hammer the IdP.
    let before = w.refreshes();
    w.run(&["token"]).code(4);
    assert_eq!(w.refreshes(), before);

    // globex's session is untouched: its refresh works.
    let globex_rt = w.refresh_token("org_globex");
    assert!(globex_rt.is_some(), "globex's secret must be kept");
    w.make_stale("org_globex");
    let globex = printed_token(&w.run(&["--context", "globex", "token"]));
    assert_valid_for(&globex, "org_globex", &w.base);
    assert_eq!(w.context("globex")["needs_login"], false);
    w.run(&["status", "globex"]).ok();

    // Signing in again clears the mark.
    w.login_org("org_acme", "acme");
    assert_eq!(w.context("acme")["needs_login"], false);
    assert_valid_for(&printed_token(&w.run(&["token"])), "org_acme", &w.base);
    w.run(&["status"]).ok();
}

#[test]
fn revoked_session_needs_login_and_other_contexts_are_untouched() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");
    let sid = claims(&w.cached("org_acme").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = w
        .idp()
        .admin_status("/__admin/revoke-session", json!({"sid": sid}));
    assert_eq!(status, 200);
    assert_acme_needs_login_and_globex_works(&mut w);
    w.assert_no_secrets();
}

#[test]
fn invalid_grant_needs_login_and_other_contexts_are_untouched() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");
    w.idp().scenario(json!({"fail_next": ["invalid_grant"]}));
    assert_acme_needs_login_and_globex_works(&mut w);
    assert_eq!(w.stats()["faults_injected"], json!(["invalid_grant"]));
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 5. Transient failures keep the session
// ---------------------------------------------------------------------------------------------

#[test]
fn transient_refresh_failures_keep_the_session() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    for fault in [
        "500",
        "502_html",
        "429",
        "html",
        "truncated",
        "truncated_stream",
        "hang",
    ] {
        w.make_stale("org_acme");
        let creds = w.credentials_bytes();
        let stale = w.cached("org_acme").unwrap();
        // A request whose answer was lost (cut off, or none in time) is sent once more: the
        // fault hits both.
        let faults = if matches!(fault, "truncated_stream" | "hang") {
            json!([fault, fault])
        } else {
            json!([fault])
        };
        w.idp().scenario(json!({ "fail_next": faults }));
        let started = Instant::now();
        let run = w.run_env(&[("MYCLI_HTTP_TIMEOUT", "2")], &["token"]);
        let took = started.elapsed();
        run.code(1);
        assert_eq!(run.stdout, "", "{fault}: no token on failure");
        assert_clear_error(&run);
        assert!(took < Duration::from_secs(15), "{fault}: took {took:?}");
        assert!(
            w.credentials_bytes() == creds,
            "{fault}: credentials.toml must be byte-identical"
        );
        assert_eq!(w.cached("org_acme"), Some(stale), "{fault}: cache kept");
        let acme = w.context("acme");
        assert_eq!(acme["needs_login"], false, "{fault}: {acme:#}");
        assert_eq!(
            w.stats()["faults_injected"].as_array().unwrap().last(),
            Some(&json!(fault)),
            "{fault} must have reached mycli"
        );

        // The next call succeeds with the kept refresh token.
        let token = printed_token(&w.run(&["token"]));
        assert_valid_for(&token, "org_acme", &w.base);
        assert!(w.credentials_bytes() != creds, "{fault}: rotation saved");
    }
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.assert_no_secrets();
}

// A lost answer after the IdP rotated the refresh token: mycli never saw the new token, so
// credentials.toml still holds the retired one. mycli sends the same request once more at once.
// WorkOS documents a replay grace window (~30 s) in which the retired token returns the same
// rotated pair, so the same `token` succeeds. An IdP without a grace window (the test IdP's
// default, and any strict OAuth 2.1 server) treats it as reuse and revokes the whole session
// (which was lost with the answer anyway): `token` exits 4 and the user must sign in again.

fn drop_after_rotate(w: &mut World) -> (Run, String, Vec<u8>) {
    w.login_org("org_acme", "acme");
    let sid = claims(&w.cached("org_acme").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    w.make_stale("org_acme");
    let creds = w.credentials_bytes();
    w.idp()
        .scenario(json!({"fail_next": ["drop_after_rotate"]}));
    let run = w.run(&["token"]);
    assert_eq!(w.stat("refresh_success"), 1, "the IdP did rotate");
    assert_eq!(w.stats()["grants"]["refresh_token"], 2, "sent once more");
    (run, sid, creds)
}

#[test]
fn lost_refresh_answer_is_recovered_inside_the_grace_window() {
    let mut w = World::with_scenario(json!({"refresh_grace_ms": 30000}));
    let (run, sid, creds) = drop_after_rotate(&mut w);
    run.ok();
    assert_eq!(run.stderr, "");
    assert_valid_for(&printed_token(&run), "org_acme", &w.base);
    assert_eq!(w.stat("refresh_grace_replays"), 1);
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    assert!(w.credentials_bytes() != creds, "the replayed pair is saved");

    // The saved token is the live one: the next expiry refreshes normally.
    w.make_stale("org_acme");
    assert_valid_for(&printed_token(&w.run(&["token"])), "org_acme", &w.base);
    assert_eq!(w.stat("refresh_grace_replays"), 1);
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    assert_eq!(w.session(&sid)["revoked"], false);
    w.assert_no_secrets();
}

#[test]
fn lost_refresh_answer_without_grace_window_needs_login() {
    let mut w = World::with_scenario(json!({}));
    let (run, sid, _) = drop_after_rotate(&mut w);
    run.code(4);
    assert_eq!(run.stdout, "");
    assert_clear_error(&run);
    assert!(
        run.stderr.contains("mycli login --org org_acme"),
        "{run:#?}"
    );
    assert_eq!(w.stat("refresh_reuse_detected"), 1);
    assert_eq!(w.session(&sid)["revoked"], true);
    assert_eq!(w.context("acme")["needs_login"], true);
    w.run(&["status"]).code(4);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 6. refresh
// ---------------------------------------------------------------------------------------------

#[test]
fn refresh_forces_a_new_token_and_saves_the_rotation() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");
    let acme0 = (w.cached("org_acme").unwrap(), w.refresh_token("org_acme"));
    let globex0 = (
        w.cached("org_globex").unwrap(),
        w.refresh_token("org_globex"),
    );

    // The current context, although its token is valid.
    let run = w.run(&["refresh"]);
    run.ok();
    assert_eq!(run.stdout, "", "refresh prints no data");
    assert!(run.stderr.contains("acme"), "{run:#?}");
    assert!(
        run.stderr.contains("expires in "),
        "stderr must say when the token expires: {run:#?}"
    );
    let acme1 = (w.cached("org_acme").unwrap(), w.refresh_token("org_acme"));
    assert_ne!(acme1.0, acme0.0, "a new access token");
    assert_ne!(acme1.1, acme0.1, "the rotated refresh token is saved");
    assert_valid_for(&acme1.0, "org_acme", &w.base);
    assert_eq!(w.refreshes(), 1);
    // The new token is what `token` hands out, without another request.
    assert_eq!(printed_token(&w.run(&["token"])), acme1.0);
    assert_eq!(w.refreshes(), 1);
    assert_eq!(
        (
            w.cached("org_globex").unwrap(),
            w.refresh_token("org_globex")
        ),
        globex0,
        "refresh touches only the selected context"
    );

    // By name, not current.
    let run = w.run(&["refresh", "globex"]);
    run.ok();
    assert!(run.stderr.contains("globex") && run.stderr.contains("expires in "));
    let globex1 = (
        w.cached("org_globex").unwrap(),
        w.refresh_token("org_globex"),
    );
    assert_ne!(globex1.0, globex0.0);
    assert_ne!(globex1.1, globex0.1);
    assert_valid_for(&globex1.0, "org_globex", &w.base);
    assert_eq!(
        (w.cached("org_acme").unwrap(), w.refresh_token("org_acme")),
        acme1
    );
    assert_eq!(w.run(&["current"]).stdout, "acme\n");
    assert_eq!(w.refreshes(), 2);

    // --all.
    let run = w.run(&["refresh", "--all"]);
    run.ok();
    assert!(run.stderr.contains("acme") && run.stderr.contains("globex"));
    assert_eq!(run.stderr.matches("expires in ").count(), 2, "{run:#?}");
    assert_eq!(w.refreshes(), 4);
    assert_ne!(w.refresh_token("org_acme"), acme1.1);
    assert_ne!(w.refresh_token("org_globex"), globex1.1);
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    for (name, org) in [("acme", "org_acme"), ("globex", "org_globex")] {
        let token = printed_token(&w.run(&["--context", name, "token"]));
        assert_valid_for(&token, org, &w.base);
    }
    assert_eq!(w.refreshes(), 4);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 7. status
// ---------------------------------------------------------------------------------------------

#[test]
fn status_describes_the_session_and_exits_4_when_it_needs_login() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");

    let run = w.run(&["status"]);
    run.ok();
    for part in [
        "acme",
        "org_acme",
        "alice@example.com",
        "workos",
        "client_test",
    ] {
        assert!(run.stdout.contains(part), "status lacks {part}: {run:#?}");
    }

    let run = w.run(&["status", "-o", "json"]);
    run.ok();
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    // The listing's object, plus the rights the access token states (the schema only grows).
    let token = claims(&w.cached("org_acme").unwrap());
    assert_eq!(status["role"], token["role"], "{status:#}");
    assert_eq!(status["permissions"], token["permissions"], "{status:#}");
    let mut listed = status.clone();
    for rights in ["role", "permissions"] {
        listed.as_object_mut().unwrap().remove(rights);
    }
    assert_eq!(
        listed,
        w.context("acme"),
        "status -o json is the contexts -o json object and the token's rights"
    );
    for key in [
        "name",
        "organization_id",
        "organization_name",
        "user",
        "current",
        "provider",
        "storage",
        "access_token_expires_at",
        "needs_login",
    ] {
        assert!(status.get(key).is_some(), "status -o json lacks {key}");
    }
    assert_eq!(status["name"], "acme");
    assert_eq!(status["organization_id"], "org_acme");
    // WorkOS's authenticate answer carries no organization name: null (unknown) is right.
    assert!(
        status["organization_name"].is_null() || status["organization_name"] == "Acme Corp",
        "{status:#}"
    );
    assert_eq!(status["user"]["id"], "user_alice");
    assert_eq!(status["user"]["email"], "alice@example.com");
    assert_eq!(status["current"], true);
    assert_eq!(status["provider"]["kind"], "workos");
    assert_eq!(status["provider"]["issuer"], w.base.as_str());
    assert_eq!(status["provider"]["client_id"], "client_test");
    assert_eq!(status["storage"], "file");
    assert_eq!(status["needs_login"], false);
    let expires = status["access_token_expires_at"].as_str().unwrap();
    let parsed = humantime::parse_rfc3339(expires)
        .unwrap_or_else(|e| panic!("{expires:?} is not RFC 3339: {e}"));
    let exp = claims(&w.cached("org_acme").unwrap())["exp"]
        .as_i64()
        .unwrap();
    assert_eq!(
        parsed
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        exp,
        "access_token_expires_at is the token's exp"
    );

    let run = w.run(&["status", "globex", "-o", "json"]);
    run.ok();
    let mut globex: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(globex["current"], false);
    assert_eq!(globex["organization_id"], "org_globex");
    assert_eq!(globex["role"], "member", "{globex:#}");
    globex.as_object_mut().unwrap().remove("role");
    globex.as_object_mut().unwrap().remove("permissions");
    assert_eq!(globex, w.context("globex"));

    // Needs login: exit 4 for both forms, the object says so.
    let sid = claims(&w.cached("org_acme").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    w.idp()
        .admin("/__admin/revoke-session", json!({"sid": sid}));
    w.make_stale("org_acme");
    w.run(&["token"]).code(4);
    let run = w.run(&["status"]);
    run.code(4);
    assert!(run.stdout.contains("acme"), "the table is still printed");
    assert!(run.stderr.contains("mycli login --org org_acme"));
    let run = w.run(&["status", "-o", "json"]);
    run.code(4);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["needs_login"], true);
    assert_eq!(status, w.context("acme"));
    w.run(&["status", "globex"]).ok();
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 8. logout
// ---------------------------------------------------------------------------------------------

fn assert_gone_locally(w: &mut World, name: &str, key: &str) {
    assert!(
        w.contexts().iter().all(|c| c["name"] != name),
        "{name} is still listed"
    );
    assert!(
        !w.credential_keys().iter().any(|k| k == key),
        "credentials.toml still has {key}"
    );
    assert!(!w.cache_path(key).exists(), "tokens/{key}.json is left");
    assert!(
        !w.sb.config_text().contains(key),
        "config.toml still names {key}"
    );
}

#[test]
fn logout_ends_the_workos_session_and_removes_the_context() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    w.login_org("org_globex", "globex");
    let rt = w.refresh_token("org_globex").unwrap();
    let sid = claims(&w.cached("org_globex").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();

    let run = w.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr.contains("was ended at the identity provider"),
        "stderr must say the server-side end succeeded: {run:#?}"
    );
    assert!(!run.stderr.contains("warning"), "{run:#?}");
    let stats = w.stats();
    assert_eq!(stats["logouts"], 1);
    assert_eq!(stats["logout_requests"][0]["session_id"], sid.as_str());
    assert_eq!(stats["logout_requests"][0]["status"], 200);
    assert_eq!(w.session(&sid)["revoked"], true);
    let (status, body) = refresh_at_idp(&format!("{}/user_management/authenticate", w.base), &rt);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    assert_gone_locally(&mut w, "globex", "org_globex");
    let current = w.run(&["current"]);
    current.code(1);
    assert_eq!(current.stdout, "");
    w.run(&["token"]).code(1);

    // acme is untouched: listed, not current, its session refreshes.
    assert_eq!(w.context("acme")["current"], false);
    w.make_stale("org_acme");
    let token = printed_token(&w.run(&["--context", "acme", "token"]));
    assert_valid_for(&token, "org_acme", &w.base);
    w.assert_no_secrets();
}

#[test]
fn logout_of_an_older_context_learns_the_session_id_by_one_refresh() {
    // Contexts signed in before `session-id` was kept in config.toml, whose cached token is
    // gone too: logout still ends the WorkOS session.
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    let sid = claims(&w.cached("org_acme").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let older: String =
        w.sb.config_text()
            .lines()
            .filter(|l| !l.starts_with("session-id"))
            .map(|l| format!("{l}\n"))
            .collect();
    assert_ne!(older, w.sb.config_text(), "config.toml kept a session-id");
    w.sb.write_config(&older);
    std::fs::remove_file(w.cache_path("org_acme")).unwrap();

    let run = w.run(&["logout", "acme"]);
    run.ok();
    assert!(
        run.stderr.contains("was ended at the identity provider"),
        "{run:#?}"
    );
    let stats = w.stats();
    assert_eq!(stats["logout_requests"][0]["session_id"], sid.as_str());
    assert_eq!(w.session(&sid)["revoked"], true);
    assert_gone_locally(&mut w, "acme", "org_acme");
    w.assert_no_secrets();
}

#[test]
fn logout_with_the_idp_down_still_removes_the_local_session() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_globex", "globex");
    w.login_org("org_acme", "acme");
    w.stop_idp();
    let started = Instant::now();
    let run = w.run(&["logout", "acme"]);
    run.ok();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        run.stderr
            .contains("the server-side session may still be active"),
        "stderr must warn that the server-side session may live on: {run:#?}"
    );
    assert!(
        !run.stderr.contains("was ended at the identity provider"),
        "{run:#?}"
    );
    assert_gone_locally(&mut w, "acme", "org_acme");
    w.run(&["current"]).code(1);
    assert!(w.refresh_token("org_globex").is_some());
    assert!(w.cached("org_globex").is_some());
    w.assert_no_secrets();
}

#[test]
fn logout_all_ends_every_session() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    w.login_org("org_globex", "globex");
    let sids: BTreeSet<String> = ["org_acme", "org_globex"]
        .iter()
        .map(|k| {
            claims(&w.cached(k).unwrap())["sid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let rts: Vec<String> = ["org_acme", "org_globex"]
        .iter()
        .map(|k| w.refresh_token(k).unwrap())
        .collect();

    let run = w.run(&["logout", "--all"]);
    run.ok();
    assert_eq!(
        run.stderr
            .matches("was ended at the identity provider")
            .count(),
        2,
        "{run:#?}"
    );
    let stats = w.stats();
    let logged_out: BTreeSet<String> = stats["logout_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged_out, sids);
    for sid in &sids {
        assert_eq!(w.session(sid)["revoked"], true);
    }
    for rt in &rts {
        let (status, _) = refresh_at_idp(&format!("{}/user_management/authenticate", w.base), rt);
        assert_eq!(status, 400);
    }
    assert!(w.contexts().is_empty());
    assert!(w.credential_keys().is_empty());
    let left: Vec<_> = std::fs::read_dir(w.sb.path("tokens"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "tokens/ still holds {left:?}");
    w.run(&["current"]).code(1);
    w.assert_no_secrets();
}

fn oidc_logout(knobs: Value) {
    let mut w = World::with_scenario(knobs);
    let issuer = format!("{}/oidc", w.base);
    w.login(&[
        "--provider",
        "oidc",
        "--issuer",
        &issuer,
        "--org",
        "org_acme",
        "--name",
        "acme",
    ]);
    let ctx = w.context("acme");
    assert_eq!(ctx["provider"]["kind"], "oidc");
    assert_eq!(ctx["provider"]["issuer"], issuer.as_str());
    let rt0 = w.refresh_token("org_acme").unwrap();
    let t0 = printed_token(&w.run(&["token"]));
    assert_eq!(claims(&t0)["org_id"], "org_acme");
    // An OIDC refresh (token endpoint from discovery) rotates and saves too.
    w.make_stale("org_acme");
    let t1 = printed_token(&w.run(&["token"]));
    assert_ne!(t1, t0);
    assert_eq!(claims(&t1)["org_id"], "org_acme");
    let rt = w.refresh_token("org_acme").unwrap();
    assert_ne!(rt, rt0, "the rotated refresh token is saved");
    assert_eq!(w.refreshes(), 1);

    let run = w.run(&["-v", "logout"]);
    run.ok();
    assert!(
        run.stderr.contains("was ended at the identity provider"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("may still be active"), "{run:#?}");
    assert!(
        run.stderr.contains(&format!("> POST {issuer}/revoke"))
            && run.stderr.contains("token=[redacted]")
            && run.stderr.contains("token_type_hint=refresh_token"),
        "-v shows the revocation with the token redacted: {run:#?}"
    );
    let stats = w.stats();
    let revokes = stats["revoke_requests"].as_array().unwrap();
    let rt_revoke = revokes
        .iter()
        .find(|r| r["token_type_hint"] == "refresh_token")
        .unwrap_or_else(|| panic!("no refresh token revocation: {revokes:#?}"));
    assert_eq!(rt_revoke["result"], "session_revoked");
    assert_eq!(rt_revoke["client_id"], "client_test");
    let (status, body) = refresh_at_idp(&format!("{issuer}/token"), &rt);
    assert_eq!(status, 400, "the refresh token must be dead: {body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_gone_locally(&mut w, "acme", "org_acme");
    w.run(&["current"]).code(1);
    w.assert_no_secrets();
}

#[test]
fn oidc_logout_revokes_the_refresh_token() {
    oidc_logout(json!({}));
}

#[test]
fn oidc_logout_succeeds_when_access_tokens_cannot_be_revoked() {
    oidc_logout(json!({"revoke_unsupported_access": true}));
}

#[test]
fn verbose_logout_shows_the_error_fields_of_a_refused_revocation() {
    let mut w = World::new();
    let issuer = format!("{}/oidc", w.base);
    w.login(&[
        "--provider",
        "oidc",
        "--issuer",
        &issuer,
        "--org",
        "org_acme",
        "--name",
        "acme",
    ]);
    // A client the IdP no longer knows: its revocation endpoint answers 401 invalid_client.
    let config = w.sb.path("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("client-id = \"client_test\""), "{text}");
    std::fs::write(
        &config,
        text.replace("client-id = \"client_test\"", "client-id = \"client_gone\""),
    )
    .unwrap();
    let run = w.run(&["-v", "logout"]);
    assert!(
        run.stderr.contains("< 401 error=invalid_client"),
        "-v shows the response's error fields: {run:#?}"
    );
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 9. -v shows the exchange, never a secret
// ---------------------------------------------------------------------------------------------

#[test]
fn verbose_output_shows_the_exchange_with_secrets_redacted() {
    let mut w = World::with_scenario(json!({}));
    let login = w.login(&["-v", "--org", "org_acme", "--name", "acme"]);
    let device = format!("> POST {}/user_management/authorize/device", w.base);
    assert!(login.stderr.contains(&device), "{login:#?}");
    assert!(
        login.stderr.contains("device_code=[redacted]"),
        "{login:#?}"
    );
    assert_eq!(
        login.stderr.matches("device_code=").count(),
        login.stderr.matches("device_code=[redacted]").count(),
        "every device_code is redacted"
    );
    assert!(login.stderr.contains("< 200"));
    let sid = claims(&w.cached("org_acme").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();

    // A refresh: method, URL, status, the refresh token redacted; stdout is the token only.
    w.make_stale("org_acme");
    let run = w.run(&["-v", "token"]);
    let token = printed_token(&run);
    let post = format!("> POST {}/user_management/authenticate", w.base);
    assert!(run.stderr.contains(&post), "{run:#?}");
    assert!(run.stderr.contains("grant_type=refresh_token"), "{run:#?}");
    assert!(run.stderr.contains("refresh_token=[redacted]"), "{run:#?}");
    assert!(run.stderr.contains("< 200"), "{run:#?}");
    assert!(!run.stderr.contains(&token));

    let run = w.run(&["-v", "refresh"]);
    run.ok();
    assert!(run.stderr.contains(&post) && run.stderr.contains("refresh_token=[redacted]"));

    // An error answer shows its error fields.
    w.idp().scenario(json!({"fail_next": ["429"]}));
    let run = w.run(&["-v", "refresh"]);
    run.code(1);
    assert!(
        run.stderr.contains("< 429") && run.stderr.contains("too_many_requests"),
        "{run:#?}"
    );

    for args in [
        &["-v", "status"][..],
        &["-v", "status", "-o", "json"],
        &["-v", "contexts"],
        &["-v", "contexts", "-o", "json"],
        &["-v", "current"],
    ] {
        w.run(args).ok();
    }

    let run = w.run(&["-v", "logout"]);
    run.ok();
    let logout = format!(
        "> GET {}/user_management/sessions/logout?session_id=[redacted]",
        w.base
    );
    assert!(run.stderr.contains(&logout), "{run:#?}");
    assert!(!run.stderr.contains(&sid), "the session id is redacted");
    assert!(run.stderr.contains("< 200"), "{run:#?}");
    assert_eq!(w.stat("logouts"), 1);
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 10. A hung process holds the context lock
// ---------------------------------------------------------------------------------------------

#[test]
fn a_held_context_lock_ends_token_in_bounded_time_naming_the_lock() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme");
    w.make_stale("org_acme");
    let locks = w.sb.path("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock_path = w.sb.context_lock("org_acme");
    // flock(2) on its own open file description, exactly what a hung mycli would hold.
    // (std's File::lock is flock on Linux; the crate forbids unsafe code, so no libc call.)
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    #[allow(clippy::disallowed_methods)] // a hung mycli holding the lock, played by hand
    holder.lock().unwrap();

    let started = Instant::now();
    let run = w.run_env(
        &[("MYCLI_LOCK_TIMEOUT", "1"), ("MYCLI_HTTP_TIMEOUT", "1")],
        &["token"],
    );
    let took = started.elapsed();
    run.code(1);
    assert_eq!(run.stdout, "");
    assert_clear_error(&run);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        run.stderr.contains(&lock_path.display().to_string()),
        "the error must name the lock file: {run:#?}"
    );
    assert_eq!(w.refreshes(), 0, "no refresh without the lock");
    assert_eq!(w.context("acme")["needs_login"], false);

    // Once the holder is gone the token refreshes.
    drop(holder);
    let token = printed_token(&w.run(&["token"]));
    assert_valid_for(&token, "org_acme", &w.base);
    assert_eq!(w.refreshes(), 1);
    w.assert_no_secrets();
}

/// The access token's expiry in this machine's clock, as `status -o json` states it.
fn expires_in_secs(w: &mut World, name: &str) -> i64 {
    let status: Value =
        serde_json::from_str(&w.run(&["status", name, "-o", "json"]).stdout).unwrap();
    let at = status["access_token_expires_at"].as_str().unwrap();
    let at = humantime::parse_rfc3339(at)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    at - now()
}

#[test]
fn an_idp_whose_clock_is_off_by_an_hour_works_as_if_it_were_not() {
    // The IdP states expiry in its own clock (`exp`); its `Date` header says how far that
    // clock is from this machine's. Ahead: the token would be served for an hour after it died.
    let mut w = World::with_scenario(json!({"clock_offset_s": 3600}));
    let run = w.login_org("org_acme", "acme");
    run.ok();
    assert!(
        ["3599", "3600", "3601"].iter().any(|s| run
            .stderr
            .contains(&format!("clock is {s} s behind the identity provider's"))),
        "{}",
        run.stderr
    );
    let left = expires_in_secs(&mut w, "acme");
    assert!(
        (240..=330).contains(&left),
        "the token lives 300 s, mycli says {left} s"
    );

    // Behind: every token looked dead on arrival, so no sign-in could succeed.
    w.idp().scenario(json!({"clock_offset_s": -3600}));
    w.login_org("org_globex", "globex").ok();
    let left = expires_in_secs(&mut w, "globex");
    assert!(
        (240..=330).contains(&left),
        "the token lives 300 s, mycli says {left} s"
    );

    // A cached token is served without asking the IdP again, and a refresh is corrected too.
    let before = w.refreshes();
    let token = printed_token(&w.run(&["--context", "globex", "token"]));
    assert_eq!(claims(&token)["org_id"], "org_globex");
    assert_eq!(w.refreshes(), before, "a fresh token was refreshed");
    w.make_stale("org_globex");
    printed_token(&w.run(&["--context", "globex", "token"]));
    assert_eq!(w.refreshes(), before + 1);
    let left = expires_in_secs(&mut w, "globex");
    assert!(
        (240..=330).contains(&left),
        "after a refresh mycli says {left} s"
    );
}

#[test]
fn a_storm_of_exec_needing_five_minutes_makes_one_refresh() {
    // The cached token is usable for `token` but expires within exec's five minutes: every
    // exec needs a new one, and the first to take the lock fetches it for all.
    // The refresh takes over a second, so the token it fetches is stamped after every exec
    // asked (the cache counts whole seconds).
    let mut w = World::with_scenario(json!({"refresh_delay_ms": 1100}));
    w.login_org("org_acme", "acme").ok();
    w.expire_cached_in("org_acme", 120);
    let before = w.refreshes();
    let children: Vec<Child> = (0..6)
        .map(|_| w.spawn(&["exec", "--", "sh", "-c", "test -n \"$MYCLI_TOKEN\""]))
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        w.finish(&format!("exec {i}"), child, false).ok();
    }
    assert_eq!(w.refreshes(), before + 1, "one refresh for the whole storm");
    w.assert_no_secrets();
}

#[test]
fn a_refreshed_token_that_arrives_expired_is_never_served_and_costs_no_session() {
    let mut w = World::with_scenario(json!({}));
    w.login_org("org_acme", "acme").ok();
    w.make_stale("org_acme");
    // The IdP (or a clock its `Date` header cannot explain) hands out a token expired a
    // minute ago: mycli saves the rotated refresh token, and prints nothing.
    w.idp().scenario(json!({"access_token_ttl": -60}));
    let run = w.run(&["token"]);
    run.code(1);
    assert_eq!(run.stdout, "", "an expired token was served");
    assert!(run.stderr.contains("session is kept"), "{run:#?}");
    // With a sane IdP again, the same session refreshes: its rotated secret was kept.
    w.idp().scenario(json!({"access_token_ttl": 300}));
    let token = printed_token(&w.run(&["token"]));
    assert_valid_for(&token, "org_acme", &w.base);
    assert_eq!(w.stats()["refresh_reuse_detected"], 0);
    w.assert_no_secrets();
}
