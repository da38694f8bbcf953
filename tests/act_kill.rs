//! `kwatch kill` against real loopback connections, as root: a killed connection is reset (the peer reads
//! ECONNRESET, the owner ECONNABORTED, the socket leaves the dump); `--dry-run`, a refused question, an
//! unprivileged user and a missing terminal destroy nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// A loopback connection of this process: the listener, the client and the server side, and the filter that
/// names exactly the client socket.
struct Conn {
    listener: TcpListener,
    client: TcpStream,
    server: TcpStream,
    filter: Vec<String>,
    cport: u16,
    port: u16,
}

fn conn() -> Conn {
    let (listener, client, server) = connected_pair(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let port = listener.local_addr().unwrap().port();
    let cport = client.local_addr().unwrap().port();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    Conn {
        listener,
        client,
        server,
        filter: vec![format!("sport:{cport}"), format!("dport:{port}")],
        cport,
        port,
    }
}

impl Conn {
    fn listed(&self) -> bool {
        let doc = kwatch_json(None, &["--sport", &self.cport.to_string()]);
        find_socket(&doc, self.cport, self.port).is_some()
    }

    /// The connection still carries data both ways.
    fn assert_alive(&mut self) {
        assert!(self.listed(), "client socket still listed");
        self.client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        self.server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        self.server.write_all(b"pong").unwrap();
        self.client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }

    fn args<'a>(&'a self, head: &[&'a str]) -> Vec<&'a str> {
        let mut args = head.to_vec();
        args.extend(self.filter.iter().map(String::as_str));
        args
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kill_resets_a_real_connection() {
    if !can_use_netns("kill_resets_a_real_connection") {
        return;
    }
    let mut c = conn();
    c.assert_alive();
    let out = kwatch(None, &c.args(&["kill", "--yes"]));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The preview names the socket and its owner, and says what becomes of the owner's fd.
    assert!(stdout.contains("1 socket to kill:"), "{stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", c.cport)),
        "{stdout}"
    );
    assert!(
        stdout.contains("the owning program keeps its file descriptor"),
        "{stdout}"
    );
    let me = std::process::id();
    assert!(
        stdout.contains(&format!(
            "killed   ESTAB 127.0.0.1:{} -> 127.0.0.1:{}",
            c.cport, c.port
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("[{me}]/fd ")), "{stdout}");
    assert!(stdout.contains("killed 1 of 1 socket"), "{stdout}");

    // The peer got a reset; the owner's fd is dead (ECONNABORTED); the socket left the dump.
    let mut buf = [0u8; 4];
    let err = c.server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let err = c.client.read(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNABORTED), "{err}");
    assert!(!c.listed(), "the killed socket left the dump");

    // Killing it again: nothing matches, so nothing was done: status 1, and why.
    let out = kwatch(None, &c.args(&["kill", "--yes"]));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("no sockets to kill match"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "kwatch: nothing to kill: no socket matches 'sport:{} dport:{}'",
            c.cport, c.port
        )),
        "{stderr}"
    );
}

#[test]
fn dry_run_destroys_nothing() {
    if !can_use_netns("dry_run_destroys_nothing") {
        return;
    }
    let mut c = conn();
    let out = kwatch(None, &c.args(&["kill", "--dry-run"]));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", c.cport)),
        "{stdout}"
    );
    assert!(
        stdout.contains("dry run: would kill 1 socket; nothing was killed"),
        "{stdout}"
    );
    c.assert_alive();
}

#[test]
fn without_a_terminal_and_without_yes_it_refuses() {
    if !can_use_netns("without_a_terminal_and_without_yes_it_refuses") {
        return;
    }
    let mut c = conn();
    // `kwatch` runs with stdin from /dev/null.
    let out = kwatch(None, &c.args(&["kill"]));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("stdin is not a tty"), "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    c.assert_alive();
}

#[test]
fn an_unprivileged_user_gets_a_clear_error_and_nothing_dies() {
    if !can_use_netns("an_unprivileged_user_gets_a_clear_error_and_nothing_dies") {
        return;
    }
    let mut c = conn();
    let mut args = vec![
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        KWATCH,
        "kill",
        "--yes",
    ];
    args.extend(c.filter.iter().map(String::as_str));
    let out = Command::new("setpriv")
        .args(&args)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1")
        .output()
        .expect("run setpriv");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    // The socket was listed (sock_diag dumps need no privilege), the kill refused.
    assert!(stdout.contains("1 socket to kill:"), "{stdout}{stderr}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(
        stderr.contains("permission denied: destroying sockets needs root or CAP_NET_ADMIN"),
        "{stderr}"
    );
    c.assert_alive();
}

/// Runs kwatch on a pseudo-terminal (`script`) with `input` typed at it.
fn on_tty(args: &[&str], input: &str) -> Output {
    let mut cmd = vec![KWATCH.to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let mut child = Command::new("script")
        .args(["-qec", &cmd.join(" "), "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_question_is_asked_on_the_terminal_and_only_yes_kills() {
    if !can_use_netns("the_question_is_asked_on_the_terminal_and_only_yes_kills") {
        return;
    }
    let mut c = conn();
    let out = on_tty(&c.args(&["kill"]), "n\n");
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("kill 1 socket? [y/N]"), "{stdout}{stderr}");
    assert!(stdout.contains("nothing was killed"), "{stdout}{stderr}");
    c.assert_alive();

    let out = on_tty(&c.args(&["kill"]), "y\n");
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("killed 1 of 1 socket"), "{stdout}{stderr}");
    let mut buf = [0u8; 4];
    let err = c.server.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn kill_reaches_a_socket_in_another_network_namespace() {
    if !can_use_netns("kill_reaches_a_socket_in_another_network_namespace") {
        return;
    }
    let pair = NetnsPair::new();
    let listener = in_netns(&pair.b, || TcpListener::bind((ADDR_B, 9400)).unwrap());
    let client = in_netns(&pair.a, || TcpStream::connect((ADDR_B, 9400)).unwrap());
    let (mut server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let cport = client.local_addr().unwrap().port();
    let filter = [format!("sport:{cport}"), "dport:9400".to_string()];
    // kwatch runs in the host namespace; the socket lives in namespace a.
    let mut args = vec!["--netns", pair.a.as_str(), "kill", "--yes"];
    args.extend(filter.iter().map(String::as_str));
    let out = kwatch(None, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("killed 1 of 1 socket"), "{stdout}");
    let err = server.read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    drop(client);
}

#[test]
fn a_listener_is_killed_only_when_the_filter_names_it() {
    if !can_use_netns("a_listener_is_killed_only_when_the_filter_names_it") {
        return;
    }
    let c = conn();
    let port = c.port.to_string();
    let out = kwatch(None, &["kill", "--yes", &format!("port:{port}")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // Both ends of the connection are the targets (the second may be gone by the reset of the first); the
    // listener is named apart and left alone.
    assert!(stdout.contains("2 sockets to kill:"), "{stdout}");
    assert!(!stdout.contains("killed   LISTEN"), "{stdout}");
    assert!(
        stdout.contains("skipped 1 listening socket (name state:listen to include it)"),
        "{stdout}"
    );
    let me = std::process::id();
    assert!(
        stdout.contains(&format!("  LISTEN 127.0.0.1:{port} -> 0.0.0.0:0 "))
            && stdout.contains(&format!("[{me}]/fd ")),
        "{stdout}"
    );
    // The service still accepts.
    let probe = TcpStream::connect(("127.0.0.1", c.port)).expect("the listener still accepts");
    let (accepted, _) = c.listener.accept().unwrap();
    drop((probe, accepted));

    // Flags alone narrow the sockets too, and --state listen names the listener.
    let out = kwatch(
        None,
        &["kill", "--yes", "--port", &port, "--state", "listen"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("killed 1 of 1 socket"), "{stdout}");
    let err = TcpStream::connect(("127.0.0.1", c.port)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn a_filter_of_flags_alone_is_enough_and_nothing_at_all_is_refused() {
    let c = conn();
    // --dry-run needs no privilege: only the selection is shown.
    let out = kwatch(
        None,
        &[
            "kill",
            "--dry-run",
            "--sport",
            &c.cport.to_string(),
            "--dport",
            &c.port.to_string(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("dry run: would kill 1 socket; nothing was killed"),
        "{stdout}"
    );
    for cmd in ["kill", "keepalive"] {
        let out = kwatch(None, &[cmd, "--yes"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(
            stderr.contains("refusing to act on every socket"),
            "{stderr}"
        );
    }
}
