//! The command line of keepalive features: --no-sockopt, --watch and --ndjson validation, and a watch that
//! starts and prints one JSON object per line.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const KWATCH: &str = env!("CARGO_BIN_EXE_kwatch");

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(KWATCH).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn watch_flags_are_validated() {
    fails_with(&["--ndjson"], "--watch");
    fails_with(&["--watch", "--once"], "cannot be used with");
    fails_with(&["--watch", "--interval", "10ms"], "at least 100ms");
}

#[test]
fn no_sockopt_is_accepted_with_once() {
    let out = Command::new(KWATCH)
        .args(["--once", "--json", "--no-sockopt", "--port", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["held_dead_sockets"].as_array().unwrap().is_empty());
}

/// Kills the child by pid when the test ends, however it ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_ndjson_starts_with_a_start_event() {
    let mut child = Kill(
        Command::new(KWATCH)
            .args(["--watch", "--ndjson", "--interval", "100ms", "--port", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a first line within 30 s");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "start", "{line}");
    assert_eq!(v["sockets"], 0, "nothing on port 1");
    assert!(v["destroy_events"].is_boolean());
    drop(child);
}
