//! Turning keepalive on in a running program: duplicate its socket fd, set the options, close, read back.
//!
//! The duplicate from pidfd_getfd refers to the same open socket as the program's fd, so options set on it are
//! the program's connection's options. Order matters: TCP_KEEPIDLE/INTVL/CNT first, SO_KEEPALIVE last, so the
//! keepalive timer is armed once, with the new idle time.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::net::sockopt;

use super::{Reader, SockoptError};
use crate::model::keepalive::{KeepaliveSettings, KeepaliveValues};
use crate::model::{Connection, Owner};

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
    inode: u32,
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

/// Turns keepalive on for one socket through the first owner whose fd can be duplicated.
pub fn enable_keepalive(
    reader: &mut Reader,
    conn: &Connection,
    v: KeepaliveValues,
) -> Result<KeepaliveSettings, EnableError> {
    let mut last = None;
    for owner in &conn.owners {
        match enable(reader, *owner, conn.inode, v) {
            Ok(read) => return Ok(read),
            // Setting failed on the shared socket: another owner's fd is the same socket.
            Err(e @ EnableError::Set { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(EnableError::Set {
        option: "SO_KEEPALIVE",
        source: io::Error::other("no owning process known"),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

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
        let inode = crate::testing::socket_inode(&c);
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
        let inode = crate::testing::socket_inode(&c);
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
