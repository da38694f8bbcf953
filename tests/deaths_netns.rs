//! Deaths and dead sockets in namespaces kwatch inspects but does not run in, as root in network namespaces this
//! test creates (veth pair, 192.0.2.0/24): `--watch --netns`, `--watch --all-netns` with a namespace made after the
//! start, `serve --netns`'s death counters, the live view's event feed, and held dead sockets of a process that
//! runs in the namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A Python process running in a namespace that connects with keepalive 1 s idle, 1 s interval, 2 probes, prints
/// its local port, and holds the socket until killed (by pid, on drop).
struct Holder {
    child: Child,
    port: u16,
}

const HOLD: &str = "import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
";

impl Holder {
    fn start(ns: &str, addr: std::net::Ipv4Addr, port: u16) -> Holder {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-c", HOLD])
            .args([addr.to_string(), port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 (apt-get install python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("holder printed '{line}'"));
        Holder { child, port }
    }

    /// A holder in namespace a connected to a listener of this process in namespace b on `port`; and the far end.
    fn across(pair: &NetnsPair, port: u16) -> (Holder, TcpStream) {
        let far = in_netns(&pair.b, move || TcpListener::bind((ADDR_B, port)).unwrap());
        let holder = Holder::start(&pair.a, ADDR_B, port);
        let (far_end, _) = far.accept().unwrap();
        (holder, far_end)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connected pair on loopback inside namespace `ns`: (listener, client, server side).
fn loopback_pair(ns: &str, port: u16) -> (TcpListener, TcpStream, TcpStream) {
    in_netns(ns, move || {
        connected_pair(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
    })
}

fn is(v: &Value, event: &str, local_port: u16) -> bool {
    v["event"] == event && v["local_port"] == local_port
}

#[test]
fn watch_with_netns_reports_deaths_in_that_namespace_with_their_cause() {
    if !can_use_netns("watch_with_netns_reports_deaths_in_that_namespace_with_their_cause") {
        return;
    }
    let pair = NetnsPair::new();
    let (holder, _far_end) = Holder::across(&pair, 9401);
    let (_l, client, server) = loopback_pair(&pair.a, 9402);
    let cport = client.local_addr().unwrap().port();

    // Everything exists before the first snapshot, so every socket is seen.
    let watch = Watcher::start(None, &["--netns", &pair.a, "--interval", "200ms"]);
    let (_, start) = watch
        .next(Duration::from_secs(30), |v| v["event"] == "start")
        .expect("a start event");
    assert_eq!(start["destroy_events"], true, "{start}");
    assert!(start["sockets"].as_u64().unwrap() >= 4, "{start}");

    // A normal close inside the namespace: the server side sees the FIN, then both programs close.
    client.shutdown(Shutdown::Write).unwrap();
    watch
        .next(Duration::from_secs(20), |v| {
            is(v, "state", 9402) && v["to"] == "close-wait"
        })
        .expect("the server side in CLOSE-WAIT");
    drop(server);
    drop(client);
    let mut destroyed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while destroyed.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, v) = watch
            .next(left, |v| {
                v["local_port"] == 9402 || v["local_port"] == cport
            })
            .unwrap_or_else(|| panic!("both ends destroyed; got {destroyed:?}"));
        assert!(
            !(v["event"] == "state" && v["to"] == "close"),
            "a socket its program closed is not 'still held': {v}"
        );
        if v["event"] == "destroy" {
            assert_eq!(v["cause"], "closed", "a FIN was exchanged: {v}");
            destroyed.push(v);
        }
    }

    // A keepalive death: the peer's link goes down; the holder keeps its fd (rightly "still held"), then exits.
    pair.cut_b();
    let (_, held) = watch
        .next(Duration::from_secs(30), |v| is(v, "state", holder.port))
        .expect("the held socket leaves the dump");
    assert_eq!(held["to"], "close", "{held}");
    assert_eq!(held["owners"][0]["pid"], holder.pid(), "{held}");
    let hport = holder.port;
    drop(holder);
    let (_, death) = watch
        .next(Duration::from_secs(30), |v| is(v, "destroy", hport))
        .expect("the keepalive death");
    assert_eq!(death["cause"], "keepalive_exhausted", "{death}");
    assert_eq!(death["probes"], 2, "{death}");
}

/// Makes a connection in `ns` on `port` that a watcher has seen established, proven by a state event: the server
/// side half-closes a moment after connecting, and a snapshot in between must have seen it. Tries again with a new
/// connection if the watcher missed that moment. Nothing the watcher prints says a refresh has run, so the moment
/// doubles on each try (0.4 s up to 12.8 s): a machine busy enough to stretch `--all-netns` refreshes over many
/// namespaces still gets a window longer than one refresh, and the whole search stays bounded (about a minute).
fn seen_pair(watch: &Watcher, ns: &str, port: u16) -> (TcpListener, TcpStream, TcpStream) {
    for attempt in 0..6 {
        let (l, c, s) = loopback_pair(ns, port);
        let cport = c.local_addr().unwrap().port();
        std::thread::sleep(Duration::from_millis(400) * (1 << attempt));
        s.shutdown(Shutdown::Write).unwrap();
        if watch
            .next(Duration::from_secs(5), |v| {
                is(v, "state", cport) && v["to"] == "close-wait"
            })
            .is_some()
        {
            return (l, c, s);
        }
    }
    panic!("the watcher never saw a connection in '{ns}' established");
}

#[test]
fn watch_all_netns_hears_deaths_in_a_namespace_made_after_the_start() {
    if !can_use_netns("watch_all_netns_hears_deaths_in_a_namespace_made_after_the_start") {
        return;
    }
    let mut watch = Watcher::start(
        None,
        &["--all-netns", "--port", "9410", "--interval", "200ms"],
    );
    watch
        .next(Duration::from_secs(30), |v| v["event"] == "start")
        .expect("a start event");
    let pair = NetnsPair::new();
    let (_l, client, server) = seen_pair(&watch, &pair.a, 9410);
    let cport = client.local_addr().unwrap().port();
    drop(client);
    drop(server);
    let (_, v) = watch
        .next(Duration::from_secs(30), |v| {
            v["local_port"] == cport && v["event"] != "state"
                || is(v, "state", cport) && v["to"] == "close"
        })
        .expect("the client's death");
    assert_eq!(v["event"], "destroy", "not 'still held': {v}");
    assert_eq!(v["cause"], "closed", "{v}");
    // The namespace is deleted: its subscription goes, and watching goes on.
    drop(pair);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        watch.child.try_wait().unwrap().is_none(),
        "kwatch still runs"
    );
}

/// This process's comm, as kwatch labels it.
fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// A GET of `/metrics`: the body, or `None` unless the answer is 200.
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_string())
}

/// Deaths counted for `comm`, over every cause.
fn deaths_of(body: &str, comm: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("kwatch_connection_deaths_total{"))
        .filter(|l| l.contains(&format!("comm=\"{comm}\"")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `kwatch serve` killed by pid on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_with_netns_counts_deaths_in_that_namespace() {
    if !can_use_netns("serve_with_netns_counts_deaths_in_that_namespace") {
        return;
    }
    let pair = NetnsPair::new();
    let (_l, client, server) = loopback_pair(&pair.a, 9420);
    let mut child = Command::new(KWATCH)
        .args([
            "--netns",
            &pair.a,
            "--port",
            "9420",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _served = Served(child);
    let addr = line
        .trim()
        .strip_prefix("kwatch: serving metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line '{line}'"))
        .to_string();
    // A scrape sees both ends established.
    let body = poll(Duration::from_secs(30), || scrape(&addr)).expect("a first scrape");
    assert!(body.contains("state=\"established\""), "{body}");
    drop(client);
    drop(server);
    let comm = my_comm();
    let body = poll(Duration::from_secs(30), || {
        scrape(&addr).filter(|b| deaths_of(b, &comm) >= 2.0)
    })
    .unwrap_or_else(|| panic!("two deaths of '{comm}' counted in '{}'", pair.a));
    assert_eq!(deaths_of(&body, &comm), 2.0, "{body}");
}

#[test]
fn the_live_views_feed_hears_deaths_in_the_namespace_it_shows() {
    if !can_use_netns("the_live_views_feed_hears_deaths_in_the_namespace_it_shows") {
        return;
    }
    use kwatch::collect::{Collector, Options};
    use kwatch::diag::{DumpRequest, PortFilter};
    use kwatch::events::WatchEvent;
    use kwatch::netns::Scope;
    let pair = NetnsPair::new();
    let (_l, client, server) = loopback_pair(&pair.a, 9430);
    let opts = Options {
        request: DumpRequest {
            ports: PortFilter::new(&[9430], &[], &[]),
            ..DumpRequest::all()
        },
        proc_root: PathBuf::from("/proc"),
        map_processes: true,
        only_pids: None,
        thresholds: Default::default(),
        read_sockopts: true,
        netns: Scope::One(pair.a.clone()),
    };
    let mut feed = kwatch::tui::event_log::Feed::open(&opts);
    let mut collector = Collector::new(opts);
    let mut step = |feed: &mut kwatch::tui::event_log::Feed| {
        feed.drain();
        let snapshot = std::sync::Arc::new(collector.collect().unwrap());
        feed.step_shared(&snapshot, snapshot.taken_at_unix_ms)
    };
    let first = step(&mut feed);
    assert!(
        first.iter().any(|e| matches!(
            e,
            WatchEvent::Start {
                sockets: 3,
                destroy_events: true,
                ..
            }
        )),
        "{first:?}"
    );
    drop(client);
    drop(server);
    let mut deaths = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while deaths.len() < 2 && Instant::now() < deadline {
        for e in step(&mut feed) {
            match e {
                WatchEvent::Destroy { .. } => deaths.push(e),
                WatchEvent::State { ref to, .. } => {
                    assert_ne!(
                        to.0,
                        kwatch::model::TcpState::Close,
                        "not 'still held': {e:?}"
                    )
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(deaths.len(), 2, "both ends' deaths: {deaths:?}");
}

#[test]
fn held_dead_sockets_are_found_in_the_namespaces_inspected() {
    if !can_use_netns("held_dead_sockets_are_found_in_the_namespaces_inspected") {
        return;
    }
    let pair = NetnsPair::new();
    let (holder, _far_end) = Holder::across(&pair, 9440);
    pair.cut_b();
    let mine = |doc: &Value| -> Option<Value> {
        doc["held_dead_sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["pid"] == holder.pid())
            .cloned()
    };
    // Keepalive gives up after 1 s idle and 2 unanswered probes a second apart.
    let ghost = poll(Duration::from_secs(30), || {
        mine(&kwatch_json(None, &["--netns", &pair.a]))
    })
    .expect("the holder's dead socket listed with --netns");
    assert_eq!(ghost["local_port"], holder.port, "{ghost}");
    assert_eq!(ghost["local_addr"], ADDR_A.to_string(), "{ghost}");
    assert_eq!(ghost["cause"], "keepalive_exhausted", "{ghost}");
    let all = kwatch_json(None, &["--all-netns"]);
    let ghost = mine(&all).expect("and with --all-netns");
    assert_eq!(ghost["local_port"], holder.port, "{ghost}");
    // The holder's process runs in namespace a only: without --netns, kwatch's own namespace has no such socket.
    assert!(mine(&kwatch_json(None, &[])).is_none());
    drop(holder);
}

#[test]
fn an_rst_while_retransmitting_is_a_reset() {
    if !can_use_netns("an_rst_while_retransmitting_is_a_reset") {
        return;
    }
    let pair = NetnsPair::new();
    let far = in_netns(&pair.b, || TcpListener::bind((ADDR_B, 9450)).unwrap());
    let mut client = in_netns(&pair.a, || TcpStream::connect((ADDR_B, 9450)).unwrap());
    let (far_end, _) = far.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let watch = Watcher::start(None, &["--netns", &pair.a, "--interval", "200ms"]);
    watch
        .next(Duration::from_secs(30), |v| v["event"] == "start")
        .expect("a start event");
    // The peer's link goes down and the client sends: its data is retransmitted, unanswered.
    pair.cut_b();
    client.write_all(b"unanswered").unwrap();
    let retransmitting = poll(Duration::from_secs(30), || {
        let doc = kwatch_json(None, &["--netns", &pair.a, "--dport", "9450"]);
        find_socket(&doc, cport, 9450)
            .filter(|s| s["tcp_info"]["retransmits"].as_u64() >= Some(2))
            .cloned()
    });
    assert!(retransmitting.is_some(), "the client never retransmitted");
    // The peer forgets the connection (its RST is lost on the down link), the link comes back, and the next
    // retransmission is answered with an RST.
    socket2::SockRef::from(&far_end)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(far_end);
    sh("ip", &["-n", &pair.b, "link", "set", &pair.veth_b, "up"]);
    watch
        .next(Duration::from_secs(30), |v| {
            is(v, "state", cport) && v["to"] == "close"
        })
        .expect("the reset client leaves the dump while this test holds its fd");
    drop(client);
    let (_, death) = watch
        .next(Duration::from_secs(30), |v| is(v, "destroy", cport))
        .expect("the client's death at close()");
    assert_eq!(death["cause"], "reset", "{death}");
    assert!(death["retransmits"].as_u64() >= Some(1), "{death}");
}
