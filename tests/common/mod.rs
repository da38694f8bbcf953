//! Helpers shared by the live tests: privilege checks, network namespace pairs, sockets, running kwatch and ss.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod serve;
pub mod tmux;

/// The kwatch binary the tests run: the one cargo built, or the one named by `KWATCH_TEST_BIN` when the tests were
/// compiled (packaging/ci-deb.sh runs them against the installed package's `/usr/bin/kwatch`).
pub const KWATCH: &str = match option_env!("KWATCH_TEST_BIN") {
    Some(path) => path,
    None => env!("CARGO_BIN_EXE_kwatch"),
};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when privileged tests must run rather than skip: in CI, or when the developer asks for it.
pub fn must_run_privileged() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var_os("KWATCH_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1")
}

/// Whether a test that needs root and network namespaces can run. Prints why not and returns false, except
/// in CI where it panics: CI must run these tests, not skip them.
pub fn can_use_netns(test: &str) -> bool {
    let reason = if !is_root() {
        Some("needs root (run as root, or set up sudo)".to_string())
    } else {
        match Command::new("ip").args(["netns", "list"]).output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "'ip netns list' failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run 'ip' (install iproute2): {e}")),
        }
    };
    match reason {
        None => true,
        Some(r) if must_run_privileged() => panic!("{test}: must run in CI but cannot: {r}"),
        Some(r) => {
            eprintln!("skipping {test}: {r}");
            false
        }
    }
}

/// Whether a test can run, given why not (`None`: it can). Prints the reason and returns false, except in CI
/// where it panics: CI must run these tests, not skip them.
pub fn runnable(test: &str, why_not: Option<String>) -> bool {
    match why_not {
        None => true,
        Some(r) if must_run_privileged() => panic!("{test}: must run in CI but cannot: {r}"),
        Some(r) => {
            eprintln!("skipping {test}: {r}");
            false
        }
    }
}

/// Debian's `prometheus` package (the live exporter test runs a real server).
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Whether Prometheus and promtool are installed. Prints why not and returns false, except in CI where it
/// panics: CI installs the package and must run the test.
pub fn can_use_prometheus(test: &str) -> bool {
    let missing: Vec<&str> = [PROMETHEUS, PROMTOOL]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "{} not found (apt-get install prometheus)",
        missing.join(" and ")
    );
    if must_run_privileged() {
        panic!("{test}: must run in CI but cannot: {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// Runs a command and panics with its output when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two network namespaces `a` (192.0.2.1) and `b` (192.0.2.2) joined by a veth pair; removed on drop.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub veth_a: String,
    pub veth_b: String,
}

pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

impl NetnsPair {
    pub fn new() -> NetnsPair {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id());
        let pair = NetnsPair {
            a: format!("kwatch-{tag}-a"),
            b: format!("kwatch-{tag}-b"),
            veth_a: format!("kwa{tag}"),
            veth_b: format!("kwb{tag}"),
        };
        // The guard exists before the first namespace does, so a failure half-way still cleans up.
        sh("ip", &["netns", "add", &pair.a]);
        sh("ip", &["netns", "add", &pair.b]);
        sh(
            "ip",
            &[
                "link",
                "add",
                &pair.veth_a,
                "netns",
                &pair.a,
                "type",
                "veth",
                "peer",
                "name",
                &pair.veth_b,
                "netns",
                &pair.b,
            ],
        );
        for (ns, dev, addr) in [
            (&pair.a, &pair.veth_a, ADDR_A),
            (&pair.b, &pair.veth_b, ADDR_B),
        ] {
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
            );
            sh("ip", &["-n", ns, "link", "set", dev, "up"]);
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Takes namespace b's end of the link down: from a's side, b vanished without a word.
    pub fn cut_b(&self) {
        sh("ip", &["-n", &self.b, "link", "set", &self.veth_b, "down"]);
    }

    /// Sets a sysctl inside a namespace, e.g. ("net.ipv4.tcp_keepalive_time", "600").
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        sh(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ],
        );
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`: sockets it creates live in that namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// Sets SO_KEEPALIVE with per-socket idle, interval (seconds) and probe count.
pub fn set_keepalive(stream: &TcpStream, idle: u64, intvl: u64, cnt: u32) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(idle))
        .with_interval(Duration::from_secs(intvl))
        .with_retries(cnt);
    socket2::SockRef::from(stream)
        .set_tcp_keepalive(&ka)
        .expect("set keepalive");
}

/// A connected pair on a fresh listener at `addr` (port 0 picks one): (client, server side).
pub fn connected_pair(addr: SocketAddr) -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind(addr).expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (listener, client, server)
}

/// Runs kwatch (optionally inside a namespace) and returns its output, whatever the exit status.
pub fn kwatch(netns: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, KWATCH]);
            c
        }
        None => Command::new(KWATCH),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("run kwatch")
}

/// `kwatch --once --json ARGS` parsed; panics with stderr when it fails.
pub fn kwatch_json(netns: Option<&str>, args: &[&str]) -> Value {
    let mut all = vec!["--once", "--json"];
    all.extend_from_slice(args);
    let out = kwatch(netns, &all);
    assert!(
        out.status.success(),
        "kwatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kwatch --json prints valid JSON")
}

/// The sockets of a kwatch JSON document.
pub fn sockets(doc: &Value) -> &Vec<Value> {
    doc["sockets"].as_array().expect("sockets array")
}

/// A socket with this local and peer port, if listed.
pub fn find_socket(doc: &Value, local_port: u16, peer_port: u16) -> Option<&Value> {
    sockets(doc)
        .iter()
        .find(|s| s["local_port"] == local_port && s["peer_port"] == peer_port)
}

/// One line of `ss -tanoH`: state (kwatch's name), local, peer, and the timer's count when ss printed a timer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SsSocket {
    pub state: String,
    pub local: String,
    pub peer: String,
    pub timer: Option<(String, u32)>,
}

/// Runs `ss -tanoH` (in a namespace if given) and parses every line.
pub fn ss(netns: Option<&str>) -> Vec<SsSocket> {
    let out = match netns {
        Some(ns) => sh("ip", &["netns", "exec", ns, "ss", "-tanoH"]),
        None => sh("ss", &["-tanoH"]),
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_ss_line)
        .collect()
}

fn parse_ss_line(line: &str) -> Option<SsSocket> {
    let mut fields = line.split_whitespace();
    let state = match fields.next()? {
        "ESTAB" => "established",
        "SYN-SENT" => "syn-sent",
        "SYN-RECV" => "syn-recv",
        "FIN-WAIT-1" => "fin-wait-1",
        "FIN-WAIT-2" => "fin-wait-2",
        "TIME-WAIT" => "time-wait",
        "UNCONN" => "close",
        "CLOSE-WAIT" => "close-wait",
        "LAST-ACK" => "last-ack",
        "LISTEN" => "listen",
        "CLOSING" => "closing",
        other => panic!("unknown ss state {other}"),
    }
    .to_string();
    let _recv_q = fields.next()?;
    let _send_q = fields.next()?;
    let local = normalize_ss_addr(fields.next()?);
    let peer = normalize_ss_addr(fields.next()?);
    // timer:(keepalive,1.2sec,3)
    let timer = fields
        .find_map(|f| f.strip_prefix("timer:("))
        .and_then(|t| {
            let parts: Vec<&str> = t.trim_end_matches(')').split(',').collect();
            Some((parts.first()?.to_string(), parts.last()?.parse().ok()?))
        });
    Some(SsSocket {
        state,
        local,
        peer,
        timer,
    })
}

/// ss prints the IPv6 unspecified address as `*`, port 0 as `*`, and may append `%iface`; kwatch prints `[::]`,
/// `0` and no interface.
fn normalize_ss_addr(s: &str) -> String {
    let (host, port) = s.rsplit_once(':').expect("addr:port");
    let host = host.split('%').next().unwrap_or(host);
    let host = if host == "*" { "[::]" } else { host };
    let port = if port == "*" { "0" } else { port };
    format!("{host}:{port}")
}

/// A kwatch JSON socket in the same shape as `SsSocket`.
pub fn as_ss(s: &Value) -> SsSocket {
    let addr = |a: &Value, p: &Value| {
        let a = a.as_str().unwrap();
        if a.contains(':') {
            format!("[{a}]:{p}")
        } else {
            format!("{a}:{p}")
        }
    };
    let timer = &s["timer"];
    let kind = timer["kind"].as_str().unwrap();
    SsSocket {
        state: s["state"].as_str().unwrap().to_string(),
        local: addr(&s["local_addr"], &s["local_port"]),
        peer: addr(&s["peer_addr"], &s["peer_port"]),
        timer: (kind != "none")
            .then(|| (kind.to_string(), timer["count"].as_u64().unwrap() as u32)),
    }
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The busy fixture's keepalive settings as a collection fills them: assumed from the sysctls for ESTABLISHED and
/// CLOSE-WAIT sockets, read from the nginx listener (cookie 1001, `so_keepalive=30s:10s:3`) and from one accepted
/// socket (1003: 300/100/3, redis's default).
pub fn fill_busy_keepalive(snapshot: &mut kwatch::model::Snapshot) {
    use kwatch::model::keepalive::{KeepaliveSettings, Source};
    kwatch::sockopt::fill(snapshot, false, None);
    let read = |idle, intvl, cnt| KeepaliveSettings {
        enabled: Some(true),
        idle_s: Some(idle),
        intvl_s: Some(intvl),
        cnt: Some(cnt),
        user_timeout_ms: Some(0),
        source: Source::Socket,
    };
    for c in &mut snapshot.connections {
        match c.cookie {
            1001 => c.keepalive = Some(read(30, 10, 3).into()),
            1003 => c.keepalive = Some(read(300, 100, 3).into()),
            _ => {}
        }
    }
}

/// A `kwatch --watch --ndjson` child whose lines arrive, parsed, on a channel; killed (by pid) on drop.
pub struct Watcher {
    pub child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Watcher {
    /// `kwatch --watch --ndjson ARGS`, inside namespace `exec_in` (`ip netns exec`, which execs kwatch in place,
    /// so the child's pid is kwatch's) when given.
    pub fn start(exec_in: Option<&str>, args: &[&str]) -> Watcher {
        let mut cmd = match exec_in {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, KWATCH]);
                c
            }
            None => Command::new(KWATCH),
        };
        let mut child = cmd
            .args(["--watch", "--ndjson"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start kwatch --watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line: {e}: {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next event for which `want` holds, skipping others, within `timeout`.
    pub fn next(
        &self,
        timeout: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let v = self.lines.recv_timeout(left).ok()?;
            assert!(v["event"].is_string() && v["time_unix_ms"].is_u64(), "{v}");
            if want(&v) {
                return Some((Instant::now(), v));
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
