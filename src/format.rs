//! Keepalive settings in a few columns, as a person reads them.

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
