//! The socket farm: a child process that listens or connects on loopback, holds its sockets, and says when ready.
//!
//! One farm process holds at most a few tens of thousands of fds (the hard `RLIMIT_NOFILE` here is 20,000 and
//! cannot be raised), so the harness starts several servers and several clients. A farm prints `listening` (a
//! server, once it accepts) and `ready COUNT` on stdout, then holds everything until its stdin closes: when the
//! harness exits or dies, its farms follow.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};

use anyhow::{Context, bail};
use socket2::{Domain, Socket, Type};

/// What one farm process does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Listen on `listen`, accept `count` connections; the first `keepalive` accepted get SO_KEEPALIVE.
    Server {
        listen: SocketAddr,
        count: usize,
        keepalive: usize,
    },
    /// Open `count` connections from `src` (port chosen by the kernel) to `dst`; the first `keepalive` get
    /// SO_KEEPALIVE, the last `close_wait` are shut down for writing, which leaves the server's end in
    /// CLOSE_WAIT (the server never closes) and this end in FIN_WAIT_2 for as long as the farm lives.
    Client {
        src: IpAddr,
        dst: SocketAddr,
        count: usize,
        keepalive: usize,
        close_wait: usize,
    },
}

impl Role {
    /// The command-line arguments after `farm` that [`Role::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            Role::Server {
                listen,
                count,
                keepalive,
            } => vec![
                "server".into(),
                listen.to_string(),
                count.to_string(),
                keepalive.to_string(),
            ],
            Role::Client {
                src,
                dst,
                count,
                keepalive,
                close_wait,
            } => vec![
                "client".into(),
                src.to_string(),
                dst.to_string(),
                count.to_string(),
                keepalive.to_string(),
                close_wait.to_string(),
            ],
        }
    }

    pub fn parse(args: &[String]) -> anyhow::Result<Role> {
        fn num(s: &str) -> anyhow::Result<usize> {
            s.parse().with_context(|| format!("invalid count '{s}'"))
        }
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        match strs.as_slice() {
            ["server", listen, count, keepalive] => Ok(Role::Server {
                listen: listen
                    .parse()
                    .with_context(|| format!("invalid address '{listen}'"))?,
                count: num(count)?,
                keepalive: num(keepalive)?,
            }),
            ["client", src, dst, count, keepalive, close_wait] => Ok(Role::Client {
                src: src
                    .parse()
                    .with_context(|| format!("invalid address '{src}'"))?,
                dst: dst
                    .parse()
                    .with_context(|| format!("invalid address '{dst}'"))?,
                count: num(count)?,
                keepalive: num(keepalive)?,
                close_wait: num(close_wait)?,
            }),
            _ => bail!(
                "usage: farm server ADDR:PORT COUNT KEEPALIVE | farm client SRC DST:PORT COUNT KEEPALIVE CLOSE_WAIT"
            ),
        }
    }
}

/// Runs a farm until stdin closes.
pub fn run(role: &Role) -> anyhow::Result<()> {
    raise_fd_limit()?;
    let held = match role {
        Role::Server {
            listen,
            count,
            keepalive,
        } => serve(*listen, *count, *keepalive)?,
        Role::Client {
            src,
            dst,
            count,
            keepalive,
            close_wait,
        } => connect(*src, *dst, *count, *keepalive, *close_wait)?,
    };
    say(&format!("ready {}", held.len()))?;
    // Hold the sockets until the harness closes our stdin (or kills us).
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    while stdin.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    drop(held);
    Ok(())
}

fn serve(listen: SocketAddr, count: usize, keepalive: usize) -> anyhow::Result<Vec<Socket>> {
    let listener = Socket::new(Domain::for_address(listen), Type::STREAM, None)?;
    listener.set_reuse_address(true)?;
    listener
        .bind(&listen.into())
        .with_context(|| format!("cannot listen on '{listen}'"))?;
    // The kernel clamps the backlog to net.core.somaxconn, which the harness raises in the namespace.
    listener.listen(65_535)?;
    say("listening")?;
    let mut held = Vec::with_capacity(count + 1);
    while held.len() < count {
        let (sock, _) = listener.accept().context("accept failed")?;
        if held.len() < keepalive {
            sock.set_keepalive(true)?;
        }
        held.push(sock);
    }
    held.push(listener);
    Ok(held)
}

fn connect(
    src: IpAddr,
    dst: SocketAddr,
    count: usize,
    keepalive: usize,
    close_wait: usize,
) -> anyhow::Result<Vec<Socket>> {
    let mut held = Vec::with_capacity(count);
    let from: SocketAddr = (src, 0).into();
    for i in 0..count {
        let sock = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
        if i < keepalive {
            sock.set_keepalive(true)?;
        }
        sock.bind(&from.into())
            .with_context(|| format!("cannot bind connection {i} to '{src}'"))?;
        sock.connect(&dst.into())
            .with_context(|| format!("cannot connect '{src}' to '{dst}' (connection {i})"))?;
        held.push(sock);
    }
    for sock in held.iter().skip(count.saturating_sub(close_wait)) {
        sock.shutdown(Shutdown::Write)?;
    }
    Ok(held)
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Raises the soft fd limit to the hard one.
fn raise_fd_limit() -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit failed");
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit whose soft limit does not exceed its hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit failed");
    }
    Ok(())
}

/// The hard fd limit, which bounds how many sockets one farm may hold.
pub fn hard_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_max
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_args() {
        let roles = [
            Role::Server {
                listen: "127.0.0.1:5001".parse().unwrap(),
                count: 10,
                keepalive: 3,
            },
            Role::Client {
                src: "127.0.0.11".parse().unwrap(),
                dst: "127.0.0.1:5001".parse().unwrap(),
                count: 10,
                keepalive: 3,
                close_wait: 1,
            },
        ];
        for role in roles {
            assert_eq!(Role::parse(&role.to_args()).unwrap(), role);
        }
        assert!(Role::parse(&["server".into()]).is_err());
    }
}
