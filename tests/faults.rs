#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fault injection and hostile input through the real binary: hostile traffic on the loopback
//! redirect server during a real PKCE login, SIGKILL and SIGINT at awkward instants, two logins
//! at once, an IdP that is down or hangs while another context is present, a hung lock holder.
//!
//! Every output of every command is kept and checked at the end: no panic text, no backtrace
//! hint, no refresh or access token (except the one `mycli token` prints on stdout).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One output of one command, kept for the final secrets check.
struct Logged {
    what: String,
    stdout: String,
    stderr: String,
    /// `mycli token`: its stdout is the one place an access token may appear.
    token_stdout: bool,
}

/// A `mycli` process running in the background, its output collected as it arrives.
struct Bg {
    what: String,
    child: Child,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

impl Bg {
    fn start(mut cmd: Command, what: String) -> Bg {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Bg {
            what,
            child,
            started: Instant::now(),
            stdout,
            stderr,
            readers,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`; returns stderr so far.
    fn wait_stderr(&mut self, needle: &str) -> String {
        let seen = wait_for(LONG, || self.stderr().contains(needle));
        let stderr = self.stderr();
        assert!(
            seen,
            "{}: stderr never said {needle:?} (exit: {:?}):\n{stderr}",
            self.what,
            self.child.try_wait()
        );
        stderr
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Ctrl-C, as the terminal sends it.
    fn sigint(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no handler runs, no destructor, no cleanup.
    fn sigkill(mut self) -> Run {
        self.child.kill().unwrap();
        self.finish(LONG).0
    }

    /// Waits for the exit (killing it and failing after `timeout`), then the full output.
    fn finish(mut self, timeout: Duration) -> (Run, Duration) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} still running after {timeout:?}; stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let run = Run {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr(),
        };
        assert_no_panic(&self.what, &run.stderr);
        (run, elapsed)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn assert_no_panic(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what}: panic text on stderr:\n{stderr}"
    );
}

/// A sandbox at its own test IdP (device interval 1 s), with every output any command printed
/// and every secret the store ever held.
struct World {
    idp: Option<Idp>,
    base: String,
    sb: Sandbox,
    log: Vec<Logged>,
    refresh_tokens: BTreeSet<String>,
    access_tokens: BTreeSet<String>,
}

impl World {
    fn new() -> World {
        let idp = Idp::start();
        idp.scenario(json!({"device_interval": 1}));
        let mut sb = Sandbox::new();
        sb.use_idp(&idp);
        World {
            base: idp.base.clone(),
            idp: Some(idp),
            sb,
            log: Vec::new(),
            refresh_tokens: BTreeSet::new(),
            access_tokens: BTreeSet::new(),
        }
    }

    fn idp(&self) -> &Idp {
        self.idp.as_ref().expect("the IdP was stopped")
    }

    /// Stops the IdP: its port refuses connections from now on.
    fn stop_idp(&mut self) {
        self.idp = None;
    }

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
        self.log.push(Logged {
            what: what.to_string(),
            stdout: run.stdout.clone(),
            stderr: run.stderr.clone(),
            token_stdout,
        });
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
        for rt in credentials(&self.sb).into_values() {
            self.refresh_tokens.insert(rt);
        }
        if let Ok(dir) = std::fs::read_dir(self.sb.path("tokens")) {
            for entry in dir.flatten() {
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                    && let Some(at) = v["access_token"].as_str()
                {
                    self.access_tokens.insert(at.to_string());
                }
            }
        }
    }

    /// No output of any command showed a secret; only `token`'s stdout an access token.
    fn assert_no_secrets(&mut self) {
        self.harvest();
        assert!(!self.refresh_tokens.is_empty(), "no secret was ever stored");
        for l in &self.log {
            for rt in &self.refresh_tokens {
                assert!(
                    !l.stdout.contains(rt.as_str()) && !l.stderr.contains(rt.as_str()),
                    "`{}` printed a refresh token",
                    l.what
                );
            }
            for at in &self.access_tokens {
                assert!(
                    !l.stderr.contains(at.as_str()),
                    "`{}` printed an access token on stderr",
                    l.what
                );
                assert!(
                    l.token_stdout || !l.stdout.contains(at.as_str()),
                    "`{}` printed an access token on stdout",
                    l.what
                );
            }
        }
    }

    fn refresh_token(&self, key: &str) -> Option<String> {
        credentials(&self.sb).remove(key)
    }

    fn cache_path(&self, key: &str) -> PathBuf {
        self.sb.path("tokens").join(format!("{key}.json"))
    }

    fn cached(&self, key: &str) -> String {
        let bytes = std::fs::read(self.cache_path(key)).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// Leaves the cached access token valid for 10 s only: `token` must refresh.
    fn make_stale(&self, key: &str) {
        let path = self.cache_path(key);
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["expires_at"] = json!(now() + 10);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
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
        let run = self.run(&["contexts", "-o", "json"]);
        run.ok();
        serde_json::from_str::<Value>(&run.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn context(&mut self, name: &str) -> Value {
        self.contexts()
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no context {name:?}"))
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

    fn stats(&self) -> Value {
        self.idp().stats()
    }

    fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }
}

/// `credentials.toml`: context key -> refresh token.
fn credentials(sb: &Sandbox) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(sb.path("credentials.toml")) else {
        return BTreeMap::new();
    };
    let table: toml::Table = toml::from_str(&text).expect("credentials.toml parses");
    table
        .into_iter()
        .map(|(k, v)| (k, v["refresh-token"].as_str().unwrap().to_string()))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a JWT (not verified: the IdP signed it; this reads what it says).
fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// The single token `mycli token` printed: exactly one line, nothing else.
fn printed_token(run: &Run) -> String {
    run.ok();
    let token = run
        .stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("token output does not end with a newline: {run:#?}"));
    assert!(!token.is_empty() && !token.contains('\n'), "{run:#?}");
    token.to_string()
}

/// Asserts a JWT is for `org`, from this IdP, and good for more than the 60 s margin.
fn assert_valid_for(jwt: &str, org: &str, base: &str) {
    let c = claims(jwt);
    assert_eq!(c["org_id"], org, "org_id claim");
    assert_eq!(c["iss"], base, "iss claim");
    let exp = c["exp"].as_i64().unwrap();
    assert!(exp > now() + 60, "the token expires too soon: exp {exp}");
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

/// No run of 40+ token characters: a device code, refresh token or JWT would be one.
fn assert_no_opaque_code(text: &str) {
    let longest = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 40, "stderr shows a long opaque code:\n{text}");
}

/// Every file under the store with its bytes, lock files and the derived index aside.
fn store_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "locks" && name != "cache" {
                    walk(&path, out);
                }
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
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

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The authorize URL printed on stderr.
fn authorize_url(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("authorize?"))
        .unwrap_or_else(|| panic!("no authorize URL on stderr:\n{stderr}"))
        .to_string()
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
    file.lock().unwrap();
    file
}

/// Starts `mycli login --org org_acme --no-browser --port P`; the process, its port and the
/// authorize URL it printed.
fn start_pkce_login(sb: &Sandbox) -> (Bg, u16, String) {
    let port = free_port();
    let args = [
        "login",
        "--org",
        "org_acme",
        "--no-browser",
        "--port",
        &port.to_string(),
    ];
    let mut cmd = sb.cmd();
    cmd.args(args);
    let mut bg = Bg::start(cmd, args.join(" "));
    let url = authorize_url(&bg.wait_stderr("Waiting for the sign-in"));
    (bg, port, url)
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
    std::thread::sleep(Duration::from_millis(300));
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
    let (bg, code) = w.start_device_login("org_acme", "acme");
    w.idp().approve_device(json!({ "user_code": code }));
    assert!(wait_for(LONG, || w.stat("sessions_created") > sessions));
    std::thread::sleep(Duration::from_millis(500));
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

/// Sends Ctrl-C and waits: exit 130 within 2 s, nothing printed but at most a line.
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
    std::thread::sleep(Duration::from_millis(200));
    interrupt(&mut w, bg);
    assert_store_is(&w.sb.config_dir, &before, "Ctrl-C changed the store");
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
    std::thread::sleep(Duration::from_millis(300));
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
    let globex_token = w.cached("org_globex");
    w.make_stale("org_acme");
    let stale = store_files(&w.sb.config_dir);

    // A slow IdP: bounded by MYCLI_HTTP_TIMEOUT.
    w.idp().scenario(json!({"fail_next": ["hang"]}));
    let bg = w.spawn(
        &[("MYCLI_HTTP_TIMEOUT", "2")],
        &["--context", "acme", "token"],
    );
    let (run, took) = w.finish(bg, LONG);
    run.code(1);
    assert_clear_error(&run);
    assert_eq!(run.stdout, "");
    assert!(took < Duration::from_secs(6), "a hanging IdP took {took:?}");
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
