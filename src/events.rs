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

use std::net::IpAddr;

use serde::Serialize;

use crate::model::keepalive::DeathCause;
use crate::model::{Connection, Family, Owner, StateName};

pub use feed::{Evidence, Feed};
pub use tracker::{NOTIFICATION_WAIT_MS, Tracker, Unchanged};

/// One line of `kwatch --watch --ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
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
