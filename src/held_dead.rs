//! Held dead sockets: TCP socket fds processes still hold after the kernel ended the connection.
//!
//! A killed connection (keepalive timeout, reset, `ss -K`) leaves every sock_diag dump while the program that
//! holds its fd may never notice. Candidates are socket inodes found in /proc but not in a complete dump; the
//! `system.sockprotoname` xattr of `/proc/PID/fd/N` keeps only TCP ones without touching the socket. Each is then
//! duplicated (pidfd_getfd) and confirmed: in one of the inspected network namespaces, each dumped completely
//! (SIOCGSKNS), TCP_INFO state CLOSE, and it once carried traffic (a fresh, never-connected socket is not held dead).
//! Nothing is changed: TCP_INFO and getsockname only read, and SO_ERROR, which would clear the error the program
//! has yet to see, is not used.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use rustc_hash::FxHashSet;

use crate::analyze::predict::{DeathEvidence, infer_cause};
use crate::diag::tcp_info;
use crate::model::keepalive::KeepaliveSettings;
use crate::model::{HeldDeadSocket, Owner, TcpInfo};
use crate::proc::process_netns;
use crate::sockopt::{self, Reader};

/// The kernel's TCP_CLOSE state number.
const TCP_CLOSE: u8 = 7;
/// `SIOCGSKNS` (linux/sockios.h): an fd for the network namespace of a socket.
const SIOCGSKNS: libc::c_ulong = 0x894C;

/// The protocol name sockfs reports for a socket fd (`TCP`, `TCPv6`, `UNIX`, `UDP`, ...), read through
/// `/proc/PID/fd/N` without opening the socket.
pub fn proto_name(proc_root: &Path, owner: Owner) -> Option<String> {
    let path = proc_root.join(format!("{}/fd/{}", owner.pid, owner.fd));
    let mut buf = [0u8; 32];
    let n = rustix::fs::getxattr(&path, "system.sockprotoname", &mut buf).ok()?;
    let name = buf.get(..n)?;
    let name = name.strip_suffix(&[0]).unwrap_or(name);
    Some(String::from_utf8_lossy(name).into_owned())
}

/// True for the sockprotoname of a TCP socket.
pub fn is_tcp(proto: &str) -> bool {
    proto == "TCP" || proto == "TCPv6"
}

/// Whether a socket's final tcp_info shows a dead connection: state CLOSE after it carried traffic.
pub fn is_dead(info: &TcpInfo) -> bool {
    let carried = info.rtt_us().is_some_and(|v| v > 0)
        || info.bytes_received().is_some_and(|v| v > 0)
        || info.bytes_acked().is_some_and(|v| v > 0)
        || info.probes().is_some_and(|v| v > 0)
        || info.retransmits().is_some_and(|v| v > 0);
    info.state() == Some(TCP_CLOSE) && carried
}

/// Finds held dead TCP sockets among `owners` (inode → holders from /proc) whose inode is not in `dumped`, in the
/// network namespaces `namespaces` (inodes). Call only with complete dumps (all states, both families) of every one
/// of them: `dumped` holds every live socket of each, sorted.
///
/// Only processes that run in one of those namespaces or hold a live socket in one are examined: checking the
/// namespace of each socket costs a duplicated fd, and a host can hold hundreds of thousands of sockets in other
/// namespaces. A dead socket held by a process that lives entirely elsewhere is therefore not reported.
// The collector's FxHash sets and maps are the only callers; a generic hasher parameter would serve nobody.
#[allow(clippy::implicit_hasher)]
pub fn find(
    proc_root: &Path,
    namespaces: &FxHashSet<u64>,
    dumped: &[u32],
    owners: &crate::proc::OwnerIndex,
    reader: &mut Reader,
) -> Vec<HeldDeadSocket> {
    if namespaces.is_empty() {
        return Vec::new();
    }
    // Both in increasing inode order: one merge instead of a lookup per fd.
    fn in_dump(mut rest: &[u32]) -> impl FnMut(u32) -> bool + '_ {
        move |inode: u32| {
            while rest.first().is_some_and(|&d| d < inode) {
                rest = &rest[1..];
            }
            rest.first() == Some(&inode)
        }
    }
    let mut live_inode = in_dump(dumped);
    let live: HashSet<u32> = owners
        .pairs()
        .iter()
        .filter(|(inode, _)| live_inode(*inode))
        .map(|(_, o)| o.pid)
        .collect();
    let mut netns_of: HashMap<u32, Option<u64>> = HashMap::new();
    let mut eligible = |pid: u32| {
        live.contains(&pid)
            || netns_of
                .entry(pid)
                .or_insert_with(|| process_netns(proc_root, pid))
                .is_some_and(|ns| namespaces.contains(&ns))
    };
    let mut out = Vec::new();
    let mut dumped_inode = in_dump(dumped);
    for (inode, holders) in owners.iter() {
        if dumped_inode(inode) {
            continue;
        }
        let Some(first) = holders.iter().copied().find(|o| eligible(o.pid)) else {
            continue;
        };
        if !proto_name(proc_root, first).is_some_and(|p| is_tcp(&p)) {
            continue;
        }
        let Some((info, local, settings)) = holders
            .iter()
            .find_map(|o| inspect(reader, *o, inode, namespaces))
        else {
            continue;
        };
        if !is_dead(&info) {
            continue;
        }
        let cause = infer_cause(&DeathEvidence {
            probes: info.probes(),
            retransmits: info.retransmits(),
            settings: settings.as_ref(),
            ..DeathEvidence::default()
        });
        for owner in &holders {
            out.push(HeldDeadSocket {
                pid: owner.pid,
                fd: owner.fd,
                inode,
                local_addr: local.map(|a| a.ip()),
                local_port: local.map(|a| a.port()),
                tcp_info: Some(info.clone()),
                cause,
            });
        }
    }
    out.sort_by_key(|g| (g.pid, g.fd));
    out
}

/// Duplicates the fd and reads TCP_INFO, the local address and the keepalive options, if the socket lives in
/// one of the network namespaces `namespaces`.
fn inspect(
    reader: &mut Reader,
    owner: Owner,
    inode: u32,
    namespaces: &FxHashSet<u64>,
) -> Option<(TcpInfo, Option<SocketAddr>, Option<KeepaliveSettings>)> {
    let dup = reader.dup(owner, inode).ok()?;
    if !namespaces.contains(&netns_inode(&dup)?) {
        return None;
    }
    let info = read_tcp_info(&dup)?;
    let local = rustix::net::getsockname(&dup)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
        .map(|a| match a {
            // Report IPv4-mapped addresses of dual-stack sockets as IPv4, as the dump does not.
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
                None => SocketAddr::V6(v6),
            },
            v4 @ SocketAddr::V4(_) => v4,
        });
    let settings = sockopt::read_options(&dup).ok();
    Some((info, local, settings))
}

/// The inode of the network namespace a socket belongs to (needs CAP_NET_ADMIN over it).
fn netns_inode(sock: &impl AsFd) -> Option<u64> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd (or -1) that we own from here on.
    let raw = unsafe { libc::ioctl(sock.as_fd().as_raw_fd(), SIOCGSKNS as _) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh fd returned by the kernel and not owned by anything else.
    let ns = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::fs::fstat(&ns).ok().map(|st| st.st_ino)
}

/// getsockopt(TCP_INFO), parsed like the dump's INET_DIAG_INFO.
fn read_tcp_info(sock: &impl AsFd) -> Option<TcpInfo> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: a valid fd, a writable buffer of `len` bytes and a pointer to its length.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(tcp_info::parse(buf.get(..len as usize)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::model::TcpInfoFields;

    fn me(s: &impl AsRawFd) -> Owner {
        Owner {
            pid: std::process::id(),
            fd: s.as_raw_fd() as u32,
        }
    }

    #[test]
    fn sockprotoname_tells_tcp_from_other_sockets() {
        let root = Path::new("/proc");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let l6 = TcpListener::bind("[::1]:0");
        let u = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(proto_name(root, me(&l)).as_deref(), Some("TCP"));
        if let Ok(l6) = l6 {
            assert_eq!(proto_name(root, me(&l6)).as_deref(), Some("TCPv6"));
        }
        assert_eq!(proto_name(root, me(&u)).as_deref(), Some("UNIX"));
        assert_eq!(proto_name(root, me(&udp)).as_deref(), Some("UDP"));
        assert!(!is_tcp("UNIX") && is_tcp("TCPv6"));
        assert_eq!(
            proto_name(
                root,
                Owner {
                    pid: std::process::id(),
                    fd: 999_999
                }
            ),
            None
        );
    }

    #[test]
    fn dead_means_closed_after_traffic() {
        let closed = |rtt| {
            TcpInfo::from(TcpInfoFields {
                state: Some(TCP_CLOSE),
                rtt_us: Some(rtt),
                ..TcpInfoFields::default()
            })
        };
        assert!(is_dead(&closed(120)));
        assert!(!is_dead(&closed(0)), "never connected");
        let live = TcpInfo::from(TcpInfoFields {
            state: Some(1),
            rtt_us: Some(120),
            ..TcpInfoFields::default()
        });
        assert!(!is_dead(&live));
    }

    #[test]
    fn a_socket_killed_under_its_fd_is_found_and_a_live_or_fresh_one_is_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // An RST ends the server side while we keep its fd: linger 0 on the client makes close() abort.
        socket2::SockRef::from(&c)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(c);
        let fresh =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let inode = |fd: &dyn std::os::fd::AsFd| crate::testing::socket_inode(fd);
        let owners: crate::proc::OwnerIndex = [
            (inode(&s), [me(&s)].into()),
            (inode(&fresh), [me(&fresh)].into()),
            (inode(&l), [me(&l)].into()),
        ]
        .into_iter()
        .collect();
        let dumped = [inode(&l)];
        let mut reader = Reader::new();
        let own: FxHashSet<u64> = [rustix::fs::stat("/proc/thread-self/ns/net").unwrap().st_ino]
            .into_iter()
            .collect();
        // The RST may take a moment to arrive.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let found = find(Path::new("/proc"), &own, &dumped, &owners, &mut reader);
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(found.len(), 1, "{found:?}");
        let g = &found[0];
        assert_eq!(
            (g.pid, g.fd, g.inode),
            (std::process::id(), me(&s).fd, inode(&s))
        );
        assert_eq!(g.local_port, Some(l.local_addr().unwrap().port()));
        assert_eq!(g.local_addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(g.cause, crate::model::keepalive::DeathCause::Unknown);
        assert_eq!(g.tcp_info.as_ref().unwrap().state(), Some(TCP_CLOSE));
    }
}
