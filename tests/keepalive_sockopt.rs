//! Keepalive options read from another process's sockets: kwatch runs as a child process and reads the sockets
//! this test process holds. As root it reads them; as nobody, or with --no-sockopt, it reports them as assumed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Whether this root-only test can run; in CI it must.
fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "{test}: must run as root in CI"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// A loopback pair whose client set 30/5/4 and TCP_USER_TIMEOUT 45 s; the server side keeps the defaults.
fn configured_pair() -> (
    std::net::TcpListener,
    std::net::TcpStream,
    std::net::TcpStream,
) {
    let (l, c, s) = connected_pair(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    set_keepalive(&c, 30, 5, 4);
    socket2::SockRef::from(&c)
        .set_tcp_user_timeout(Some(Duration::from_millis(45_000)))
        .unwrap();
    (l, c, s)
}

fn ports(c: &std::net::TcpStream) -> (u16, u16) {
    (
        c.local_addr().unwrap().port(),
        c.peer_addr().unwrap().port(),
    )
}

fn sysctl(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn settings_read_from_another_process_equal_what_it_set() {
    if !root_or_skip("settings_read_from_another_process_equal_what_it_set") {
        return;
    }
    let (_l, c, s) = configured_pair();
    let (cport, lport) = ports(&c);
    let doc = kwatch_json(None, &["--port", &lport.to_string()]);
    let client = find_socket(&doc, cport, lport).expect("client listed");
    let ka = &client["keepalive"];
    assert_eq!(ka["source"], "socket", "{client}");
    assert_eq!(
        (&ka["enabled"], &ka["idle_s"], &ka["intvl_s"], &ka["cnt"]),
        (
            &Value::from(true),
            &Value::from(30),
            &Value::from(5),
            &Value::from(4)
        ),
        "{ka}"
    );
    assert_eq!(ka["user_timeout_ms"], 45_000);
    // First probe 30 s after the handshake; with a 45 s user timeout the kernel probes at 30, 35, 40 and resets
    // at the 45 s expiry (the probe count is ignored).
    let next = client["next_probe_ms"].as_u64().unwrap();
    assert!((25_000..=30_000).contains(&next), "{client}");
    assert_eq!(client["dies_by"], "user_timeout");
    assert_eq!(client["dies_in_ms"].as_u64().unwrap(), next + 15_000);
    assert_eq!(client["dies_in_estimate"], false);
    assert!(
        client["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["pid"] == std::process::id())
    );

    let server = find_socket(&doc, lport, cport).expect("server side listed");
    let ka = &server["keepalive"];
    // No timer pending: keepalive is off and nothing is in flight, so kwatch does not spend syscalls on it.
    assert_eq!(server["timer"]["kind"], "none", "{server}");
    assert_eq!(ka["source"], "sysctl", "{server}");
    assert_eq!(ka["enabled"], false);
    assert_eq!(ka["idle_s"], sysctl("tcp_keepalive_time"));
    assert!(server["dies_in_ms"].is_null() && server["next_probe_ms"].is_null());
    drop((c, s));
}

#[test]
fn as_nobody_the_settings_are_assumed_and_marked_so() {
    if !root_or_skip("as_nobody_the_settings_are_assumed_and_marked_so") {
        return;
    }
    let (_l, c, s) = configured_pair();
    let (cport, lport) = ports(&c);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", KWATCH])
        .args(["--once", "--json", "--port", &lport.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let client = find_socket(&doc, cport, lport).expect("client listed");
    let ka = &client["keepalive"];
    assert_eq!(ka["source"], "sysctl", "{client}");
    assert_eq!(
        ka["idle_s"],
        sysctl("tcp_keepalive_time"),
        "not the socket's 30"
    );
    assert_eq!(ka["intvl_s"], sysctl("tcp_keepalive_intvl"));
    assert_eq!(ka["cnt"], sysctl("tcp_keepalive_probes"));
    assert!(ka["user_timeout_ms"].is_null(), "unknown, not 0: {ka}");
    assert_eq!(ka["enabled"], true, "inferred from the keepalive timer");
    let me = std::process::id();
    assert!(
        doc["unreadable_processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == me),
        "nobody cannot read this process's fds: {}",
        doc["unreadable_processes"]
    );
    drop((c, s));
}

#[test]
fn no_sockopt_assumes_the_sysctls_even_as_root() {
    if !root_or_skip("no_sockopt_assumes_the_sysctls_even_as_root") {
        return;
    }
    let (_l, c, s) = configured_pair();
    let (cport, lport) = ports(&c);
    let doc = kwatch_json(None, &["--no-sockopt", "--port", &lport.to_string()]);
    let client = find_socket(&doc, cport, lport).expect("client listed");
    assert_eq!(client["keepalive"]["source"], "sysctl", "{client}");
    assert_eq!(client["keepalive"]["idle_s"], sysctl("tcp_keepalive_time"));
    assert!(
        !client["owners"].as_array().unwrap().is_empty(),
        "owners still mapped"
    );
    // Skipping on request is not a problem: no warning but the one about processes even root may not read
    // (PID 1 in some containers), which has nothing to do with socket options.
    let unreadable = doc["unreadable_processes"].as_array().unwrap().len();
    let expected: Vec<String> = (unreadable > 0)
        .then(|| {
            format!(
                "{unreadable} {} could not be read; not even root may read them",
                if unreadable == 1 {
                    "process"
                } else {
                    "processes"
                }
            )
        })
        .into_iter()
        .collect();
    assert_eq!(
        doc["warnings"],
        serde_json::json!(expected),
        "skipping on request is not a problem"
    );
    drop((c, s));
}
