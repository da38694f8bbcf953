//! Plain data every view consumes: connections, timers, tcp_info, processes, findings, a snapshot.
//!
//! Field names follow the kernel's and carry their unit (`expires_ms`, `rtt_us`). Values the kernel did not
//! send are `None` (JSON `null`), never zero.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod congestion;
mod findings;
pub mod keepalive;
mod owners;
mod tcp_info;
pub use congestion::Congestion;
pub use findings::Findings;
use keepalive::{DeathCause, KeepaliveSettings};
pub use owners::Owners;
pub use tcp_info::{FIELDS as TCP_INFO_FIELDS, Field as TcpInfoField, TcpInfo, TcpInfoFields};

/// Address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// The kernel's address family number (AF_INET / AF_INET6).
    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => libc::AF_INET as u8,
            Family::Ipv6 => libc::AF_INET6 as u8,
        }
    }
}

/// TCP state as numbered in the kernel's `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    #[serde(rename = "fin-wait-1")]
    FinWait1 = 4,
    #[serde(rename = "fin-wait-2")]
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

impl TcpState {
    /// Every state, in kernel order.
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    pub fn from_kernel(n: u8) -> Option<TcpState> {
        TcpState::ALL.iter().copied().find(|s| *s as u8 == n)
    }

    /// The name used on the command line, in filters and in JSON (ss-style, lowercase).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn-sent",
            TcpState::SynRecv => "syn-recv",
            TcpState::FinWait1 => "fin-wait-1",
            TcpState::FinWait2 => "fin-wait-2",
            TcpState::TimeWait => "time-wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close-wait",
            TcpState::LastAck => "last-ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
            TcpState::NewSynRecv => "new-syn-recv",
        }
    }

    /// The short upper-case label `ss` prints (ESTAB, CLOSE-WAIT, ...), used in tables.
    pub fn label(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv | TcpState::NewSynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// Parses a state name as `ss` and kwatch accept it: `established`, `estab`, `close-wait`, `close_wait`,
    /// `CLOSE-WAIT`, `time-wait`, `listen`, `syn-recv`, ...
    pub fn parse(s: &str) -> Option<TcpState> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "estab" => return Some(TcpState::Established),
            "unconn" | "closed" => return Some(TcpState::Close),
            "syn-rcvd" => return Some(TcpState::SynRecv),
            _ => {}
        }
        TcpState::ALL.iter().copied().find(|st| st.name() == norm)
    }
}

/// A TCP state serialized by its documented name ([`TcpState::name`]: `fin-wait-1`), also as a map key.
///
/// The report pins its spelling here rather than relying on the model's serde attributes (which once wrote
/// `fin-wait1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateName(pub TcpState);

impl Serialize for StateName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which timer the kernel reports as pending (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// 0: no timer pending.
    None,
    /// 1: retransmit (also tail loss probe and RACK reorder timer).
    Retransmit,
    /// 2: keepalive (the socket's `sk_timer`).
    Keepalive,
    /// 3: TIME_WAIT expiry.
    TimeWait,
    /// 4: zero-window probe.
    ZeroWindowProbe,
}

impl TimerKind {
    pub fn from_kernel(n: u8) -> Option<TimerKind> {
        Some(match n {
            0 => TimerKind::None,
            1 => TimerKind::Retransmit,
            2 => TimerKind::Keepalive,
            3 => TimerKind::TimeWait,
            4 => TimerKind::ZeroWindowProbe,
            _ => return None,
        })
    }

    /// The word `ss -o` prints: `on`, `keepalive`, `timewait`, `persist`, `off`; kwatch uses clearer ones.
    pub fn label(self) -> &'static str {
        match self {
            TimerKind::None => "none",
            TimerKind::Retransmit => "retransmit",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "time_wait",
            TimerKind::ZeroWindowProbe => "zero_window_probe",
        }
    }
}

/// The pending timer: kind, milliseconds to expiry, and `idiag_retrans` (retransmits for the retransmit
/// timer, unanswered probes for keepalive and zero-window probe timers). In the kernel's widths (`idiag_expires`
/// is a u32, `idiag_retrans` a u8): 8 bytes, not 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub kind: TimerKind,
    pub expires_ms: u32,
    pub count: u8,
}

impl Timer {
    pub const NONE: Timer = Timer {
        kind: TimerKind::None,
        expires_ms: 0,
        count: 0,
    };
}

/// One process holding a socket through one of its file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub fd: u32,
}

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The text marker that shows the severity without colour, the same in the table, the live view and the
    /// exporter's docs: `!!` critical, `!` warning, `~` info.
    pub fn marker(self) -> &'static str {
        match self {
            Severity::Critical => "!!",
            Severity::Warning => "!",
            Severity::Info => "~",
        }
    }
}

/// Stable codes of what analysis can say about a socket. The JSON and the filter use these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    CloseWait,
    DeadPeerSuspect,
    NoKeepaliveIdle,
    Retransmitting,
    ZeroWindow,
    /// Process-level: a high share of its ESTABLISHED sockets has SO_KEEPALIVE off.
    KeepaliveOff,
    /// Process-level: a high share of its ESTABLISHED sockets relies on the default 7200 s keepalive idle.
    KeepaliveDefault,
}

impl FindingCode {
    pub const ALL: [FindingCode; 7] = [
        FindingCode::CloseWait,
        FindingCode::DeadPeerSuspect,
        FindingCode::NoKeepaliveIdle,
        FindingCode::Retransmitting,
        FindingCode::ZeroWindow,
        FindingCode::KeepaliveOff,
        FindingCode::KeepaliveDefault,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingCode::CloseWait => "close_wait",
            FindingCode::DeadPeerSuspect => "dead_peer_suspect",
            FindingCode::NoKeepaliveIdle => "no_keepalive_idle",
            FindingCode::Retransmitting => "retransmitting",
            FindingCode::ZeroWindow => "zero_window",
            FindingCode::KeepaliveOff => "keepalive_off",
            FindingCode::KeepaliveDefault => "keepalive_default",
        }
    }

    pub fn parse(s: &str) -> Option<FindingCode> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        FindingCode::ALL.iter().copied().find(|c| c.name() == norm)
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing analysis says about one socket: a stable code and a severity. Its plain sentence is written when
/// shown, from the socket (`analyze::explain`), so a snapshot of 200,000 stuck sockets holds no 200,000 sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
}

/// One thing analysis says about a whole process (`keepalive_off`, `keepalive_default`), with its sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFinding {
    pub code: FindingCode,
    pub severity: Severity,
    pub message: String,
}

/// One TCP socket from the sock_diag dump, joined with its owners and findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The kernel's socket cookie: stable for the socket's lifetime, unique among live sockets.
    pub cookie: u64,
    pub family: Family,
    pub state: TcpState,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub peer_addr: IpAddr,
    pub peer_port: u16,
    /// Bound interface index (`idiag_if`), 0 when not bound.
    pub interface: u32,
    /// Socket inode (0 for TIME_WAIT and orphaned sockets, which no process holds). 32 bits, as the kernel numbers
    /// socket inodes (`get_next_ino`) and dumps them (`idiag_inode`); 64 made the socket 176 bytes, not 168.
    pub inode: u32,
    pub uid: u32,
    /// For LISTEN: current accept-queue length; otherwise bytes received but not read by the program.
    pub recv_q: u32,
    /// For LISTEN: accept-queue limit (backlog); otherwise bytes sent but not yet acknowledged.
    pub send_q: u32,
    pub timer: Timer,
    /// `INET_DIAG_SHUTDOWN`: bit 0 = receive side shut down, bit 1 = send side.
    pub shutdown: Option<u8>,
    /// `INET_DIAG_CONG`: congestion control algorithm name, shared by the sockets using it.
    pub congestion: Option<Congestion>,
    /// `INET_DIAG_INFO`, absent for TIME_WAIT and SYN_RECV mini-sockets.
    pub tcp_info: Option<TcpInfo>,
    /// Every (pid, fd) that holds this socket, sorted.
    pub owners: Owners,
    /// Filled by analysis; empty for a healthy socket.
    pub findings: Findings,
    /// Keepalive options of ESTABLISHED and CLOSE_WAIT sockets: read from the socket, or assumed from the
    /// namespace sysctls (`source` says which). `None` for other states or when not collected.
    #[serde(default)]
    ///
    /// Shared: a host's sockets have a handful of distinct settings, and one per socket was 36 bytes of the
    /// ~300 each socket took (see [`crate::sockopt::Interner`]).
    pub keepalive: Option<Arc<KeepaliveSettings>>,
    /// The network namespace the socket lives in. `None` when not known (older snapshots).
    #[serde(default)]
    pub netns: Option<Arc<NetnsRef>>,
}

impl Connection {
    /// The worst severity among this socket's findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.worst()
    }

    pub fn is_stuck(&self) -> bool {
        !self.findings.is_empty()
    }

    /// Milliseconds since the peer was last heard (data or ack received), when tcp_info says: the quantity the
    /// kernel's `keepalive_time_elapsed()` measures, and the one every "heard" and "idle" figure of kwatch shows.
    pub fn heard_ms(&self) -> Option<u64> {
        newest(
            self.tcp_info.as_ref(),
            &[TcpInfo::last_data_recv_ms, TcpInfo::last_ack_recv_ms],
        )
    }

    /// Milliseconds since the last traffic either way (data received, ack received, data sent): how long the
    /// connection has been quiet.
    pub fn quiet_ms(&self) -> Option<u64> {
        newest(
            self.tcp_info.as_ref(),
            &[
                TcpInfo::last_data_recv_ms,
                TcpInfo::last_ack_recv_ms,
                TcpInfo::last_data_sent_ms,
            ],
        )
    }
}

/// Milliseconds since the newest of the given tcp_info ages that are present; `None` when none are.
fn newest(info: Option<&TcpInfo>, pick: &[fn(&TcpInfo) -> Option<u32>]) -> Option<u64> {
    let info = info?;
    pick.iter().filter_map(|f| f(info)).min().map(u64::from)
}

/// A network namespace as a socket carries it: the nsfs inode (what `lsns -t net` and `ls -iL /proc/PID/ns/net`
/// show) and its name under /run/netns, if it has one (what `ip netns` shows).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetnsRef {
    pub inode: u64,
    /// Shared by every socket of the namespace (a clone is a reference count, not a copy).
    #[serde(default)]
    pub name: Option<Arc<str>>,
}

impl NetnsRef {
    /// The name, or `ns:INODE` for an unnamed namespace.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.to_string(),
            None => format!("ns:{}", self.inode),
        }
    }
}

/// One network namespace of a snapshot: which, how it was found, its TCP settings, and whether its sockets are
/// listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    pub netns: NetnsRef,
    /// kwatch's own namespace.
    pub current: bool,
    /// A process running in it, when it was found through /proc rather than by name.
    pub pid: Option<u32>,
    /// Its own sysctls, read from inside it.
    pub settings: Settings,
    /// Why its sockets are missing (usually: no privilege to enter it); `None` when they were listed.
    pub error: Option<String>,
}

/// What runs a process, told from its cgroup (see `netns::cgroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    Docker,
    Containerd,
    #[serde(rename = "cri-o")]
    Crio,
    Podman,
    /// A Kubernetes pod's container whose runtime the cgroup path does not name.
    Container,
    /// A systemd service.
    Systemd,
}

impl UnitKind {
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Docker => "docker",
            UnitKind::Containerd => "containerd",
            UnitKind::Crio => "cri-o",
            UnitKind::Podman => "podman",
            UnitKind::Container => "container",
            UnitKind::Systemd => "systemd",
        }
    }
}

/// The container, Kubernetes pod or systemd service a process belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unit {
    pub kind: UnitKind,
    /// Container id (hex, as the runtime prints it in full), or the systemd unit name (`nginx.service`). Empty
    /// for a pod's own cgroup.
    pub id: String,
    /// Kubernetes pod uid, when the process runs in a pod.
    pub pod: Option<String>,
}

impl Unit {
    /// A short label: `docker:3f4e1b2c9d8a`, `pod:8a1b2c3d/containerd:3f4e1b2c9d8a`, `nginx.service`.
    pub fn label(&self) -> String {
        let short = |s: &str, n: usize| s.get(..n).unwrap_or(s).to_string();
        let own = match self.kind {
            UnitKind::Systemd => self.id.clone(),
            _ if self.id.is_empty() => String::new(),
            kind => format!("{}:{}", kind.name(), short(&self.id, 12)),
        };
        match &self.pod {
            Some(pod) if own.is_empty() => format!("pod:{}", short(pod, 8)),
            Some(pod) => format!("pod:{}/{own}", short(pod, 8)),
            None => own,
        }
    }
}

/// What kwatch knows of a process that holds at least one socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// `/proc/PID/comm`, raw (escape before display).
    pub comm: String,
    /// `/proc/PID/cmdline` split on NUL, raw (escape before display). Empty for kernel threads or zombies.
    pub cmdline: Vec<String>,
    pub uid: Option<u32>,
    /// User name from the passwd database, when the uid has one.
    pub user: Option<String>,
}

/// Where a process comes from: its parent and its executable, which group processes into services
/// (`analyze::services`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Parent pid (`/proc/PID/stat`).
    pub ppid: Option<u32>,
    /// `/proc/PID/exe`, raw (escape before display); `None` when it could not be read.
    pub exe: Option<String>,
}

/// A process whose fd table kwatch could not read (usually: not running as root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableProcess {
    pub pid: u32,
    pub comm: Option<String>,
}

/// A TCP socket a process still holds through an fd although the kernel has ended the connection (keepalive
/// timeout, reset, `ss -K`): absent from every dump while the fd leaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDeadSocket {
    pub pid: u32,
    pub fd: u32,
    pub inode: u32,
    /// `getsockname` of the dead socket (the peer is gone with the connection).
    pub local_addr: Option<IpAddr>,
    pub local_port: Option<u16>,
    /// `TCP_INFO` read from the socket: the counters at the time of death (`probes`, `retransmits`).
    pub tcp_info: Option<TcpInfo>,
    pub cause: DeathCause,
}

/// The network namespace's TCP settings that decide how long dead peers and closing sockets linger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub tcp_keepalive_time_s: Option<u32>,
    pub tcp_keepalive_intvl_s: Option<u32>,
    pub tcp_keepalive_probes: Option<u32>,
    pub tcp_retries2: Option<u32>,
    pub tcp_fin_timeout_s: Option<u32>,
}

impl Settings {
    /// True when keepalive runs on the kernel's 7200/75/9 defaults (2h11m15s to notice a dead peer).
    pub fn keepalive_is_default(&self) -> bool {
        self.tcp_keepalive_time_s == Some(7200)
            && self.tcp_keepalive_intvl_s == Some(75)
            && self.tcp_keepalive_probes == Some(9)
    }
}

/// One look at the system: every TCP socket with owners and findings, plus context. Serializable so that test
/// fixtures are readable JSON files; the JSON report (`output::json`) is a separate, documented type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wall-clock time the dump started, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// How long the kernel dump took.
    pub dump_us: u64,
    /// How long the /proc scan took.
    pub proc_scan_us: u64,
    pub host: String,
    pub kernel: String,
    pub settings: Settings,
    pub connections: Vec<Connection>,
    /// Processes that hold at least one listed socket, by pid.
    pub processes: BTreeMap<u32, Process>,
    /// Processes whose fds could not be read: their sockets show no owner.
    pub unreadable: Vec<UnreadableProcess>,
    /// Non-fatal problems worth telling the user (one line each).
    pub warnings: Vec<String>,
    /// TCP socket fds still held after the kernel ended the connection; empty when not looked for (filtered
    /// dump, `--no-sockopt`, or no permission to duplicate the fds).
    #[serde(default)]
    pub held_dead: Vec<HeldDeadSocket>,
    /// The network namespaces inspected, kwatch's own first; one entry without `--netns`/`--all-netns`.
    /// `settings` above is the first one's.
    #[serde(default)]
    pub namespaces: Vec<NamespaceInfo>,
    /// What runs each listed process (container, pod, systemd service), by pid, where its cgroup tells.
    #[serde(default)]
    pub units: BTreeMap<u32, Unit>,
    /// Each listed process's parent and executable, by pid, where /proc tells.
    #[serde(default)]
    pub lineage: BTreeMap<u32, Lineage>,
    /// kwatch ran as root: processes it could not read are kept from it by something root does not override
    /// (a security module, a kernel-protected process), so "run as root" would be no help.
    #[serde(default)]
    pub as_root: bool,
    /// The dump alone, shown while owners and socket options are read (the live view's first frame on a big
    /// host): no owner means "not read yet", not "none", and keepalive settings are assumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owners_pending: bool,
}

impl Snapshot {
    /// What to do about processes whose fds could not be read, as a phrase ("run as root to see ...").
    pub fn unreadable_hint(&self) -> &'static str {
        if self.as_root {
            "not even root may read them"
        } else {
            "run as root to see their sockets"
        }
    }

    /// The footer line and JSON warning about processes whose fds could not be read, `None` when there are none:
    /// `3 processes could not be read; run as root to see their sockets`.
    pub fn unreadable_line(&self) -> Option<String> {
        let n = self.unreadable.len();
        (n > 0).then(|| {
            let noun = if n == 1 { "process" } else { "processes" };
            format!("{n} {noun} could not be read; {}", self.unreadable_hint())
        })
    }

    /// Whether a socket's owner is unknown rather than absent: none was found, yet a process holds it (it has an
    /// inode) and some processes could not be read. Shown as `?`, never as a blank.
    pub fn owner_unknown(&self, conn: &Connection) -> bool {
        conn.owners.is_empty() && conn.inode != 0 && !self.unreadable.is_empty()
    }

    /// A display name for a pid: its comm, or `?` when unknown.
    pub fn comm(&self, pid: u32) -> &str {
        self.processes.get(&pid).map_or("?", |p| p.comm.as_str())
    }

    /// The TCP settings of the namespace a socket lives in (the snapshot's `settings` when not known).
    pub fn settings_of(&self, conn: &Connection) -> &Settings {
        settings_in(&self.namespaces, &self.settings, conn)
    }

    /// The namespace with this inode, if inspected.
    pub fn namespace(&self, inode: u64) -> Option<&NamespaceInfo> {
        self.namespaces.iter().find(|n| n.netns.inode == inode)
    }

    /// What runs a socket's first owner that has a known unit.
    pub fn unit_of(&self, conn: &Connection) -> Option<&Unit> {
        conn.owners.iter().find_map(|o| self.units.get(&o.pid))
    }
}

/// The TCP settings of `conn`'s namespace among `namespaces`, else `default`: [`Snapshot::settings_of`] for a
/// caller that holds the snapshot's connections mutably.
pub fn settings_in<'a>(
    namespaces: &'a [NamespaceInfo],
    default: &'a Settings,
    conn: &Connection,
) -> &'a Settings {
    conn.netns
        .as_ref()
        .and_then(|ns| namespaces.iter().find(|n| n.netns.inode == ns.inode))
        .map_or(default, |info| &info.settings)
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_state_names_equal_the_cli_names() {
        for state in TcpState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.name()));
            assert_eq!(TcpState::parse(state.name()), Some(state));
        }
    }

    #[test]
    fn a_socket_stays_small() {
        // A snapshot holds one `Connection` per socket: at a million sockets every 8 bytes here are 7.6 MiB of
        // `kwatch --once --json`'s peak and of each snapshot the live view, the exporter and the recorder hold.
        assert_eq!(std::mem::size_of::<Timer>(), 8);
        assert_eq!(std::mem::size_of::<Option<Congestion>>(), 8);
        let size = std::mem::size_of::<Connection>();
        assert!(size <= 168, "Connection grew to {size} bytes");
    }

    #[test]
    fn finding_and_timer_names_round_trip() {
        for code in FindingCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.name())
            );
            assert_eq!(FindingCode::parse(code.name()), Some(code));
        }
        for n in 0..5 {
            let kind = TimerKind::from_kernel(n).unwrap();
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.label())
            );
        }
        assert_eq!(TimerKind::from_kernel(5), None);
    }
}
