//! `kwatch record` and `kwatch replay` on real loopback connections: a recorded lifecycle (CLOSE_WAIT, a socket
//! killed with `kwatch kill`) replays as the live snapshots showed it, byte for byte apart from the documented
//! clock fields; `kill -9` of the recorder loses at most the refresh being written and a restarted recorder
//! continues the same store; a store of a newer format or a damaged one is a clear error naming the file;
//! retention by age and size while recording removes old shards and nothing else; a full disk is an error line
//! and a non-zero exit; `kwatch serve --record` records its collections, with scrapes and without; deaths are
//! recorded from the subscription of the namespace they happen in (`--netns`, and `--all-netns` with a namespace
//! made after the start).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A running `kwatch record`, killed and reaped on drop.
struct Recorder {
    child: Child,
    /// Its stderr, a file: a pipe nobody reads could fill with warnings and stop it.
    stderr: PathBuf,
}

impl Recorder {
    fn start(dir: &Path, log: &Path, extra: &[&str]) -> Recorder {
        let stderr = log.with_extension(format!("stderr{}", std::process::id()));
        let child = Command::new(KWATCH)
            .arg("record")
            .arg(dir)
            .args(["--interval", "200ms", "--json-log"])
            .arg(log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start kwatch record");
        Recorder { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status, self.stderr())
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The live documents the recorder wrote, one per refresh (a line cut short by `kill -9` left out).
fn logged(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn replay(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(KWATCH)
        .arg("replay")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `kwatch replay DIR --once --json --at @MS`, parsed.
fn replay_json(dir: &Path, at_ms: u64) -> Value {
    let out = replay(dir, &["--once", "--json", "--at", &format!("@{at_ms}")]);
    assert!(
        out.status.success(),
        "replay at {at_ms}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The replayed document equals the live one apart from `elapsed_us` (the reader's own run time) and the
/// `replay` member it adds.
fn assert_same_document(live: &Value, replayed: &Value) {
    let t = &live["taken_at_unix_ms"];
    assert_eq!(replayed["replay"]["recorded_at_unix_ms"], *t);
    let strip = |doc: &Value| {
        let mut doc = doc.clone();
        let obj = doc.as_object_mut().unwrap();
        obj.remove("elapsed_us");
        obj.remove("replay");
        doc
    };
    assert_eq!(strip(replayed), strip(live), "the document of {t}");
}

fn events(dir: &Path) -> Vec<Value> {
    let out = replay(dir, &["--events", "--ndjson"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pair() -> (TcpListener, TcpStream, TcpStream, u16, u16) {
    let (listener, client, server) = connected_pair(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let port = listener.local_addr().unwrap().port();
    let cport = client.local_addr().unwrap().port();
    (listener, client, server, port, cport)
}

/// The first logged document for which `f` holds.
fn wait_logged(log: &Path, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    poll(Duration::from_secs(30), || {
        logged(log).into_iter().find(|d| f(d))
    })
    .unwrap_or_else(|| panic!("never recorded: {what}"))
}

/// A 256 KiB tmpfs, mostly filled: a store in it fills it after a few frames of 600 sockets. Unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(tmp: &Path) -> SmallDisk {
        let mnt = tmp.join("small");
        std::fs::create_dir(&mnt).unwrap();
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=256k",
                "tmpfs",
                mnt.to_str().unwrap(),
            ],
        );
        let disk = SmallDisk(mnt);
        // Filler leaves a little room, so that the store starts and then meets the full disk: the first refresh
        // of the tests' 600 sockets took 7.9 kB (two 4 KiB pages) and the store grew by ~0.7 kB a second after
        // it, so 16 KiB fill in ~10 s (56 KiB took over 60 s on a loaded machine).
        let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
        filler.write_all(&vec![7u8; 240 << 10]).unwrap();
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// 300 loopback connections to one listener (600 sockets): frames big enough to fill a small disk quickly.
fn many_connections() -> ((TcpListener, Vec<(TcpStream, TcpStream)>), u16) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let lport = listener.local_addr().unwrap().port();
    let held = (0..300)
        .map(|_| {
            let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (s, _) = listener.accept().unwrap();
            (c, s)
        })
        .collect();
    ((listener, held), lport)
}

#[test]
fn a_recorded_lifecycle_replays_as_the_live_snapshots_showed_it() {
    if !can_use_netns("a_recorded_lifecycle_replays_as_the_live_snapshots_showed_it") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    // A: its client will close, leaving the server side in CLOSE_WAIT. B: its client socket is killed.
    let (_la, client_a, _server_a, port_a, cport_a) = pair();
    let (_lb, client_b, _server_b, port_b, cport_b) = pair();
    let ports = format!("{port_a},{port_b}");
    let rec = Recorder::start(&dir, &log, &["--port", &ports, "--close-wait-after", "1s"]);
    let me = u64::from(std::process::id());

    let established = wait_logged(&log, "both connections", |d| {
        find_socket(d, cport_a, port_a).is_some() && find_socket(d, cport_b, port_b).is_some()
    });
    drop(client_a);
    let close_wait = wait_logged(&log, "A in CLOSE_WAIT with its finding", |d| {
        find_socket(d, port_a, cport_a)
            .is_some_and(|s| s["state"] == "close-wait" && s["findings"][0]["code"] == "close_wait")
    });
    let out = kwatch(
        None,
        &[
            "kill",
            "--yes",
            &format!("sport:{cport_b}"),
            &format!("dport:{port_b}"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let killed = wait_logged(&log, "B's client gone", |d| {
        d["taken_at_unix_ms"].as_u64() > close_wait["taken_at_unix_ms"].as_u64()
            && find_socket(d, cport_b, port_b).is_none()
    });
    // The fd is closed: the kernel frees the socket and says so; replay reads it while the recorder writes.
    let cookie_b = find_socket(&established, cport_b, port_b).unwrap()["cookie"].clone();
    drop(client_b);
    let destroy = poll(Duration::from_secs(30), || {
        events(&dir)
            .into_iter()
            .find(|e| e["event"] == "destroy" && e["cookie"] == cookie_b)
    })
    .expect("the killed socket's death is recorded");
    let (status, stderr) = rec.stop();
    assert!(status.success(), "recorder: {status} {stderr}");

    // The chosen moments show each state, owner and finding as the live snapshot did.
    let at = |doc: &Value| replay_json(&dir, doc["taken_at_unix_ms"].as_u64().unwrap());
    let r = at(&established);
    let b = find_socket(&r, cport_b, port_b).unwrap();
    assert_eq!(b["state"], "established");
    assert_eq!(b["owners"][0]["pid"], me);
    let r = at(&close_wait);
    let a = find_socket(&r, port_a, cport_a).unwrap();
    assert_eq!(a["state"], "close-wait");
    assert_eq!(a["owners"][0]["pid"], me);
    assert_eq!(a["findings"][0]["code"], "close_wait");
    assert!(find_socket(&at(&killed), cport_b, port_b).is_none());
    // Every recorded refresh replays to the live document of that refresh.
    let all = logged(&log);
    assert!(all.len() >= 4, "{} refreshes", all.len());
    for live in &all {
        assert_same_document(live, &at(live));
    }
    // The event window: A's change of state, B leaving the dump when killed, and B's death with its cause.
    let ev = events(&dir);
    let state_a = ev
        .iter()
        .find(|e| e["event"] == "state" && e["local_port"] == port_a && e["peer_port"] == cport_a);
    let state_a = state_a.unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(
        (&state_a["from"], &state_a["to"]),
        (&"established".into(), &"close-wait".into())
    );
    assert!(
        ev.iter()
            .any(|e| e["event"] == "state" && e["cookie"] == cookie_b && e["to"] == "close"),
        "{ev:?}"
    );
    // Killed with no probe or retransmit outstanding: nothing in the kernel's last word shows what ended it, and
    // the live feed says `unknown` (causes only on evidence); replay says what the live feed said.
    assert_eq!(destroy["cause"], "unknown", "{destroy}");
    assert_eq!(destroy["last_state"], "established", "{destroy}");
    assert_eq!(destroy["owners"][0]["pid"], me);
    // The window's edges are respected, and the human format is the --watch one.
    let t_est = established["taken_at_unix_ms"].as_u64().unwrap();
    let out = replay(
        &dir,
        &[
            "--events",
            "--from",
            &format!("@{t_est}"),
            "--to",
            &format!("@{}", killed["taken_at_unix_ms"].as_u64().unwrap()),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().next().unwrap().contains(" watching "),
        "{text}"
    );
    assert!(text.contains("established -> close-wait"), "{text}");
    assert!(
        !text.contains(&format!("destroy 127.0.0.1:{cport_b} ")),
        "B's death came after the window: {text}"
    );
}

#[test]
fn kill_9_loses_at_most_the_refresh_being_written_and_a_restart_continues_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    let (_l, _client, _server, port, _) = pair();
    let port = port.to_string();
    let mut sessions: Vec<Vec<u64>> = Vec::new();
    for round in 0..4 {
        let before = logged(&log).len();
        let rec = Recorder::start(&dir, &log, &["--port", &port]);
        // Killed at a different point of the refresh cycle each round.
        let want = before + 3 + round;
        poll(Duration::from_secs(30), || {
            (logged(&log).len() >= want).then_some(())
        })
        .expect("the recorder records");
        std::thread::sleep(Duration::from_millis(37 * round as u64));
        rec.kill9();
        let times: Vec<u64> = logged(&log)[before..]
            .iter()
            .map(|d| d["taken_at_unix_ms"].as_u64().unwrap())
            .collect();
        sessions.push(times);
        // Everything before the last refresh of every session so far reads back, to the same document.
        let all = logged(&log);
        for session in &sessions {
            for t in &session[..session.len() - 1] {
                let live = all.iter().find(|d| d["taken_at_unix_ms"] == *t).unwrap();
                assert_same_document(live, &replay_json(&dir, *t));
            }
        }
    }
    // One store: the restarted recorders appended to it (a new shard only when an hour boundary passed).
    let shards = std::fs::read_dir(&dir).unwrap().count();
    assert!((1..=2).contains(&shards), "{shards} shards");
    // The event window spans the sessions, each restart told as such.
    let ev = events(&dir);
    let resumed = ev
        .iter()
        .filter(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("resumes"))
        .count();
    assert_eq!(resumed, 3, "{ev:?}");
}

#[test]
fn a_store_of_a_newer_version_or_a_damaged_one_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    let (_l, _client, _server, port, _) = pair();
    let rec = Recorder::start(&dir, &log, &["--port", &port.to_string()]);
    poll(Duration::from_secs(30), || {
        (logged(&log).len() >= 3).then_some(())
    })
    .unwrap();
    let (status, stderr) = rec.stop();
    assert!(status.success(), "{stderr}");
    let shard: PathBuf = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = shard.file_name().unwrap().to_str().unwrap().to_string();
    let good = std::fs::read(&shard).unwrap();
    let t = logged(&log)[1]["taken_at_unix_ms"].as_u64().unwrap();
    let at = format!("@{t}");
    let fails_with = |needle: &str| {
        // The table, the events, and the live view (which says so before it takes the terminal).
        for args in [
            &["--once", "--at", &at][..],
            &["--events"][..],
            &["--at", &at][..],
        ] {
            let out = replay(&dir, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&name) && stderr.contains(needle),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    };
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&shard, &newer).unwrap();
    fails_with("newer kwatch (store format version 7");
    // A recorder refuses to append to it too, and so does the exporter before it serves.
    for cmd in [
        &["record"][..],
        &["serve", "--listen", "127.0.0.1:0", "--record"][..],
    ] {
        let out = Command::new(KWATCH)
            .args(cmd)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {stderr}");
        assert!(
            stderr.contains(&name) && stderr.contains("newer kwatch"),
            "{cmd:?}: {stderr}"
        );
    }

    std::fs::write(&shard, b"GIF89a, not a recording").unwrap();
    fails_with("not a kwatch recording");

    // One bit flipped in the first entry's frame: its checksum fails and entries follow it.
    let mut flipped = good.clone();
    flipped[16 + 21 + 5] ^= 0x04;
    std::fs::write(&shard, &flipped).unwrap();
    fails_with("damaged entry at byte 16: checksum mismatch");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = replay(&empty, &["--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no recording in it"), "{stderr}");
    let out = replay(&tmp.path().join("missing"), &["--once"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_full_disk_is_an_error_line_and_a_non_zero_exit_and_the_store_stays_readable() {
    if !can_use_netns(
        "a_full_disk_is_an_error_line_and_a_non_zero_exit_and_the_store_stays_readable",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = SmallDisk::mount(tmp.path());
    let dir = small.0.join("store");
    let log = tmp.path().join("live.ndjson");
    let (_l, _c, _s, port, _) = pair();
    let (_many, lport) = many_connections();
    let ports = format!("{port},{lport}");
    let mut rec = Recorder::start(&dir, &log, &["--port", &ports]);
    let status = poll(Duration::from_secs(120), || rec.child.try_wait().unwrap())
        .expect("the recorder stops when the disk is full");
    let stderr = rec.stderr();
    assert_eq!(status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kwatch: cannot record") && last.contains("No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // What was recorded before reads back.
    let out = replay(&dir, &["--once", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_peer_that_vanished_behind_a_veth_link_replays_with_its_probes_and_its_death() {
    if !can_use_netns(
        "a_peer_that_vanished_behind_a_veth_link_replays_with_its_probes_and_its_death",
    ) {
        return;
    }
    let pair = NetnsPair::new();
    const PORT: u16 = 9117;
    let listener = in_netns(&pair.b, || TcpListener::bind((ADDR_B, PORT)).unwrap());
    let client = in_netns(&pair.a, || {
        let c = TcpStream::connect((ADDR_B, PORT)).unwrap();
        // First probe after 3 s idle, then every 2 s, 3 unanswered: the kernel resets it about 9 s after the cut.
        set_keepalive(&c, 3, 2, 3);
        c
    });
    let (_server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    // Recorded from the host's namespace: the death is heard only by a subscription in namespace a.
    let rec = Recorder::start(
        &dir,
        &log,
        &["--netns", &pair.a, "--dport", &PORT.to_string()],
    );
    wait_logged(&log, "the connection", |d| {
        find_socket(d, cport, PORT).is_some()
    });
    pair.cut_b();
    let probes = |n: u64| {
        move |d: &Value| {
            find_socket(d, cport, PORT)
                .is_some_and(|s| s["timer"]["kind"] == "keepalive" && s["timer"]["count"] == n)
        }
    };
    let one = wait_logged(&log, "one unanswered probe", probes(1));
    let two = wait_logged(&log, "two unanswered probes", probes(2));
    let reset = wait_logged(&log, "the kernel's reset", |d| {
        d["taken_at_unix_ms"].as_u64() > two["taken_at_unix_ms"].as_u64()
            && find_socket(d, cport, PORT).is_none()
    });
    let cookie = find_socket(&one, cport, PORT).unwrap()["cookie"].clone();
    drop(client);
    let death = poll(Duration::from_secs(30), || {
        events(&dir)
            .into_iter()
            .find(|e| e["event"] == "destroy" && e["cookie"] == cookie)
    })
    .expect("the death is recorded");
    let (status, stderr) = rec.stop();
    assert!(status.success(), "{stderr}");
    for (live, n) in [(&one, 1), (&two, 2)] {
        let replayed = replay_json(&dir, live["taken_at_unix_ms"].as_u64().unwrap());
        assert_same_document(live, &replayed);
        let s = find_socket(&replayed, cport, PORT).unwrap();
        assert_eq!(s["timer"]["count"], n, "{s}");
        assert_eq!(s["owners"][0]["pid"], u64::from(std::process::id()));
    }
    let gone = replay_json(&dir, reset["taken_at_unix_ms"].as_u64().unwrap());
    assert!(find_socket(&gone, cport, PORT).is_none());
    assert_eq!(death["cause"], "keepalive_exhausted", "{death}");
    assert_eq!(death["probes"], 3, "{death}");
    assert_eq!(death["last_state"], "established", "{death}");
}

/// `kwatch replay DIR --once --json` (the last refresh), parsed; `None` while nothing is recorded.
fn replay_last(dir: &Path) -> Option<Value> {
    let out = replay(dir, &["--once", "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn serve_record_records_the_exporters_collections_with_or_without_scrapes() {
    use common::serve::{http, start_kwatch};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (_l, client, _server, port, cport) = pair();
    let (mut kwatch, addr, _lines) = start_kwatch(&[
        "--record",
        dir.to_str().unwrap(),
        "--record-interval",
        "200ms",
        "--port",
        &port.to_string(),
    ]);
    // A scrape and the recording see the same connection.
    let (status, _, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"kwatch_sockets{state="established"} 2"#),
        "{body}"
    );
    let state = |doc: &Value| {
        find_socket(doc, port, cport).map(|s| s["state"].as_str().unwrap().to_string())
    };
    poll(Duration::from_secs(30), || {
        replay_last(&dir).filter(|d| state(d).as_deref() == Some("established"))
    })
    .expect("the connection recorded");
    // No scrape from here on: the recording goes on at its own interval.
    drop(client);
    let doc = poll(Duration::from_secs(30), || {
        replay_last(&dir).filter(|d| state(d).as_deref() == Some("close-wait"))
    })
    .expect("CLOSE_WAIT recorded without a scrape");
    assert_eq!(
        find_socket(&doc, port, cport).unwrap()["owners"][0]["pid"],
        u64::from(std::process::id())
    );
    let ev = events(&dir);
    assert!(
        ev.iter().any(|e| e["event"] == "state"
            && e["local_port"] == port
            && e["from"] == "established"
            && e["to"] == "close-wait"),
        "{ev:?}"
    );
    kwatch.signal(libc::SIGTERM);
    let status = kwatch
        .wait_exit(Duration::from_secs(30))
        .expect("serve stops on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn serve_record_on_a_full_disk_stops_with_an_error_line_and_a_non_zero_exit() {
    if !can_use_netns("serve_record_on_a_full_disk_stops_with_an_error_line_and_a_non_zero_exit") {
        return;
    }
    use common::serve::start_kwatch;
    let tmp = tempfile::tempdir().unwrap();
    let small = SmallDisk::mount(tmp.path());
    let dir = small.0.join("store");
    let (_many, lport) = many_connections();
    let (mut kwatch, _addr, lines) = start_kwatch(&[
        "--record",
        dir.to_str().unwrap(),
        "--record-interval",
        "100ms",
        "--min-interval",
        "0",
        "--port",
        &lport.to_string(),
    ]);
    let status = kwatch
        .wait_exit(Duration::from_secs(120))
        .expect("serve stops when the recording meets a full disk");
    let stderr: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(2), "{stderr:?}");
    let last = stderr.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("kwatch: cannot record") && last.contains("No space left on device"),
        "{stderr:?}"
    );
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "{stderr:?}");
    let out = replay(&dir, &["--once", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Shards written through the library at chosen times (a frame each, `host` padded with `pad` bytes that do not
/// compress), as an older recording left them; their paths, oldest first.
fn old_shards(dir: &Path, times: &[u64], pad: usize) -> Vec<PathBuf> {
    use kwatch::recording::{Recorder, store};
    let keep_all = store::Retention {
        max_age_ms: u64::MAX,
        max_bytes: u64::MAX,
    };
    let (mut recorder, _) = Recorder::open(dir, keep_all).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for &t in times {
        let host: String = (0..pad)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'!' + (seed % 90) as u8)
            })
            .collect();
        let snapshot = kwatch::model::Snapshot {
            taken_at_unix_ms: t,
            host,
            ..Default::default()
        };
        recorder
            .append(std::sync::Arc::new(snapshot), &Default::default(), false)
            .unwrap();
    }
    recorder.sync().unwrap();
    let shards: Vec<PathBuf> = store::list(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(shards.len(), times.len(), "one shard per hour");
    shards
}

/// Records into `dir` with `extra` flags until a refresh of this run is in the store, then stops it.
fn record_a_moment(dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("live.ndjson");
    let rec = Recorder::start(dir, &log, extra);
    let doc = wait_logged(&log, "a refresh", |_| true);
    // Logged before written: wait for the store to have it too (within the 60 s the other recorder tests give a
    // write under load: this wait ran out of 30 s once while two suites ran at once).
    poll(Duration::from_secs(60), || {
        replay_last(dir).filter(|d| d["taken_at_unix_ms"] == doc["taken_at_unix_ms"])
    })
    .expect("the refresh in the store");
    let (status, stderr) = rec.stop();
    assert!(status.success(), "{stderr}");
    kwatch::recording::store::list(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}

#[test]
fn retention_by_age_and_by_size_while_recording_removes_old_data_and_nothing_else() {
    const HOUR: u64 = 3_600_000;
    let now = kwatch::recording::unix_ms();
    let (_l, _c, _s, port, _) = pair();
    let port = port.to_string();

    // By age: hours of three days ago, of 71 h ago (its successor, 30 h ago, is within the 2 days kept), and of
    // 30 and 29 h ago. Only the first is wholly older than two days.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("age");
    let old = old_shards(
        &dir,
        &[
            now - 72 * HOUR,
            now - 71 * HOUR,
            now - 30 * HOUR,
            now - 29 * HOUR,
        ],
        16,
    );
    let after = record_a_moment(&dir, &["--retain", "2d", "--port", &port]);
    assert_eq!(
        after[..3],
        old[1..],
        "only the shard older than 2 days is removed"
    );
    assert_eq!(after.len(), 4, "{after:?}");

    // By size: four shards of about 300 KiB each (1.2 MiB) under --max-size 1M: the oldest goes, and only it.
    let dir = tmp.path().join("size");
    let old = old_shards(
        &dir,
        &[now - 4 * HOUR, now - 3 * HOUR, now - 2 * HOUR, now - HOUR],
        400_000,
    );
    let total: u64 = old
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        total > 1 << 20 && total - std::fs::metadata(&old[0]).unwrap().len() < 1 << 20,
        "{total}"
    );
    let after = record_a_moment(&dir, &["--max-size", "1M", "--port", &port]);
    assert_eq!(after[..3], old[1..], "only the oldest shard is removed");
    assert_eq!(after.len(), 4, "{after:?}");
}

#[test]
fn deaths_in_a_namespace_made_after_the_recorder_started_are_recorded_with_all_netns() {
    if !can_use_netns(
        "deaths_in_a_namespace_made_after_the_recorder_started_are_recorded_with_all_netns",
    ) {
        return;
    }
    const PORT: u16 = 9119;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    let rec = Recorder::start(&dir, &log, &["--all-netns", "--dport", &PORT.to_string()]);
    wait_logged(&log, "a first refresh", |_| true);
    // The namespaces appear after the recorder's first refresh: its feed must subscribe in them as they come.
    let pair = NetnsPair::new();
    let listener = in_netns(&pair.b, || TcpListener::bind((ADDR_B, PORT)).unwrap());
    let client = in_netns(&pair.a, || TcpStream::connect((ADDR_B, PORT)).unwrap());
    let (server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let seen = wait_logged(&log, "the client in the new namespace", |d| {
        find_socket(d, cport, PORT).is_some()
    });
    let cookie = find_socket(&seen, cport, PORT).unwrap()["cookie"].clone();
    assert_eq!(
        find_socket(&seen, cport, PORT).unwrap()["netns"]["name"],
        pair.a.as_str()
    );
    drop(server);
    drop(client);
    let death = poll(Duration::from_secs(30), || {
        events(&dir)
            .into_iter()
            .find(|e| e["event"] == "destroy" && e["cookie"] == cookie)
    })
    .expect("the death in a namespace made after the start is recorded");
    assert_eq!(death["local_port"], cport, "{death}");
    // Heard from the namespace's own subscription: a death the feed only inferred after its bounded wait has no
    // counts (and cause unknown).
    assert!(death["probes"].is_u64(), "{death}");
    let (status, stderr) = rec.stop();
    assert!(status.success(), "{stderr}");
}
