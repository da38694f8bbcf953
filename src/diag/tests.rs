//! Parser tests on byte fixtures built field by field (see `fixture`).

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use super::DiagError;
use super::fixture::{Buf, Msg};
use super::parse::{NLM_F_DUMP_INTR, Progress, parse_buffer};
use crate::model::{Congestion, Connection, Family, TcpState, Timer, TimerKind};

const SEQ: u32 = 7;
const INFO: u16 = 2; // INET_DIAG_INFO
const CONG: u16 = 4; // INET_DIAG_CONG
const SHUTDOWN: u16 = 8; // INET_DIAG_SHUTDOWN

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A tcp_info of `len` bytes with a few recognisable values at their uapi offsets.
fn tcp_info(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let put32 = |b: &mut Vec<u8>, at: usize, v: u32| {
        if at + 4 <= b.len() {
            b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
    };
    b[0] = 1; // tcpi_state: ESTABLISHED
    b[3] = 3; // tcpi_probes
    put32(&mut b, 8, 204_000); // tcpi_rto (us)
    put32(&mut b, 16, 32_768); // tcpi_snd_mss
    put32(&mut b, 68, 1_234); // tcpi_rtt (us)
    put32(&mut b, 80, 10); // tcpi_snd_cwnd
    put32(&mut b, 100, 6); // tcpi_total_retrans
    if len >= 128 {
        b[120..128].copy_from_slice(&5_000_000_000u64.to_ne_bytes()); // tcpi_bytes_acked
    }
    put32(&mut b, 228, 65_535); // tcpi_snd_wnd
    b
}

fn parse_all(buf: &Buf) -> (Vec<Connection>, Progress) {
    let mut out = Vec::new();
    let progress = parse_buffer(&buf.bytes, SEQ, &mut out).unwrap();
    (out, progress)
}

fn parse_err(buf: &Buf) -> DiagError {
    let mut out = Vec::new();
    parse_buffer(&buf.bytes, SEQ, &mut out).unwrap_err()
}

#[test]
fn ipv4_socket_with_every_attribute() {
    let mut m = Msg::v4();
    m.ifindex = 3;
    m.cookie = 0xdead_beef_0000_1234;
    m.rqueue = 17;
    m.wqueue = 99;
    m.attrs = vec![
        (INFO, tcp_info(248)),
        (CONG, b"cubic\0".to_vec()), // 6 bytes: padded to 8 on the wire
        (SHUTDOWN, vec![2]),         // send side shut down
    ];
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &m).done(SEQ);
    let (conns, progress) = parse_all(&buf);
    assert_eq!(
        progress,
        Progress {
            done: true,
            interrupted: false,
            skipped: 0
        }
    );
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c.family, Family::Ipv4);
    assert_eq!(c.state, TcpState::Established);
    assert_eq!((c.local_addr, c.local_port), (ip("127.0.0.1"), 40000));
    assert_eq!((c.peer_addr, c.peer_port), (ip("127.0.0.1"), 8080));
    assert_eq!(c.interface, 3);
    assert_eq!(c.cookie, 0xdead_beef_0000_1234);
    assert_eq!((c.recv_q, c.send_q, c.uid, c.inode), (17, 99, 1000, 4242));
    assert_eq!(c.timer, Timer::NONE);
    assert_eq!(c.shutdown, Some(2));
    assert_eq!(c.congestion.as_deref(), Some("cubic"));
    let t = c.tcp_info.as_ref().unwrap();
    assert_eq!(
        (t.state(), t.probes(), t.rto_us(), t.snd_mss()),
        (Some(1), Some(3), Some(204_000), Some(32_768))
    );
    assert_eq!(
        (t.rtt_us(), t.snd_cwnd(), t.total_retrans()),
        (Some(1_234), Some(10), Some(6))
    );
    assert_eq!(t.bytes_acked(), Some(5_000_000_000));
    assert_eq!(t.snd_wnd(), Some(65_535));
    assert!(c.owners.is_empty() && c.findings.is_empty());
}

#[test]
fn ipv6_listener_and_v4_mapped_peer() {
    let mut listen = Msg::v4();
    listen.family = libc::AF_INET6 as u8;
    listen.state = 10; // LISTEN
    listen.src = ip("2001:db8::1");
    listen.dst = ip("::");
    listen.sport = 443;
    listen.dport = 0;
    listen.rqueue = 2; // accept queue length
    listen.wqueue = 4096; // backlog
    let mut mapped = Msg::v4();
    mapped.family = libc::AF_INET6 as u8;
    mapped.src = ip("::ffff:127.0.0.1");
    mapped.dst = ip("::ffff:10.1.2.3");
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &listen).inet(SEQ, 0, &mapped).done(SEQ);
    let (conns, _) = parse_all(&buf);
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0].family, Family::Ipv6);
    assert_eq!(conns[0].state, TcpState::Listen);
    assert_eq!(
        (conns[0].local_addr, conns[0].local_port),
        (ip("2001:db8::1"), 443)
    );
    assert_eq!((conns[0].peer_addr, conns[0].peer_port), (ip("::"), 0));
    assert_eq!((conns[0].recv_q, conns[0].send_q), (2, 4096));
    // An AF_INET6 socket talking to an IPv4 peer keeps the kernel's mapped address, as `ss` shows it.
    assert_eq!(conns[1].local_addr, ip("::ffff:127.0.0.1"));
    assert_eq!(conns[1].peer_addr, ip("::ffff:10.1.2.3"));
}

#[test]
fn ipv4_uses_only_the_first_four_address_bytes() {
    let mut m = Msg::v4();
    m.src = ip("10.0.0.1");
    m.dst = ip("192.0.2.9");
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &m);
    // Garbage in the unused 12 bytes of idiag_src must not matter: nlmsghdr 16 + 8 = start of idiag_src.
    buf.bytes[16 + 8 + 4..16 + 8 + 16].fill(0xee);
    let (conns, progress) = parse_all(&buf);
    assert!(!progress.done, "no NLMSG_DONE in this buffer");
    assert_eq!(conns[0].local_addr, ip("10.0.0.1"));
    assert_eq!(conns[0].peer_addr, ip("192.0.2.9"));
}

/// (idiag_timer, idiag_retrans, idiag_expires, idiag_state) -> Timer and state.
#[test]
fn every_timer_kind_keeps_its_count_and_expiry() {
    let cases = [
        // keepalive with 3 unanswered probes
        (2u8, 3u8, 45_000u32, 1u8, TimerKind::Keepalive),
        // zero-window probe, 2 probes out
        (4, 2, 1_600, 1, TimerKind::ZeroWindowProbe),
        // retransmit, 5th retransmission
        (1, 5, 6_400, 1, TimerKind::Retransmit),
        // TIME_WAIT expiry, no count
        (3, 0, 59_000, 6, TimerKind::TimeWait),
        // nothing pending
        (0, 0, 0, 1, TimerKind::None),
    ];
    for (timer, retrans, expires, state, kind) in cases {
        let mut m = Msg::v4();
        m.timer = timer;
        m.retrans = retrans;
        m.expires = expires;
        m.state = state;
        if state == 6 {
            m.inode = 0; // TIME_WAIT sockets have no inode and no attributes
            m.uid = 0;
        } else {
            m.attrs = vec![(INFO, tcp_info(248))];
        }
        let mut buf = Buf::default();
        buf.inet(SEQ, 0, &m).done(SEQ);
        let (conns, _) = parse_all(&buf);
        let c = &conns[0];
        assert_eq!(
            c.timer,
            Timer {
                kind,
                expires_ms: expires,
                count: retrans
            },
            "timer {timer}"
        );
        if state == 6 {
            assert_eq!(c.state, TcpState::TimeWait);
            assert_eq!((c.inode, c.tcp_info.as_ref()), (0, None));
        }
    }
}

#[test]
fn short_tcp_info_fills_only_what_it_holds() {
    let mut m = Msg::v4();
    m.attrs = vec![(INFO, tcp_info(104))];
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &m).done(SEQ);
    let (conns, _) = parse_all(&buf);
    let t = conns[0].tcp_info.as_ref().unwrap();
    assert_eq!(
        (t.rtt_us(), t.snd_cwnd(), t.total_retrans()),
        (Some(1_234), Some(10), Some(6))
    );
    assert_eq!(
        (t.bytes_acked(), t.bytes_received(), t.bytes_sent()),
        (None, None, None)
    );
    assert_eq!(
        (t.min_rtt_us(), t.notsent_bytes(), t.snd_wnd()),
        (None, None, None)
    );
}

#[test]
fn multi_message_buffer_ends_at_done() {
    let mut buf = Buf::default();
    for port in [1000, 1001, 1002] {
        let mut m = Msg::v4();
        m.sport = port;
        m.attrs = vec![(CONG, b"bbr\0".to_vec())];
        buf.inet(SEQ, 0, &m);
    }
    buf.done(SEQ);
    // Anything after NLMSG_DONE is not read, not even garbage.
    buf.bytes.extend_from_slice(&[0xff; 5]);
    let (conns, progress) = parse_all(&buf);
    assert!(progress.done);
    assert_eq!(
        conns.iter().map(|c| c.local_port).collect::<Vec<_>>(),
        [1000, 1001, 1002]
    );
    assert!(conns.iter().all(|c| c.congestion.as_deref() == Some("bbr")));
}

#[test]
fn replies_to_another_request_are_skipped() {
    let mut stale = Msg::v4();
    stale.sport = 1;
    let mut buf = Buf::default();
    buf.inet(SEQ - 1, 0, &stale)
        .done(SEQ - 1)
        .inet(SEQ, 0, &Msg::v4())
        .done(SEQ);
    let (conns, progress) = parse_all(&buf);
    assert!(progress.done);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].local_port, 40000);
}

#[test]
fn dump_intr_flag_is_reported() {
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &Msg::v4())
        .inet(SEQ, NLM_F_DUMP_INTR, &Msg::v4())
        .done(SEQ);
    let (_, progress) = parse_all(&buf);
    assert!(progress.interrupted && progress.done);
    let mut clean = Buf::default();
    clean.inet(SEQ, 0, &Msg::v4()).done(SEQ);
    assert!(!parse_all(&clean).1.interrupted);
}

#[test]
fn nlmsg_error_names_the_errno() {
    let mut buf = Buf::default();
    buf.error(SEQ, libc::EPERM);
    let err = parse_err(&buf);
    assert!(
        matches!(err, DiagError::Kernel { errno } if errno == libc::EPERM),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::EPERM));
    assert_eq!(
        err.to_string(),
        "sock_diag dump failed: Operation not permitted (os error 1)"
    );
}

#[test]
fn done_with_negative_status_is_an_error() {
    let mut buf = Buf::default();
    buf.message(
        libc::NLMSG_DONE as u16,
        2,
        SEQ,
        &(-libc::ENOMEM).to_ne_bytes(),
    );
    assert!(matches!(parse_err(&buf), DiagError::Kernel { errno } if errno == libc::ENOMEM));
}

#[test]
fn the_most_negative_status_does_not_overflow() {
    // -i32::MIN does not fit an i32: a plain negation panics in a debug build.
    for kind in [libc::NLMSG_DONE, libc::NLMSG_ERROR] {
        let mut buf = Buf::default();
        buf.message(kind as u16, 2, SEQ, &i32::MIN.to_ne_bytes());
        assert!(
            matches!(parse_err(&buf), DiagError::Kernel { errno } if errno == i32::MAX),
            "kind {kind}"
        );
    }
}

#[test]
fn truncated_messages_are_errors_not_panics() {
    let mut m = Msg::v4();
    m.attrs = vec![(INFO, tcp_info(248))];
    let mut whole = Buf::default();
    whole.inet(SEQ, 0, &m).done(SEQ);
    // Every cut of a valid buffer either errors or, at a message boundary, parses fewer messages; none panics.
    for cut in 1..whole.bytes.len() {
        let mut out = Vec::new();
        let result = parse_buffer(&whole.bytes[..cut], SEQ, &mut out);
        if cut == 16 + 72 + 4 + 248 {
            // exactly the first message: valid, no DONE yet
            assert!(!result.unwrap().done);
        } else {
            assert!(
                matches!(result, Err(DiagError::Malformed { .. })),
                "cut at {cut}: {result:?}"
            );
        }
    }
}

#[test]
fn inconsistent_lengths_are_errors() {
    // nlmsg_len smaller than the header
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &Msg::v4());
    buf.bytes[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert!(matches!(
        parse_err(&buf),
        DiagError::Malformed { offset: 0, .. }
    ));

    // a SOCK_DIAG_BY_FAMILY payload shorter than struct inet_diag_msg
    let mut buf = Buf::default();
    buf.message(20, 2, SEQ, &[0u8; 40]);
    assert!(matches!(
        parse_err(&buf),
        DiagError::Malformed { offset: 16, .. }
    ));

    // an rtattr claiming more bytes than its message holds
    let mut m = Msg::v4();
    m.attrs = vec![(CONG, b"reno\0".to_vec())];
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &m);
    let rta = 16 + 72;
    buf.bytes[rta..rta + 2].copy_from_slice(&200u16.to_ne_bytes());
    let err = parse_err(&buf);
    assert!(
        matches!(err, DiagError::Malformed { offset, .. } if offset == rta),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("malformed sock_diag reply at byte '88'"),
        "{err}"
    );

    // an rtattr shorter than its own header
    buf.bytes[rta..rta + 2].copy_from_slice(&2u16.to_ne_bytes());
    assert!(matches!(parse_err(&buf), DiagError::Malformed { .. }));

    // an error message with no error code
    let mut buf = Buf::default();
    buf.message(libc::NLMSG_ERROR as u16, 0, SEQ, &[]);
    assert!(matches!(parse_err(&buf), DiagError::Malformed { .. }));
}

#[test]
fn unknown_state_timer_or_family_is_skipped_and_counted() {
    let mut bound_inactive = Msg::v4();
    bound_inactive.state = 13; // TCP_BOUND_INACTIVE: not a state kwatch models
    let mut odd_timer = Msg::v4();
    odd_timer.timer = 9;
    let mut odd_family = Msg::v4();
    odd_family.family = libc::AF_UNIX as u8;
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &bound_inactive)
        .inet(SEQ, 0, &odd_timer)
        .inet(SEQ, 0, &Msg::v4());
    buf.inet(SEQ, 0, &odd_family).done(SEQ);
    let (conns, progress) = parse_all(&buf);
    assert_eq!(conns.len(), 1);
    assert_eq!(progress.skipped, 3);
}

#[test]
fn unknown_attributes_and_flag_bits_are_ignored() {
    let mut m = Msg::v4();
    m.attrs = vec![
        (15, 7u32.to_ne_bytes().to_vec()), // INET_DIAG_MARK
        (0x8000 | SHUTDOWN, vec![3]),      // NLA_F_NESTED set on a known type still parses
        (21, vec![1, 2, 3]),               // an attribute from the future, 3 bytes + 1 pad
    ];
    let mut buf = Buf::default();
    buf.inet(SEQ, 0, &m).done(SEQ);
    let (conns, _) = parse_all(&buf);
    assert_eq!(conns[0].shutdown, Some(3));
    assert_eq!(
        (conns[0].congestion.as_ref(), conns[0].tcp_info.as_ref()),
        (None, None)
    );
}

#[test]
fn sockets_in_a_row_with_the_same_congestion_control_share_one_name() {
    let mut buf = Buf::default();
    for (port, cong) in [
        (1, "bbr"),
        (2, "bbr"),
        (3, "cubic"),
        (4, "cubic"),
        (5, "bbr"),
    ] {
        let mut m = Msg::v4();
        m.sport = port;
        m.attrs = vec![(CONG, format!("{cong}\0").into_bytes())];
        buf.inet(SEQ, 0, &m);
    }
    buf.done(SEQ);
    let (conns, _) = parse_all(&buf);
    let names: Vec<_> = conns.iter().filter_map(|c| c.congestion.clone()).collect();
    assert_eq!(
        names.iter().map(|n| &**n).collect::<Vec<_>>(),
        ["bbr", "bbr", "cubic", "cubic", "bbr"]
    );
    let shared = |a: usize, b: usize| Congestion::ptr_eq(&names[a], &names[b]);
    assert!(shared(0, 1) && shared(2, 3));
    assert!(!shared(1, 2) && !shared(3, 4), "a new name is its own");
}
