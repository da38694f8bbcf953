//! The JSON document of `kwatch --once --json`.
//!
//! The report types here are the documented, stable schema (docs/json-schema.md), kept apart from the model so
//! that an internal rename cannot silently change what scripts read. The document is written streaming: sockets
//! are turned into report rows one at a time and written by hand (`compact`) on every core, so memory stays flat
//! with a million sockets; the small head and tail of the document are serde_json's.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;

use serde::Serialize;
use serde::ser::Serializer;

use super::chunks;
use crate::analyze::services::{self, ServiceSummary};
use crate::analyze::{self, ProcessSummary};
use crate::model::keepalive::{DeathBy, KeepaliveSettings};
use crate::model::{
    Connection, Family, FindingCode, HeldDeadSocket, NetnsRef, Owner, ProcessFinding, Settings,
    Severity, Snapshot, StateName, TcpInfo, TcpState, Timer, Unit,
};

mod compact;
use compact::WriteJson;

/// Bumped when a field is renamed, removed or changes meaning; additions keep it.
pub const SCHEMA_VERSION: u32 = 1;

/// Writes the report as one compact JSON document followed by a newline.
///
/// `conns` are the sockets to report (already filtered); totals and processes are computed over them.
/// `elapsed_us` is the caller's measurement of the whole run. I/O errors (e.g. `BrokenPipe`) are returned as is.
///
/// The bytes are exactly `serde_json::to_writer(&Report)`'s with bidi controls escaped ([`escape_bidi`]), but
/// the socket rows, nearly all of the document, are written by hand on every core (see [`write_rows`]).
pub fn write(
    w: &mut impl Write,
    snapshot: &Snapshot,
    conns: &[&Connection],
    elapsed_us: u64,
) -> io::Result<()> {
    let report = Report::new(snapshot, conns, elapsed_us);
    let mut buf = BufWriter::with_capacity(1 << 16, w);
    // `{"schema_version":…,"warnings":[…]` + `,"sockets":[…]` + `,"processes":…}`: head and tail are small
    // objects of their own, spliced around the rows.
    let head = escape_bidi(serde_json::to_vec(&report.head)?);
    let tail = escape_bidi(serde_json::to_vec(&report.tail)?);
    buf.write_all(head.strip_suffix(b"}").unwrap_or(&head))?;
    buf.write_all(b",\"sockets\":")?;
    write_rows(&mut buf, &report.sockets)?;
    buf.write_all(b",")?;
    buf.write_all(tail.strip_prefix(b"{").unwrap_or(&tail))?;
    buf.write_all(b"\n")?;
    buf.flush()
}

/// Same document as [`write`], indented for people.
pub fn write_pretty(
    w: &mut impl Write,
    snapshot: &Snapshot,
    conns: &[&Connection],
    elapsed_us: u64,
) -> io::Result<()> {
    let mut buf = BufWriter::new(w);
    let doc = serde_json::to_vec_pretty(&Report::new(snapshot, conns, elapsed_us))?;
    buf.write_all(&escape_bidi(doc))?;
    buf.write_all(b"\n")?;
    buf.flush()
}

/// Writes the bidirectional formatting characters of JSON text (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069) as `\u` escapes. serde_json escapes control characters only, and these are not: printed raw,
/// a process name holding U+202E would reverse the rest of its line on the terminal. Outside strings JSON holds
/// only ASCII, so every such character is inside a string, and its escape decodes to the same string.
pub fn escape_bidi(json: Vec<u8>) -> Vec<u8> {
    // Candidates are found with memchr (several GB/s): the rows of a million sockets are a gigabyte of JSON, and
    // a byte-by-byte look was 7.5 % of `--once --json`'s samples there.
    let Some(first) = memchr::memchr2(0xd8, 0xe2, &json) else {
        return json;
    };
    let mut out = Vec::with_capacity(json.len() + 16);
    out.extend_from_slice(&json[..first]);
    let mut i = first;
    while i < json.len() {
        if let Some(c) = bidi_at(&json, i) {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
            i += if c == 0x061c { 2 } else { 3 };
        } else {
            out.push(json[i]);
            i += 1;
        }
        let next = memchr::memchr2(0xd8, 0xe2, &json[i..]).map_or(json.len(), |n| i + n);
        out.extend_from_slice(&json[i..next]);
        i = next;
    }
    out
}

/// The bidirectional formatting character whose UTF-8 form starts at `b[i]`, if one does ([`escape_bidi`]).
fn bidi_at(b: &[u8], i: usize) -> Option<u32> {
    // Their UTF-8 forms: D8 9C, and E2 80 8E-8F / E2 80 AA-AE / E2 81 A6-A9.
    match b.get(i..i + 2)? {
        [0xd8, 0x9c] => Some(0x061c),
        [0xe2, 0x80] => match *b.get(i + 2)? {
            c @ (0x8e | 0x8f | 0xaa..=0xae) => Some(0x2000 + u32::from(c - 0x80)),
            _ => None,
        },
        [0xe2, 0x81] => match *b.get(i + 2)? {
            c @ 0xa6..=0xa9 => Some(0x2040 + u32::from(c - 0x80)),
            _ => None,
        },
        _ => None,
    }
}

/// Socket rows one thread serializes at a time: large enough that handing a chunk over is noise (~300 kB of
/// JSON), small enough that the rows in flight (a chunk per core and one more) stay about a MiB. With 1024 rows the
/// peak of `--once --json` at a million sockets, which is the output's, was 2.2 MiB higher, for the same CPU.
const ROWS_PER_CHUNK: usize = 256;

/// Writes the socket array compactly, `[row,row,…]`, the rows serialized on every core ([`chunks::write`]).
fn write_rows(w: &mut impl Write, sockets: &Sockets) -> io::Result<()> {
    w.write_all(b"[")?;
    chunks::write(w, sockets.1, ROWS_PER_CHUNK, b",", |rows| {
        serialize_rows(sockets.0, rows)
    })?;
    w.write_all(b"]")
}

/// Bytes of JSON per socket row, a little over the average (231 MB for 200,007 rows of the benchmark): sized
/// once, a chunk's buffer does not grow through a series of copies.
const ROW_BYTES: usize = 1200;

/// The rows, comma-separated (no brackets).
fn serialize_rows(snapshot: &Snapshot, rows: &[&Connection]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(rows.len() * ROW_BYTES);
    for (i, c) in rows.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        SocketReport::in_snapshot(snapshot, c).write_json(&mut buf)?;
    }
    // No `escape_bidi` pass: the rows' strings escaped their bidi controls as they were written.
    Ok(buf)
}

/// The whole document. Field order is the output order: the fields of `head`, `sockets`, the fields of `tail`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub sockets: Sockets<'a>,
    #[serde(flatten)]
    pub tail: Tail<'a>,
}

/// What the document says before the socket rows.
#[derive(Debug, Serialize)]
pub struct Head<'a> {
    pub schema_version: u32,
    pub kwatch_version: &'static str,
    pub taken_at_unix_ms: u64,
    pub elapsed_us: u64,
    pub dump_us: u64,
    pub proc_scan_us: u64,
    pub host: &'a str,
    pub kernel: &'a str,
    pub settings: &'a Settings,
    /// The network namespaces inspected, kwatch's own first (one without `--netns`/`--all-netns`).
    pub namespaces: Vec<NamespaceReport<'a>>,
    pub totals: Totals,
    pub unreadable_processes: Vec<UnreadableReport<'a>>,
    /// The snapshot's warnings, then the table footer's line about unreadable processes (with its hint).
    pub warnings: Vec<String>,
}

/// What the document says after the socket rows.
#[derive(Debug, Serialize)]
pub struct Tail<'a> {
    pub processes: Vec<ProcessReport<'a>>,
    /// TCP socket fds still held after the kernel ended the connection (not affected by filters).
    pub held_dead_sockets: &'a [HeldDeadSocket],
    /// Per-service rollup over the reported sockets (processes sharing a listener, or workers of one parent).
    pub services: Vec<ServiceReport<'a>>,
}

impl<'a> Report<'a> {
    pub fn new(snapshot: &'a Snapshot, conns: &'a [&'a Connection], elapsed_us: u64) -> Self {
        let summaries = analyze::rollup(snapshot, conns.iter().copied());
        let mut totals = Totals::new(snapshot, conns, summaries.len() as u64);
        for f in summaries.iter().flat_map(|s| &s.process_findings) {
            *totals.by_finding.entry(f.code).or_default() += 1;
        }
        let processes: Vec<ProcessReport<'a>> = summaries
            .into_iter()
            .map(|s| ProcessReport::new(snapshot, s))
            .collect();
        let services = services::services(snapshot, conns.iter().copied())
            .into_iter()
            .map(|s| ServiceReport::new(snapshot, s))
            .collect();
        let head = Head {
            schema_version: SCHEMA_VERSION,
            kwatch_version: env!("CARGO_PKG_VERSION"),
            taken_at_unix_ms: snapshot.taken_at_unix_ms,
            elapsed_us,
            dump_us: snapshot.dump_us,
            proc_scan_us: snapshot.proc_scan_us,
            host: &snapshot.host,
            kernel: &snapshot.kernel,
            settings: &snapshot.settings,
            namespaces: snapshot
                .namespaces
                .iter()
                .map(|n| NamespaceReport {
                    inode: n.netns.inode,
                    name: n.netns.name.as_deref(),
                    current: n.current,
                    pid: n.pid,
                    settings: &n.settings,
                    sockets: conns
                        .iter()
                        .filter(|c| c.netns.as_ref().is_some_and(|ns| ns.inode == n.netns.inode))
                        .count() as u64,
                    error: n.error.as_deref(),
                })
                .collect(),
            totals,
            unreadable_processes: snapshot
                .unreadable
                .iter()
                .map(|u| UnreadableReport {
                    pid: u.pid,
                    comm: u.comm.as_deref(),
                })
                .collect(),
            warnings: snapshot
                .warnings
                .iter()
                .cloned()
                .chain(snapshot.unreadable_line())
                .collect(),
        };
        Report {
            head,
            sockets: Sockets(snapshot, conns),
            tail: Tail {
                processes,
                held_dead_sockets: &snapshot.held_dead,
                services,
            },
        }
    }
}

/// Counts over the reported sockets. `by_state` and `by_finding` list every state and code, zero included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub sockets: u64,
    pub by_state: BTreeMap<StateName, u64>,
    /// Sockets with at least one finding.
    pub stuck: u64,
    /// Sockets carrying each finding code (a socket with two codes counts under both); for the process-level
    /// codes (`keepalive_off`, `keepalive_default`), processes carrying it.
    pub by_finding: BTreeMap<FindingCode, u64>,
    /// Distinct processes owning at least one reported socket.
    pub processes: u64,
    /// Processes whose fd table could not be read (not affected by filters).
    pub unreadable_processes: u64,
}

impl Totals {
    pub fn new(snapshot: &Snapshot, conns: &[&Connection], processes: u64) -> Self {
        let mut by_state: BTreeMap<StateName, u64> =
            TcpState::ALL.iter().map(|s| (StateName(*s), 0)).collect();
        let mut by_finding: BTreeMap<FindingCode, u64> =
            FindingCode::ALL.iter().map(|c| (*c, 0)).collect();
        let mut stuck = 0;
        for c in conns {
            *by_state.entry(StateName(c.state)).or_default() += 1;
            if c.is_stuck() {
                stuck += 1;
            }
            let mut codes: Vec<FindingCode> = c.findings.iter().map(|f| f.code).collect();
            codes.sort();
            codes.dedup();
            for code in codes {
                *by_finding.entry(code).or_default() += 1;
            }
        }
        Totals {
            sockets: conns.len() as u64,
            by_state,
            stuck,
            by_finding,
            processes,
            unreadable_processes: snapshot.unreadable.len() as u64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableReport<'a> {
    pub pid: u32,
    /// `null` when even `/proc/PID/comm` could not be read.
    pub comm: Option<&'a str>,
}

/// One network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceReport<'a> {
    /// The nsfs inode (`lsns -t net`).
    pub inode: u64,
    /// Its name under /run/netns (`ip netns`), if any.
    pub name: Option<&'a str>,
    /// kwatch's own namespace.
    pub current: bool,
    /// A process running in it, when it was found through /proc.
    pub pid: Option<u32>,
    /// Its own sysctls (zero values are `null` when it could not be entered).
    pub settings: &'a Settings,
    /// Reported sockets in it.
    pub sockets: u64,
    /// Why its sockets are missing (no privilege to enter it, ...); `null` when they were listed.
    pub error: Option<&'a str>,
}

/// The socket list, serialized lazily one row at a time.
#[derive(Debug)]
pub struct Sockets<'a>(&'a Snapshot, &'a [&'a Connection]);

impl Serialize for Sockets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.1.iter().map(|c| SocketReport::in_snapshot(self.0, c)))
    }
}

compact::json_struct! {
    /// One socket.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct SocketReport<'a> {
        pub cookie: u64,
        pub family: Family,
        pub state: StateName,
        pub local_addr: IpAddr,
        pub local_port: u16,
        pub peer_addr: IpAddr,
        pub peer_port: u16,
        pub interface: u32,
        pub inode: u32,
        pub uid: u32,
        pub recv_q: u32,
        pub send_q: u32,
        pub timer: &'a Timer,
        pub shutdown: Option<u8>,
        pub congestion: Option<&'a str>,
        pub tcp_info: Option<&'a TcpInfo>,
        pub owners: &'a [Owner],
        pub findings: Findings<'a>,
        /// ESTABLISHED and CLOSE_WAIT only: keepalive options, read from the socket or assumed from sysctls.
        pub keepalive: Option<&'a KeepaliveSettings>,
        /// When the next keepalive probe really goes out (null: none will, or not predicted).
        pub next_probe_ms: Option<u64>,
        /// When the kernel resets the connection if the peer stays silent (null: never, or not predicted).
        pub dies_in_ms: Option<u64>,
        /// `dies_in_ms` is an estimate (retransmission backoff model, or missing inputs).
        pub dies_in_estimate: bool,
        pub dies_by: Option<DeathBy>,
        /// The network namespace it lives in.
        pub netns: Option<&'a NetnsRef>,
        /// The container, pod or systemd service of its first owner that has one.
        pub unit: Option<&'a Unit>,
    }
}

impl<'a> SocketReport<'a> {
    /// The row of `c` with what comes from its snapshot: its namespace's sysctls (for the prediction) and the unit
    /// of its owner.
    pub fn in_snapshot(snapshot: &'a Snapshot, c: &'a Connection) -> Self {
        SocketReport {
            unit: snapshot.unit_of(c),
            ..SocketReport::new(c, snapshot.settings_of(c))
        }
    }

    /// The row of `c`; `net` is its namespace's sysctls ([`Snapshot::settings_of`]), for the prediction.
    pub fn new(c: &'a Connection, net: &Settings) -> Self {
        let prediction = crate::analyze::predict::prediction(c, net);
        SocketReport {
            cookie: c.cookie,
            family: c.family,
            state: StateName(c.state),
            local_addr: c.local_addr,
            local_port: c.local_port,
            peer_addr: c.peer_addr,
            peer_port: c.peer_port,
            interface: c.interface,
            inode: c.inode,
            uid: c.uid,
            recv_q: c.recv_q,
            send_q: c.send_q,
            timer: &c.timer,
            shutdown: c.shutdown,
            congestion: c.congestion.as_deref(),
            tcp_info: c.tcp_info.as_ref(),
            owners: &c.owners,
            findings: Findings(c),
            keepalive: c.keepalive.as_deref(),
            next_probe_ms: prediction.and_then(|p| p.next_probe_ms),
            dies_in_ms: prediction.and_then(|p| p.dies_in_ms),
            dies_in_estimate: prediction.is_some_and(|p| p.dies_in_estimate),
            dies_by: prediction.and_then(|p| p.dies_by),
            netns: c.netns.as_deref(),
            unit: None,
        }
    }
}

/// A socket's findings, each with its sentence ([`analyze::explain`]), written as the row is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Findings<'a>(pub &'a Connection);

impl Findings<'_> {
    /// Each finding with its sentence, written now.
    fn reports(&self) -> impl Iterator<Item = FindingReport> + '_ {
        self.0.findings.iter().map(|f| FindingReport {
            code: f.code,
            severity: f.severity,
            message: analyze::explain(self.0, &f),
        })
    }
}

impl Serialize for Findings<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.reports())
    }
}

/// One finding on one socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingReport {
    pub code: FindingCode,
    pub severity: Severity,
    pub message: String,
}

/// One process's rollup over the reported sockets, with what /proc said about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessReport<'a> {
    pub pid: u32,
    pub comm: String,
    pub cmdline: &'a [String],
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// The container, pod or systemd service it runs in, told from its cgroup.
    pub unit: Option<&'a Unit>,
    pub sockets: u32,
    /// Only states with at least one socket.
    pub by_state: BTreeMap<StateName, u32>,
    /// Only codes with at least one socket.
    pub findings: BTreeMap<FindingCode, u32>,
    pub established_without_keepalive: u32,
    /// `established_without_keepalive` as a share of its ESTABLISHED sockets, percent; null without any.
    pub keepalive_off_percent: Option<u32>,
    /// ESTABLISHED sockets with keepalive on and the default 7200 s idle.
    pub keepalive_default: u32,
    pub keepalive_default_percent: Option<u32>,
    /// Findings about the whole process (`keepalive_off`, `keepalive_default`).
    pub process_findings: Vec<ProcessFinding>,
    /// Dead TCP sockets it still holds fds of.
    pub held_dead_sockets: u32,
    /// Findings on its sockets by severity (a socket with two findings counts twice).
    pub critical: u32,
    pub warning: u32,
    pub info: u32,
}

impl<'a> ProcessReport<'a> {
    fn new(snapshot: &'a Snapshot, s: ProcessSummary) -> Self {
        let process = snapshot.processes.get(&s.pid);
        let keepalive_off_percent = s.established_percent(s.established_without_keepalive);
        let keepalive_default_percent = s.established_percent(s.keepalive_default);
        ProcessReport {
            pid: s.pid,
            comm: s.comm,
            cmdline: process.map_or(&[][..], |p| p.cmdline.as_slice()),
            uid: process.and_then(|p| p.uid),
            user: s.user,
            unit: snapshot.units.get(&s.pid),
            sockets: s.sockets,
            by_state: nonzero_states(s.by_state),
            findings: nonzero(s.findings),
            established_without_keepalive: s.established_without_keepalive,
            keepalive_off_percent,
            keepalive_default: s.keepalive_default,
            keepalive_default_percent,
            process_findings: s.process_findings,
            held_dead_sockets: s.held_dead_sockets,
            critical: s.critical,
            warning: s.warning,
            info: s.info,
        }
    }
}

/// A rollup's states with at least one socket, by their documented names.
fn nonzero_states(by_state: BTreeMap<TcpState, u32>) -> BTreeMap<StateName, u32> {
    nonzero(by_state)
        .into_iter()
        .map(|(st, n)| (StateName(st), n))
        .collect()
}

/// The entries of a count map that are not zero.
fn nonzero<K: Ord>(counts: BTreeMap<K, u32>) -> BTreeMap<K, u32> {
    counts.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// One service's rollup over the reported sockets ([`services::services`]): its members and their sockets, each
/// socket once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceReport<'a> {
    /// The leader's comm, raw.
    pub name: String,
    /// The member the others descend from.
    pub leader_pid: u32,
    /// Every member, sorted (also those holding none of the reported sockets).
    pub pids: Vec<u32>,
    /// The leader's container, pod or systemd service.
    pub unit: Option<&'a Unit>,
    pub sockets: u32,
    pub by_state: BTreeMap<StateName, u32>,
    pub findings: BTreeMap<FindingCode, u32>,
    pub established_without_keepalive: u32,
    pub keepalive_off_percent: Option<u32>,
    pub keepalive_default: u32,
    pub keepalive_default_percent: Option<u32>,
    /// Findings about the service as a whole (`keepalive_off`, `keepalive_default`), judged over all its
    /// ESTABLISHED sockets.
    pub service_findings: Vec<ProcessFinding>,
    pub held_dead_sockets: u32,
    pub critical: u32,
    pub warning: u32,
    pub info: u32,
}

impl<'a> ServiceReport<'a> {
    fn new(snapshot: &'a Snapshot, s: ServiceSummary) -> Self {
        let t = s.totals;
        ServiceReport {
            name: s.name,
            leader_pid: s.leader_pid,
            pids: s.pids,
            unit: snapshot.units.get(&s.leader_pid),
            sockets: t.sockets,
            keepalive_off_percent: t.established_percent(t.established_without_keepalive),
            keepalive_default_percent: t.established_percent(t.keepalive_default),
            by_state: nonzero_states(t.by_state),
            findings: nonzero(t.findings),
            established_without_keepalive: t.established_without_keepalive,
            keepalive_default: t.keepalive_default,
            service_findings: t.process_findings,
            held_dead_sockets: t.held_dead_sockets,
            critical: t.critical,
            warning: t.warning,
            info: t.info,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Finding, Owners, TimerKind};

    fn conn(cookie: u64, state: TcpState, codes: &[FindingCode]) -> Connection {
        Connection {
            cookie,
            state,
            inode: u32::try_from(cookie).unwrap(),
            findings: codes
                .iter()
                .map(|c| Finding {
                    code: *c,
                    severity: Severity::Warning,
                })
                .collect(),
            ..crate::testing::conn()
        }
    }

    #[test]
    fn totals_list_every_state_and_code_and_count_stuck_sockets_once() {
        let a = conn(
            1,
            TcpState::CloseWait,
            &[FindingCode::CloseWait, FindingCode::ZeroWindow],
        );
        let b = conn(2, TcpState::Established, &[]);
        let c = conn(3, TcpState::CloseWait, &[FindingCode::CloseWait]);
        let snapshot = Snapshot::default();
        let t = Totals::new(&snapshot, &[&a, &b, &c], 0);
        assert_eq!(t.sockets, 3);
        assert_eq!(t.stuck, 2);
        assert_eq!(t.by_state.len(), TcpState::ALL.len());
        assert_eq!(t.by_state[&StateName(TcpState::CloseWait)], 2);
        assert_eq!(t.by_state[&StateName(TcpState::Established)], 1);
        assert_eq!(t.by_state[&StateName(TcpState::Listen)], 0);
        assert_eq!(t.by_finding.len(), FindingCode::ALL.len());
        assert_eq!(t.by_finding[&FindingCode::CloseWait], 2);
        assert_eq!(t.by_finding[&FindingCode::ZeroWindow], 1);
        assert_eq!(t.by_finding[&FindingCode::Retransmitting], 0);
    }

    #[test]
    fn totals_keys_are_the_documented_names() {
        let a = conn(1, TcpState::FinWait1, &[FindingCode::DeadPeerSuspect]);
        let t = Totals::new(&Snapshot::default(), &[&a], 0);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["by_state"]["fin-wait-1"], 1);
        assert_eq!(v["by_finding"]["dead_peer_suspect"], 1);
    }

    #[test]
    fn enumerations_serialize_as_their_documented_names() {
        for st in TcpState::ALL {
            assert_eq!(serde_json::to_value(StateName(st)).unwrap(), st.name());
        }
        for code in FindingCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.name());
        }
        for kind in [
            TimerKind::None,
            TimerKind::Retransmit,
            TimerKind::Keepalive,
            TimerKind::TimeWait,
            TimerKind::ZeroWindowProbe,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.label());
        }
        for sev in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(serde_json::to_value(sev).unwrap(), sev.label());
        }
    }

    #[test]
    fn bidi_controls_are_written_as_escapes_that_decode_to_the_raw_name() {
        use crate::model::{Owner, Process};
        let name = "evil\u{202e}txt.exe\u{2066}\u{200f}\u{061c}名";
        let mut c = conn(1, TcpState::Established, &[]);
        c.owners = vec![Owner { pid: 7, fd: 3 }].into_iter().collect();
        let mut snapshot = Snapshot::default();
        snapshot.processes.insert(
            7,
            Process {
                pid: 7,
                comm: name.to_string(),
                cmdline: vec![name.to_string()],
                uid: None,
                user: None,
            },
        );
        snapshot.warnings.push(format!("odd \u{202d}{name}"));
        for pretty in [false, true] {
            let mut out = Vec::new();
            if pretty {
                write_pretty(&mut out, &snapshot, &[&c], 0).unwrap();
            } else {
                write(&mut out, &snapshot, &[&c], 0).unwrap();
            }
            let text = String::from_utf8(out).unwrap();
            assert!(
                !text.chars().any(crate::escape::is_bidi_control),
                "raw bidi control in {text}"
            );
            assert!(
                text.contains("evil\\u202etxt.exe\\u2066\\u200f\\u061c名"),
                "{text}"
            );
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(doc["processes"][0]["comm"], name);
            assert_eq!(doc["processes"][0]["cmdline"][0], name);
            assert_eq!(doc["warnings"][0], format!("odd \u{202d}{name}"));
        }
        // Every bidi control, and the characters around them, go through unchanged in meaning.
        let all: String = (0x600u32..0x2100).filter_map(char::from_u32).collect();
        let json = escape_bidi(serde_json::to_vec(&all).unwrap());
        let back: String = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, all);
        let json = String::from_utf8(json).unwrap();
        assert_eq!(
            json.matches("\\u").count(),
            12,
            "twelve bidi controls, no other escape"
        );
    }

    #[test]
    fn the_parallel_writer_writes_exactly_what_serde_writes() {
        // Empty, one row, and enough rows for several windows of chunks on every core, with a last chunk cut short.
        for n in [0, 1, ROWS_PER_CHUNK * 5 + 17] {
            let conns: Vec<Connection> = (0..n as u64)
                .map(|i| conn(i, TcpState::CloseWait, &[FindingCode::CloseWait]))
                .collect();
            let refs: Vec<&Connection> = conns.iter().collect();
            let snapshot = Snapshot::default();
            let mut fast = Vec::new();
            write(&mut fast, &snapshot, &refs, 42).unwrap();
            let mut plain = serde_json::to_vec(&Report::new(&snapshot, &refs, 42)).unwrap();
            plain.push(b'\n');
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(plain).unwrap()
            );
        }
    }

    #[test]
    fn compact_rows_are_what_serde_writes_for_every_kind_of_row() {
        use std::sync::Arc;

        use crate::model::{NetnsRef, Unit, UnitKind};

        let mut snapshot = crate::testing::fixture("busy.json");
        crate::sockopt::fill(&mut snapshot, false, None); // keepalive assumed from the sysctls
        crate::analyze::analyze(&mut snapshot, &crate::analyze::Thresholds::default());
        // What the fixture lacks: namespaces with a name (one that needs escaping) and without, a unit, a
        // congestion name that needs escaping, a socket without tcp_info, one without an owner.
        let pid = snapshot.connections[0].owners.iter().next().unwrap().pid;
        snapshot.units.insert(
            pid,
            Unit {
                kind: UnitKind::Docker,
                id: "3f4e\u{1b}".to_string(),
                pod: Some("pod \"a\"".to_string()),
            },
        );
        let named = Arc::new(NetnsRef {
            inode: 4_026_532_174,
            name: Some(Arc::from("blue\n\u{7}")),
        });
        let unnamed = Arc::new(NetnsRef {
            inode: 4_026_531_840,
            name: None,
        });
        let conns = &mut snapshot.connections;
        conns[0].netns = Some(named.clone());
        conns[1].netns = Some(unnamed);
        conns[2].congestion = Some(crate::model::Congestion::from("cu\"bic\\\u{0}"));
        conns[3].tcp_info = None;
        conns[4].owners = Owners::default();
        // Two findings on one socket (the sentences are written from the socket, whatever it is).
        for code in [FindingCode::Retransmitting, FindingCode::ZeroWindow] {
            conns[5].findings.insert(Finding {
                code,
                severity: Severity::Warning,
            });
        }

        let mut rows = Vec::new();
        for c in &snapshot.connections {
            let row = SocketReport::in_snapshot(&snapshot, c);
            let mut compact = Vec::new();
            row.write_json(&mut compact).unwrap();
            let serde = serde_json::to_string(&row).unwrap();
            assert_eq!(String::from_utf8(compact).unwrap(), serde);
            rows.push(serde_json::from_str::<serde_json::Value>(&serde).unwrap());
        }
        // Every key was written with a value at least once, and every key that can be null was null once.
        let keys: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
        for key in &keys {
            assert!(
                rows.iter().any(|r| !r[key].is_null()),
                "'{key}' never had a value"
            );
        }
        for key in [
            "shutdown",
            "congestion",
            "tcp_info",
            "keepalive",
            "next_probe_ms",
            "dies_in_ms",
            "dies_by",
            "netns",
            "unit",
        ] {
            assert!(
                rows.iter().any(|r| r[key].is_null()),
                "'{key}' was never null"
            );
        }
        assert!(
            rows.iter()
                .any(|r| r["owners"].as_array().unwrap().len() > 1)
        );
        assert!(
            rows.iter()
                .any(|r| r["findings"].as_array().unwrap().len() > 1)
        );
        assert!(
            rows.iter()
                .any(|r| r["tcp_info"]["rtt_us"].is_null() && r["tcp_info"].is_object())
        );
    }

    /// Strings that need every kind of escape, and some that look like they might but do not.
    fn hostile_strings() -> Vec<String> {
        let mut strings: Vec<String> = [
            "",
            "cubic",
            "evil\u{202e}txt.exe",
            "\u{061c}\u{200e}\u{200f}\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}",
            "quote \" backslash \\ slash / del \u{7f}",
            "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1b}[31m\u{1f}",
            // Lead bytes of bidi controls in other characters: U+0618, U+2014, U+2026, U+2065, U+206A, U+2190.
            "\u{618}\u{2014}\u{2026}\u{2065}\u{206a}\u{2190} \u{85}\u{2028}\u{2029}名🦀",
        ]
        .map(String::from)
        .into();
        // Every character up to U+2100 and the bidi controls' neighbours, between plain ones.
        strings.extend(
            (0u32..0x2100)
                .chain(0x202a..0x2070)
                .filter_map(char::from_u32)
                .map(|c| format!("a{c}b")),
        );
        strings
    }

    /// The compact bytes of `value`.
    fn compact(value: &(impl WriteJson + ?Sized)) -> String {
        let mut out = Vec::new();
        value.write_json(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// serde_json's bytes of `value`, bidi controls escaped.
    fn serde_escaped(value: &(impl Serialize + ?Sized)) -> String {
        String::from_utf8(escape_bidi(serde_json::to_vec(value).unwrap())).unwrap()
    }

    #[test]
    fn hand_written_values_are_what_serde_writes() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        use std::sync::Arc;

        use crate::model::keepalive::Source;
        use crate::model::{Owner, UnitKind};

        for s in hostile_strings() {
            assert_eq!(compact(s.as_str()), serde_escaped(&s), "{s:?}");
        }
        for family in [Family::Ipv4, Family::Ipv6] {
            assert_eq!(compact(&family), serde_escaped(&family));
        }
        for addr in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 0, 99, 255)),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            "::ffff:192.0.2.1".parse().unwrap(),
            "fe80::1:0:0:2".parse().unwrap(),
            "2001:db8:1:2:3:4:5:ffff".parse().unwrap(),
        ] {
            assert_eq!(compact(&addr), serde_escaped(&addr));
        }
        for kind in [
            TimerKind::None,
            TimerKind::Retransmit,
            TimerKind::Keepalive,
            TimerKind::TimeWait,
            TimerKind::ZeroWindowProbe,
        ] {
            for (expires_ms, count) in [(0, 0), (1, 7), (u32::MAX, u8::MAX)] {
                let timer = Timer {
                    kind,
                    expires_ms,
                    count,
                };
                assert_eq!(compact(&timer), serde_escaped(&timer));
            }
        }
        let owners: Vec<Owner> = (0..5)
            .map(|i| Owner {
                pid: i * 1000,
                fd: u32::MAX - i,
            })
            .collect();
        for n in [0, 1, 5] {
            assert_eq!(compact(&owners[..n]), serde_escaped(&owners[..n]));
        }
        for source in [Source::Socket, Source::Sysctl] {
            for enabled in [None, Some(false), Some(true)] {
                for v in [None, Some(0), Some(u32::MAX)] {
                    let ka = KeepaliveSettings {
                        enabled,
                        idle_s: v,
                        intvl_s: v.map(|v| v / 2),
                        cnt: Some(9),
                        user_timeout_ms: v,
                        source,
                    };
                    assert_eq!(compact(&ka), serde_escaped(&ka));
                    assert_eq!(compact(&Some(ka)), serde_escaped(&Some(ka)));
                }
            }
        }
        for by in [
            DeathBy::Keepalive,
            DeathBy::UserTimeout,
            DeathBy::Retransmit,
            DeathBy::ZeroWindowProbe,
        ] {
            assert_eq!(compact(&by), serde_escaped(&by));
        }
        assert_eq!(compact(&None::<DeathBy>), "null");
        let mut names = vec![None];
        names.extend(
            hostile_strings()
                .into_iter()
                .take(7)
                .map(|s| Some(Arc::from(s))),
        );
        for name in names {
            let ns = NetnsRef {
                inode: 4_026_531_840,
                name,
            };
            assert_eq!(compact(&ns), serde_escaped(&ns));
        }
        for kind in [
            UnitKind::Docker,
            UnitKind::Containerd,
            UnitKind::Crio,
            UnitKind::Podman,
            UnitKind::Container,
            UnitKind::Systemd,
        ] {
            for text in hostile_strings().into_iter().take(7) {
                for pod in [None, Some(text.clone())] {
                    let unit = Unit {
                        kind,
                        id: text.clone(),
                        pod,
                    };
                    assert_eq!(compact(&unit), serde_escaped(&unit));
                }
            }
        }
        // Findings: none, one, and every code at every severity on one socket.
        let mut c = conn(1, TcpState::CloseWait, &[]);
        assert_eq!(compact(&Findings(&c)), "[]");
        for (i, code) in FindingCode::ALL.into_iter().enumerate() {
            let severity = [Severity::Info, Severity::Warning, Severity::Critical][i % 3];
            c.findings.insert(Finding { code, severity });
            assert_eq!(compact(&Findings(&c)), serde_escaped(&Findings(&c)));
        }
        assert_eq!(c.findings.iter().count(), FindingCode::ALL.len());
    }

    #[test]
    fn bidi_controls_in_every_string_of_a_row_are_escaped_without_a_pass_over_the_rows() {
        use std::sync::Arc;

        use crate::model::{NamespaceInfo, Process, UnitKind, UnreadableProcess};

        // Every string /proc, /run/netns or the kernel can put in the document carries U+202E, and nothing else
        // to escape (a control or a quote would send it to serde_json's escaper, which the test does not mean).
        let evil = |what: &str| format!("{what}\u{202e}x\u{2066}");
        let mut snapshot = crate::testing::fixture("busy.json");
        crate::sockopt::fill(&mut snapshot, false, None);
        crate::analyze::analyze(&mut snapshot, &crate::analyze::Thresholds::default());
        let netns = Arc::new(NetnsRef {
            inode: 4_026_532_174,
            name: Some(Arc::from(evil("netns"))),
        });
        snapshot.namespaces.push(NamespaceInfo {
            netns: (*netns).clone(),
            current: false,
            pid: Some(1),
            settings: Settings::default(),
            error: Some(evil("error")),
        });
        let mut evil_fields = 0;
        for c in &mut snapshot.connections {
            c.netns = Some(netns.clone());
            c.congestion = Some(crate::model::Congestion::from(evil("congestion").as_str()));
            evil_fields += 2;
        }
        let pids: Vec<u32> = snapshot.processes.keys().copied().collect();
        for pid in pids {
            snapshot.units.insert(
                pid,
                Unit {
                    kind: UnitKind::Systemd,
                    id: evil("unit"),
                    pod: Some(evil("pod")),
                },
            );
            snapshot.processes.insert(
                pid,
                Process {
                    pid,
                    comm: evil("comm"),
                    cmdline: vec![evil("cmd"), evil("arg")],
                    uid: Some(1000),
                    user: Some(evil("user")),
                },
            );
        }
        evil_fields += 2 * snapshot
            .connections
            .iter()
            .filter(|c| snapshot.unit_of(c).is_some())
            .count();
        snapshot.unreadable.push(UnreadableProcess {
            pid: 99,
            comm: Some(evil("unreadable")),
        });
        snapshot.warnings.push(evil("warning"));
        snapshot.host = evil("host");
        snapshot.kernel = evil("kernel");
        assert!(snapshot.connections.iter().any(|c| !c.findings.is_empty()));

        // Each row alone: the evil fields of the rows, and only those, are escaped.
        let mut escapes = 0;
        for c in &snapshot.connections {
            let row = SocketReport::in_snapshot(&snapshot, c);
            let fast = compact(&row);
            assert_eq!(fast, serde_escaped(&row));
            escapes += fast.matches("\\u202e").count();
        }
        assert_eq!(escapes, evil_fields);
        // The whole document: what serde_json writes with one pass of escape_bidi over all of it.
        let refs: Vec<&Connection> = snapshot.connections.iter().collect();
        let mut fast = Vec::new();
        write(&mut fast, &snapshot, &refs, 42).unwrap();
        let mut plain =
            escape_bidi(serde_json::to_vec(&Report::new(&snapshot, &refs, 42)).unwrap());
        plain.push(b'\n');
        let text = String::from_utf8(fast).unwrap();
        assert_eq!(text, String::from_utf8(plain).unwrap());
        assert!(!text.chars().any(crate::escape::is_bidi_control));
        for what in [
            "comm", "cmd", "arg", "user", "unit", "pod", "netns", "warning", "host",
        ] {
            assert!(text.contains(&format!("{what}\\u202e")), "{what}");
        }
    }

    #[test]
    fn socket_row_serializes_addresses_as_strings() {
        let a = conn(7, TcpState::Established, &[]);
        let v = serde_json::to_value(SocketReport::new(&a, &Settings::default())).unwrap();
        assert_eq!(v["local_addr"], "127.0.0.1");
        assert_eq!(v["state"], "established");
        assert_eq!(v["family"], "ipv4");
        assert_eq!(v["timer"]["kind"], "none");
        assert!(v["tcp_info"].is_null());
    }
}
