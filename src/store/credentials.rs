//! Where refresh tokens live: the OS keychain (service `mycli`) or, where no keychain
//! answers or the user asks for it, `credentials.toml` (0600).
//!
//! Callers name a backend (`Storage`) and never see how it works. Every keychain call runs on
//! its own thread under a timeout, because a locked keychain can wait forever for a prompt.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock::{ContextLock, LockGuard};
use super::{Paths, Storage, atomic};
use crate::env;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The keychain service name.
pub const SERVICE: &str = "mycli";

/// What the user asked for (`MYCLI_CREDENTIAL_STORE`, `login --insecure-storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The keychain, falling back to the file when no keychain answers.
    Auto,
    /// The keychain or an error.
    Keychain,
    /// The file.
    File,
}

impl Preference {
    pub fn from_env(insecure_storage: bool) -> Result<Preference> {
        let from_env = match env::var(env::CREDENTIAL_STORE).as_deref() {
            None | Some("auto") => Preference::Auto,
            Some("keychain") => Preference::Keychain,
            Some("file") => Preference::File,
            Some(other) => {
                return Err(Error::usage(format!(
                    "{}={other:?} is not a credential store",
                    env::CREDENTIAL_STORE
                ))
                .with_hint("use `keychain`, `file` or `auto`"));
            }
        };
        if insecure_storage {
            if from_env == Preference::Keychain {
                return Err(Error::usage(format!(
                    "--insecure-storage conflicts with {}=keychain",
                    env::CREDENTIAL_STORE
                ))
                .with_hint(format!(
                    "drop --insecure-storage, or unset {}",
                    env::CREDENTIAL_STORE
                )));
            }
            return Ok(Preference::File);
        }
        Ok(from_env)
    }
}

/// Where a secret was saved, and why it is not in the keychain when it fell back.
#[derive(Debug)]
pub struct Saved {
    pub storage: Storage,
    pub fallback_reason: Option<String>,
}

/// Which keychain the secrets go to: the platform's, or a given store (in tests
/// `keyring_core::mock::Store`, which can fail on demand).
#[derive(Clone, Default)]
pub enum Keychain {
    #[default]
    Platform,
    Store(Arc<keyring_core::CredentialStore>),
}

impl Keychain {
    fn open(&self) -> keyring_core::Result<Arc<keyring_core::CredentialStore>> {
        match self {
            Keychain::Platform => super::platform::keychain(),
            Keychain::Store(store) => Ok(store.clone()),
        }
    }
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keychain::Platform => f.write_str("Keychain::Platform"),
            Keychain::Store(_) => f.write_str("Keychain::Store"),
        }
    }
}

pub struct Credentials<'a> {
    paths: &'a Paths,
    keychain: &'a Keychain,
}

impl<'a> Credentials<'a> {
    pub fn new(paths: &'a Paths, keychain: &'a Keychain) -> Self {
        Credentials { paths, keychain }
    }

    /// Saves the refresh token of `key`. `Auto` tries the keychain first.
    pub fn save(&self, lock: &ContextLock, secret: &Secret, pref: Preference) -> Result<Saved> {
        let key = lock.key();
        if pref == Preference::File {
            self.file_save(key, secret)?;
            return Ok(Saved {
                storage: Storage::File,
                fallback_reason: None,
            });
        }
        let value = secret.clone();
        match keychain(self.keychain, &self.account(key), move |entry| {
            entry.set_password(value.expose())
        }) {
            Ok(()) => {
                // A secret left in the file from an earlier session must not linger.
                self.file_delete(key)?;
                Ok(Saved {
                    storage: Storage::Keychain,
                    fallback_reason: None,
                })
            }
            Err(why) if pref == Preference::Auto => {
                self.file_save(key, secret)?;
                Ok(Saved {
                    storage: Storage::File,
                    fallback_reason: Some(why),
                })
            }
            Err(why) => Err(Error::failure(format!(
                "could not store the refresh token in the OS keychain: {why}"
            ))
            .with_hint(format!(
                "unlock the keychain, or allow the file store: unset {} or set it to `file`",
                env::CREDENTIAL_STORE
            ))),
        }
    }

    /// The refresh token of `key` in `storage`, `None` when there is none.
    pub fn load(&self, key: &str, storage: Storage) -> Result<Option<Secret>> {
        match storage {
            Storage::File => Ok(self.file_read()?.remove(key).map(|e| e.refresh_token)),
            Storage::Keychain => {
                match keychain(self.keychain, &self.account(key), |entry| {
                    match entry.get_password() {
                        Ok(p) => Ok(Some(Secret::new(p))),
                        Err(keyring_core::Error::NoEntry) => Ok(None),
                        Err(e) => Err(e),
                    }
                }) {
                    Ok(s) => Ok(s),
                    Err(why) => Err(Error::failure(format!(
                        "could not read the refresh token from the OS keychain: {why}"
                    ))
                    .with_hint("unlock the keychain and try again")),
                }
            }
        }
    }

    /// Removes the refresh token of `key` from `storage`; a missing one is fine.
    pub fn delete(&self, lock: &ContextLock, storage: Storage) -> Result<()> {
        let key = lock.key();
        match storage {
            Storage::File => self.file_delete(key),
            Storage::Keychain => keychain(self.keychain, &self.account(key), |entry| {
                match entry.delete_credential() {
                    Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .map_err(|why| {
                Error::failure(format!(
                    "could not remove the refresh token from the OS keychain: {why}"
                ))
            }),
        }
    }

    /// The keychain account of a context: its key and the store it belongs to, so that two
    /// config dirs signed in to the same organization never overwrite each other's secret.
    pub fn account(&self, key: &str) -> String {
        let dir = std::fs::canonicalize(&self.paths.dir).unwrap_or_else(|_| self.paths.dir.clone());
        format!("{key} ({})", dir.display())
    }

    /// Fails early when the keychain cannot be used, so a login that must store its secret
    /// there is refused before the user signs in.
    pub fn probe_keychain(&self) -> Result<()> {
        keychain(self.keychain, "probe", |entry| match entry.get_password() {
            Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        })
        .map_err(|why| {
            Error::failure(format!("the OS keychain cannot be used: {why}")).with_hint(format!(
                "unlock the keychain, or allow the file store: unset {} or set it to `file`",
                env::CREDENTIAL_STORE
            ))
        })
    }

    /// Fails early when `credentials.toml` is broken: every save reads it (a keychain save too,
    /// to drop an older copy), so a login would fail only after the user signed in.
    pub fn check_file(&self) -> Result<()> {
        self.file_read().map(drop)
    }

    fn file_read(&self) -> Result<BTreeMap<String, FileEntry>> {
        let path = self.paths.credentials();
        match super::files::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| super::text::corrupt(super::text::parse_error(&path, &text, &e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", &path, &e)),
        }
    }

    /// Takes `credentials.lock`. A holder may be in the middle of a refresh, so the wait covers
    /// one HTTP timeout on top of the lock timeout.
    fn file_lock(&self) -> Result<LockGuard> {
        self.paths.ensure(Some(&self.paths.locks()))?;
        let wait = super::lock_wait()
            .saturating_add(env::seconds(env::HTTP_TIMEOUT, 30.0))
            .saturating_add(Duration::from_secs(5));
        LockGuard::acquire(&self.paths.locks().join("credentials.lock"), wait)
    }

    fn file_update(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, FileEntry>) -> bool,
    ) -> Result<()> {
        let _lock = self.file_lock()?;
        let mut entries = self.file_read()?;
        if !change(&mut entries) {
            return Ok(());
        }
        atomic::write(&self.paths.credentials(), file_text(&entries)?.as_bytes())
    }

    fn file_save(&self, key: &str, secret: &Secret) -> Result<()> {
        self.file_update(|entries| {
            insert(entries, key, secret);
            true
        })
    }

    /// Secures everything a later save of `key`'s secret needs, before a refresh request spends
    /// the current one: for the file, `credentials.lock` (held until the save) and a temporary
    /// file in the store directory with room for the new secret; for the keychain, a keychain
    /// that answers (`load` just read the entry within the keychain timeout).
    pub fn prepare(
        &self,
        lock: &ContextLock,
        storage: Storage,
        pref: Preference,
    ) -> Result<SaveSlot<'a>> {
        let key = lock.key();
        let file = match (storage, pref) {
            (Storage::File, _) | (_, Preference::File) => Some(self.file_slot()?),
            (Storage::Keychain, _) => None,
        };
        Ok(SaveSlot {
            creds: Credentials {
                paths: self.paths,
                keychain: self.keychain,
            },
            key: key.to_string(),
            pref: if file.is_some() {
                Preference::File
            } else {
                pref
            },
            file,
        })
    }

    fn file_slot(&self) -> Result<FileSlot> {
        let lock = self.file_lock()?;
        let current = std::fs::metadata(self.paths.credentials()).map_or(0, |m| m.len());
        let room =
            atomic::reserve(&self.paths.dir, current.saturating_add(RESERVE)).map_err(|e| {
                e.with_hint(
                    "free some disk space and try again; nothing was sent, the session is intact",
                )
            })?;
        Ok(FileSlot { _lock: lock, room })
    }

    fn file_delete(&self, key: &str) -> Result<()> {
        if !self.paths.credentials().exists() {
            return Ok(());
        }
        self.file_update(|entries| entries.remove(key).is_some())
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileEntry {
    refresh_token: Secret,
}

fn insert(entries: &mut BTreeMap<String, FileEntry>, key: &str, secret: &Secret) {
    entries.insert(
        key.to_string(),
        FileEntry {
            refresh_token: secret.clone(),
        },
    );
}

fn file_text(entries: &BTreeMap<String, FileEntry>) -> Result<String> {
    toml::to_string(entries)
        .map_err(|e| Error::failure(format!("could not write the credentials: {e}")))
}

/// Room kept free for a rotated refresh token on top of the current `credentials.toml` (refresh
/// tokens are a few dozen bytes to a few KiB).
const RESERVE: u64 = 16 * 1024;

/// How often a save after a rotation is tried before the new secret is given up.
const SAVE_ATTEMPTS: u32 = 3;

/// `credentials.lock`, held, and disk space for the new `credentials.toml`.
struct FileSlot {
    _lock: LockGuard,
    room: std::fs::File,
}

/// Proof that the secret of one context can be saved: made by `Credentials::prepare` before a
/// refresh request is sent, used by `save` once the rotated secret arrived.
pub struct SaveSlot<'a> {
    creds: Credentials<'a>,
    key: String,
    pref: Preference,
    file: Option<FileSlot>,
}

impl SaveSlot<'_> {
    /// Saves the rotated secret, trying a few times: it has already replaced the old one at the
    /// identity provider, so giving up loses the session.
    pub fn save(self, secret: &Secret) -> Result<Saved> {
        let SaveSlot {
            creds,
            key,
            pref,
            file,
        } = self;
        if let Some(slot) = file {
            return creds.save_in_slot(&key, secret, slot).map(|()| Saved {
                storage: Storage::File,
                fallback_reason: None,
            });
        }
        let mut last = None;
        for attempt in 0..SAVE_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            let value = secret.clone();
            match keychain(creds.keychain, &creds.account(&key), move |entry| {
                entry.set_password(value.expose())
            }) {
                Ok(()) => {
                    // The secret is safe; a stale copy in the file only costs a warning later.
                    let _ = creds.file_delete(&key);
                    return Ok(Saved {
                        storage: Storage::Keychain,
                        fallback_reason: None,
                    });
                }
                Err(why) => last = Some(why),
            }
        }
        let why = last.unwrap_or_default();
        if pref == Preference::Auto {
            creds.file_save(&key, secret)?;
            return Ok(Saved {
                storage: Storage::File,
                fallback_reason: Some(why),
            });
        }
        Err(Error::failure(format!(
            "could not store the refresh token in the OS keychain: {why}"
        )))
    }
}

impl Credentials<'_> {
    fn save_in_slot(&self, key: &str, secret: &Secret, slot: FileSlot) -> Result<()> {
        let FileSlot { _lock, room } = slot;
        let mut entries = self.file_read()?;
        insert(&mut entries, key, secret);
        let text = file_text(&entries)?;
        // The reserved room is given back for the write that needs it.
        drop(room);
        let mut attempt = 1;
        loop {
            match atomic::write(&self.paths.credentials(), text.as_bytes()) {
                Ok(()) => return Ok(()),
                Err(_) if attempt < SAVE_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// How long one keychain call may take (`MYCLI_KEYCHAIN_TIMEOUT`, default 3 s, as gh).
fn keychain_timeout() -> Duration {
    env::seconds(env::KEYCHAIN_TIMEOUT, 3.0)
}

/// Runs one keychain operation on its own thread, bounded by the keychain timeout.
/// The error is a plain sentence for the user.
fn keychain<T, F>(keychain: &Keychain, account: &str, op: F) -> std::result::Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&keyring_core::Entry) -> keyring_core::Result<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let user = account.to_string();
    let keychain = keychain.clone();
    let spawned = std::thread::Builder::new()
        .name("keychain".into())
        .spawn(move || {
            let result = keychain.open().and_then(|store| {
                let entry = keyring_core::Entry::new_in_store(&store, SERVICE, &user)?;
                op(&entry)
            });
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        return Err("could not start the keychain call".into());
    }
    let timeout = keychain_timeout();
    match rx.recv_timeout(timeout) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!(
            "the keychain did not answer within {} s (is it locked?)",
            timeout.as_secs_f64()
        )),
    }
}

fn describe(err: &keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match err {
        E::NoStorageAccess(_) => "the keychain is locked or refused access".into(),
        E::PlatformFailure(_) | E::NoDefaultStore => "no keychain answered".into(),
        E::TooLong(..) => "the token is too long for the keychain".into(),
        E::NoEntry => "no such entry".into(),
        other => format!("keychain error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    const KEY: &str = "org_acme";

    #[test]
    fn a_keychain_save_after_the_rotation_is_tried_again() {
        let t = testing::app();
        let lock = t.lock(KEY);
        let creds = t.app.credentials();
        let slot = creds
            .prepare(&lock, Storage::Keychain, Preference::Keychain)
            .unwrap();
        testing::fail_next_keychain_call(&t, KEY);
        let saved = slot.save(&Secret::new("rotated")).unwrap();
        assert_eq!(saved.storage, Storage::Keychain);
        let kept = creds.load(KEY, Storage::Keychain).unwrap().unwrap();
        assert_eq!(kept.expose(), "rotated");
    }

    #[test]
    fn a_file_slot_holds_the_credentials_lock_until_the_save() {
        let t = testing::app();
        let lock = t.lock(KEY);
        let creds = t.app.credentials();
        let slot = creds
            .prepare(&lock, Storage::File, Preference::File)
            .unwrap();
        let other = LockGuard::acquire(
            &t.app.paths.locks().join("credentials.lock"),
            Duration::from_millis(10),
        );
        assert!(
            other.is_err(),
            "credentials.lock was free while a save was pending"
        );
        slot.save(&Secret::new("rotated")).unwrap();
        let kept = creds.load(KEY, Storage::File).unwrap().unwrap();
        assert_eq!(kept.expose(), "rotated");
        // No temporary file is left in the store directory.
        let names: Vec<String> = std::fs::read_dir(&t.app.paths.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn auto_falls_back_to_the_file_when_the_keychain_fails() {
        let t = testing::app();
        let lock = t.lock(KEY);
        testing::fail_next_keychain_call(&t, KEY);
        let creds = t.app.credentials();
        let saved = creds
            .save(&lock, &Secret::new("rt"), Preference::Auto)
            .unwrap();
        assert_eq!(saved.storage, Storage::File);
        let why = saved.fallback_reason.unwrap();
        assert_eq!(why, "the keychain is locked or refused access");
        assert_eq!(
            creds.load(KEY, Storage::File).unwrap().unwrap().expose(),
            "rt"
        );
        assert!(creds.load(KEY, Storage::Keychain).unwrap().is_none());
    }

    #[test]
    fn keychain_only_refuses_instead_of_falling_back() {
        let t = testing::app();
        let lock = t.lock(KEY);
        testing::fail_next_keychain_call(&t, KEY);
        let creds = t.app.credentials();
        let err = creds
            .save(&lock, &Secret::new("rt"), Preference::Keychain)
            .unwrap_err();
        assert!(err.message.contains("locked"), "{}", err.message);
        assert!(err.hint.unwrap().contains(env::CREDENTIAL_STORE));
        assert!(creds.load(KEY, Storage::File).unwrap().is_none());
    }

    #[test]
    fn a_keychain_save_removes_a_stale_copy_from_the_file() {
        let t = testing::app();
        let lock = t.lock(KEY);
        let creds = t.app.credentials();
        creds
            .save(&lock, &Secret::new("old"), Preference::File)
            .unwrap();
        let saved = creds
            .save(&lock, &Secret::new("new"), Preference::Auto)
            .unwrap();
        assert_eq!(saved.storage, Storage::Keychain);
        assert!(creds.load(KEY, Storage::File).unwrap().is_none());
        let kept = creds.load(KEY, Storage::Keychain).unwrap().unwrap();
        assert_eq!(kept.expose(), "new");
    }

    #[test]
    fn a_failing_read_or_delete_says_what_to_do() {
        let t = testing::app();
        let lock = t.lock(KEY);
        let creds = t.app.credentials();
        creds
            .save(&lock, &Secret::new("rt"), Preference::Keychain)
            .unwrap();
        testing::fail_next_keychain_call(&t, KEY);
        let err = creds.load(KEY, Storage::Keychain).unwrap_err();
        assert!(err.message.starts_with("could not read the refresh token"));
        assert_eq!(
            err.hint.as_deref(),
            Some("unlock the keychain and try again")
        );
        testing::fail_next_keychain_call(&t, KEY);
        let err = creds.delete(&lock, Storage::Keychain).unwrap_err();
        assert!(
            err.message
                .starts_with("could not remove the refresh token")
        );
        // Nothing was lost: the secret is still there.
        assert!(creds.load(KEY, Storage::Keychain).unwrap().is_some());
    }

    #[test]
    fn two_stores_never_share_a_keychain_account() {
        let (a, b) = (testing::app(), testing::app());
        assert_ne!(
            a.app.credentials().account(KEY),
            b.app.credentials().account(KEY)
        );
    }
}
