//! How connections change and die, as events: destroy notifications (sock_diag multicast, what `ss -E` reads)
//! of every inspected network namespace joined with what earlier snapshots saw of each socket, as events streamed
//! one per line.
//!
//! The kernel announces a socket's destruction when it is freed: soon after for a socket its program already
//! closed (from a work queue, at times seconds late), but only at `close()` for one whose fd a program still
//! holds after the kernel ended the connection. That earlier moment shows as a state event to `close`, said only
//! when /proc shows the fd still held ([`tracker`]). Only sockets kwatch had seen in a snapshot are reported; their
//! owners, last state and keepalive settings come from that snapshot, the final probe and retransmit counts from
//! the destroy message's tcp_info.

pub mod feed;
pub mod listener;
pub mod tracker;

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::escape::escape;
use crate::model::keepalive::DeathCause;
use crate::model::{Connection, Family, Owner};
use crate::output::json::{StateName, escape_bidi};

pub use feed::{Evidence, Feed};
pub use tracker::{NOTIFICATION_WAIT_MS, Tracker};

/// One line of `kwatch --watch --ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Watching started: the first snapshot was taken.
    Start {
        time_unix_ms: u64,
        /// Sockets watched (after filters).
        sockets: u64,
        /// Whether destroy notifications are received (false: no subscription worked; see the warnings).
        destroy_events: bool,
    },
    /// A watched socket changed state; `to` is `close` when a socket left the dump while /proc shows a program
    /// still holding its fd (the kernel ended it under the program).
    State {
        time_unix_ms: u64,
        #[serde(flatten)]
        socket: SocketId,
        owners: Vec<Owner>,
        comm: Option<String>,
        from: StateName,
        to: StateName,
    },
    /// A socket kwatch had seen was destroyed (freed) by the kernel, or left the dump unheld and no notification
    /// came within [`NOTIFICATION_WAIT_MS`] (cause `unknown`, no counts).
    Destroy {
        time_unix_ms: u64,
        #[serde(flatten)]
        socket: SocketId,
        /// Owners when kwatch last saw the socket.
        owners: Vec<Owner>,
        comm: Option<String>,
        /// The state kwatch last saw in a dump.
        last_state: StateName,
        /// Unanswered keepalive or window probes in the final tcp_info.
        probes: Option<u8>,
        /// Consecutive retransmits in the final tcp_info.
        retransmits: Option<u8>,
        cause: DeathCause,
    },
    /// Destroy notifications were lost (the kernel's buffer or kwatch's queue was full): deaths in that time may
    /// be missing or reported with cause `unknown`.
    Lost {
        time_unix_ms: u64,
        /// Lost since the previous refresh.
        notifications: u64,
        /// Lost since watching started.
        total: u64,
    },
    /// Something went wrong but watching goes on (e.g. no subscription in a namespace).
    Warning { time_unix_ms: u64, message: String },
}

/// Which socket an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketId {
    pub cookie: u64,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub peer_addr: IpAddr,
    pub peer_port: u16,
}

impl SocketId {
    fn of(c: &Connection) -> SocketId {
        SocketId {
            cookie: c.cookie,
            family: c.family,
            local_addr: c.local_addr,
            local_port: c.local_port,
            peer_addr: c.peer_addr,
            peer_port: c.peer_port,
        }
    }
}

/// One event as one line, not flushed: [`human_line`], or with `ndjson` one JSON object whose bidirectional
/// formatting characters are escaped as in `--once --json` (a hostile process name cannot reorder the line). The
/// line format of `--watch` and of `kwatch replay --events`.
pub fn write_line(out: &mut dyn Write, e: &Event, ndjson: bool) -> io::Result<()> {
    if ndjson {
        let json = serde_json::to_vec(e).map_err(io::Error::other)?;
        out.write_all(&escape_bidi(json))?;
        out.write_all(b"\n")
    } else {
        writeln!(out, "{}", human_line(e))
    }
}

/// One event as a line for people: `04:55:01 destroy 192.0.2.1:40000 > 192.0.2.2:9100 1234/app ...`.
pub fn human_line(e: &Event) -> String {
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
        Event::Start {
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
        Event::State {
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
        Event::Destroy {
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
        Event::Lost {
            time_unix_ms,
            notifications,
            total,
        } => format!(
            "{} lost {notifications} destroy notifications ({total} since the start): deaths in that time may be \
             missing",
            clock(*time_unix_ms)
        ),
        Event::Warning {
            time_unix_ms,
            message,
        } => format!("{} warning: {}", clock(*time_unix_ms), escape(message)),
    }
}
