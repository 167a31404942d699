#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The refresh token in a real Secret Service (gnome-keyring on a private D-Bus session, as
//! `scripts/with-keyring` sets up), the fallback to `credentials.toml` when no keychain
//! answers, a locked keychain that must not hang mycli, and a keychain that fails after the
//! identity provider rotated the refresh token (locked or stopped while the test IdP holds the
//! rotated answer).
//!
//! Run with `scripts/with-keyring cargo test --test keychain` (`scripts/test` does). Without
//! it the keychain tests skip with a notice, or fail when `CI` is set. The tests that need no
//! keychain (no D-Bus at all) always run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The keyring is one per session bus and its entries are named by context key only, so
/// the tests that use it run one at a time.
static KEYRING: Mutex<()> = Mutex::new(());

/// The keyring lock, or `None` (with a notice) when no test keyring is available.
fn keyring() -> Option<MutexGuard<'static, ()>> {
    if std::env::var_os("MYCLI_TEST_KEYRING").is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("keychain tests need scripts/with-keyring");
        }
        eprintln!(
            "skipping: no test keyring (run `scripts/with-keyring cargo test --test keychain`)"
        );
        return None;
    }
    let guard = KEYRING.lock().unwrap_or_else(|e| e.into_inner());
    // The test keyring is private to this run (scripts/with-keyring): start it empty.
    let _ = secret_tool(&["clear", "service", "mycli"]);
    Some(guard)
}

/// A sandbox that reaches the test keyring: the bus passed through, store `auto`.
fn keychain_sandbox(idp: &Idp) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_idp(idp);
    sb.unset("MYCLI_CREDENTIAL_STORE");
    for var in ["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"] {
        if let Ok(v) = std::env::var(var) {
            sb.set(var, &v);
        }
    }
    sb
}

/// A sandbox with no D-Bus at all: no bus address, no runtime dir, store `auto`.
fn busless_sandbox(idp: &Idp) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.use_idp(idp);
    sb.unset("MYCLI_CREDENTIAL_STORE");
    sb.unset("DBUS_SESSION_BUS_ADDRESS");
    sb.unset("XDG_RUNTIME_DIR");
    sb
}

fn idp() -> Idp {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    idp
}

/// `mycli login --device ...`, approving the device code at the IdP if one is asked for.
/// Works whether the login fails before or after the sign-in.
fn login(sb: &Sandbox, idp: &Idp, args: &[&str]) -> Run {
    let mut child = sb
        .cmd()
        .args(["login", "--device"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "login did not end");
        let _ = idp.admin_status("/__admin/device/approve", json!({}));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn secret_tool(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("10")
        .arg("secret-tool")
        .args(args)
        .stdin(Stdio::null());
    cmd.output().expect("secret-tool must be installed")
}

/// The keychain account mycli uses: the context key and the canonical config dir.
fn account(sb: &Sandbox, key: &str) -> String {
    let dir = sb
        .config_dir
        .canonicalize()
        .unwrap_or(sb.config_dir.clone());
    format!("{key} ({})", dir.display())
}

/// The secret stored for `key` under service `mycli`, as `secret-tool` finds it.
fn keychain_secret(sb: &Sandbox, key: &str) -> Option<String> {
    let out = secret_tool(&["lookup", "service", "mycli", "username", &account(sb, key)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn context_json(sb: &Sandbox, org: &str) -> Value {
    sb.contexts_json()
        .into_iter()
        .find(|c| c["organization_id"] == org)
        .unwrap_or_else(|| panic!("no context for {org}"))
}

fn cached_access_token(sb: &Sandbox, key: &str) -> String {
    let text = std::fs::read(sb.token_file(key)).unwrap();
    let v: Value = serde_json::from_slice(&text).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

fn make_stale(sb: &Sandbox, key: &str) {
    let path = sb.token_file(key);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    v["expires_at"] = json!(now + 30);
    v["issued_at"] = json!(now - 270);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Every file under `dir` with its contents.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The refresh token lives in the keychain only: not in any file under the config dir, and
/// the access token only in the tokens/ cache.
fn assert_secrets_only_where_they_belong(sb: &Sandbox, key: &str, rt: &str) {
    let at = cached_access_token(sb, key);
    let tokens_dir = sb.path("tokens");
    for (path, bytes) in files_under(&sb.config_dir) {
        assert!(
            !contains(&bytes, rt),
            "the refresh token is in {}",
            path.display()
        );
        if !path.starts_with(&tokens_dir) {
            assert!(
                !contains(&bytes, &at),
                "the access token is in {}",
                path.display()
            );
        }
    }
    let creds = std::fs::read_to_string(sb.path("credentials.toml")).unwrap_or_default();
    let table: toml::Table = toml::from_str(&creds).unwrap();
    assert!(
        !table.contains_key(key),
        "credentials.toml has an entry for {key}"
    );
}

fn assert_no_secret_in(run: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret was printed"
        );
    }
}

fn keychain_lifecycle(store: Option<&str>) {
    let Some(_keyring) = keyring() else {
        return;
    };
    let idp = idp();
    let mut sb = keychain_sandbox(&idp);
    if let Some(store) = store {
        sb.set("MYCLI_CREDENTIAL_STORE", store);
    }

    let run = login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]);
    run.ok();
    assert!(
        !run.stderr.contains("credentials.toml"),
        "no fallback was expected: {run:#?}"
    );
    assert_eq!(context_json(&sb, "org_acme")["storage"], "keychain");
    let status = sb.run(&["status", "-o", "json"]);
    status.ok();
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["storage"], "keychain");
    let table = sb.run(&["status"]);
    table.ok();
    assert!(table.stdout.contains("keychain"), "{table:#?}");

    // The item carries the attributes the zbus store uses: service and username.
    let search = secret_tool(&["search", "--all", "service", "mycli"]);
    let listing = String::from_utf8_lossy(&search.stdout).into_owned()
        + &String::from_utf8_lossy(&search.stderr);
    assert!(
        listing.contains(&format!(
            "attribute.username = {}",
            account(&sb, "org_acme")
        )),
        "{listing}"
    );
    let rt0 = keychain_secret(&sb, "org_acme").expect("the keychain holds the refresh token");
    assert_secrets_only_where_they_belong(&sb, "org_acme", &rt0);
    assert_no_secret_in(&run, &[&rt0]);

    // A refresh rotates the token in the keychain, and it stays there.
    make_stale(&sb, "org_acme");
    let token = sb.run(&["token"]);
    token.ok();
    assert_eq!(
        token.stdout,
        format!("{}\n", cached_access_token(&sb, "org_acme"))
    );
    let rt1 = keychain_secret(&sb, "org_acme").expect("still in the keychain");
    assert_ne!(
        rt1, rt0,
        "the rotated refresh token is saved in the keychain"
    );
    assert_eq!(idp.refreshes(), 1);
    assert_eq!(idp.stats()["refresh_reuse_detected"], 0);
    assert_eq!(context_json(&sb, "org_acme")["storage"], "keychain");
    assert_secrets_only_where_they_belong(&sb, "org_acme", &rt1);
    assert_no_secret_in(&token, &[&rt0, &rt1]);

    let refresh = sb.run(&["refresh"]);
    refresh.ok();
    let rt2 = keychain_secret(&sb, "org_acme").expect("still in the keychain");
    assert_ne!(rt2, rt1);
    assert_secrets_only_where_they_belong(&sb, "org_acme", &rt2);
    assert_no_secret_in(&refresh, &[&rt0, &rt1, &rt2]);

    // Logout ends the session and deletes the keychain item.
    let logout = sb.run(&["logout"]);
    logout.ok();
    assert!(
        logout.stderr.contains("was ended at the identity provider"),
        "{logout:#?}"
    );
    assert_eq!(
        keychain_secret(&sb, "org_acme"),
        None,
        "logout leaves the item"
    );
    assert_eq!(idp.stats()["logouts"], 1);
    assert!(sb.contexts_json().is_empty());
    assert_no_secret_in(&logout, &[&rt0, &rt1, &rt2]);
}

#[test]
fn auto_store_keeps_the_refresh_token_in_the_keychain() {
    keychain_lifecycle(None);
}

#[test]
fn keychain_store_keeps_the_refresh_token_in_the_keychain() {
    keychain_lifecycle(Some("keychain"));
}

#[test]
fn without_dbus_login_falls_back_to_the_file_and_says_so_once() {
    let idp = idp();
    let sb = busless_sandbox(&idp);
    let run = login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]);
    run.ok();
    let creds = sb.path("credentials.toml");
    assert_eq!(
        run.stderr.matches("credentials.toml").count(),
        1,
        "stderr says where the secret went, once: {run:#?}"
    );
    assert_eq!(run.stderr.matches("warning:").count(), 1, "{run:#?}");
    assert_eq!(context_json(&sb, "org_acme")["storage"], "file");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials.toml mode {mode:o}");
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let rt = table["org_acme"]["refresh-token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_no_secret_in(&run, &[&rt]);

    // Later commands do not repeat the notice, and the file keeps working.
    make_stale(&sb, "org_acme");
    let token = sb.run(&["token"]);
    token.ok();
    assert_eq!(token.stderr, "", "{token:#?}");
    let refresh = sb.run(&["refresh"]);
    refresh.ok();
    assert!(!refresh.stderr.contains("warning"), "{refresh:#?}");
    assert_eq!(idp.refreshes(), 2);
    assert_eq!(context_json(&sb, "org_acme")["storage"], "file");
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials.toml mode after rotation {mode:o}");
}

#[test]
fn keychain_required_without_dbus_fails_and_stores_nothing() {
    let idp = idp();
    let mut sb = busless_sandbox(&idp);
    sb.set("MYCLI_CREDENTIAL_STORE", "keychain");
    let started = Instant::now();
    let run = login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]);
    run.code(1);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("error: ") && run.stderr.contains("keychain"),
        "the error must name the keychain: {run:#?}"
    );
    assert!(!run.stderr.contains("panicked"));
    assert!(!sb.path("credentials.toml").exists(), "nothing in the file");
    assert!(sb.contexts_json().is_empty(), "no context was stored");
    let left = files_under(&sb.path("tokens"));
    assert!(left.is_empty(), "tokens/ holds {left:?}");
}

// ---------------------------------------------------------------------------------------------
// A locked keychain
// ---------------------------------------------------------------------------------------------

fn secrets_call(args: &[&str]) -> String {
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply=literal",
            "--reply-timeout=5000",
            "--dest=org.freedesktop.secrets",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dbus-send must be installed");
    assert!(out.status.success(), "dbus-send {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn default_collection() -> String {
    secrets_call(&[
        "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service.ReadAlias",
        "string:default",
    ])
    .trim()
    .to_string()
}

fn collection_locked(collection: &str) -> Option<bool> {
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply=literal",
            "--reply-timeout=2000",
            "--dest=org.freedesktop.secrets",
            collection,
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.Secret.Collection",
            "string:Locked",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("true") {
        Some(true)
    } else if text.contains("false") {
        Some(false)
    } else {
        None
    }
}

/// Locks the default collection (Secret Service `Lock`); unlocks it again when dropped.
struct Locked {
    collection: String,
}

impl Locked {
    fn lock() -> Locked {
        let collection = default_collection();
        secrets_call(&[
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            &format!("array:objpath:{collection}"),
        ]);
        assert_eq!(collection_locked(&collection), Some(true));
        Locked { collection }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // As scripts/with-keyring documents: plain --unlock does not unlock a running daemon.
        let password = std::env::var("MYCLI_TEST_KEYRING_PASSWORD").unwrap_or_default();
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--replace", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(password.as_bytes());
        }
        let _ = child.wait();
        let unlocked = wait_for(Duration::from_secs(10), || {
            collection_locked(&self.collection) == Some(false)
        });
        if !std::thread::panicking() {
            assert!(unlocked, "the keyring could not be unlocked again");
        }
    }
}

#[test]
fn a_locked_keychain_gives_a_bounded_clear_error() {
    let Some(_keyring) = keyring() else {
        return;
    };
    let idp = idp();
    let mut sb = keychain_sandbox(&idp);
    sb.set("MYCLI_KEYCHAIN_TIMEOUT", "2");
    login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    assert_eq!(context_json(&sb, "org_acme")["storage"], "keychain");
    let rt = keychain_secret(&sb, "org_acme").unwrap();
    make_stale(&sb, "org_acme");

    let locked = Locked::lock();
    // The refresh must read the secret: a clear error within the timeout, not a hang.
    let started = Instant::now();
    let run = sb.run(&["token"]);
    let took = started.elapsed();
    run.code(1);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with("error: ") && run.stderr.contains("keychain"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("panicked"));
    assert_eq!(idp.refreshes(), 0, "no refresh without the secret");
    assert_eq!(context_json(&sb, "org_acme")["needs_login"], false);

    // Storing into a locked keychain when nothing else is allowed: bounded too.
    let mut strict = keychain_sandbox(&idp);
    strict.set("MYCLI_KEYCHAIN_TIMEOUT", "2");
    strict.set("MYCLI_CREDENTIAL_STORE", "keychain");
    let started = Instant::now();
    let run = login(&strict, &idp, &["--org", "org_globex", "--name", "globex"]);
    run.code(1);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(run.stderr.contains("keychain"), "{run:#?}");
    assert!(strict.contexts_json().is_empty());
    assert!(!strict.path("credentials.toml").exists());
    drop(locked);

    // Unlocked again: the kept secret refreshes.
    assert_eq!(keychain_secret(&sb, "org_acme"), Some(rt.clone()));
    let run = sb.run(&["token"]);
    run.ok();
    assert_eq!(idp.refreshes(), 1);
    assert_ne!(keychain_secret(&sb, "org_acme"), Some(rt));
    sb.run(&["logout"]).ok();
    assert_eq!(keychain_secret(&sb, "org_acme"), None);
}

#[test]
fn a_keychain_that_never_answers_times_out_instead_of_hanging() {
    // A session bus that accepts the connection and never says a word: the way a stuck
    // keyring daemon looks to a client. Needs no real keyring.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let idp = idp();
    let mut sb = busless_sandbox(&idp);
    sb.set(
        "DBUS_SESSION_BUS_ADDRESS",
        &format!("unix:path={}", socket.display()),
    );
    sb.set("MYCLI_KEYCHAIN_TIMEOUT", "2");

    // Nothing but the keychain allowed: a clear error after the timeout.
    sb.set("MYCLI_CREDENTIAL_STORE", "keychain");
    let started = Instant::now();
    let run = login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]);
    let took = started.elapsed();
    run.code(1);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        run.stderr.contains("keychain") && run.stderr.contains("2 s"),
        "the error must say the keychain did not answer in time: {run:#?}"
    );
    assert!(sb.contexts_json().is_empty());
    assert!(!sb.path("credentials.toml").exists());

    // Auto: falls back to the file after the timeout, and says so once.
    sb.unset("MYCLI_CREDENTIAL_STORE");
    let started = Instant::now();
    let run = login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]);
    let took = started.elapsed();
    run.ok();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(run.stderr.matches("warning:").count(), 1, "{run:#?}");
    assert!(run.stderr.contains("credentials.toml"), "{run:#?}");
    assert_eq!(context_json(&sb, "org_acme")["storage"], "file");

    // The file-stored context never waits on the keychain again.
    make_stale(&sb, "org_acme");
    let started = Instant::now();
    let token = sb.run(&["token"]);
    token.ok();
    assert_eq!(token.stderr, "");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "token waited on the keychain: {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// The keychain fails after the identity provider rotated the refresh token
// ---------------------------------------------------------------------------------------------

/// Waits until the test IdP holds `n` rotated refresh answers (`hold_after_rotate`).
fn wait_for_held(idp: &Idp, n: u64) {
    assert!(
        wait_for(Duration::from_secs(20), || idp.stats()["held_answers"] == n),
        "the IdP never held {n} rotated answers: {}",
        idp.stats()
    );
}

#[test]
fn a_keychain_locked_after_the_rotation_prints_the_token_and_says_what_was_lost() {
    let Some(_keyring) = keyring() else {
        return;
    };
    let idp = idp();
    // Only the keychain is allowed: the rotated secret has nowhere else to go.
    let mut strict = keychain_sandbox(&idp);
    strict
        .set("MYCLI_CREDENTIAL_STORE", "keychain")
        .set("MYCLI_KEYCHAIN_TIMEOUT", "1");
    login(&strict, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    login(&strict, &idp, &["--org", "org_globex", "--name", "globex"]).ok();
    // The default store (auto) may fall back to credentials.toml.
    let mut auto = keychain_sandbox(&idp);
    auto.set("MYCLI_KEYCHAIN_TIMEOUT", "1");
    login(&auto, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    for (sb, key) in [
        (&strict, "org_acme"),
        (&strict, "org_globex"),
        (&auto, "org_acme"),
    ] {
        assert_eq!(context_json(sb, key)["storage"], "keychain");
        make_stale(sb, key);
    }
    let acme_rt = keychain_secret(&strict, "org_acme").unwrap();
    let globex_rt = keychain_secret(&strict, "org_globex").unwrap();
    let auto_rt = keychain_secret(&auto, "org_acme").unwrap();

    // Each refresh reads its secret from the unlocked keychain and sends the request; the IdP
    // rotates and holds the answers. The keychain is locked before they arrive.
    idp.scenario(json!({"hold_after_rotate": 3}));
    let token = strict.spawn(&["token", "--context", "acme"]);
    let refresh = strict.spawn(&["refresh", "globex"]);
    let fallback = auto.spawn(&["token"]);
    wait_for_held(&idp, 3);
    let locked = Locked::lock();
    idp.admin("/__admin/release", json!({}));
    let (token, _) = token.finish(Duration::from_secs(30));
    let (refresh, _) = refresh.finish(Duration::from_secs(30));
    let (fallback, _) = fallback.finish(Duration::from_secs(30));
    drop(locked);
    assert_eq!(idp.refreshes(), 3);
    for run in [&token, &refresh, &fallback] {
        assert_no_secret_in(run, &[&acme_rt, &globex_rt, &auto_rt]);
    }

    // `token`: the new access token is printed (it works until it expires), exit 0, and one
    // warning says the renewed refresh token was lost and when the session ends.
    let printed = printed_token(&token);
    assert_eq!(printed, cached_access_token(&strict, "org_acme"));
    assert_valid_for(&printed, "org_acme", &idp.base);
    let lines: Vec<&str> = token.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one warning and its hint: {token:#?}");
    assert!(
        lines[0].starts_with("warning: the renewed refresh token of \"acme\" could not be saved")
            && lines[0].contains("keychain")
            && lines[0].contains("then the session needs a new login"),
        "{token:#?}"
    );
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("mycli login --org org_acme"),
        "{token:#?}"
    );

    // `refresh`, whose point is the session: exit 1 with the same account of the loss.
    refresh.code(1);
    assert_eq!(refresh.stdout, "");
    let lines: Vec<&str> = refresh.stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: the renewed refresh token of \"globex\" could not be saved")
            && lines[0].contains("keychain"),
        "{refresh:#?}"
    );
    assert!(
        refresh.stderr.contains("mycli login --org org_globex"),
        "{refresh:#?}"
    );

    // auto: the secret went to credentials.toml instead, with a warning; nothing was lost.
    let printed = printed_token(&fallback);
    assert_valid_for(&printed, "org_acme", &idp.base);
    assert!(
        fallback.stderr.starts_with("warning: ") && fallback.stderr.contains("credentials.toml"),
        "{fallback:#?}"
    );
    assert!(!fallback.stderr.contains("new login"), "{fallback:#?}");
    assert_eq!(context_json(&auto, "org_acme")["storage"], "file");
    let creds = credentials(&auto);
    assert!(
        creds.get("org_acme").is_some_and(|rt| *rt != auto_rt),
        "the rotated secret is in credentials.toml"
    );

    // Unlocked again. The printed token keeps working while it is valid, without a request.
    assert_eq!(
        printed_token(&strict.run(&["token", "--context", "acme"])),
        cached_access_token(&strict, "org_acme")
    );
    assert_eq!(idp.refreshes(), 3);
    // The fallback context refreshes from the file: the IdP sees no reuse.
    make_stale(&auto, "org_acme");
    printed_token(&auto.run(&["token"]));
    assert_eq!(idp.refreshes(), 4);
    assert_eq!(idp.stats()["refresh_reuse_detected"], 0);
    // The lost ones: as the warning said, the next refresh needs a new login (the keychain
    // still holds the spent secret, which a strict IdP answers by ending the session).
    assert_eq!(keychain_secret(&strict, "org_acme"), Some(acme_rt));
    make_stale(&strict, "org_acme");
    let after = strict.run(&["token", "--context", "acme"]);
    after.code(4);
    assert!(
        after.stderr.contains("mycli login --org org_acme"),
        "{after:#?}"
    );
    assert_no_panic("token after the loss", &after.stderr);
}

/// The process id of the daemon that answers the Secret Service on the test bus.
fn keyring_daemon_pid() -> u32 {
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply=literal",
            "--reply-timeout=2000",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            "string:org.freedesktop.secrets",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid for the Secret Service: {out:?}"))
}

/// Stops the keyring daemon (SIGSTOP: calls wait, as with a hung keychain); continues it
/// when dropped.
struct Stopped(u32);

impl Stopped {
    fn stop() -> Stopped {
        let pid = keyring_daemon_pid();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn a_keychain_that_stops_answering_after_the_rotation_costs_bounded_time_and_no_panic() {
    let Some(_keyring) = keyring() else {
        return;
    };
    let idp = idp();
    let mut strict = keychain_sandbox(&idp);
    strict
        .set("MYCLI_CREDENTIAL_STORE", "keychain")
        .set("MYCLI_KEYCHAIN_TIMEOUT", "1");
    login(&strict, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    let mut auto = keychain_sandbox(&idp);
    auto.set("MYCLI_KEYCHAIN_TIMEOUT", "1");
    login(&auto, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    make_stale(&strict, "org_acme");
    make_stale(&auto, "org_acme");

    idp.scenario(json!({"hold_after_rotate": 2}));
    let token = strict.spawn(&["token"]);
    let fallback = auto.spawn(&["token"]);
    wait_for_held(&idp, 2);
    let stopped = Stopped::stop();
    let started = Instant::now();
    idp.admin("/__admin/release", json!({}));
    let (token, _) = token.finish(Duration::from_secs(30));
    let (fallback, _) = fallback.finish(Duration::from_secs(30));
    let took = started.elapsed();
    drop(stopped);
    // Three tries of one keychain timeout each, not a hang.
    assert!(took < Duration::from_secs(15), "took {took:?}");

    let printed = printed_token(&token);
    assert_valid_for(&printed, "org_acme", &idp.base);
    assert!(
        token
            .stderr
            .starts_with("warning: the renewed refresh token of \"acme\" could not be saved")
            && token.stderr.contains("did not answer within 1 s"),
        "{token:#?}"
    );
    assert!(
        token.stderr.contains("hint: ") && token.stderr.contains("mycli login --org org_acme"),
        "{token:#?}"
    );

    printed_token(&fallback);
    assert!(
        fallback.stderr.starts_with("warning: ") && fallback.stderr.contains("credentials.toml"),
        "{fallback:#?}"
    );
    assert_eq!(context_json(&auto, "org_acme")["storage"], "file");
    make_stale(&auto, "org_acme");
    printed_token(&auto.run(&["token"]));
    assert_eq!(idp.stats()["refresh_reuse_detected"], 0);
}

#[test]
fn logout_with_a_locked_keychain_keeps_the_context_and_says_where_the_secret_is() {
    let Some(_keyring) = keyring() else {
        return;
    };
    let idp = idp();
    let mut sb = keychain_sandbox(&idp);
    sb.set("MYCLI_KEYCHAIN_TIMEOUT", "1");
    login(&sb, &idp, &["--org", "org_acme", "--name", "acme"]).ok();
    let rt = keychain_secret(&sb, "org_acme").unwrap();

    let locked = Locked::lock();
    let started = Instant::now();
    let run = sb.run(&["logout", "acme"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(locked);
    run.code(1);
    assert!(!run.stderr.contains("Logged out"), "{run:#?}");
    assert!(
        run.stderr.contains("error: ") && run.stderr.contains("keychain"),
        "says where the refresh token still is: {run:#?}"
    );
    assert!(run.stderr.contains("hint: "), "{run:#?}");
    assert_no_panic("logout", &run.stderr);
    assert_no_secret_in(&run, &[&rt]);
    assert_eq!(keychain_secret(&sb, "org_acme"), Some(rt));
    assert_eq!(sb.contexts_json().len(), 1, "the context was removed");

    // Unlocked: logout finishes and the item is gone.
    sb.run(&["logout", "acme"]).ok();
    assert_eq!(keychain_secret(&sb, "org_acme"), None);
    assert!(sb.contexts_json().is_empty());
}

#[test]
fn a_login_whose_store_fills_up_during_the_sign_in_leaves_no_secret_behind() {
    let Some(_keyring) = keyring() else { return };
    let idp = idp();
    let mut sb = keychain_sandbox(&idp);
    sb.set("MYCLI_CREDENTIAL_STORE", "keychain");
    // The store lives on a 256 KiB tmpfs that fills up while the user approves the code: the
    // refresh token reaches the keychain, config.toml cannot be written.
    let mnt = sb.tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let (err, filled) = (
        sb.tmp.path().join("login.err"),
        sb.tmp.path().join("filled"),
    );
    let script = format!(
        "set -u\n\
         mount -t tmpfs -o size=256k tmpfs '{mnt}' || exit 97\n\
         export MYCLI_CONFIG_DIR='{mnt}/store'\n\
         \"$MYCLI\" login --device --org org_acme --name acme 2>'{err}' &\n\
         pid=$!\n\
         i=0\n\
         until grep -q 'enter the code' '{err}' 2>/dev/null; do\n\
           i=$((i+1)); [ $i -gt 400 ] && exit 96; sleep 0.05\n\
         done\n\
         dd if=/dev/zero of='{mnt}/filler' bs=4k 2>/dev/null\n\
         touch '{filled}'\n\
         wait $pid\n",
        mnt = mnt.display(),
        err = err.display(),
        filled = filled.display(),
    );
    let run = std::thread::scope(|scope| {
        let login = scope.spawn(|| in_mount_namespace(&sb, &script));
        let approved = wait_for(Duration::from_secs(20), || {
            filled.exists() || login.is_finished()
        });
        if approved && filled.exists() {
            idp.approve_device(json!({}));
        }
        login.join().unwrap()
    });
    let Some(run) = run else { return };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_ne!(run.code, Some(97), "no tmpfs: {run:#?}");
    assert_eq!(run.code, Some(1), "{stderr}\n{run:#?}");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    assert!(
        stderr.contains("the session it created was ended at the identity provider"),
        "{stderr}"
    );
    assert_eq!(idp.stats()["logouts"], 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing names the secret, so nothing may keep it.
    let account = format!("org_acme ({})", mnt.join("store").display());
    let out = secret_tool(&["lookup", "service", "mycli", "username", &account]);
    assert!(
        out.stdout.is_empty(),
        "the new refresh token was left in the keychain with no context to reach it"
    );
}
