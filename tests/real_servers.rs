//! The keepalive column and the service rollup against real servers nobody here wrote, from Debian's packages:
//! redis-server (its default `tcp-keepalive 300`, then `CONFIG SET tcp-keepalive 60`) and nginx
//! (`so_keepalive=30s:10s:3`, two workers). Each test starts its own instance on a free loopback port in a temp
//! dir and stops it by pid through a guard, also when the test fails. Needs root (reading the servers' socket
//! options, nginx's master); skips with a reason locally, fails in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{is_root, kwatch, kwatch_json, poll, runnable, sockets};
use serde_json::Value;

const REDIS: &str = "/usr/bin/redis-server";
const NGINX: &str = "/usr/sbin/nginx";

/// Whether the test can run: root and the server binary. Prints why not and returns false, except in CI.
fn can_run(test: &str, binary: &str, package: &str) -> bool {
    let reason = if !is_root() {
        Some("needs root (reading another process's socket options, nginx's master)".to_string())
    } else if !Path::new(binary).exists() {
        Some(format!("{binary} not found (apt-get install {package})"))
    } else {
        None
    };
    runnable(test, reason)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Parent pid from /proc/PID/stat (fields after the last `)`).
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn children(parent: u32) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| ppid(*pid) == Some(parent))
        .collect();
    out.sort_unstable();
    out
}

/// A server process started by the test; on drop: SIGTERM, a bounded wait, then SIGKILL to it and to the children
/// it had (nginx's workers outlive a killed master), all by pid.
struct Server {
    child: Child,
    children: Vec<u32>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.pid() as i32;
        let mut known = self.children.clone();
        known.extend(children(self.pid()));
        // SAFETY: kill sends a signal to a pid this test started; it has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let exited = poll(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().map(|_| ())
        });
        if exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for c in known {
            // Only a process that is still the server's child (or was orphaned to init) and still nginx/redis.
            let comm = std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap_or_default();
            if comm.starts_with("nginx") || comm.starts_with("redis") {
                // SAFETY: as above, a pid this test's server started.
                unsafe { libc::kill(c as i32, libc::SIGKILL) };
            }
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let s = poll(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("the server accepts connections");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends one RESP command and reads the one-line reply.
fn redis(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(cmd.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") && reply.len() < 512 {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply).trim_end().to_string()
}

/// The server side of the connection from `client`: local port `port`, peer port `client`'s.
fn server_side<'a>(doc: &'a Value, port: u16, client: &TcpStream) -> Option<&'a Value> {
    let peer = client.local_addr().unwrap().port();
    sockets(doc)
        .iter()
        .find(|s| s["local_port"] == port && s["peer_port"] == peer && s["state"] == "established")
}

fn listener(doc: &Value, port: u16) -> &Value {
    sockets(doc)
        .iter()
        .find(|s| s["local_port"] == port && s["state"] == "listen")
        .expect("the listener is listed")
}

/// (enabled, idle, intvl, cnt, source) of a JSON socket's keepalive.
fn keepalive(s: &Value) -> (Value, Value, Value, Value, Value) {
    let k = &s["keepalive"];
    (
        k["enabled"].clone(),
        k["idle_s"].clone(),
        k["intvl_s"].clone(),
        k["cnt"].clone(),
        k["source"].clone(),
    )
}

fn read(idle: u32, intvl: u32, cnt: u32) -> (Value, Value, Value, Value, Value) {
    (
        Value::from(true),
        Value::from(idle),
        Value::from(intvl),
        Value::from(cnt),
        Value::from("socket"),
    )
}

/// The Keepalive cell of the table row whose Local and Peer columns are `local` and `peer` (the header says where
/// the column starts).
fn table_cell(port: u16, local: &str, peer: &str) -> String {
    let out = kwatch(None, &["--once", "--port", &port.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    let at = header.find("Keepalive").expect("a Keepalive column");
    let row = text
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == local && f[2] == peer
        })
        .unwrap_or_else(|| panic!("no row {local} {peer}:\n{text}"));
    row[at..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Starts redis-server on a free port, its files in `dir`. The port is free when picked, not when redis binds it:
/// another test (two suites at once) may take it in between, redis then exits and a connection would reach the
/// other listener (it was reset once). So redis counts as started only when its log says it listens; a redis
/// that exited is started again on another port.
fn start_redis(dir: &Path) -> (Server, u16) {
    let log = dir.join("redis.log");
    for _ in 0..5 {
        let _ = std::fs::remove_file(&log);
        let port = free_port();
        let child = Command::new(REDIS)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--daemonize", "no", "--dir"])
            .arg(dir)
            .args(["--logfile"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Server {
            child,
            children: Vec::new(),
        };
        let ready = poll(Duration::from_secs(20), || {
            if server.child.try_wait().ok().flatten().is_some() {
                return Some(false);
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("Ready to accept connections").then_some(true)
        });
        match ready {
            Some(true) => return (server, port),
            Some(false) => continue, // exited: the port was taken in between
            None => panic!(
                "redis-server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    }
    panic!("redis-server found no free port in five tries");
}

#[test]
fn redis_default_keepalive_is_read_from_its_sockets_and_config_set_changes_new_ones_only() {
    if !can_run("redis_keepalive", REDIS, "redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = start_redis(dir.path());

    let mut first = connect(port);
    assert_eq!(redis(&mut first, &["PING"]), "+PONG");
    let doc = kwatch_json(None, &["--port", &port.to_string()]);
    let s = server_side(&doc, port, &first).expect("redis's side of the first connection");
    assert_eq!(s["owners"][0]["pid"], server.pid());
    assert_eq!(
        keepalive(s),
        read(300, 100, 3),
        "redis's default tcp-keepalive 300"
    );
    // redis sets keepalive on each accepted socket, not on its listener: the listener hands on 'off'.
    let l = listener(&doc, port);
    assert_eq!(
        (
            l["keepalive"]["enabled"].clone(),
            l["keepalive"]["source"].clone()
        ),
        (Value::from(false), Value::from("socket"))
    );
    let local = format!("127.0.0.1:{port}");
    let peer = |c: &TcpStream| c.local_addr().unwrap().to_string();
    assert_eq!(table_cell(port, &local, &peer(&first)), "300/100/3");

    assert_eq!(
        redis(&mut first, &["CONFIG", "SET", "tcp-keepalive", "60"]),
        "+OK"
    );
    let mut second = connect(port);
    assert_eq!(redis(&mut second, &["PING"]), "+PONG");
    let doc = kwatch_json(None, &["--port", &port.to_string()]);
    let old = server_side(&doc, port, &first).unwrap();
    let new = server_side(&doc, port, &second).expect("redis's side of the second connection");
    assert_eq!(
        keepalive(old),
        read(300, 100, 3),
        "an existing connection keeps its settings"
    );
    assert_eq!(
        keepalive(new),
        read(60, 20, 3),
        "a new connection gets the new ones"
    );
    assert_eq!(table_cell(port, &local, &peer(&second)), "60/20/3");
    assert_eq!(table_cell(port, &local, &peer(&first)), "300/100/3");
    // The client ends (this test's, SO_KEEPALIVE never set) read 'off'.
    assert_eq!(table_cell(port, &peer(&first), &local), "off");
}

#[test]
fn nginx_so_keepalive_shows_on_accepted_sockets_and_its_workers_are_one_steady_service() {
    if !can_run("nginx_keepalive", NGINX, "nginx-light") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
           server {{\n    listen 127.0.0.1:{port} so_keepalive=30s:10s:3;\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let mut server = Server {
        child,
        children: Vec::new(),
    };
    let master = server.pid();
    let workers = poll(Duration::from_secs(20), || {
        let w = children(master);
        (w.len() == 2).then_some(w)
    })
    .unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not start two workers: {log}")
    });
    server.children = workers.clone();
    let mut members = vec![master];
    members.extend(&workers);

    // Several refreshes, with connections opened and closed between them: the column and the service hold.
    let mut clients: Vec<TcpStream> = Vec::new();
    let mut seen_services = Vec::new();
    for round in 0..4 {
        clients.push(connect(port));
        clients.push(connect(port));
        if round == 2 {
            clients.remove(0);
        }
        // Every client accepted by some worker (nginx accepts without waiting for a request).
        let doc = poll(Duration::from_secs(20), || {
            let doc = kwatch_json(None, &["--port", &port.to_string()]);
            clients
                .iter()
                .all(|c| {
                    server_side(&doc, port, c)
                        .is_some_and(|s| !s["owners"].as_array().unwrap().is_empty())
                })
                .then_some(doc)
        })
        .expect("nginx accepted every client");
        for c in &clients {
            let s = server_side(&doc, port, c).unwrap();
            assert_eq!(
                keepalive(s),
                read(30, 10, 3),
                "accepted socket, round {round}"
            );
            let owner = s["owners"][0]["pid"].as_u64().unwrap() as u32;
            assert!(
                workers.contains(&owner),
                "held by a worker: {owner} not in {workers:?}"
            );
        }
        assert_eq!(
            keepalive(listener(&doc, port)),
            read(30, 10, 3),
            "what the listener hands on"
        );
        let service = doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["pids"].as_array().unwrap().iter().any(|p| *p == master))
            .expect("a service holding the master")
            .clone();
        let pids: Vec<u32> = service["pids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(pids, members, "master and both workers, round {round}");
        assert_eq!(service["leader_pid"], master);
        assert_eq!(service["name"], "nginx");
        seen_services.push((pids, service["service_findings"].clone()));
    }
    assert!(
        seen_services.windows(2).all(|w| w[0] == w[1]),
        "{seen_services:?}"
    );

    // The table's column reads the same.
    let local = format!("127.0.0.1:{port}");
    let peer = clients[0].local_addr().unwrap().to_string();
    assert_eq!(table_cell(port, &local, &peer), "30/10/3");
    assert_eq!(
        table_cell(port, &local, "0.0.0.0:*"),
        "30/10/3",
        "the listener"
    );
}
