//! `kwatch serve`: the metric rendering of the busy fixture (snapshot), the HTTP server's routes, bind errors
//! and clean stop, and a real Prometheus server scraping it and finding the CLOSE_WAIT socket this test holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use kwatch::analyze::{self, Thresholds};
use kwatch::model::{NamespaceInfo, NetnsRef, Settings, Snapshot, Unit, UnitKind};
use kwatch::serve::metrics::{DeathCounts, MetricsOptions, SelfStats, render};
use serde_json::Value;

fn busy() -> Snapshot {
    let mut snap: Snapshot =
        serde_json::from_str(include_str!("fixtures/busy.json")).expect("busy fixture parses");
    analyze::analyze(&mut snap, &Thresholds::default());
    snap
}

const STATS: SelfStats = SelfStats {
    scrape_duration: Duration::from_micros(12_500),
    scrape_errors: 2,
    deaths: None,
};

#[test]
fn busy_fixture_renders_every_metric() {
    let text = render(&busy(), &MetricsOptions::default(), &STATS).unwrap();
    insta::assert_snapshot!("busy_metrics", text);
}

/// The value of the one sample `series` (name with labels, as printed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn busy_fixture_counts_per_process_and_escapes_hostile_names() {
    let text = render(&busy(), &MetricsOptions::default(), &STATS).unwrap();
    // java holds 1006 (CLOSE_WAIT, flagged), 1004 (3 probes), 1005 (keepalive off) and more.
    let java = |name: &str| sample(&text, &format!("{name}{{comm=\"java\"}}"));
    assert_eq!(java("kwatch_process_close_wait_sockets"), Some(1.0));
    assert_eq!(java("kwatch_process_dead_peer_suspects"), Some(1.0));
    assert_eq!(
        java("kwatch_process_unanswered_keepalive_probes"),
        Some(3.0)
    );
    // The nginx listener is held by master and worker: counted once for the comm `nginx`.
    assert_eq!(
        sample(&text, "kwatch_sockets{state=\"close-wait\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "kwatch_findings{code=\"dead_peer_suspect\"}"),
        Some(1.0)
    );
    // ESC and BEL become visible text; the backslashes that makes are escaped for the exposition format.
    assert!(
        text.contains(r#"kwatch_process_close_wait_sockets{comm="evil\\x1b]0;pwned\\x07"} 1"#),
        "{text}"
    );
    assert!(!text.contains('\x1b'));
    assert_eq!(sample(&text, "kwatch_scrape_errors_total"), Some(2.0));
    assert_eq!(
        sample(&text, "kwatch_scrape_duration_seconds"),
        Some(0.0125)
    );

    let with_pid = render(&busy(), &MetricsOptions { pid_label: true }, &STATS).unwrap();
    assert_eq!(
        sample(
            &with_pid,
            "kwatch_process_sockets{comm=\"nginx\",pid=\"811\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &with_pid,
            "kwatch_process_sockets{comm=\"nginx\",pid=\"812\"}"
        ),
        Some(3.0)
    );
}

/// The busy fixture as `--all-netns` sees it: java (pid 2231) runs in namespace `web` inside a docker container
/// with its own keepalive settings; a third namespace could not be entered.
fn busy_in_namespaces() -> Snapshot {
    let mut snap = busy();
    let host = NetnsRef {
        inode: 4026531840,
        name: None,
    };
    let web = NetnsRef {
        inode: 4026532500,
        name: Some("web".into()),
    };
    let ns =
        |netns: &NetnsRef, current: bool, settings: Settings, error: Option<&str>| NamespaceInfo {
            netns: netns.clone(),
            current,
            pid: None,
            settings,
            error: error.map(Into::into),
        };
    let web_settings = Settings {
        tcp_keepalive_time_s: Some(600),
        tcp_keepalive_intvl_s: Some(10),
        tcp_keepalive_probes: Some(5),
        ..snap.settings
    };
    let locked = NetnsRef {
        inode: 4026532600,
        name: None,
    };
    snap.namespaces = vec![
        ns(&host, true, snap.settings, None),
        ns(&web, false, web_settings, None),
        ns(
            &locked,
            false,
            Settings::default(),
            Some("permission denied"),
        ),
    ];
    for c in &mut snap.connections {
        let java = c.owners.iter().any(|o| o.pid == 2231);
        c.netns = Some(std::sync::Arc::new(if java {
            web.clone()
        } else {
            host.clone()
        }));
    }
    snap.units.insert(
        2231,
        Unit {
            kind: UnitKind::Docker,
            id: "3f4e1b2c9d8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e".into(),
            pod: None,
        },
    );
    snap.units.insert(
        640,
        Unit {
            kind: UnitKind::Systemd,
            id: "ssh.service".into(),
            pod: None,
        },
    );
    snap
}

#[test]
fn namespaces_and_units_become_labels() {
    let text = render(&busy_in_namespaces(), &MetricsOptions::default(), &STATS).unwrap();
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "missing '{line}':\n{text}");
    has(r#"kwatch_sockets{netns="web",state="close-wait"} 1"#);
    has(r#"kwatch_sockets{netns="ns:4026531840",state="close-wait"} 1"#);
    // Every state of every namespace kwatch entered, none of the one it could not.
    has(r#"kwatch_sockets{netns="web",state="listen"} 0"#);
    assert!(!text.contains("ns:4026532600"), "{text}");
    has("kwatch_namespaces_unreadable 1");
    has(r#"kwatch_net_tcp_keepalive_time_seconds{netns="web"} 600"#);
    has(r#"kwatch_net_tcp_keepalive_time_seconds{netns="ns:4026531840"} 7200"#);
    has(
        r#"kwatch_process_close_wait_sockets{comm="java",netns="web",unit="docker:3f4e1b2c9d8a"} 1"#,
    );
    has(r#"kwatch_process_sockets{comm="sshd",netns="ns:4026531840",unit="ssh.service"} 2"#);
    // A process without a known unit has the label empty (the same as absent to Prometheus).
    has(r#"kwatch_process_sockets{comm="nginx",netns="ns:4026531840",unit=""} 3"#);
    let with_pid = render(
        &busy_in_namespaces(),
        &MetricsOptions { pid_label: true },
        &STATS,
    )
    .unwrap();
    assert!(
        with_pid.lines().any(|l| l
            == r#"kwatch_process_established_keepalive_off{comm="java",netns="web",pid="2231",unit="docker:3f4e1b2c9d8a"} 1"#),
        "{with_pid}"
    );
}

#[test]
fn deaths_are_counters_by_cause_and_comm_only_when_watched() {
    let text = render(&busy(), &MetricsOptions::default(), &STATS).unwrap();
    assert!(!text.contains("kwatch_connection_deaths_total"), "{text}");
    let stats = SelfStats {
        deaths: Some(DeathCounts {
            by_cause: [
                (("keepalive_exhausted", "java".to_string()), 3),
                (("reset", "evil\x1b".to_string()), 1),
            ]
            .into_iter()
            .collect(),
            lost: 1,
        }),
        ..STATS
    };
    let text = render(&busy(), &MetricsOptions::default(), &stats).unwrap();
    for line in [
        "# TYPE kwatch_connection_deaths_total counter",
        r#"kwatch_connection_deaths_total{cause="keepalive_exhausted",comm="java"} 3"#,
        r#"kwatch_connection_deaths_total{cause="reset",comm="evil\\x1b"} 1"#,
        "kwatch_connection_death_notifications_lost_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing '{line}':\n{text}");
    }
}

// ---- the server ----

/// A child process killed and reaped on drop, whatever the test's outcome.
struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit on its own, until the deadline.
    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll(timeout, || self.child.try_wait().unwrap())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("killed {} (pid {})", self.name, self.child.id());
        }
    }
}

/// Starts `kwatch serve --listen 127.0.0.1:0 ARGS` and reads the address it bound from stderr.
fn start_kwatch(args: &[&str]) -> (ChildGuard, SocketAddr, mpsc::Receiver<String>) {
    let child = Command::new(KWATCH)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kwatch serve");
    started(child)
}

/// Guards a started `kwatch serve` and reads the address it bound from its stderr.
fn started(child: Child) -> (ChildGuard, SocketAddr, mpsc::Receiver<String>) {
    let mut guard = ChildGuard {
        name: "kwatch serve",
        child,
    };
    let stderr = guard.child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[kwatch] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("kwatch serve prints where it listens");
    let addr = line
        .strip_prefix("kwatch: serving metrics on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    (guard, addr, lines)
}

/// A plain HTTP/1.0 request: (status, content type, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

#[test]
fn serves_metrics_index_and_404_and_stops_on_sigterm() {
    let (mut kwatch, addr, _lines) = start_kwatch(&[]);
    let (status, ctype, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctype, "text/plain; version=0.0.4");
    assert!(body.contains("# TYPE kwatch_sockets gauge"), "{body}");
    assert!(body.contains("kwatch_sockets{state=\"listen\"}"), "{body}");
    let (status, _, body) = http(addr, "GET", "/");
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/metrics\""), "{body}");
    assert_eq!(http(addr, "GET", "/nope").0, 404);
    assert_eq!(http(addr, "POST", "/metrics").0, 405);

    // SAFETY: kill() on the pid of our own child, which the guard has not reaped yet.
    assert_eq!(unsafe { libc::kill(kwatch.pid() as i32, libc::SIGTERM) }, 0);
    let status = kwatch
        .wait_exit(Duration::from_secs(10))
        .expect("kwatch serve stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_address_in_use_is_one_clear_line_and_exit_2() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = kwatch(None, &["serve", "--listen", &addr]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("kwatch: cannot listen on '{addr}': ")),
        "{stderr}"
    );
}

/// This process's comm, as kwatch labels it.
fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn deaths_of_sockets_seen_by_a_scrape_are_counted_by_cause() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let lport = listener.local_addr().unwrap().port();
    // Only our sockets: the port filter applies to deaths as well.
    let (_kwatch, addr, _lines) = {
        let port = lport.to_string();
        let child = Command::new(KWATCH)
            .args(["--port", &port, "serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kwatch serve");
        started(child)
    };
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    // A scrape sees both ends ESTABLISHED.
    let (status, _, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"kwatch_sockets{state="established"} 2"#),
        "{body}"
    );
    // The server end aborts (SO_LINGER 0: an RST, destroyed at once); the client end, reset, dies at close().
    // Neither had probes or retransmissions outstanding: nothing in the kernel's last word shows the RST, so the
    // cause is `unknown` (a fast close looks the same).
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server);
    drop(client);
    let series = format!(
        r#"kwatch_connection_deaths_total{{cause="unknown",comm="{}"}}"#,
        my_comm()
    );
    let counted = poll(Duration::from_secs(20), || {
        let (_, _, body) = http(addr, "GET", "/metrics");
        sample(&body, &series)
            .filter(|n| *n >= 2.0)
            .map(|n| (n, body))
    });
    let (n, body) = counted.unwrap_or_else(|| panic!("no '{series} 2' in time"));
    assert_eq!(n, 2.0, "{body}");
    assert_eq!(
        sample(&body, "kwatch_connection_death_notifications_lost_total"),
        Some(0.0)
    );
}

/// The CLOSE_WAIT socket this test holds: the peer closed, we did not. Keep all three alive.
fn close_wait_socket() -> (TcpListener, TcpStream, u16) {
    let (listener, client, server) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
    let port = client.local_addr().unwrap().port();
    server.shutdown(Shutdown::Both).unwrap();
    drop(server);
    (listener, client, port)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool check metrics` on `text`; (success, its output).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn start_prometheus(dir: &Path, target: SocketAddr) -> (ChildGuard, SocketAddr) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: kwatch\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    (
        ChildGuard {
            name: "prometheus",
            child,
        },
        addr,
    )
}

/// Runs an instant query; the result vector, or None while Prometheus is not answering yet.
fn query(prometheus: SocketAddr, promql: &str) -> Option<Vec<Value>> {
    TcpStream::connect_timeout(&prometheus, Duration::from_secs(1)).ok()?;
    let (status, _, body) = http(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={}", encode(promql)),
    );
    if status != 200 {
        return None;
    }
    let doc: Value = serde_json::from_str(&body).ok()?;
    doc["data"]["result"].as_array().cloned()
}

#[test]
fn real_prometheus_scrapes_the_close_wait_count_of_our_process() {
    if !can_use_prometheus("real_prometheus_scrapes_the_close_wait_count_of_our_process") {
        return;
    }
    let me = std::process::id();
    let (_listener, _client, port) = close_wait_socket();
    let (_kwatch, kwatch_addr, _lines) = start_kwatch(&["--pid-label"]);

    // promtool accepts what Prometheus is about to scrape, and it already shows our socket. Other tests of this
    // binary (same pid) hold a CLOSE_WAIT for an instant at the end of each HTTP request: poll for exactly 1.
    let ours = format!("pid=\"{me}\"}} 1");
    let body = poll(Duration::from_secs(20), || {
        let (status, _, body) = http(kwatch_addr, "GET", "/metrics");
        assert_eq!(status, 200, "{body}");
        let (ok, said) = promtool_check(&body);
        assert!(ok, "promtool check metrics failed: {said}\n{body}");
        body.lines()
            .any(|l| l.starts_with("kwatch_process_close_wait_sockets{") && l.ends_with(&ours))
            .then_some(body)
    });
    assert!(
        body.is_some(),
        "our CLOSE_WAIT socket (local port {port}) never in the metrics"
    );

    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom_addr) = start_prometheus(dir.path(), kwatch_addr);
    let promql = format!("kwatch_process_close_wait_sockets{{job=\"kwatch\",pid=\"{me}\"}}");
    let mut last = None;
    let found = poll(Duration::from_secs(60), || {
        let result = query(prom_addr, &promql)?;
        last = Some(result.clone());
        (result.len() == 1 && result[0]["value"][1] == "1").then_some(())
    });
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        found.is_some(),
        "Prometheus never had '{promql}' = 1 (last answer: {last:?}); its log:\n{log}"
    );
    // A scrape was healthy (the latest may have timed out on a loaded machine).
    let up = query(prom_addr, "max_over_time(up{job=\"kwatch\"}[5m])").unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
}

#[test]
fn the_documented_scrape_config_and_alert_rules_are_valid_and_the_alerts_fire_as_described() {
    if !can_use_prometheus("the_documented_scrape_config_and_alert_rules_are_valid") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prometheus");
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "kwatch-alerts.yml"],
        // Unit tests of the rules: CLOSE_WAIT growing for 10 minutes, dead peers, keepalive-off share.
        &["test", "rules", "kwatch-alerts.test.yml"],
    ] {
        let out = Command::new(PROMTOOL)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
