//! End to end: `kwatch replay DIR` in a tmux pane, on a recording `kwatch record` made of loopback sockets this
//! test opened (a connection A, then a second one B). Stepping back and forth changes the rows and the header's
//! recorded time, a typed time jumps there (one before the recording shows its start and says so), the event log
//! at the last refresh shows A's change to CLOSE_WAIT, and `q` leaves the terminal restored.
//!
//! Skipped with a printed reason when tmux is missing, unless the environment variable CI is set (then it fails).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tmux::{Tmux, assert_terminal_restored};
use common::{KWATCH, poll};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kwatch::moment::format_local;
use serde_json::Value;

/// A running `kwatch record`, killed and reaped on drop.
struct Recorder(Child);

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The documents the recorder logged, one per recorded refresh.
fn logged(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_port(doc: &Value, port: u16) -> bool {
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["local_port"] == port)
}

fn time(doc: &Value) -> u64 {
    doc["taken_at_unix_ms"].as_u64().unwrap()
}

#[test]
fn replay_view_in_tmux() {
    let Some(tmux) = Tmux::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is required in CI for the end-to-end replay test"
        );
        eprintln!("skipping replay_view_in_tmux: tmux is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, log) = (tmp.path().join("store"), tmp.path().join("live.ndjson"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_a_server, _) = listener.accept().unwrap();
    let a_port = a.local_addr().unwrap().port();

    let rec = Recorder(
        Command::new(KWATCH)
            .arg("record")
            .arg(&dir)
            .args(["--interval", "300ms", "--port", &port.to_string()])
            .arg("--json-log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wait = |what: &str, ok: &dyn Fn(&[Value]) -> bool| {
        poll(Duration::from_secs(30), || {
            let docs = logged(&log);
            ok(&docs).then_some(())
        })
        .unwrap_or_else(|| panic!("timed out waiting for {what}"));
    };
    wait("A recorded", &|docs| {
        docs.iter().any(|d| has_port(d, a_port))
    });
    let b = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_b_server, _) = listener.accept().unwrap();
    let b_port = b.local_addr().unwrap().port();
    // B in at least six refreshes: more than a second and a half of them.
    wait("B recorded a while", &|docs| {
        docs.iter().filter(|d| has_port(d, b_port)).count() >= 6
    });
    // A's client closes: its server end goes to CLOSE_WAIT, a change the event log shows.
    drop(a);
    wait("A's server end in CLOSE_WAIT", &|docs| {
        docs.iter().any(|d| {
            d["sockets"].as_array().unwrap().iter().any(|s| {
                s["local_port"] == port && s["peer_port"] == a_port && s["state"] == "close-wait"
            })
        })
    });
    drop(rec);
    let docs = logged(&log);
    let first_b = docs.iter().position(|d| has_port(d, b_port)).unwrap();
    assert!(first_b >= 1 && has_port(&docs[first_b - 1], a_port));
    let (before, with_b) = (time(&docs[first_b - 1]), time(&docs[first_b]));
    let stamp = |ms: u64| format_local(ms, &TimeZone::UTC);

    tmux.type_text(&format!(
        "TZ=UTC {KWATCH} replay {} --at @{before}",
        dir.display()
    ));
    tmux.press("Enter");
    let a_row = format!("127.0.0.1:{a_port} ");
    let b_row = format!("127.0.0.1:{b_port} ");
    let shows = |what: &str, ms: u64, b_shown: bool| {
        let header = format!("REPLAY  {}", stamp(ms));
        tmux.wait_for(what, |s| {
            s.lines().next().is_some_and(|l| l.contains(&header))
                && s.contains(&a_row)
                && s.contains(&b_row) == b_shown
        });
    };
    shows("the moment before B", before, false);
    tmux.press("Right");
    shows("the next refresh, with B", with_b, true);
    tmux.press("Left");
    shows("the refresh before again, without B", before, false);

    // A typed time: the last refresh recorded at or before that second.
    let last = time(docs.last().unwrap());
    let typed = Timestamp::from_millisecond(last as i64)
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let second = last - last % 1000;
    let expected = docs
        .iter()
        .map(time)
        .filter(|t| *t <= second)
        .max()
        .unwrap();
    assert!(expected > with_b, "the jump goes somewhere new");
    tmux.type_text("t");
    tmux.type_text(&typed);
    tmux.press("Enter");
    shows("the typed time", expected, true);
    // Before the recording: its first refresh, and a line that says so.
    tmux.type_text("t-2h");
    tmux.press("Enter");
    let screen = tmux.wait_for("the recording's start", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains(&stamp(time(&docs[0]))))
    });
    assert!(
        screen.contains(&format!(
            "the recording starts at {}",
            stamp(time(&docs[0]))
        )),
        "{screen}"
    );
    // An hour on: the last refresh.
    tmux.type_text("}");
    shows("the last refresh", time(docs.last().unwrap()), true);
    // The refresh that first saw A's server end in CLOSE_WAIT: its event log, rebuilt from the refreshes before
    // it, has the change (also when that refresh was recorded as a key frame).
    let closed = docs
        .iter()
        .find(|d| {
            d["sockets"].as_array().unwrap().iter().any(|s| {
                s["local_port"] == port && s["peer_port"] == a_port && s["state"] == "close-wait"
            })
        })
        .map(time)
        .unwrap();
    tmux.type_text(&format!("t@{closed}"));
    tmux.press("Enter");
    shows("the refresh of A's change", closed, true);
    tmux.type_text("L");
    tmux.wait_for("A's change of state in the event log", |s| {
        s.lines()
            .any(|l| l.contains(&format!(":{a_port}")) && l.contains("-> CLOSE-WAIT"))
    });
    tmux.type_text("q");
    assert_terminal_restored(&tmux, "q");
}
