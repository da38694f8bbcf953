//! The line format of events, as `--watch` streams them and `kwatch replay --events` writes them back: a text
//! line for people or one NDJSON object, every string from /proc escaped.

use std::io::{self, Write};
use std::net::IpAddr;

use crate::escape::escape;
use crate::events::{SocketId, WatchEvent};
use crate::model::Owner;
use crate::output::json::escape_bidi;

/// One event as one line, not flushed: [`human_line`], or with `ndjson` one JSON object whose bidirectional
/// formatting characters are escaped as in `--once --json` (a hostile process name cannot reorder the line).
pub fn write_line(out: &mut dyn Write, e: &WatchEvent, ndjson: bool) -> io::Result<()> {
    if ndjson {
        let json = serde_json::to_vec(e).map_err(io::Error::other)?;
        out.write_all(&escape_bidi(json))?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", human_line(e))
    }
}

/// One event as a line for people: `04:55:01 destroy 192.0.2.1:40000 > 192.0.2.2:9100 1234/app ...`.
pub fn human_line(e: &WatchEvent) -> String {
    let clock = |ms: u64| {
        let s = ms / 1000 % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    };
    let sock = |s: &SocketId| {
        let ep = |a: IpAddr, p: u16| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        format!(
            "{} > {}",
            ep(s.local_addr, s.local_port),
            ep(s.peer_addr, s.peer_port)
        )
    };
    let who = |owners: &[Owner], comm: &Option<String>| match (owners.first(), comm) {
        (Some(o), Some(c)) => format!(" {}/{}", o.pid, escape(c)),
        (Some(o), None) => format!(" {}", o.pid),
        _ => String::new(),
    };
    match e {
        WatchEvent::Start {
            time_unix_ms,
            sockets,
            destroy_events,
        } => format!(
            "{} watching {sockets} sockets{}",
            clock(*time_unix_ms),
            if *destroy_events {
                ""
            } else {
                " (no destroy events)"
            }
        ),
        WatchEvent::State {
            time_unix_ms,
            socket,
            owners,
            comm,
            from,
            to,
        } => format!(
            "{} state {}{} {} -> {}",
            clock(*time_unix_ms),
            sock(socket),
            who(owners, comm),
            from.0.name(),
            to.0.name()
        ),
        WatchEvent::Destroy {
            time_unix_ms,
            socket,
            owners,
            comm,
            last_state,
            probes,
            retransmits,
            cause,
        } => format!(
            "{} destroy {}{} {} (last {}, {} probes, {} retransmits)",
            clock(*time_unix_ms),
            sock(socket),
            who(owners, comm),
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            last_state.0.name(),
            probes.unwrap_or(0),
            retransmits.unwrap_or(0)
        ),
        WatchEvent::Lost {
            time_unix_ms,
            notifications,
            total,
        } => format!(
            "{} lost {notifications} destroy notifications ({total} since the start): deaths in that time may be \
             missing",
            clock(*time_unix_ms)
        ),
        WatchEvent::Warning {
            time_unix_ms,
            message,
        } => format!("{} warning: {}", clock(*time_unix_ms), escape(message)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{StateName, TcpState};

    fn state_event(comm: &str) -> WatchEvent {
        WatchEvent::State {
            time_unix_ms: 1,
            socket: SocketId {
                cookie: 7,
                family: crate::model::Family::Ipv4,
                local_addr: [127, 0, 0, 1].into(),
                local_port: 9000,
                peer_addr: [127, 0, 0, 1].into(),
                peer_port: 40000,
            },
            owners: Vec::new(),
            comm: Some(comm.to_string()),
            from: StateName(TcpState::Established),
            to: StateName(TcpState::CloseWait),
        }
    }

    #[test]
    fn an_ndjson_line_escapes_bidirectional_characters_and_decodes_to_the_same_name() {
        let name = "evil\u{202e}gnp.exe\u{2066}";
        let mut out = Vec::new();
        write_line(&mut out, &state_event(name), true).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        assert!(
            !line.contains('\u{202e}') && !line.contains('\u{2066}'),
            "{line:?}"
        );
        assert!(
            line.contains("\\u202e") && line.contains("\\u2066"),
            "{line:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["comm"], name);
    }

    #[test]
    fn human_lines_name_the_socket_its_owner_and_what_happened() {
        let state = WatchEvent::State {
            time_unix_ms: 1,
            socket: SocketId {
                cookie: 1,
                family: crate::model::Family::Ipv4,
                local_addr: [192, 0, 2, 1].into(),
                local_port: 40001,
                peer_addr: [192, 0, 2, 2].into(),
                peer_port: 9100,
            },
            owners: vec![Owner { pid: 7, fd: 3 }],
            comm: Some("app".to_string()),
            from: StateName(TcpState::Established),
            to: StateName(TcpState::CloseWait),
        };
        let line = human_line(&state);
        assert!(
            line.contains("192.0.2.1:40001 > 192.0.2.2:9100 7/app established -> close-wait"),
            "{line}"
        );
        let lost = WatchEvent::Lost {
            time_unix_ms: 1,
            notifications: 3,
            total: 5,
        };
        assert!(
            human_line(&lost).contains("lost 3 destroy notifications (5 since the start)"),
            "{}",
            human_line(&lost)
        );
    }

    #[test]
    fn a_text_line_shows_no_bidirectional_characters_either() {
        let mut out = Vec::new();
        write_line(&mut out, &state_event("evil\u{202e}x"), false).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains('\u{202e}'), "{line:?}");
    }
}
