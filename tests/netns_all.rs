//! Live tests as root across network namespaces this test creates: `--all-netns` lists every namespace's sockets
//! with the namespace and its own keepalive sysctls, next to the host's; `--netns` shows one; without privilege,
//! a warning names what could not be entered and kwatch's own namespace is still shown.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A listener and a connected pair on loopback inside namespace `ns` (or the host's with `None`), held by this
/// process: (listener, client, server side, listening port).
fn loopback_set(ns: Option<&str>) -> (TcpListener, TcpStream, TcpStream, u16) {
    let make = || {
        let (l, c, s) = connected_pair((Ipv4Addr::LOCALHOST, 0).into());
        let port = l.local_addr().unwrap().port();
        (l, c, s, port)
    };
    match ns {
        Some(ns) => in_netns(ns, make),
        None => make(),
    }
}

fn inode_of(path: &str) -> u64 {
    rustix::fs::stat(path).unwrap().st_ino
}

/// The namespace entry of a kwatch document with this name.
fn namespace<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("namespace '{name}' listed: {}", doc["namespaces"]))
}

/// The sockets of a document that are these sockets of ours (told by inode: ports repeat across namespaces).
fn ours<'a>(doc: &'a Value, set: &(TcpListener, TcpStream, TcpStream, u16)) -> Vec<&'a Value> {
    let inodes = [
        rustix::fs::fstat(&set.0).unwrap().st_ino,
        rustix::fs::fstat(&set.1).unwrap().st_ino,
        rustix::fs::fstat(&set.2).unwrap().st_ino,
    ];
    sockets(doc)
        .iter()
        .filter(|s| inodes.iter().any(|i| s["inode"] == *i))
        .collect()
}

/// Two namespaces with different keepalive sysctls, each with a loopback listener and connection.
struct World {
    pair: NetnsPair,
    a: (TcpListener, TcpStream, TcpStream, u16),
    b: (TcpListener, TcpStream, TcpStream, u16),
}

fn world() -> World {
    let pair = NetnsPair::new();
    for (ns, time, intvl, probes) in [(&pair.a, "600", "20", "4"), (&pair.b, "900", "30", "6")] {
        pair.sysctl(ns, "net.ipv4.tcp_keepalive_time", time);
        pair.sysctl(ns, "net.ipv4.tcp_keepalive_intvl", intvl);
        pair.sysctl(ns, "net.ipv4.tcp_keepalive_probes", probes);
    }
    let a = loopback_set(Some(&pair.a));
    let b = loopback_set(Some(&pair.b));
    World { pair, a, b }
}

#[test]
fn all_netns_lists_each_namespace_with_its_sockets_and_settings_and_the_hosts_own() {
    if !can_use_netns(
        "all_netns_lists_each_namespace_with_its_sockets_and_settings_and_the_hosts_own",
    ) {
        return;
    }
    let w = world();
    let host = loopback_set(None);
    let doc = kwatch_json(None, &["--all-netns"]);
    let me = std::process::id() as u64;
    let host_inode = inode_of("/proc/self/ns/net");

    for (name, set, want) in [
        (&w.pair.a, &w.a, (600, 20, 4)),
        (&w.pair.b, &w.b, (900, 30, 6)),
    ] {
        let ns = namespace(&doc, name);
        let inode = inode_of(&format!("/run/netns/{name}"));
        assert_eq!(ns["inode"], inode, "{ns}");
        assert_eq!(ns["current"], false);
        assert!(ns["error"].is_null(), "{ns}");
        let settings = &ns["settings"];
        let got = (
            settings["tcp_keepalive_time_s"].as_u64().unwrap(),
            settings["tcp_keepalive_intvl_s"].as_u64().unwrap(),
            settings["tcp_keepalive_probes"].as_u64().unwrap(),
        );
        assert_eq!(got, want, "{name}'s own sysctls, read from inside it");
        // Listener, client and server side: all three in this namespace, owned by this process.
        let socks = ours(&doc, set);
        let states: Vec<&str> = socks.iter().map(|s| s["state"].as_str().unwrap()).collect();
        assert_eq!(socks.len(), 3, "{name}: {states:?}");
        for s in &socks {
            assert_eq!(s["netns"]["name"], name.as_str(), "{s}");
            assert_eq!(s["netns"]["inode"], inode, "{s}");
            assert!(
                s["owners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["pid"] == me),
                "{s}"
            );
            // ESTABLISHED sockets take their keepalive defaults from their own namespace.
            if s["state"] == "established" {
                assert_eq!(s["keepalive"]["idle_s"], want.0, "{s}");
                assert_eq!(s["keepalive"]["cnt"], want.2, "{s}");
            }
        }
        assert!(ns["sockets"].as_u64().unwrap() >= 3, "{ns}");
    }

    // The host's own listener and connection, in the current namespace listed first.
    let own = &doc["namespaces"][0];
    assert_eq!(own["current"], true, "{own}");
    assert_eq!(own["inode"], host_inode);
    let socks = ours(&doc, &host);
    assert_eq!(socks.len(), 3, "host sockets listed");
    assert!(
        socks.iter().all(|s| s["netns"]["inode"] == host_inode),
        "{socks:?}"
    );
    // The snapshot's settings stay the host's.
    assert_eq!(doc["settings"], own["settings"]);
    // Each namespace once.
    let mut inodes: Vec<u64> = doc["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["inode"].as_u64().unwrap())
        .collect();
    let n = inodes.len();
    inodes.sort_unstable();
    inodes.dedup();
    assert_eq!(inodes.len(), n);
}

#[test]
fn netns_by_name_or_path_shows_only_that_namespace() {
    if !can_use_netns("netns_by_name_or_path_shows_only_that_namespace") {
        return;
    }
    let w = world();
    let host = loopback_set(None);
    let path = format!("/run/netns/{}", w.pair.a);
    for spec in [w.pair.a.as_str(), path.as_str()] {
        let doc = kwatch_json(None, &["--netns", spec]);
        assert_eq!(ours(&doc, &w.a).len(), 3, "{spec}: a's sockets");
        assert!(ours(&doc, &w.b).is_empty(), "{spec}: none of b's");
        assert!(ours(&doc, &host).is_empty(), "{spec}: none of the host's");
        assert!(
            sockets(&doc)
                .iter()
                .all(|s| s["netns"]["name"] == w.pair.a.as_str()),
            "{spec}: every socket in a (named even when given as a path)"
        );
        let namespaces = doc["namespaces"].as_array().unwrap();
        assert_eq!(namespaces.len(), 1, "{spec}");
        assert_eq!(
            doc["settings"]["tcp_keepalive_time_s"], 600,
            "{spec}: a's sysctls are the snapshot's"
        );
        assert_eq!(doc["settings"]["tcp_keepalive_probes"], 4);
    }
    let out = kwatch(
        None,
        &["--once", "--json", "--netns", "kwatch-no-such-namespace"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open network namespace '/run/netns/kwatch-no-such-namespace'"),
        "{err}"
    );
}

/// A child process in a fresh unnamed network namespace (`unshare -n`), killed on drop.
struct Unshared(Child);

impl Drop for Unshared {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_unnamed_namespace_is_found_through_its_process_and_the_table_names_namespaces() {
    if !can_use_netns(
        "an_unnamed_namespace_is_found_through_its_process_and_the_table_names_namespaces",
    ) {
        return;
    }
    let child = Unshared(
        Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux)"),
    );
    let pid = child.0.id();
    let path = format!("/proc/{pid}/ns/net");
    // unshare execs sleep once the namespace is made: wait for the namespace to differ from ours.
    let host = inode_of("/proc/self/ns/net");
    let inode = poll(Duration::from_secs(5), || {
        let i = rustix::fs::stat(path.as_str()).ok()?.st_ino;
        (i != host).then_some(i)
    })
    .expect("child entered its own namespace");
    let doc = kwatch_json(None, &["--all-netns"]);
    let ns = doc["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["inode"] == inode)
        .unwrap_or_else(|| panic!("namespace of pid {pid} found: {}", doc["namespaces"]));
    assert!(ns["name"].is_null(), "{ns}");
    assert_eq!(ns["pid"], pid, "{ns}");
    assert!(ns["error"].is_null(), "{ns}");
    assert!(
        ns["settings"]["tcp_keepalive_time_s"].is_u64(),
        "its sysctls were read: {ns}"
    );

    // The table says which namespace each socket is in once there is more than one.
    let w = world();
    let me = std::process::id();
    let out = kwatch(
        None,
        &[
            "--once",
            "--all-netns",
            "--port",
            &w.a.3.to_string(),
            "--pid",
            &me.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    assert!(header.contains("Netns"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!(":{}", w.a.3)))
        .collect();
    assert!(rows.len() >= 3, "{text}");
    assert!(
        rows.iter().filter(|l| l.contains(&w.pair.a)).count() >= 3,
        "a's three sockets name it: {text}"
    );
}

#[test]
fn without_privilege_a_warning_names_the_namespaces_and_the_own_one_is_still_shown() {
    if !can_use_netns(
        "without_privilege_a_warning_names_the_namespaces_and_the_own_one_is_still_shown",
    ) {
        return;
    }
    let w = world();
    let host = loopback_set(None);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", KWATCH])
        .args(["--once", "--json", "--all-netns"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let denied = warnings
        .iter()
        .find(|w| w.starts_with("cannot enter '"))
        .unwrap_or_else(|| panic!("a warning about namespaces not entered: {warnings:?}"));
    assert!(denied.contains("needs root (CAP_SYS_ADMIN)"), "{denied}");
    for name in [&w.pair.a, &w.pair.b] {
        assert!(denied.contains(&format!("'{name}'")), "{denied}");
        let ns = namespace(&doc, name);
        assert!(
            ns["error"]
                .as_str()
                .unwrap()
                .contains("operation not permitted"),
            "{ns}"
        );
        assert_eq!(ns["sockets"], 0);
    }
    assert!(
        stderr.contains("kwatch: warning: cannot enter '"),
        "{stderr}"
    );
    // The rest is still shown: kwatch's own namespace, with the host's sockets.
    assert_eq!(ours(&doc, &host).len(), 3);
    assert!(ours(&doc, &w.a).is_empty());
}

#[test]
fn root_is_never_told_that_something_needs_root() {
    if !can_use_netns("root_is_never_told_that_something_needs_root") {
        return;
    }
    let _w = world();
    // Some namespaces (PID 1's here, in a container) are closed even to root: the warning must give the real
    // reason, not advice root cannot follow.
    let doc = kwatch_json(None, &["--all-netns"]);
    for w in doc["warnings"].as_array().unwrap() {
        let w = w.as_str().unwrap();
        assert!(!w.contains("needs root"), "{w}");
        assert!(!w.contains("run as root"), "{w}");
    }
    for ns in doc["namespaces"].as_array().unwrap() {
        if let Some(e) = ns["error"].as_str() {
            assert!(!e.contains("needs root"), "{ns}");
        }
    }
}
