#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end against software nobody here wrote: panva's certified `oidc-provider`
//! (`tests/idp/oidc-server.mjs`), real headless Chromium driven by playwright-core as the
//! `BROWSER` program (`tests/idp/browser`), and the provider's own device page
//! (`tests/idp/approve-device.mjs`).
//!
//! Every process a test starts (mycli, the BROWSER program, node, Chromium and its helpers)
//! inherits a marker variable unique to that test; each test ends by checking that none of
//! them is still running, and kills any leftover on the way out, pass or fail.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const MARK: &str = "MYCLI_E2E_MARK";
const CLIENT_ID: &str = "mycli";

/// The processes one test started, found by the marker in their environment.
struct Procs {
    needle: Vec<u8>,
}

impl Procs {
    fn pids(&self) -> Vec<u32> {
        let me = std::process::id();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                // zombies and processes of other users read as empty or unreadable
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == self.needle))
            })
            .collect()
    }

    fn describe(pids: &[u32]) -> String {
        pids.iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                format!("{pid}: {}", cmd.chars().take(160).collect::<String>())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill_all(&self) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits for every process of the test to end (the BROWSER program closes Chromium after
    /// mycli has its answer). Those that outlive `timeout` are killed and listed.
    fn leftovers(&self, timeout: Duration) -> Option<String> {
        if wait_for(timeout, || self.pids().is_empty()) {
            return None;
        }
        let left = self.pids();
        let text = Procs::describe(&left);
        self.kill_all();
        (!left.is_empty()).then_some(text)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// One test's world: a running oidc-provider, a sandboxed mycli pointed at it.
struct E2e {
    // dropped first: kills what is left before the sandbox and the provider go away
    procs: Procs,
    idp: Idp,
    sb: Sandbox,
    outs: AtomicUsize,
}

impl E2e {
    fn start(provider_env: &[(&str, &str)]) -> E2e {
        // Missing pieces fail here, loudly, instead of as a 60 s login timeout.
        let idp = Idp::start_oidc_provider(provider_env);
        assert!(
            repo()
                .join("tests/idp/node_modules/playwright-core")
                .exists(),
            "tests/idp/node_modules/playwright-core is missing: run scripts/setup"
        );
        let chromium = std::env::var("MYCLI_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".to_string());
        assert!(
            Path::new(&chromium).exists(),
            "{chromium} is missing: run scripts/setup (it installs Debian's chromium)"
        );
        let mut sb = Sandbox::new();
        let tmp = sb.tmp.path().display().to_string();
        let mark = format!("oidc-e2e-{tmp}");
        sb.set(MARK, &mark)
            .set("MYCLI_PROVIDER", "oidc")
            .set("MYCLI_ISSUER", &idp.base)
            .set("MYCLI_CLIENT_ID", CLIENT_ID)
            .set("MYCLI_LOGIN_TIMEOUT", "60")
            .set("MYCLI_TEST_BROWSER_TIMEOUT", "45")
            // Chromium's throwaway profile lands in the sandbox, removed with it.
            .set("TMPDIR", &tmp);
        if let Ok(chromium) = std::env::var("MYCLI_TEST_CHROMIUM") {
            sb.set("MYCLI_TEST_CHROMIUM", &chromium);
        }
        E2e {
            idp,
            sb,
            procs: Procs {
                needle: format!("{MARK}={mark}").into_bytes(),
            },
            outs: AtomicUsize::new(0),
        }
    }

    fn run_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let out = self
            .sb
            .cmd()
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_env(&[], args)
    }

    /// `mycli ARGS` with BROWSER = the real headless Chromium. Returns mycli's run and, once
    /// the browser has finished, the text of the page it landed on (mycli's callback page).
    fn browser_login(&self, env: &[(&str, &str)], args: &[&str]) -> (Run, String) {
        let n = self.outs.fetch_add(1, Ordering::SeqCst);
        let out_file = self.sb.tmp.path().join(format!("browser-out-{n}.txt"));
        let browser = repo().join("tests/idp/browser").display().to_string();
        let out_path = out_file.display().to_string();
        let mut all_env = vec![
            ("BROWSER", browser.as_str()),
            ("MYCLI_TEST_BROWSER_OUT", out_path.as_str()),
        ];
        all_env.extend_from_slice(env);
        let run = self.run_env(&all_env, args);
        // mycli exits as soon as it has the code; the browser then closes Chromium.
        if let Some(left) = self.procs.leftovers(Duration::from_secs(30)) {
            panic!(
                "still running after `mycli {}`:\n{left}\n{run:#?}",
                args.join(" ")
            );
        }
        let page = std::fs::read_to_string(&out_file).unwrap_or_default();
        (run, page)
    }

    /// `mycli login --org ORG --device`, approved as `login` by typing the user code into the
    /// provider's own device page in Chromium.
    fn device_login(&self, org: &str, login: &str) -> Run {
        let mut child = self
            .sb
            .cmd()
            .args(["login", "--org", org, "--device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        let stdout_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });

        let prompt = loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("To sign in, open ")
                        && let Some((url, code)) = rest.split_once(" and enter the code: ")
                    {
                        break (url.trim().to_string(), code.trim().to_string());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mycli never printed the verification URL and code:\n{}",
                        reader.join().unwrap()
                    );
                }
            }
        };
        let (url, code) = prompt;
        assert!(
            url.starts_with(&self.idp.base),
            "verification_uri {url:?} is not on the provider {}",
            self.idp.base
        );
        assert!(!code.is_empty());

        let approve = Command::new("node")
            .arg(repo().join("tests/idp/approve-device.mjs"))
            .args([url.as_str(), "--code", code.as_str(), "--login", login])
            .args(["--timeout", "45"])
            .env(MARK, self.mark_value())
            .env("TMPDIR", self.sb.tmp.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            approve.status.success(),
            "approve-device.mjs failed: {}",
            String::from_utf8_lossy(&approve.stderr)
        );

        // mycli polls every 5 s (the provider sends no interval).
        let end = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mycli did not finish the device login after approval:\n{}",
                    reader.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code(),
            stdout: stdout_reader.join().unwrap(),
            stderr: reader.join().unwrap(),
        }
    }

    fn mark_value(&self) -> String {
        let needle = String::from_utf8(self.procs.needle.clone()).unwrap();
        needle[MARK.len() + 1..].to_string()
    }

    fn stat(&self, name: &str) -> u64 {
        stat(&self.idp, name)
    }

    /// The refresh token `credentials.toml` holds for a context key.
    /// Moves the cached 5 s token of `key` into its last second: the next `token` refreshes.
    fn in_last_second(&self, key: &str) {
        let path = self.sb.token_file(key);
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        v["issued_at"] = serde_json::json!(now - 4);
        v["expires_at"] = serde_json::json!(now + 1);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn stored_refresh_token(&self, key: &str) -> Option<String> {
        stored_refresh_token(&self.sb.path("credentials.toml"), key)
    }

    /// `mycli [--context NAME] token`: exit 0, the token alone on stdout.
    fn token(&self, context: Option<&str>) -> String {
        let run = match context {
            Some(name) => self.run(&["--context", name, "token"]),
            None => self.run(&["token"]),
        };
        run.ok();
        let token = run.stdout.trim_end_matches('\n');
        assert_eq!(
            token.lines().count(),
            1,
            "token printed more than a token: {run:#?}"
        );
        token.to_string()
    }

    fn context(&self, org: &str) -> Value {
        self.sb
            .contexts_json()
            .into_iter()
            .find(|c| c["organization_id"] == org)
            .unwrap_or_else(|| panic!("no context for {org}: {:#?}", self.sb.contexts_json()))
    }

    /// Every test ends here: nothing it started may still run.
    fn finish(self) {
        if let Some(left) = self.procs.leftovers(Duration::from_secs(30)) {
            panic!("processes started by this test are still running:\n{left}");
        }
    }
}

fn stat(idp: &Idp, name: &str) -> u64 {
    let stats = idp.get("/__stats");
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

fn stored_refresh_token(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).unwrap();
    table
        .get(key)?
        .get("refresh-token")?
        .as_str()
        .map(str::to_string)
}

/// Redeems a refresh token at the provider's token endpoint, as an attacker holding an old
/// copy would: the HTTP status and the JSON answer.
fn redeem_refresh_token(idp: &Idp, refresh_token: &str) -> (u16, Value) {
    let mut resp = ureq::post(&format!("{}/token", idp.base))
        .config()
        .http_status_as_error(false)
        .build()
        .send_form([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", refresh_token),
        ])
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_refused(idp: &Idp, refresh_token: &str) {
    let (status, body) = redeem_refresh_token(idp, refresh_token);
    assert_eq!(status, 400, "the provider accepted the token: {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[test]
fn pkce_login_in_real_chromium_stores_the_oidc_context() {
    let e = E2e::start(&[]);
    let (run, page) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();
    assert!(
        run.stderr
            .contains("Signed in to org_acme as alice@example.com"),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty(), "login printed data: {run:#?}");
    assert!(
        page.contains("You are signed in"),
        "the browser did not land on mycli's success page: {page:?}"
    );

    let ctx = e.sb.contexts_json();
    assert_eq!(ctx.len(), 1, "{ctx:#?}");
    let c = &ctx[0];
    assert_eq!(c["organization_id"], "org_acme");
    assert_eq!(c["name"], "org_acme");
    assert_eq!(c["current"], true);
    assert_eq!(c["provider"]["kind"], "oidc");
    assert_eq!(c["provider"]["issuer"], e.idp.base.as_str());
    assert_eq!(c["provider"]["client_id"], CLIENT_ID);
    assert_eq!(c["user"]["id"], "alice");
    assert_eq!(c["user"]["email"], "alice@example.com");
    assert_eq!(c["method"], "pkce");
    assert_eq!(c["storage"], "file");
    assert_eq!(c["needs_login"], false);
    assert_eq!(e.run(&["current"]).ok().stdout.trim(), "org_acme");
    let config = e.sb.config();
    let stored = &config["contexts"]["org_acme"];
    assert_eq!(stored["provider"].as_str(), Some("oidc"), "{config:#?}");
    assert_eq!(stored["issuer"].as_str(), Some(e.idp.base.as_str()));
    assert_eq!(stored["email"].as_str(), Some("alice@example.com"));

    // one authorization, one code exchange
    assert_eq!(e.stat("authorizations"), 1);
    assert_eq!(e.stat("authorization_code_grants"), 1);
    assert_eq!(e.stat("token_requests"), 1);

    let rt = e
        .stored_refresh_token("org_acme")
        .expect("a stored refresh token");
    let token = e.token(None);
    let cl = claims(&token);
    assert_eq!(cl["org_id"], "org_acme", "{cl}");
    assert_eq!(cl["email"], "alice@example.com", "{cl}");
    assert_eq!(cl["sub"], "alice", "{cl}");
    assert_eq!(cl["iss"], e.idp.base.as_str(), "{cl}");
    assert_eq!(
        e.stat("token_requests"),
        1,
        "a fresh token needs no network"
    );

    let config = e.sb.config_text();
    assert!(
        !config.contains(&rt) && !config.contains(&token),
        "a secret landed in config.toml:\n{config}"
    );
    e.finish();
}

#[test]
fn device_login_on_the_providers_page_beside_a_browser_login() {
    let e = E2e::start(&[]);
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();

    let run = e.device_login("org_globex", "bob");
    run.ok();
    assert!(
        run.stderr
            .contains("Signed in to org_globex as bob@example.com"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("device_code"), "{run:#?}");
    assert_eq!(e.stat("device_authorizations"), 1);
    assert!(e.stat("device_code_grants") >= 1);

    let ctx = e.sb.contexts_json();
    assert_eq!(ctx.len(), 2, "{ctx:#?}");
    let acme = e.context("org_acme");
    let globex = e.context("org_globex");
    assert_eq!(acme["user"]["email"], "alice@example.com");
    assert_eq!(acme["method"], "pkce");
    assert_eq!(acme["current"], false);
    assert_eq!(globex["user"]["email"], "bob@example.com");
    assert_eq!(globex["user"]["id"], "bob");
    assert_eq!(globex["method"], "device");
    assert_eq!(globex["current"], true);
    assert_eq!(globex["provider"]["issuer"], e.idp.base.as_str());

    let current = || e.run(&["current"]).ok().stdout.trim().to_string();
    assert_eq!(current(), "org_globex");
    e.run(&["switch", "org_acme"]).ok();
    assert_eq!(current(), "org_acme");
    e.run(&["switch", "-"]).ok();
    assert_eq!(current(), "org_globex");
    e.run(&["switch", "-"]).ok();
    assert_eq!(current(), "org_acme");

    let acme_token = e.token(Some("org_acme"));
    let globex_token = e.token(Some("org_globex"));
    assert_ne!(acme_token, globex_token);
    let (a, g) = (claims(&acme_token), claims(&globex_token));
    assert_eq!(a["org_id"], "org_acme", "{a}");
    assert_eq!(a["email"], "alice@example.com", "{a}");
    assert_eq!(g["org_id"], "org_globex", "{g}");
    assert_eq!(g["email"], "bob@example.com", "{g}");
    assert_eq!(current(), "org_acme", "--context must not move `current`");
    assert_eq!(e.token(None), acme_token);
    e.finish();
}

#[test]
fn token_is_cached_while_valid_and_refresh_rotates_at_the_provider() {
    // Two providers: org_acme's issues 300 s tokens, org_globex's 5 s tokens (refreshed in the
    // second half of their life: the margin is min(60 s, half the lifetime)).
    let e = E2e::start(&[]);
    let short = Idp::start_oidc_provider(&[("OIDC_ACCESS_TTL", "5")]);
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();
    let (run, _) = e.browser_login(
        &[],
        &["login", "--org", "org_globex", "--issuer", &short.base],
    );
    run.ok();
    let globex = e.context("org_globex");
    assert_eq!(globex["provider"]["issuer"], short.base.as_str());
    assert_eq!(
        e.context("org_acme")["provider"]["issuer"],
        e.idp.base.as_str()
    );

    // Before expiry: no network at all.
    let (long_requests, short_requests) =
        (e.stat("token_requests"), stat(&short, "token_requests"));
    let first = e.token(Some("org_acme"));
    for _ in 0..3 {
        let run = e.run(&["--context", "org_acme", "token"]);
        run.ok();
        assert_eq!(run.stdout.trim(), first);
        assert!(
            run.stderr.is_empty(),
            "the hot path wrote to stderr: {run:#?}"
        );
    }
    assert_eq!(e.stat("token_requests"), long_requests);
    assert_eq!(stat(&short, "token_requests"), short_requests);
    let acme_rt = e.stored_refresh_token("org_acme").unwrap();

    // After expiry: each `token` refreshes at the context's own issuer and rotates.
    let rt0 = e.stored_refresh_token("org_globex").unwrap();
    assert_eq!(stat(&short, "refresh_grants"), 0);
    e.in_last_second("org_globex");
    let t1 = e.token(Some("org_globex"));
    assert_eq!(stat(&short, "refresh_grants"), 1);
    let rt1 = e.stored_refresh_token("org_globex").unwrap();
    assert_ne!(rt1, rt0, "the rotated refresh token was not saved");
    e.in_last_second("org_globex");
    let t2 = e.token(Some("org_globex"));
    assert_eq!(stat(&short, "refresh_grants"), 2);
    let rt2 = e.stored_refresh_token("org_globex").unwrap();
    assert_ne!(rt2, rt1, "the second rotation was not saved");
    assert_ne!(rt2, rt0);
    assert_eq!(stat(&short, "refresh_grants_failed"), 0);
    assert_ne!(t1, t2);
    for t in [&t1, &t2] {
        let cl = claims(t);
        assert_eq!(cl["org_id"], "org_globex", "{cl}");
        assert_eq!(cl["iss"], short.base.as_str(), "{cl}");
    }
    assert_eq!(
        e.stat("token_requests"),
        long_requests,
        "acme's IdP was not asked"
    );
    assert_eq!(e.stored_refresh_token("org_acme").unwrap(), acme_rt);

    // The consumed token is refused; oidc-provider then revokes the whole grant (reuse
    // detection), so mycli's current token is dead too: exit 4, context kept and marked.
    assert_refused(&short, &rt0);
    e.in_last_second("org_globex");
    let run = e.run(&["--context", "org_globex", "token"]);
    run.code(4);
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(
        run.stderr.contains("mycli login --org org_globex"),
        "{run:#?}"
    );
    assert_eq!(e.context("org_globex")["needs_login"], true);
    e.run(&["status", "org_globex"]).code(4);
    assert_eq!(e.stored_refresh_token("org_globex"), None);
    assert_eq!(
        e.token(Some("org_acme")),
        first,
        "the other context was touched"
    );
    e.finish();
}

#[test]
fn logout_revokes_the_refresh_token_at_the_provider() {
    let e = E2e::start(&[]);
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();
    let rt = e.stored_refresh_token("org_acme").unwrap();
    let cache = e.sb.token_file("org_acme");
    assert!(
        cache.exists(),
        "no cached access token at {}",
        cache.display()
    );
    assert_eq!(e.stat("revocations"), 0);

    let run = e.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr
            .contains("the session was ended at the identity provider"),
        "{run:#?}"
    );
    assert!(e.stat("revocations") >= 1);
    assert_refused(&e.idp, &rt);

    assert!(e.sb.contexts_json().is_empty());
    assert_eq!(e.stored_refresh_token("org_acme"), None);
    let creds = std::fs::read_to_string(e.sb.path("credentials.toml")).unwrap_or_default();
    assert!(!creds.contains(&rt), "{creds}");
    assert!(!cache.exists(), "the token cache outlived the logout");
    e.run(&["current"]).code(1);
    e.run(&["token"]).code(4);
    e.finish();
}

#[test]
fn a_second_login_for_another_org_and_user_leaves_the_first_session_alone() {
    let e = E2e::start(&[]);
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();
    let acme_token = e.token(None);
    let acme_rt = e.stored_refresh_token("org_acme").unwrap();

    let (run, page) = e.browser_login(
        &[("MYCLI_TEST_LOGIN", "bob")],
        &["login", "--org", "org_globex"],
    );
    run.ok();
    assert!(page.contains("You are signed in"), "{page:?}");
    assert!(
        run.stderr
            .contains("Signed in to org_globex as bob@example.com"),
        "{run:#?}"
    );

    assert_eq!(e.sb.contexts_json().len(), 2);
    assert_eq!(e.context("org_acme")["user"]["email"], "alice@example.com");
    assert_eq!(e.context("org_globex")["user"]["email"], "bob@example.com");
    assert_eq!(e.stored_refresh_token("org_acme").unwrap(), acme_rt);
    assert_eq!(e.token(Some("org_acme")), acme_token);

    // The first session still works at the provider: it refreshes, for alice in org_acme.
    e.run(&["refresh", "org_acme"]).ok();
    assert_eq!(e.stat("refresh_grants"), 1);
    assert_eq!(e.stat("refresh_grants_failed"), 0);
    let refreshed = e.token(Some("org_acme"));
    assert_ne!(refreshed, acme_token);
    let cl = claims(&refreshed);
    assert_eq!(cl["org_id"], "org_acme", "{cl}");
    assert_eq!(cl["sub"], "alice", "{cl}");
    let cl = claims(&e.token(Some("org_globex")));
    assert_eq!(cl["org_id"], "org_globex", "{cl}");
    assert_eq!(cl["sub"], "bob", "{cl}");

    // Logging in again to a usable organization does not open a browser.
    let authorizations = e.stat("authorizations");
    let run = e.run_env(
        &[("BROWSER", "false"), ("MYCLI_LOGIN_TIMEOUT", "5")],
        &["login", "--org", "org_acme"],
    );
    run.ok();
    assert!(run.stderr.contains("already signed in"), "{run:#?}");
    assert_eq!(e.stat("authorizations"), authorizations);
    assert_eq!(e.run(&["current"]).ok().stdout.trim(), "org_acme");
    e.finish();
}

#[test]
fn access_denied_in_the_browser_stores_nothing() {
    let e = E2e::start(&[]);
    let (run, page) = e.browser_login(
        &[("MYCLI_TEST_BROWSER_ACTION", "deny")],
        &["login", "--org", "org_acme"],
    );
    run.code(1);
    // oidc-provider's own error and description, passed through
    assert!(
        run.stderr
            .contains("access_denied: End-User aborted interaction"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("refused the sign-in"), "{run:#?}");
    assert!(page.contains("Sign-in failed"), "{page:?}");
    assert_eq!(e.stat("token_requests"), 0);

    assert!(e.sb.contexts_json().is_empty());
    assert!(!e.sb.path("credentials.toml").exists());
    let tokens = e.sb.path("tokens");
    let cached = std::fs::read_dir(&tokens).map_or(0, |d| d.count());
    assert_eq!(cached, 0, "a token was cached in {}", tokens.display());
    e.run(&["current"]).code(1);
    e.finish();
}

/// Starts `mycli login --org ORG --no-browser` and returns it with the authorize URL it
/// printed (stderr keeps being read into the returned thread).
fn login_printing_the_url(
    e: &E2e,
    org: &str,
) -> (
    std::process::Child,
    url::Url,
    std::thread::JoinHandle<String>,
) {
    let mut child =
        e.sb.cmd()
            .args(["login", "--org", org, "--no-browser"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("mycli never printed the authorize URL");
        if let Some(u) = line.trim().strip_prefix(&format!("{}/auth?", e.idp.base)) {
            break url::Url::parse(&format!("{}/auth?{u}", e.idp.base)).unwrap();
        }
    };
    (child, url, reader)
}

fn query(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

#[test]
fn a_callback_without_iss_is_refused_when_the_provider_promises_iss() {
    // oidc-provider advertises authorization_response_iss_parameter_supported: RFC 9207 §2.4
    // then requires the client to reject an authorization response without `iss`: such a
    // response (here with our state, as a mix-up attack delivers it) did not come from this
    // provider, and its code must never reach the token endpoint.
    let e = E2e::start(&[]);
    let (mut child, url, reader) = login_printing_the_url(&e, "org_acme");
    assert_eq!(query(&url, "code_challenge_method"), "S256");
    let redirect = query(&url, "redirect_uri");
    let state = query(&url, "state");
    let mut callback = url::Url::parse(&redirect).unwrap();
    callback
        .query_pairs_mut()
        .append_pair("code", "from-another-provider")
        .append_pair("state", &state);
    let resp = ureq::get(callback.as_str())
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "mycli kept waiting");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("iss") && stderr.contains("RFC 9207"),
        "{stderr}"
    );
    assert_eq!(
        e.stat("token_requests"),
        0,
        "the code was redeemed: {stderr}"
    );
    assert!(e.sb.contexts_json().is_empty());
    e.finish();
}

#[test]
fn a_provider_that_issues_no_refresh_token_is_one_clear_error_and_nothing_stored() {
    // A client the provider does not allow offline access: the code exchange answers without
    // a refresh_token. mycli cannot keep such a session alive, so it says why, stores nothing.
    let e = E2e::start(&[("OIDC_NO_REFRESH", "1")]);
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.code(1);
    assert_eq!(e.stat("authorization_code_grants"), 1);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{run:#?}");
    assert!(errors[0].contains("no refresh token"), "{run:#?}");
    assert!(
        run.stderr.contains("hint: ") && run.stderr.contains("offline_access"),
        "{run:#?}"
    );
    assert!(e.sb.contexts_json().is_empty());
    assert!(!e.sb.path("credentials.toml").exists());
    e.finish();
}

#[test]
fn a_session_for_an_organization_other_than_the_requested_one_is_refused_and_revoked() {
    // The provider puts the organization in another claim than the one mycli reads
    // (MYCLI_ORG_CLAIM): as far as mycli can tell, it signed the user in to "alice", not to
    // org_acme. That session is refused, nothing is stored, and its refresh token is revoked.
    let e = E2e::start(&[]);
    let (run, _) = e.browser_login(
        &[("MYCLI_ORG_CLAIM", "preferred_username")],
        &["login", "--org", "org_acme"],
    );
    run.code(1);
    assert!(
        run.stderr
            .contains("signed you in to organization alice, not org_acme")
            && run.stderr.contains("was ended at the identity provider"),
        "{run:#?}"
    );
    assert_eq!(e.stat("revocations"), 1, "{run:#?}");
    assert!(e.sb.contexts_json().is_empty());
    assert!(!e.sb.path("credentials.toml").exists());

    // The default claim (org_id) reads the organization the provider put in the tokens.
    let (run, _) = e.browser_login(&[], &["login", "--org", "org_acme"]);
    run.ok();
    assert_eq!(e.context("org_acme")["needs_login"], false);
    e.finish();
}
