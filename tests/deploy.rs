//! The deployment files: every query of the Grafana dashboard (deploy/grafana/kwatch.json) parses with promtool
//! and names only metrics a real `kwatch serve` exports; the Kubernetes manifest (deploy/kubernetes/) is valid
//! against the Kubernetes schemas (`kubernetes-validate --strict`, offline, installed by .ci/run in a venv).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{KWATCH, PROMTOOL, can_use_prometheus, must_run_privileged, poll};
use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/kwatch.json");
const DAEMONSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/kubernetes/daemonset.yaml"
);

/// Every `expr` of the dashboard's panels, and the queries of its template variables.
fn dashboard_queries() -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, exprs: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => exprs.push(e.clone()),
                        _ => walk(v, exprs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, exprs)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut exprs = Vec::new();
    walk(&doc["panels"], &mut exprs);
    let variables = doc["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["definition"].as_str().map(str::to_string))
        .collect();
    (exprs, variables)
}

/// A query as Prometheus receives it from Grafana: the dashboard's variables replaced by values.
fn as_sent(expr: &str) -> String {
    let sent = expr
        .replace("$__rate_interval", "1m")
        .replace("$instance", ".*");
    assert!(!sent.contains('$'), "unknown variable in {expr}");
    sent
}

/// The metric names an expression uses (identifiers starting with `kwatch_`, outside label values).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = false;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("kwatch_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// `kwatch serve` on a free loopback port, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start() -> Serve {
        let mut child = Command::new(KWATCH)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[kwatch] {line}");
                let _ = tx.send(line);
            }
        });
        let mut serve = Serve {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("kwatch serve says where it listens");
        serve.addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        serve
    }

    /// The metric names of one scrape (its `# TYPE` lines).
    fn scrape(&self) -> BTreeSet<String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"));
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a real `kwatch serve` exports, once a connection it saw has died (death counters appear only then).
fn exported_metric_names() -> BTreeSet<String> {
    let serve = Serve::start();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let mut names = serve.scrape();
    drop((client, server, listener));
    let deaths = poll(Duration::from_secs(20), || {
        let now = serve.scrape();
        now.contains("kwatch_connection_deaths_total")
            .then_some(now)
    })
    .expect("kwatch serve counts the death of a loopback connection it saw");
    names.extend(deaths);
    names
}

#[test]
fn dashboard_queries_parse_and_use_only_exported_metrics() {
    if !can_use_prometheus("dashboard_queries_parse_and_use_only_exported_metrics") {
        return;
    }
    let (exprs, variables) = dashboard_queries();
    assert!(exprs.len() >= 10, "{exprs:?}");

    // promtool parses each query as the expression of a recording rule (JSON is YAML).
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": as_sent(e)}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = exported_metric_names();
    let mut used = BTreeSet::new();
    for query in exprs.iter().chain(&variables) {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no kwatch metric in {query}");
        for name in &names {
            assert!(
                exported.contains(name),
                "{query} uses '{name}', which kwatch does not export: {exported:?}"
            );
        }
        used.extend(names);
    }
    // The dashboard shows what issue 18 asks for: sockets by state, stuck sockets by finding, the worst
    // processes, deaths by cause, scrape duration.
    for needed in [
        "kwatch_sockets",
        "kwatch_findings",
        "kwatch_process_close_wait_sockets",
        "kwatch_connection_deaths_total",
        "kwatch_scrape_duration_seconds",
    ] {
        assert!(used.contains(needed), "the dashboard does not use {needed}");
    }
}

#[test]
fn metric_names_skip_label_values_and_functions() {
    assert_eq!(
        metric_names(r#"sum by (code) (rate(kwatch_a_total{code!~"kwatch_x|y"}[1m])) / kwatch_b"#),
        BTreeSet::from(["kwatch_a_total".to_string(), "kwatch_b".to_string()])
    );
}

#[test]
fn daemonset_is_valid_against_the_kubernetes_schemas() {
    // On PATH, or where .ci/run installs it.
    let venv = "/opt/kwatch-ci/venv/bin/kubernetes-validate";
    let tool = if Path::new(venv).exists() {
        venv
    } else {
        "kubernetes-validate"
    };
    let out = match Command::new(tool)
        .args(["--strict", DAEMONSET])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            let reason = format!("cannot run '{tool}' ({e}): pip install kubernetes-validate");
            if must_run_privileged() {
                panic!(
                    "daemonset_is_valid_against_the_kubernetes_schemas: must run in CI: {reason}"
                );
            }
            eprintln!("skipping daemonset_is_valid_against_the_kubernetes_schemas: {reason}");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for kind in [
        "namespace/kwatch",
        "serviceaccount/kwatch",
        "daemonset/kwatch",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // The manifest keeps what the exporter needs and nothing more (docs/install.md explains each).
    let yaml = std::fs::read_to_string(Path::new(DAEMONSET)).unwrap();
    for needed in [
        "hostPID: true",
        "hostNetwork: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "prometheus.io/scrape: \"true\"",
        "prometheus.io/port: \"9813\"",
        "$(HOST_IP):9813",
    ] {
        assert!(yaml.contains(needed), "daemonset.yaml lacks {needed}");
    }
    let added: Vec<&str> = yaml
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "add:")
        .skip(1)
        .take_while(|l| l.starts_with('-') || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("- "))
        .collect();
    assert_eq!(added, ["DAC_READ_SEARCH", "SYS_PTRACE", "SYS_ADMIN"]);
}
