//! The `--json` document: read back into typed structs that reject unknown fields, so an accidental rename or
//! addition in `output::json` fails here (and must be reflected in docs/json-schema.md).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{self, Write};

use kwatch::analyze::{self, Thresholds};
use kwatch::model::{Connection, Snapshot};
use kwatch::output::json;
use serde::Deserialize;

use kwatch::testing::fixture as load;

fn analyzed(name: &str) -> Snapshot {
    let mut snapshot = load(name);
    analyze::analyze(&mut snapshot, &Thresholds::default());
    snapshot
}

fn write_doc(snapshot: &Snapshot, conns: &[&Connection]) -> String {
    let mut out = Vec::new();
    json::write(&mut out, snapshot, conns, 4321).unwrap();
    String::from_utf8(out).unwrap()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    schema_version: u32,
    kwatch_version: String,
    taken_at_unix_ms: u64,
    elapsed_us: u64,
    dump_us: u64,
    proc_scan_us: u64,
    host: String,
    kernel: String,
    settings: DocSettings,
    namespaces: Vec<DocNamespace>,
    totals: DocTotals,
    unreadable_processes: Vec<DocUnreadable>,
    warnings: Vec<String>,
    sockets: Vec<DocSocket>,
    processes: Vec<DocProcess>,
    held_dead_sockets: Vec<DocHeldDead>,
    services: Vec<DocService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocService {
    name: String,
    leader_pid: u32,
    pids: Vec<u32>,
    unit: Option<DocUnit>,
    sockets: u32,
    by_state: BTreeMap<String, u32>,
    findings: BTreeMap<String, u32>,
    established_without_keepalive: u32,
    keepalive_off_percent: Option<u32>,
    keepalive_default: u32,
    keepalive_default_percent: Option<u32>,
    service_findings: Vec<DocFinding>,
    held_dead_sockets: u32,
    critical: u32,
    warning: u32,
    info: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DocHeldDead {
    pid: u32,
    fd: u32,
    inode: u64,
    local_addr: Option<String>,
    local_port: Option<u16>,
    tcp_info: Option<DocTcpInfo>,
    cause: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocSettings {
    tcp_keepalive_time_s: Option<u32>,
    tcp_keepalive_intvl_s: Option<u32>,
    tcp_keepalive_probes: Option<u32>,
    tcp_retries2: Option<u32>,
    tcp_fin_timeout_s: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocNamespace {
    inode: u64,
    name: Option<String>,
    current: bool,
    pid: Option<u32>,
    settings: DocSettings,
    sockets: u64,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocNetns {
    inode: u64,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocUnit {
    kind: String,
    id: String,
    pod: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocTotals {
    sockets: u64,
    by_state: BTreeMap<String, u64>,
    stuck: u64,
    by_finding: BTreeMap<String, u64>,
    processes: u64,
    unreadable_processes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocUnreadable {
    pid: u32,
    comm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocSocket {
    cookie: u64,
    family: String,
    state: String,
    local_addr: String,
    local_port: u16,
    peer_addr: String,
    peer_port: u16,
    interface: u32,
    inode: u64,
    uid: u32,
    recv_q: u32,
    send_q: u32,
    timer: DocTimer,
    shutdown: Option<u8>,
    congestion: Option<String>,
    tcp_info: Option<DocTcpInfo>,
    owners: Vec<DocOwner>,
    findings: Vec<DocFinding>,
    keepalive: Option<DocKeepalive>,
    next_probe_ms: Option<u64>,
    dies_in_ms: Option<u64>,
    dies_in_estimate: bool,
    dies_by: Option<String>,
    netns: Option<DocNetns>,
    unit: Option<DocUnit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DocKeepalive {
    enabled: Option<bool>,
    idle_s: Option<u32>,
    intvl_s: Option<u32>,
    cnt: Option<u32>,
    user_timeout_ms: Option<u32>,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocTimer {
    kind: String,
    expires_ms: u64,
    count: u32,
}

/// Every field is present in the document (null when the kernel did not send it): no `#[serde(default)]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DocTcpInfo {
    state: Option<u8>,
    ca_state: Option<u8>,
    retransmits: Option<u8>,
    probes: Option<u8>,
    backoff: Option<u8>,
    rto_us: Option<u32>,
    ato_us: Option<u32>,
    snd_mss: Option<u32>,
    rcv_mss: Option<u32>,
    unacked: Option<u32>,
    sacked: Option<u32>,
    lost: Option<u32>,
    retrans: Option<u32>,
    last_data_sent_ms: Option<u32>,
    last_ack_sent_ms: Option<u32>,
    last_data_recv_ms: Option<u32>,
    last_ack_recv_ms: Option<u32>,
    pmtu: Option<u32>,
    rtt_us: Option<u32>,
    rttvar_us: Option<u32>,
    snd_cwnd: Option<u32>,
    total_retrans: Option<u32>,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    notsent_bytes: Option<u32>,
    min_rtt_us: Option<u32>,
    bytes_sent: Option<u64>,
    bytes_retrans: Option<u64>,
    snd_wnd: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocOwner {
    pid: u32,
    fd: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocFinding {
    code: String,
    severity: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocProcess {
    pid: u32,
    comm: String,
    cmdline: Vec<String>,
    uid: Option<u32>,
    user: Option<String>,
    unit: Option<DocUnit>,
    sockets: u32,
    by_state: BTreeMap<String, u32>,
    findings: BTreeMap<String, u32>,
    established_without_keepalive: u32,
    keepalive_off_percent: Option<u32>,
    keepalive_default: u32,
    keepalive_default_percent: Option<u32>,
    process_findings: Vec<DocFinding>,
    held_dead_sockets: u32,
    critical: u32,
    warning: u32,
    info: u32,
}

const STATES: [&str; 12] = [
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "fin-wait-2",
    "time-wait",
    "close",
    "close-wait",
    "last-ack",
    "listen",
    "closing",
    "new-syn-recv",
];
const TIMER_KINDS: [&str; 5] = [
    "none",
    "retransmit",
    "keepalive",
    "time_wait",
    "zero_window_probe",
];
const CODES: [&str; 7] = [
    "close_wait",
    "dead_peer_suspect",
    "no_keepalive_idle",
    "retransmitting",
    "zero_window",
    "keepalive_off",
    "keepalive_default",
];
/// Codes about a whole process: `totals.by_finding` counts processes for these.
const PROCESS_CODES: [&str; 2] = ["keepalive_off", "keepalive_default"];
const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

#[test]
fn busy_fixture_reads_back_into_the_documented_shape() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let text = write_doc(&snapshot, &conns);
    assert!(text.ends_with("}\n"), "one document, one trailing newline");
    assert_eq!(text.lines().count(), 1, "compact output is one line");
    let doc: Doc = serde_json::from_str(&text).unwrap();

    assert_eq!(doc.schema_version, 1);
    assert_eq!(doc.kwatch_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(doc.taken_at_unix_ms, snapshot.taken_at_unix_ms);
    assert_eq!(doc.elapsed_us, 4321);
    assert_eq!(
        (doc.dump_us, doc.proc_scan_us),
        (snapshot.dump_us, snapshot.proc_scan_us)
    );
    assert_eq!((doc.host.as_str(), doc.kernel.as_str()), ("web-1", "6.1.0"));
    assert_eq!(doc.settings.tcp_keepalive_time_s, Some(7200));
    assert_eq!(doc.settings.tcp_keepalive_intvl_s, Some(75));
    assert_eq!(doc.settings.tcp_keepalive_probes, Some(9));
    assert_eq!(doc.settings.tcp_retries2, Some(15));
    assert_eq!(doc.settings.tcp_fin_timeout_s, Some(60));
    // The fixture has one unreadable process: the table's footer hint is a warning here too.
    assert_eq!(
        doc.warnings,
        ["1 process could not be read; run as root to see their sockets"]
    );
    assert!(doc.held_dead_sockets.is_empty());
    assert!(doc.processes.iter().all(|p| p.held_dead_sockets == 0));

    // Sockets: one row per connection, in order, with the model's values.
    assert_eq!(doc.sockets.len(), snapshot.connections.len());
    for (row, conn) in doc.sockets.iter().zip(&snapshot.connections) {
        assert_eq!(row.cookie, conn.cookie);
        assert_eq!(row.state, conn.state.name());
        assert_eq!(
            row.family,
            if conn.local_addr.is_ipv4() {
                "ipv4"
            } else {
                "ipv6"
            }
        );
        assert_eq!(row.local_addr, conn.local_addr.to_string());
        assert_eq!(row.peer_addr, conn.peer_addr.to_string());
        assert_eq!(
            (row.local_port, row.peer_port),
            (conn.local_port, conn.peer_port)
        );
        assert_eq!(
            (row.interface, row.inode, row.uid),
            (conn.interface, u64::from(conn.inode), conn.uid)
        );
        assert_eq!((row.recv_q, row.send_q), (conn.recv_q, conn.send_q));
        assert_eq!(row.timer.kind, conn.timer.kind.label());
        assert_eq!(
            (row.timer.expires_ms, row.timer.count),
            (
                u64::from(conn.timer.expires_ms),
                u32::from(conn.timer.count)
            )
        );
        assert_eq!(row.shutdown, conn.shutdown);
        assert_eq!(row.congestion.as_deref(), conn.congestion.as_deref());
        assert_eq!(row.tcp_info.is_some(), conn.tcp_info.is_some());
        let owners: Vec<(u32, u32)> = row.owners.iter().map(|o| (o.pid, o.fd)).collect();
        let want: Vec<(u32, u32)> = conn.owners.iter().map(|o| (o.pid, o.fd)).collect();
        assert_eq!(owners, want);
        assert_eq!(row.findings.len(), conn.findings.len());
        for (f, g) in row.findings.iter().zip(&conn.findings) {
            assert_eq!(
                (f.code.as_str(), f.severity.as_str()),
                (g.code.name(), g.severity.label())
            );
            assert_eq!(f.message, analyze::explain(conn, &g));
        }
        assert!(STATES.contains(&row.state.as_str()));
        assert!(TIMER_KINDS.contains(&row.timer.kind.as_str()));
        assert_eq!(row.keepalive.is_some(), conn.keepalive.is_some());
        let p = kwatch::analyze::predict::prediction_in(&snapshot, conn).unwrap_or_default();
        assert_eq!(
            (row.next_probe_ms, row.dies_in_ms, row.dies_in_estimate),
            (p.next_probe_ms, p.dies_in_ms, p.dies_in_estimate)
        );
        assert_eq!(row.dies_by.is_some(), p.dies_by.is_some());
    }
    let rtt = doc.sockets.iter().find(|s| s.cookie == 1003).unwrap();
    assert_eq!(rtt.tcp_info.as_ref().unwrap().rtt_us, Some(1850));
    assert_eq!(
        rtt.tcp_info.as_ref().unwrap().pmtu,
        None,
        "absent tcp_info fields are null"
    );
    let v6 = doc.sockets.iter().find(|s| s.cookie == 1012).unwrap();
    assert_eq!(
        (v6.family.as_str(), v6.local_addr.as_str()),
        ("ipv6", "2001:db8::5")
    );

    // Totals: over the reported sockets, every state and code present.
    let stuck = snapshot.connections.iter().filter(|c| c.is_stuck()).count() as u64;
    assert!(stuck > 0, "the busy fixture has stuck sockets");
    assert_eq!(doc.totals.sockets, 14);
    assert_eq!(doc.totals.stuck, stuck);
    assert_eq!(
        doc.totals
            .by_state
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .len(),
        12
    );
    assert!(STATES.iter().all(|s| doc.totals.by_state.contains_key(*s)));
    assert_eq!(doc.totals.by_state["established"], 8);
    assert_eq!(doc.totals.by_state["close-wait"], 2);
    assert_eq!(doc.totals.by_state["listen"], 2);
    assert_eq!(doc.totals.by_state["fin-wait-1"], 0);
    assert_eq!(doc.totals.by_state.values().sum::<u64>(), 14);
    assert!(CODES.iter().all(|c| doc.totals.by_finding.contains_key(*c)));
    assert_eq!(doc.totals.by_finding.len(), CODES.len());
    for code in CODES {
        let want = if PROCESS_CODES.contains(&code) {
            doc.processes
                .iter()
                .filter(|p| p.process_findings.iter().any(|f| f.code == code))
                .count() as u64
        } else {
            snapshot
                .connections
                .iter()
                .filter(|c| c.findings.iter().any(|f| f.code.name() == code))
                .count() as u64
        };
        assert_eq!(doc.totals.by_finding[code], want, "code {code}");
    }
    assert_eq!(doc.totals.unreadable_processes, 1);
    assert_eq!(doc.unreadable_processes.len(), 1);
    assert_eq!(doc.unreadable_processes[0].pid, 4242);
    assert_eq!(
        doc.unreadable_processes[0].comm.as_deref(),
        Some("node_exporter")
    );

    // Processes: the rollup, with /proc data.
    assert_eq!(doc.totals.processes, doc.processes.len() as u64);
    assert_eq!(doc.processes.len(), 5);
    let java = doc.processes.iter().find(|p| p.pid == 2231).unwrap();
    assert_eq!(java.comm, "java");
    assert_eq!(
        java.cmdline,
        ["/usr/bin/java", "-Xmx2g", "-jar", "/opt/app/app.jar"]
    );
    assert_eq!((java.uid, java.user.as_deref()), (Some(1000), Some("app")));
    assert_eq!(java.sockets, 6);
    assert_eq!(java.by_state.values().sum::<u32>(), java.sockets);
    assert!(
        java.by_state.values().all(|n| *n > 0),
        "process maps list only non-zero states"
    );
    assert!(java.by_state.keys().all(|k| STATES.contains(&k.as_str())));
    assert!(java.findings.keys().all(|k| CODES.contains(&k.as_str())));
    assert_eq!(java.established_without_keepalive, 1);
    let est = java.by_state["established"];
    assert_eq!(java.keepalive_off_percent, Some(100 / est));
    assert_eq!(
        (java.keepalive_default, java.keepalive_default_percent),
        (0, Some(0)),
        "without keepalive settings nothing counts as relying on the default"
    );
    let nginx_worker = doc.processes.iter().find(|p| p.pid == 812).unwrap();
    assert_eq!(nginx_worker.uid, Some(33));
    for p in &doc.processes {
        assert_eq!(
            p.critical + p.warning + p.info,
            p.findings.values().sum::<u32>(),
            "pid {}",
            p.pid
        );
    }
    for s in doc.sockets.iter().flat_map(|s| &s.findings) {
        assert!(SEVERITIES.contains(&s.severity.as_str()));
    }
}

#[test]
fn totals_and_processes_follow_the_filtered_sockets() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| c.owners.iter().any(|o| o.pid == 3107))
        .collect();
    assert_eq!(conns.len(), 1);
    let doc: Doc = serde_json::from_str(&write_doc(&snapshot, &conns)).unwrap();
    assert_eq!(doc.totals.sockets, 1);
    assert_eq!(doc.totals.by_state["close-wait"], 1);
    assert_eq!(doc.totals.by_state["established"], 0);
    assert_eq!(doc.sockets.len(), 1);
    assert_eq!(doc.processes.len(), 1);
    assert_eq!(doc.totals.processes, 1);
    assert_eq!(doc.processes[0].pid, 3107);
    // Unreadable processes are about the whole scan, not the filter.
    assert_eq!(doc.totals.unreadable_processes, 1);
}

#[test]
fn hostile_comm_stays_valid_json_and_raw() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let text = write_doc(&snapshot, &conns);
    assert!(
        !text.contains('\u{1b}'),
        "control characters are \\u-escaped by JSON"
    );
    assert!(!text.contains('\u{7}'));
    assert!(text.contains(r"evil\u001b]0;pwned\u0007"));
    let doc: Doc = serde_json::from_str(&text).unwrap();
    let evil = doc.processes.iter().find(|p| p.pid == 3107).unwrap();
    assert_eq!(
        evil.comm, "evil\u{1b}]0;pwned\u{7}",
        "JSON carries the raw name"
    );
    assert_eq!(evil.cmdline[2], "line one\nline two");
}

/// Processes sharing a listener are one service (the busy fixture's nginx master 811 and worker 812), each socket
/// counted once; every process is in exactly one service, and a filter changes counts, not members.
#[test]
fn services_roll_up_processes_sharing_a_listener() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let doc: Doc = serde_json::from_str(&write_doc(&snapshot, &conns)).unwrap();
    let nginx = doc.services.iter().find(|s| s.name == "nginx").unwrap();
    assert_eq!(
        (nginx.leader_pid, nginx.pids.clone()),
        (811, vec![811, 812])
    );
    assert_eq!(
        nginx.sockets, 3,
        "the shared listener once, two connections"
    );
    assert_eq!(nginx.by_state.get("listen"), Some(&1));
    assert_eq!(nginx.findings.get("zero_window"), Some(&1));
    assert_eq!((nginx.critical, nginx.warning, nginx.info), (0, 1, 0));
    assert!(nginx.unit.is_none() && nginx.held_dead_sockets == 0);
    assert_eq!(nginx.established_without_keepalive, 0);
    assert_eq!(nginx.keepalive_off_percent, Some(0));
    assert_eq!(
        (nginx.keepalive_default, nginx.keepalive_default_percent),
        (0, Some(0))
    );
    let java = doc.services.iter().find(|s| s.leader_pid == 2231).unwrap();
    assert_eq!(java.pids, vec![2231]);
    assert!(java.service_findings.iter().all(|f| f.severity == "info"));
    let mut members: Vec<u32> = doc.services.iter().flat_map(|s| s.pids.clone()).collect();
    members.sort_unstable();
    let mut pids: Vec<u32> = doc.processes.iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    assert_eq!(members, pids, "each process in exactly one service");
    // Worst first, as processes are.
    assert_eq!(doc.services[0].leader_pid, 2231);

    let listeners: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| c.state == kwatch::model::TcpState::Listen)
        .collect();
    let doc: Doc = serde_json::from_str(&write_doc(&snapshot, &listeners)).unwrap();
    let nginx = doc.services.iter().find(|s| s.name == "nginx").unwrap();
    assert_eq!((nginx.pids.clone(), nginx.sockets), (vec![811, 812], 1));
}

#[test]
fn pretty_and_compact_are_the_same_document() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let mut pretty = Vec::new();
    json::write_pretty(&mut pretty, &snapshot, &conns, 4321).unwrap();
    let a: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
    let b: serde_json::Value = serde_json::from_str(&write_doc(&snapshot, &conns)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn empty_fixture_document() {
    let snapshot = analyzed("empty.json");
    let mut out = Vec::new();
    json::write_pretty(&mut out, &snapshot, &[], 250).unwrap();
    let text = String::from_utf8(out).unwrap();
    let doc: Doc = serde_json::from_str(&text).unwrap();
    assert_eq!((doc.totals.sockets, doc.totals.stuck), (0, 0));
    assert!(doc.sockets.is_empty() && doc.processes.is_empty());
    // The version changes with releases; the shape must not.
    let text = text.replace(
        &format!("\"kwatch_version\": \"{}\"", env!("CARGO_PKG_VERSION")),
        "\"kwatch_version\": \"[version]\"",
    );
    insta::assert_snapshot!(text);
}

/// A writer that fails after `budget` bytes, like stdout piped into `head`.
struct ClosedPipe {
    budget: usize,
}

impl Write for ClosedPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn broken_pipe_is_returned_with_its_kind() {
    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    for budget in [0, 100, 9000] {
        let err = json::write(&mut ClosedPipe { budget }, &snapshot, &conns, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "budget {budget}");
    }
}

/// The example in docs/json-schema.md is a real document (it reads into the strict test types), and every field
/// the document has is described in a table there.
#[test]
fn schema_doc_example_and_tables_match_the_report() {
    let path = format!("{}/docs/json-schema.md", env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(&path).unwrap();
    let start = md.find("```json\n").unwrap() + "```json\n".len();
    let end = start + md[start..].find("```").unwrap();
    let example: Doc = serde_json::from_str(&md[start..end]).unwrap();
    assert_eq!(example.schema_version, json::SCHEMA_VERSION);

    let snapshot = analyzed("busy.json");
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let value: serde_json::Value = serde_json::from_str(&write_doc(&snapshot, &conns)).unwrap();
    let mut names = Vec::new();
    collect_field_names(&value, &mut names);
    for name in names {
        assert!(
            md.contains(&format!("| `{name}` |")),
            "field '{name}' is not described in {path}"
        );
    }
}

/// Namespaces and units, which the fixtures (from before namespaces) lack: each socket carries its namespace, each
/// namespace its settings and socket count, each process and its sockets the unit; every field is documented.
#[test]
fn namespaces_and_units_read_back_and_are_documented() {
    use kwatch::model::{NamespaceInfo, NetnsRef, Settings, Unit, UnitKind};
    let mut snapshot = analyzed("busy.json");
    let host = NetnsRef {
        inode: 4026531840,
        name: None,
    };
    let web = NetnsRef {
        inode: 4026532301,
        name: Some("web".into()),
    };
    let web_settings = Settings {
        tcp_keepalive_time_s: Some(600),
        ..snapshot.settings
    };
    snapshot.namespaces = vec![
        NamespaceInfo {
            netns: host.clone(),
            current: true,
            pid: None,
            settings: snapshot.settings,
            error: None,
        },
        NamespaceInfo {
            netns: web.clone(),
            current: false,
            pid: Some(2231),
            settings: web_settings,
            error: None,
        },
        NamespaceInfo {
            netns: NetnsRef {
                inode: 4026532999,
                name: None,
            },
            current: false,
            pid: Some(77),
            settings: Settings::default(),
            error: Some(
                "cannot enter network namespace 'ns:4026532999': operation not permitted".into(),
            ),
        },
    ];
    for (i, c) in snapshot.connections.iter_mut().enumerate() {
        c.netns = Some(std::sync::Arc::new(if i % 2 == 0 {
            host.clone()
        } else {
            web.clone()
        }));
    }
    let owner = snapshot
        .connections
        .iter()
        .find_map(|c| c.owners.first())
        .unwrap()
        .pid;
    let unit = Unit {
        kind: UnitKind::Crio,
        id: "3f4e1b2c9d8a".into(),
        pod: Some("8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into()),
    };
    snapshot.units.insert(owner, unit);
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    let text = write_doc(&snapshot, &conns);
    let doc: Doc = serde_json::from_str(&text).unwrap();

    assert_eq!(doc.namespaces.len(), 3);
    let (n_host, n_web) = (conns.len().div_ceil(2) as u64, (conns.len() / 2) as u64);
    let got: Vec<(u64, Option<&str>, bool, u64, bool)> = doc
        .namespaces
        .iter()
        .map(|n| {
            (
                n.inode,
                n.name.as_deref(),
                n.current,
                n.sockets,
                n.error.is_some(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (4026531840, None, true, n_host, false),
            (4026532301, Some("web"), false, n_web, false),
            (4026532999, None, false, 0, true),
        ]
    );
    assert_eq!(doc.namespaces[1].settings.tcp_keepalive_time_s, Some(600));
    assert_eq!(doc.namespaces[1].pid, Some(2231));
    assert!(doc.namespaces[2].settings.tcp_keepalive_time_s.is_none());
    for (i, s) in doc.sockets.iter().enumerate() {
        let ns = s.netns.as_ref().unwrap();
        let want = if i % 2 == 0 { &host } else { &web };
        assert_eq!(
            (ns.inode, ns.name.as_deref()),
            (want.inode, want.name.as_deref())
        );
        let held_by_owner = s.owners.iter().any(|o| o.pid == owner);
        assert_eq!(s.unit.is_some(), held_by_owner, "cookie {}", s.cookie);
    }
    let p = doc.processes.iter().find(|p| p.pid == owner).unwrap();
    let u = p.unit.as_ref().unwrap();
    assert_eq!(
        (u.kind.as_str(), u.id.as_str(), u.pod.as_deref()),
        (
            "cri-o",
            "3f4e1b2c9d8a",
            Some("8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
        )
    );
    assert!(
        doc.processes
            .iter()
            .filter(|p| p.pid != owner)
            .all(|p| p.unit.is_none())
    );

    let path = format!("{}/docs/json-schema.md", env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    collect_field_names(&value, &mut names);
    for name in names {
        assert!(
            md.contains(&format!("| `{name}` |")),
            "field '{name}' is not described in {path}"
        );
    }
}

/// Object keys of the document, except those of maps keyed by state or finding code.
fn collect_field_names(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                if !matches!(k.as_str(), "by_state" | "by_finding" | "findings") || v.is_array() {
                    collect_field_names(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_field_names(i, out)),
        _ => {}
    }
}
