//! Values as a person reads them: keepalive settings in a few columns, byte counts in messages.

use crate::model::keepalive::{KeepaliveSettings, Source};

/// A socket's effective keepalive in a few columns, as the table and the live view show it:
///
/// - `300/100/3`: SO_KEEPALIVE on, TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT in seconds, seconds and probes, read from
///   the socket; `7200/75/9*`: the same assumed from the namespace sysctls (not read: `--no-sockopt`, no
///   permission); a value that is not known is `?`;
/// - `off`: SO_KEEPALIVE off (read, or shown by the dump: no timer pending on an ESTABLISHED or CLOSE-WAIT socket);
/// - `?`: not known whether it is on (not read, and another timer hides the keepalive timer);
/// - `-`: no settings (a state where keepalive does not matter, or a listener whose options were not read).
///
/// A LISTEN socket's settings are what the sockets it accepts inherit; a program may change them after
/// `accept()`, and those sockets' own rows show it.
pub fn compact(ka: Option<&KeepaliveSettings>) -> String {
    let Some(ka) = ka else {
        return "-".to_string();
    };
    match ka.enabled {
        None => "?".to_string(),
        Some(false) => "off".to_string(),
        Some(true) => {
            let v = |x: Option<u32>| x.map_or_else(|| "?".to_string(), |x| x.to_string());
            let assumed = match ka.source {
                Source::Socket => "",
                Source::Sysctl => ASSUMED_MARK,
            };
            format!("{}/{}/{}{assumed}", v(ka.idle_s), v(ka.intvl_s), v(ka.cnt))
        }
    }
}

/// What [`compact`] appends to settings assumed from the sysctls rather than read from the socket.
pub const ASSUMED_MARK: &str = "*";

/// Formats a byte count for messages: `512 B`, `2.0 KiB`, `1.4 KiB`, `3.5 MiB` (one decimal, truncated).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        unit += 1;
        scale *= 1024;
    }
    let tenths = (u128::from(bytes) * 10 / u128::from(scale)) as u64;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1448, "1.4 KiB"),
            (2150, "2.0 KiB"),
            (1024 * 1024 - 1, "1023.9 KiB"),
            (3 * 1024 * 1024 + 512 * 1024, "3.5 MiB"),
            (u64::MAX, "16777215.9 TiB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(format_bytes(bytes), want);
        }
    }
}
