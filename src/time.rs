//! Wall-clock helpers: Unix seconds and RFC 3339 text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-11-27T10:00:00Z` for a Unix time.
pub fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Unix seconds from RFC 3339 text.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// "in 4m", "in 2h 5m", "3m ago": a rough, human duration relative to now.
pub fn relative(unix: i64, now: i64) -> String {
    let delta = unix - now;
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
    fn rfc3339_round_trips() {
        let t = 1_795_000_000;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn relative_reads_naturally() {
        assert_eq!(relative(1000 + 240, 1000), "in 4m");
        assert_eq!(relative(1000 - 30, 1000), "30s ago");
        assert_eq!(relative(1000 + 7500, 1000), "in 2h 5m");
    }
}
