//! Turning keepalive on in a running program: duplicate its socket fd, set the options, close, read back.
//!
//! The duplicate from pidfd_getfd refers to the same open socket as the program's fd, so options set on it are
//! the program's connection's options. Order matters: TCP_KEEPIDLE/INTVL/CNT first, SO_KEEPALIVE last, so the
//! keepalive timer is armed once, with the new idle time.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::net::sockopt;

use crate::model::Owner;
use crate::model::keepalive::{KeepaliveSettings, KeepaliveValues};
use crate::sockopt::{Reader, SockoptError};

/// The kernel's limits (`MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`, `MAX_TCP_KEEPCNT`).
pub const MAX_IDLE_S: u32 = 32_767;
pub const MAX_INTVL_S: u32 = 32_767;
pub const MAX_CNT: u32 = 127;

/// Parses `--idle` / `--intvl`: whole seconds, bare (`60`) or with a unit (`1m`, `90s`), within the kernel's
/// limit. Errors: `invalid idle '0': must be 1-32767 seconds`.
pub fn parse_seconds(name: &str, text: &str, max: u32) -> Result<u32, String> {
    let invalid = || format!("invalid {name} '{text}': must be 1-{max} seconds");
    let ms = crate::duration::parse_duration(text).map_err(|_| invalid())?;
    if ms % 1000 != 0 {
        return Err(format!(
            "invalid {name} '{text}': must be whole seconds (the kernel counts in seconds)"
        ));
    }
    match u32::try_from(ms / 1000) {
        Ok(s) if (1..=max).contains(&s) => Ok(s),
        _ => Err(invalid()),
    }
}

pub fn parse_idle(text: &str) -> Result<u32, String> {
    parse_seconds("idle", text, MAX_IDLE_S)
}

pub fn parse_intvl(text: &str) -> Result<u32, String> {
    parse_seconds("intvl", text, MAX_INTVL_S)
}

/// Parses `--cnt`: 1-127 probes.
pub fn parse_cnt(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CNT).contains(&n) => Ok(n),
        _ => Err(format!("invalid cnt '{text}': must be 1-{MAX_CNT} probes")),
    }
}

/// Why keepalive could not be turned on for one socket.
#[derive(Debug, thiserror::Error)]
pub enum EnableError {
    #[error("{0} (duplicating another process's socket needs root or CAP_SYS_PTRACE over it)")]
    Permission(SockoptError),
    #[error("{0}")]
    Dup(SockoptError),
    #[error("cannot set '{option}': {source}")]
    Set {
        option: &'static str,
        source: io::Error,
    },
    #[error("cannot read the settings back: {0}")]
    ReadBack(SockoptError),
}

/// Sets the options on a socket of this process (or a duplicate of another's).
pub fn apply(fd: impl AsFd, v: KeepaliveValues) -> Result<(), EnableError> {
    let fd = fd.as_fd();
    let set = |option: &'static str, r: rustix::io::Result<()>| {
        r.map_err(|e| EnableError::Set {
            option,
            source: e.into(),
        })
    };
    set(
        "TCP_KEEPIDLE",
        sockopt::set_tcp_keepidle(fd, Duration::from_secs(v.idle_s.into())),
    )?;
    set(
        "TCP_KEEPINTVL",
        sockopt::set_tcp_keepintvl(fd, Duration::from_secs(v.intvl_s.into())),
    )?;
    set("TCP_KEEPCNT", sockopt::set_tcp_keepcnt(fd, v.cnt))?;
    set("SO_KEEPALIVE", sockopt::set_socket_keepalive(fd, true))?;
    Ok(())
}

/// Turns keepalive on for socket `inode` held by `owner`: duplicate (checked against the inode), set, close the
/// duplicate, then read the settings back through a fresh duplicate.
pub fn enable(
    reader: &mut Reader,
    owner: Owner,
    inode: u64,
    v: KeepaliveValues,
) -> Result<KeepaliveSettings, EnableError> {
    let dup = reader.dup(owner, inode).map_err(|e| {
        if e.is_permission() {
            EnableError::Permission(e)
        } else {
            EnableError::Dup(e)
        }
    })?;
    let applied = apply(&dup, v);
    drop(dup);
    applied?;
    reader.read(owner, inode).map_err(EnableError::ReadBack)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn values_are_checked_against_the_kernel_limits() {
        assert_eq!(parse_idle("60"), Ok(60));
        assert_eq!(parse_idle("1m"), Ok(60));
        assert_eq!(parse_idle("32767"), Ok(32_767));
        assert_eq!(parse_intvl("1"), Ok(1));
        assert_eq!(parse_cnt("127"), Ok(127));
        assert_eq!(parse_cnt(" 5 "), Ok(5));
        for (got, want) in [
            (parse_idle("0"), "invalid idle '0': must be 1-32767 seconds"),
            (
                parse_idle("32768"),
                "invalid idle '32768': must be 1-32767 seconds",
            ),
            (
                parse_idle("abc"),
                "invalid idle 'abc': must be 1-32767 seconds",
            ),
            (
                parse_intvl("0"),
                "invalid intvl '0': must be 1-32767 seconds",
            ),
            (parse_cnt("0"), "invalid cnt '0': must be 1-127 probes"),
            (parse_cnt("128"), "invalid cnt '128': must be 1-127 probes"),
            (parse_cnt("-1"), "invalid cnt '-1': must be 1-127 probes"),
        ] {
            assert_eq!(got.unwrap_err(), want);
        }
        assert!(parse_idle("1500ms").unwrap_err().contains("whole seconds"));
    }

    #[test]
    fn dead_after_is_idle_plus_the_probes() {
        assert_eq!(KeepaliveValues::DEFAULT.dead_after_s(), 110);
    }

    #[test]
    fn enables_keepalive_through_a_duplicate_and_reads_it_back() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _s = l.accept().unwrap();
        assert!(!socket2::SockRef::from(&c).keepalive().unwrap());
        let owner = Owner {
            pid: std::process::id(),
            fd: c.as_raw_fd() as u32,
        };
        let inode = rustix::fs::fstat(&c).unwrap().st_ino;
        let v = KeepaliveValues {
            idle_s: 7,
            intvl_s: 3,
            cnt: 2,
        };
        let read = enable(&mut Reader::new(), owner, inode, v).unwrap();
        assert!(v.applied_in(&read), "{read:?}");
        // The original fd sees it: the duplicate shared the socket.
        let sock = socket2::SockRef::from(&c);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 2);
    }

    #[test]
    fn a_stale_fd_is_refused_before_anything_is_set() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let owner = Owner {
            pid: std::process::id(),
            fd: c.as_raw_fd() as u32,
        };
        let inode = rustix::fs::fstat(&c).unwrap().st_ino;
        let err = enable(
            &mut Reader::new(),
            owner,
            inode + 1,
            KeepaliveValues::DEFAULT,
        )
        .unwrap_err();
        assert!(matches!(err, EnableError::Dup(_)), "{err}");
        assert!(!socket2::SockRef::from(&c).keepalive().unwrap());
    }
}
