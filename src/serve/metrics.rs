//! Pure: a snapshot as Prometheus metrics in the text exposition format (0.0.4), no clock, no I/O.
//!
//! Every series kwatch exports is listed here with its HELP text. Per-process series are keyed by `comm` (and
//! `pid` with `--pid-label`): processes sharing a comm are one series, and a socket they share counts once.
//! When a snapshot covers other network namespaces than kwatch's own (`--netns`, `--all-netns`), socket and
//! settings series carry a `netns` label (the name under /run/netns, or `ns:INODE`); when it knows which
//! container, pod or systemd service runs a process, per-process series carry a `unit` label.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::analyze;
use crate::escape::escape;
use crate::model::keepalive::DeathCause;
use crate::model::{Connection, FindingCode, Settings, Snapshot, TcpState, TimerKind};

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// What to label per-process series with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Add a `pid` label: one series per process instead of per comm (more series: a fleet of short-lived
    /// processes makes one new series each).
    pub pid_label: bool,
}

/// kwatch's own numbers, kept by the server across scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfStats {
    /// How long the collection of the snapshot being served took.
    pub scrape_duration: Duration,
    /// Scrapes that got no snapshot (collection failed or timed out) since the server started.
    pub scrape_errors: u64,
    /// Collections started since the server started (scrapes within `--min-interval` share one).
    pub collections: u64,
    /// Connection deaths counted since the server started; `None` when destroy notifications are not received
    /// (no series then).
    pub deaths: Option<DeathCounts>,
}

/// Deaths of sockets kwatch had seen in an earlier snapshot, from the kernel's destroy notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeathCounts {
    /// By (cause as [`cause_name`] names it, comm of the owner when last seen, raw; `?` when it had none).
    pub by_cause: BTreeMap<(&'static str, String), u64>,
    /// Destroy notifications lost (the kernel's buffer or kwatch's queue was full): deaths undercounted.
    pub lost: u64,
}

/// Which optional labels this snapshot's series carry.
#[derive(Debug, Clone, Copy)]
struct Labeling {
    pid: bool,
    netns: bool,
    unit: bool,
}

impl Labeling {
    fn of(snapshot: &Snapshot, opts: MetricsOptions) -> Labeling {
        Labeling {
            pid: opts.pid_label,
            netns: snapshot.namespaces.len() > 1 || snapshot.namespaces.iter().any(|n| !n.current),
            unit: !snapshot.units.is_empty(),
        }
    }

    /// Label names of per-process series.
    fn process_labels(self) -> Vec<&'static str> {
        let mut v = vec!["comm"];
        v.extend(self.netns.then_some("netns"));
        v.extend(self.unit.then_some("unit"));
        v.extend(self.pid.then_some("pid"));
        v
    }
}

/// The `netns` label of a socket: empty when the socket's namespace is not known.
fn netns_label(conn: &Connection) -> String {
    conn.netns
        .as_ref()
        .map(|n| escape(&n.label()).into_owned())
        .unwrap_or_default()
}

/// Which series one process's sockets go to; the fields not labelled are left empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ProcessKey {
    /// Escaped comm: control characters made visible (a process picks its own name).
    comm: String,
    netns: String,
    unit: String,
    pid: Option<u32>,
}

impl ProcessKey {
    fn new(snapshot: &Snapshot, pid: u32, netns: &str, labeling: Labeling) -> ProcessKey {
        ProcessKey {
            comm: escape(snapshot.comm(pid)).into_owned(),
            netns: if labeling.netns {
                netns.to_string()
            } else {
                String::new()
            },
            unit: match snapshot.units.get(&pid) {
                Some(u) if labeling.unit => escape(&u.label()).into_owned(),
                _ => String::new(),
            },
            pid: labeling.pid.then_some(pid),
        }
    }

    fn values(&self, labeling: Labeling) -> Vec<String> {
        let mut v = vec![self.comm.clone()];
        v.extend(labeling.netns.then(|| self.netns.clone()));
        v.extend(labeling.unit.then(|| self.unit.clone()));
        v.extend(self.pid.map(|p| p.to_string()));
        v
    }
}

/// Per-process counts (distinct sockets).
#[derive(Debug, Default)]
struct ProcessCounts {
    sockets: i64,
    close_wait: i64,
    dead_peer_suspects: i64,
    established: i64,
    established_keepalive_off: i64,
    unanswered_keepalive_probes: i64,
    held_dead_sockets: i64,
}

impl ProcessCounts {
    fn add(&mut self, conn: &Connection) {
        self.sockets += 1;
        match conn.state {
            TcpState::CloseWait => self.close_wait += 1,
            TcpState::Established => {
                self.established += 1;
                // As the rollup decides it: the option read from the socket, else what the timer shows.
                let enabled = conn
                    .keepalive
                    .as_deref()
                    .and_then(|k| k.enabled)
                    .unwrap_or(conn.timer.kind != TimerKind::None);
                if !enabled {
                    self.established_keepalive_off += 1;
                }
            }
            _ => {}
        }
        if conn
            .findings
            .iter()
            .any(|f| f.code == FindingCode::DeadPeerSuspect)
        {
            self.dead_peer_suspects += 1;
        }
        if conn.timer.kind == TimerKind::Keepalive {
            self.unanswered_keepalive_probes += i64::from(conn.timer.count);
        }
    }
}

/// Renders every kwatch metric of `snapshot` (findings already filled by analysis).
pub fn render(
    snapshot: &Snapshot,
    opts: &MetricsOptions,
    stats: &SelfStats,
) -> Result<String, prometheus::Error> {
    let r = Registry::new();
    let labeling = Labeling::of(snapshot, *opts);
    sockets_by_state(&r, snapshot, labeling)?;
    findings(&r, snapshot)?;
    processes(&r, snapshot, labeling)?;
    services(&r, snapshot, labeling)?;
    held_dead(&r, snapshot)?;
    settings(&r, snapshot, labeling)?;
    own(&r, snapshot, stats)?;
    if let Some(deaths) = &stats.deaths {
        death_counters(&r, deaths)?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

fn int_gauge(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Registers a gauge without labels, set to `v`.
fn single_int(r: &Registry, name: &str, help: &str, v: i64) -> Result<(), prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    g.set(v);
    Ok(())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sockets_by_state(
    r: &Registry,
    snapshot: &Snapshot,
    labeling: Labeling,
) -> Result<(), prometheus::Error> {
    let labels: &[&str] = if labeling.netns {
        &["netns", "state"]
    } else {
        &["state"]
    };
    let g = int_gauge(
        r,
        "kwatch_sockets",
        "TCP sockets by state (every state is listed, 0 when none).",
        labels,
    )?;
    let netns_of = |c: &Connection| {
        if labeling.netns {
            netns_label(c)
        } else {
            String::new()
        }
    };
    // Every state of every listed namespace, so that a series drops to 0 rather than vanishing.
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    if labeling.netns {
        namespaces.extend(
            snapshot
                .namespaces
                .iter()
                .filter(|n| n.error.is_none())
                .map(|n| escape(&n.netns.label()).into_owned()),
        );
    } else {
        namespaces.insert(String::new());
    }
    let mut counts: BTreeMap<(String, TcpState), usize> = namespaces
        .iter()
        .flat_map(|ns| TcpState::ALL.iter().map(move |s| ((ns.clone(), *s), 0)))
        .collect();
    for c in &snapshot.connections {
        *counts.entry((netns_of(c), c.state)).or_default() += 1;
    }
    for ((ns, state), n) in counts {
        let values: Vec<&str> = if labeling.netns {
            vec![&ns, state.name()]
        } else {
            vec![state.name()]
        };
        g.with_label_values(&values).set(count(n));
    }
    Ok(())
}

fn findings(r: &Registry, snapshot: &Snapshot) -> Result<(), prometheus::Error> {
    let g = int_gauge(
        r,
        "kwatch_findings",
        "Sockets with each finding; for the process-level codes keepalive_off and keepalive_default, \
         processes (every code is listed, 0 when none).",
        &["code"],
    )?;
    let mut by_code: BTreeMap<FindingCode, usize> =
        FindingCode::ALL.iter().map(|c| (*c, 0)).collect();
    for f in snapshot.connections.iter().flat_map(|c| &c.findings) {
        *by_code.entry(f.code).or_default() += 1;
    }
    for p in analyze::rollup(snapshot, &snapshot.connections) {
        for f in &p.process_findings {
            *by_code.entry(f.code).or_default() += 1;
        }
    }
    for (code, n) in by_code {
        g.with_label_values(&[code.name()]).set(count(n));
    }
    let g = int_gauge(
        r,
        "kwatch_findings_by_severity",
        "Findings on sockets by severity (every severity is listed, 0 when none).",
        &["severity"],
    )?;
    let mut by_sev: BTreeMap<&str, usize> = ["info", "warning", "critical"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for f in snapshot.connections.iter().flat_map(|c| &c.findings) {
        *by_sev.entry(f.severity.label()).or_default() += 1;
    }
    for (sev, n) in by_sev {
        g.with_label_values(&[sev]).set(count(n));
    }
    Ok(())
}

fn processes(
    r: &Registry,
    snapshot: &Snapshot,
    labeling: Labeling,
) -> Result<(), prometheus::Error> {
    let mut groups: BTreeMap<ProcessKey, ProcessCounts> = BTreeMap::new();
    // The namespace of each process's first socket: where its held dead sockets are counted.
    let mut netns_of_pid: BTreeMap<u32, String> = BTreeMap::new();
    for conn in &snapshot.connections {
        let netns = netns_label(conn);
        // A socket held by several processes of one series (nginx workers sharing a listener) counts once.
        let keys: BTreeSet<ProcessKey> = conn
            .owners
            .iter()
            .map(|o| {
                netns_of_pid.entry(o.pid).or_insert_with(|| netns.clone());
                ProcessKey::new(snapshot, o.pid, &netns, labeling)
            })
            .collect();
        for key in keys {
            groups.entry(key).or_default().add(conn);
        }
    }
    let held: BTreeSet<(ProcessKey, u32)> = snapshot
        .held_dead
        .iter()
        .map(|g| {
            let netns = netns_of_pid.get(&g.pid).map_or("", String::as_str);
            (ProcessKey::new(snapshot, g.pid, netns, labeling), g.inode)
        })
        .collect();
    for (key, _) in held {
        groups.entry(key).or_default().held_dead_sockets += 1;
    }
    let labels = labeling.process_labels();
    type Field = fn(&ProcessCounts) -> i64;
    let series: [(&str, &str, Field); 7] = [
        (
            "kwatch_process_sockets",
            "TCP sockets the process holds (a socket held through several fds or processes counts once).",
            |c| c.sockets,
        ),
        (
            "kwatch_process_close_wait_sockets",
            "Sockets of the process in CLOSE_WAIT: the peer closed, the program has not.",
            |c| c.close_wait,
        ),
        (
            "kwatch_process_dead_peer_suspects",
            "Sockets of the process whose keepalive probes go unanswered (finding dead_peer_suspect).",
            |c| c.dead_peer_suspects,
        ),
        (
            "kwatch_process_established_sockets",
            "Sockets of the process in ESTABLISHED.",
            |c| c.established,
        ),
        (
            "kwatch_process_established_keepalive_off",
            "ESTABLISHED sockets of the process with SO_KEEPALIVE off: a vanished peer is never noticed.",
            |c| c.established_keepalive_off,
        ),
        (
            "kwatch_process_unanswered_keepalive_probes",
            "Unanswered keepalive probes summed over the process's sockets.",
            |c| c.unanswered_keepalive_probes,
        ),
        (
            "kwatch_process_held_dead_sockets",
            "TCP sockets the kernel has ended that the process still holds an fd of.",
            |c| c.held_dead_sockets,
        ),
    ];
    for (name, help, field) in series {
        let g = int_gauge(r, name, help, &labels)?;
        for (key, counts) in &groups {
            let values = key.values(labeling);
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            g.with_label_values(&values).set(field(counts));
        }
    }
    Ok(())
}

/// Which series one service goes to: its name (the leader's comm), and the leader's namespace and unit when those
/// labels are on. Services sharing all of them (two independent redis instances) are one series, summed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ServiceKey {
    service: String,
    netns: String,
    unit: String,
}

impl ServiceKey {
    fn values(&self, labeling: Labeling) -> Vec<&str> {
        let mut v = vec![self.service.as_str()];
        v.extend(labeling.netns.then_some(self.netns.as_str()));
        v.extend(labeling.unit.then_some(self.unit.as_str()));
        v
    }
}

/// Per-service counts ([`analyze::services`]): each socket once per service, the service's own findings.
#[derive(Debug, Default)]
struct ServiceCounts {
    processes: i64,
    sockets: i64,
    established: i64,
    established_keepalive_off: i64,
    established_keepalive_default: i64,
    close_wait: i64,
    held_dead_sockets: i64,
    keepalive_off: i64,
    keepalive_default: i64,
}

fn services(
    r: &Registry,
    snapshot: &Snapshot,
    labeling: Labeling,
) -> Result<(), prometheus::Error> {
    // The namespace of each process's first socket, as for the per-process series.
    let mut netns_of_pid: BTreeMap<u32, String> = BTreeMap::new();
    for conn in &snapshot.connections {
        for o in &conn.owners {
            netns_of_pid
                .entry(o.pid)
                .or_insert_with(|| netns_label(conn));
        }
    }
    let mut groups: BTreeMap<ServiceKey, ServiceCounts> = BTreeMap::new();
    for s in analyze::services::services(snapshot, &snapshot.connections) {
        let leader = s.leader_pid;
        let key = ServiceKey {
            service: escape(&s.name).into_owned(),
            netns: if labeling.netns {
                netns_of_pid.get(&leader).cloned().unwrap_or_default()
            } else {
                String::new()
            },
            unit: match snapshot.units.get(&leader) {
                Some(u) if labeling.unit => escape(&u.label()).into_owned(),
                _ => String::new(),
            },
        };
        let t = &s.totals;
        let has = |code: FindingCode| i64::from(t.process_findings.iter().any(|f| f.code == code));
        let c = groups.entry(key).or_default();
        c.processes += count(s.pids.len());
        c.sockets += i64::from(t.sockets);
        c.established += i64::from(t.established());
        c.established_keepalive_off += i64::from(t.established_without_keepalive);
        c.established_keepalive_default += i64::from(t.keepalive_default);
        c.close_wait += i64::from(t.close_wait());
        c.held_dead_sockets += i64::from(t.held_dead_sockets);
        c.keepalive_off += has(FindingCode::KeepaliveOff);
        c.keepalive_default += has(FindingCode::KeepaliveDefault);
    }
    let mut labels = vec!["service"];
    labels.extend(labeling.netns.then_some("netns"));
    labels.extend(labeling.unit.then_some("unit"));
    type Field = fn(&ServiceCounts) -> i64;
    let series: [(&str, &str, Field); 9] = [
        (
            "kwatch_service_processes",
            "Processes of the service: those sharing a listening socket, or running one executable under one parent.",
            |c| c.processes,
        ),
        (
            "kwatch_service_sockets",
            "TCP sockets the service's processes hold (a socket they share counts once).",
            |c| c.sockets,
        ),
        (
            "kwatch_service_established_sockets",
            "Sockets of the service in ESTABLISHED.",
            |c| c.established,
        ),
        (
            "kwatch_service_established_keepalive_off",
            "ESTABLISHED sockets of the service with SO_KEEPALIVE off: a vanished peer is never noticed.",
            |c| c.established_keepalive_off,
        ),
        (
            "kwatch_service_established_keepalive_default",
            "ESTABLISHED sockets of the service with keepalive on and the default 7200 s idle.",
            |c| c.established_keepalive_default,
        ),
        (
            "kwatch_service_close_wait_sockets",
            "Sockets of the service in CLOSE_WAIT: the peer closed, the program has not.",
            |c| c.close_wait,
        ),
        (
            "kwatch_service_held_dead_sockets",
            "TCP sockets the kernel has ended that the service's processes still hold an fd of.",
            |c| c.held_dead_sockets,
        ),
        (
            "kwatch_service_keepalive_off",
            "Services with the finding keepalive_off: at least half of their ESTABLISHED sockets have SO_KEEPALIVE \
             off (1 for one service; more when services share every label).",
            |c| c.keepalive_off,
        ),
        (
            "kwatch_service_keepalive_default",
            "Services with the finding keepalive_default: at least half of their ESTABLISHED sockets rely on the \
             default 7200 s idle.",
            |c| c.keepalive_default,
        ),
    ];
    for (name, help, field) in series {
        let g = int_gauge(r, name, help, &labels)?;
        for (key, counts) in &groups {
            g.with_label_values(&key.values(labeling))
                .set(field(counts));
        }
    }
    Ok(())
}

fn held_dead(r: &Registry, snapshot: &Snapshot) -> Result<(), prometheus::Error> {
    let g = int_gauge(
        r,
        "kwatch_held_dead_sockets",
        "Dead TCP sockets programs still hold fds of, by what ended the connection.",
        &["cause"],
    )?;
    let causes = [
        DeathCause::KeepaliveExhausted,
        DeathCause::RetransmitTimeout,
        DeathCause::Reset,
        DeathCause::Closed,
        DeathCause::Unknown,
    ];
    let distinct: BTreeSet<(u32, String)> = snapshot
        .held_dead
        .iter()
        .map(|h| (h.inode, cause_name(h.cause).to_string()))
        .collect();
    for cause in causes {
        let name = cause_name(cause);
        let n = distinct.iter().filter(|(_, c)| c == name).count();
        g.with_label_values(&[name]).set(count(n));
    }
    Ok(())
}

/// The cause's name in labels and JSON.
pub fn cause_name(cause: DeathCause) -> &'static str {
    match cause {
        DeathCause::KeepaliveExhausted => "keepalive_exhausted",
        DeathCause::RetransmitTimeout => "retransmit_timeout",
        DeathCause::Reset => "reset",
        DeathCause::Closed => "closed",
        DeathCause::Unknown => "unknown",
    }
}

fn settings(
    r: &Registry,
    snapshot: &Snapshot,
    labeling: Labeling,
) -> Result<(), prometheus::Error> {
    // One value per namespace when several are listed (a namespace kwatch could not enter is left out).
    let per_ns: Vec<(Vec<String>, &Settings)> = if labeling.netns {
        snapshot
            .namespaces
            .iter()
            .filter(|n| n.error.is_none())
            .map(|n| (vec![escape(&n.netns.label()).into_owned()], &n.settings))
            .collect()
    } else {
        vec![(vec![], &snapshot.settings)]
    };
    let labels: &[&str] = if labeling.netns { &["netns"] } else { &[] };
    type Field = fn(&Settings) -> Option<u32>;
    let all: [(&str, &str, Field); 5] = [
        (
            "kwatch_net_tcp_keepalive_time_seconds",
            "net.ipv4.tcp_keepalive_time: idle time before the first keepalive probe (default for sockets \
             that do not set TCP_KEEPIDLE).",
            |s| s.tcp_keepalive_time_s,
        ),
        (
            "kwatch_net_tcp_keepalive_intvl_seconds",
            "net.ipv4.tcp_keepalive_intvl: time between keepalive probes.",
            |s| s.tcp_keepalive_intvl_s,
        ),
        (
            "kwatch_net_tcp_keepalive_probes",
            "net.ipv4.tcp_keepalive_probes: unanswered probes before the connection is reset.",
            |s| s.tcp_keepalive_probes,
        ),
        (
            "kwatch_net_tcp_retries2",
            "net.ipv4.tcp_retries2: retransmissions before an unacknowledged connection is given up.",
            |s| s.tcp_retries2,
        ),
        (
            "kwatch_net_tcp_fin_timeout_seconds",
            "net.ipv4.tcp_fin_timeout: how long an orphaned socket stays in FIN_WAIT_2.",
            |s| s.tcp_fin_timeout_s,
        ),
    ];
    for (name, help, field) in all {
        // A sysctl kwatch could not read is left out rather than exported as 0.
        let values: Vec<(&Vec<String>, u32)> = per_ns
            .iter()
            .filter_map(|(labels, s)| Some((labels, field(s)?)))
            .collect();
        if values.is_empty() {
            continue;
        }
        let g = int_gauge(r, name, help, labels)?;
        for (label_values, v) in values {
            let label_values: Vec<&str> = label_values.iter().map(String::as_str).collect();
            g.with_label_values(&label_values).set(i64::from(v));
        }
    }
    let unreadable = snapshot
        .namespaces
        .iter()
        .filter(|n| n.error.is_some())
        .count();
    single_int(
        r,
        "kwatch_namespaces_unreadable",
        "Network namespaces kwatch could not enter (their sockets are missing; run as root).",
        count(unreadable),
    )
}

fn death_counters(r: &Registry, deaths: &DeathCounts) -> Result<(), prometheus::Error> {
    let c = IntCounterVec::new(
        Opts::new(
            "kwatch_connection_deaths_total",
            "Connections the kernel destroyed since kwatch serve started, by inferred cause and owner \
             (only sockets seen by an earlier scrape, in the namespaces inspected).",
        ),
        &["cause", "comm"],
    )?;
    r.register(Box::new(c.clone()))?;
    for ((cause, comm), n) in &deaths.by_cause {
        c.with_label_values(&[*cause, &escape(comm)]).inc_by(*n);
    }
    let lost = IntCounter::new(
        "kwatch_connection_death_notifications_lost_total",
        "Destroy notifications lost because the kernel's buffer or kwatch's queue was full (deaths undercounted).",
    )?;
    r.register(Box::new(lost.clone()))?;
    lost.inc_by(deaths.lost);
    Ok(())
}

fn own(r: &Registry, snapshot: &Snapshot, stats: &SelfStats) -> Result<(), prometheus::Error> {
    single_int(
        r,
        "kwatch_processes_unreadable",
        "Processes whose fds kwatch could not read (their sockets show no owner; run as root).",
        count(snapshot.unreadable.len()),
    )?;
    let secs = [
        (
            "kwatch_scrape_duration_seconds",
            "How long taking the snapshot behind this scrape took.",
            stats.scrape_duration.as_secs_f64(),
        ),
        (
            "kwatch_dump_duration_seconds",
            "How long the kernel's socket dump took, of this scrape's snapshot.",
            snapshot.dump_us as f64 / 1e6,
        ),
        (
            "kwatch_proc_scan_duration_seconds",
            "How long the /proc scan took, of this scrape's snapshot.",
            snapshot.proc_scan_us as f64 / 1e6,
        ),
    ];
    for (name, help, v) in secs {
        let g = Gauge::new(name, help)?;
        r.register(Box::new(g.clone()))?;
        g.set(v);
    }
    let errors = IntCounter::new(
        "kwatch_scrape_errors_total",
        "Scrapes answered without metrics (collection failed or timed out) since kwatch serve started.",
    )?;
    r.register(Box::new(errors.clone()))?;
    errors.inc_by(stats.scrape_errors);
    let collections = IntCounter::new(
        "kwatch_collections_total",
        "Snapshots taken since kwatch serve started (scrapes within --min-interval of one share it).",
    )?;
    r.register(Box::new(collections.clone()))?;
    collections.inc_by(stats.collections);
    Ok(())
}
