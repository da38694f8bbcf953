//! `kwatch serve` against clients that misbehave, on loopback: huge or unsent bodies, idle connections past the
//! fd limit, pipelining without reading, a huge header, many scrapers at once. In each, a scrape succeeds
//! within a second during and after the abuse (beyond the one collection it may wait for: see
//! [`scrape_within`]), and kwatch's resident memory grows by less than [`RSS_GROWTH`]. The tests run one at a
//! time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::poll;
use common::serve::*;

/// How long a scrape may take, during and after each abuse, beyond the collection it waits for.
const SCRAPE: Duration = Duration::from_secs(1);
/// How much kwatch's resident memory may grow through one abuse, in KiB: 256 connections' buffers fit (about
/// 40 KiB each), an abuse's bytes do not.
const RSS_GROWTH: u64 = 24 * 1024;

/// One abuse at a time: each measures kwatch's latency and CPU, which the others' load would blur.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connects and sends `request` (not reading the answer).
fn send(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    s
}

/// Reads what kwatch answered on `s` until it closes the connection, within 10 s: the status line's code, or
/// `None` when it closed without answering (or reset it).
fn answer(s: &mut TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("kwatch neither answered nor closed: {e}"),
    }
    let raw = String::from_utf8_lossy(&raw);
    raw.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// One abuse of a `kwatch serve` that answered a first scrape: holds the serial lock and kwatch's RSS before.
struct Abuse {
    _serial: std::sync::MutexGuard<'static, ()>,
    kwatch: ChildGuard,
    addr: SocketAddr,
    rss_before: u64,
}

impl Abuse {
    /// Starts `kwatch serve` (with `cmd`, default [`serve_command`]) and waits for its first scrape.
    fn start(cmd: Option<std::process::Command>) -> Abuse {
        let serial = one_at_a_time();
        let mut cmd = cmd.unwrap_or_else(|| serve_command(&[]));
        let (kwatch, addr, _) = started(cmd.spawn().expect("start kwatch serve"));
        warm_up(addr);
        Abuse {
            _serial: serial,
            rss_before: rss_kib(kwatch.pid()),
            kwatch,
            addr,
        }
    }

    fn pid(&self) -> u32 {
        self.kwatch.pid()
    }

    /// Requires kwatch alive, a scrape within [`SCRAPE`] and RSS growth under [`RSS_GROWTH`].
    fn finish(mut self, what: &str) {
        assert!(
            self.kwatch.child.try_wait().unwrap().is_none(),
            "{what}: kwatch died"
        );
        scrape_within(self.addr, SCRAPE, &format!("after {what}"));
        let after = rss_kib(self.pid());
        let grew = after.saturating_sub(self.rss_before);
        eprintln!(
            "{what}: RSS {} KiB -> {after} KiB (+{grew} KiB)",
            self.rss_before
        );
        assert!(
            grew < RSS_GROWTH,
            "{what}: RSS grew by {grew} KiB (from {} KiB), more than {RSS_GROWTH} KiB",
            self.rss_before
        );
    }
}

#[test]
fn huge_content_lengths_are_refused_without_reading_the_body() {
    let abuse = Abuse::start(None);
    let addr = abuse.addr;
    let mut held: Vec<TcpStream> = Vec::new();
    for len in ["100000000000000", "9223372036854775808"] {
        for method in ["POST", "GET", "POST", "PUT"] {
            let req = format!(
                "{method} /metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\n\r\nsome"
            );
            held.push(send(addr, req.as_bytes()));
        }
    }
    scrape_within(addr, SCRAPE, "while 8 huge bodies are announced");
    for s in &mut held {
        let code = answer(s);
        assert!(
            matches!(code, Some(413 | 400)),
            "a huge body got {code:?}, not 413 or 400"
        );
    }
    abuse.finish("huge Content-Lengths");
}

#[test]
fn bodies_announced_and_never_sent_do_not_block_scrapes() {
    let abuse = Abuse::start(None);
    let addr = abuse.addr;
    let mut held: Vec<TcpStream> = (0..16)
        .map(|i| {
            let body = if i % 2 == 0 {
                "Content-Length: 1000\r\n"
            } else {
                "Transfer-Encoding: chunked\r\n"
            };
            let req = format!("POST /metrics HTTP/1.1\r\nHost: {addr}\r\n{body}\r\n");
            send(addr, req.as_bytes())
        })
        .collect();
    scrape_within(addr, SCRAPE, "while 16 bodies are awaited");
    for s in &mut held {
        assert_eq!(answer(s), Some(413));
    }
    abuse.finish("unsent bodies");
}

/// kwatch's open fds.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn idle_and_half_sent_connections_past_the_fd_limit_leave_room_for_scrapes() {
    // This test opens 600 sockets: raise our own soft limit to the hard one.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .unwrap();
    // kwatch under the common `ulimit -n 1024`, soft and hard, so it cannot raise it.
    let mut cmd = serve_command(&[]);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let abuse = Abuse::start(Some(cmd));
    let addr = abuse.addr;
    let mut held = Vec::new();
    for i in 0..600 {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        // Half of them start a request and never finish it.
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(s);
    }
    assert!(held.len() >= 550, "only {} connections made", held.len());
    scrape_within(addr, SCRAPE, "with 600 idle connections");
    let open = fds(abuse.pid());
    eprintln!("kwatch holds {open} fds with 600 clients");
    assert!(open <= 256 + 64, "kwatch holds {open} fds");
    drop(held);
    abuse.finish("600 idle connections");
}

#[test]
fn pipelined_requests_never_read_cost_bounded_cpu_and_are_dropped() {
    let abuse = Abuse::start(None);
    let (addr, pid) = (abuse.addr, abuse.pid());
    let fds_before = fds(pid);
    let cpu_before = cpu_time(pid);
    // 20,000 requests on one connection, as fast as it takes them, never reading an answer.
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let one = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let batch = one.repeat(100);
    let mut sent = 0;
    for _ in 0..200 {
        if s.write_all(batch.as_bytes()).is_err() {
            break;
        }
        sent += 100;
    }
    eprintln!("pipelined {sent} requests before kwatch stopped taking them");
    scrape_within(addr, SCRAPE, "while a pipelining client reads nothing");
    // kwatch gives up on the connection its answers cannot leave (write timeout: 10 s).
    let waited = Instant::now();
    let closed = poll(Duration::from_secs(40), || {
        (fds(pid) <= fds_before).then_some(())
    });
    assert!(
        closed.is_some(),
        "kwatch still holds the unread connection: {} fds, {fds_before} before",
        fds(pid)
    );
    eprintln!(
        "kwatch dropped the unread connection after {:?}",
        waited.elapsed()
    );
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    eprintln!("pipelining cost kwatch {cpu:?} of CPU");
    assert!(
        cpu < Duration::from_secs(2),
        "pipelining cost {cpu:?} of CPU"
    );
    drop(s);
    abuse.finish("pipelining");
}

#[test]
fn a_huge_header_line_is_refused_with_bounded_memory() {
    let abuse = Abuse::start(None);
    let addr = abuse.addr;
    let mut s = send(addr, b"GET /metrics HTTP/1.1\r\nX-Huge: ");
    let chunk = vec![b'a'; 1 << 20];
    let mut sent_mib = 0;
    // Up to 64 MiB of one header line; kwatch closes the connection long before.
    for _ in 0..64 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent_mib += 1;
        if sent_mib == 8 {
            scrape_within(addr, SCRAPE, "while a header line grows");
        }
    }
    eprintln!("sent {sent_mib} MiB of header before kwatch closed the connection");
    assert!(sent_mib < 64, "kwatch read 64 MiB of one header line");
    abuse.finish("a huge header line");
}

#[test]
fn parallel_scrapers_share_at_most_one_collection_per_min_interval() {
    let _serial = one_at_a_time();
    let (kwatch, addr, _lines) = start_kwatch(&[]);
    let collections = |body: &str| sample(body, "kwatch_collections_total").unwrap() as u64;
    let first = collections(&warm_up(addr));
    let cpu_before = cpu_time(kwatch.pid());
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scrapers: Vec<_> = (0..8)
        .map(|_| {
            let (stop, scrapes) = (Arc::clone(&stop), Arc::clone(&scrapes));
            std::thread::spawn(move || {
                // Bounded: 5 s, or 100,000 scrapes.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (status, _, _) = http(addr, "GET", "/metrics");
                    assert_eq!(status, 200);
                    scrapes.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        scrape_within(addr, SCRAPE, "among 8 scrapers");
    }
    stop.store(true, Ordering::SeqCst);
    for s in scrapers {
        s.join().unwrap();
    }
    let elapsed = started.elapsed();
    let last = collections(&scrape_within(addr, SCRAPE, "after"));
    let cpu = cpu_time(kwatch.pid()).saturating_sub(cpu_before);
    let n = scrapes.load(Ordering::SeqCst);
    let ran = last - first;
    eprintln!(
        "{n} scrapes in {elapsed:?}: {ran} collections, kwatch used {cpu:?} of CPU ({:.0} % of a core)",
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64()
    );
    assert!(n >= 50, "only {n} scrapes: the scrapers were held up");
    // At most one collection per second, plus the ones at either end.
    let most = elapsed.as_secs() + 2;
    assert!(
        ran <= most,
        "{ran} collections in {elapsed:?} for {n} scrapes: more than {most}"
    );
}
