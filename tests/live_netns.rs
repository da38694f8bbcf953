//! Live tests as root in network namespaces this test creates (veth pair, 192.0.2.0/24): a peer that vanishes,
//! and the whole socket set of a namespace compared with `ss`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;

#[test]
fn a_vanished_peer_shows_rising_unanswered_probes_that_agree_with_ss() {
    if !can_use_netns("a_vanished_peer_shows_rising_unanswered_probes_that_agree_with_ss") {
        return;
    }
    let pair = NetnsPair::new();
    let listener = in_netns(&pair.b, || TcpListener::bind((ADDR_B, 9000)).unwrap());
    let client = in_netns(&pair.a, || {
        let c = TcpStream::connect((ADDR_B, 9000)).unwrap();
        // Probe every second after one idle second; 60 probes keep the socket alive for the whole test.
        set_keepalive(&c, 1, 1, 60);
        c
    });
    let (server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    pair.cut_b();

    let me = std::process::id() as u64;
    let mut seen = Vec::new();
    let reached = poll(Duration::from_secs(30), || {
        let before = ss(Some(&pair.a));
        let doc = kwatch_json(Some(&pair.a), &["--dport", "9000"]);
        let after = ss(Some(&pair.a));
        let s = find_socket(&doc, cport, 9000)
            .expect("client socket listed")
            .clone();
        assert_eq!(s["state"], "established");
        assert_eq!(s["timer"]["kind"], "keepalive", "{s}");
        let ours = s["timer"]["count"].as_u64().unwrap() as u32;
        let ss_count = |v: &[SsSocket]| {
            v.iter()
                .find(|x| x.local == format!("{ADDR_A}:{cport}"))
                .and_then(|x| x.timer.clone())
                .unwrap()
                .1
        };
        let (lo, hi) = (ss_count(&before), ss_count(&after));
        assert!(
            lo.saturating_sub(1) <= ours && ours <= hi + 1,
            "kwatch counted {ours} probes, ss {lo} just before and {hi} just after"
        );
        assert!(
            s["owners"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["pid"] == me),
            "{s}"
        );
        seen.push(ours);
        (ours >= 4).then_some(s)
    })
    .unwrap_or_else(|| panic!("probe count never reached 4; seen {seen:?}"));

    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "probe counts never go down while the peer is gone: {seen:?}"
    );
    assert!(
        seen.iter().collect::<std::collections::BTreeSet<_>>().len() >= 2,
        "count rose over snapshots: {seen:?}"
    );
    let codes: Vec<&str> = reached["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"dead_peer_suspect"), "{reached}");
    drop((client, server, listener));
}

#[test]
fn a_namespace_lists_the_same_sockets_and_states_as_ss() {
    if !can_use_netns("a_namespace_lists_the_same_sockets_and_states_as_ss") {
        return;
    }
    let pair = NetnsPair::new();
    // In a: a listener with two accepted connections, one of which the peer closed (CLOSE_WAIT); an outgoing
    // connection we closed first (FIN-WAIT-2 or TIME-WAIT); IPv6 on loopback; a keepalive socket.
    let (l_a, l6) = in_netns(&pair.a, || {
        (
            TcpListener::bind((ADDR_A, 7000)).unwrap(),
            TcpListener::bind(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 7001))).unwrap(),
        )
    });
    let l_b = in_netns(&pair.b, || TcpListener::bind((ADDR_B, 8000)).unwrap());
    let (c1, c2) = in_netns(&pair.b, || {
        (
            TcpStream::connect((ADDR_A, 7000)).unwrap(),
            TcpStream::connect((ADDR_A, 7000)).unwrap(),
        )
    });
    let (a1, _) = l_a.accept().unwrap();
    let (a2, _) = l_a.accept().unwrap();
    (&c2).write_all(b"x").unwrap();
    c2.shutdown(Shutdown::Both).unwrap();
    drop(c2);
    let (v6c, v6s) = in_netns(&pair.a, move || {
        let c = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
        let s = l6.accept().unwrap().0;
        (c, (s, l6))
    });
    let outgoing = in_netns(&pair.a, || TcpStream::connect((ADDR_B, 8000)).unwrap());
    set_keepalive(&outgoing, 300, 30, 5);
    let (b_side, _) = l_b.accept().unwrap();
    let active_close = in_netns(&pair.a, || TcpStream::connect((ADDR_B, 8000)).unwrap());
    let (b_side2, _) = l_b.accept().unwrap();
    drop(active_close); // a sends FIN first
    drop(b_side2); // b answers: a goes to TIME-WAIT

    // A generous deadline: each look runs ss twice and kwatch once, and on a busy machine a look can take seconds
    // (this waited 10 s once in a clean-clone CI run and ran out).
    let matched = poll(Duration::from_secs(30), || {
        let before = ss(Some(&pair.a));
        let doc = kwatch_json(Some(&pair.a), &[]);
        let after = ss(Some(&pair.a));
        if before != after {
            return None; // a state changed under us; look again
        }
        let mut ours: Vec<SsSocket> = sockets(&doc).iter().map(as_ss).collect();
        let mut theirs = before;
        ours.sort();
        theirs.sort();
        let strip = |v: &[SsSocket]| {
            v.iter()
                .map(|s| (s.state.clone(), s.local.clone(), s.peer.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(&ours),
            strip(&theirs),
            "kwatch and ss list the same sockets in namespace a"
        );
        // The closes above travel over the veth pair: on a busy machine the CLOSE-WAIT and TIME-WAIT they
        // lead to may not be there yet. Look again until they are.
        let states: Vec<&str> = ours.iter().map(|s| s.state.as_str()).collect();
        ["close-wait", "time-wait"]
            .iter()
            .all(|want| states.contains(want))
            .then_some(ours)
    })
    .expect("two ss runs around kwatch agreed, with the closes arrived, within 30 s");

    let states: Vec<&str> = matched.iter().map(|s| s.state.as_str()).collect();
    for want in ["listen", "established", "close-wait", "time-wait"] {
        assert!(
            states.contains(&want),
            "namespace a has a {want} socket: {matched:?}"
        );
    }
    assert!(
        matched.iter().any(|s| s.local.starts_with("[::1]")),
        "IPv6 loopback listed: {matched:?}"
    );
    let ka = matched.iter().find(|s| {
        s.local.starts_with(&format!("{ADDR_A}:"))
            && s.peer == format!("{ADDR_B}:8000")
            && s.state == "established"
    });
    assert_eq!(
        ka.and_then(|s| s.timer.clone()).map(|t| t.0),
        Some("keepalive".to_string())
    );
    drop((a1, a2, c1, v6c, v6s, b_side, l_a, l_b));
}

#[test]
fn namespace_sysctls_are_reported() {
    if !can_use_netns("namespace_sysctls_are_reported") {
        return;
    }
    let pair = NetnsPair::new();
    pair.sysctl(&pair.a, "net.ipv4.tcp_keepalive_time", "600");
    pair.sysctl(&pair.a, "net.ipv4.tcp_keepalive_intvl", "15");
    pair.sysctl(&pair.a, "net.ipv4.tcp_keepalive_probes", "4");
    let doc = kwatch_json(Some(&pair.a), &[]);
    let s = &doc["settings"];
    assert_eq!(s["tcp_keepalive_time_s"], 600, "{s}");
    assert_eq!(s["tcp_keepalive_intvl_s"], 15);
    assert_eq!(s["tcp_keepalive_probes"], 4);
    assert!(s["tcp_retries2"].as_u64().is_some());
    assert!(s["tcp_fin_timeout_s"].as_u64().is_some());
    let doc_b = kwatch_json(Some(&pair.b), &[]);
    assert_ne!(
        doc_b["settings"]["tcp_keepalive_time_s"], 600,
        "namespace b keeps its own settings"
    );
}
