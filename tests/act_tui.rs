//! End to end as root: the live view in a tmux pane acts on a loopback connection of this test. `E` then `y`
//! turns keepalive on (the test's own fd sees 60/10/5), `K` then `n` leaves the connection alone, `K` then `y`
//! resets it (the peer reads ECONNRESET).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const WAIT: Duration = Duration::from_secs(15);

/// A tmux server of our own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &[&str]) -> Tmux {
        let tmux = Tmux {
            socket: format!("kwatch-act-{}", std::process::id()),
        };
        let mut args = vec!["new-session", "-d", "-s", "main", "-x", "160", "-y", "40"];
        args.extend_from_slice(cmd);
        let out = tmux.run(&args);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (install tmux)")
    }

    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", "main", "-l", key]);
        assert!(out.status.success());
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.run(&["capture-pane", "-p", "-t", "main"]);
            let screen = String::from_utf8_lossy(&out.stdout).into_owned();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn k_and_e_in_the_live_view_ask_then_act() {
    if !can_use_netns("k_and_e_in_the_live_view_ask_then_act") {
        return;
    }
    let (listener, client, mut server) = connected_pair(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let cport = client.local_addr().unwrap().port();
    let lport = listener.local_addr().unwrap().port();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Both ports: an ephemeral port is shared by connections to different peers, and once the client is gone
    // another test's connection may take its port (under load it did, and its TIME-WAIT row stayed listed).
    let (sport, dport) = (cport.to_string(), lport.to_string());
    let tmux = Tmux::start(&[
        "env",
        "NO_COLOR=1",
        KWATCH,
        "--sport",
        &sport,
        "--dport",
        &dport,
    ]);
    let row = format!("127.0.0.1:{cport}");
    let ours = |s: &str| {
        s.lines()
            .any(|l| l.contains(&row) && l.contains(&format!("127.0.0.1:{lport}")))
    };
    tmux.wait_for("the client's row", ours);

    tmux.press("E");
    tmux.wait_for("the keepalive question", |s| {
        s.contains("keepalive on (idle 60s intvl 10s cnt 5) for 1 socket of ESTAB")
    });
    tmux.press("y");
    tmux.wait_for("the keepalive outcome", |s| {
        s.contains("keepalive on for 1 of 1 (idle 60s intvl 10s cnt 5, read back)")
    });
    let sock = socket2::SockRef::from(&client);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 5);

    tmux.press("K");
    tmux.wait_for("the kill question", |s| {
        s.contains(&format!("kill 1 socket of ESTAB {row} -> "))
    });
    tmux.press("n");
    tmux.wait_for("the refusal", |s| s.contains("nothing done"));
    (&client).write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    server.read_exact(&mut buf).unwrap();

    tmux.press("K");
    tmux.wait_for("the kill question again", |s| {
        s.contains("kill 1 socket of")
    });
    tmux.press("y");
    tmux.wait_for("the kill outcome", |s| {
        s.contains("killed 1 of 1; the owning program keeps a dead fd")
    });
    let err = server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    tmux.wait_for("the row to leave", |s| !ours(s));
    tmux.press("q");
}
