//! A `mycli` process running in the background, its output collected as it arrives.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Run, Sandbox, authorize_url, wait_for};

/// How long `wait_stderr` waits, and how long `sigkill` waits for the exit.
const PATIENCE: Duration = Duration::from_secs(20);

/// A process started by `Bg::start`; killed on drop if it is still running.
pub struct Bg {
    /// What it is, for messages (and for the callers' logs).
    pub what: String,
    pub child: Child,
    pub started: Instant,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// Copies everything `from` yields into `into`, on a thread of its own.
pub fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
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
    /// Starts `cmd` with its stdout and stderr piped and collected.
    pub fn start(mut cmd: Command, what: String) -> Bg {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until stderr contains `needle`; returns stderr so far.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        let seen = wait_for(PATIENCE, || self.stderr().contains(needle));
        let stderr = self.stderr();
        assert!(
            seen,
            "{}: stderr never said {needle:?} (exit: {:?}):\n{stderr}",
            self.what,
            self.child.try_wait()
        );
        stderr
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Ctrl-C, as the terminal sends it.
    pub fn sigint(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no handler runs, no destructor, no cleanup.
    pub fn sigkill(mut self) -> Run {
        self.child.kill().unwrap();
        self.finish(PATIENCE).0
    }

    /// Waits for the exit (killing it and failing after `timeout`), then the full output,
    /// checked to hold no panic text.
    pub fn finish(mut self, timeout: Duration) -> (Run, Duration) {
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

pub fn assert_no_panic(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what}: panic text on stderr:\n{stderr}"
    );
}

impl Sandbox {
    /// Starts `mycli ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let mut cmd = self.cmd();
        cmd.args(args);
        Bg::start(cmd, args.join(" "))
    }
}

/// Starts `mycli login --org org_acme --no-browser` and waits until it waits for the sign-in;
/// the process, the port it bound (as its redirect URI says) and its stderr so far.
pub fn start_pkce_wait(sb: &Sandbox) -> (Bg, u16, String) {
    let mut bg = sb.spawn(&["login", "--org", "org_acme", "--no-browser"]);
    let stderr = bg.wait_stderr("Waiting for the sign-in");
    let port = redirect_port(&authorize_url(&stderr));
    (bg, port, stderr)
}

/// The loopback port of an authorize URL's `redirect_uri`.
pub fn redirect_port(authorize_url: &str) -> u16 {
    let url = url::Url::parse(authorize_url).unwrap();
    let (_, redirect) = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap_or_else(|| panic!("no redirect_uri in {authorize_url}"));
    url::Url::parse(&redirect).unwrap().port().unwrap()
}

/// `start_pkce_wait`, with the authorize URL it printed instead of its stderr.
pub fn start_pkce_login(sb: &Sandbox) -> (Bg, u16, String) {
    let (bg, port, stderr) = start_pkce_wait(sb);
    (bg, port, authorize_url(&stderr))
}
