//! The binary as a user meets it: bad arguments, pipes, hostile process names, missing pids.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::Command as Cmd;
use common::*;
use predicates::prelude::*;

#[test]
fn bad_arguments_exit_2_with_one_clear_line() {
    for (args, message) in [
        (
            &["--once", "--port", "70000"][..],
            "invalid port '70000': must be 1-65535",
        ),
        (
            &["--once", "--port", "abc"][..],
            "invalid port 'abc': must be 1-65535",
        ),
        (
            &["--once", "--pid", "0"][..],
            "invalid pid '0': must be a positive integer",
        ),
        (
            &["--once", "--pid=-1"][..],
            "invalid pid '-1': must be a positive integer",
        ),
        (&["--once", "--state", "bogus"][..], "unknown state 'bogus'"),
        (&["--interval", "10ms"][..], "must be at least 100ms"),
        (&["--json"][..], "--once"),
    ] {
        Cmd::new(KWATCH)
            .args(args)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn a_pid_that_does_not_exist_gives_an_empty_result_and_a_warning() {
    // Pids are at most 2^22 on Linux, so this one cannot exist.
    let out = Cmd::new(KWATCH)
        .args(["--once", "--json", "--pid", "99999999"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(sockets(&doc).is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no process with pid '99999999'"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // Enough sockets that the output is larger than the pipe buffer and the reader is gone long before the end.
    let listeners: Vec<TcpListener> = (0..300)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    for args in [&["--once", "--json"][..], &["--once"][..]] {
        let mut child = Command::new(KWATCH)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 10];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{args:?}: broken pipe exits 0, got {status}; stderr: {stderr}"
        );
        assert_eq!(stderr, "", "{args:?}: nothing on stderr");
    }
    drop(listeners);
}

#[test]
fn a_process_named_with_an_escape_sequence_does_not_reach_the_terminal_raw() {
    // The kernel names a process after the file it executes, so a link named with ESC and BEL gives a comm
    // of "\x1b]0;pwned\x07"-like bytes, as PR_SET_NAME would. The child inherits our listener.
    let dir = tempfile::tempdir().unwrap();
    // U+202E (right-to-left override) would reverse the rest of the line on screen.
    let evil = dir.path().join("\x1b]0;pwned\x07\u{202e}");
    std::os::unix::fs::symlink("/bin/sleep", &evil).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let lport = listener.local_addr().unwrap().port().to_string();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(&evil);
    // Long enough to outlive every kwatch run below on a loaded machine (one took 23 s); the guard kills it.
    cmd.arg("600").stdin(Stdio::null());
    // The listener is close-on-exec (std opens every fd so); the child keeps it under the same number once the
    // flag is cleared. (Moving it to a fixed number with dup2 fails when it already has that number: dup2(3, 3)
    // returns 3 and leaves close-on-exec set, so the child would own no socket.)
    // SAFETY: fcntl is async-signal-safe and only changes the flags of an fd this process owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let child = cmd.spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);
    let child_pid = child.0.id().to_string();
    drop(listener); // the child is now the only owner, so the table's process column names it

    let table = poll(Duration::from_secs(5), || {
        let out = kwatch(None, &["--once", "--port", &lport, "--color", "always"]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.contains(&child_pid).then_some(text)
    })
    .unwrap_or_else(|| {
        let out = kwatch(None, &["--once", "--port", &lport]);
        panic!(
            "child {child_pid} not listed: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(table.contains("pwned"), "{table}");
    assert!(
        !table.contains("\x1b]0;"),
        "raw OSC sequence reached the output: {table:?}"
    );
    assert!(
        !table.contains('\x07'),
        "raw BEL reached the output: {table:?}"
    );
    assert!(
        table.contains("\\x1b]0;pwned") || table.contains("\\e]0;pwned"),
        "escaped form shown: {table}"
    );
    assert!(
        !table.contains('\u{202e}'),
        "raw RLO reached the output: {table:?}"
    );
    assert!(
        table.contains("\\x07\\u{202e}"),
        "escaped RLO shown: {table}"
    );

    let out = kwatch(None, &["--once", "--json", "--port", &lport]);
    let raw = String::from_utf8(out.stdout).unwrap();
    assert!(
        !raw.contains('\u{202e}') && raw.contains("pwned\\u0007\\u202e"),
        "JSON escapes the bidi control as well: {raw}"
    );
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let procs = doc["processes"].as_array().unwrap();
    let p = procs
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(child.0.id())))
        .expect("child in processes");
    assert_eq!(
        p["comm"], "\x1b]0;pwned\x07\u{202e}",
        "JSON keeps the raw name, escaped by JSON itself"
    );
}

#[test]
fn help_and_version_work() {
    Cmd::new(KWATCH)
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--once"));
    Cmd::new(KWATCH)
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("kwatch"));
}

#[test]
fn the_interactive_view_without_a_terminal_says_to_use_once() {
    Cmd::new(KWATCH)
        .write_stdin("")
        .timeout(Duration::from_secs(10))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--once"));
}
