#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fault injection and hostile input through the real binary: hostile traffic on the loopback
//! redirect server during a real PKCE login, SIGKILL and SIGINT at awkward instants, two logins
//! at once, an IdP that is down or hangs while another context is present, a hung lock holder,
//! and a storm of commands over four contexts, signalled and killed at random.
//!
//! Every output of every command is kept and checked at the end: no panic text, no backtrace
//! hint, no refresh or access token (except the one `mycli token` prints on stdout).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// `common::World` (a sandbox at its own test IdP, device interval 1 s, with every output any
/// command printed and every secret the store ever held), run through `Bg`.
impl World {
    fn cmd(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut cmd = self.sb.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args);
        cmd
    }

    fn spawn(&self, env: &[(&str, &str)], args: &[&str]) -> Bg {
        Bg::start(self.cmd(env, args), args.join(" "))
    }

    fn run(&mut self, args: &[&str]) -> Run {
        self.run_env(&[], args)
    }

    fn run_env(&mut self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let bg = self.spawn(env, args);
        self.finish(bg, LONG).0
    }

    /// Waits for a background command, logs its output and harvests the store's secrets.
    fn finish(&mut self, bg: Bg, timeout: Duration) -> (Run, Duration) {
        let what = bg.what.clone();
        let token_stdout = what.split(' ').any(|w| w == "token");
        let (run, elapsed) = bg.finish(timeout);
        self.record(&what, &run, token_stdout);
        (run, elapsed)
    }

    fn record(&mut self, what: &str, run: &Run, token_stdout: bool) {
        assert_no_panic(what, &run.stderr);
        self.log_run(what, run, token_stdout);
        self.harvest();
    }

    /// Starts a device login for `org` and returns it with the user code it printed.
    fn start_device_login(&self, org: &str, name: &str) -> (Bg, String) {
        let mut bg = self.spawn(&[], &["login", "--device", "--org", org, "--name", name]);
        let stderr = bg.wait_stderr("Waiting for approval");
        assert_no_opaque_code(&stderr);
        (bg, user_code(&stderr))
    }

    /// Signs in with the real device flow, approved at the IdP as alice.
    fn login(&mut self, org: &str, name: &str) -> Run {
        let (bg, code) = self.start_device_login(org, name);
        self.idp().approve_device(json!({ "user_code": code }));
        let (run, _) = self.finish(bg, LONG);
        run.ok();
        run
    }

    /// Remembers every refresh and access token the store holds right now.
    fn harvest(&mut self) {
        self.harvest_with(credentials(&self.sb).into_values());
    }

    /// No output of any command showed a secret; only `token`'s stdout an access token.
    fn assert_no_secrets(&mut self) {
        self.harvest();
        assert!(!self.refresh_tokens.is_empty(), "no secret was ever stored");
        self.assert_no_secret_printed(|l, _| l.token_stdout);
    }

    fn refresh_token(&self, key: &str) -> Option<String> {
        credentials(&self.sb).remove(key)
    }

    /// Leaves the cached access token valid for 10 s only: `token` must refresh.
    fn make_stale(&self, key: &str) {
        self.expire_cached_in(key, 10);
    }

    /// What another context's session is made of: its cached token file, its refresh token
    /// and its table in config.toml.
    fn context_state(&self, key: &str) -> (Vec<u8>, Option<String>, toml::Value) {
        let config = self.sb.config();
        (
            std::fs::read(self.cache_path(key)).unwrap(),
            self.refresh_token(key),
            config["contexts"][key].clone(),
        )
    }

    fn contexts(&mut self) -> Vec<Value> {
        contexts_of(&self.run(&["contexts", "-o", "json"]))
    }

    fn context(&mut self, name: &str) -> Value {
        context_named(self.contexts(), name)
    }

    /// `mycli [--context NAME] token`: the printed token, checked to be a valid JWT for `org`.
    fn token(&mut self, name: &str, org: &str) -> String {
        let run = self.run(&["--context", name, "token"]);
        let token = printed_token(&run);
        assert_eq!(
            run.stderr, "",
            "`token` writes nothing to stderr on success"
        );
        assert_valid_for(&token, org, &self.base);
        token
    }

    fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }
}

/// An error is one clear line (plus at most a hint), not a panic or a backtrace.
fn assert_clear_error(run: &Run) {
    assert!(
        run.stderr.starts_with("error: "),
        "expected `error: ...` on stderr: {run:#?}"
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
        "one error line and at most a hint: {run:#?}"
    );
    assert_no_panic("error", &run.stderr);
}

/// The device user code a login printed on stderr.
fn user_code(stderr: &str) -> String {
    stderr
        .split("enter the code: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no user code on stderr:\n{stderr}"))
        .trim()
        .to_string()
}

/// Asserts the store holds exactly `before`; on failure names the files that differ (never
/// their contents, which hold secrets).
fn assert_store_is(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let after = store_files(dir);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: these files changed: {changed:?}"
    );
}

/// Temporary files a writer left behind anywhere in the store (they could hold a secret).
fn stray_temp_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn query_param(url: &str, name: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// Fetches `url` like a browser that follows the IdP's redirect to the loopback callback;
/// the final HTTP status as curl reports it ("000" when the connection failed).
fn browse(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-L", "--max-redirs", "3", "--max-time", "10"])
        .args(["-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Follows the authorize URL one step: the callback URL the IdP redirects the browser to.
fn callback_url(authorize: &str) -> String {
    let resp = ureq::get(authorize)
        .config()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the IdP should redirect");
    resp.headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// What the loopback server did with one raw request.
#[derive(Debug, PartialEq)]
enum Answer {
    Status(u16),
    /// The connection ended without an HTTP response.
    Closed,
}

/// Sends `bytes` on a fresh connection to the loopback server and reads its answer.
fn raw(port: u16, bytes: &[u8]) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may stop reading and close before everything is written: that is fine.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    match text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
    {
        Some(code) => Answer::Status(code),
        None if got.is_empty() => Answer::Closed,
        None => panic!("not an HTTP answer: {text:?}"),
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Connections waiting in the accept queue of the listening socket on 127.0.0.1:`port`
/// (`/proc/net/tcp`: for a listener, `rx_queue` is the backlog).
fn accept_backlog(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// Opens `lock` (creating it) and holds an exclusive flock on it, as a hung mycli would.
fn hold_lock(lock: &Path) -> std::fs::File {
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lock)
        .unwrap();
    #[allow(clippy::disallowed_methods)] // a hung mycli holding the lock, played by hand
    file.lock().unwrap();
    file
}

// ---------------------------------------------------------------------------------------------
// 1. Hostile traffic on the loopback redirect server
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_loopback_traffic_is_refused_and_the_real_sign_in_completes() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let (mut bg, port, url) = start_pkce_login(&sb);
    let state = query_param(&url, "state");

    let big = "A".repeat(10 * 1024);
    let garbage: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let cases: Vec<(&str, Vec<u8>, Vec<Answer>)> =
        vec![
        (
            "a forged callback with the wrong state",
            b"GET /callback?code=forged&state=WRONG HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "a forged callback without state",
            b"GET /callback?code=forged HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "a forged code with the state repeated (RFC 6749 3.1: invalid)",
            format!("GET /callback?code=forged&state={state}&state={state} HTTP/1.1\r\n\r\n")
                .into_bytes(),
            vec![Answer::Status(400)],
        ),
        (
            "the root path",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "another path",
            b"GET /favicon.ico HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "a look-alike path",
            b"GET /callbackx?code=forged&state=WRONG HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "a dot-dot path that would normalise to /callback",
            b"GET /x/../callback?code=forged&state=WRONG HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "a traversal attempt",
            b"GET /../../../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "an encoded traversal attempt",
            b"GET /callback/..%2f..%2fetc%2fpasswd HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(404)],
        ),
        (
            "an absolute-URI target",
            format!(
                "GET http://127.0.0.1:{port}/callback?code=forged&state=WRONG HTTP/1.1\r\n\r\n"
            )
            .into_bytes(),
            vec![Answer::Status(400)],
        ),
        (
            "an asterisk target",
            b"OPTIONS * HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "CONNECT",
            b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "POST to /callback",
            b"POST /callback?code=forged&state=WRONG HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
            vec![Answer::Status(405)],
        ),
        (
            "HEAD /callback",
            b"HEAD /callback HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(405)],
        ),
        (
            "an oversized request line",
            format!("GET /callback?state={big} HTTP/1.1\r\n\r\n").into_bytes(),
            vec![Answer::Status(431), Answer::Closed],
        ),
        (
            "oversized headers",
            format!("GET /callback?state=WRONG HTTP/1.1\r\nHost: x\r\nX-Pad: {big}\r\n\r\n")
                .into_bytes(),
            vec![Answer::Status(431), Answer::Closed],
        ),
        (
            "many small headers adding up past the limit",
            format!(
                "GET /callback?state=WRONG HTTP/1.1\r\n{}\r\n",
                "X-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n".repeat(300)
            )
            .into_bytes(),
            vec![Answer::Status(431), Answer::Closed],
        ),
        (
            "binary garbage",
            [garbage.as_slice(), b"\r\n\r\n"].concat(),
            vec![Answer::Status(400), Answer::Status(431), Answer::Closed],
        ),
        (
            "a TLS ClientHello",
            vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03],
            vec![Answer::Status(400), Answer::Closed],
        ),
        (
            "invalid UTF-8 in the target",
            b"GET /callback?code=\xff\xfe&state=\xc3\x28 HTTP/1.1\r\n\r\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "bare newlines",
            b"GET /callback?code=forged&state=WRONG HTTP/1.1\n\n".to_vec(),
            vec![Answer::Status(400)],
        ),
        (
            "an empty connection",
            Vec::new(),
            vec![Answer::Status(400), Answer::Closed],
        ),
    ];
    for (what, bytes, allowed) in &cases {
        let answer = raw(port, bytes);
        assert!(
            allowed.contains(&answer),
            "{what}: got {answer:?}, expected one of {allowed:?}"
        );
        assert!(
            bg.running(),
            "{what} ended the login:\n{}",
            bg.stderr.lock().unwrap()
        );
    }

    // A client that never stops sending its request head is cut off after a few KiB, quickly.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /callback?state=").unwrap();
    let started = Instant::now();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 256 * 1024 * 1024 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < 64 * 1024 * 1024,
        "the server kept reading an endless request head ({sent} bytes)"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(s);
    let rss = rss_kib(bg.pid());
    assert!(
        rss < 30 * 1024,
        "mycli uses {rss} KiB after the hostile traffic"
    );

    assert!(bg.running(), "hostile traffic ended the login");
    assert!(
        !sb.path("config.toml").exists() && !sb.path("credentials.toml").exists(),
        "nothing may be stored before the real sign-in"
    );
    assert_eq!(
        idp.stats()["grants"]["authorization_code"],
        0,
        "no forged code may reach the IdP"
    );

    // The real browser: the same callback arrives twice at once, and once more afterwards.
    let callback = callback_url(&url);
    assert!(callback.starts_with(&format!("http://127.0.0.1:{port}/callback?")));
    let twice: Vec<JoinHandle<String>> = (0..2)
        .map(|_| {
            let callback = callback.clone();
            std::thread::spawn(move || {
                let out = Command::new("curl")
                    .args(["-s", "--max-time", "10", "-o", "/dev/null"])
                    .args(["-w", "%{http_code}", &callback])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
        })
        .collect();
    let statuses: Vec<String> = twice.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().any(|s| s == "200"),
        "the real callback should be answered: {statuses:?}"
    );
    let (run, _) = bg.finish(LONG);
    run.ok();
    // Once more, after the login: nobody listens any more.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the loopback port is closed once the login is over"
    );

    // One exchange only: a replayed code would have revoked the new session (RFC 6749 4.1.2).
    let stats = idp.stats();
    assert_eq!(stats["grants"]["authorization_code"], 1, "{stats:#}");
    assert_eq!(stats["revoked_sessions"], json!([]), "{stats:#}");
    let token = sb.run(&["token"]);
    assert_valid_for(&printed_token(&token), "org_acme", &idp.base);
    for secret in credentials(&sb).values() {
        assert!(!run.stderr.contains(secret.as_str()) && !run.stdout.contains(secret.as_str()));
    }
    assert!(!run.stderr.contains(token.stdout.trim()));
}

#[test]
fn slow_loris_connections_do_not_block_the_real_callback() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let (mut bg, port, url) = start_pkce_login(&sb);
    let pid = bg.pid();

    // 300 connections that send half a request line and then hold the socket open.
    let mut loris = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /callback?code=x&sta").unwrap();
        loris.push(s);
    }
    assert!(
        wait_for(LONG, || accept_backlog(port) == Some(0)),
        "mycli stopped accepting connections"
    );
    let rss = rss_kib(pid);
    assert!(rss < 30 * 1024, "mycli uses {rss} KiB under a slow-loris");
    assert!(bg.running(), "the slow-loris ended the login");

    let started = Instant::now();
    let status = browse(&url);
    let took = started.elapsed();
    assert_eq!(
        status, "200",
        "the real callback must get through the slow-loris"
    );
    assert!(took < Duration::from_secs(3), "the callback took {took:?}");
    let (run, elapsed) = bg.finish(LONG);
    run.ok();
    assert!(
        elapsed < Duration::from_secs(8),
        "the login took {elapsed:?}"
    );
    assert_eq!(idp.stats()["grants"]["authorization_code"], 1);
    assert_eq!(sb.contexts_json()[0]["organization_id"], "org_acme");

    // The held sockets were closed when the login ended.
    let mut s = loris.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "a slow-loris socket outlived the login"
    );
    drop(loris);
    assert_no_panic("login", &run.stderr);
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL
// ---------------------------------------------------------------------------------------------

#[test]
fn sigkill_during_a_refresh_loses_no_session() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    w.login("org_globex", "globex");
    let globex = w.context_state("org_globex");
    let acme_rt = w.refresh_token("org_acme").unwrap();

    // WorkOS's documented replay grace window, and an IdP that takes 2 s to evaluate.
    w.idp()
        .scenario(json!({"refresh_grace_ms": 30000, "refresh_delay_ms": 2000}));
    w.make_stale("org_acme");
    let bg = w.spawn(&[], &["--context", "acme", "token"]);
    assert!(
        wait_for(Duration::from_secs(10), || w.idp().refreshes() >= 1),
        "the refresh never reached the IdP"
    );
    let run = bg.sigkill();
    w.record("token (killed)", &run, true);
    assert_eq!(run.code, None, "killed by a signal");
    assert_eq!(run.stdout, "");

    // The store is whole: the old refresh token, config.toml parses, no temp file lingers.
    assert_eq!(
        w.refresh_token("org_acme").as_deref(),
        Some(acme_rt.as_str())
    );
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    assert_eq!(w.context("acme")["needs_login"], false);

    // While the killed request is still being evaluated at the IdP, the next `token` works...
    w.idp().scenario(json!({"refresh_delay_ms": 0}));
    w.token("acme", "org_acme");
    assert_ne!(
        w.refresh_token("org_acme").unwrap(),
        acme_rt,
        "rotation saved"
    );
    // ...and when the IdP gets to the killed request, the replay inside the grace window does
    // not end the session: a later refresh still works.
    assert!(
        wait_for(Duration::from_secs(5), || w.stat("refresh_grace_replays")
            >= 1),
        "{:#}",
        w.stats()
    );
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.make_stale("org_acme");
    w.token("acme", "org_acme");
    assert_eq!(w.stats()["revoked_sessions"], json!([]));

    assert!(
        w.context_state("org_globex") == globex,
        "globex was touched"
    );
    w.token("globex", "org_globex");
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    w.assert_no_secrets();
}

#[test]
fn sigkill_during_a_login_leaves_the_store_as_it_was() {
    let mut w = World::new();
    w.login("org_globex", "globex");
    let before = store_files(&w.sb.config_dir);

    // Killed while polling for the device approval.
    let (bg, _code) = w.start_device_login("org_acme", "acme");
    assert!(wait_for(LONG, || w.stats()["grants"]["device_code"]
        .as_u64()
        .unwrap_or(0)
        >= 1));
    let run = bg.sigkill();
    w.record("login (killed while polling)", &run, false);
    assert_store_is(&w.sb.config_dir, &before, "the store changed");
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());

    // Killed after the sign-in, while it waits for the store lock that a hung process holds.
    let holder = hold_lock(&w.sb.path("locks/config.lock"));
    let sessions = w.stat("sessions_created");
    let (mut bg, code) = w.start_device_login("org_acme", "acme");
    w.idp().approve_device(json!({ "user_code": code }));
    assert!(wait_for(LONG, || w.stat("sessions_created") > sessions));
    bg.wait_stderr(LOCK_WAIT);
    let run = bg.sigkill();
    w.record("login (killed while waiting for the lock)", &run, false);
    drop(holder);
    assert_eq!(
        credentials(&w.sb).keys().collect::<Vec<_>>(),
        vec!["org_globex"],
        "a refresh token was stored for a login that never finished"
    );
    assert_store_is(
        &w.sb.config_dir,
        &before,
        "a killed login changed the store",
    );
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    assert_eq!(w.contexts().len(), 1);

    // A later login works, and both sessions are good.
    w.login("org_acme", "acme");
    w.token("acme", "org_acme");
    w.token("globex", "org_globex");
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 3. Ctrl-C
// ---------------------------------------------------------------------------------------------

/// Sends Ctrl-C and waits: exit 130 within 2 s, nothing on stdout.
fn interrupt(w: &mut World, bg: Bg) -> Run {
    bg.sigint();
    let sent = Instant::now();
    let what = bg.what.clone();
    let (run, _) = bg.finish(LONG);
    let took = sent.elapsed();
    w.record(&what, &run, what.contains("token"));
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert!(took < Duration::from_secs(2), "Ctrl-C took {took:?}");
    assert_eq!(run.stdout, "");
    run
}

#[test]
fn ctrl_c_during_device_polling_exits_130_at_once_and_stores_nothing() {
    let mut w = World::new();
    w.login("org_globex", "globex");
    let before = store_files(&w.sb.config_dir);
    let (bg, _) = w.start_device_login("org_acme", "acme");
    assert!(wait_for(LONG, || w.stats()["grants"]["device_code"]
        .as_u64()
        .unwrap_or(0)
        >= 1));
    interrupt(&mut w, bg);
    assert_store_is(&w.sb.config_dir, &before, "Ctrl-C changed the store");
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    w.assert_no_secrets();
}

#[test]
fn ctrl_c_during_the_pkce_wait_exits_130_and_releases_the_port() {
    let mut w = World::new();
    let (bg, port, _url) = start_pkce_login(&w.sb);
    assert!(TcpListener::bind(("127.0.0.1", port)).is_err());
    interrupt(&mut w, bg);
    TcpListener::bind(("127.0.0.1", port)).expect("the loopback port is free right after Ctrl-C");
    assert!(store_files(&w.sb.config_dir).is_empty());
}

#[test]
fn ctrl_c_during_a_hanging_refresh_exits_130_and_keeps_the_session() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    w.login("org_globex", "globex");
    w.make_stale("org_acme");
    let before = store_files(&w.sb.config_dir);
    w.idp().scenario(json!({"fail_next": ["hang"]}));
    let bg = w.spawn(
        &[("MYCLI_HTTP_TIMEOUT", "30")],
        &["--context", "acme", "token"],
    );
    assert!(wait_for(Duration::from_secs(10), || w.idp().refreshes() >= 1));
    // The request is out: the first Ctrl-C waits for the answer that may carry a rotated
    // secret; a second one quits at once.
    bg.sigint();
    let mut bg = bg;
    bg.wait_stderr("press Ctrl-C again to quit now");
    assert!(bg.running());
    interrupt(&mut w, bg);
    assert_store_is(&w.sb.config_dir, &before, "Ctrl-C changed the store");
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    assert_eq!(w.context("acme")["needs_login"], false);

    // The session is intact: the next `token` refreshes with the same refresh token.
    w.token("acme", "org_acme");
    w.token("globex", "org_globex");
    w.assert_no_secrets();
}

#[test]
fn ctrl_c_while_login_waits_for_a_hung_lock_exits_130_and_stores_nothing() {
    let mut w = World::new();
    w.login("org_globex", "globex");
    let before = store_files(&w.sb.config_dir);
    let holder = hold_lock(&w.sb.path("locks/config.lock"));
    let mut bg = w.spawn(
        &[("MYCLI_LOCK_TIMEOUT", "30")],
        &["login", "--device", "--org", "org_acme", "--name", "acme"],
    );
    let code = user_code(&bg.wait_stderr("Waiting for approval"));
    let sessions = w.stat("sessions_created");
    w.idp().approve_device(json!({ "user_code": code }));
    // Signed in at the IdP; now stuck behind the hung holder of the store lock.
    assert!(wait_for(LONG, || w.stat("sessions_created") > sessions));
    bg.wait_stderr(LOCK_WAIT);
    assert!(bg.running());
    interrupt(&mut w, bg);
    drop(holder);
    assert_store_is(&w.sb.config_dir, &before, "Ctrl-C changed the store");
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    w.token("globex", "org_globex");
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 4. Two terminals, two organizations, one moment
// ---------------------------------------------------------------------------------------------

#[test]
fn two_logins_to_two_organizations_at_once_both_land() {
    let mut w = World::new();
    let (acme, acme_code) = w.start_device_login("org_acme", "acme");
    let (globex, globex_code) = w.start_device_login("org_globex", "globex");
    assert_ne!(acme_code, globex_code);
    // Approve both before either has stored anything, so that they save at about the same time.
    w.idp().approve_device(json!({ "user_code": globex_code }));
    w.idp().approve_device(json!({ "user_code": acme_code }));
    let (a, _) = w.finish(acme, LONG);
    let (g, _) = w.finish(globex, LONG);
    a.ok();
    g.ok();

    let contexts = w.contexts();
    let mut orgs: Vec<&str> = contexts
        .iter()
        .map(|c| c["organization_id"].as_str().unwrap())
        .collect();
    orgs.sort_unstable();
    assert_eq!(orgs, ["org_acme", "org_globex"]);
    let creds = credentials(&w.sb);
    assert_eq!(creds.len(), 2);
    assert_ne!(creds["org_acme"], creds["org_globex"]);

    // Each context's own refresh token works.
    w.make_stale("org_acme");
    w.make_stale("org_globex");
    w.token("acme", "org_acme");
    w.token("globex", "org_globex");
    assert_eq!(w.idp().refreshes(), 2);
    assert_eq!(w.stats()["revoked_sessions"], json!([]));
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 5. IdP faults and a hung lock holder, with another context present
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hanging_or_dead_idp_fails_one_context_clearly_and_serves_the_other() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    w.login("org_globex", "globex");
    let globex_token = w.cached("org_globex").unwrap();
    w.make_stale("org_acme");
    let stale = store_files(&w.sb.config_dir);

    // A slow IdP: bounded by MYCLI_HTTP_TIMEOUT (twice: a request whose answer was lost is
    // sent once more).
    w.idp().scenario(json!({"fail_next": ["hang", "hang"]}));
    let bg = w.spawn(
        &[("MYCLI_HTTP_TIMEOUT", "2")],
        &["--context", "acme", "token"],
    );
    let (run, took) = w.finish(bg, LONG);
    run.code(1);
    assert_clear_error(&run);
    assert_eq!(run.stdout, "");
    assert!(took < Duration::from_secs(8), "a hanging IdP took {took:?}");
    assert!(run.stderr.contains("2 s"), "{}", run.stderr);
    assert_store_is(&w.sb.config_dir, &stale, "a timeout changed the store");
    assert_eq!(w.token("globex", "org_globex"), globex_token);

    // The IdP is gone: its port refuses connections.
    w.stop_idp();
    let run = w.run(&["--context", "acme", "token"]);
    run.code(1);
    assert_clear_error(&run);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("could not connect"), "{}", run.stderr);
    assert_store_is(&w.sb.config_dir, &stale, "a dead IdP changed the store");
    assert_eq!(
        printed_token(&w.run(&["--context", "globex", "token"])),
        globex_token
    );
    let acme = w.context("acme");
    assert_eq!(
        acme["needs_login"], false,
        "a dead IdP is not a lost session"
    );
    w.assert_no_secrets();
}

#[test]
fn a_hung_config_lock_holder_ends_login_in_bounded_time_with_the_lock_named() {
    let mut w = World::new();
    w.login("org_globex", "globex");
    let before = store_files(&w.sb.config_dir);
    let lock = w.sb.path("locks/config.lock");
    let holder = hold_lock(&lock);

    let mut bg = w.spawn(
        &[("MYCLI_LOCK_TIMEOUT", "1")],
        &["login", "--device", "--org", "org_acme", "--name", "acme"],
    );
    let code = user_code(&bg.wait_stderr("Waiting for approval"));
    w.idp().approve_device(json!({ "user_code": code }));
    let approved = Instant::now();
    let (run, _) = w.finish(bg, LONG);
    let took = approved.elapsed();
    run.code(1);
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} after approval"
    );
    assert!(
        run.stderr.contains(&lock.display().to_string()),
        "the error must name the lock file: {run:#?}"
    );
    let last = Run {
        code: run.code,
        stdout: run.stdout.clone(),
        stderr: run
            .stderr
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .map(|l| format!("{l}\n"))
            .collect(),
    };
    assert_clear_error(&last);
    drop(holder);

    assert_store_is(
        &w.sb.config_dir,
        &before,
        "a login that could not take the lock changed the store",
    );
    w.token("globex", "org_globex");
    w.assert_no_secrets();
}

// ---------------------------------------------------------------------------------------------
// 6. A rotated refresh token is never thrown away
// ---------------------------------------------------------------------------------------------

impl World {
    /// Waits until the IdP has rotated a refresh token and holds its answer
    /// (`hold_after_rotate`).
    fn wait_for_held_answer(&self) {
        assert!(
            wait_for(LONG, || self.stat("held_answers") >= 1),
            "the IdP never held a rotated answer: {:#}",
            self.stats()
        );
    }

    fn release_held_answers(&self) {
        self.idp().admin("/__admin/release", json!({}));
    }
}

#[test]
fn a_busy_credentials_lock_fails_the_refresh_before_the_secret_is_spent() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    let rt = w.refresh_token("org_acme").unwrap();
    w.make_stale("org_acme");
    let lock = w.sb.path("locks/credentials.lock");
    let holder = hold_lock(&lock);
    let run = w.run_env(
        &[("MYCLI_LOCK_TIMEOUT", "1"), ("MYCLI_HTTP_TIMEOUT", "1")],
        &["--context", "acme", "token"],
    );
    run.code(1);
    assert_clear_error(&run);
    assert!(run.stderr.contains("credentials.lock"), "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        w.stat("refresh_success"),
        0,
        "a refresh was sent while its result could not be saved"
    );
    assert_eq!(w.refresh_token("org_acme").as_deref(), Some(rt.as_str()));
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    drop(holder);

    // The session is intact once the lock is free.
    w.token("acme", "org_acme");
    assert_ne!(w.refresh_token("org_acme").unwrap(), rt, "rotation saved");
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.assert_no_secrets();
}

#[test]
fn a_full_disk_fails_the_refresh_before_the_secret_is_spent() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    let rt = w.refresh_token("org_acme").unwrap();
    w.make_stale("org_acme");
    // The store moves to a 256 KiB tmpfs that is then filled up; `mycli token` runs there, and
    // the store comes back as the refresh left it.
    let mnt = w.sb.tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "set -u\n\
         mount -t tmpfs -o size=256k tmpfs '{mnt}' || exit 97\n\
         cp -a \"$MYCLI_CONFIG_DIR\" '{mnt}/store'\n\
         dd if=/dev/zero of='{mnt}/filler' bs=4k 2>/dev/null\n\
         MYCLI_CONFIG_DIR='{mnt}/store' \"$MYCLI\" --context acme token\n\
         rc=$?\n\
         rm -rf \"$MYCLI_CONFIG_DIR\" && cp -a '{mnt}/store' \"$MYCLI_CONFIG_DIR\" || exit 98\n\
         exit $rc\n",
        mnt = mnt.display()
    );
    let Some(run) = in_mount_namespace(&w.sb, &script) else {
        return;
    };
    w.record("token (disk full)", &run, true);
    run.code(1);
    assert_clear_error(&run);
    assert!(run.stderr.contains("No space left"), "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        w.stat("refresh_success"),
        0,
        "a refresh was sent while its result could not be saved"
    );
    assert_eq!(w.refresh_token("org_acme").as_deref(), Some(rt.as_str()));
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());

    // With room again, the session is intact.
    w.token("acme", "org_acme");
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.assert_no_secrets();
}

#[test]
fn a_save_that_fails_after_the_rotation_prints_the_token_and_says_what_was_lost() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    w.make_stale("org_acme");
    w.idp().scenario(json!({"hold_after_rotate": 1}));
    let bg = w.spawn(&[], &["--context", "acme", "token"]);
    w.wait_for_held_answer();
    // While the answer is on its way, credentials.toml becomes unwritable (a directory).
    let creds = w.sb.path("credentials.toml");
    let aside = w.sb.path("credentials.aside");
    std::fs::rename(&creds, &aside).unwrap();
    std::fs::create_dir(&creds).unwrap();
    w.release_held_answers();
    let (run, _) = w.finish(bg, LONG);
    std::fs::remove_dir(&creds).unwrap();
    std::fs::rename(&aside, &creds).unwrap();

    run.ok();
    assert_valid_for(&printed_token(&run), "org_acme", &w.base);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one warning and a hint: {run:#?}");
    assert!(
        lines[0].starts_with("warning: the renewed refresh token of \"acme\" could not be saved"),
        "{run:#?}"
    );
    assert!(
        lines[0].contains("credentials.toml"),
        "names the file: {run:#?}"
    );
    assert!(lines[1].starts_with("hint: ") && lines[1].contains("mycli login --org org_acme"));
    assert!(stray_temp_files(&w.sb.config_dir).is_empty());
    // The printed token is cached: it keeps working until it expires.
    assert_eq!(
        printed_token(&w.run(&["--context", "acme", "token"])),
        printed_token(&run)
    );
    w.assert_no_secrets();
}

#[test]
fn ctrl_c_or_sigterm_after_the_rotation_saves_the_new_secret_then_exits_130() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    // SIGHUP: the terminal (or the ssh session) closed under a refresh.
    for signal in ["-INT", "-TERM", "-HUP"] {
        let rt = w.refresh_token("org_acme").unwrap();
        w.make_stale("org_acme");
        w.idp().scenario(json!({"hold_after_rotate": 1}));
        let mut bg = w.spawn(&[], &["--context", "acme", "token"]);
        w.wait_for_held_answer();
        let status = Command::new("kill")
            .args([signal, &bg.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        bg.wait_stderr("finishing the refresh");
        assert!(bg.running(), "{signal}: exited before the answer came");
        w.release_held_answers();
        let (run, _) = w.finish(bg, LONG);
        assert_eq!(run.code, Some(130), "{signal}: {run:#?}");
        assert_eq!(run.stdout, "");
        assert_ne!(
            w.refresh_token("org_acme").unwrap(),
            rt,
            "{signal}: the rotated secret was saved"
        );
        assert!(stray_temp_files(&w.sb.config_dir).is_empty());
        // The next call uses what was saved: no reuse of the retired secret (strict IdP).
        w.make_stale("org_acme");
        w.token("acme", "org_acme");
        assert_eq!(w.stat("refresh_reuse_detected"), 0, "{signal}");
    }
    assert_eq!(w.stats()["revoked_sessions"], json!([]));
    w.assert_no_secrets();
}

#[test]
fn an_answer_lost_to_the_http_timeout_is_recovered_inside_the_grace_window() {
    let mut w = World::new();
    w.login("org_acme", "acme");
    let rt = w.refresh_token("org_acme").unwrap();
    w.make_stale("org_acme");
    // The IdP rotates, then its answer never arrives within MYCLI_HTTP_TIMEOUT.
    w.idp()
        .scenario(json!({"refresh_grace_ms": 30000, "hold_after_rotate": 1}));
    let run = w.run_env(
        &[("MYCLI_HTTP_TIMEOUT", "1")],
        &["--context", "acme", "token"],
    );
    w.release_held_answers();
    run.ok();
    assert_valid_for(&printed_token(&run), "org_acme", &w.base);
    assert_eq!(w.stat("refresh_grace_replays"), 1, "{:#}", w.stats());
    assert_ne!(w.refresh_token("org_acme").unwrap(), rt, "rotation saved");
    w.make_stale("org_acme");
    w.token("acme", "org_acme");
    assert_eq!(w.stat("refresh_reuse_detected"), 0);
    w.assert_no_secrets();
}

#[test]
fn a_stderr_that_cannot_be_written_never_crashes_mycli() {
    // A closed pipe (a reader that went away) and a full device: writing the conversation
    // fails, and that must not turn an answer into a panic (exit 134 in a release build).
    let sb = Sandbox::new();
    sb.write_config(&context_toml("org_acme", "acme"));
    for stderr in ["closed", "/dev/full"] {
        for (args, code) in [(&["switch", "nope"][..], 1), (&["switch", "acme"], 0)] {
            let target: std::process::Stdio = if stderr == "closed" {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                writer.into()
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(stderr)
                    .unwrap()
                    .into()
            };
            let status = sb
                .cmd()
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(target)
                .status()
                .unwrap();
            assert_eq!(status.code(), Some(code), "{stderr} {args:?}: {status:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. A storm: many commands at once over four contexts, signalled and killed at random
// ---------------------------------------------------------------------------------------------

/// The storm's organizations and the names their contexts start with.
const STORM: [(&str, &str); 4] = [
    ("org_acme", "acme"),
    ("org_globex", "globex"),
    ("org_initech", "initech"),
    ("org_umbrella", "umbrella"),
];

/// How long one storm command may run before it counts as hung.
const HUNG: Duration = Duration::from_secs(20);

/// A small PRNG (xorshift64*): the storm's choices. The seed is printed so that a failing
/// storm can be replayed (`STORM_SEED=N`); the timing is the machine's.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// `token` of the current context.
    Token,
    /// `--context ORG token`.
    TokenOf(usize),
    /// `refresh ORG` (always a refresh).
    Refresh(usize),
    /// `login --org ORG` of a context that is signed in: renews nothing, switches.
    Login(usize),
    Switch(usize),
    SwitchBack,
    /// `rename ORG NAME`, to its first name (`false`) or another (`true`).
    Rename(usize, bool),
    StatusAll,
    Contexts,
    /// `prompt` and `current`: the name of the current context, read while it changes.
    Prompt,
    Current,
}

impl Op {
    fn random(rng: &mut Rng) -> Op {
        let org = rng.below(STORM.len() as u64) as usize;
        match rng.below(16) {
            0..=1 => Op::Token,
            2..=4 => Op::TokenOf(org),
            5..=6 => Op::Refresh(org),
            7 => Op::Login(org),
            8 => Op::Switch(org),
            9 => Op::SwitchBack,
            10..=11 => Op::Rename(org, rng.below(2) == 0),
            12 => Op::StatusAll,
            13 => Op::Contexts,
            14 => Op::Prompt,
            _ => Op::Current,
        }
    }

    fn args(self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect();
        match self {
            Op::Token => s(&["token"]),
            Op::TokenOf(i) => s(&["--context", STORM[i].0, "token"]),
            Op::Refresh(i) => s(&["refresh", STORM[i].0]),
            Op::Login(i) => s(&["login", "--device", "--org", STORM[i].0]),
            Op::Switch(i) => s(&["switch", STORM[i].0]),
            Op::SwitchBack => s(&["switch", "-"]),
            Op::Rename(i, other) => {
                let name = if other {
                    format!("{}-2", STORM[i].1)
                } else {
                    STORM[i].1.to_string()
                };
                s(&["rename", STORM[i].0, &name])
            }
            Op::StatusAll => s(&["status", "--all"]),
            Op::Contexts => s(&["contexts", "-o", "json"]),
            Op::Prompt => s(&["prompt"]),
            Op::Current => s(&["current"]),
        }
    }

    /// Whether the command may refresh a session (send a refresh token to the IdP).
    fn may_refresh(self) -> bool {
        matches!(
            self,
            Op::Token | Op::TokenOf(_) | Op::Refresh(_) | Op::Login(_)
        )
    }

    /// The organization the command names, if it names one.
    fn org(self) -> Option<usize> {
        match self {
            Op::TokenOf(i) | Op::Refresh(i) | Op::Login(i) | Op::Switch(i) | Op::Rename(i, _) => {
                Some(i)
            }
            _ => None,
        }
    }

    /// Whether the command touches organization `i` (the current context may be any).
    fn touches(self, i: usize) -> bool {
        match self {
            Op::Token | Op::SwitchBack | Op::Prompt | Op::Current => true,
            _ => self.org() == Some(i),
        }
    }
}

/// A storm command that is still running.
struct Running {
    id: usize,
    op: Op,
    child: std::process::Child,
    /// The signal the killer sent it, if any (one at most: a second Ctrl-C quits at once).
    signal: Option<i32>,
}

/// How a storm command ended.
struct Ended {
    id: usize,
    op: Op,
    started: Duration,
    /// When it started, in Unix seconds (rounded down).
    started_at: i64,
    took: Duration,
    signal: Option<i32>,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        let end = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(s)) => format!("died of signal {s}"),
            _ => "?".to_string(),
        };
        let sent = self
            .signal
            .map(|s| format!(" after signal {s}"))
            .unwrap_or_default();
        let said = self
            .stderr
            .lines()
            .find(|l| l.starts_with("error:") || l.starts_with("warning:"));
        write!(
            f,
            "#{} at {:>5} ms, {:>4} ms: mycli {} -> {end}{sent}{}",
            self.id,
            self.started.as_millis(),
            self.took.as_millis(),
            self.op.args().join(" "),
            said.map(|l| format!(" ({l})")).unwrap_or_default()
        )
    }
}

/// One storm: worker threads each running random commands back to back for `length`, and a
/// killer that sends a random running command SIGINT, SIGTERM or SIGHUP, or SIGKILL (to any
/// command when `kill_refreshes`, else only to those that cannot refresh). Every command's end.
fn storm(w: &World, seed: u64, length: Duration, kill_refreshes: bool) -> Vec<Ended> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const WORKERS: u64 = 6;
    let running: Mutex<Vec<Running>> = Mutex::new(Vec::new());
    let ended: Mutex<Vec<Ended>> = Mutex::new(Vec::new());
    let next_id = AtomicUsize::new(0);
    let out_dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let deadline = start + length;
    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let (running, ended, next_id, out_dir) = (&running, &ended, &next_id, &out_dir);
            scope.spawn(move || {
                let mut rng = Rng((seed ^ (worker + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                while Instant::now() < deadline {
                    let op = Op::random(&mut rng);
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let out = out_dir.path().join(format!("{id}.out"));
                    let err = out_dir.path().join(format!("{id}.err"));
                    let started = start.elapsed();
                    let started_at = now();
                    let child =
                        w.sb.cmd()
                            .args(op.args())
                            .stdout(std::fs::File::create(&out).unwrap())
                            .stderr(std::fs::File::create(&err).unwrap())
                            .spawn()
                            .unwrap();
                    running.lock().unwrap().push(Running {
                        id,
                        op,
                        child,
                        signal: None,
                    });
                    // Reaped only under the lock, so the killer never signals a reused pid.
                    let (status, signal) = loop {
                        std::thread::sleep(Duration::from_millis(2));
                        let mut running = running.lock().unwrap();
                        let at = running.iter().position(|r| r.id == id).unwrap();
                        if start.elapsed() - started > HUNG {
                            let _ = running[at].child.kill();
                        }
                        if let Some(status) = running[at].child.try_wait().unwrap() {
                            let r = running.swap_remove(at);
                            break (status, r.signal);
                        }
                    };
                    ended.lock().unwrap().push(Ended {
                        id,
                        op,
                        started,
                        started_at,
                        took: start.elapsed() - started,
                        signal,
                        status,
                        stdout: std::fs::read_to_string(&out).unwrap(),
                        stderr: std::fs::read_to_string(&err).unwrap(),
                    });
                }
            });
        }
        let running = &running;
        scope.spawn(move || {
            let mut rng = Rng(seed.rotate_left(17) | 1);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(rng.below(50_000)));
                let mut running = running.lock().unwrap();
                let candidates: Vec<usize> = (0..running.len())
                    .filter(|&i| running[i].signal.is_none())
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let r = &mut running[rng.pick(&candidates)];
                if r.child.try_wait().unwrap().is_some() {
                    continue;
                }
                use rustix::process::Signal;
                let signal = match rng.below(4) {
                    0 if kill_refreshes || !r.op.may_refresh() => Signal::KILL,
                    0 | 1 => Signal::INT,
                    2 => Signal::TERM,
                    _ => Signal::HUP,
                };
                // The child is not reaped yet (that happens under this lock): its pid is its own.
                let pid = rustix::process::Pid::from_raw(r.child.id() as i32).unwrap();
                rustix::process::kill_process(pid, signal).unwrap();
                r.signal = Some(signal.as_raw());
            }
        });
    });
    let mut ended = ended.into_inner().unwrap();
    ended.sort_by_key(|e| e.started);
    ended
}

/// What went wrong with one storm command, if anything.
fn storm_fault(w: &World, e: &Ended) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    if e.took > HUNG {
        return Some("hung".into());
    }
    if e.stderr.contains("panicked") || e.stderr.contains("RUST_BACKTRACE") {
        return Some("panicked".into());
    }
    match (e.status.code(), e.status.signal(), e.signal) {
        // Killed, or signalled before its handlers were installed.
        (None, Some(s), Some(sent)) if s == sent => None,
        (Some(130), _, Some(libc::SIGINT | libc::SIGTERM | libc::SIGHUP)) => None,
        (Some(0), _, _) => match e.op {
            Op::Token | Op::TokenOf(_) => {
                let token = e.stdout.strip_suffix('\n').unwrap_or("");
                if token.is_empty() || token.contains('\n') || token.split('.').count() != 3 {
                    return Some(format!("printed {:?}", e.stdout));
                }
                let c = claims(token);
                // Expired, or about to, when it was printed.
                if c["exp"].as_i64().unwrap_or(0) <= e.started_at {
                    return Some(format!(
                        "printed an expired token (iat {}, exp {}, started at {})",
                        c["iat"], c["exp"], e.started_at
                    ));
                }
                if let Op::TokenOf(i) = e.op
                    && c["org_id"] != STORM[i].0
                {
                    return Some(format!("printed a token for {}", c["org_id"]));
                }
                if c["iss"] != w.base.as_str() {
                    return Some("printed a token of another issuer".into());
                }
                None
            }
            Op::Prompt | Op::Current => {
                let name = e.stdout.strip_suffix('\n').unwrap_or("");
                let known = STORM
                    .iter()
                    .any(|(_, base)| name == *base || name == format!("{base}-2"));
                (!known).then(|| format!("printed {:?}", e.stdout))
            }
            Op::Contexts => {
                let contexts: Vec<Value> = serde_json::from_str(&e.stdout).unwrap_or_default();
                let names: BTreeSet<&str> =
                    contexts.iter().filter_map(|c| c["name"].as_str()).collect();
                (contexts.len() != STORM.len() || names.len() != STORM.len())
                    .then(|| format!("listed {contexts:?}"))
            }
            _ => None,
        },
        _ => Some("failed".into()),
    }
}

/// Runs one storm, then checks that it lost and tore nothing: every command ended in time and
/// as documented; config.toml, current.toml and credentials.toml hold exactly the four
/// contexts with unique names; every session still refreshes (a refresh token the IdP sees
/// twice would have revoked it); no new session was needed.
fn storm_and_check(w: &mut World, seed: u64, kill_refreshes: bool) -> usize {
    let ended = storm(w, seed, Duration::from_secs(5), kill_refreshes);
    let faults: Vec<(&Ended, String)> = ended
        .iter()
        .filter_map(|e| storm_fault(w, e).map(|f| (e, f)))
        .collect();
    let stats = w.stats();
    let lost = stats["refresh_reuse_detected"].as_u64().unwrap_or(0) > 0
        || stats["revoked_sessions"] != json!([]);
    if !faults.is_empty() || lost {
        // The commands that preceded each fault on its context, in order.
        for (fault, why) in &faults {
            eprintln!("FAULT {why}: {fault:?}\n  stderr: {}", fault.stderr.trim());
            let i = fault.op.org().or_else(|| {
                STORM.iter().position(|(org, name)| {
                    fault.stderr.contains(org) || fault.stderr.contains(name)
                })
            });
            for e in ended
                .iter()
                .filter(|e| e.started <= fault.started && i.is_none_or(|i| e.op.touches(i)))
                .rev()
                .take(25)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("    {e:?}");
            }
        }
        panic!(
            "seed {seed}: {} of {} commands went wrong; IdP: reuse detected {}, revoked {}",
            faults.len(),
            ended.len(),
            stats["refresh_reuse_detected"],
            stats["revoked_sessions"]
        );
    }
    let signalled = ended.iter().filter(|e| e.signal.is_some()).count();
    let killed = ended
        .iter()
        .filter(|e| e.signal == Some(libc::SIGKILL))
        .count();
    // Refreshes that a signal interrupted and that still finished: the deferred exit.
    let deferred = ended
        .iter()
        .filter(|e| e.op.may_refresh() && e.stderr.contains("finishing the refresh"))
        .count();
    eprintln!(
        "seed {seed}: {} commands, {signalled} signalled ({killed} SIGKILL, {deferred} refreshes \
         finished after Ctrl-C or a signal); IdP so far: {} refreshes, {} grace replays",
        ended.len(),
        stats["grants"]["refresh_token"],
        stats["refresh_grace_replays"]
    );
    for e in &ended {
        w.log_run(
            &e.op.args().join(" "),
            &Run {
                code: e.status.code(),
                stdout: e.stdout.clone(),
                stderr: e.stderr.clone(),
            },
            matches!(e.op, Op::Token | Op::TokenOf(_)),
        );
    }

    // The store: whole, every context once, unique names, the secrets of exactly those.
    let config = w.sb.config();
    let contexts = config["contexts"].as_table().unwrap();
    let keys: BTreeSet<&str> = contexts.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = STORM.iter().map(|(org, _)| *org).collect();
    assert_eq!(keys, want, "config.toml lost or gained a context");
    let names: BTreeSet<&str> = contexts
        .values()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        STORM.len(),
        "two contexts share a name: {names:?}"
    );
    let pointers: toml::Table =
        toml::from_str(&std::fs::read_to_string(w.sb.path("current.toml")).unwrap()).unwrap();
    for pointer in ["current", "previous"] {
        if let Some(key) = pointers.get(pointer) {
            assert!(want.contains(key.as_str().unwrap()), "{pointer} = {key}");
        }
    }
    let secrets = credentials(&w.sb);
    assert_eq!(
        secrets.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want,
        "credentials.toml holds other keys than the contexts"
    );
    for (key, ctx) in contexts {
        assert_ne!(
            ctx.get("needs-login").and_then(|v| v.as_bool()),
            Some(true),
            "{key} needs a login"
        );
    }
    assert_eq!(w.sb.contexts_json().len(), STORM.len());

    // Every session still works: a forced refresh sends the stored refresh token (after a
    // SIGKILL that lost a rotation, the grace window answers it), then once more to an IdP
    // without a grace window, which accepts only the refresh token it issued last.
    for grace in [None, Some(0)] {
        if let Some(ms) = grace {
            w.idp().scenario(json!({ "refresh_grace_ms": ms }));
        }
        for (org, _) in STORM {
            let run = w.sb.run(&["refresh", org]);
            assert_eq!(run.code, Some(0), "{org}: {run:#?}\n{:#}", w.stats());
            let run = w.sb.run(&["--context", org, "token"]);
            assert_eq!(claims(&printed_token(&run))["org_id"], org);
        }
    }
    let stats = w.stats();
    assert_eq!(stats["refresh_reuse_detected"], 0, "{stats:#}");
    assert_eq!(stats["revoked_sessions"], json!([]), "{stats:#}");
    assert_eq!(
        stats["sessions_created"],
        STORM.len(),
        "a session was signed in again"
    );
    signalled
}

/// A temporary file left by a killed writer, in any directory of the store, is removed by
/// the next write there once it is a minute old (it may hold a secret).
fn assert_abandoned_temp_files_are_removed(w: &World) {
    let strays = stray_temp_files(&w.sb.config_dir);
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for path in &strays {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    // A write of every file of the store: config.toml, current.toml, the index and the names
    // (a rename), credentials.toml and each token cache (a refresh of each).
    w.sb.run(&["rename", "org_acme", "acme-3"]).ok();
    w.sb.run(&["rename", "org_acme", "acme"]).ok();
    for (org, _) in STORM {
        w.sb.run(&["refresh", org]).ok();
    }
    let left = stray_temp_files(&w.sb.config_dir);
    assert!(
        left.is_empty(),
        "{} of {} abandoned temporary files outlived the next write: {left:?}",
        left.len(),
        strays.len()
    );
}

#[test]
fn a_storm_of_commands_killed_at_random_loses_no_session_and_tears_no_store() {
    let seed = std::env::var("STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("STORM_SEED={seed}");
    let mut sb = Sandbox::new();
    let users = sb.tmp.path().join("users.json");
    std::fs::write(
        &users,
        json!({
            "organizations": STORM.iter().map(|(id, name)| json!({"id": id, "name": name}))
                .collect::<Vec<_>>(),
            "users": [{"id": "user_alice", "email": "alice@example.com",
                "memberships": STORM.iter().map(|(id, _)| *id).collect::<Vec<_>>()}]
        })
        .to_string(),
    )
    .unwrap();
    let idp = Idp::start_with_users(&users);
    idp.scenario(json!({"device_interval": 1}));
    sb.use_idp(&idp);
    let mut w = World {
        base: idp.base.clone(),
        idp: Some(idp),
        sb,
        log: Vec::new(),
        refresh_tokens: BTreeSet::new(),
        access_tokens: BTreeSet::new(),
    };
    for (org, name) in STORM {
        w.login(org, name);
    }
    // Access tokens that live 6 s are refreshed after 3: `token` refreshes often, beside the
    // forced `refresh`. An IdP that takes 40 ms to answer a refresh: signals land while the
    // rotated token is on its way.
    w.idp()
        .scenario(json!({"access_token_ttl": 6, "refresh_delay_ms": 40}));

    // Strict rotation, no grace window: Ctrl-C and SIGTERM at any moment lose nothing, nor does
    // SIGKILL of a command that cannot refresh.
    let signalled = storm_and_check(&mut w, seed, false);
    // WorkOS's grace window: SIGKILL at any moment, a refresh included, loses nothing either
    // (README, Guarantees).
    w.idp().scenario(json!({"refresh_grace_ms": 30000}));
    let signalled = signalled + storm_and_check(&mut w, seed.wrapping_add(1), true);
    assert!(
        signalled >= 20,
        "the storm must signal commands while they run ({signalled})"
    );
    assert_abandoned_temp_files_are_removed(&w);
    w.assert_no_secrets();
}
