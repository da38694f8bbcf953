//! Keepalive predictions checked against the kernel, as root in network namespaces this test creates (veth pair,
//! 192.0.2.0/24): the predicted time of death against the socket's observed disappearance, and the predicted next
//! probe after data arrived mid-idle against the observed probe.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use kwatch::diag::{DumpRequest, Dumper};
use kwatch::model::{Connection, TimerKind};
use serde_json::Value;

/// Our client socket (local port `cport`, peer port `port`) as the kernel lists it now, if listed.
fn client_in(dumper: &mut Dumper, cport: u16, port: u16) -> Option<Connection> {
    dumper
        .dump(&DumpRequest::all())
        .unwrap()
        .into_iter()
        .find(|c| c.local_port == cport && c.peer_port == port)
}

/// Milliseconds from `origin` to `t`, signed.
fn ms_since(origin: Instant, t: Instant) -> i64 {
    if t >= origin {
        (t - origin).as_millis() as i64
    } else {
        -((origin - t).as_millis() as i64)
    }
}

/// A client in namespace a connected to a listener on `port` in namespace b, with keepalive 3/2/3, and a
/// sock_diag dumper that lists namespace a.
fn setup(pair: &NetnsPair, port: u16) -> (Held, TcpStream, TcpStream, Dumper) {
    setup_with(pair, port, 3, None)
}

/// Like [`setup`] with another probe count and optionally TCP_USER_TIMEOUT.
fn setup_with(
    pair: &NetnsPair,
    port: u16,
    cnt: u32,
    user_timeout: Option<Duration>,
) -> (Held, TcpStream, TcpStream, Dumper) {
    let listener = in_netns(&pair.b, move || TcpListener::bind((ADDR_B, port)).unwrap());
    let (client, dumper, own) = in_netns(&pair.a, move || {
        let c = TcpStream::connect((ADDR_B, port)).unwrap();
        set_keepalive(&c, 3, 2, cnt);
        if let Some(t) = user_timeout {
            socket2::SockRef::from(&c)
                .set_tcp_user_timeout(Some(t))
                .unwrap();
        }
        // The program also serves in namespace a, as a program living there would: kwatch looks for held
        // dead sockets in processes that run in, or hold live sockets in, its namespace.
        let own = TcpListener::bind((ADDR_A, port)).unwrap();
        (c, Dumper::open().unwrap(), own)
    });
    let (server, _) = listener.accept().unwrap();
    (Held(listener, own), client, server, dumper)
}

/// Listeners kept open for the duration of a test.
struct Held(
    #[allow(dead_code)] TcpListener,
    #[allow(dead_code)] TcpListener,
);

/// `kwatch --once --json` in namespace a, with the instants its kernel dump started and ended (from the
/// report's wall-clock `taken_at_unix_ms` and `dump_us`, so the process start-up time does not count).
fn snapshot(pair: &NetnsPair, cport: u16, port: u16) -> (Instant, Value, Instant) {
    let doc = kwatch_json(Some(&pair.a), &["--dport", &port.to_string()]);
    let now = Instant::now();
    let now_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let age = now_unix_ms - doc["taken_at_unix_ms"].as_u64().unwrap();
    // The wall clock has millisecond resolution here: widen by one on each side.
    let started = now - Duration::from_millis(age + 1);
    let ended = started
        + Duration::from_micros(doc["dump_us"].as_u64().unwrap())
        + Duration::from_millis(2);
    let s = find_socket(&doc, cport, port)
        .unwrap_or_else(|| panic!("client socket listed: {doc}"))
        .clone();
    (started, s, ended)
}

#[test]
fn predicted_time_of_death_agrees_with_the_kernel_within_a_second() {
    if !can_use_netns("predicted_time_of_death_agrees_with_the_kernel_within_a_second") {
        return;
    }
    let pair = NetnsPair::new();
    let (_listener, client, _server, mut dumper) = setup(&pair, 9100);
    let cport = client.local_addr().unwrap().port();
    pair.cut_b();

    let (before, s, after) = snapshot(&pair, cport, 9100);
    let ka = &s["keepalive"];
    assert_eq!(ka["source"], "socket", "read from our fd: {s}");
    assert_eq!(
        (&ka["idle_s"], &ka["intvl_s"], &ka["cnt"]),
        (&Value::from(3), &Value::from(2), &Value::from(3))
    );
    assert_eq!(s["dies_by"], "keepalive");
    assert_eq!(s["dies_in_estimate"], false);
    let dies_in = s["dies_in_ms"].as_u64().unwrap();
    let next = s["next_probe_ms"].as_u64().unwrap();
    // Idle 3 s from the handshake, then 3 probes 2 s apart: about 9 s after the connection was made.
    assert!((7_000..=9_000).contains(&dies_in), "{s}");

    let mut first_probe = None;
    let deadline = before + Duration::from_millis(dies_in) + Duration::from_secs(5);
    let gone = loop {
        let now = Instant::now();
        match client_in(&mut dumper, cport, 9100) {
            None => break Some(now),
            Some(c) => {
                if first_probe.is_none()
                    && c.timer.kind == TimerKind::Keepalive
                    && c.timer.count >= 1
                {
                    first_probe = Some(now);
                }
            }
        }
        if now > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let gone =
        gone.unwrap_or_else(|| panic!("socket still listed 5 s after the predicted death: {s}"));
    let first_probe = first_probe.expect("a probe was seen before the reset");

    // The snapshot happened between `before` and `after`; the prediction is relative to it.
    let early = ms_since(after + Duration::from_millis(dies_in), gone);
    let late = ms_since(before + Duration::from_millis(dies_in), gone);
    eprintln!(
        "death: predicted {dies_in} ms after the snapshot (taken within {} ms); observed {late} ms after the \
         earliest predicted instant",
        (after - before).as_millis()
    );
    assert!(
        early >= -1_000 && late <= 1_000,
        "socket vanished {late} ms after the predicted death (window {} ms)",
        (after - before).as_millis()
    );
    let probe_late = ms_since(before + Duration::from_millis(next), first_probe);
    eprintln!(
        "first probe: predicted in {next} ms; observed {probe_late} ms after the earliest predicted instant"
    );
    assert!(
        (-100..=1_000).contains(&probe_late),
        "first probe {probe_late} ms after the prediction"
    );

    // The kernel has ended the connection but this process still holds the fd: one held dead socket.
    let doc = kwatch_json(Some(&pair.a), &["--dport", "9100"]);
    let me = std::process::id();
    let fd = client.as_raw_fd();
    let held: Vec<&Value> = doc["held_dead_sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["pid"] == me && g["fd"] == fd)
        .collect();
    assert_eq!(held.len(), 1, "{}", doc["held_dead_sockets"]);
    let g = held[0];
    assert_eq!(g["cause"], "keepalive_exhausted", "{g}");
    assert_eq!(g["tcp_info"]["probes"], 3, "{g}");
    assert_eq!(g["local_port"], cport);
    assert_eq!(g["local_addr"], ADDR_A.to_string());
    let process = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == me)
        .expect("the holder is listed");
    assert!(
        process["held_dead_sockets"].as_u64().unwrap() >= 1,
        "{process}"
    );
    drop(client);
}

#[test]
fn data_received_mid_idle_moves_the_next_probe_as_the_kernel_does() {
    if !can_use_netns("data_received_mid_idle_moves_the_next_probe_as_the_kernel_does") {
        return;
    }
    let pair = NetnsPair::new();
    let (_listener, client, mut server, mut dumper) = setup(&pair, 9101);
    let cport = client.local_addr().unwrap().port();
    // Half-way through the idle time, the peer sends data: the kernel does not re-arm the keepalive timer.
    poll(Duration::from_secs(5), || {
        let c = client_in(&mut dumper, cport, 9101)?;
        (c.tcp_info?.last_ack_recv_ms()? >= 1_500).then_some(())
    })
    .expect("1.5 s of idle");
    server.write_all(b"ping").unwrap();
    poll(Duration::from_secs(2), || {
        (client_in(&mut dumper, cport, 9101)?.recv_q >= 4).then_some(())
    })
    .expect("data arrived");
    pair.cut_b(); // from now on the probe goes unanswered, so the moment it is sent shows as count 1

    let (before, s, after) = snapshot(&pair, cport, 9101);
    assert_eq!(s["timer"]["kind"], "keepalive", "{s}");
    assert_eq!(s["timer"]["count"], 0);
    let naive = s["timer"]["expires_ms"].as_u64().unwrap();
    let next = s["next_probe_ms"].as_u64().unwrap();
    assert!(
        next >= naive + 1_000,
        "data 1.5 s into a 3 s idle: the probe waits a full idle after it, not the armed timer ({s})"
    );

    let mut rearmed = None;
    let deadline = after + Duration::from_millis(next) + Duration::from_secs(3);
    let probed = loop {
        let now = Instant::now();
        let c = client_in(&mut dumper, cport, 9101).expect("still listed");
        if c.timer.kind == TimerKind::Keepalive && c.timer.count >= 1 {
            break Some(now);
        }
        // Once the armed expiry has fired without a probe (the dump shows 0 while it is overdue), the kernel
        // has re-armed the timer for the rest of the idle time.
        if rearmed.is_none()
            && now > after + Duration::from_millis(naive)
            && c.timer.kind == TimerKind::Keepalive
            && c.timer.expires_ms > 0
        {
            rearmed = Some(c.timer.expires_ms);
        }
        if now > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let probed = probed.expect("the probe was sent");
    let naive_late = ms_since(before + Duration::from_millis(naive), probed);
    let late = ms_since(before + Duration::from_millis(next), probed);
    let early = ms_since(after + Duration::from_millis(next), probed);
    eprintln!(
        "mid-idle data: timer said {naive} ms, kwatch predicted {next} ms; the probe went out {late} ms after \
         the earliest predicted instant and {naive_late} ms after the timer's; re-armed with {rearmed:?} ms left"
    );
    // Timers fire late by up to the timer wheel's granularity (32 ms for this 1.5 s re-arm at HZ=250), and the
    // poll runs every 20 ms on a busy machine.
    assert!(
        early >= -300 && late <= 500,
        "probe {late} ms after the predicted instant (window {} ms)",
        (after - before).as_millis()
    );
    assert!(naive_late >= 1_000, "the armed expiry did not probe");
    let rearmed = rearmed.expect("seen after the armed expiry");
    assert!(
        rearmed > 0 && rearmed < 3_000,
        "re-armed for the remainder: {rearmed}"
    );
    drop((client, server));
}

#[test]
fn watch_streams_the_keepalive_death_and_the_destroy_event_with_cause_probes_and_pid() {
    if !can_use_netns(
        "watch_streams_the_keepalive_death_and_the_destroy_event_with_cause_probes_and_pid",
    ) {
        return;
    }
    let pair = NetnsPair::new();
    let (_held, client, _server, _dumper) = setup(&pair, 9102);
    let cport = client.local_addr().unwrap().port();
    let watcher = Watcher::start(Some(&pair.a), &["--interval", "200ms", "--dport", "9102"]);
    let (_, start) = watcher
        .next(Duration::from_secs(20), |v| v["event"] == "start")
        .expect("a start event");
    assert_eq!(start["sockets"], 1, "{start}");
    assert_eq!(start["destroy_events"], true);
    let ours = move |v: &Value| v["local_port"] == cport && v["peer_port"] == 9102;
    pair.cut_b();

    // About 9 s later the kernel gives up; this process still holds the fd, so the socket only leaves the dump.
    let (_, state) = watcher
        .next(Duration::from_secs(15), |v| {
            v["event"] == "state" && ours(v)
        })
        .expect("a state event when the kernel reset the connection");
    assert_eq!(
        (&state["from"], &state["to"]),
        (&Value::from("established"), &Value::from("close")),
        "{state}"
    );
    let me = std::process::id();
    assert!(
        state["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["pid"] == me),
        "{state}"
    );

    // close(): now the kernel frees it and announces the destruction.
    drop(client);
    let (_, death) = watcher
        .next(Duration::from_secs(5), |v| {
            v["event"] == "destroy" && ours(v)
        })
        .expect("a destroy event after close()");
    assert_eq!(death["cause"], "keepalive_exhausted", "{death}");
    assert_eq!(death["probes"], 3);
    assert_eq!(death["last_state"], "established");
    assert_eq!(death["local_addr"], ADDR_A.to_string());
    assert_eq!(death["peer_addr"], ADDR_B.to_string());
    assert!(
        death["owners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["pid"] == me),
        "{death}"
    );
    assert!(death["comm"].is_string());
}

#[test]
fn a_user_timeout_ends_probing_before_the_count_as_predicted() {
    if !can_use_netns("a_user_timeout_ends_probing_before_the_count_as_predicted") {
        return;
    }
    let pair = NetnsPair::new();
    // 9 probes would take 3 + 9 x 2 = 21 s; the 6 s user timeout ends it at the first expiry past 6 s with a probe
    // out: probes at 3 and 5 s, reset at 7 s.
    let (_held, client, _server, mut dumper) =
        setup_with(&pair, 9103, 9, Some(Duration::from_millis(6_000)));
    let cport = client.local_addr().unwrap().port();
    pair.cut_b();
    let (started, s, ended) = snapshot(&pair, cport, 9103);
    assert_eq!(s["keepalive"]["user_timeout_ms"], 6_000, "{s}");
    assert_eq!(s["dies_by"], "user_timeout");
    let dies_in = s["dies_in_ms"].as_u64().unwrap();
    assert!((5_000..=7_000).contains(&dies_in), "{s}");
    let gone = poll(Duration::from_secs(15), || {
        client_in(&mut dumper, cport, 9103)
            .is_none()
            .then(Instant::now)
    })
    .expect("reset by the user timeout");
    let late = ms_since(started + Duration::from_millis(dies_in), gone);
    let early = ms_since(ended + Duration::from_millis(dies_in), gone);
    eprintln!(
        "user timeout: predicted death in {dies_in} ms; observed {late} ms after the prediction"
    );
    assert!(early >= -1_000 && late <= 1_000, "{late} ms");
    drop(client);
}

/// Makes b vanish the way a crashed host behind a switch does: a's frames still leave (a permanent neighbour
/// entry, the link stays up) but b no longer has the address and drops them. Taking the link down instead makes
/// a's own transmissions fail locally, which the kernel retries without backing off.
fn silence_b(pair: &NetnsPair) {
    let out = sh("ip", &["-n", &pair.b, "-j", "link", "show", &pair.veth_b]);
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mac = links[0]["address"].as_str().unwrap().to_string();
    sh(
        "ip",
        &[
            "-n",
            &pair.a,
            "neigh",
            "replace",
            &ADDR_B.to_string(),
            "lladdr",
            &mac,
            "dev",
            &pair.veth_a,
            "nud",
            "permanent",
        ],
    );
    sh(
        "ip",
        &[
            "-n",
            &pair.b,
            "addr",
            "del",
            &format!("{ADDR_B}/24"),
            "dev",
            &pair.veth_b,
        ],
    );
}

#[test]
fn a_retransmitting_socket_dies_about_when_estimated() {
    if !can_use_netns("a_retransmitting_socket_dies_about_when_estimated") {
        return;
    }
    let pair = NetnsPair::new();
    // tcp_retries2=5 gives up 12.6 s after the first unacknowledged send ((2^6 - 1) x 200 ms).
    pair.sysctl(&pair.a, "net.ipv4.tcp_retries2", "5");
    let (_held, mut client, _server, mut dumper) = setup(&pair, 9104);
    let cport = client.local_addr().unwrap().port();
    silence_b(&pair);
    client.write_all(b"into the void").unwrap();
    poll(Duration::from_secs(5), || {
        let c = client_in(&mut dumper, cport, 9104)?;
        (c.timer.kind == TimerKind::Retransmit && c.timer.count >= 2).then_some(())
    })
    .expect("retransmitting");
    let (started, s, ended) = snapshot(&pair, cport, 9104);
    assert_eq!(s["timer"]["kind"], "retransmit", "{s}");
    assert_eq!(s["dies_by"], "retransmit");
    assert_eq!(s["dies_in_estimate"], true);
    assert!(
        s["next_probe_ms"].is_null(),
        "no keepalive while data is in flight"
    );
    let dies_in = s["dies_in_ms"].as_u64().unwrap();
    let gone = poll(Duration::from_secs(20), || {
        client_in(&mut dumper, cport, 9104)
            .is_none()
            .then(Instant::now)
    })
    .expect("given up by the retransmit timer");
    let late = ms_since(started + Duration::from_millis(dies_in), gone);
    let early = ms_since(ended + Duration::from_millis(dies_in), gone);
    eprintln!("retransmit: estimated death in {dies_in} ms; observed {late} ms after the estimate");
    assert!(early >= -1_000 && late <= 1_000, "{late} ms");
    drop(client);
}
