//! Moments as a person types them for replay: `03:12`, `2026-12-05 03:12:30`, `-2h` (pure; the time zone and
//! the current time are passed in).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::duration::parse_duration;

/// A moment as typed, resolved against the current time and time zone with [`TimeSpec::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `03:12` or `03:12:30`: the last such time of day, today or yesterday.
    Clock(Time),
    /// `2026-12-05 03:12:30` (or with a `T`, seconds optional), local time.
    Civil(DateTime),
    /// `-2h`: that long ago.
    Ago(u64),
    /// `@1796432400123`: Unix milliseconds.
    UnixMs(u64),
    /// `now`.
    Now,
}

/// Parses a moment; errors say which forms are accepted.
pub fn parse_time(s: &str) -> Result<TimeSpec, String> {
    let text = s.trim();
    let invalid = || {
        format!(
            "invalid time '{s}': expected HH:MM[:SS], YYYY-MM-DD HH:MM[:SS], -DURATION (like -2h), @UNIX_MS or now"
        )
    };
    if text == "now" {
        return Ok(TimeSpec::Now);
    }
    if let Some(ago) = text.strip_prefix('-') {
        return parse_duration(ago)
            .map(TimeSpec::Ago)
            .map_err(|e| format!("invalid time '{s}': {e}"));
    }
    if let Some(ms) = text.strip_prefix('@') {
        return ms.parse().map(TimeSpec::UnixMs).map_err(|_| invalid());
    }
    if let Some(time) = parse_clock(text) {
        return Ok(TimeSpec::Clock(time));
    }
    let (date, clock) = text.split_once(['T', ' ']).ok_or_else(invalid)?;
    let date: Date = date.trim().parse().map_err(|_| invalid())?;
    let time = parse_clock(clock.trim()).ok_or_else(invalid)?;
    Ok(TimeSpec::Civil(date.to_datetime(time)))
}

/// `HH:MM` or `HH:MM:SS`.
fn parse_clock(s: &str) -> Option<Time> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<i8>().ok());
    Time::new(n(0)?, n(1)?, n(2)?, 0).ok()
}

impl TimeSpec {
    /// Unix milliseconds of the moment, `now_ms` being the current time and `tz` the local time zone.
    pub fn resolve(&self, now_ms: u64, tz: &TimeZone) -> Result<u64, String> {
        let now = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .map_err(|e| e.to_string())?;
        let to_ms = |ts: Timestamp| {
            u64::try_from(ts.as_millisecond()).map_err(|_| "time before 1970".to_string())
        };
        match *self {
            TimeSpec::Now => Ok(now_ms),
            TimeSpec::UnixMs(ms) => Ok(ms),
            TimeSpec::Ago(ms) => Ok(now_ms.saturating_sub(ms)),
            TimeSpec::Clock(time) => {
                let today = now.to_zoned(tz.clone()).date();
                let at = |date: Date| {
                    date.to_datetime(time)
                        .to_zoned(tz.clone())
                        .map(|z| z.timestamp())
                        .map_err(|e| e.to_string())
                };
                let moment = at(today)?;
                if moment <= now {
                    return to_ms(moment);
                }
                let yesterday = today.checked_sub(1.day()).map_err(|e| e.to_string())?;
                to_ms(at(yesterday)?)
            }
            TimeSpec::Civil(dt) => to_ms(
                dt.to_zoned(tz.clone())
                    .map_err(|e| e.to_string())?
                    .timestamp(),
            ),
        }
    }
}

/// A moment for people, in the local time zone: `2026-12-05 03:12:30.123 CET`.
pub fn format_local(ms: u64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) {
        Ok(ts) => ts
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S%.3f %Z")
            .to_string(),
        Err(_) => format!("@{ms}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2026-12-05 10:00:00 UTC.
    const NOW: u64 = 1_796_464_800_000;

    fn at(s: &str, tz: &TimeZone) -> u64 {
        parse_time(s).unwrap().resolve(NOW, tz).unwrap()
    }

    #[test]
    fn typed_moments_resolve_in_the_local_time_zone() {
        let utc = TimeZone::UTC;
        assert_eq!(at("03:12", &utc), NOW - (6 * 60 + 48) * 60_000);
        assert_eq!(at("03:12:30", &utc), NOW - (6 * 60 + 47) * 60_000 - 30_000);
        // Later than now today: yesterday's.
        assert_eq!(at("11:00", &utc), NOW - 23 * 3_600_000);
        assert_eq!(at("2026-12-05 03:12:30", &utc), at("03:12:30", &utc));
        assert_eq!(at("2026-12-05T03:12", &utc), at("03:12", &utc));
        assert_eq!(at("-2h", &utc), NOW - 2 * 3_600_000);
        assert_eq!(at("-90s", &utc), NOW - 90_000);
        assert_eq!(at("@123", &utc), 123);
        assert_eq!(at("now", &utc), NOW);
        // One hour east of UTC, 03:12 local is 02:12 UTC.
        let cet = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(at("03:12", &cet), at("02:12", &utc));
        assert_eq!(format_local(NOW, &utc), "2026-12-05 10:00:00.000 UTC");
    }

    #[test]
    fn bad_moments_are_rejected_with_the_input() {
        for bad in [
            "",
            "3:12",
            "25:00",
            "03:12:61",
            "2026-13-01 00:00",
            "yesterday",
            "-",
            "-2x",
            "@x",
            "2026-12-05",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }
}
