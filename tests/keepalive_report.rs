//! Keepalive settings and predictions as the JSON report shows them, on the shared `busy` fixture with settings
//! assumed from its sysctls (what kwatch reports when it may not read the owners' sockets).
#![allow(clippy::unwrap_used)]

use kwatch::analyze::{self, Thresholds};
use kwatch::model::{Connection, Snapshot};
use serde_json::Value;

fn busy_filled() -> Snapshot {
    let mut s = kwatch::testing::fixture("busy.json");
    kwatch::sockopt::fill(&mut s, false, None);
    analyze::analyze(&mut s, &Thresholds::default());
    s
}

fn doc(s: &Snapshot, keep: impl Fn(&Connection) -> bool) -> Value {
    let conns: Vec<&Connection> = s.connections.iter().filter(|c| keep(c)).collect();
    let mut out = Vec::new();
    kwatch::output::json::write_pretty(&mut out, s, &conns, 9120).unwrap();
    if let Some(path) = std::env::var_os("KWATCH_WRITE_EXAMPLE") {
        std::fs::write(path, &out).unwrap();
    }
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn assumed_settings_and_predictions_are_reported_per_socket() {
    let s = busy_filled();
    let d = doc(&s, |_| true);
    let by_cookie = |cookie: u64| {
        d["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["cookie"] == cookie)
            .unwrap()
            .clone()
    };
    // 1004: keepalive timer, 3 of 9 probes out, 41 s to the next: 6 more probes 75 s apart.
    let s1004 = by_cookie(1004);
    assert_eq!(s1004["keepalive"]["source"], "sysctl", "{s1004}");
    assert_eq!(s1004["keepalive"]["enabled"], true);
    assert_eq!(s1004["keepalive"]["idle_s"], 7200);
    assert!(s1004["keepalive"]["user_timeout_ms"].is_null());
    assert_eq!(s1004["next_probe_ms"], 41_000);
    assert_eq!(s1004["dies_in_ms"], 41_000 + 6 * 75_000);
    assert_eq!(s1004["dies_in_estimate"], false);
    assert_eq!(s1004["dies_by"], "keepalive");
    // Listeners and TIME-WAIT get no keepalive object and no prediction.
    for x in d["sockets"].as_array().unwrap() {
        let st = x["state"].as_str().unwrap();
        let predicted = st == "established" || st == "close-wait";
        assert_eq!(!x["keepalive"].is_null(), predicted, "{x}");
        if !predicted {
            assert!(x["dies_in_ms"].is_null() && x["next_probe_ms"].is_null());
        }
        // Keepalive off (known) and nothing in flight: never.
        if x["keepalive"]["enabled"] == false && x["timer"]["kind"] == "none" {
            assert!(x["dies_in_ms"].is_null() && x["dies_by"].is_null(), "{x}");
        }
    }
}

#[test]
fn processes_report_keepalive_exposure_with_findings() {
    let s = busy_filled();
    let d = doc(&s, |_| true);
    let java = d["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 2231)
        .unwrap();
    let est = java["by_state"]["established"].as_u64().unwrap();
    let off = java["established_without_keepalive"].as_u64().unwrap();
    let dflt = java["keepalive_default"].as_u64().unwrap();
    assert!(est > 0);
    assert_eq!(java["keepalive_off_percent"], off * 100 / est, "{java}");
    assert_eq!(java["keepalive_default_percent"], dflt * 100 / est);
    let codes: Vec<&str> = java["process_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.contains(&"keepalive_off"), off * 2 >= est, "{java}");
    assert_eq!(
        codes.contains(&"keepalive_default"),
        dflt * 2 >= est && dflt > 0
    );
    // totals.by_finding counts processes for the process-level codes.
    let flagged = |code: &str| {
        d["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["process_findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["code"] == code)
            })
            .count() as u64
    };
    for code in ["keepalive_off", "keepalive_default"] {
        assert_eq!(d["totals"]["by_finding"][code], flagged(code), "{code}");
    }
    assert!(flagged("keepalive_off") + flagged("keepalive_default") > 0);
}

#[test]
fn the_schema_example_subset_can_be_regenerated() {
    // `KWATCH_WRITE_EXAMPLE=/tmp/x.json cargo test --test keepalive_report` writes the docs example.
    let s = busy_filled();
    let d = doc(&s, |c| [40112, 40140].contains(&c.local_port));
    assert_eq!(d["sockets"].as_array().unwrap().len(), 2);
}

#[test]
fn the_table_shows_when_each_socket_dies_when_width_allows() {
    use kwatch::output::table::{self, TableOptions};
    let s = busy_filled();
    let conns: Vec<&Connection> = s.connections.iter().collect();
    let wide = table::render(&s, &conns, &TableOptions::default());
    let header = wide.lines().next().unwrap();
    assert!(header.contains("Dies"), "{header}");
    let row = wide.lines().find(|l| l.contains(":40112")).unwrap();
    assert!(
        row.contains("8m11s"),
        "3 of 9 probes out, 41s + 6 x 75s: {row}"
    );
    let never = s
        .connections
        .iter()
        .filter(|c| {
            kwatch::analyze::predict::prediction_in(&s, c).is_some_and(|p| p.dies_in_ms.is_none())
        })
        .count();
    assert!(never > 0);
    assert_eq!(
        wide.lines().filter(|l| l.contains(" never ")).count(),
        never,
        "{wide}"
    );
    for width in [60, 80, 120] {
        let text = table::render(
            &s,
            &conns,
            &TableOptions {
                width: Some(width),
                color: false,
            },
        );
        assert!(
            text.lines()
                .all(|l| unicode_width::UnicodeWidthStr::width(l) <= width),
            "{text}"
        );
    }
}

#[test]
fn held_dead_sockets_reach_the_table_footer_the_json_and_the_process_rollup() {
    use kwatch::model::keepalive::DeathCause;
    use kwatch::model::{HeldDeadSocket, TcpInfo, TcpInfoFields};
    use kwatch::output::table::{self, TableOptions};
    let mut s = busy_filled();
    let g = HeldDeadSocket {
        pid: 3107,
        fd: 9,
        inode: 99_001,
        local_addr: Some("10.0.0.5".parse().unwrap()),
        local_port: Some(40150),
        tcp_info: Some(TcpInfo::from(TcpInfoFields {
            state: Some(7),
            probes: Some(9),
            ..TcpInfoFields::default()
        })),
        cause: DeathCause::KeepaliveExhausted,
    };
    s.held_dead = vec![g.clone(), HeldDeadSocket { fd: 10, ..g }];
    // Filtered to a socket of another process: the holder is still listed, with its dead sockets (one socket
    // held through two fds counts once).
    let d = doc(&s, |c| c.owners.iter().any(|o| o.pid == 2231));
    assert_eq!(d["held_dead_sockets"].as_array().unwrap().len(), 2);
    assert_eq!(d["held_dead_sockets"][0]["cause"], "keepalive_exhausted");
    assert_eq!(d["held_dead_sockets"][0]["tcp_info"]["probes"], 9);
    let holder = d["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 3107)
        .expect("holder listed");
    assert_eq!(holder["held_dead_sockets"], 1);
    assert_eq!(holder["sockets"], 0);

    let conns: Vec<&Connection> = s.connections.iter().collect();
    let text = table::render(&s, &conns, &TableOptions::default());
    let line = text
        .lines()
        .find(|l| l.contains("dead sockets still held"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with(
            "2 dead sockets still held: 3107/evil\\x1b]0;pwned\\x07 fd 9 (keepalive_exhausted)"
        ),
        "escaped name, fd and cause: {line}"
    );
}
