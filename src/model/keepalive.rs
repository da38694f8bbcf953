//! Keepalive as data: a socket's settings and where they come from, the values to apply, predictions of a
//! silent peer's fate and the causes of a connection's death.

use serde::{Deserialize, Serialize};

use crate::model::{Connection, Settings, TcpState, TimerKind};

/// The kernel's default keepalive idle time (tcp_keepalive_time), 2 hours.
pub const DEFAULT_IDLE_S: u32 = 7200;

/// Where keepalive settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from the socket itself with getsockopt (on a duplicate of the owner's fd).
    Socket,
    /// Not read: assumed from the namespace's sysctls (the values a socket has unless it overrides them).
    Sysctl,
}

/// A socket's keepalive settings. With `source: Sysctl` they are assumed, not read: `enabled` is then inferred
/// from the timer (keepalive timer pending: on; ESTABLISHED or CLOSE_WAIT without any timer: off; otherwise
/// unknown) and
/// `user_timeout_ms` is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeepaliveSettings {
    /// SO_KEEPALIVE.
    pub enabled: Option<bool>,
    /// TCP_KEEPIDLE: idle seconds before the first probe.
    pub idle_s: Option<u32>,
    /// TCP_KEEPINTVL: seconds between probes.
    pub intvl_s: Option<u32>,
    /// TCP_KEEPCNT: unanswered probes before the reset.
    pub cnt: Option<u32>,
    /// TCP_USER_TIMEOUT in milliseconds; 0 = not set.
    pub user_timeout_ms: Option<u32>,
    pub source: Source,
}

impl KeepaliveSettings {
    /// Settings assumed from the namespace sysctls for this socket (see the type's doc for `enabled`).
    pub fn assumed(conn: &Connection, net: &Settings) -> Self {
        KeepaliveSettings {
            enabled: inferred_enabled(conn),
            idle_s: net.tcp_keepalive_time_s,
            intvl_s: net.tcp_keepalive_intvl_s,
            cnt: net.tcp_keepalive_probes,
            user_timeout_ms: None,
            source: Source::Sysctl,
        }
    }

    /// True when keepalive is on with the kernel's default 7200 s idle (a dead peer goes unnoticed for hours).
    pub fn default_idle(&self) -> bool {
        self.enabled == Some(true) && self.idle_s == Some(DEFAULT_IDLE_S)
    }
}

/// What the timer says about SO_KEEPALIVE when the option could not be read.
pub fn inferred_enabled(conn: &Connection) -> Option<bool> {
    match conn.timer.kind {
        TimerKind::Keepalive => Some(true),
        // The keepalive timer runs in both states whenever SO_KEEPALIVE is on, and the dump shows it when no
        // retransmit or window probe timer takes precedence.
        TimerKind::None if matches!(conn.state, TcpState::Established | TcpState::CloseWait) => {
            Some(false)
        }
        _ => None,
    }
}

/// Which kernel mechanism would reset the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeathBy {
    /// `keepalive_probes` unanswered probes.
    Keepalive,
    /// TCP_USER_TIMEOUT elapsed with a probe unanswered (keepalive) or data unacknowledged.
    UserTimeout,
    /// `tcp_retries2` retransmissions timed out.
    Retransmit,
    /// `tcp_retries2` zero-window probes unanswered.
    ZeroWindowProbe,
}

/// When the kernel acts on this socket if the peer stays silent from now on. Relative to the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// When the next keepalive probe really goes out; `None` when none will (keepalive off, data in flight,
    /// or the next timer expiry resets the socket instead).
    pub next_probe_ms: Option<u64>,
    /// When the kernel resets the connection if nothing more arrives; `None` = never (keepalive off and
    /// nothing in flight: a vanished peer goes unnoticed).
    pub dies_in_ms: Option<u64>,
    /// `dies_in_ms` is modelled from RTO backoff rather than computed from the keepalive rule, or depends on
    /// values that were missing.
    pub dies_in_estimate: bool,
    pub dies_by: Option<DeathBy>,
}

/// What ended a connection, as far as the evidence goes: each cause is given only when the data shows it (see
/// `analyze::predict::infer_cause`), `Unknown` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeathCause {
    /// Keepalive was on and its probes went unanswered up to `cnt` (or past TCP_USER_TIMEOUT).
    KeepaliveExhausted,
    /// Retransmissions reached the kernel's limit (tcp_retries2; for a connection its program had closed, the
    /// orphan limit; in SYN-SENT, the SYN retries) or ran past TCP_USER_TIMEOUT.
    RetransmitTimeout,
    /// Ended while keepalive probes or retransmissions were outstanding, before any limit: only an RST (a
    /// rebooted peer answers a probe with one) or a local abort (`ss -K`, a close with linger 0) ends it then.
    Reset,
    /// A FIN was exchanged: a TIME-WAIT entry took its place, or it was last seen in a closing state.
    Closed,
    /// Nothing tells: no probes or retransmissions outstanding and no closing state seen (a fast close, normal or
    /// reset, looks the same), or no destroy notification came (see `events`).
    Unknown,
}

/// Keepalive settings to apply: idle seconds before the first probe, seconds between probes, probes before
/// the reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveValues {
    pub idle_s: u32,
    pub intvl_s: u32,
    pub cnt: u32,
}

impl KeepaliveValues {
    /// What the TUI's `E` applies: first probe after a minute of silence, a dead peer noticed in 110 s.
    pub const DEFAULT: KeepaliveValues = KeepaliveValues {
        idle_s: 60,
        intvl_s: 10,
        cnt: 5,
    };

    /// Seconds of silence after which the kernel resets the connection if no probe is answered.
    pub fn dead_after_s(&self) -> u64 {
        u64::from(self.idle_s) + u64::from(self.intvl_s) * u64::from(self.cnt)
    }

    /// True when `read` (read back from the socket) shows these values and keepalive on.
    pub fn applied_in(&self, read: &KeepaliveSettings) -> bool {
        read.enabled == Some(true)
            && read.idle_s == Some(self.idle_s)
            && read.intvl_s == Some(self.intvl_s)
            && read.cnt == Some(self.cnt)
    }
}
