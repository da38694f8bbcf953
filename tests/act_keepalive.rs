//! `kwatch keepalive` on a running program's connection, as root in a veth namespace pair this test creates
//! (192.0.2.0/24): a connection opened without keepalive gets it through a duplicated fd, the settings read back,
//! and once the peer's link is cut the probes go out and the kernel resets the connection when they say.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use kwatch::diag::{DumpRequest, Dumper};
use kwatch::model::TimerKind;
use serde_json::Value;

const PORT: u16 = 9300;

/// A client in namespace a connected to a listener in namespace b, without keepalive, and a dumper listing a.
fn setup(pair: &NetnsPair) -> (TcpListener, TcpStream, TcpStream, Dumper) {
    let listener = in_netns(&pair.b, || TcpListener::bind((ADDR_B, PORT)).unwrap());
    let (client, dumper) = in_netns(&pair.a, || {
        let c = TcpStream::connect((ADDR_B, PORT)).unwrap();
        (c, Dumper::open().unwrap())
    });
    let (server, _) = listener.accept().unwrap();
    (listener, client, server, dumper)
}

fn client_json(pair: &NetnsPair, cport: u16) -> Option<Value> {
    let doc = kwatch_json(Some(&pair.a), &["--sport", &cport.to_string()]);
    find_socket(&doc, cport, PORT).cloned()
}

#[test]
fn keepalive_turned_on_live_probes_and_resets_a_silent_peer_on_time() {
    if !can_use_netns("keepalive_turned_on_live_probes_and_resets_a_silent_peer_on_time") {
        return;
    }
    let pair = NetnsPair::new();
    let (_listener, mut client, _server, mut dumper) = setup(&pair);
    let cport = client.local_addr().unwrap().port();
    assert!(!socket2::SockRef::from(&client).keepalive().unwrap());
    let before = client_json(&pair, cport).expect("client listed");
    assert_eq!(before["keepalive"]["enabled"], false, "{before}");
    assert_eq!(before["timer"]["kind"], "none", "{before}");

    // A dry run changes nothing.
    let out = kwatch(
        Some(&pair.a),
        &[
            "keepalive",
            "--dry-run",
            "--idle",
            "1",
            "--intvl",
            "1",
            "--cnt",
            "3",
            &format!("dport:{PORT}"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert!(!socket2::SockRef::from(&client).keepalive().unwrap());

    let out = kwatch(
        Some(&pair.a),
        &[
            "keepalive",
            "--idle",
            "1",
            "--intvl",
            "1",
            "--cnt",
            "3",
            "--yes",
            &format!("dport:{PORT}"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me = std::process::id();
    assert!(
        stdout.contains(&format!(
            "on       ESTAB {ADDR_A}:{cport} -> {ADDR_B}:{PORT} "
        )) && stdout.contains(&format!("[{me}]/fd ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("keepalive on, idle 1s intvl 1s cnt 3"),
        "kwatch read the settings back: {stdout}"
    );
    assert!(
        stdout.contains("keepalive on for 1 of 1 socket"),
        "{stdout}"
    );

    // This process's own fd has them: the duplicate shared the socket.
    let sock = socket2::SockRef::from(&client);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(1));
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(1)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
    let after = client_json(&pair, cport).expect("client listed");
    let ka = &after["keepalive"];
    assert_eq!(
        (
            &ka["enabled"],
            &ka["source"],
            &ka["idle_s"],
            &ka["intvl_s"],
            &ka["cnt"]
        ),
        (
            &Value::from(true),
            &Value::from("socket"),
            &Value::from(1),
            &Value::from(1),
            &Value::from(3)
        ),
        "{after}"
    );

    // The peer vanishes without a word.
    pair.cut_b();
    let cut = Instant::now();
    // idle + intvl * cnt after the last answer, which came at most one interval before the cut.
    let dead_after = Duration::from_secs(1 + 3);

    // The window is three seconds (probes at 1, 2 and 3 s, the reset at 4 s): polled with kwatch's own dump in
    // this process, since starting the binary on a loaded machine can take longer than that window.
    let probing = poll(dead_after, || {
        dumper
            .dump(&DumpRequest::all())
            .unwrap()
            .into_iter()
            .find(|c| {
                c.local_port == cport
                    && c.peer_port == PORT
                    && c.timer.kind == TimerKind::Keepalive
                    && c.timer.count >= 1
            })
    });
    let probing = probing.expect("an unanswered keepalive probe is listed before the reset");
    eprintln!("probing: {:?}", probing.timer);

    let deadline = cut + dead_after + Duration::from_secs(2);
    let gone = loop {
        let listed = dumper
            .dump(&DumpRequest::all())
            .unwrap()
            .into_iter()
            .any(|c| c.local_port == cport && c.peer_port == PORT);
        let now = Instant::now();
        if !listed {
            break Some(now - cut);
        }
        if now > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let gone = gone.expect("the kernel reset the connection within 2 s of idle + intvl * cnt");
    eprintln!("reset {} ms after the cut", gone.as_millis());
    // The last probe answered before the cut was at most intvl earlier: death comes between
    // intvl * cnt and idle + intvl * cnt after the cut (timer slack allowed on both sides).
    assert!(
        gone >= Duration::from_millis(2_800) && gone <= dead_after + Duration::from_secs(1),
        "reset {} ms after the cut, expected 3-4 s",
        gone.as_millis()
    );
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let err = client.read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "keepalive gave up: {err}");
}

#[test]
fn only_open_connections_are_changed_and_the_rest_are_named() {
    if !can_use_netns("only_open_connections_are_changed_and_the_rest_are_named") {
        return;
    }
    let pair = NetnsPair::new();
    let (_listener, client, _server, _dumper) = setup(&pair);
    let own = in_netns(&pair.a, || TcpListener::bind((ADDR_A, PORT)).unwrap());
    // port:PORT matches the client (peer port) and the listener in a (local port).
    let out = kwatch(
        Some(&pair.a),
        &[
            "keepalive",
            "--yes",
            "--idle",
            "2m",
            &format!("port:{PORT}"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "skipped 1 socket (1 listen): keepalive only runs on ESTABLISHED and CLOSE-WAIT connections"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("keepalive on, idle 120s intvl 10s cnt 5"),
        "{stdout}"
    );
    assert!(socket2::SockRef::from(&client).keepalive().unwrap());
    assert!(!socket2::SockRef::from(&own).keepalive().unwrap());
}

#[test]
fn values_outside_the_kernel_limits_are_refused() {
    for (flag, value, want) in [
        ("--idle", "0", "invalid idle '0': must be 1-32767 seconds"),
        (
            "--idle",
            "32768",
            "invalid idle '32768': must be 1-32767 seconds",
        ),
        (
            "--intvl",
            "10h",
            "invalid intvl '10h': must be 1-32767 seconds",
        ),
        ("--cnt", "128", "invalid cnt '128': must be 1-127 probes"),
        ("--cnt", "0", "invalid cnt '0': must be 1-127 probes"),
    ] {
        let out = kwatch(None, &["keepalive", flag, value, "--yes", "port:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(want), "{flag} {value}: {stderr}");
    }
    let out = kwatch(None, &["keepalive", "--yes", "port:99999"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid port '99999'"), "{stderr}");
    let out = kwatch(None, &["kill", "--yes", ""]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to act on every socket"),
        "{stderr}"
    );
}

#[test]
fn a_user_who_cannot_change_any_matching_socket_gets_a_failure() {
    if !can_use_netns("a_user_who_cannot_change_any_matching_socket_gets_a_failure") {
        return;
    }
    // This process (root) holds the connection; nobody sees the socket but not whose it is.
    let (listener, client, _server) = connected_pair(std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        0,
    )));
    let cport = client.local_addr().unwrap().port().to_string();
    // Both ports: another test's connection may share the ephemeral port.
    let lport = listener.local_addr().unwrap().port().to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", KWATCH])
        .args(["keepalive", "--yes", "--sport", &cport, "--dport", &lport])
        .stdin(std::process::Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("run setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("cannot change 1 socket (1 established): no owning process known"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "could not change any of the 1 matching socket: no owning process known (run as root"
        ),
        "{stderr}"
    );
    assert!(!socket2::SockRef::from(&client).keepalive().unwrap());
}
