//! What the collector thread prepares for the live view: the sort columns and a connection's sort key, the
//! [`ViewSpec`] it is told, and for each snapshot the visible rows in order, the sorted process summaries and the
//! header's counts ([`prepare`]). Pure, so the UI thread computes the same when the view changed in between.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::analyze::{ProcessSummary, rollup};
use crate::filter::Filter;
use crate::model::{Connection, FindingCode, Severity, Snapshot, TcpState, TimerKind};
use crate::tui::history::heard_ms;

/// Sort columns of the connections view, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnSort {
    /// Worst finding first, then longest idle.
    Severity,
    State,
    Process,
    Local,
    Peer,
    Timer,
    Probes,
    RecvQ,
    SendQ,
    Idle,
}

impl ConnSort {
    pub const ALL: [ConnSort; 10] = [
        ConnSort::Severity,
        ConnSort::State,
        ConnSort::Process,
        ConnSort::Local,
        ConnSort::Peer,
        ConnSort::Timer,
        ConnSort::Probes,
        ConnSort::RecvQ,
        ConnSort::SendQ,
        ConnSort::Idle,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConnSort::Severity => "severity",
            ConnSort::State => "state",
            ConnSort::Process => "process",
            ConnSort::Local => "local",
            ConnSort::Peer => "peer",
            ConnSort::Timer => "timer",
            ConnSort::Probes => "probes",
            ConnSort::RecvQ => "recv-q",
            ConnSort::SendQ => "send-q",
            ConnSort::Idle => "idle",
        }
    }
}

/// Sort columns of the processes view, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcSort {
    /// The rollup's order: most critical findings, then warnings, then CLOSE_WAIT, then sockets.
    Worst,
    Sockets,
    Established,
    CloseWait,
    NoKeepalive,
    Pid,
    Comm,
}

impl ProcSort {
    pub const ALL: [ProcSort; 7] = [
        ProcSort::Worst,
        ProcSort::Sockets,
        ProcSort::Established,
        ProcSort::CloseWait,
        ProcSort::NoKeepalive,
        ProcSort::Pid,
        ProcSort::Comm,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ProcSort::Worst => "worst",
            ProcSort::Sockets => "sockets",
            ProcSort::Established => "estab",
            ProcSort::CloseWait => "close-wait",
            ProcSort::NoKeepalive => "no-keepalive",
            ProcSort::Pid => "pid",
            ProcSort::Comm => "comm",
        }
    }
}

/// A connection's sort key: computed once per row, so sorting 100k sockets compares plain values. Within one
/// sort every key is the same variant. Natural order: worst, biggest, longest first for numbers; alphabetical for
/// names.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Severity(Reverse<Option<Severity>>, Reverse<Option<u64>>, TcpState),
    State(TcpState, Reverse<Option<Severity>>),
    /// Sockets without a known owner last.
    Process(bool, Option<(&'a str, u32)>),
    Addr(IpAddr, u16),
    /// No timer last, then soonest first.
    Timer(bool, u32),
    Biggest(Reverse<u64>),
    Idle(Reverse<Option<u64>>),
}

/// What orders and filters the tables: the part of the [`App`] the collector thread needs to compute a snapshot's
/// rows before the UI thread gets it ([`prepare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    pub filter: Filter,
    pub drill_pid: Option<u32>,
    pub conn_sort: ConnSort,
    pub conn_reverse: bool,
    pub proc_sort: ProcSort,
    pub proc_reverse: bool,
}

/// One snapshot's visible rows (sorted), process summaries (sorted) and header counts, for one [`ViewSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub spec: ViewSpec,
    pub rows: Vec<usize>,
    pub procs: Vec<ProcessSummary>,
    pub counts: Counts,
}

/// Sockets per state and per finding over the whole snapshot, for the header: counted once per snapshot rather
/// than at every frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Per state label (`SYN-RECV` covers two states), most first.
    pub states: Vec<(&'static str, u32, TcpState)>,
    /// Sockets with at least one finding, by their worst severity.
    pub by_severity: BTreeMap<Severity, u32>,
    pub by_code: BTreeMap<FindingCode, u32>,
    /// Sockets whose keepalive settings were collected (read or assumed): without any, the connections view
    /// shows no keepalive column.
    pub with_keepalive: u32,
}

impl Counts {
    pub fn of(snap: &Snapshot) -> Counts {
        // Indexed by the kernel's state number (1 to 12).
        let mut states = [0u32; TcpState::ALL.len() + 1];
        let mut by_severity = BTreeMap::new();
        let mut by_code = BTreeMap::new();
        let mut with_keepalive = 0;
        for c in &snap.connections {
            states[c.state as usize] += 1;
            with_keepalive += u32::from(c.keepalive.is_some());
            if let Some(w) = c.worst() {
                *by_severity.entry(w).or_default() += 1;
            }
            for f in &c.findings {
                *by_code.entry(f.code).or_default() += 1;
            }
        }
        let mut labelled: BTreeMap<&'static str, (u32, TcpState)> = BTreeMap::new();
        for state in TcpState::ALL {
            let n = states[state as usize];
            if n > 0 {
                labelled.entry(state.label()).or_insert((0, state)).0 += n;
            }
        }
        let mut states: Vec<(&'static str, u32, TcpState)> =
            labelled.into_iter().map(|(l, (n, s))| (l, n, s)).collect();
        states.sort_by_key(|(_, n, s)| (Reverse(*n), *s));
        Counts {
            states,
            by_severity,
            by_code,
            with_keepalive,
        }
    }

    /// Sockets with at least one finding.
    pub fn stuck(&self) -> u32 {
        self.by_severity.values().sum()
    }
}

/// Computes a snapshot's rows, process summaries and counts for `spec`, on the collector thread.
pub fn prepare(snap: &Snapshot, spec: &ViewSpec) -> Prepared {
    let (rows, procs) = view_rows(snap, spec);
    Prepared {
        spec: spec.clone(),
        rows,
        procs,
        counts: Counts::of(snap),
    }
}

/// The visible rows, sorted, and the process summaries of the filtered sockets, sorted, for `spec`. Pure, so it
/// runs on the collector thread and (when the view changed) on the UI thread alike.
pub fn view_rows(snap: &Snapshot, spec: &ViewSpec) -> (Vec<usize>, Vec<ProcessSummary>) {
    let visible = |c: &Connection| {
        spec.filter.matches_in(c, snap)
            && spec
                .drill_pid
                .is_none_or(|pid| c.owners.iter().any(|o| o.pid == pid))
    };
    let (sort, reverse) = (spec.conn_sort, spec.conn_reverse);
    let rows = snap
        .connections
        .iter()
        .enumerate()
        .filter(|(_, c)| visible(c));
    let rows = if packs(sort) {
        sorted(
            rows.map(|(i, c)| (packed_key(sort, c), c.cookie, i)),
            reverse,
        )
    } else {
        sorted(
            rows.map(|(i, c)| (sort_key(sort, snap, c), c.cookie, i)),
            reverse,
        )
    };
    let filtered = || {
        snap.connections
            .iter()
            .filter(|c| spec.filter.matches_in(c, snap))
    };
    let mut procs = rollup(snap, filtered());
    crate::analyze::services::attach(snap, filtered(), &mut procs);
    sort_procs(&mut procs, spec.proc_sort, spec.proc_reverse);
    (rows, procs)
}

/// The rows of `keyed` (sort key, cookie, row) ordered by key (`reverse`d on request), then by cookie, so that
/// equal keys keep their order from refresh to refresh.
fn sorted<K: Ord>(keyed: impl Iterator<Item = (K, u64, usize)>, reverse: bool) -> Vec<usize> {
    let mut keyed: Vec<(K, u64, usize)> = keyed.collect();
    keyed.sort_unstable_by(|a, b| {
        let ord = if reverse {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        };
        ord.then(a.1.cmp(&b.1))
    });
    // A new, exact allocation: collected from `keyed.into_iter()`, the rows would reuse the keys' (several times
    // the size) and keep it while the view shows them.
    keyed.iter().map(|(_, _, i)| *i).collect()
}

/// Whether the column's [`Key`] fits one number ([`packed_key`]).
fn packs(sort: ConnSort) -> bool {
    !matches!(sort, ConnSort::Process | ConnSort::Local | ConnSort::Peer)
}

/// The column's [`Key`] as one number in the same order, for the columns where it fits ([`packs`]): sorting a
/// million 24-byte rows instead of 48-byte ones holds 23 MiB less while the rows are prepared (beside two
/// snapshots, the live view's peak). Idle times past 2^56 ms (2 million years) count as equal.
fn packed_key(sort: ConnSort, c: &Connection) -> u64 {
    // `Option` orders `None` first: 0, then the value plus one.
    let severity = |w: Option<Severity>| w.map_or(0, |s| s as u64 + 1);
    let idle = |bits: u32| heard_ms(c).map_or(0, |ms| ms.min((1 << bits) - 2) + 1);
    match sort {
        // Reverse(worst) in 4 bits, Reverse(idle) in 56, the state in 4.
        ConnSort::Severity => {
            ((15 - severity(c.worst())) << 60)
                | ((((1 << 56) - 1) - idle(56)) << 4)
                | u64::from(c.state as u8)
        }
        ConnSort::State => (u64::from(c.state as u8) << 4) | (15 - severity(c.worst())),
        ConnSort::Timer => {
            (u64::from(c.timer.kind == TimerKind::None) << 32) | u64::from(c.timer.expires_ms)
        }
        ConnSort::Probes => u64::MAX - u64::from(c.timer.count),
        ConnSort::RecvQ => u64::MAX - u64::from(c.recv_q),
        ConnSort::SendQ => u64::MAX - u64::from(c.send_q),
        ConnSort::Idle => u64::MAX - idle(63),
        // Not packed (see `packs`): one order for all.
        ConnSort::Process | ConnSort::Local | ConnSort::Peer => 0,
    }
}

fn sort_key<'a>(sort: ConnSort, snap: &'a Snapshot, c: &Connection) -> Key<'a> {
    match sort {
        ConnSort::Severity => Key::Severity(Reverse(c.worst()), Reverse(heard_ms(c)), c.state),
        ConnSort::State => Key::State(c.state, Reverse(c.worst())),
        ConnSort::Process => {
            let owner = c.owners.first().map(|o| (snap.comm(o.pid), o.pid));
            Key::Process(owner.is_none(), owner)
        }
        ConnSort::Local => Key::Addr(c.local_addr, c.local_port),
        ConnSort::Peer => Key::Addr(c.peer_addr, c.peer_port),
        ConnSort::Timer => Key::Timer(c.timer.kind == TimerKind::None, c.timer.expires_ms),
        ConnSort::Probes => Key::Biggest(Reverse(u64::from(c.timer.count))),
        ConnSort::RecvQ => Key::Biggest(Reverse(u64::from(c.recv_q))),
        ConnSort::SendQ => Key::Biggest(Reverse(u64::from(c.send_q))),
        ConnSort::Idle => Key::Idle(Reverse(heard_ms(c))),
    }
}

fn sort_procs(procs: &mut [ProcessSummary], sort: ProcSort, reverse: bool) {
    // The rollup's order is the worst-first order; keep it as the tie-break for every other column.
    let rank: std::collections::HashMap<u32, usize> =
        procs.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
    let established = |p: &ProcessSummary| {
        p.by_state
            .get(&crate::model::TcpState::Established)
            .copied()
            .unwrap_or(0)
    };
    procs.sort_by(|a, b| {
        let ord = match sort {
            ProcSort::Worst => Ordering::Equal,
            ProcSort::Sockets => b.sockets.cmp(&a.sockets),
            ProcSort::Established => established(b).cmp(&established(a)),
            ProcSort::CloseWait => b.close_wait().cmp(&a.close_wait()),
            ProcSort::NoKeepalive => no_keepalive_share(b)
                .partial_cmp(&no_keepalive_share(a))
                .unwrap_or(Ordering::Equal),
            ProcSort::Pid => a.pid.cmp(&b.pid),
            ProcSort::Comm => a.comm.cmp(&b.comm),
        };
        let ord = ord.then(rank[&a.pid].cmp(&rank[&b.pid]));
        if reverse { ord.reverse() } else { ord }
    });
}

/// Share (0..=1) of a process's ESTABLISHED sockets that run without keepalive; `None` with none established.
pub fn no_keepalive_share(p: &ProcessSummary) -> Option<f64> {
    let est = p
        .by_state
        .get(&crate::model::TcpState::Established)
        .copied()
        .unwrap_or(0);
    (est > 0).then(|| f64::from(p.established_without_keepalive) / f64::from(est))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Finding, Timer};

    /// Sockets that differ in every packed column, with ties, extremes and missing values.
    fn varied() -> Snapshot {
        let mut connections = Vec::new();
        let states = [TcpState::Established, TcpState::CloseWait, TcpState::Listen];
        let severities = [
            None,
            Some(Severity::Info),
            Some(Severity::Warning),
            Some(Severity::Critical),
        ];
        let idles = [None, Some(0), Some(1), Some(59_000), Some(u32::MAX)];
        let mut cookie = 1000;
        for (k, state) in states.into_iter().enumerate() {
            for (j, severity) in severities.into_iter().enumerate() {
                for (m, idle) in idles.into_iter().enumerate() {
                    cookie -= 7;
                    let mut c = crate::testing::conn();
                    c.cookie = cookie;
                    c.state = state;
                    c.recv_q = [0, 5, u32::MAX][m % 3];
                    c.send_q = [7, 0][(j + m) % 2];
                    c.timer = Timer {
                        kind: if m % 2 == 0 {
                            TimerKind::None
                        } else {
                            TimerKind::Keepalive
                        },
                        expires_ms: [0, 300, u32::MAX][(k + m) % 3],
                        count: [0, 3, u8::MAX][j % 3],
                    };
                    if let Some(severity) = severity {
                        c.findings.insert(Finding {
                            code: FindingCode::DeadPeerSuspect,
                            severity,
                        });
                    }
                    c.tcp_info = idle.map(|ms| {
                        let mut info = crate::model::TcpInfo::default();
                        info.set_last_data_recv_ms(Some(ms));
                        info.set_last_ack_recv_ms(Some(ms));
                        info
                    });
                    connections.push(c);
                }
            }
        }
        Snapshot {
            connections,
            ..Snapshot::default()
        }
    }

    #[test]
    fn packed_keys_sort_as_the_keys_they_pack() {
        let snap = varied();
        for sort in ConnSort::ALL.into_iter().filter(|s| packs(*s)) {
            for reverse in [false, true] {
                let rows = |packed: bool| {
                    let keyed = snap.connections.iter().enumerate();
                    if packed {
                        sorted(
                            keyed.map(|(i, c)| (packed_key(sort, c), c.cookie, i)),
                            reverse,
                        )
                    } else {
                        sorted(
                            keyed.map(|(i, c)| (sort_key(sort, &snap, c), c.cookie, i)),
                            reverse,
                        )
                    }
                };
                assert_eq!(
                    rows(true),
                    rows(false),
                    "{} reversed: {reverse}",
                    sort.label()
                );
            }
        }
    }
}
