//! `kwatch serve`: the metric rendering of the busy fixture (snapshot), the HTTP server's routes, bind errors
//! and clean stop, and a real Prometheus server scraping it and finding the CLOSE_WAIT socket this test holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::serve::*;
use common::*;
use kwatch::analyze::{self, Thresholds};
use kwatch::model::{NamespaceInfo, NetnsRef, Settings, Snapshot, Unit, UnitKind};
use kwatch::serve::metrics::{DeathCounts, MetricsOptions, SelfStats, render};
use serde_json::Value;

fn busy() -> Snapshot {
    let mut snap = kwatch::testing::fixture("busy.json");
    analyze::analyze(&mut snap, &Thresholds::default());
    snap
}

const STATS: SelfStats = SelfStats {
    scrape_duration: Duration::from_micros(12_500),
    scrape_errors: 2,
    collections: 7,
    deaths: None,
};

#[test]
fn busy_fixture_renders_every_metric() {
    let text = render(&busy(), &MetricsOptions::default(), &STATS).unwrap();
    insta::assert_snapshot!("busy_metrics", text);
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

/// Services: nginx master (811) and worker (812) share the :443 listener and are one service, each socket once;
/// every series kwatch renders is described in docs/prometheus.md.
#[test]
fn services_are_rolled_up_and_every_series_is_documented() {
    let text = render(&busy(), &MetricsOptions::default(), &STATS).unwrap();
    let nginx = |name: &str| sample(&text, &format!("{name}{{service=\"nginx\"}}"));
    assert_eq!(nginx("kwatch_service_processes"), Some(2.0));
    assert_eq!(nginx("kwatch_service_sockets"), Some(3.0));
    assert_eq!(nginx("kwatch_service_established_sockets"), Some(2.0));
    assert_eq!(nginx("kwatch_service_keepalive_off"), Some(0.0));
    let java = |name: &str| sample(&text, &format!("{name}{{service=\"java\"}}"));
    assert_eq!(java("kwatch_service_processes"), Some(1.0));
    assert_eq!(java("kwatch_service_close_wait_sockets"), Some(1.0));
    assert_eq!(java("kwatch_service_established_keepalive_off"), Some(1.0));
    assert!(
        text.contains(r#"kwatch_service_sockets{service="evil\\x1b]0;pwned\\x07"} 1"#),
        "{text}"
    );

    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus.md"))
        .unwrap();
    for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = name.split(' ').next().unwrap();
        assert!(
            doc.contains(&format!("`{name}`")),
            "'{name}' is not in docs/prometheus.md"
        );
    }
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

    kwatch.signal(libc::SIGTERM);
    let status = kwatch
        .wait_exit(Duration::from_secs(10))
        .expect("kwatch serve stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_stderr_whose_reader_is_gone_loses_lines_not_the_exporter() {
    let mut child = serve_command(&[]).spawn().expect("start kwatch serve");
    let mut guard_stderr = BufReader::new(child.stderr.take().unwrap());
    let mut kwatch = ChildGuard {
        name: "kwatch serve",
        child,
    };
    let mut first = String::new();
    guard_stderr.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim_end()
        .strip_prefix("kwatch: serving metrics on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .parse()
        .unwrap();
    // The reader goes away (a supervisor's log pipe closed): every later line kwatch writes meets EPIPE.
    drop(guard_stderr);
    assert_eq!(http(addr, "GET", "/metrics").0, 200);
    // SIGTERM makes kwatch write "stopped" into the dead pipe: it must still end as asked, with status 0.
    kwatch.signal(libc::SIGTERM);
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
    // A scrape sees both ends ESTABLISHED (once a collection taken after they connected answers: one started
    // before, at the server's start, may still be shared).
    let seen = poll(Duration::from_secs(20), || {
        let (status, _, body) = http(addr, "GET", "/metrics");
        (status == 200 && body.contains(r#"kwatch_sockets{state="established"} 2"#)).then_some(())
    });
    assert!(seen.is_some(), "no scrape showed both ends established");
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

/// The scrape config of one job `kwatch` scraping `target` over plain HTTP.
fn plain_job(target: SocketAddr) -> String {
    format!("  - job_name: kwatch\n    static_configs:\n      - targets: ['{target}']\n")
}

/// Starts Prometheus (scrape interval 1 s) with `jobs` as its scrape_configs.
fn start_prometheus(dir: &Path, jobs: &str) -> (ChildGuard, SocketAddr) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n{jobs}"
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
    let (_prometheus, prom_addr) = start_prometheus(dir.path(), &plain_job(kwatch_addr));
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

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, written as ca.pem, server.pem and
/// server-key.pem in `dir`.
fn make_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kwatch test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), server_key.serialize_pem()).unwrap();
}

/// One HTTPS GET of `path` trusting only `ca.pem` in `dir`, with an optional `Authorization` value: the raw
/// response.
fn https_get(dir: &Path, addr: SocketAddr, path: &str, authorization: Option<&str>) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify is an error to rustls; what came before it counts.
    let _ = tls.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn real_prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_gets_401() {
    if !can_use_prometheus("real_prometheus_scrapes_over_tls_with_basic_auth") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    // Cost 6 keeps the debug build's first check short; the format is what `htpasswd -B` writes.
    let hash = bcrypt::hash("correct horse", 6).unwrap();
    let config = dir.path().join("web.yml");
    // Relative paths are relative to the config file.
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n\
             basic_auth_users:\n  prometheus: '{hash}'\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .unwrap();
    let (_kwatch, addr, _lines) = start_kwatch(&["--web-config-file", config.to_str().unwrap()]);

    let ok = https_get(
        dir.path(),
        addr,
        "/metrics",
        Some(&basic("prometheus", "correct horse")),
    );
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{ok}");
    assert_eq!(
        header(head, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(body.contains("# TYPE kwatch_sockets gauge"), "{body}");
    for (what, auth) in [
        ("a wrong password", Some(basic("prometheus", "wrong horse"))),
        ("an unknown user", Some(basic("grafana", "correct horse"))),
        ("no credentials", None),
        ("another scheme", Some("Bearer correct horse".to_string())),
    ] {
        let denied = https_get(dir.path(), addr, "/metrics", auth.as_deref());
        let (head, body) = denied.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 401 "), "{what}: {denied}");
        assert!(
            header(head, "www-authenticate").is_some_and(|v| v.starts_with("Basic")),
            "{what}: {denied}"
        );
        assert!(!body.contains("kwatch_"), "{what}: {denied}");
    }
    // Plain HTTP to the TLS port gets no metrics.
    let mut plain = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(plain, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(
        !String::from_utf8_lossy(&raw).contains("kwatch_"),
        "plain HTTP got metrics"
    );

    // Prometheus scrapes with the right password and fails with a wrong one.
    let ca = dir.path().join("ca.pem");
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             basic_auth:\n      username: prometheus\n      password: '{password}'\n    \
             static_configs:\n      - targets: ['{addr}']\n",
            ca.display()
        )
    };
    let jobs = format!(
        "{}{}",
        job("kwatch", "correct horse"),
        job("kwatch_wrong", "wrong horse")
    );
    let (_prometheus, prom_addr) = start_prometheus(dir.path(), &jobs);
    let promql = "kwatch_sockets{state=\"listen\"}";
    let mut last = None;
    let found = poll(Duration::from_secs(60), || {
        let result = query(prom_addr, promql)?;
        last = Some(result.clone());
        let jobs: Vec<&str> = result
            .iter()
            .filter_map(|r| r["metric"]["job"].as_str())
            .collect();
        (jobs == ["kwatch"]).then_some(())
    });
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        found.is_some(),
        "Prometheus never had '{promql}' from job kwatch alone (last answer: {last:?}); its log:\n{log}"
    );
    let up = poll(Duration::from_secs(30), || {
        let up = query(prom_addr, "up")?;
        let of = |job: &str| {
            up.iter()
                .find(|r| r["metric"]["job"] == job)
                .map(|r| r["value"][1].as_str().unwrap_or_default().to_string())
        };
        (of("kwatch").is_some() && of("kwatch_wrong").is_some())
            .then(|| (of("kwatch"), of("kwatch_wrong")))
    });
    let (right, wrong) = up.expect("Prometheus reports up for both jobs");
    assert_eq!(right.as_deref(), Some("1"), "up of the right password");
    assert_eq!(wrong.as_deref(), Some("0"), "up of the wrong password");
}

#[test]
fn a_non_loopback_address_without_a_web_config_warns_in_one_line() {
    let child = Command::new(KWATCH)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kwatch serve");
    let (_kwatch, addr, lines) = started(child);
    assert!(addr.ip().is_unspecified());
    let warning = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a warning line");
    assert!(
        warning.starts_with(&format!(
            "kwatch: warning: '{addr}' is reachable beyond this host"
        )),
        "{warning}"
    );
    assert!(warning.contains("--web-config-file"), "{warning}");

    // On loopback: no warning (the next line, if any, is not one).
    let (_kwatch, _, lines) = start_kwatch(&[]);
    assert!(lines.recv_timeout(Duration::from_secs(1)).is_err());
}

#[test]
fn a_bad_web_config_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    let cases = [
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "the password of 'alice' is not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.pem\n",
            "cannot read cert_file",
        ),
        ("tls_server_confg: {}\n", "unknown field `tls_server_confg`"),
    ];
    for (text, want) in cases {
        std::fs::write(&config, text).unwrap();
        let out = kwatch(
            None,
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--web-config-file",
                config.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "kwatch: invalid web config '{}': ",
                config.display()
            )),
            "{stderr}"
        );
        assert!(stderr.contains(want), "{text}: {stderr}");
    }
}

/// The status of a plain HTTP GET of /metrics with this `Authorization` value.
fn status_with(addr: SocketAddr, authorization: &str) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    parse_response(&raw).0
}

#[test]
fn sighup_reloads_the_web_config_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    let users = |user: &str, password: &str| {
        let hash = bcrypt::hash(password, 4).unwrap();
        format!("basic_auth_users:\n  {user}: '{hash}'\n")
    };
    std::fs::write(&config, users("old", "first")).unwrap();
    let (kwatch, addr, lines) = start_kwatch(&["--web-config-file", config.to_str().unwrap()]);
    assert_eq!(status_with(addr, &basic("old", "first")), 200);
    assert_eq!(status_with(addr, &basic("new", "second")), 401);

    let next_line = |want: &str| {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no '{want}' line"));
        assert!(line.starts_with(want), "{line}");
    };
    std::fs::write(&config, users("new", "second")).unwrap();
    kwatch.signal(libc::SIGHUP);
    next_line("kwatch: reloaded web config");
    assert_eq!(status_with(addr, &basic("new", "second")), 200);
    assert_eq!(status_with(addr, &basic("old", "first")), 401);

    std::fs::write(&config, "basic_auth_users:\n  new: plaintext\n").unwrap();
    kwatch.signal(libc::SIGHUP);
    next_line("kwatch: warning: web config not reloaded, the previous one stays: ");
    assert_eq!(status_with(addr, &basic("new", "second")), 200);
}
