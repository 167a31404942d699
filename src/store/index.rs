//! `cache/config.index`: a derived copy of `config.toml` that loads much faster than TOML (spec
//! §6: listing 10,000 contexts within 50 ms), for read-only commands.
//!
//! The first line is a header: the fingerprint of the `config.toml` it was built from (size,
//! mtime, ctime, inode), then the number of contexts, the length of the body and a checksum
//! of it. The body is the `Config` encoded by serde (JSON), so every field of `Context` is in
//! the index by construction. An index whose fingerprint does not match `config.toml`, or whose
//! body is not whole (a torn or truncated write: it is written without fsync), is ignored and
//! rebuilt, so a hand edit of `config.toml` always wins and a damaged index never shortens the
//! store. Writers never read it: they parse `config.toml` under the lock.

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: &str = "mycli-index-2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
}

impl Fingerprint {
    pub fn of(meta: &std::fs::Metadata) -> Fingerprint {
        let ns = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128)
        };
        #[cfg(unix)]
        let (ctime_ns, inode) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, inode) = (0, 0);
        Fingerprint {
            len: meta.len(),
            mtime_ns: ns(meta.modified()),
            ctime_ns,
            inode,
        }
    }

    /// The header's first fields, up to and including the tab after the fingerprint.
    fn prefix(&self) -> String {
        format!(
            "{MAGIC}\t{}\t{}\t{}\t{}\t",
            self.len, self.mtime_ns, self.ctime_ns, self.inode
        )
    }
}

/// The index of `value` (holding `count` contexts) for a `config.toml` with this fingerprint.
pub fn encode<T: Serialize>(fingerprint: Fingerprint, value: &T, count: usize) -> String {
    let body = serde_json::to_string(value).unwrap_or_default();
    format!(
        "{}{}\t{}\t{:016x}\n{body}",
        fingerprint.prefix(),
        count,
        body.len(),
        checksum(body.as_bytes())
    )
}

/// Whether an index starting with `head` was built from a file with this fingerprint.
pub fn header_matches(head: &[u8], fingerprint: Fingerprint) -> bool {
    head.starts_with(fingerprint.prefix().as_bytes())
}

/// The value, when `text` is a whole index of a `config.toml` with this fingerprint and the
/// value holds as many contexts (`count`) as the header says.
pub fn decode<T: DeserializeOwned>(
    text: &str,
    fingerprint: Fingerprint,
    count_of: impl Fn(&T) -> usize,
) -> Option<T> {
    let (count, body) = whole_body(text, fingerprint)?;
    let value: T = serde_json::from_str(body).ok()?;
    (count_of(&value) == count).then_some(value)
}

/// The number of contexts and the body of `text`, when it is a whole index of a
/// `config.toml` with this fingerprint.
fn whole_body(text: &str, fingerprint: Fingerprint) -> Option<(usize, &str)> {
    let rest = text.strip_prefix(fingerprint.prefix().as_str())?;
    let (header, body) = rest.split_once('\n')?;
    let mut fields = header.split('\t');
    let count: usize = fields.next()?.parse().ok()?;
    let len: usize = fields.next()?.parse().ok()?;
    let sum = u64::from_str_radix(fields.next()?, 16).ok()?;
    if fields.next().is_some() || body.len() != len || checksum(body.as_bytes()) != sum {
        return None;
    }
    Some((count, body))
}

/// The name of the context whose name (when `by_name`), else whose key, is `query`, read from
/// a whole index without building the config (`mycli prompt` runs in every shell prompt).
/// `None` when the index is not whole or not of this fingerprint; `Some(None)` when no context
/// matches.
pub fn name_of(
    text: &str,
    fingerprint: Fingerprint,
    query: &str,
    by_name: bool,
) -> Option<Option<String>> {
    let (_, body) = whole_body(text, fingerprint)?;
    let mut de = serde_json::Deserializer::from_str(body);
    let found =
        serde::de::DeserializeSeed::deserialize(names::InConfig(query, by_name), &mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

/// `cache/names`: every context's key and name, a `KEY<TAB>NAME` line each, under the index's
/// header. `mycli prompt` finds one name there in microseconds, where the index holds every
/// field of every context. `None` when a key or a name holds a tab or a line break, which the
/// format cannot hold (prompt then reads the index).
pub fn encode_names<'a>(
    fingerprint: Fingerprint,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    let count = pairs.len();
    let mut body = String::new();
    for (key, name) in pairs {
        if key.contains(['\t', '\n', '\r']) || name.contains(['\t', '\n', '\r']) {
            return None;
        }
        body.push_str(key);
        body.push('\t');
        body.push_str(name);
        body.push('\n');
    }
    Some(format!(
        "{}{count}\t{}\t{:016x}\n{body}",
        fingerprint.prefix(),
        body.len(),
        checksum(body.as_bytes())
    ))
}

/// Like `name_of`, from `cache/names`, with the key: the context keyed `query` (keys win, as
/// in `Config::find`), else, when `by_name`, the one named `query`.
pub fn entry_in_names(
    text: &str,
    fingerprint: Fingerprint,
    query: &str,
    by_name: bool,
) -> Option<Option<(String, String)>> {
    let (count, body) = whole_body(text, fingerprint)?;
    let mut named = None;
    let mut lines = 0;
    for line in body.lines() {
        lines += 1;
        let (key, name) = line.split_once('\t')?;
        if key == query {
            return Some(Some((key.to_string(), name.to_string())));
        }
        if by_name && named.is_none() && name == query {
            named = Some((key.to_string(), name.to_string()));
        }
    }
    (lines == count).then_some(named)
}

/// Serde seeds that walk the index's JSON for one context's name, skipping everything else
/// without allocating it.
mod names {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// The whole config: only `contexts` is looked into.
    pub struct InConfig<'q>(pub &'q str, pub bool);
    /// The `contexts` map: the key matching the query wins over the name matching it.
    struct InContexts<'q>(&'q str, bool);
    /// One context: its `name`.
    struct Name;

    impl<'de> DeserializeSeed<'de> for InConfig<'_> {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for InConfig<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a config")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(field) = map.next_key::<Cow<'de, str>>()? {
                if field == "contexts" {
                    found = map.next_value_seed(InContexts(self.0, self.1))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    impl<'de> DeserializeSeed<'de> for InContexts<'_> {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for InContexts<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("the contexts")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut by_name, mut by_key) = (None, None);
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let name = map.next_value_seed(Name)?;
                if key == self.0 {
                    by_key = name;
                } else if self.1 && by_name.is_none() && name.as_deref() == Some(self.0) {
                    by_name = name;
                }
            }
            // Keys win, as in `Config::find`: an organization id always means that organization.
            Ok(by_key.or(by_name))
        }
    }

    impl<'de> DeserializeSeed<'de> for Name {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Name {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a context")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut name = None;
            while let Some(field) = map.next_key::<Cow<'de, str>>()? {
                if field == "name" {
                    name = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(name)
        }
    }
}

/// A fast 64-bit checksum (8 bytes at a time, multiply-rotate as in FxHash): it detects torn
/// and truncated writes and bit rot, not tampering (the index is derived, not trusted input).
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        hash = (hash.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::config::{Config, Context, Method, ProviderKind, Storage};

    fn enc(config: &Config) -> String {
        encode(FP, config, config.count())
    }

    fn dec(text: &str, fingerprint: Fingerprint) -> Option<Config> {
        decode(text, fingerprint, Config::count)
    }

    fn sample() -> Config {
        let mut c = Config::default();
        c.provider.issuer = Some("https://idp.example.com".into());
        c.current = Some("org_a".into());
        c.contexts.insert(
            "org_a".into(),
            Context {
                name: "a".into(),
                organization_name: Some("Tab\there \\ new\nline".into()),
                user_id: "u".into(),
                email: None,
                provider: ProviderKind::Oidc,
                issuer: "https://idp.example.com".into(),
                client_id: "c".into(),
                method: Method::Pkce,
                storage: Storage::Keychain,
                needs_login: true,
                access_token_expires_at: Some("2026-11-27T10:00:00Z".into()),
                signed_in_at: None,
                session_id: Some("session_01".into()),
                authentication_method: Some("SSO".into()),
                org_claim: None,
                impersonator: Some(crate::vocab::Impersonator {
                    email: "admin@example.com".into(),
                    reason: Some("Support\tticket".into()),
                }),
            },
        );
        c
    }

    const FP: Fingerprint = Fingerprint {
        len: 1,
        mtime_ns: 2,
        ctime_ns: 3,
        inode: 4,
    };

    #[test]
    fn the_names_file_answers_like_the_index_and_only_when_whole() {
        let pairs = [("org_a", "alpha"), ("org_b", "org_a"), ("org_c", "gamma")];
        let text = encode_names(FP, pairs.iter().copied()).unwrap();
        let find = |t: &str, q: &str, by_name: bool| {
            entry_in_names(t, FP, q, by_name).map(|found| found.map(|(_, name)| name))
        };
        assert_eq!(find(&text, "org_c", false), Some(Some("gamma".into())));
        assert_eq!(find(&text, "gamma", true), Some(Some("gamma".into())));
        assert_eq!(
            find(&text, "gamma", false),
            Some(None),
            "a key query ignores names"
        );
        assert_eq!(find(&text, "nope", true), Some(None));
        // A hand-written clash: the key wins, as in Config::find.
        assert_eq!(find(&text, "org_a", true), Some(Some("alpha".into())));
        // Another fingerprint, a cut or a changed byte: no answer, so the index is asked.
        let other = Fingerprint { len: 9, ..FP };
        assert_eq!(entry_in_names(&text, other, "org_c", false), None);
        assert_eq!(
            entry_in_names(&text, FP, "gamma", true),
            Some(Some(("org_c".into(), "gamma".into())))
        );
        assert_eq!(find(&text[..text.len() - 3], "org_a", false), None);
        assert_eq!(find(&text.replace("gamma", "gammb"), "org_a", false), None);
        // What the format cannot hold is not written.
        assert!(encode_names(FP, [("org_a", "a\tb")].iter().copied()).is_none());
        assert!(encode_names(FP, [("org\na", "a")].iter().copied()).is_none());
    }

    #[test]
    fn round_trips_every_field() {
        let c = sample();
        let back = dec(&enc(&c), FP).unwrap();
        assert_eq!(c.to_toml().unwrap(), back.to_toml().unwrap());
    }

    #[test]
    fn one_name_is_found_by_name_then_by_key_without_decoding_the_rest() {
        let mut c = sample();
        let mut other = c.contexts["org_a"].clone();
        other.name = "org_a".into();
        c.contexts.insert("org_z".into(), other);
        let text = enc(&c);
        assert_eq!(name_of(&text, FP, "a", true), Some(Some("a".into())));
        // A key wins over a name, as `Config::find` has it (an organization id always means
        // that organization); keys alone when asked.
        assert_eq!(name_of(&text, FP, "org_a", true), Some(Some("a".into())));
        assert_eq!(name_of(&text, FP, "org_a", false), Some(Some("a".into())));
        assert_eq!(name_of(&text, FP, "a", false), Some(None));
        assert_eq!(
            name_of(&text, FP, "org_z", true),
            Some(Some("org_a".into()))
        );
        assert_eq!(name_of(&text, FP, "nobody", true), Some(None));
        assert_eq!(
            name_of(&text, Fingerprint { len: 9, ..FP }, "a", true),
            None
        );
        assert_eq!(name_of(&text[..text.len() - 1], FP, "a", true), None);
    }

    #[test]
    fn a_stale_or_damaged_index_is_not_used() {
        let text = enc(&sample());
        assert!(dec(&text, Fingerprint { len: 9, ..FP }).is_none());
        assert!(dec(&text.replace("\"pkce\"", "\"pkcx\""), FP).is_none());
        assert!(dec(&text[..text.len() - 20], FP).is_none());
    }

    #[test]
    fn an_index_cut_anywhere_or_with_a_flipped_byte_is_not_used() {
        let mut c = sample();
        let mut second = c.contexts["org_a"].clone();
        second.name = "b".into();
        c.contexts.insert("org_b".into(), second);
        let text = enc(&c);
        assert!(dec(&text, FP).is_some());
        for cut in 0..text.len() {
            if text.is_char_boundary(cut) {
                assert!(dec(&text[..cut], FP).is_none(), "cut at {cut} was used");
            }
        }
        let header = text.find('\n').unwrap();
        let mut bytes = text.clone().into_bytes();
        bytes[header + 10] ^= 0x01;
        assert!(dec(std::str::from_utf8(&bytes).unwrap(), FP).is_none());
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(text in ".*") {
            let _ = dec(&text, FP);
        }
    }
}
