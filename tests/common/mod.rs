//! Test harness shared by the integration tests: a sandboxed config dir that runs the real
//! `mycli` binary, and the test identity providers under `tests/idp/` as real HTTP servers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod bg;
pub mod http;
mod world;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

// Not every test crate uses these.
#[allow(unused_imports)]
pub use bg::*;
#[allow(unused_imports)]
pub use world::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_mycli");

/// What mycli says on stderr once a wait for another process's lock has lasted a second.
pub const LOCK_WAIT: &str = "Waiting for another mycli process to release";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What one run of the binary produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self:#?}");
        self
    }
}

/// A private HOME and config dir; commands run with a clean environment.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub config_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let config_dir = tmp.path().join("config");
        Sandbox {
            env: vec![
                ("MYCLI_CONFIG_DIR".into(), config_dir.display().to_string()),
                ("MYCLI_CREDENTIAL_STORE".into(), "file".into()),
                ("MYCLI_HTTP_TIMEOUT".into(), "5".into()),
            ],
            tmp,
            config_dir,
        }
    }

    /// Sets (or replaces) an environment variable for every later command.
    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// Points the sandbox at a test IdP (WorkOS dialect, client `client_test`).
    pub fn use_idp(&mut self, idp: &Idp) -> &mut Self {
        self.set("MYCLI_ISSUER", &idp.base);
        self.set("MYCLI_CLIENT_ID", "client_test");
        self
    }

    /// The real binary with only PATH, HOME and the sandbox's variables.
    pub fn cmd(&self) -> Command {
        self.with_env(Command::new(BIN))
    }

    /// `line` (a shell command line) run by script(1) on a terminal, with the environment of
    /// `cmd` (stdin is null; set it, stdout and any variable after).
    pub fn terminal_cmd(&self, line: &str) -> Command {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", line, "/dev/null"]);
        self.with_env(cmd)
    }

    fn with_env(&self, mut cmd: Command) -> Command {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd().args(args).output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.config_dir.join(name)
    }

    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(&self.config_dir).unwrap();
        // Private, as mycli creates it (a looser store is tightened with a warning).
        std::fs::set_permissions(&self.config_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(self.path("config.toml"), text).unwrap();
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.path("config.toml")).unwrap_or_default()
    }

    pub fn config(&self) -> toml::Table {
        toml::from_str(&self.config_text()).unwrap()
    }

    /// `contexts -o json`, parsed.
    pub fn contexts_json(&self) -> Vec<Value> {
        contexts_of(&self.run(&["contexts", "-o", "json"]))
    }

    /// Writes a BROWSER program that fetches the URL like a browser that follows the IdP's
    /// redirect to the loopback callback.
    pub fn curl_browser(&self) -> PathBuf {
        let path = self.tmp.path().join("browser.sh");
        std::fs::write(
            &path,
            "#!/bin/sh\nexec curl -s -L --max-redirs 3 -o /dev/null \"$1\"\n",
        )
        .unwrap();
        make_executable(&path);
        path
    }
}

/// The file name the store gives a context key: `x-` and the SHA-256 of the key in hex.
pub fn key_stem(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("x-{hex}")
}

impl Sandbox {
    /// The cached access token file of a context.
    pub fn token_file(&self, key: &str) -> PathBuf {
        self.path("tokens").join(format!("{}.json", key_stem(key)))
    }

    /// The refresh lock of a context.
    pub fn context_lock(&self, key: &str) -> PathBuf {
        self.path("locks")
            .join(format!("context-{}.lock", key_stem(key)))
    }
}

pub fn make_executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A context table for `config.toml`, as the README documents it.
pub fn context_toml(key: &str, name: &str) -> String {
    format!(
        "[contexts.{key}]\nname = \"{name}\"\nuser-id = \"user_{name}\"\nemail = \"{name}@example.com\"\n\
         provider = \"workos\"\nissuer = \"https://api.workos.com\"\nclient-id = \"client_test\"\n\
         method = \"device\"\nstorage = \"file\"\n\n"
    )
}

/// A running test IdP: `tests/idp/workos-idp.mjs` (WorkOS dialect at `base`, OIDC dialect at
/// `base/oidc`), stopped on drop.
pub struct Idp {
    child: Child,
    pub base: String,
}

impl Idp {
    pub fn start() -> Idp {
        Idp::spawn(
            &[repo()
                .join("tests/idp/workos-idp.mjs")
                .display()
                .to_string()],
            &[],
        )
    }

    /// The WorkOS fake with its organizations and users from `users` (a JSON file, see
    /// `--users` in `tests/idp/workos-idp.mjs`).
    pub fn start_with_users(users: &Path) -> Idp {
        Idp::spawn(
            &[
                repo()
                    .join("tests/idp/workos-idp.mjs")
                    .display()
                    .to_string(),
                "--users".to_string(),
                users.display().to_string(),
            ],
            &[],
        )
    }

    /// panva's oidc-provider (`tests/idp/oidc-server.mjs`), issuer = `base`.
    pub fn start_oidc_provider(env: &[(&str, &str)]) -> Idp {
        let modules = repo().join("tests/idp/node_modules/oidc-provider");
        assert!(
            modules.exists(),
            "tests/idp/node_modules is missing: run scripts/setup (or `npm ci --prefix tests/idp`)"
        );
        Idp::spawn(
            &[repo()
                .join("tests/idp/oidc-server.mjs")
                .display()
                .to_string()],
            env,
        )
    }

    fn spawn(args: &[String], env: &[(&str, &str)]) -> Idp {
        let mut cmd = Command::new("node");
        cmd.args(args)
            .env("WORKOS_IDP_QUIET", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("node must be installed to run the test IdP");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the test IdP did not start: {line:?}"))
            .to_string();
        Idp { child, base }
    }

    pub fn admin(&self, path: &str, body: Value) -> Value {
        self.admin_status(path, body).1
    }

    /// POSTs JSON to an admin endpoint; the HTTP status and the parsed answer.
    pub fn admin_status(&self, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut resp = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Approves the most recent pending device code as `email` (default alice), waiting up
    /// to 10 s for one to appear.
    pub fn approve_device(&self, body: Value) {
        let approved = wait_for(Duration::from_secs(10), || {
            self.admin_status("/__admin/device/approve", body.clone()).0 == 200
        });
        assert!(approved, "no device code to approve: {:#}", self.stats());
    }

    pub fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let mut resp = ureq::get(&url).call().unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    }

    pub fn scenario(&self, knobs: Value) {
        self.admin("/__admin/scenario", knobs);
    }

    pub fn stats(&self) -> Value {
        self.get("/__admin/stats")
    }

    /// Number of refresh grants that reached the token endpoint.
    pub fn refreshes(&self) -> u64 {
        self.stats()["grants"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `f` is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

// ---------------------------------------------------------------------------------------------
// What the binary printed
// ---------------------------------------------------------------------------------------------

/// The output of a successful `contexts -o json`, parsed.
pub fn contexts_of(run: &Run) -> Vec<Value> {
    run.ok();
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The context called `name` among `contexts` (as `contexts -o json` lists them).
pub fn context_named(contexts: Vec<Value>, name: &str) -> Value {
    contexts
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no context {name:?}"))
}

/// The single token `mycli token` printed: exactly one line, nothing else.
pub fn printed_token(run: &Run) -> String {
    run.ok();
    let token = run
        .stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("token output does not end with a newline: {run:#?}"));
    assert!(
        !token.is_empty() && !token.contains('\n'),
        "token printed more than one line: {run:#?}"
    );
    token.to_string()
}

/// The authorize URL printed on stderr.
pub fn authorize_url(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("authorize?"))
        .unwrap_or_else(|| panic!("no authorize URL on stderr:\n{stderr}"))
        .to_string()
}

/// No run of 40+ token characters: a device code, refresh token or JWT would be one.
pub fn assert_no_opaque_code(text: &str) {
    let longest = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 40, "stderr shows a long opaque code:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a JWT (not verified: the IdP signed it; this reads what it says).
pub fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {jwt:?}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// Asserts a JWT is for `org`, from the IdP at `base`, and good for more than the 60 s margin.
pub fn assert_valid_for(jwt: &str, org: &str, base: &str) {
    let c = claims(jwt);
    assert_eq!(c["org_id"], org, "org_id claim");
    assert_eq!(c["iss"], base, "iss claim");
    let exp = c["exp"].as_i64().unwrap();
    assert!(exp > now() + 60, "the token expires too soon: exp {exp}");
}

// ---------------------------------------------------------------------------------------------
// The store on disk
// ---------------------------------------------------------------------------------------------

/// `credentials.toml`: context key -> refresh token (empty when there is no file; a file that
/// does not parse, or an entry without a refresh token, fails the test).
pub fn credentials(sb: &Sandbox) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(sb.path("credentials.toml")) else {
        return BTreeMap::new();
    };
    let table: toml::Table = toml::from_str(&text).expect("credentials.toml parses");
    table
        .into_iter()
        .map(|(k, v)| (k, v["refresh-token"].as_str().unwrap().to_string()))
        .collect()
}

/// The access tokens of the token cache; unreadable or partial files are passed over.
pub fn cached_access_tokens(sb: &Sandbox) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(sb.path("tokens")) {
        for entry in dir.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                && let Some(at) = v["access_token"].as_str()
            {
                out.push(at.to_string());
            }
        }
    }
    out
}

/// Every file under the store with its bytes, lock files and derived caches aside.
pub fn store_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
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

/// The permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A port that was free a moment ago (for `--port`, which mycli must bind itself; a test
/// using it retries when another process took the port in between).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port on 127.0.0.1 where nothing answers, held for as long as the value lives: the socket
/// is bound but never listens, so every connection is refused and no other process can take
/// the port meanwhile (a port freed by closing a listener races with them).
pub struct DeadPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        DeadPort {
            _socket: socket,
            port,
        }
    }
}

/// A test that this machine cannot run says so and passes, except in CI (`CI` set), whose
/// machine has every tool the tests use: there a skip would hide a failure.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}; CI must run this test"
    );
    eprintln!("skipped: {why}");
}

/// `sh -c SCRIPT` in a private mount namespace (where it may mount a small tmpfs), with the
/// sandbox's environment; `None` when this machine cannot make one.
pub fn in_mount_namespace(sb: &Sandbox, script: &str) -> Option<Run> {
    let probe = Command::new("unshare").args(["-Urm", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip("`unshare -Urm` is not available here");
        return None;
    }
    let cmd = sb.cmd();
    let program = cmd.get_program().to_owned();
    let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut ns = Command::new("unshare");
    ns.env_clear()
        .args(["-Urm", "sh", "-c", script])
        .env("MYCLI", &program);
    for (k, v) in envs {
        if let Some(v) = v {
            ns.env(k, v);
        }
    }
    let out = ns.output().unwrap();
    Some(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
