//! `config.toml`: the contexts, keyed by organization id; `current.toml`: the `current` and
//! `previous` pointers. Both hand-editable; neither ever holds a secret.
//!
//! The pointers live in their own small file so that `mycli switch` rewrites (and fsyncs) a
//! few bytes, not the whole store, and `mycli token` finds the current context without
//! parsing the contexts. `cache/config.index` (see `index`) is a derived copy of `config.toml`
//! that loads much faster than TOML, used only while `config.toml` is unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Paths;
use super::atomic;
use super::files;
use super::index::{self, Fingerprint};
use super::lock::LockGuard;
use super::text;
use crate::error::{Error, Result};
pub use crate::vocab::Impersonator;
pub use crate::vocab::{Method, ProviderDefaults, ProviderKind, Storage};

/// The key of a session that belongs to no organization.
pub const NO_ORG_KEY: &str = "_none";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// Key of the current context (kept in `current.toml`; read from `config.toml` only when
    /// there is no `current.toml`, as in a hand-written store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Key of the context that was current before, for `mycli switch -`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Provider defaults for new logins.
    #[serde(default, skip_serializing_if = "ProviderDefaults::is_empty")]
    pub provider: ProviderDefaults,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
    /// Read through the derived index: fine for reading and for writing the pointers, never
    /// for writing `config.toml` (`ConfigLock::save` refuses it).
    #[serde(skip)]
    pub from_index: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Context {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub provider: ProviderKind,
    pub issuer: String,
    pub client_id: String,
    /// How the session was signed in.
    pub method: Method,
    /// Where the refresh token lives.
    pub storage: Storage,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_login: bool,
    /// Expiry of the cached access token, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<String>,
    /// The IdP's session id (WorkOS `sid`), which `logout` ends; not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// How the person authenticated at the IdP (WorkOS `authentication_method`, e.g. `SSO`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_method: Option<String>,
    /// The claim that named the organization (OIDC), read again at refresh and re-login
    /// whatever `MYCLI_ORG_CLAIM` says today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_claim: Option<String>,
    /// Who is acting as the user, when the session is impersonated (last: a TOML table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonator: Option<Impersonator>,
}

impl Context {
    /// A field a hand edit broke: a time that is not RFC 3339, or text with control or
    /// invisible characters (mycli writes neither; the listing and JSON promise neither).
    fn malformed_field(&self) -> Option<(&'static str, &'static str)> {
        let times = [
            ("access-token-expires-at", &self.access_token_expires_at),
            ("signed-in-at", &self.signed_in_at),
        ];
        for (field, value) in times {
            if value
                .as_deref()
                .is_some_and(|v| crate::time::parse_rfc3339(v).is_none())
            {
                return Some((field, "is not an RFC 3339 time (2026-12-01T10:00:00Z)"));
            }
        }
        let texts = [
            ("organization-name", self.organization_name.as_deref()),
            ("user-id", Some(self.user_id.as_str())),
            ("email", self.email.as_deref()),
            ("issuer", Some(self.issuer.as_str())),
            ("client-id", Some(self.client_id.as_str())),
            ("session-id", self.session_id.as_deref()),
            (
                "authentication-method",
                self.authentication_method.as_deref(),
            ),
            ("org-claim", self.org_claim.as_deref()),
        ];
        for (field, value) in texts {
            if value.is_some_and(|v| {
                v.chars()
                    .any(|c| c.is_control() || crate::text::is_invisible(c))
            }) {
                return Some((field, "holds control or invisible characters"));
            }
        }
        None
    }

    /// The organization id of a context key (`None` for the no-organization session).
    pub fn organization_id(key: &str) -> Option<&str> {
        (key != NO_ORG_KEY).then_some(key)
    }
}

/// `current.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

impl Pointers {
    /// `current.toml`, or `None` when there is none.
    fn read(paths: &Paths) -> Result<Option<Pointers>> {
        let path = paths.pointers();
        match files::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| text::corrupt(text::parse_error(&path, &text, &e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, &e)),
        }
    }
}

impl Config {
    /// How many contexts there are.
    pub fn count(&self) -> usize {
        self.contexts.len()
    }

    /// Reads the store: `config.toml` (through the index when it is current) and the pointers
    /// of `current.toml`. A missing file is an empty store.
    pub fn load(paths: &Paths) -> Result<Config> {
        let mut config = Config::load_file(paths)?;
        config.read_pointers(paths)?;
        Ok(config)
    }

    /// Reads `config.toml` itself, never the index, and rebuilds the index: what every
    /// read-modify-write starts from, so a damaged index can never shorten the store.
    fn load_parsed(paths: &Paths) -> Result<Config> {
        let mut config = match stat_config(paths)? {
            Some(fingerprint) => Config::read_and_index(paths, fingerprint)?,
            None => Config::default(),
        };
        config.read_pointers(paths)?;
        Ok(config)
    }

    fn load_file(paths: &Paths) -> Result<Config> {
        // The fingerprint is taken before the read: if the file changes in between, the index
        // written below carries the old fingerprint and is never used.
        let Some(fingerprint) = stat_config(paths)? else {
            return Ok(Config::default());
        };
        if let Some(mut config) = read_index(paths, fingerprint) {
            config.from_index = true;
            return Ok(config);
        }
        Config::read_and_index(paths, fingerprint)
    }

    /// Parses `config.toml` and writes the index of what was read, under `fingerprint`.
    fn read_and_index(paths: &Paths, fingerprint: Fingerprint) -> Result<Config> {
        let path = paths.config();
        let text = files::read_to_string(&path).map_err(|e| Error::io("read", &path, &e))?;
        let config = Config::parse(&text, &path)?;
        write_index(paths, fingerprint, &config);
        Ok(config)
    }

    /// The `current` and `previous` pointers of `current.toml`, when it exists.
    fn read_pointers(&mut self, paths: &Paths) -> Result<()> {
        if let Some(p) = Pointers::read(paths)? {
            self.current = p.current;
            self.previous = p.previous;
        }
        Ok(())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|e| text::corrupt(text::parse_error(path, text, &e)))?;
        config.validate(text, path)?;
        Ok(config)
    }

    /// The name of the context named (when `by_name`) or keyed `query`, from the index while
    /// it matches `config.toml`, without building the contexts (the hot path of
    /// `mycli prompt`). `None` when the index cannot answer; `Some(None)` when no context
    /// matches.
    pub fn indexed_name(paths: &Paths, query: &str, by_name: bool) -> Option<Option<String>> {
        let fingerprint = stat_config(paths).ok()??;
        if let Some(found) = names_entry(paths, fingerprint, query, by_name) {
            return Some(found.map(|(_, name)| name));
        }
        let text = files::read_to_string(&paths.index()).ok()?;
        index::name_of(&text, fingerprint, query, by_name)
    }

    /// The key and name of the context keyed, else named, `query`, from `cache/names` alone
    /// while it matches `config.toml` (`mycli token --context NAME`, which kubectl runs before
    /// each of its commands). `None` when the file cannot answer; `Some(None)` when no
    /// context matches.
    pub fn named_entry(paths: &Paths, query: &str) -> Option<Option<(String, String)>> {
        names_entry(paths, stat_config(paths).ok()??, query, true)
    }

    /// Reads only the `current` pointer, without parsing the contexts (the hot path of
    /// `mycli token`). When `config.toml` changed since it was last parsed (its fingerprint no
    /// longer matches the index), it is parsed now, so a broken store is reported, not ignored.
    pub fn read_current(paths: &Paths) -> Result<Option<String>> {
        if let Some(p) = Pointers::read(paths)? {
            if !index_is_current(paths)? {
                let config = Config::load_file(paths)?;
                if let Some(key) = &p.current
                    && !config.contexts.contains_key(key)
                {
                    return Err(dangling(key));
                }
            }
            return Ok(p.current);
        }
        Config::current_in_config(paths)
    }

    /// The `current` pointer as written, not checked against `config.toml` (`mycli prompt`,
    /// whose lookup of the name checks the fingerprint itself).
    pub fn current_pointer(paths: &Paths) -> Result<Option<String>> {
        match Pointers::read(paths)? {
            Some(p) => Ok(p.current),
            None => Config::current_in_config(paths),
        }
    }

    /// The pointer of a hand-written store that keeps it in config.toml. Top-level keys come
    /// before the first table in TOML, so only the part before the first `[` line is read.
    fn current_in_config(paths: &Paths) -> Result<Option<String>> {
        let path = paths.config();
        let prefix = match read_top_level(&path) {
            Ok(prefix) => prefix,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, &e)),
        };
        match toml::from_str::<Pointers>(&prefix) {
            Ok(p) => Ok(p.current),
            // Anything unusual: parse the whole file, which reports the line of the problem.
            Err(_) => Ok(Config::load(paths)?.current),
        }
    }

    fn validate(&self, text: &str, path: &Path) -> Result<()> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, ctx) in &self.contexts {
            if let Err(why) = super::validate_name(&ctx.name) {
                let line = find_line(text, &format!("name = \"{}\"", ctx.name));
                return Err(corrupt(path, line, &format!("context {key:?}: {why}")));
            }
            if let Some((field, why)) = ctx.malformed_field() {
                let line = field_line(text, key, field);
                return Err(corrupt(
                    path,
                    line,
                    &format!("context {key:?}: {field} {why}"),
                ));
            }
            if let Some(other) = seen.insert(&ctx.name, key) {
                let line = find_line(text, &format!("name = \"{}\"", ctx.name));
                return Err(corrupt(
                    path,
                    line,
                    &format!(
                        "contexts {other:?} and {key:?} have the same name {:?}",
                        ctx.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Finds a context by organization id (key), then by name. Keys win: mycli never lets a
    /// name equal another context's key, and in a hand-written store where one does, an
    /// organization id still means that organization.
    pub fn find(&self, query: &str) -> Option<(&str, &Context)> {
        self.contexts
            .get_key_value(query)
            .or_else(|| self.contexts.iter().find(|(_, c)| c.name == query))
            .map(|(k, c)| (k.as_str(), c))
    }

    /// The key of another context (not `key`) whose name is `name`, or whose key is `name`.
    pub fn name_taken(&self, name: &str, key: &str) -> Option<&str> {
        self.contexts
            .iter()
            .find(|(k, c)| k.as_str() != key && (c.name == name || k.as_str() == name))
            .map(|(k, _)| k.as_str())
    }

    /// Like `find`, but an unknown name is an error listing the known names.
    pub fn resolve(&self, query: &str) -> Result<String> {
        if let Some((key, _)) = self.find(query) {
            return Ok(key.to_string());
        }
        Err(self.unknown(query))
    }

    pub fn unknown(&self, query: &str) -> Error {
        let names: Vec<&str> = self.contexts.values().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            return Error::failure(format!("no context named {query:?}: there are no contexts"))
                .with_hint("sign in with `mycli login --org ORG_ID`");
        }
        let suggestion = super::did_you_mean(query, &names);
        let mut listed = names.clone();
        listed.sort_unstable();
        let err = Error::failure(format!(
            "no context named {query:?}; known contexts: {}",
            crate::text::first_of(&listed, 10)
        ));
        match suggestion {
            Some(s) => err.with_hint(format!("did you mean `{s}`?")),
            None => err.with_hint("`mycli contexts` lists them all"),
        }
    }

    /// The key of the context a command works on: `--context` / `MYCLI_CONTEXT`, else current.
    pub fn selected(&self, over: Option<&str>) -> Result<String> {
        match over {
            Some(name) => self.resolve(name),
            None => match &self.current {
                Some(key) if self.contexts.contains_key(key) => Ok(key.clone()),
                Some(key) => Err(dangling(key)),
                None if self.contexts.is_empty() => Err(not_signed_in()),
                None => Err(no_current()),
            },
        }
    }

    /// The keys a command acts on: every context with `--all`, else the one named (or the
    /// `--context` / current one).
    pub fn targets(&self, all: bool, name: Option<&str>) -> Result<Vec<String>> {
        if all {
            Ok(self.contexts.keys().cloned().collect())
        } else {
            Ok(vec![self.selected(name)?])
        }
    }

    /// A name not used by any other context: `base`, else `base-2`, `base-3`, ...
    pub fn unique_name(&self, base: &str, key: &str) -> String {
        let taken = |n: &str| self.name_taken(n, key).is_some();
        if !taken(base) {
            return base.to_string();
        }
        // The suffix must fit in a name: a longest-possible base (two organizations with the
        // same long name) is shortened, never made into a name the store refuses to read.
        (2..)
            .map(|i| {
                let suffix = format!("-{i}");
                let room = super::names::MAX_NAME_CHARS.saturating_sub(suffix.len());
                format!("{}{suffix}", base.chars().take(room).collect::<String>())
            })
            .find(|n| !taken(n))
            .unwrap_or_else(|| base.to_string())
    }

    /// Makes `key` current, remembering the old current one as previous.
    pub fn set_current(&mut self, key: &str) {
        if self.current.as_deref() != Some(key) {
            self.previous = self.current.take();
            self.current = Some(key.to_string());
        }
    }

    /// Removes a context and any pointer to it.
    pub fn remove(&mut self, key: &str) -> Option<Context> {
        if self.current.as_deref() == Some(key) {
            self.current = None;
        }
        if self.previous.as_deref() == Some(key) {
            self.previous = None;
        }
        self.contexts.remove(key)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|e| Error::failure(format!("could not write the config: {e}")))
    }
}

/// The current pointer names a context that is not in the store (removed by hand).
fn dangling(key: &str) -> Error {
    Error::failure(format!(
        "the current context {key:?} does not exist in the store"
    ))
    .with_hint("pick one with `mycli switch NAME` (`mycli contexts` lists them)")
}

/// The error of `mycli current` (and friends) when no context is current.
pub fn no_current() -> Error {
    Error::failure("no context is current")
        .with_hint("pick one with `mycli switch NAME`, or sign in with `mycli login --org ORG_ID`")
}

/// Exit 4 when the store has no context at all: only a login helps.
pub fn not_signed_in() -> Error {
    Error::needs_login("you are not signed in to any organization")
        .with_hint("sign in with `mycli login --org ORG_ID`")
}

/// Holding this proves the config lock is held; only through it can the store be written.
#[derive(Debug)]
pub struct ConfigLock<'a> {
    paths: &'a Paths,
    _guard: LockGuard,
}

impl<'a> ConfigLock<'a> {
    pub fn acquire(paths: &'a Paths) -> Result<ConfigLock<'a>> {
        paths.ensure(Some(&paths.locks()))?;
        let guard = LockGuard::acquire(&paths.locks().join("config.lock"), super::lock_wait())?;
        Ok(ConfigLock {
            paths,
            _guard: guard,
        })
    }

    /// Re-reads the store under the lock, from `config.toml` itself: only read-only paths
    /// trust the derived index.
    pub fn load(&self) -> Result<Config> {
        Config::load_parsed(self.paths)
    }

    /// Re-reads the store under the lock through the index when it is whole and current: for
    /// commands that write only the pointers (`save_pointers`).
    pub fn load_for_pointers(&self) -> Result<Config> {
        Config::load(self.paths)
    }

    /// Atomically replaces `config.toml` and `current.toml`.
    pub fn save(&self, config: &Config) -> Result<()> {
        if config.from_index {
            return Err(Error::failure(
                "refusing to write config.toml from its derived index (a bug in mycli)",
            )
            .with_hint("nothing was changed; please report it"));
        }
        let mut file = config.clone();
        file.current = None;
        file.previous = None;
        let text = file.to_toml()?;
        // A crash between the two writes must lose nothing. Normally config.toml goes first,
        // so the pointers never name a context that is not written yet. In a hand-written store
        // whose pointers are still in config.toml, current.toml goes first, so that writing
        // config.toml without them cannot drop their only copy.
        let pointers_first = !self.paths.pointers().exists();
        if pointers_first {
            self.save_pointers(config)?;
        }
        let path = self.paths.config();
        atomic::write(&path, text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(&path) {
            write_index(self.paths, Fingerprint::of(&meta), &file);
        }
        if !pointers_first {
            self.save_pointers(config)?;
        }
        Ok(())
    }

    /// Atomically replaces `current.toml` alone (`mycli switch`).
    pub fn save_pointers(&self, config: &Config) -> Result<()> {
        let pointers = Pointers {
            current: config.current.clone(),
            previous: config.previous.clone(),
        };
        let text = toml::to_string(&pointers)
            .map_err(|e| Error::failure(format!("could not write the pointers: {e}")))?;
        atomic::write(&self.paths.pointers(), text.as_bytes())
    }
}

/// Whether the index was built from `config.toml` as it is now (true when there is no
/// `config.toml`). Reads only the index's first line.
pub(crate) fn index_is_current(paths: &Paths) -> Result<bool> {
    use std::io::Read;
    let Some(fingerprint) = stat_config(paths)? else {
        return Ok(true);
    };
    let mut head = [0u8; 256];
    let Ok(mut file) = files::open_no_wait(&paths.index()) else {
        return Ok(false);
    };
    let n = file.read(&mut head).unwrap_or(0);
    Ok(index::header_matches(&head[..n], fingerprint))
}

fn names_entry(
    paths: &Paths,
    fingerprint: Fingerprint,
    query: &str,
    by_name: bool,
) -> Option<Option<(String, String)>> {
    let text = files::read_to_string(&paths.names()).ok()?;
    index::entry_in_names(&text, fingerprint, query, by_name)
}

fn read_index(paths: &Paths, fingerprint: Fingerprint) -> Option<Config> {
    let text = files::read_to_string(&paths.index()).ok()?;
    index::decode(&text, fingerprint, Config::count)
}

/// The fingerprint of `config.toml`, `None` when there is no store yet.
fn stat_config(paths: &Paths) -> Result<Option<Fingerprint>> {
    let path = paths.config();
    match std::fs::metadata(&path) {
        Ok(meta) => Ok(Some(Fingerprint::of(&meta))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, &e)),
    }
}

/// Best effort: the index is derived data, rebuilt whenever it is missing or stale.
fn write_index(paths: &Paths, fingerprint: Fingerprint, config: &Config) {
    if paths.ensure(Some(&paths.cache())).is_ok() {
        let _ = atomic::write_unsynced(
            &paths.index(),
            index::encode(fingerprint, config, config.contexts.len()).as_bytes(),
        );
        let pairs = config
            .contexts
            .iter()
            .map(|(key, ctx)| (key.as_str(), ctx.name.as_str()));
        match index::encode_names(fingerprint, pairs) {
            Some(names) => {
                let _ = atomic::write_unsynced(&paths.names(), names.as_bytes());
            }
            None => {
                let _ = std::fs::remove_file(paths.names());
            }
        }
    }
}

fn corrupt(path: &Path, line: Option<usize>, what: &str) -> Error {
    text::corrupt(text::at_line(path, line, what))
}

/// The line of `field` in the table of context `key`, when it can be found as written.
fn field_line(text: &str, key: &str, field: &str) -> Option<usize> {
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[contexts.{key}]") || line == format!("[contexts.\"{key}\"]");
        } else if inside
            && line.starts_with(field)
            && line[field.len()..].trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    None
}

fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.trim() == needle).map(|i| i + 1)
}

/// Reads a TOML file up to its first table header.
fn read_top_level(path: &Path) -> std::io::Result<String> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(files::open_no_wait(path)?);
    let mut prefix = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        if line.trim_start().starts_with('[') {
            break;
        }
        prefix.push_str(&line);
        line.clear();
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_start_from_config_toml_and_refuse_a_config_read_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::resolve(Some(dir.path())).unwrap();
        std::fs::write(paths.config(), SAMPLE).unwrap();
        Config::load(&paths).unwrap();
        let indexed = Config::load(&paths).unwrap();
        assert!(indexed.from_index, "the second read used the index");
        let lock = ConfigLock::acquire(&paths).unwrap();
        assert!(lock.save(&indexed).is_err());
        assert_eq!(std::fs::read_to_string(paths.config()).unwrap(), SAMPLE);
        let parsed = lock.load().unwrap();
        assert!(!parsed.from_index);
        lock.save(&parsed).unwrap();
    }

    const SAMPLE: &str = r#"current = "org_acme"
previous = "org_globex"

[contexts.org_acme]
name = "acme"
user-id = "user_1"
email = "a@example.com"
provider = "workos"
issuer = "https://api.workos.com"
client-id = "client_1"
method = "device"
storage = "file"

[contexts.org_globex]
name = "globex"
user-id = "user_1"
provider = "oidc"
issuer = "https://idp.example.com"
client-id = "mycli"
method = "pkce"
storage = "keychain"
needs-login = true
"#;

    #[test]
    fn parses_and_round_trips() {
        let c = Config::parse(SAMPLE, Path::new("config.toml")).unwrap();
        assert_eq!(c.current.as_deref(), Some("org_acme"));
        assert!(c.contexts["org_globex"].needs_login);
        let again = Config::parse(&c.to_toml().unwrap(), Path::new("x")).unwrap();
        assert_eq!(again.contexts.len(), 2);
        assert_eq!(again.previous.as_deref(), Some("org_globex"));
    }

    #[test]
    fn prefix_stops_at_first_table() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = |text: &str| {
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            read_top_level(&path).unwrap()
        };
        assert_eq!(
            prefix(SAMPLE),
            "current = \"org_acme\"\nprevious = \"org_globex\"\n\n"
        );
        assert_eq!(prefix("current = \"a\""), "current = \"a\"");
        assert_eq!(prefix("  [contexts.a]\ncurrent = \"a\"\n"), "");
    }

    #[test]
    fn corrupt_file_names_the_line() {
        let broken = SAMPLE.replace("method = \"pkce\"", "method = pkce");
        let err = Config::parse(&broken, Path::new("/x/config.toml")).unwrap_err();
        assert!(
            err.message.starts_with("/x/config.toml, line 20:"),
            "{}",
            err.message
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dup = SAMPLE.replace("name = \"globex\"", "name = \"acme\"");
        let err = Config::parse(&dup, Path::new("c.toml")).unwrap_err();
        assert!(err.message.contains("same name"), "{}", err.message);
    }

    #[test]
    fn unique_names_get_a_suffix() {
        let c = Config::parse(SAMPLE, Path::new("c")).unwrap();
        assert_eq!(c.unique_name("acme", "org_new"), "acme-2");
        assert_eq!(c.unique_name("acme", "org_acme"), "acme");
        assert_eq!(c.unique_name("initech", "org_new"), "initech");
        let long = "a".repeat(64);
        let mut c = c;
        let mut ctx = c.contexts["org_acme"].clone();
        ctx.name = long.clone();
        c.contexts.insert("org_long".into(), ctx);
        let second = c.unique_name(&long, "org_new");
        assert_eq!(second, format!("{}-2", "a".repeat(62)));
        assert!(crate::store::validate_name(&second).is_ok());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::super::index::{self, Fingerprint};
        use super::*;

        /// Text users and IdPs may put in a field: anything, with tabs, quotes, newlines,
        /// backslashes, TOML syntax and non-ASCII made likely.
        fn text() -> impl Strategy<Value = String> {
            let special = prop::sample::select(vec![
                '\t', '\n', '\r', '"', '\'', '\\', '=', '[', ']', '#', '.', ' ', 'é', '漢', '😀',
                '\u{0}', '\u{7f}', '\u{feff}', '\u{2028}', 'N', 'a',
            ]);
            prop_oneof![
                ".{0,12}",
                prop::collection::vec(special, 0..12).prop_map(String::from_iter),
                Just("\\N".to_string()),
            ]
        }

        /// Context names: mostly valid ones, sometimes anything at all.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => "[a-zA-Z0-9_][a-zA-Z0-9_.@:é漢-]{0,20}",
                1 => text(),
            ]
        }

        fn context() -> impl Strategy<Value = Context> {
            (
                (
                    name(),
                    prop::option::of(text()),
                    text(),
                    prop::option::of(text()),
                ),
                (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
                (
                    text(),
                    text(),
                    prop::option::of(time()),
                    prop::option::of(time()),
                ),
            )
                .prop_map(
                    |(
                        (name, organization_name, user_id, email),
                        (oidc, pkce, file, needs_login),
                        (issuer, client_id, access_token_expires_at, signed_in_at),
                    )| Context {
                        name,
                        organization_name,
                        user_id,
                        email,
                        provider: if oidc {
                            ProviderKind::Oidc
                        } else {
                            ProviderKind::Workos
                        },
                        issuer,
                        client_id,
                        method: if pkce { Method::Pkce } else { Method::Device },
                        storage: if file {
                            Storage::File
                        } else {
                            Storage::Keychain
                        },
                        needs_login,
                        access_token_expires_at,
                        signed_in_at,
                        session_id: None,
                        authentication_method: None,
                        org_claim: None,
                        impersonator: None,
                    },
                )
        }

        fn config() -> impl Strategy<Value = Config> {
            (
                prop::collection::btree_map(text(), context(), 0..5),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(any::<bool>()),
            )
                .prop_map(
                    |(contexts, current, previous, issuer, client_id, org_claim, kind)| Config {
                        current,
                        previous,
                        provider: ProviderDefaults {
                            kind: kind.map(|oidc| {
                                if oidc {
                                    ProviderKind::Oidc
                                } else {
                                    ProviderKind::Workos
                                }
                            }),
                            issuer,
                            client_id,
                            org_claim,
                        },
                        contexts,
                        from_index: false,
                    },
                )
        }

        /// Whether `parse` must accept the config: valid, pairwise distinct names.
        fn acceptable(config: &Config) -> bool {
            let names: std::collections::BTreeSet<&str> =
                config.contexts.values().map(|c| c.name.as_str()).collect();
            names.len() == config.contexts.len()
                && config.contexts.values().all(|c| {
                    crate::store::validate_name(&c.name).is_ok() && c.malformed_field().is_none()
                })
        }

        /// Times: mostly RFC 3339 as mycli writes them, sometimes anything at all.
        fn time() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z",
                1 => text(),
            ]
        }

        const FP: Fingerprint = Fingerprint {
            len: 7,
            mtime_ns: -1,
            ctime_ns: 1_700_000_000_000_000_000,
            inode: u64::MAX,
        };

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn parse_never_panics_on_any_text(text in ".*") {
                let _ = Config::parse(&text, Path::new("x"));
            }

            #[test]
            fn parse_never_panics_on_toml_like_text(
                text in r#"(current|previous|\[contexts\.|\[provider\]|name|kind|storage|method|needs-login|"|'|=|\]|\n|\t| |#|\\|true|1|org_a|é|\{|\}|,)*"#
            ) {
                let _ = Config::parse(&text, Path::new("x"));
            }

            #[test]
            fn any_config_round_trips_through_toml_and_the_index(config in config()) {
                let text = config.to_toml().expect("every config serializes");
                match Config::parse(&text, Path::new("x")) {
                    Ok(back) => {
                        prop_assert!(acceptable(&config), "accepted an invalid name or field:\n{}", text);
                        prop_assert_eq!(back.to_toml().unwrap(), text.clone());
                        prop_assert_eq!(&back.current, &config.current);
                        prop_assert_eq!(&back.previous, &config.previous);
                    }
                    Err(e) => prop_assert!(
                        !acceptable(&config),
                        "refused its own output: {}\n{}",
                        e.message,
                        text
                    ),
                }
                let decoded = index::decode(&index::encode(FP, &config, config.contexts.len()), FP, Config::count);
                prop_assert!(decoded.is_some(), "the index of this config does not decode:\n{}", text);
                let decoded = decoded.unwrap();
                prop_assert_eq!(decoded.to_toml().unwrap(), text);
                prop_assert_eq!(&decoded.current, &config.current);
                prop_assert_eq!(&decoded.previous, &config.previous);
            }
        }
    }
}
