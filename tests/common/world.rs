//! A sandbox at its own test IdP that keeps every output any command printed and every secret
//! the store ever held, for a final check that no output showed one. The test crates that use
//! it add how they run commands (`impl World` in the test file).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Idp, Run, Sandbox, cached_access_tokens, now};

/// One output of one command, kept for the secrets check.
pub struct Logged {
    pub what: String,
    pub run: Run,
    /// `mycli token`: its stdout is the one place an access token may appear.
    pub token_stdout: bool,
}

pub struct World {
    pub idp: Option<Idp>,
    pub base: String,
    pub sb: Sandbox,
    pub log: Vec<Logged>,
    pub refresh_tokens: BTreeSet<String>,
    pub access_tokens: BTreeSet<String>,
}

impl World {
    /// A fresh IdP (device interval 1 s) and a sandbox pointed at it.
    pub fn new() -> World {
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

    /// `World::new`, then the IdP scenario `knobs`.
    pub fn with_scenario(knobs: Value) -> World {
        let w = World::new();
        w.idp().scenario(knobs);
        w
    }

    pub fn idp(&self) -> &Idp {
        self.idp.as_ref().expect("the IdP was stopped")
    }

    /// Stops the IdP: its port refuses connections from now on.
    pub fn stop_idp(&mut self) {
        self.idp = None;
    }

    pub fn stats(&self) -> Value {
        self.idp().stats()
    }

    pub fn refreshes(&self) -> u64 {
        self.idp().refreshes()
    }

    /// Keeps one output for the secrets check.
    pub fn log_run(&mut self, what: &str, run: &Run, token_stdout: bool) {
        self.log.push(Logged {
            what: what.to_string(),
            run: run.clone(),
            token_stdout,
        });
    }

    /// Remembers `refresh_tokens` and every access token the token cache holds right now.
    pub fn harvest_with(&mut self, refresh_tokens: impl IntoIterator<Item = String>) {
        self.refresh_tokens.extend(refresh_tokens);
        self.access_tokens.extend(cached_access_tokens(&self.sb));
    }

    /// No refresh token in any logged output, no access token on any stderr, and one on a
    /// stdout only where `stdout_may_show(logged, access_token)` allows it.
    pub fn assert_no_secret_printed(&self, stdout_may_show: impl Fn(&Logged, &str) -> bool) {
        for l in &self.log {
            for rt in &self.refresh_tokens {
                assert!(
                    !l.run.stdout.contains(rt.as_str()) && !l.run.stderr.contains(rt.as_str()),
                    "`mycli {}` printed a refresh token",
                    l.what
                );
            }
            for at in &self.access_tokens {
                assert!(
                    !l.run.stderr.contains(at.as_str()),
                    "`mycli {}` printed an access token on stderr",
                    l.what
                );
                if l.run.stdout.contains(at.as_str()) {
                    assert!(
                        stdout_may_show(l, at),
                        "`mycli {}` printed an access token on stdout",
                        l.what
                    );
                }
            }
        }
    }

    /// The token cache file of a context.
    pub fn cache_path(&self, key: &str) -> PathBuf {
        self.sb.token_file(key)
    }

    /// The cached access token of a context.
    pub fn cached(&self, key: &str) -> Option<String> {
        let bytes = std::fs::read(self.cache_path(key)).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["access_token"].as_str().map(str::to_string)
    }

    /// Moves the cached access token's expiry to `secs` from now, as a 5-minute token with
    /// `secs` left.
    pub fn expire_cached_in(&self, key: &str, secs: i64) {
        let path = self.cache_path(key);
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["expires_at"] = json!(now() + secs);
        v["issued_at"] = json!(now() + secs - 300);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }
}
