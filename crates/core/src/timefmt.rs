//! Timestamps on the wire: RFC 3339 in UTC with millisecond precision, as Svix
//! writes them. In storage they are Unix milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Added to this process's clock: a test skews one node's clock with it to show
/// that leases and due times follow the database's clock, not the node's.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts what [`now_millis`] returns by `millis` for the rest of the process.
pub fn set_clock_offset(millis: i64) {
    CLOCK_OFFSET_MS.store(millis, Ordering::Relaxed);
}

/// Unix milliseconds now, by this process's clock.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 + CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// `2026-11-25T10:52:23.123Z` for Unix milliseconds.
pub fn format_millis(millis: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (t.year(), t.month() as u8, t.day());
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", t.hour(), t.minute(), t.second(), t.millisecond())
}

/// Parses an RFC 3339 timestamp (any offset) to Unix milliseconds.
pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = format_millis(1_614_265_330_123);
        assert_eq!(s, "2021-02-25T15:02:10.123Z");
        assert_eq!(parse_rfc3339_millis(&s), Some(1_614_265_330_123));
        assert_eq!(parse_rfc3339_millis("2021-02-25T16:02:10.123+01:00"), Some(1_614_265_330_123));
        assert_eq!(parse_rfc3339_millis("yesterday"), None);
    }
}
