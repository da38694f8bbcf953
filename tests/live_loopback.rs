//! Live tests on loopback, runnable without root: real sockets opened here must appear in `kwatch --once --json`
//! with the kernel's state, ports, timers and our pid.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn port(s: &TcpStream) -> u16 {
    s.local_addr().unwrap().port()
}

fn owner_pids(s: &Value) -> Vec<u64> {
    s["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pid"].as_u64().unwrap())
        .collect()
}

fn codes(s: &Value) -> Vec<String> {
    s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ipv4_and_ipv6_loopback_sockets_appear_with_state_ports_and_our_pid() {
    let me = std::process::id() as u64;
    for (family, addr) in [
        ("ipv4", SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
        ("ipv6", SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
    ] {
        let (listener, client, server) = connected_pair(addr);
        let lport = listener.local_addr().unwrap().port();
        let doc = kwatch_json(None, &["--port", &lport.to_string()]);

        let listen = find_socket(&doc, lport, 0)
            .unwrap_or_else(|| panic!("{family} listener missing: {doc}"));
        assert_eq!(listen["state"], "listen");
        assert_eq!(listen["family"], family);
        assert!(owner_pids(listen).contains(&me), "{listen}");

        let c = find_socket(&doc, port(&client), lport).expect("client side listed");
        assert_eq!(c["state"], "established");
        assert_eq!(c["family"], family);
        assert_eq!(c["peer_addr"], addr.ip().to_string());
        assert!(owner_pids(c).contains(&me));
        assert!(
            c["tcp_info"]["rtt_us"].as_u64().is_some(),
            "tcp_info present for established: {c}"
        );
        assert!(c["cookie"].as_u64().unwrap() != 0);

        let s = find_socket(&doc, lport, port(&client)).expect("server side listed");
        assert_eq!(s["state"], "established");
        assert!(owner_pids(s).contains(&me));
        // Other tests' sockets may share the port (a TIME-WAIT entry whose ephemeral port is our listener's),
        // so the filter is judged by what it keeps: every socket listed has the port on one end.
        assert!(
            sockets(&doc)
                .iter()
                .all(|s| s["local_port"] == lport || s["peer_port"] == lport),
            "the port filter keeps only sockets with port {lport}: {doc}"
        );
        drop(server);
    }
}

#[test]
fn keepalive_socket_shows_its_timer_and_plain_socket_shows_none() {
    let (listener, with_ka, _srv1) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
    set_keepalive(&with_ka, 60, 10, 5);
    let without = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _srv2 = listener.accept().unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();

    let doc = kwatch_json(None, &["--dport", &lport]);
    let ka = find_socket(&doc, port(&with_ka), listener.local_addr().unwrap().port())
        .expect("keepalive socket");
    assert_eq!(ka["timer"]["kind"], "keepalive", "{ka}");
    let expires = ka["timer"]["expires_ms"].as_u64().unwrap();
    assert!(
        (50_000..=60_000).contains(&expires),
        "TCP_KEEPIDLE=60 arms the timer at 60 s, got {expires} ms"
    );
    assert_eq!(ka["timer"]["count"], 0);

    let plain = find_socket(&doc, port(&without), listener.local_addr().unwrap().port())
        .expect("plain socket");
    assert_eq!(plain["timer"]["kind"], "none", "{plain}");
    assert_eq!(
        sockets(&doc).len(),
        2,
        "--dport keeps only the two client sides"
    );
}

#[test]
fn close_wait_is_flagged_with_the_owning_pid_and_unread_bytes_make_it_critical() {
    let (listener, client, server) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
    // The peer sends a few bytes and closes; our side never reads nor closes: CLOSE_WAIT with recv_q > 0.
    (&client).write_all(b"bye!").unwrap();
    client.shutdown(Shutdown::Both).unwrap();
    drop(client);
    let lport = listener.local_addr().unwrap().port();
    let peer_port = server.peer_addr().unwrap().port();

    let found = poll(Duration::from_secs(10), || {
        let doc = kwatch_json(
            None,
            &[
                "--state",
                "close-wait",
                "--close-wait-after",
                "0s",
                "--sport",
                &lport.to_string(),
            ],
        );
        find_socket(&doc, lport, peer_port).cloned()
    })
    .expect("CLOSE_WAIT socket listed");
    assert_eq!(found["state"], "close-wait");
    assert_eq!(
        found["recv_q"], 5,
        "4 unread bytes and the FIN, as ss counts them"
    );
    assert_eq!(owner_pids(&found), vec![std::process::id() as u64]);
    assert_eq!(codes(&found), vec!["close_wait"]);
    assert_eq!(found["findings"][0]["severity"], "critical", "{found}");

    // With the default threshold (30 s) a fresh CLOSE_WAIT is not yet accused.
    let doc = kwatch_json(
        None,
        &["--state", "close-wait", "--sport", &lport.to_string()],
    );
    let fresh = find_socket(&doc, lport, peer_port).expect("still listed");
    assert!(
        codes(fresh).is_empty(),
        "a CLOSE_WAIT a moment old is not stuck yet: {fresh}"
    );
    drop(server);
}

#[test]
fn state_filter_goes_to_the_kernel_and_stuck_filter_keeps_only_findings() {
    let (listener, client, server) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
    let lport = listener.local_addr().unwrap().port().to_string();
    let doc = kwatch_json(None, &["--port", &lport, "--state", "listen"]);
    assert_eq!(sockets(&doc).len(), 1);
    assert_eq!(sockets(&doc)[0]["state"], "listen");
    let doc = kwatch_json(None, &["--port", &lport, "--stuck"]);
    assert!(
        sockets(&doc).is_empty(),
        "healthy fresh sockets are not stuck: {doc}"
    );
    drop((client, server));
}

#[test]
fn as_an_unprivileged_user_sockets_are_listed_and_unreadable_processes_reported() {
    if !is_root() {
        // We are unprivileged already: the same checks hold for us directly.
        let doc = kwatch_json(None, &[]);
        assert!(!sockets(&doc).is_empty());
        return;
    }
    let (listener, _client, _server) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
    let lport = listener.local_addr().unwrap().port().to_string();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            KWATCH,
            "--once",
            "--json",
            "--port",
            &lport,
        ])
        .output()
        .expect("setpriv (util-linux) runs kwatch as nobody");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        sockets(&doc).len(),
        3,
        "sock_diag lists root's sockets to nobody too"
    );
    for s in sockets(&doc) {
        assert!(
            s["owners"].as_array().unwrap().is_empty(),
            "nobody cannot see root's fds: {s}"
        );
    }
    assert!(
        doc["totals"]["unreadable_processes"].as_u64().unwrap() >= 1,
        "{}",
        doc["totals"]
    );
    let unreadable = doc["unreadable_processes"].as_array().unwrap();
    assert!(
        unreadable
            .iter()
            .any(|p| p["pid"] == std::process::id() as u64),
        "our pid is unreadable to nobody"
    );
    // Kernel threads hold no fds: they are not counted (they were about half of the count).
    for p in unreadable {
        let pid = p["pid"].as_u64().unwrap();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // exited since
        };
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        let flags: u64 = after_name
            .split_whitespace()
            .nth(6)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            flags & 0x0020_0000,
            0,
            "kernel thread counted as unreadable: {p}"
        );
    }
    // The hint the table prints is a warning in JSON too, not an empty list.
    let n = unreadable.len();
    let hint = format!(
        "{n} {} could not be read; run as root to see their sockets",
        if n == 1 { "process" } else { "processes" }
    );
    let warnings = doc["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| *w == hint), "{warnings:?}");

    // The table says so in its footer, with the hint.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            KWATCH,
            "--once",
            "--port",
            &lport,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run as root"), "footer hints at root: {text}");
}
