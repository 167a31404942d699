//! Hand-edited TOML files: where an error is, said one way (`path, line N: what`).

use std::path::Path;

use crate::error::Error;

/// `path, line N: what` (without the line when it is unknown).
pub fn at_line(path: &Path, line: Option<usize>, what: &str) -> String {
    let at = line.map(|n| format!(", line {n}")).unwrap_or_default();
    format!(
        "{}{at}: {}",
        path.display(),
        what.trim().trim_end_matches('.')
    )
}

/// The line (from 1) of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where a TOML parse error is, and what it is.
pub fn parse_error(path: &Path, text: &str, err: &toml::de::Error) -> String {
    at_line(
        path,
        err.span().map(|s| line_of(text, s.start)),
        err.message(),
    )
}

/// A store file mycli cannot read, left exactly as it was.
pub fn corrupt(message: String) -> Error {
    Error::failure(message).with_hint("fix the file by hand; mycli left it exactly as it was")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_line() {
        let path = Path::new("/s/config.toml");
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a", 99), 1);
        assert_eq!(
            at_line(path, Some(2), " bad. "),
            "/s/config.toml, line 2: bad"
        );
        assert_eq!(at_line(path, None, "bad"), "/s/config.toml: bad");
        let err = toml::from_str::<toml::Table>("a = 1\nb = \n").unwrap_err();
        assert!(parse_error(path, "a = 1\nb = \n", &err).starts_with("/s/config.toml, line 2: "));
    }
}
