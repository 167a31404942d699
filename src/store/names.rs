//! Context names: what a name may be, and which known name a typo meant.

/// What a context name may be, for the hint under a refused one.
pub const NAME_RULE: &str = "a name is 1 to 64 visible characters without spaces or any of \" \\ /, \
     and does not start with '-' (for example acme-prod)";

/// The longest context name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A context name: printable, no spaces, not an option, not `-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a context name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("a context name is at most 64 characters".into());
    }
    if name == "-" || name.starts_with('-') {
        return Err(format!(
            "{name:?} cannot be a context name (it starts with '-')"
        ));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || crate::text::is_invisible(*c)
            || matches!(c, '"' | '\\' | '/')
    }) {
        return Err(format!("a context name cannot contain {c:?}"));
    }
    Ok(())
}

/// The known name closest to `query`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(query: &str, names: &[&'a str]) -> Option<&'a str> {
    let q = query.to_lowercase();
    names
        .iter()
        .map(|n| (*n, strsim::levenshtein(&q, &n.to_lowercase())))
        .filter(|(n, d)| *d <= 2.max(n.chars().count() / 3) || n.to_lowercase().starts_with(&q))
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["acme", "globex", "initech"];
        assert_eq!(did_you_mean("acmee", &names), Some("acme"));
        assert_eq!(did_you_mean("glob", &names), Some("globex"));
        assert_eq!(did_you_mean("zzzzzz", &names), None);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("acme-prod").is_ok());
        assert!(validate_name("-").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("prod\u{200b}").is_err());
        assert!(validate_name("evil\u{202e}hs.exe").is_err());
    }
}
