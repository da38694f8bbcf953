//! `--watch`: a snapshot as often as the pace allows, and the events between them (state changes, deaths) streamed
//! one per line, or as NDJSON.

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::collect;
use crate::config::Config;
use crate::escape::escape;
use crate::events::{Feed, SocketId, WatchEvent};
use crate::model::Owner;
use crate::output::json::escape_bidi;
use crate::pace::process_cpu;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Watches until the output closes or SIGTERM/SIGINT arrives (then it ends with status 0 after the line being
/// written): a snapshot as often as `pace` says, events written one per line (JSON with `ndjson`) and flushed at
/// once.
pub fn run(config: &Config, ndjson: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let filter = &config.filter;
    let opts = config.collect_options(filter);
    let mut pace = config.pace.clone();
    let stop = stop_on_signals().context("cannot install signal handlers")?;
    let mut feed = Feed::open(&opts.netns, &opts.proc_root);
    let mut collector = collect::Collector::new(opts);
    loop {
        let (started, cpu) = (Instant::now(), process_cpu());
        feed.drain();
        let snapshot = collector.collect().context("cannot take a snapshot")?;
        for e in &feed.step(&snapshot, filter, unix_ms()) {
            write_event(out, e, ndjson)?;
        }
        pace.record(process_cpu().saturating_sub(cpu));
        match stop.recv_timeout(pace.period().saturating_sub(started.elapsed())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // A signal, or the signal thread gone: stop between two refreshes, every line written whole.
            _ => return Ok(()),
        }
    }
}

/// One event as one line, flushed: the `--watch` text line, or with `ndjson` one JSON object whose bidirectional
/// formatting characters are escaped as in `--once --json` (a hostile process name cannot reorder the line).
pub fn write_event(out: &mut dyn Write, e: &WatchEvent, ndjson: bool) -> io::Result<()> {
    if ndjson {
        let json = serde_json::to_vec(e).map_err(io::Error::other)?;
        out.write_all(&escape_bidi(json))?;
        out.write_all(b"\n")?;
    } else {
        writeln!(out, "{}", human_line(e))?;
    }
    out.flush()
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

/// A channel that receives once SIGTERM or SIGINT arrives: they no longer end the process at once.
fn stop_on_signals() -> io::Result<mpsc::Receiver<()>> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kwatch-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(());
            }
        })?;
    Ok(rx)
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
        write_event(&mut out, &state_event(name), true).unwrap();
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
        write_event(&mut out, &state_event("evil\u{202e}x"), false).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains('\u{202e}'), "{line:?}");
    }
}
