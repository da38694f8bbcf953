//! End to end: the real `kwatch` binary in a tmux pane, against loopback sockets this test opened (one left in
//! CLOSE_WAIT). The pane shows the stuck row with its marker, a typed filter narrows the rows, Tab shows the
//! processes, `L` the event log where closing a pair the view had seen shows up as its death, and both `q` and
//! SIGTERM leave the terminal restored (no alternate screen, no raw mode, no mouse).
//!
//! Skipped with a printed reason when tmux is missing, unless the environment variable CI is set (then it fails).
//!
//! As root, the sockets and the first two runs live in a network namespace of the test's own: on a busy host,
//! other programs' connections flooded the event log (500 deaths a second) and pushed the lines the test waits
//! for off the screen.

mod common;

use common::tmux::{Tmux, WAIT, assert_terminal_restored};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

/// Loopback sockets held by this test: a listener, one accepted connection left in CLOSE_WAIT (the peer closed,
/// this side never does), and an unrelated established pair on another port that a filter must hide.
struct Sockets {
    port: u16,
    other_port: u16,
    _listener: TcpListener,
    _close_wait: TcpStream,
    other: (TcpListener, TcpStream, TcpStream),
}

fn open_sockets() -> Sockets {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut accepted, _) = listener.accept().expect("accept");
    drop(client);
    // Wait until the FIN has arrived: a read returns end of stream.
    accepted.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut byte = [0u8; 1];
    assert_eq!(accepted.read(&mut byte).expect("read the peer's FIN"), 0);

    let other = TcpListener::bind("127.0.0.1:0").expect("bind other");
    let other_port = other.local_addr().expect("other addr").port();
    let mut a = TcpStream::connect(("127.0.0.1", other_port)).expect("connect other");
    let (b, _) = other.accept().expect("accept other");
    a.write_all(b"hello").expect("write");
    Sockets {
        port,
        other_port,
        _listener: listener,
        _close_wait: accepted,
        other: (other, a, b),
    }
}

/// The pid of the `kwatch` process whose parent is `parent`, from /proc.
fn kwatch_child(parent: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "kwatch" && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn live_view_in_tmux() {
    let Some(tmux) = Tmux::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is required in CI for the end-to-end TUI test"
        );
        eprintln!("skipping live_view_in_tmux: tmux is not installed");
        return;
    };
    // `ip netns exec` execs kwatch in place: it stays the shell's child, as the SIGTERM run below needs.
    let netns = common::is_root().then(common::NetnsPair::new);
    let sockets = match &netns {
        Some(pair) => common::in_netns(&pair.a, open_sockets),
        None => open_sockets(),
    };
    let (port, other) = (sockets.port, sockets.other_port);
    let bin = env!("CARGO_BIN_EXE_kwatch");
    let exec = match &netns {
        Some(pair) => format!("ip netns exec {} {bin}", pair.a),
        None => bin.to_string(),
    };
    let command = format!("{exec} --close-wait-after 0s --interval 200ms");

    // First run: look, filter, switch view, quit with q.
    tmux.type_text(&command);
    tmux.press("Enter");
    let ours = format!("127.0.0.1:{port} ");
    // One condition for the whole screen: tmux may be captured halfway through a redraw.
    tmux.wait_for(
        "the CLOSE-WAIT row with its stuck marker, and the other pair",
        |s| {
            s.lines()
                .any(|l| l.starts_with('!') && l.contains("CLOSE-WAIT") && l.contains(&ours))
                && s.contains(&format!(":{other} "))
        },
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "the UI runs on the alternate screen"
    );

    tmux.type_text(&format!("/port:{port}"));
    tmux.press("Enter");
    // One condition for the whole screen: tmux may be captured halfway through a redraw.
    tmux.wait_for(
        "the filter to hide the other pair and keep the CLOSE-WAIT row",
        |s| {
            s.contains(&format!("filter: port:{port}"))
                && !s.contains(&format!(":{other} "))
                && s.lines()
                    .any(|l| l.starts_with('!') && l.contains("CLOSE-WAIT") && l.contains(&ours))
        },
    );

    tmux.press("Tab");
    let me = std::process::id().to_string();
    tmux.wait_for("the processes view with this test's pid", |s| {
        s.contains(" Processes ") && s.lines().any(|l| l.split_whitespace().any(|w| w == me))
    });

    // The event log: the feed started, then closing both ends of the other pair (seen before, hidden by the
    // filter, which does not apply to the log) logs their deaths.
    tmux.type_text("L");
    tmux.wait_for("the event log with its start line", |s| {
        s.contains(" Event log ") && s.contains("watching ")
    });
    drop(sockets.other);
    let peer = format!("127.0.0.1:{other} ");
    tmux.wait_for("a death of the closed pair in the log", |s| {
        s.lines().any(|l| l.contains("died:") && l.contains(&peer))
    });
    tmux.type_text("L");
    tmux.wait_for("back in the processes view", |s| s.contains(" Processes "));

    tmux.type_text("q");
    assert_terminal_restored(&tmux, "q");

    // Second run: ended by SIGTERM.
    tmux.type_text("clear");
    tmux.press("Enter");
    tmux.type_text(&command);
    tmux.press("Enter");
    tmux.wait_for("the second run", |s| {
        s.contains(" Connections ") && s.contains("CLOSE-WAIT")
    });
    let shell: u32 = tmux.display("#{pane_pid}").parse().expect("pane pid");
    let pid = kwatch_child(shell).expect("kwatch runs as a child of the pane's shell");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_terminal_restored(&tmux, "SIGTERM");

    // Third run: a CPU budget far below what a refresh costs stretches refreshes (past the interval, up to the
    // 30 s cap), and the header says how often they come, once the first steady refresh has been measured.
    tmux.type_text("clear");
    tmux.press("Enter");
    tmux.type_text(&format!("{bin} --cpu-budget 0.01"));
    tmux.press("Enter");
    tmux.wait_for("the header's stretched refresh pace", |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.contains("s (CPU budget)") || l.contains("s (over CPU budget)"))
    });
    tmux.type_text("q");
    assert_terminal_restored(&tmux, "q after the CPU budget run");
}
