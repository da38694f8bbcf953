//! Cell texts for the TUI: addresses, timers, queues, owners, markers. Pure; untrusted names escaped here.

use std::net::IpAddr;

use crate::duration::format_duration_ms;
use crate::escape::escape;
use crate::model::{Connection, Severity, Snapshot, TimerKind};

/// `10.0.0.5:443`, `[2001:db8::5]:22`, `*:443` for an unspecified address.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        a if a.is_unspecified() => format!("*:{port}"),
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{port}"),
            None => format!("[{a}]:{port}"),
        },
    }
}

/// The peer, or `*` for listeners.
pub fn peer(conn: &Connection) -> String {
    if conn.peer_port == 0 && conn.peer_addr.is_unspecified() {
        "*".to_string()
    } else {
        endpoint(conn.peer_addr, conn.peer_port)
    }
}

/// A timer word that reads without the manual.
pub fn timer_word(kind: TimerKind) -> &'static str {
    match kind {
        TimerKind::None => "-",
        TimerKind::Retransmit => "retrans",
        TimerKind::Keepalive => "keepalive",
        TimerKind::TimeWait => "timewait",
        TimerKind::ZeroWindowProbe => "persist",
    }
}

/// `keepalive 1h55m`, `retrans 25s`, `-`.
pub fn timer(conn: &Connection) -> String {
    match conn.timer.kind {
        TimerKind::None => "-".to_string(),
        kind => format!(
            "{} {}",
            timer_word(kind),
            format_duration_ms(u64::from(conn.timer.expires_ms))
        ),
    }
}

/// Probe or retransmit count; blank without a timer that counts.
pub fn probes(conn: &Connection) -> String {
    match conn.timer.kind {
        TimerKind::None | TimerKind::TimeWait => String::new(),
        _ => conn.timer.count.to_string(),
    }
}

/// Queue sizes in bytes, short: `0`, `2048`, `64K`, `12M`.
pub fn bytes_short(n: u64) -> String {
    const K: u64 = 1024;
    match n {
        n if n < 10 * K => n.to_string(),
        n if n < 10 * K * K => format!("{}K", n / K),
        n if n < 10 * K * K * K => format!("{}M", n / (K * K)),
        n => format!("{}G", n / (K * K * K)),
    }
}

pub fn idle(conn: &Connection) -> String {
    crate::tui::history::heard_ms(conn)
        .map(format_duration_ms)
        .unwrap_or_default()
}

/// `2231/java`, `811/nginx +1` for a socket shared by two processes, `?` when its owner could not be read, `…`
/// while owners are being read, empty when no process holds it.
pub fn owner(conn: &Connection, snap: &Snapshot) -> String {
    let Some(first) = conn.owners.first() else {
        return if snap.owners_pending && conn.inode != 0 {
            "…".to_string()
        } else if snap.owner_unknown(conn) {
            "?".to_string()
        } else {
            String::new()
        };
    };
    let mut pids: Vec<u32> = conn.owners.iter().map(|o| o.pid).collect();
    pids.dedup();
    let more = if pids.len() > 1 {
        format!(" +{}", pids.len() - 1)
    } else {
        String::new()
    };
    format!("{}/{}{more}", first.pid, escape(snap.comm(first.pid)))
}

/// The text marker that says "stuck" without colour, two columns wide: `!!` critical, `! ` warning, `~ ` info
/// ([`Severity::marker`], as in the `--once` table).
pub fn marker(sev: Option<Severity>) -> &'static str {
    match sev {
        Some(Severity::Critical) => "!!",
        Some(Severity::Warning) => "! ",
        Some(Severity::Info) => "~ ",
        None => "  ",
    }
}

/// Finding codes, worst first: `close_wait`, `dead_peer_suspect,retransmitting`.
pub fn finding_codes(conn: &Connection) -> String {
    let mut f: Vec<_> = conn.findings.iter().collect();
    f.sort_by_key(|f| std::cmp::Reverse(f.severity));
    f.iter()
        .map(|f| f.code.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Finding codes with the worst one's sentence, for wide terminals.
pub fn finding_long(conn: &Connection) -> String {
    let Some(worst) = conn.findings.iter().max_by_key(|f| f.severity) else {
        return String::new();
    };
    let others = conn.findings.len() - 1;
    let more = if others > 0 {
        format!(" (+{others})")
    } else {
        String::new()
    };
    let sentence = crate::analyze::explain(conn, &worst);
    format!("{}: {}{more}", worst.code.name(), escape(&sentence))
}

/// A percentage without decimals, empty when there is nothing to divide.
pub fn percent(share: Option<f64>) -> String {
    share
        .map(|s| format!("{:.0}%", s * 100.0))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_like_ss() {
        assert_eq!(endpoint("10.0.0.5".parse().unwrap(), 443), "10.0.0.5:443");
        assert_eq!(
            endpoint("2001:db8::5".parse().unwrap(), 22),
            "[2001:db8::5]:22"
        );
        assert_eq!(endpoint("::".parse().unwrap(), 22), "*:22");
        assert_eq!(
            endpoint("::ffff:10.0.0.1".parse().unwrap(), 80),
            "10.0.0.1:80"
        );
    }

    #[test]
    fn markers_are_the_severity_markers_padded_to_two_columns() {
        for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
            assert_eq!(marker(Some(sev)).trim_end(), sev.marker());
            assert_eq!(marker(Some(sev)).len(), 2);
        }
        assert_eq!(marker(Some(Severity::Info)), "~ ");
        assert_eq!(marker(None), "  ");
    }

    #[test]
    fn byte_counts_stay_short() {
        assert_eq!(bytes_short(0), "0");
        assert_eq!(bytes_short(2048), "2048");
        assert_eq!(bytes_short(65536), "64K");
        assert_eq!(bytes_short(50 * 1024 * 1024), "50M");
    }
}
