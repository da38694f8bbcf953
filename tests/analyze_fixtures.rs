//! The shared snapshot fixtures load, and analysis finds what each socket in `busy.json` was built to show.

use kwatch::analyze::{Thresholds, analyze, rollup};
use kwatch::filter::Filter;
use kwatch::model::{FindingCode, Severity, Snapshot, TcpState};

use kwatch::testing::fixture as load;

#[test]
fn fixtures_load_with_findings_empty() {
    let busy = load("busy.json");
    assert_eq!(busy.host, "web-1");
    assert_eq!(busy.connections.len(), 14);
    assert!(busy.connections.iter().all(|c| c.findings.is_empty()));
    assert_eq!(busy.processes.len(), 5);
    assert!(busy.comm(3107).contains('\u{1b}'));
    let empty = load("empty.json");
    assert!(empty.connections.is_empty());
}

fn analyzed_busy() -> Snapshot {
    let mut snap = load("busy.json");
    analyze(&mut snap, &Thresholds::default());
    snap
}

#[test]
fn busy_fixture_findings_per_socket() {
    let snap = analyzed_busy();
    let expected: &[(u64, &[(FindingCode, Severity)])] = &[
        (1001, &[]),
        (1002, &[]),
        (1003, &[]),
        (1004, &[(FindingCode::DeadPeerSuspect, Severity::Critical)]),
        (1005, &[(FindingCode::NoKeepaliveIdle, Severity::Info)]),
        (1006, &[(FindingCode::CloseWait, Severity::Warning)]),
        (1007, &[(FindingCode::CloseWait, Severity::Critical)]),
        (1008, &[(FindingCode::Retransmitting, Severity::Critical)]),
        (1009, &[(FindingCode::ZeroWindow, Severity::Warning)]),
        (1010, &[]),
        (1011, &[]),
        (1012, &[]),
        (1013, &[]),
        (1014, &[]),
    ];
    let got: Vec<(u64, Vec<(FindingCode, Severity)>)> = snap
        .connections
        .iter()
        .map(|c| {
            (
                c.cookie,
                c.findings.iter().map(|f| (f.code, f.severity)).collect(),
            )
        })
        .collect();
    let want: Vec<(u64, Vec<(FindingCode, Severity)>)> = expected
        .iter()
        .map(|(cookie, f)| (*cookie, f.to_vec()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn busy_fixture_messages() {
    let snap = analyzed_busy();
    let message = |cookie: u64| {
        let c = snap
            .connections
            .iter()
            .find(|c| c.cookie == cookie)
            .expect("cookie in fixture");
        let worst = c.findings.iter().next().expect("a finding");
        kwatch::analyze::explain(c, &worst)
    };
    assert_eq!(
        message(1004),
        "3 keepalive probes unanswered, nothing received for 2h3m; the peer may be gone"
    );
    assert_eq!(
        message(1005),
        "idle 2h with SO_KEEPALIVE off; a half-open connection here would never be noticed"
    );
    assert_eq!(
        message(1006),
        "peer closed at least 10m ago and the program has not closed its end; it read to the end: a missing close()?"
    );
    assert_eq!(
        message(1007),
        "peer closed at least 10m12s ago and the program has not closed its end; 1.9 KiB unread: it stopped reading"
    );
    assert_eq!(
        message(1008),
        "6 retransmits without an ack (backoff 6); next in 25s; 1.4 KiB unacknowledged"
    );
    assert_eq!(
        message(1009),
        "peer's receive window is zero after 2 window probes; 64.0 KiB waiting to be sent: the peer is alive but not reading"
    );
}

#[test]
fn busy_fixture_rollup() {
    let snap = analyzed_busy();
    let r = rollup(&snap, &snap.connections);
    let rows: Vec<(u32, u32, u32, u32, u32)> = r
        .iter()
        .map(|p| (p.pid, p.sockets, p.critical, p.warning, p.info))
        .collect();
    // java: dead peer + retransmitting (2 critical), close-wait (warning), idle (info), 6 sockets.
    // 3107: one critical close-wait. nginx worker: zero window. sshd and the nginx master: healthy.
    assert_eq!(
        rows,
        vec![
            (2231, 6, 2, 1, 1),
            (3107, 1, 1, 0, 0),
            (812, 3, 0, 1, 0),
            (640, 2, 0, 0, 0),
            (811, 1, 0, 0, 0)
        ]
    );
    let java = &r[0];
    assert_eq!(java.comm, "java");
    assert_eq!(java.user.as_deref(), Some("app"));
    assert_eq!(java.established_without_keepalive, 1);
    assert_eq!(java.by_state.get(&TcpState::CloseWait), Some(&1));
    assert_eq!(java.by_state.get(&TcpState::SynSent), Some(&1));
    assert_eq!(
        r[1].comm, "evil\u{1b}]0;pwned\u{7}",
        "rollup keeps comm raw; display escapes it"
    );
}

#[test]
fn busy_fixture_filters() {
    let snap = analyzed_busy();
    let cookies = |text: &str| -> Vec<u64> {
        let f = Filter::parse(text).expect("valid filter");
        snap.connections
            .iter()
            .filter(|c| f.matches_in(c, &snap))
            .map(|c| c.cookie)
            .collect()
    };
    assert_eq!(cookies("stuck"), vec![1004, 1005, 1006, 1007, 1008, 1009]);
    assert_eq!(cookies("sport:443"), vec![1001, 1003, 1009, 1010]);
    assert_eq!(
        cookies("port:443 state:established"),
        vec![1003, 1009, 1013]
    );
    assert_eq!(cookies("6"), vec![1002, 1012]);
    assert_eq!(cookies("pid:811"), vec![1001]);
    assert_eq!(cookies("nginx stuck"), vec![1009]);
    assert_eq!(
        cookies("code:close_wait,zero_window"),
        vec![1006, 1007, 1009]
    );
    assert_eq!(cookies("state:close-wait pid:3107"), vec![1007]);
}

#[test]
fn empty_fixture_analyzes_to_nothing() {
    let mut snap = load("empty.json");
    analyze(&mut snap, &Thresholds::default());
    assert!(rollup(&snap, &snap.connections).is_empty());
}
