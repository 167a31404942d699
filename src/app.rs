//! What every command runs in: where the store is, how to talk, what the user selected, and
//! each side effect a command has outside the process (HTTP, the clock, the browser, the
//! keychain), so a test can swap any of them.

use crate::auth::Http;
use crate::auth::browser::Browser;
use crate::error::Result;
use crate::output::OutputFormat;
use crate::store::Paths;
use crate::store::credentials::{Credentials, Keychain};
use crate::time::Clock;
use crate::ui::Ui;

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

    use std::sync::{Arc, Mutex};

    use super::*;

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
}
