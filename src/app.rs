//! What every command runs in: where the store is, how to talk, what the user selected, and
//! each side effect a command has outside the process (HTTP, the clock, the browser, the
//! keychain), so a test can swap any of them.

use crate::auth::Http;
use crate::auth::browser::Browser;
use crate::error::Result;
use crate::store::Paths;
use crate::store::credentials::{Credentials, Keychain};
use crate::time::Clock;
use crate::ui::Ui;
use crate::vocab::OutputFormat;

#[derive(Debug)]
pub struct App {
    pub paths: Paths,
    pub ui: Ui,
    /// `--context` / `MYCLI_CONTEXT`.
    pub context: Option<String>,
    pub output: Option<OutputFormat>,
    pub clock: Clock,
    pub browser: Browser,
    pub keychain: Keychain,
}

impl App {
    /// A command on this machine: the system clock, browser and keychain.
    pub fn new(paths: Paths, ui: Ui, context: Option<String>, output: Option<OutputFormat>) -> App {
        App {
            paths,
            ui,
            context,
            output,
            clock: Clock::system(),
            browser: Browser::system(),
            keychain: Keychain::Platform,
        }
    }

    /// The HTTP client, built only by the commands that talk to the IdP (it costs
    /// milliseconds; `mycli token` with a fresh token never builds one).
    pub fn http(&self) -> Result<Http> {
        Http::new(self.ui, self.clock.clone())
    }

    /// The refresh-token store.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials::new(&self.paths, &self.keychain)
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

#[cfg(test)]
pub mod testing {
    //! An `App` for unit tests: a temporary store, a quiet terminal, a clock that stands
    //! still, an in-memory keychain and a browser that only records.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::{Config, ConfigLock, Context, Method, ProviderKind, Storage};

    pub struct TestApp {
        pub app: App,
        pub dir: tempfile::TempDir,
        pub mock: Arc<keyring_core::mock::Store>,
        pub opened: Arc<Mutex<Vec<String>>>,
    }

    pub const NOW: i64 = 1_800_000_000;

    pub fn app() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::resolve(Some(dir.path())).unwrap();
        let mock = keyring_core::mock::Store::new().unwrap();
        let opened = Arc::new(Mutex::new(Vec::new()));
        let seen = opened.clone();
        let app = App {
            clock: Clock::fixed(NOW),
            browser: Browser::with(move |url| {
                seen.lock().unwrap().push(url.to_string());
                Ok(())
            }),
            keychain: Keychain::Store(mock.clone()),
            ..App::new(paths, Ui::new(true, false), None, None)
        };
        TestApp {
            app,
            dir,
            mock,
            opened,
        }
    }

    impl TestApp {
        /// The lock of context `key`, as a command holds it while it writes that session.
        pub fn lock(&self, key: &str) -> crate::store::lock::ContextLock {
            crate::session::lock_context(&self.app, key).unwrap()
        }

        /// Stores a signed-in context `key` of the WorkOS-shaped IdP at `issuer`, its refresh
        /// token in `storage` and, when `expires_at` is given, a cached access token.
        pub fn sign_in(&self, issuer: &str, key: &str, storage: Storage, expires_at: Option<i64>) {
            use crate::secret::Secret;
            use crate::store::credentials::Preference;
            use crate::store::tokens::{self, CachedToken};
            let pref = match storage {
                Storage::File => Preference::File,
                Storage::Keychain => Preference::Keychain,
            };
            let app = &self.app;
            let lock = self.lock(key);
            app.credentials()
                .save(&lock, &Secret::new(format!("rt-{key}")), pref)
                .unwrap();
            if let Some(expires_at) = expires_at {
                tokens::write(
                    &app.paths,
                    &lock,
                    &CachedToken {
                        key: key.to_string(),
                        expires_at,
                        access_token: Secret::new(format!("at-{key}")),
                        issued_at: None,
                    },
                )
                .unwrap();
            }
            app.paths.ensure(Some(&app.paths.locks())).unwrap();
            let lock = ConfigLock::acquire(&app.paths).unwrap();
            let mut config = lock.load().unwrap_or_else(|_| Config::default());
            config.contexts.insert(
                key.to_string(),
                Context {
                    name: key.trim_start_matches("org_").to_string(),
                    organization_name: None,
                    user_id: "user_1".into(),
                    email: None,
                    provider: ProviderKind::Workos,
                    issuer: issuer.to_string(),
                    client_id: "client_test".into(),
                    method: Method::Pkce,
                    storage,
                    needs_login: false,
                    access_token_expires_at: None,
                    signed_in_at: None,
                    session_id: None,
                    authentication_method: None,
                    org_claim: None,
                    impersonator: None,
                },
            );
            config.set_current(key);
            lock.save(&config).unwrap();
        }

        pub fn context(&self, key: &str) -> Option<Context> {
            Config::load(&self.app.paths)
                .unwrap()
                .contexts
                .get(key)
                .cloned()
        }
    }

    /// Makes the next keychain call about `key` fail as a locked keychain does.
    pub fn fail_next_keychain_call(t: &TestApp, key: &str) {
        let store: Arc<keyring_core::CredentialStore> = t.mock.clone();
        let account = t.app.credentials().account(key);
        let entry =
            keyring_core::Entry::new_in_store(&store, crate::store::credentials::SERVICE, &account)
                .unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(keyring_core::Error::NoStorageAccess("locked".into()));
    }

    /// One request the test IdP received.
    #[derive(Debug, Clone)]
    pub struct Request {
        pub method: String,
        pub path: String,
        pub body: String,
    }

    impl Request {
        /// A form field of the body.
        pub fn field(&self, name: &str) -> Option<String> {
            url::form_urlencoded::parse(self.body.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        }
    }

    type Answer = dyn Fn(&Request) -> (u16, String) + Send + Sync;

    /// An IdP that speaks real HTTP on 127.0.0.1 from a thread, answering each request with
    /// `answer(request)` (status, JSON body) and recording it.
    pub struct Idp {
        pub url: String,
        pub requests: Arc<Mutex<Vec<Request>>>,
    }

    impl Idp {
        pub fn start(answer: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static) -> Idp {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            let answer: Arc<Answer> = Arc::new(answer);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let Some(request) = read_request(&mut stream) else {
                        continue;
                    };
                    let (status, body) = answer(&request);
                    seen.lock().unwrap().push(request);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Idp { url, requests }
        }

        /// The requests to `path` so far.
        pub fn calls(&self, path: &str) -> Vec<Request> {
            let all = self.requests.lock().unwrap();
            all.iter()
                .filter(|r| r.path.starts_with(path))
                .cloned()
                .collect()
        }
    }

    fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Request {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
