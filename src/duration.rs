//! Human durations: `1m58s`, `2h11m`, `850ms` for display, and `30s`, `5m`, `2h30m` parsed from flags.

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Formats milliseconds with at most the two most significant units, truncated (never rounded up, so "ago"
/// stays a lower bound): `850ms`, `0ms`, `42s`, `1m58s`, `5m`, `2h11m`, `2h`, `3d4h`.
///
/// Below a second it shows milliseconds; from a second up, whole seconds and larger units. A zero second unit
/// is left out (`5m`, not `5m0s`).
pub fn format_duration_ms(ms: u64) -> String {
    let units = [
        (DAY, 'd', HOUR, 'h'),
        (HOUR, 'h', MINUTE, 'm'),
        (MINUTE, 'm', SECOND, 's'),
    ];
    for (big, big_name, small, small_name) in units {
        if ms >= big {
            let rest = (ms % big) / small;
            return if rest == 0 {
                format!("{}{big_name}", ms / big)
            } else {
                format!("{}{big_name}{rest}{small_name}", ms / big)
            };
        }
    }
    if ms >= SECOND {
        format!("{}s", ms / SECOND)
    } else {
        format!("{ms}ms")
    }
}

/// Parses a duration into milliseconds: one or more `NUMBER UNIT` parts with units `d`, `h`, `m`, `s`, `ms`
/// (`30s`, `5m`, `500ms`, `1h`, `2h30m`, `1m30s`), or a bare number meaning seconds (`90`).
///
/// Each unit may appear once, largest first (`1h30m`, not `30m1h` or `5m5m`): anything else is a typo, and
/// summing it would hide that.
///
/// Errors name the input: `invalid duration '5x': expected a number with a unit, like 30s, 5m, 500ms or 2h30m`.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration '{text}': expected a number with a unit, like 30s, 5m, 500ms or 2h30m"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| too_long(text))?;
        return secs.checked_mul(SECOND).ok_or_else(|| too_long(text));
    }
    let mut total: u64 = 0;
    // The previous part's unit: each must be smaller than the one before.
    let mut previous: Option<(u64, &str)> = None;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_long(text))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match rest[..unit_len].to_ascii_lowercase().as_str() {
            "ms" => 1,
            "s" => SECOND,
            "m" => MINUTE,
            "h" => HOUR,
            "d" => DAY,
            _ => return Err(invalid()),
        };
        let unit_text = &rest[..unit_len];
        if let Some((before, before_text)) = previous {
            if unit == before {
                return Err(format!(
                    "invalid duration '{text}': unit '{unit_text}' given twice"
                ));
            }
            if unit > before {
                return Err(format!(
                    "invalid duration '{text}': '{unit_text}' after '{before_text}': write the largest unit first, like 2h30m"
                ));
            }
        }
        previous = Some((unit, unit_text));
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| too_long(text))?;
    }
    Ok(total)
}

fn too_long(text: &str) -> String {
    format!("invalid duration '{text}': too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_each_range() {
        let cases = [
            (0, "0ms"),
            (850, "850ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (1_999, "1s"),
            (42_000, "42s"),
            (59_999, "59s"),
            (60_000, "1m"),
            (118_000, "1m58s"),
            (252_500, "4m12s"),
            (3_599_999, "59m59s"),
            (3_600_000, "1h"),
            (7_875_000, "2h11m"),
            (86_399_999, "23h59m"),
            (86_400_000, "1d"),
            (273_600_000, "3d4h"),
            (u64::MAX, "213503982334d14h"),
        ];
        for (ms, want) in cases {
            assert_eq!(format_duration_ms(ms), want, "ms = {ms}");
        }
    }

    #[test]
    fn parses_units_and_bare_seconds() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("2h30m", 9_000_000),
            ("1m30s", 90_000),
            ("1d", 86_400_000),
            ("1s500ms", 1_500),
            ("90", 90_000),
            ("0", 0),
            (" 10s ", 10_000),
            ("5M", 300_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "text = {text:?}");
        }
    }

    #[test]
    fn rejects_malformed_with_the_input_named() {
        for text in ["", "s", "5x", "1.5s", "-5s", "5 m", "m5", "10s5", "abc"] {
            assert_eq!(
                parse_duration(text),
                Err(format!(
                    "invalid duration '{text}': expected a number with a unit, like 30s, 5m, 500ms or 2h30m"
                )),
                "text = {text:?}"
            );
        }
    }

    #[test]
    fn rejects_repeated_and_out_of_order_units() {
        for (text, why) in [
            ("5m5m", "unit 'm' given twice"),
            ("1s1S", "unit 'S' given twice"),
            ("1h2m3m", "unit 'm' given twice"),
            (
                "30s1m",
                "'m' after 's': write the largest unit first, like 2h30m",
            ),
            (
                "500ms1s",
                "'s' after 'ms': write the largest unit first, like 2h30m",
            ),
            (
                "1m1h",
                "'h' after 'm': write the largest unit first, like 2h30m",
            ),
        ] {
            assert_eq!(
                parse_duration(text),
                Err(format!("invalid duration '{text}': {why}")),
                "text = {text:?}"
            );
        }
        assert_eq!(parse_duration("1d2h3m4s5ms"), Ok(93_784_005));
    }

    #[test]
    fn rejects_overflow() {
        let huge = "99999999999999999999";
        assert_eq!(
            parse_duration(huge),
            Err(format!("invalid duration '{huge}': too long"))
        );
        assert_eq!(
            parse_duration("18446744073709551615d"),
            Err("invalid duration '18446744073709551615d': too long".into())
        );
    }

    #[test]
    fn formatted_whole_units_parse_back() {
        for ms in [850, 42_000, 118_000, 3_600_000, 7_860_000, 273_600_000] {
            assert_eq!(parse_duration(&format_duration_ms(ms)), Ok(ms));
        }
    }
}
