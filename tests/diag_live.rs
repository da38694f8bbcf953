//! Live sock_diag dump against real loopback sockets, cross-checked with fstat and `ss`.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use kwatch::diag::{DumpRequest, Dumper, dump};
use kwatch::model::{Connection, Family, TcpState, TimerKind};
use kwatch::testing::socket_inode;

fn set_int_opt(s: &TcpStream, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid open fd, a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// The one socket bound to `local` talking to `peer`; `peer: None` means a listener (peer port 0).
fn find(conns: &[Connection], local: SocketAddr, peer: Option<SocketAddr>) -> &Connection {
    let hits: Vec<&Connection> = conns
        .iter()
        .filter(|c| c.local_addr == local.ip() && c.local_port == local.port())
        .filter(|c| match peer {
            Some(p) => c.peer_addr == p.ip() && c.peer_port == p.port(),
            None => c.peer_port == 0,
        })
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "want one socket {local} -> {peer:?}, got {hits:#?}"
    );
    hits[0]
}

/// `ss -tanoH` lines as (state, local, peer, rest), e.g. ("ESTAB", "127.0.0.1:5000", "127.0.0.1:40000", ...).
fn ss_lines() -> Vec<(String, String, String, String)> {
    let out = Command::new("ss")
        .args(["-tanoH"])
        .output()
        .expect("`ss` (iproute2) must be installed");
    assert!(
        out.status.success(),
        "ss failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[3].to_string(),
                f[4].to_string(),
                f[5..].join(" "),
            )
        })
        .collect()
}

fn ss_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

#[test]
fn dump_finds_loopback_sockets_with_states_inodes_and_timers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let laddr = listener.local_addr().unwrap();
    let keepalive = TcpStream::connect(laddr).unwrap();
    set_int_opt(&keepalive, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set_int_opt(&keepalive, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    let (ka_server, _) = listener.accept().unwrap();
    let plain = TcpStream::connect(laddr).unwrap();
    let (plain_server, _) = listener.accept().unwrap();

    let conns = dump(&DumpRequest::all()).unwrap();

    let l = find(&conns, laddr, None);
    assert_eq!(l.state, TcpState::Listen);
    assert_eq!(l.family, Family::Ipv4);
    assert_eq!(l.inode, socket_inode(&listener));
    assert_eq!(l.timer.kind, TimerKind::None);

    let ka = find(&conns, keepalive.local_addr().unwrap(), Some(laddr));
    assert_eq!(ka.state, TcpState::Established);
    assert_eq!(ka.inode, socket_inode(&keepalive));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(ka.uid, euid);
    assert_eq!(ka.timer.kind, TimerKind::Keepalive);
    assert!(
        ka.timer.expires_ms > 50_000 && ka.timer.expires_ms <= 60_000,
        "keepalive fires in TCP_KEEPIDLE=60s: {:?}",
        ka.timer
    );
    assert_eq!(ka.timer.count, 0, "no probe sent yet");
    assert_ne!(ka.cookie, 0);
    let info = ka
        .tcp_info
        .as_ref()
        .expect("tcp_info for an established socket");
    assert_eq!(info.state(), Some(TcpState::Established as u8));
    assert!(info.rtt_us().is_some_and(|r| r > 0), "{info:?}");
    assert!(info.snd_cwnd().is_some_and(|c| c > 0), "{info:?}");
    assert!(ka.congestion.as_deref().is_some_and(|c| !c.is_empty()));
    assert_eq!(ka.shutdown, Some(0));

    let p = find(&conns, plain.local_addr().unwrap(), Some(laddr));
    assert_eq!(p.state, TcpState::Established);
    assert_eq!(p.inode, socket_inode(&plain));
    assert_eq!(p.timer.kind, TimerKind::None);
    assert_ne!(p.cookie, ka.cookie);

    for (server, client) in [(&ka_server, &keepalive), (&plain_server, &plain)] {
        let s = find(&conns, laddr, Some(client.local_addr().unwrap()));
        assert_eq!(s.state, TcpState::Established);
        assert_eq!(s.inode, socket_inode(server));
    }

    // Same sockets, same states as `ss` (which reads the same kernel tables independently).
    let ss = ss_lines();
    let ours: Vec<&Connection> = conns
        .iter()
        .filter(|c| c.local_port == laddr.port() || c.peer_port == laddr.port())
        .collect();
    assert_eq!(
        ours.len(),
        5,
        "listener + 2 clients + 2 accepted: {ours:#?}"
    );
    for c in ours {
        let local = ss_addr(SocketAddr::new(c.local_addr, c.local_port));
        let peer = if c.state == TcpState::Listen {
            "0.0.0.0:*".to_string()
        } else {
            ss_addr(SocketAddr::new(c.peer_addr, c.peer_port))
        };
        let line = ss
            .iter()
            .find(|(_, l, p, _)| *l == local && *p == peer)
            .unwrap_or_else(|| panic!("ss has no {local} {peer}: {ss:#?}"));
        assert_eq!(line.0, c.state.label(), "{local} -> {peer}");
        assert_eq!(
            line.3.contains("timer:(keepalive"),
            c.timer.kind == TimerKind::Keepalive,
            "{line:?}"
        );
    }
}

#[test]
fn state_mask_and_family_are_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let laddr = listener.local_addr().unwrap();
    let _client = TcpStream::connect(laddr).unwrap();
    let mut dumper = Dumper::open().unwrap();

    let listen_only = DumpRequest {
        families: vec![Family::Ipv4],
        states: 1 << TcpState::Listen as u8,
        ..DumpRequest::all()
    };
    let conns = dumper.dump(&listen_only).unwrap();
    assert!(
        conns
            .iter()
            .all(|c| c.state == TcpState::Listen && c.family == Family::Ipv4)
    );
    find(&conns, laddr, None);

    let v6_only = DumpRequest {
        families: vec![Family::Ipv6],
        states: u32::MAX,
        ..DumpRequest::all()
    };
    let conns = dumper.dump(&v6_only).unwrap();
    assert!(conns.iter().all(|c| c.family == Family::Ipv6));
    assert!(!conns.iter().any(|c| c.local_port == laddr.port()));

    let nothing = DumpRequest {
        families: vec![Family::Ipv4, Family::Ipv6],
        states: 0,
        ..DumpRequest::all()
    };
    assert!(dumper.dump(&nothing).unwrap().is_empty());
}

#[test]
fn ipv6_loopback_and_time_wait() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping the IPv6 half");
        return;
    };
    let laddr = listener.local_addr().unwrap();
    let client = TcpStream::connect(laddr).unwrap();
    let caddr = client.local_addr().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut dumper = Dumper::open().unwrap();

    let conns = dumper.dump(&DumpRequest::all()).unwrap();
    let c = find(&conns, caddr, Some(laddr));
    assert_eq!((c.family, c.state), (Family::Ipv6, TcpState::Established));
    assert_eq!(c.inode, socket_inode(&client));

    // The client closes first, so it ends in TIME_WAIT once the server closes too.
    client.shutdown(Shutdown::Both).unwrap();
    drop(client);
    let mut sink = Vec::new();
    server.read_to_end(&mut sink).unwrap();
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    let tw = loop {
        let conns = dumper
            .dump(&DumpRequest {
                families: vec![Family::Ipv6],
                states: 1 << TcpState::TimeWait as u8,
                ..DumpRequest::all()
            })
            .unwrap();
        if let Some(c) = conns
            .into_iter()
            .find(|c| c.local_port == caddr.port() && c.peer_port == laddr.port())
        {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "client socket never reached TIME_WAIT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(tw.state, TcpState::TimeWait);
    assert_eq!(tw.timer.kind, TimerKind::TimeWait);
    assert!(
        tw.timer.expires_ms > 50_000 && tw.timer.expires_ms <= 60_000,
        "{:?}",
        tw.timer
    );
    assert_eq!(
        (tw.inode, tw.tcp_info.as_ref(), tw.shutdown),
        (0, None, None)
    );
}
