//! What `kill` and `keepalive` act on and how it is said, pure: which matching sockets are targets and which are
//! left alone and why, a socket as a report line, the comparison of a read-back with what was set. The live view
//! plans its `K` and `E` with these too.

use std::collections::BTreeMap;

use crate::escape::escape;
use crate::filter::Filter;
use crate::model::keepalive::{KeepaliveSettings, KeepaliveValues};
use crate::model::{Connection, Snapshot, TcpState};

/// Matching sockets left out, counted by reason (a sentence fragment) and state.
pub type Tally = BTreeMap<&'static str, BTreeMap<TcpState, u64>>;

/// The sockets a command will act on, and the matching ones it leaves alone with the reason.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub targets: Vec<&'a Connection>,
    /// Left out by rule: not what the command is for (see [`Plan::skipped_lines`]).
    pub skipped: Tally,
    /// Listening sockets left out because the filter did not name `state:listen`: listed one by one.
    pub listeners: Vec<&'a Connection>,
    /// What the command is for but cannot reach (keepalive: no known owner): they count as failures.
    pub unreachable: Tally,
}

pub(super) fn count(tally: &mut Tally, reason: &'static str, state: TcpState) {
    *tally.entry(reason).or_default().entry(state).or_default() += 1;
}

/// `VERB 3 sockets (2 listen, 1 time-wait): REASON`, one line per reason.
pub(super) fn tally_lines(verb: &str, tally: &Tally) -> Vec<String> {
    tally
        .iter()
        .map(|(reason, states)| {
            let n: u64 = states.values().sum();
            let parts: Vec<String> = states
                .iter()
                .map(|(s, k)| format!("{k} {}", s.name()))
                .collect();
            format!(
                "{verb} {n} {} ({}): {reason}",
                if n == 1 { "socket" } else { "sockets" },
                parts.join(", ")
            )
        })
        .collect()
}

impl Plan<'_> {
    /// One line per reason: `skipped 3 sockets (2 listen, 1 time-wait): not ESTABLISHED or CLOSE-WAIT ...`,
    /// then `not reachable ...` lines for what counts as failed.
    pub fn skipped_lines(&self) -> Vec<String> {
        let mut lines = tally_lines("skipped", &self.skipped);
        lines.extend(tally_lines("cannot change", &self.unreachable));
        lines
    }

    /// The listeners left alone, the heading first, then one line each (at most [`LISTED_LISTENERS`]).
    pub fn listener_lines(&self, snapshot: &Snapshot) -> Vec<String> {
        let n = self.listeners.len();
        if n == 0 {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "skipped {n} listening {} (name state:listen to include {}): {SKIP_LISTEN}",
            plural(n),
            if n == 1 { "it" } else { "them" }
        )];
        lines.extend(
            self.listeners
                .iter()
                .take(LISTED_LISTENERS)
                .map(|c| format!("  {}", socket_line(c, snapshot))),
        );
        if n > LISTED_LISTENERS {
            lines.push(format!("  and {} more", n - LISTED_LISTENERS));
        }
        lines
    }

    /// Sockets the command was for: the targets and the ones it cannot reach.
    pub fn asked(&self) -> usize {
        self.targets.len() + tally_total(&self.unreachable)
    }
}

pub(super) fn tally_total(tally: &Tally) -> usize {
    tally.values().flat_map(|s| s.values()).sum::<u64>() as usize
}

pub(super) const SKIP_TIME_WAIT: &str =
    "TIME-WAIT sockets belong to no program and expire by themselves";
pub(super) const SKIP_LISTEN: &str =
    "killing a listener stops the service from accepting connections";
pub(super) const SKIP_STATE: &str = "keepalive only runs on ESTABLISHED and CLOSE-WAIT connections";
pub(super) const SKIP_NO_OWNER: &str =
    "no owning process known (orphaned, or its fds are unreadable: run as root)";
/// How many skipped listeners a preview names one by one.
pub(super) const LISTED_LISTENERS: usize = 20;

/// The sockets of `snapshot` that `filters` all match, in snapshot order.
pub fn select<'a>(snapshot: &'a Snapshot, filters: &[&Filter]) -> Vec<&'a Connection> {
    snapshot
        .connections
        .iter()
        .filter(|c| filters.iter().all(|f| f.matches_in(c, snapshot)))
        .collect()
}

/// Which of `matching` to kill: all but TIME-WAIT (no program holds those, and they expire by themselves), and
/// but listeners unless `listen_named` (the filter named `state:listen`).
pub fn plan_kill<'a>(matching: &[&'a Connection], listen_named: bool) -> Plan<'a> {
    let mut plan = Plan::default();
    for c in matching {
        if c.state == TcpState::TimeWait {
            count(&mut plan.skipped, SKIP_TIME_WAIT, c.state);
        } else if c.state == TcpState::Listen && !listen_named {
            plan.listeners.push(c);
        } else {
            plan.targets.push(c);
        }
    }
    plan
}

/// Which of `matching` to turn keepalive on for: ESTABLISHED and CLOSE-WAIT sockets with a known owner.
pub fn plan_keepalive<'a>(matching: &[&'a Connection]) -> Plan<'a> {
    let mut plan = Plan::default();
    for c in matching {
        if !matches!(c.state, TcpState::Established | TcpState::CloseWait) {
            count(&mut plan.skipped, SKIP_STATE, c.state);
        } else if c.owners.is_empty() {
            count(&mut plan.unreachable, SKIP_NO_OWNER, c.state);
        } else {
            plan.targets.push(c);
        }
    }
    plan
}

/// `ESTAB 127.0.0.1:41234 -> 127.0.0.1:5000 curl[1234]/fd 5`: one socket in a report line, names escaped.
pub fn socket_line(c: &Connection, snapshot: &Snapshot) -> String {
    let endpoint = |a: std::net::IpAddr, p: u16| match a {
        std::net::IpAddr::V4(a) => format!("{a}:{p}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{p}"),
    };
    let mut line = format!(
        "{} {} -> {}",
        c.state.label(),
        endpoint(c.local_addr, c.local_port),
        endpoint(c.peer_addr, c.peer_port)
    );
    for o in &c.owners {
        line.push_str(&format!(
            " {}[{}]/fd {}",
            escape(snapshot.comm(o.pid)),
            o.pid,
            o.fd
        ));
    }
    line
}

/// Whether an answer to `[y/N]` is a yes.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Whether either filter names the LISTEN state: then listeners are meant.
pub fn names_listen(filters: &[&Filter]) -> bool {
    filters.iter().any(|f| f.states.contains(&TcpState::Listen))
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "socket" } else { "sockets" }
}

/// How a read-back compares with what was set: `keepalive on, idle 60s intvl 10s cnt 5`, plus what differs.
pub fn readback_text(v: KeepaliveValues, read: &KeepaliveSettings) -> String {
    let show = |x: Option<u32>| x.map_or("?".to_string(), |x| x.to_string());
    let mut text = format!(
        "keepalive {}, idle {}s intvl {}s cnt {}",
        match read.enabled {
            Some(true) => "on",
            Some(false) => "OFF",
            None => "?",
        },
        show(read.idle_s),
        show(read.intvl_s),
        show(read.cnt)
    );
    if !v.applied_in(read) {
        text.push_str(" (differs from what was set)");
    }
    if let Some(ms) = read.user_timeout_ms.filter(|ms| *ms > 0) {
        text.push_str(&format!(
            "; TCP_USER_TIMEOUT {ms} ms also applies: the connection may be reset sooner"
        ));
    }
    text
}
