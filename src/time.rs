//! Wall-clock helpers: Unix seconds and RFC 3339 text.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second RFC 3339 can write: 9999-12-31T23:59:59Z.
pub const MAX_UNIX: i64 = 253_402_300_799;

/// The wall clock a command reads: the system's, or in tests one that stands still until it
/// is moved.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock that reads `unix` until [`Clock::set`] moves it (clones share the time).
    pub fn fixed(unix: i64) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicI64::new(unix))),
        }
    }

    /// Moves a fixed clock; the system clock cannot be moved.
    pub fn set(&self, unix: i64) {
        if let Some(t) = &self.fixed {
            t.store(unix, Ordering::Relaxed);
        }
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        match &self.fixed {
            Some(t) => t.load(Ordering::Relaxed),
            None => system_now(),
        }
    }
}

/// Unix seconds of the system clock; everything else reads a [`Clock`] (`App::clock`).
fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(MAX_UNIX))
}

/// `2026-11-27T10:00:00Z` for a Unix time; times outside 1970..=9999 are clamped to it.
pub fn rfc3339(unix: i64) -> String {
    let secs = u64::try_from(unix.clamp(0, MAX_UNIX)).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Unix seconds from RFC 3339 text (UTC, as mycli writes it; a space for the `T` and a
/// missing `Z` are accepted too).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Unix seconds from an HTTP `Date` header (RFC 9110 IMF-fixdate:
/// `Sun, 06 Nov 1994 08:49:37 GMT`); `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = text.split_ascii_whitespace();
    let (_weekday, day, month, year, hms, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    parse_rfc3339(&format!("{year}-{month:02}-{day}T{hms}Z"))
}

/// "in 4m", "in 2h 5m", "3m ago": a rough, human duration relative to now.
pub fn relative(unix: i64, now: i64) -> String {
    let delta = unix.saturating_sub(now);
    let span = short_span(delta.unsigned_abs());
    if delta >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn short_span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_read_and_anything_else_refused() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT x"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn rfc3339_round_trips() {
        for t in [0, 951_782_400, 1_795_000_000, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-27 10:00:00"), Some(1_795_773_600));
        assert_eq!(parse_rfc3339("2026-11-27T10:00:00.5Z"), Some(1_795_773_600));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn extreme_times_never_panic() {
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "1970-01-01T00:00:00Z");
        assert!(relative(i64::MIN, i64::MAX).ends_with("ago"));
        assert!(relative(i64::MAX, i64::MIN).starts_with("in "));
    }

    #[test]
    fn relative_reads_naturally() {
        assert_eq!(relative(1000 + 240, 1000), "in 4m");
        assert_eq!(relative(1000 - 30, 1000), "30s ago");
        assert_eq!(relative(1000 + 7500, 1000), "in 2h 5m");
    }
}
