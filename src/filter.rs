//! Pure filters on connections (port, pid, state, family, stuck, finding code, process name), shared by the CLI
//! and the TUI.
//!
//! Empty lists put no constraint. Values within one list are alternatives (OR); the fields combine with AND.
//! The text form, typed at the TUI's `/` prompt, is whitespace-separated terms:
//!
//! | term | meaning |
//! |---|---|
//! | `port:443` | local or peer port |
//! | `sport:443`, `dport:5432` | local port, peer port |
//! | `pid:1234` | any owning process |
//! | `state:close-wait` | TCP state (`ss` names: `estab`, `close_wait`, ... also accepted) |
//! | `code:close_wait` | has this finding |
//! | `comm:nginx` or bare `nginx` | an owner's process name is exactly this (case counts, as in `pgrep -x`) |
//! | `comm:php-fpm*`, `comm:worker?` | an owner's process name matches this glob: `*` any run of characters, `?` one |
//! | `netns:web`, `netns:4026532` | network namespace, by name (under /run/netns) or inode |
//! | `stuck` | has any finding |
//! | `4`, `ipv4`, `6`, `ipv6` | address family |
//!
//! A term may list several values separated by commas: `port:80,443`.

use std::fmt;

use thiserror::Error;

use crate::model::{Connection, Family, FindingCode, Snapshot, TcpState};

/// A filter on connections. `Default` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Local or peer port.
    pub ports: Vec<u16>,
    /// Local port.
    pub sports: Vec<u16>,
    /// Peer port.
    pub dports: Vec<u16>,
    /// Any owner's pid.
    pub pids: Vec<u32>,
    pub states: Vec<TcpState>,
    /// Only sockets with at least one finding.
    pub stuck: bool,
    pub family: Option<Family>,
    /// Sockets carrying at least one of these findings.
    pub codes: Vec<FindingCode>,
    /// An owner's `comm`, exactly, or a glob with `*` and `?` (see [`comm_matches`]). Needs process names:
    /// only [`Filter::matches_in`] checks it; [`Filter::matches`] ignores it.
    pub comm: Vec<String>,
    /// Network namespaces, by name (as under /run/netns) or inode; `ns:INODE` is also accepted.
    pub netns: Vec<String>,
}

/// Why a filter value or filter text was refused. The messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("invalid port '{0}': must be 1-65535")]
    InvalidPort(String),
    #[error("invalid pid '{0}': must be a positive integer")]
    InvalidPid(String),
    #[error("unknown state '{0}': expected one of {list}", list = state_names())]
    UnknownState(String),
    #[error("unknown finding code '{0}': expected one of {list}", list = code_names())]
    UnknownCode(String),
    #[error("unknown family '{0}': expected 4, 6, ipv4 or ipv6")]
    UnknownFamily(String),
    #[error("empty process name in '{0}'")]
    EmptyComm(String),
    #[error(
        "process name '{0}' is longer than 15 bytes, which the kernel never reports (it cuts names there): \
         write its first 15 bytes, or end it with *"
    )]
    LongComm(String),
    #[error("empty network namespace in '{0}'")]
    EmptyNetns(String),
    #[error(
        "unknown filter term '{0}': expected port:, sport:, dport:, pid:, state:, code:, comm:, netns:, stuck, 4 or 6"
    )]
    UnknownTerm(String),
    #[error("ambiguous term '{0}': write port:{0} or pid:{0}")]
    BareNumber(String),
    #[error("'{0}' is a state: write state:{0}")]
    BareState(String),
    #[error("'{0}' is a finding code: write code:{0}")]
    BareCode(String),
    #[error("conflicting terms '{0}' and '{1}': a socket has one address family")]
    ConflictingFamily(String, String),
}

fn state_names() -> String {
    TcpState::ALL
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn code_names() -> String {
    FindingCode::ALL
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a port, 1-65535: `invalid port '70000': must be 1-65535`. Usable as a clap `value_parser`.
pub fn parse_port(s: &str) -> Result<u16, FilterError> {
    match s.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(FilterError::InvalidPort(s.to_string())),
    }
}

/// Parses a pid, a positive integer: `invalid pid '0': must be a positive integer`. Usable as a clap
/// `value_parser`.
pub fn parse_pid(s: &str) -> Result<u32, FilterError> {
    match s.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(FilterError::InvalidPid(s.to_string())),
    }
}

/// Parses a TCP state name as [`TcpState::parse`] does. Usable as a clap `value_parser`.
pub fn parse_state(s: &str) -> Result<TcpState, FilterError> {
    TcpState::parse(s).ok_or_else(|| FilterError::UnknownState(s.to_string()))
}

/// Parses a finding code (`close_wait`, `close-wait`, ...). Usable as a clap `value_parser`.
pub fn parse_code(s: &str) -> Result<FindingCode, FilterError> {
    FindingCode::parse(s).ok_or_else(|| FilterError::UnknownCode(s.to_string()))
}

/// Parses an address family: `4`, `ipv4`, `inet`, `6`, `ipv6`, `inet6`. Usable as a clap `value_parser`.
pub fn parse_family(s: &str) -> Result<Family, FilterError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "4" | "ipv4" | "inet" => Ok(Family::Ipv4),
        "6" | "ipv6" | "inet6" => Ok(Family::Ipv6),
        _ => Err(FilterError::UnknownFamily(s.to_string())),
    }
}

fn family_text(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "4",
        Family::Ipv6 => "6",
    }
}

/// The family words that are filter terms; `inet` and `inet6` stay process names in text filters.
fn bare_family(lower: &str) -> Option<Family> {
    match lower {
        "4" | "ipv4" => Some(Family::Ipv4),
        "6" | "ipv6" => Some(Family::Ipv6),
        _ => None,
    }
}

/// Whether a socket lives in the namespace `want` names: its name, its inode, or `ns:INODE`.
fn netns_matches(want: &str, c: &Connection) -> bool {
    let Some(ns) = &c.netns else {
        return false;
    };
    let inode = want.strip_prefix("ns:").unwrap_or(want);
    ns.name.as_deref() == Some(want) || inode.parse::<u64>().is_ok_and(|i| i == ns.inode)
}

/// The kernel's limit on `/proc/PID/comm`: TASK_COMM_LEN (16) less the terminating NUL.
const COMM_MAX: usize = 15;

/// Whether process name `name` matches `pattern`: the whole name, case included, where `*` stands for any run of
/// characters (also none) and `?` for exactly one; every other character stands for itself.
pub fn comm_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative wildcard matching: on a mismatch, go back to the last `*` and let it take one more character.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Checks a `comm` value: not empty, and not a plain name the kernel could never report.
fn parse_comm(value: &str, term: &str) -> Result<String, FilterError> {
    if value.is_empty() {
        return Err(FilterError::EmptyComm(term.to_string()));
    }
    if value.len() > COMM_MAX && !value.contains(['*', '?']) {
        return Err(FilterError::LongComm(value.to_string()));
    }
    Ok(value.to_string())
}

fn any_or<T>(wanted: &[T], pred: impl FnMut(&T) -> bool) -> bool {
    wanted.is_empty() || wanted.iter().any(pred)
}

impl Filter {
    /// True when no field constrains anything.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether the connection passes every constraint except `comm` (which needs process names: use
    /// [`Filter::matches_in`] when the filter may carry one). `stuck` and `codes` read `findings`, so analyze first.
    pub fn matches(&self, c: &Connection) -> bool {
        any_or(&self.ports, |p| *p == c.local_port || *p == c.peer_port)
            && any_or(&self.sports, |p| *p == c.local_port)
            && any_or(&self.dports, |p| *p == c.peer_port)
            && any_or(&self.pids, |pid| c.owners.iter().any(|o| o.pid == *pid))
            && any_or(&self.states, |s| *s == c.state)
            && any_or(&self.codes, |code| {
                c.findings.iter().any(|f| f.code == *code)
            })
            && (!self.stuck || c.is_stuck())
            && self.family.is_none_or(|f| f == c.family)
            && any_or(&self.netns, |want| netns_matches(want, c))
    }

    /// [`Filter::matches`] plus `comm`: some owner's process name (from the snapshot) is one of the `comm`
    /// names, or matches one of the globs ([`comm_matches`]). A socket with no known owner never matches a
    /// `comm` constraint.
    pub fn matches_in(&self, c: &Connection, snapshot: &Snapshot) -> bool {
        self.matches(c)
            && (self.comm.is_empty()
                || c.owners.iter().any(|o| {
                    snapshot
                        .processes
                        .get(&o.pid)
                        .is_some_and(|p| self.comm.iter().any(|want| comm_matches(want, &p.comm)))
                }))
    }

    /// Drops the sockets of `snapshot` this filter does not show, in place: no copy of the sockets and no
    /// per-socket memory beside them (the matching needs only the snapshot's processes).
    /// A copy of `snapshot` with only the sockets this filter keeps (the rest of it copied whole).
    pub fn matching_copy(&self, snapshot: &Snapshot) -> Snapshot {
        let Snapshot {
            taken_at_unix_ms,
            dump_us,
            proc_scan_us,
            host,
            kernel,
            settings,
            connections,
            processes,
            unreadable,
            warnings,
            held_dead,
            namespaces,
            units,
            lineage,
            as_root,
            owners_pending,
        } = snapshot;
        Snapshot {
            taken_at_unix_ms: *taken_at_unix_ms,
            dump_us: *dump_us,
            proc_scan_us: *proc_scan_us,
            host: host.clone(),
            kernel: kernel.clone(),
            settings: *settings,
            connections: connections
                .iter()
                .filter(|c| self.matches_in(c, snapshot))
                .cloned()
                .collect(),
            processes: processes.clone(),
            unreadable: unreadable.clone(),
            warnings: warnings.clone(),
            held_dead: held_dead.clone(),
            namespaces: namespaces.clone(),
            units: units.clone(),
            lineage: lineage.clone(),
            as_root: *as_root,
            owners_pending: *owners_pending,
        }
    }

    pub fn retain_matching(&self, snapshot: &mut Snapshot) {
        if self.is_empty() {
            return;
        }
        let mut conns = std::mem::take(&mut snapshot.connections);
        conns.retain(|c| self.matches_in(c, snapshot));
        snapshot.connections = conns;
    }

    /// Parses the text form (see the module docs). Empty or blank text is the empty filter.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        let mut family_term: Option<&str> = None;
        for term in text.split_whitespace() {
            if let Some((key, value)) = term.split_once(':') {
                let values = value.split(',');
                match key.to_ascii_lowercase().as_str() {
                    "port" => f
                        .ports
                        .extend(values.map(parse_port).collect::<Result<Vec<_>, _>>()?),
                    "sport" => f
                        .sports
                        .extend(values.map(parse_port).collect::<Result<Vec<_>, _>>()?),
                    "dport" => f
                        .dports
                        .extend(values.map(parse_port).collect::<Result<Vec<_>, _>>()?),
                    "pid" => f
                        .pids
                        .extend(values.map(parse_pid).collect::<Result<Vec<_>, _>>()?),
                    "state" => f
                        .states
                        .extend(values.map(parse_state).collect::<Result<Vec<_>, _>>()?),
                    "code" => f
                        .codes
                        .extend(values.map(parse_code).collect::<Result<Vec<_>, _>>()?),
                    "netns" => {
                        for v in values {
                            if v.is_empty() {
                                return Err(FilterError::EmptyNetns(term.to_string()));
                            }
                            f.netns.push(v.to_string());
                        }
                    }
                    "comm" => {
                        for v in values {
                            f.comm.push(parse_comm(v, term)?);
                        }
                    }
                    _ => return Err(FilterError::UnknownTerm(term.to_string())),
                }
                continue;
            }
            let lower = term.to_ascii_lowercase();
            if lower == "stuck" {
                f.stuck = true;
            } else if let Some(family) = bare_family(&lower) {
                if let Some(prev) = family_term.filter(|_| f.family != Some(family)) {
                    return Err(FilterError::ConflictingFamily(
                        prev.to_string(),
                        term.to_string(),
                    ));
                }
                family_term = Some(term);
                f.family = Some(family);
            } else if term.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FilterError::BareNumber(term.to_string()));
            } else if TcpState::parse(term).is_some() {
                return Err(FilterError::BareState(term.to_string()));
            } else if FindingCode::parse(term).is_some() {
                return Err(FilterError::BareCode(term.to_string()));
            } else {
                f.comm.push(parse_comm(term, term)?);
            }
        }
        Ok(f)
    }

    /// The text form, one term per value, explicit keys: `Filter::parse(&f.to_text()) == Ok(f)` for any filter
    /// whose `comm` values are non-empty and hold no whitespace or comma (the parser produces no others). The empty
    /// filter is the empty string.
    pub fn to_text(&self) -> String {
        let mut terms: Vec<String> = Vec::new();
        terms.extend(self.ports.iter().map(|p| format!("port:{p}")));
        terms.extend(self.sports.iter().map(|p| format!("sport:{p}")));
        terms.extend(self.dports.iter().map(|p| format!("dport:{p}")));
        terms.extend(self.pids.iter().map(|p| format!("pid:{p}")));
        terms.extend(self.states.iter().map(|s| format!("state:{}", s.name())));
        terms.extend(self.codes.iter().map(|c| format!("code:{}", c.name())));
        terms.extend(self.comm.iter().map(|c| format!("comm:{c}")));
        terms.extend(self.netns.iter().map(|n| format!("netns:{n}")));
        if self.stuck {
            terms.push("stuck".to_string());
        }
        if let Some(family) = self.family {
            terms.push(family_text(family).to_string());
        }
        terms.join(" ")
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;
    use crate::model::{Finding, Owner, Process, Severity};

    fn conn(local_port: u16, peer_port: u16, pids: &[u32], state: TcpState) -> Connection {
        Connection {
            state,
            local_port,
            peer_port,
            owners: pids.iter().map(|&pid| Owner { pid, fd: 3 }).collect(),
            ..crate::testing::conn()
        }
    }

    fn with_finding(mut c: Connection, code: FindingCode) -> Connection {
        c.findings.insert(Finding {
            code,
            severity: Severity::Warning,
        });
        c
    }

    fn f(text: &str) -> Filter {
        Filter::parse(text).unwrap()
    }

    #[test]
    fn empty_filter_matches_everything() {
        let filter = Filter::default();
        assert!(filter.is_empty());
        assert!(filter.matches(&conn(1, 2, &[], TcpState::TimeWait)));
        assert!(filter.matches(&conn(443, 50000, &[7], TcpState::Established)));
    }

    #[test]
    fn ports_match_either_end_sports_local_dports_peer() {
        let c = conn(443, 50000, &[], TcpState::Established);
        assert!(f("port:443").matches(&c));
        assert!(f("port:50000").matches(&c));
        assert!(!f("port:80").matches(&c));
        assert!(f("sport:443").matches(&c));
        assert!(!f("sport:50000").matches(&c));
        assert!(f("dport:50000").matches(&c));
        assert!(!f("dport:443").matches(&c));
    }

    #[test]
    fn pids_match_any_owner() {
        let shared = conn(443, 0, &[10, 20], TcpState::Listen);
        assert!(f("pid:20").matches(&shared));
        assert!(!f("pid:30").matches(&shared));
        assert!(!f("pid:10").matches(&conn(443, 0, &[], TcpState::Listen)));
    }

    #[test]
    fn states_family_stuck_and_codes() {
        let cw = conn(1, 2, &[], TcpState::CloseWait);
        assert!(f("state:close-wait").matches(&cw));
        assert!(!f("state:listen").matches(&cw));

        let mut v6 = conn(1, 2, &[], TcpState::Established);
        v6.family = Family::Ipv6;
        v6.local_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(f("6").matches(&v6) && f("ipv6").matches(&v6));
        assert!(!f("4").matches(&v6));
        assert!(f("4").matches(&cw));

        assert!(!f("stuck").matches(&cw));
        let stuck = with_finding(cw, FindingCode::CloseWait);
        assert!(f("stuck").matches(&stuck));
        assert!(f("code:close_wait").matches(&stuck));
        assert!(!f("code:zero_window").matches(&stuck));
    }

    #[test]
    fn or_within_a_list_and_across_lists() {
        let c = conn(443, 50000, &[10], TcpState::Established);
        assert!(f("port:80,443").matches(&c));
        assert!(f("port:80 port:443").matches(&c));
        assert!(f("state:listen,established").matches(&c));
        assert!(f("port:443 pid:10 state:estab 4").matches(&c));
        assert!(!f("port:443 pid:11").matches(&c));
        assert!(!f("port:443 state:listen").matches(&c));
        assert!(!f("port:443 6").matches(&c));
        assert!(!f("port:443 stuck").matches(&c));
    }

    #[test]
    fn netns_by_name_or_inode() {
        use crate::model::NetnsRef;
        use std::sync::Arc;
        let mut named = conn(1, 2, &[], TcpState::Established);
        named.netns = Some(Arc::new(NetnsRef {
            inode: 4_026_532,
            name: Some("web".into()),
        }));
        let mut anon = conn(1, 2, &[], TcpState::Established);
        anon.netns = Some(Arc::new(NetnsRef {
            inode: 4_026_999,
            name: None,
        }));
        let unknown = conn(1, 2, &[], TcpState::Established);
        assert!(f("netns:web").matches(&named));
        assert!(f("netns:4026532").matches(&named));
        assert!(f("netns:ns:4026532").matches(&named));
        assert!(!f("netns:web").matches(&anon));
        assert!(f("netns:db,4026999").matches(&anon));
        assert!(f("netns:ns:4026999").matches(&anon));
        assert!(!f("netns:web").matches(&unknown));
        assert!(f("port:1").matches(&unknown));
    }

    /// A `(pid, Process)` entry of a snapshot's process map.
    fn process(pid: u32, comm: &str) -> (u32, Process) {
        (
            pid,
            Process {
                pid,
                comm: comm.into(),
                cmdline: vec![],
                uid: None,
                user: None,
            },
        )
    }

    #[test]
    fn comm_needs_the_snapshot() {
        let c = conn(443, 50000, &[10, 20], TcpState::Established);
        let orphan = conn(443, 50000, &[], TcpState::Established);
        let snap = Snapshot {
            processes: [process(10, "nginx"), process(20, "Java")]
                .into_iter()
                .collect(),
            ..Snapshot::default()
        };
        assert!(f("Java").matches_in(&c, &snap));
        assert!(f("comm:nginx").matches_in(&c, &snap));
        assert!(f("comm:postgres,Java").matches_in(&c, &snap));
        assert!(f("comm:ngi*").matches_in(&c, &snap));
        assert!(!f("postgres").matches_in(&c, &snap));
        assert!(!f("nginx").matches_in(&orphan, &snap));
        assert!(!f("nginx port:80").matches_in(&c, &snap));
        // matches() alone ignores comm.
        assert!(f("postgres").matches(&c));
        // Empty comm list: matches_in agrees with matches.
        assert!(f("port:443").matches_in(&orphan, &snap));
    }

    #[test]
    fn retain_matching_keeps_exactly_what_matches_in_shows_in_order() {
        let mut snap = Snapshot {
            processes: [process(10, "nginx"), process(20, "Java")]
                .into_iter()
                .collect(),
            connections: vec![
                conn(443, 1, &[10], TcpState::Established),
                conn(80, 2, &[20], TcpState::Established),
                conn(443, 3, &[], TcpState::Established),
                conn(443, 4, &[20, 10], TcpState::CloseWait),
            ],
            ..Snapshot::default()
        };
        let whole = snap.clone();
        Filter::default().retain_matching(&mut snap);
        assert_eq!(snap, whole);
        assert_eq!(Filter::default().matching_copy(&snap), whole);
        let port = Filter::parse("port:443").unwrap();
        let mut cut = whole.clone();
        port.retain_matching(&mut cut);
        assert_eq!(port.matching_copy(&whole), cut);
        f("nginx port:443").retain_matching(&mut snap);
        let peers: Vec<u16> = snap.connections.iter().map(|c| c.peer_port).collect();
        assert_eq!(peers, [1, 4]);
        assert_eq!(snap.processes, whole.processes);
    }

    #[test]
    fn comm_is_the_whole_name_or_a_glob() {
        let names = [
            "app",
            "myapp-billing",
            "whatsapp",
            "Happy",
            "app-worker",
            "APP",
        ];
        let snap = Snapshot {
            processes: names
                .iter()
                .enumerate()
                .map(|(i, n)| process(i as u32 + 1, n))
                .collect(),
            ..Snapshot::default()
        };
        let matching = |text: &str| -> Vec<&str> {
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    f(text).matches_in(&conn(1, 2, &[*i as u32 + 1], TcpState::Established), &snap)
                })
                .map(|(_, n)| *n)
                .collect()
        };
        assert_eq!(matching("comm:app"), vec!["app"]);
        assert_eq!(matching("app"), vec!["app"]);
        assert_eq!(matching("comm:app*"), vec!["app", "app-worker"]);
        assert_eq!(matching("comm:*app"), vec!["app", "whatsapp"]);
        assert_eq!(
            matching("comm:*app*"),
            vec!["app", "myapp-billing", "whatsapp", "Happy", "app-worker"]
        );
        assert_eq!(matching("comm:?app?"), vec!["Happy"]);
        assert_eq!(matching("comm:APP,Happy"), vec!["Happy", "APP"]);
        assert_eq!(matching("comm:*"), names.to_vec());
    }

    #[test]
    fn glob_matching_backtracks_and_is_literal_otherwise() {
        for (pattern, name, want) in [
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("*", "", true),
            ("?", "", false),
            ("", "", true),
            ("", "a", false),
            ("**a", "ba", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]", "a", false),
            ("[ab]", "[ab]", true),
            ("kworker/*", "kworker/0:1", true),
            ("名*", "名前", true),
            ("?", "前", true),
        ] {
            assert_eq!(comm_matches(pattern, name), want, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn validators_exact_messages() {
        assert_eq!(parse_port("443"), Ok(443));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["70000", "abc", "0", "-1", "", "65536"] {
            assert_eq!(
                parse_port(bad).unwrap_err().to_string(),
                format!("invalid port '{bad}': must be 1-65535")
            );
        }
        assert_eq!(parse_pid("1234"), Ok(1234));
        for bad in ["0", "-1", "x", "", "4294967296"] {
            assert_eq!(
                parse_pid(bad).unwrap_err().to_string(),
                format!("invalid pid '{bad}': must be a positive integer")
            );
        }
        assert_eq!(parse_state("CLOSE_WAIT"), Ok(TcpState::CloseWait));
        assert_eq!(
            parse_state("bogus").unwrap_err().to_string(),
            "unknown state 'bogus': expected one of established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, \
             time-wait, close, close-wait, last-ack, listen, closing, new-syn-recv"
        );
        assert_eq!(parse_code("close-wait"), Ok(FindingCode::CloseWait));
        assert_eq!(
            parse_code("nope").unwrap_err().to_string(),
            "unknown finding code 'nope': expected one of close_wait, dead_peer_suspect, no_keepalive_idle, \
             retransmitting, zero_window, keepalive_off, keepalive_default"
        );
        assert_eq!(parse_family("inet6"), Ok(Family::Ipv6));
        assert_eq!(
            parse_family("7").unwrap_err().to_string(),
            "unknown family '7': expected 4, 6, ipv4 or ipv6"
        );
    }

    #[test]
    fn validators_work_as_clap_value_parsers() {
        let cmd = clap::Command::new("t")
            .arg(clap::Arg::new("port").long("port").value_parser(parse_port))
            .arg(clap::Arg::new("pid").long("pid").value_parser(parse_pid));
        let m = cmd
            .clone()
            .try_get_matches_from(["t", "--port", "443", "--pid", "7"])
            .unwrap();
        assert_eq!(m.get_one::<u16>("port"), Some(&443));
        assert_eq!(m.get_one::<u32>("pid"), Some(&7));
        let err = cmd
            .try_get_matches_from(["t", "--port", "70000"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid port '70000': must be 1-65535"),
            "{err}"
        );
    }

    #[test]
    fn parses_every_term() {
        let want = Filter {
            ports: vec![443, 80],
            sports: vec![22],
            dports: vec![5432],
            pids: vec![1234],
            states: vec![TcpState::CloseWait, TcpState::Established],
            stuck: true,
            family: Some(Family::Ipv6),
            codes: vec![FindingCode::DeadPeerSuspect],
            comm: vec!["nginx".into(), "java".into()],
            netns: vec!["web".into(), "4026532".into()],
        };
        let text = "port:443,80 sport:22 DPORT:5432 pid:1234 state:close-wait state:estab \
                    code:dead-peer-suspect nginx comm:java stuck ipv6 netns:web,4026532";
        assert_eq!(Filter::parse(text), Ok(want));
        assert_eq!(Filter::parse("   "), Ok(Filter::default()));
        assert_eq!(f("4 ipv4").family, Some(Family::Ipv4));
        assert_eq!(f("inet").comm, vec!["inet".to_string()]);
    }

    #[test]
    fn parse_errors_name_the_culprit() {
        let err = |text: &str| Filter::parse(text).unwrap_err().to_string();
        assert_eq!(err("port:70000"), "invalid port '70000': must be 1-65535");
        assert_eq!(err("port:80,"), "invalid port '': must be 1-65535");
        assert_eq!(err("sport:abc"), "invalid port 'abc': must be 1-65535");
        assert_eq!(err("pid:0"), "invalid pid '0': must be a positive integer");
        assert!(
            err("state:bogus")
                .starts_with("unknown state 'bogus': expected one of established, syn-sent")
        );
        assert!(
            err("code:bogus")
                .starts_with("unknown finding code 'bogus': expected one of close_wait")
        );
        assert_eq!(
            err("port:443 foo:bar"),
            "unknown filter term 'foo:bar': expected port:, sport:, dport:, pid:, state:, code:, comm:, netns:, stuck, 4 or 6"
        );
        assert_eq!(
            err("443"),
            "ambiguous term '443': write port:443 or pid:443"
        );
        assert_eq!(
            err("close-wait"),
            "'close-wait' is a state: write state:close-wait"
        );
        assert_eq!(err("listen"), "'listen' is a state: write state:listen");
        assert_eq!(
            err("zero_window"),
            "'zero_window' is a finding code: write code:zero_window"
        );
        assert_eq!(err("comm:"), "empty process name in 'comm:'");
        assert_eq!(
            err("comm:myapp-billing-worker"),
            "process name 'myapp-billing-worker' is longer than 15 bytes, which the kernel never reports \
             (it cuts names there): write its first 15 bytes, or end it with *"
        );
        assert_eq!(f("comm:myapp-billing-wo*").comm, vec!["myapp-billing-wo*"]);
        assert_eq!(err("netns:"), "empty network namespace in 'netns:'");
        assert_eq!(
            err("4 6"),
            "conflicting terms '4' and '6': a socket has one address family"
        );
    }

    #[test]
    fn text_round_trips() {
        let cases = [
            "",
            "port:443",
            "port:80 port:443 sport:22 dport:5432 pid:1 pid:99 state:close-wait state:time-wait \
             code:close_wait code:zero_window comm:nginx comm:stuck netns:web netns:ns:7 stuck 6",
            "4",
        ];
        for text in cases {
            let parsed = f(text);
            assert_eq!(parsed.to_text(), text);
            assert_eq!(Filter::parse(&parsed.to_text()), Ok(parsed.clone()));
            assert_eq!(parsed.to_string(), text);
            assert_eq!(text.parse::<Filter>(), Ok(parsed));
        }
        // Non-canonical input comes back in canonical form and parses to the same filter.
        let messy = f("ipv4 nginx STATE:ESTAB port:80,443");
        assert_eq!(
            messy.to_text(),
            "port:80 port:443 state:established comm:nginx 4"
        );
        assert_eq!(f(&messy.to_text()), messy);
    }
}
