//! Pure analysis: which connections are stuck and why, and the per-process rollup (per service in `services`).
//!
//! The kernel keeps no timestamp of state changes, so ages come from `tcp_info`'s "milliseconds since the last
//! data / ack was received or sent". Nothing here reads a clock: a snapshot analyzes the same way every time.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::format_duration_ms;
use crate::format::format_bytes;

pub mod predict;
pub mod services;
use crate::model::{
    Connection, Finding, FindingCode, Findings, ProcessFinding, Severity, Snapshot, TcpState,
    TimerKind,
};

/// When a socket counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// CLOSE_WAIT younger than this (judged from tcp_info) is not flagged.
    pub close_wait_after_ms: u64,
    /// ESTABLISHED without keepalive and idle longer than this is flagged `no_keepalive_idle`.
    pub idle_after_ms: u64,
    /// Retransmit timer with at least this many retransmits (or this much backoff) is flagged; twice as many is
    /// critical. Values below 1 act as 1: a retransmit timer with count 0 is normal (tail loss probes use it).
    pub retransmit_min: u32,
}

impl Default for Thresholds {
    /// 30 s in CLOSE_WAIT, 5 min idle without keepalive, 3 retransmits.
    fn default() -> Self {
        Thresholds {
            close_wait_after_ms: 30_000,
            idle_after_ms: 300_000,
            retransmit_min: 3,
        }
    }
}

/// Findings for one socket, worst first (ties in `FindingCode` order). Several may apply at once. Each is
/// explained in one sentence by [`explain`].
///
/// - `close_wait`: CLOSE_WAIT for at least `close_wait_after_ms`. The age is the newest of `last_ack_recv_ms` and
///   `last_data_recv_ms` (the FIN arrived no later than that, so the age is a lower bound). Without either value
///   (no tcp_info) the age cannot be judged and the socket is not flagged. Critical when `recv_q > 0` (the
///   program stopped reading), warning when 0 (it forgot `close()`).
/// - `dead_peer_suspect`: keepalive timer with unanswered probes. Critical.
/// - `no_keepalive_idle`: ESTABLISHED, no timer pending (SO_KEEPALIVE off) and no traffic either way (data
///   received, ack received, data sent) for at least `idle_after_ms`. Info. Not flagged without tcp_info.
/// - `retransmitting`: retransmit timer with `count` or tcp_info `backoff` at least `retransmit_min`. Warning,
///   critical from twice `retransmit_min`.
/// - `zero_window`: zero-window probe timer with unanswered probes: the peer is alive but not reading. Warning.
pub fn find_stuck(conn: &Connection, t: &Thresholds) -> Findings {
    let checks = [
        close_wait(conn, t).map(|s| (FindingCode::CloseWait, s)),
        dead_peer(conn).map(|s| (FindingCode::DeadPeerSuspect, s)),
        idle_without_keepalive(conn, t).map(|s| (FindingCode::NoKeepaliveIdle, s)),
        retransmitting(conn, t).map(|s| (FindingCode::Retransmitting, s)),
        zero_window(conn).map(|s| (FindingCode::ZeroWindow, s)),
    ];
    checks
        .into_iter()
        .flatten()
        .map(|(code, severity)| Finding { code, severity })
        .collect()
}

/// Fills `findings` of every connection in the snapshot (replacing what was there).
pub fn analyze(snapshot: &mut Snapshot, t: &Thresholds) {
    for conn in &mut snapshot.connections {
        conn.findings = find_stuck(conn, t);
    }
}

/// The plain sentence that explains `finding` on `conn`: `idle 2h with SO_KEEPALIVE off; …`.
///
/// Written when shown, from the socket itself (no threshold appears in it), rather than kept with every finding
/// of every snapshot.
pub fn explain(conn: &Connection, finding: &Finding) -> String {
    match finding.code {
        FindingCode::CloseWait => explain_close_wait(conn),
        FindingCode::DeadPeerSuspect => explain_dead_peer(conn),
        FindingCode::NoKeepaliveIdle => explain_idle(conn),
        FindingCode::Retransmitting => explain_retransmitting(conn),
        FindingCode::ZeroWindow => explain_zero_window(conn),
        // Process-level codes: explained per process (`ProcessSummary::process_findings`).
        FindingCode::KeepaliveOff | FindingCode::KeepaliveDefault => {
            finding.code.name().to_string()
        }
    }
}

fn process_finding(code: FindingCode, severity: Severity, message: String) -> ProcessFinding {
    ProcessFinding {
        code,
        severity,
        message,
    }
}

fn close_wait(conn: &Connection, t: &Thresholds) -> Option<Severity> {
    if conn.state != TcpState::CloseWait || conn.heard_ms()? < t.close_wait_after_ms {
        return None;
    }
    // The peer's FIN takes one sequence number: recv_q counts it until the program reads end-of-stream.
    Some(match conn.recv_q {
        0 => Severity::Warning,
        _ => Severity::Critical,
    })
}

fn explain_close_wait(conn: &Connection) -> String {
    let closed = match conn.heard_ms() {
        Some(age) => format!(
            "peer closed at least {} ago and the program has not closed its end",
            format_duration_ms(age)
        ),
        None => "peer closed and the program has not closed its end".to_string(),
    };
    match conn.recv_q {
        0 => format!("{closed}; it read to the end: a missing close()?"),
        1 => format!("{closed}; it has not read since: it stopped reading"),
        n => format!(
            "{closed}; {} unread: it stopped reading",
            format_bytes(u64::from(n - 1))
        ),
    }
}

fn dead_peer(conn: &Connection) -> Option<Severity> {
    (conn.timer.kind == TimerKind::Keepalive && conn.timer.count > 0).then_some(Severity::Critical)
}

fn explain_dead_peer(conn: &Connection) -> String {
    let n = conn.timer.count;
    let probes = if n == 1 {
        "1 keepalive probe".to_string()
    } else {
        format!("{n} keepalive probes")
    };
    let heard = match conn.heard_ms() {
        Some(ms) => format!(", nothing received for {}", format_duration_ms(ms)),
        None => String::new(),
    };
    format!("{probes} unanswered{heard}; the peer may be gone")
}

fn idle_without_keepalive(conn: &Connection, t: &Thresholds) -> Option<Severity> {
    if conn.state != TcpState::Established || conn.timer.kind != TimerKind::None {
        return None;
    }
    (conn.quiet_ms()? >= t.idle_after_ms).then_some(Severity::Info)
}

fn explain_idle(conn: &Connection) -> String {
    format!(
        "idle {} with SO_KEEPALIVE off; a half-open connection here would never be noticed",
        format_duration_ms(conn.quiet_ms().unwrap_or(0))
    )
}

/// tcp_info's retransmission backoff, 0 without tcp_info.
fn backoff(conn: &Connection) -> u32 {
    conn.tcp_info
        .as_ref()
        .and_then(crate::model::TcpInfo::backoff)
        .map_or(0, u32::from)
}

fn retransmitting(conn: &Connection, t: &Thresholds) -> Option<Severity> {
    if conn.timer.kind != TimerKind::Retransmit {
        return None;
    }
    let min = t.retransmit_min.max(1);
    let n = u32::from(conn.timer.count).max(backoff(conn));
    if n < min {
        return None;
    }
    Some(if n >= min.saturating_mul(2) {
        Severity::Critical
    } else {
        Severity::Warning
    })
}

fn explain_retransmitting(conn: &Connection) -> String {
    let backoff = backoff(conn);
    let next = format_duration_ms(u64::from(conn.timer.expires_ms));
    if conn.state == TcpState::SynSent {
        format!(
            "SYN retransmitted {} times with no answer (backoff {backoff}); next try in {next}",
            conn.timer.count
        )
    } else {
        format!(
            "{} retransmits without an ack (backoff {backoff}); next in {next}; {} unacknowledged",
            conn.timer.count,
            format_bytes(u64::from(conn.send_q))
        )
    }
}

fn zero_window(conn: &Connection) -> Option<Severity> {
    (conn.timer.kind == TimerKind::ZeroWindowProbe && conn.timer.count > 0)
        .then_some(Severity::Warning)
}

fn explain_zero_window(conn: &Connection) -> String {
    let n = conn.timer.count;
    let probes = if n == 1 {
        "1 window probe".to_string()
    } else {
        format!("{n} window probes")
    };
    format!(
        "peer's receive window is zero after {probes}; {} waiting to be sent: the peer is alive but not reading",
        format_bytes(u64::from(conn.send_q))
    )
}

/// A process is flagged `keepalive_off` / `keepalive_default` when at least this percentage of its ESTABLISHED
/// sockets has keepalive off / relies on the default idle.
pub const KEEPALIVE_SHARE_PERCENT: u64 = 50;

/// One process's sockets and findings, for the rollup (JSON `processes`, the TUI processes view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: u32,
    /// Raw `comm`, or `?` when the process is not in the snapshot (escape before display).
    pub comm: String,
    pub user: Option<String>,
    /// Distinct sockets this process holds (a socket held through two fds counts once).
    pub sockets: u32,
    pub by_state: BTreeMap<TcpState, u32>,
    /// How many of its sockets carry each finding code.
    pub findings: BTreeMap<FindingCode, u32>,
    /// ESTABLISHED sockets with SO_KEEPALIVE off (read from the socket, or inferred: no timer pending), of
    /// `by_state[established]`.
    pub established_without_keepalive: u32,
    /// ESTABLISHED sockets with keepalive on and the default 7200 s idle: a vanished peer goes unnoticed for
    /// over two hours.
    #[serde(default)]
    pub keepalive_default: u32,
    /// Findings about the process as a whole (`keepalive_off`, `keepalive_default`), not counted in
    /// `findings` or the severities below.
    #[serde(default)]
    pub process_findings: Vec<ProcessFinding>,
    /// Dead TCP sockets it still holds fds of (distinct sockets; see `Snapshot::held_dead`).
    #[serde(default)]
    pub held_dead_sockets: u32,
    /// Findings on its sockets by severity.
    pub critical: u32,
    pub warning: u32,
    pub info: u32,
    /// The service it belongs to, when it has other members ([`services::attach`]); `None` alone or not looked up.
    #[serde(default)]
    pub service: Option<services::ServiceRef>,
}

impl ProcessSummary {
    fn new(pid: u32, snapshot: &Snapshot) -> Self {
        ProcessSummary {
            pid,
            comm: snapshot.comm(pid).to_string(),
            user: snapshot.processes.get(&pid).and_then(|p| p.user.clone()),
            sockets: 0,
            by_state: BTreeMap::new(),
            findings: BTreeMap::new(),
            established_without_keepalive: 0,
            keepalive_default: 0,
            process_findings: Vec::new(),
            held_dead_sockets: 0,
            critical: 0,
            warning: 0,
            info: 0,
            service: None,
        }
    }

    fn add(&mut self, conn: &Connection) {
        self.sockets += 1;
        *self.by_state.entry(conn.state).or_default() += 1;
        if conn.state == TcpState::Established {
            let enabled = conn
                .keepalive
                .as_deref()
                .and_then(|k| k.enabled)
                .unwrap_or(conn.timer.kind != TimerKind::None);
            if !enabled {
                self.established_without_keepalive += 1;
            } else if conn
                .keepalive
                .as_deref()
                .is_some_and(crate::model::keepalive::KeepaliveSettings::default_idle)
            {
                self.keepalive_default += 1;
            }
        }
        for f in &conn.findings {
            *self.findings.entry(f.code).or_default() += 1;
            match f.severity {
                Severity::Critical => self.critical += 1,
                Severity::Warning => self.warning += 1,
                Severity::Info => self.info += 1,
            }
        }
    }

    /// Adds `keepalive_off` / `keepalive_default` when at least [`KEEPALIVE_SHARE_PERCENT`] of its ESTABLISHED
    /// sockets qualify.
    fn judge_keepalive(&mut self) {
        let est = self.established();
        let high = |n: u32| n > 0 && u64::from(n) * 100 >= u64::from(est) * KEEPALIVE_SHARE_PERCENT;
        let off = self.established_without_keepalive;
        if high(off) {
            self.process_findings.push(process_finding(
                FindingCode::KeepaliveOff,
                Severity::Info,
                format!(
                    "{off} of {est} ESTABLISHED sockets have SO_KEEPALIVE off: a peer that vanishes without a \
                     word leaves them open forever"
                ),
            ));
        }
        let default = self.keepalive_default;
        if high(default) {
            self.process_findings.push(process_finding(
                FindingCode::KeepaliveDefault,
                Severity::Info,
                format!(
                    "{default} of {est} ESTABLISHED sockets rely on the default 7200s keepalive idle: a vanished \
                     peer goes unnoticed for over 2 hours (2h11m15s with the default 75s x 9 probes)"
                ),
            ));
        }
    }

    /// Sockets of this process in ESTABLISHED.
    pub fn established(&self) -> u32 {
        self.by_state
            .get(&TcpState::Established)
            .copied()
            .unwrap_or(0)
    }

    /// Share of its ESTABLISHED sockets, in percent (rounded down), or `None` without ESTABLISHED sockets.
    pub fn established_percent(&self, n: u32) -> Option<u32> {
        let est = self.established();
        (est > 0).then(|| (u64::from(n) * 100 / u64::from(est)) as u32)
    }

    /// Sockets of this process in CLOSE_WAIT.
    pub fn close_wait(&self) -> u32 {
        self.by_state
            .get(&TcpState::CloseWait)
            .copied()
            .unwrap_or(0)
    }

    /// The worst severity among its findings.
    pub fn worst(&self) -> Option<Severity> {
        if self.critical > 0 {
            Some(Severity::Critical)
        } else if self.warning > 0 {
            Some(Severity::Warning)
        } else if self.info > 0 {
            Some(Severity::Info)
        } else {
            None
        }
    }
}

/// Per-process rollup over the given connections, worst first: most critical findings, then warnings, then
/// CLOSE_WAIT sockets, then sockets; ties by pid. Reads `findings`, so run [`analyze`] first.
///
/// Sockets without an owner (TIME_WAIT, orphans, sockets of unreadable processes) belong to no process and are
/// not in the rollup; count them from the connections. Every process holding a dead socket
/// (`snapshot.held_dead`) is in it, whatever `conns` are.
pub fn rollup<'a>(
    snapshot: &Snapshot,
    conns: impl IntoIterator<Item = &'a Connection>,
) -> Vec<ProcessSummary> {
    let mut by_pid: BTreeMap<u32, ProcessSummary> = BTreeMap::new();
    for conn in conns {
        // A process holding the socket through two fds counts it once.
        let mut pids: Vec<u32> = conn.owners.iter().map(|o| o.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            by_pid
                .entry(pid)
                .or_insert_with(|| ProcessSummary::new(pid, snapshot))
                .add(conn);
        }
    }
    // Held dead sockets are in no dump, so no filter on sockets applies to them.
    let mut held: Vec<(u32, u32)> = snapshot
        .held_dead
        .iter()
        .map(|g| (g.pid, g.inode))
        .collect();
    held.sort_unstable();
    held.dedup();
    for (pid, _) in held {
        by_pid
            .entry(pid)
            .or_insert_with(|| ProcessSummary::new(pid, snapshot))
            .held_dead_sockets += 1;
    }
    let mut out: Vec<ProcessSummary> = by_pid.into_values().collect();
    for p in &mut out {
        p.judge_keepalive();
    }
    out.sort_by_key(|p| {
        (
            Reverse(p.critical),
            Reverse(p.warning),
            Reverse(p.close_wait()),
            Reverse(p.sockets),
            p.pid,
        )
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::model::{Owner, Process, TcpInfo, Timer};

    const T: Thresholds = Thresholds {
        close_wait_after_ms: 30_000,
        idle_after_ms: 300_000,
        retransmit_min: 3,
    };

    fn conn(state: TcpState, kind: TimerKind, count: u8) -> Connection {
        Connection {
            state,
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            local_port: 40000,
            peer_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
            peer_port: 5432,
            inode: 100,
            uid: 1000,
            timer: Timer {
                kind,
                expires_ms: 5_000,
                count,
            },
            tcp_info: Some(TcpInfo::default()),
            ..crate::testing::conn()
        }
    }

    /// tcp_info with every "since last ..." age set to `ms`.
    fn aged(mut c: Connection, ms: u32) -> Connection {
        let info = c.tcp_info.get_or_insert_with(TcpInfo::default);
        info.set_last_data_recv_ms(Some(ms));
        info.set_last_ack_recv_ms(Some(ms));
        info.set_last_data_sent_ms(Some(ms));
        c
    }

    /// The findings in the order they are read back.
    fn stuck(c: &Connection) -> Vec<Finding> {
        find_stuck(c, &T).iter().collect()
    }

    fn codes(c: &Connection) -> Vec<(FindingCode, Severity)> {
        find_stuck(c, &T)
            .iter()
            .map(|f| (f.code, f.severity))
            .collect()
    }

    #[test]
    fn default_thresholds_are_the_documented_ones() {
        assert_eq!(Thresholds::default(), T);
    }

    #[test]
    fn close_wait_boundary_is_inclusive() {
        let c = conn(TcpState::CloseWait, TimerKind::None, 0);
        assert_eq!(codes(&aged(c.clone(), 29_999)), vec![]);
        assert_eq!(
            codes(&aged(c, 30_000)),
            vec![(FindingCode::CloseWait, Severity::Warning)]
        );
    }

    #[test]
    fn close_wait_severity_follows_unread_bytes() {
        let mut c = aged(conn(TcpState::CloseWait, TimerKind::None, 0), 252_000);
        let f = stuck(&c);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(
            explain(&c, &f[0]),
            "peer closed at least 4m12s ago and the program has not closed its end; it read to the end: a missing close()?"
        );
        // recv_q counts the FIN until the program reads end-of-stream: 1 means only the FIN is unread.
        c.recv_q = 1;
        let f = stuck(&c);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(
            explain(&c, &f[0]),
            "peer closed at least 4m12s ago and the program has not closed its end; it has not read since: it stopped reading"
        );
        c.recv_q = 2049;
        let f = stuck(&c);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(
            explain(&c, &f[0]),
            "peer closed at least 4m12s ago and the program has not closed its end; 2.0 KiB unread: it stopped reading"
        );
    }

    #[test]
    fn close_wait_age_is_the_newest_received_event() {
        let mut c = conn(TcpState::CloseWait, TimerKind::None, 0);
        let info = c.tcp_info.as_mut().unwrap();
        // Data long ago, but an ack 10s ago: the FIN may have come with that ack, so it is too young to judge.
        info.set_last_data_recv_ms(Some(600_000));
        info.set_last_ack_recv_ms(Some(10_000));
        info.set_last_data_sent_ms(Some(900_000));
        assert_eq!(codes(&c), vec![]);
        // Only one of the two present: that one is used.
        let info = c.tcp_info.as_mut().unwrap();
        info.set_last_ack_recv_ms(None);
        assert_eq!(codes(&c), vec![(FindingCode::CloseWait, Severity::Warning)]);
    }

    #[test]
    fn close_wait_without_tcp_info_is_not_judged() {
        let mut c = conn(TcpState::CloseWait, TimerKind::None, 0);
        c.recv_q = 100;
        c.tcp_info = None;
        assert_eq!(codes(&c), vec![]);
        // tcp_info too short to hold the ages: same.
        c.tcp_info = Some(TcpInfo::default());
        assert_eq!(codes(&c), vec![]);
    }

    #[test]
    fn close_wait_only_in_close_wait() {
        for state in TcpState::ALL
            .into_iter()
            .filter(|s| *s != TcpState::CloseWait)
        {
            let c = aged(conn(state, TimerKind::Keepalive, 0), 600_000);
            assert!(
                !codes(&c)
                    .iter()
                    .any(|(code, _)| *code == FindingCode::CloseWait),
                "{state}"
            );
        }
    }

    #[test]
    fn dead_peer_needs_unanswered_keepalive_probes() {
        let c = aged(
            conn(TcpState::Established, TimerKind::Keepalive, 0),
            7_200_000,
        );
        assert_eq!(codes(&c), vec![]);
        let c = aged(
            conn(TcpState::Established, TimerKind::Keepalive, 1),
            7_275_000,
        );
        let f = stuck(&c);
        assert_eq!(
            (f[0].code, f[0].severity),
            (FindingCode::DeadPeerSuspect, Severity::Critical)
        );
        assert_eq!(
            explain(&c, &f[0]),
            "1 keepalive probe unanswered, nothing received for 2h1m; the peer may be gone"
        );
        let mut c = conn(TcpState::Established, TimerKind::Keepalive, 3);
        c.tcp_info = None;
        assert_eq!(
            explain(&c, &stuck(&c)[0]),
            "3 keepalive probes unanswered; the peer may be gone"
        );
        // Probes counted by another timer kind are not keepalive probes.
        let c = conn(TcpState::Established, TimerKind::TimeWait, 3);
        assert_eq!(codes(&c), vec![]);
    }

    #[test]
    fn idle_without_keepalive_boundary_and_direction() {
        let c = conn(TcpState::Established, TimerKind::None, 0);
        assert_eq!(codes(&aged(c.clone(), 299_999)), vec![]);
        let idle = aged(c.clone(), 7_200_000);
        let f = stuck(&idle);
        assert_eq!(
            (f[0].code, f[0].severity),
            (FindingCode::NoKeepaliveIdle, Severity::Info)
        );
        assert_eq!(
            explain(&idle, &f[0]),
            "idle 2h with SO_KEEPALIVE off; a half-open connection here would never be noticed"
        );
        // Sending counts as traffic: a socket that only sends is not idle.
        let mut sending = aged(c.clone(), 7_200_000);
        sending
            .tcp_info
            .as_mut()
            .unwrap()
            .set_last_data_sent_ms(Some(1_000));
        assert_eq!(codes(&sending), vec![]);
        // Receiving acks counts as well.
        let mut acked = aged(c.clone(), 7_200_000);
        acked
            .tcp_info
            .as_mut()
            .unwrap()
            .set_last_ack_recv_ms(Some(1_000));
        assert_eq!(codes(&acked), vec![]);
        // No tcp_info: cannot judge.
        let mut blind = c;
        blind.tcp_info = None;
        assert_eq!(codes(&blind), vec![]);
    }

    #[test]
    fn idle_only_when_established_without_timer() {
        let keepalive = aged(
            conn(TcpState::Established, TimerKind::Keepalive, 0),
            7_200_000,
        );
        assert_eq!(codes(&keepalive), vec![]);
        let listen = aged(conn(TcpState::Listen, TimerKind::None, 0), 7_200_000);
        assert_eq!(codes(&listen), vec![]);
        let fin_wait = aged(conn(TcpState::FinWait2, TimerKind::None, 0), 7_200_000);
        assert_eq!(codes(&fin_wait), vec![]);
    }

    #[test]
    fn retransmit_count_zero_is_normal() {
        let c = aged(conn(TcpState::Established, TimerKind::Retransmit, 0), 100);
        assert_eq!(codes(&c), vec![]);
        // Even with a threshold of 0, which acts as 1.
        let t = Thresholds {
            retransmit_min: 0,
            ..T
        };
        assert!(find_stuck(&c, &t).is_empty());
        assert_eq!(
            find_stuck(&conn(TcpState::Established, TimerKind::Retransmit, 1), &t).len(),
            1
        );
    }

    #[test]
    fn retransmit_boundaries() {
        let at = |count: u8| codes(&conn(TcpState::Established, TimerKind::Retransmit, count));
        assert_eq!(at(2), vec![]);
        assert_eq!(
            at(3),
            vec![(FindingCode::Retransmitting, Severity::Warning)]
        );
        assert_eq!(
            at(5),
            vec![(FindingCode::Retransmitting, Severity::Warning)]
        );
        assert_eq!(
            at(6),
            vec![(FindingCode::Retransmitting, Severity::Critical)]
        );
    }

    #[test]
    fn retransmit_backoff_counts_too() {
        let mut c = conn(TcpState::Established, TimerKind::Retransmit, 1);
        c.tcp_info.as_mut().unwrap().set_backoff(Some(2));
        assert_eq!(codes(&c), vec![]);
        c.tcp_info.as_mut().unwrap().set_backoff(Some(3));
        assert_eq!(
            codes(&c),
            vec![(FindingCode::Retransmitting, Severity::Warning)]
        );
        c.tcp_info.as_mut().unwrap().set_backoff(Some(7));
        assert_eq!(
            codes(&c),
            vec![(FindingCode::Retransmitting, Severity::Critical)]
        );
        // Backoff with another timer (zero-window probes back off too) is not retransmitting.
        let mut z = conn(TcpState::Established, TimerKind::ZeroWindowProbe, 0);
        z.tcp_info.as_mut().unwrap().set_backoff(Some(9));
        assert_eq!(codes(&z), vec![]);
    }

    #[test]
    fn retransmit_messages() {
        let mut c = conn(TcpState::Established, TimerKind::Retransmit, 6);
        c.timer.expires_ms = 25_600;
        c.send_q = 1448;
        c.tcp_info.as_mut().unwrap().set_backoff(Some(6));
        assert_eq!(
            explain(&c, &stuck(&c)[0]),
            "6 retransmits without an ack (backoff 6); next in 25s; 1.4 KiB unacknowledged"
        );
        let mut syn = conn(TcpState::SynSent, TimerKind::Retransmit, 4);
        syn.tcp_info = None;
        assert_eq!(
            explain(&syn, &stuck(&syn)[0]),
            "SYN retransmitted 4 times with no answer (backoff 0); next try in 5s"
        );
    }

    #[test]
    fn zero_window_needs_probes() {
        assert_eq!(
            codes(&conn(TcpState::Established, TimerKind::ZeroWindowProbe, 0)),
            vec![]
        );
        let mut c = conn(TcpState::Established, TimerKind::ZeroWindowProbe, 2);
        c.send_q = 65536;
        let f = stuck(&c);
        assert_eq!(
            (f[0].code, f[0].severity),
            (FindingCode::ZeroWindow, Severity::Warning)
        );
        assert_eq!(
            explain(&c, &f[0]),
            "peer's receive window is zero after 2 window probes; 64.0 KiB waiting to be sent: the peer is alive but not reading"
        );
    }

    #[test]
    fn several_findings_worst_first() {
        // CLOSE_WAIT with unanswered keepalive probes and unread data: two criticals, in code order.
        let mut c = aged(conn(TcpState::CloseWait, TimerKind::Keepalive, 2), 60_000);
        c.recv_q = 10;
        assert_eq!(
            codes(&c),
            vec![
                (FindingCode::CloseWait, Severity::Critical),
                (FindingCode::DeadPeerSuspect, Severity::Critical)
            ]
        );
        // Warning close-wait and critical dead peer: the critical comes first.
        c.recv_q = 0;
        assert_eq!(
            codes(&c),
            vec![
                (FindingCode::DeadPeerSuspect, Severity::Critical),
                (FindingCode::CloseWait, Severity::Warning)
            ]
        );
    }

    #[test]
    fn analyze_fills_and_replaces_findings() {
        let stale = Finding {
            code: FindingCode::ZeroWindow,
            severity: Severity::Info,
        };
        let mut healthy = conn(TcpState::Established, TimerKind::Keepalive, 0);
        healthy.findings.insert(stale);
        let stuck = aged(conn(TcpState::CloseWait, TimerKind::None, 0), 60_000);
        let mut snap = Snapshot {
            connections: vec![healthy, stuck],
            ..Snapshot::default()
        };
        analyze(&mut snap, &T);
        assert!(snap.connections[0].findings.is_empty());
        assert_eq!(snap.connections[1].findings.len(), 1);
    }

    fn owned(mut c: Connection, owners: &[(u32, u32)]) -> Connection {
        c.owners = owners.iter().map(|&(pid, fd)| Owner { pid, fd }).collect();
        c
    }

    fn process(pid: u32, comm: &str, user: Option<&str>) -> (u32, Process) {
        let p = Process {
            pid,
            comm: comm.into(),
            cmdline: vec![],
            uid: None,
            user: user.map(Into::into),
        };
        (pid, p)
    }

    #[test]
    fn rollup_counts_per_process() {
        let conns = vec![
            // Shared by pids 10 and 20; pid 10 holds it through two fds.
            owned(
                conn(TcpState::Listen, TimerKind::None, 0),
                &[(10, 3), (10, 7), (20, 3)],
            ),
            owned(
                aged(conn(TcpState::Established, TimerKind::None, 0), 600_000),
                &[(10, 4)],
            ),
            owned(
                conn(TcpState::Established, TimerKind::Keepalive, 0),
                &[(10, 5)],
            ),
            owned(
                aged(conn(TcpState::CloseWait, TimerKind::None, 0), 600_000),
                &[(20, 4)],
            ),
            // No owner: not in the rollup.
            conn(TcpState::TimeWait, TimerKind::TimeWait, 0),
        ];
        let mut snap = Snapshot {
            connections: conns,
            processes: [process(10, "nginx", Some("www-data"))]
                .into_iter()
                .collect(),
            ..Snapshot::default()
        };
        analyze(&mut snap, &T);
        let r = rollup(&snap, &snap.connections);
        assert_eq!(r.len(), 2);
        // pid 20 has a warning (close_wait), pid 10 only an info: 20 first.
        let (a, b) = (&r[0], &r[1]);
        assert_eq!((a.pid, a.comm.as_str(), a.user.as_deref()), (20, "?", None));
        assert_eq!(a.sockets, 2);
        assert_eq!(
            a.by_state,
            BTreeMap::from([(TcpState::CloseWait, 1), (TcpState::Listen, 1)])
        );
        assert_eq!(a.findings, BTreeMap::from([(FindingCode::CloseWait, 1)]));
        assert_eq!(
            (a.critical, a.warning, a.info, a.close_wait()),
            (0, 1, 0, 1)
        );
        assert_eq!(a.worst(), Some(Severity::Warning));
        assert_eq!(
            (b.pid, b.comm.as_str(), b.user.as_deref()),
            (10, "nginx", Some("www-data"))
        );
        assert_eq!(b.sockets, 3);
        assert_eq!(
            b.by_state,
            BTreeMap::from([(TcpState::Established, 2), (TcpState::Listen, 1)])
        );
        assert_eq!(b.established_without_keepalive, 1);
        assert_eq!(
            b.findings,
            BTreeMap::from([(FindingCode::NoKeepaliveIdle, 1)])
        );
        assert_eq!((b.critical, b.warning, b.info), (0, 0, 1));
        assert_eq!(b.worst(), Some(Severity::Info));
    }

    #[test]
    fn rollup_orders_critical_warning_close_wait_sockets_pid() {
        let crit = || aged(conn(TcpState::Established, TimerKind::Keepalive, 3), 1_000);
        let warn = || conn(TcpState::Established, TimerKind::ZeroWindowProbe, 1);
        let young_cw = || aged(conn(TcpState::CloseWait, TimerKind::None, 0), 1_000);
        let plain = || conn(TcpState::Established, TimerKind::Keepalive, 0);
        let conns = vec![
            owned(plain(), &[(1, 1)]),
            owned(plain(), &[(1, 2)]),
            owned(plain(), &[(2, 1)]),
            owned(young_cw(), &[(3, 1)]),
            owned(warn(), &[(4, 1)]),
            owned(warn(), &[(4, 2)]),
            owned(warn(), &[(5, 1)]),
            owned(crit(), &[(6, 1)]),
            owned(plain(), &[(7, 1)]),
            owned(crit(), &[(9, 1)]),
            owned(crit(), &[(8, 1)]),
            owned(plain(), &[(8, 2)]),
        ];
        let mut snap = Snapshot {
            connections: conns,
            ..Snapshot::default()
        };
        analyze(&mut snap, &T);
        let order: Vec<u32> = rollup(&snap, &snap.connections)
            .iter()
            .map(|p| p.pid)
            .collect();
        // 8 and 6/9 have one critical (8 has more sockets; 6 before 9 by pid), 4 has two warnings, 5 one,
        // 3 a young close-wait (no finding), then by sockets (1 has two), then pid.
        assert_eq!(order, vec![8, 6, 9, 4, 5, 3, 1, 2, 7]);
    }

    #[test]
    fn rollup_over_a_subset_and_nothing() {
        let snap = Snapshot {
            connections: vec![
                owned(conn(TcpState::Listen, TimerKind::None, 0), &[(1, 1)]),
                owned(
                    conn(TcpState::Established, TimerKind::Keepalive, 0),
                    &[(2, 1)],
                ),
            ],
            ..Snapshot::default()
        };
        let only_listen = rollup(
            &snap,
            snap.connections
                .iter()
                .filter(|c| c.state == TcpState::Listen),
        );
        assert_eq!(
            only_listen.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![1]
        );
        assert!(rollup(&snap, []).is_empty());
    }
}
