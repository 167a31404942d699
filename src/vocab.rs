//! Words the layers share: which kind of provider, where a secret is stored, how a session
//! was signed in, and the `[provider]` defaults. Auth and the store both speak them, so they
//! live below both; each word's text is written once, here.

use serde::{Deserialize, Serialize};

/// An enum of words: its variants, their text (`as_str`, `parse`, `ALL`), and serde through
/// that same text.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant,)+];
            /// The text of each word, in the order of `ALL`.
            pub const NAMES: &[&str] = &[$($text,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|w| w.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&text)
                    .ok_or_else(|| serde::de::Error::unknown_variant(&text, $name::NAMES))
            }
        }
    };
}

words! {
    /// Which kind of identity provider.
    ProviderKind {
        /// WorkOS User Management (AuthKit).
        Workos = "workos",
        /// Any OpenID Connect provider, found by discovery.
        Oidc = "oidc",
    }
}

words! {
    /// Where a context's refresh token lives.
    Storage {
        Keychain = "keychain",
        File = "file",
    }
}

words! {
    /// How a session was signed in.
    Method {
        /// Authorization code with PKCE on a loopback redirect.
        Pkce = "pkce",
        /// OAuth 2.0 Device Authorization Grant.
        Device = "device",
    }
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::Pkce => "the browser (PKCE)",
            Method::Device => "a device code",
        }
    }
}

words! {
    /// `--output`: how a command that prints data prints it.
    OutputFormat {
        Table = "table",
        Json = "json",
        Name = "name",
        /// A Kubernetes ExecCredential (`mycli token` only).
        ExecCredential = "exec-credential",
    }
}

/// `[provider]` in `config.toml`: the defaults for new logins.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProviderDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ProviderKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The claim that names the organization in OIDC tokens (default `org_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_claim: Option<String>,
}

impl ProviderDefaults {
    pub fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.issuer.is_none()
            && self.client_id.is_none()
            && self.org_claim.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_reads_back_as_written() {
        for kind in ProviderKind::ALL {
            let text = serde_json::to_string(kind).unwrap();
            assert_eq!(text, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ProviderKind>(&text).unwrap(), *kind);
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(*kind));
        }
        for storage in Storage::ALL {
            assert_eq!(Storage::parse(&storage.to_string()), Some(*storage));
        }
        assert_eq!(Method::parse("device"), Some(Method::Device));
        assert_eq!(ProviderKind::parse("WorkOS"), None);
        let err = serde_json::from_str::<Storage>("\"disk\"").unwrap_err();
        assert!(err.to_string().contains("`keychain` or `file`"), "{err}");
    }
}

/// The person behind an impersonated session (WorkOS `impersonator`, an `act` claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Impersonator {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
