//! SOCK_DESTROY over NETLINK_SOCK_DIAG: the request naming one exact socket, the kernel's ack, and the socket.
//!
//! What `ss -K` does: an `inet_diag_req_v2` with the socket's family, protocol, state and full socket id (ports,
//! addresses, interface, cookie) in a `SOCK_DESTROY` message. The kernel looks the socket up by the 4-tuple and
//! checks the cookie, so a socket that has gone and been replaced by another with the same addresses is never hit:
//! the answer is ENOENT. The kernel aborts the connection (`tcp_abort`: a reset to the peer, ECONNABORTED to the
//! owner) but the owning program keeps its fd, which stays a dead socket until the program closes it.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::Emitable;
use netlink_packet_sock_diag::SOCK_DESTROY;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::request::{INET_DIAG_REQ_V2_LEN, NLMSG_HDR_LEN};
use crate::model::{Connection, Family, TcpState};

const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;

/// Length of one encoded destroy request: `nlmsghdr` + `inet_diag_req_v2`, no attributes.
pub const DESTROY_REQ_LEN: usize = NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN;

/// Why one socket was not destroyed.
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    #[error("cannot open sock_diag netlink socket: {0}")]
    Open(io::Error),
    #[error("cannot send SOCK_DESTROY: {0}")]
    Send(io::Error),
    #[error("cannot receive the SOCK_DESTROY answer: {0}")]
    Recv(io::Error),
    #[error("malformed SOCK_DESTROY answer: {0}")]
    Malformed(&'static str),
    /// EPERM: the caller lacks CAP_NET_ADMIN in the socket's network namespace.
    #[error("permission denied: destroying sockets needs root or CAP_NET_ADMIN")]
    Permission,
    /// EOPNOTSUPP: the kernel was built without CONFIG_INET_DIAG_DESTROY.
    #[error(
        "not supported by this kernel: SOCK_DESTROY needs a kernel built with CONFIG_INET_DIAG_DESTROY=y"
    )]
    Unsupported,
    /// ENOENT: the socket closed (or was replaced) since it was listed.
    #[error("socket already gone")]
    Gone,
    #[error("the kernel refused: {0}")]
    Kernel(io::Error),
    /// The socket's network namespace could not be entered (needs root) or found.
    #[error("{0}")]
    Netns(String),
}

impl DestroyError {
    /// The error for a negative errno from the kernel's ack.
    pub fn from_errno(errno: i32) -> DestroyError {
        match errno {
            libc::EPERM | libc::EACCES => DestroyError::Permission,
            libc::EOPNOTSUPP => DestroyError::Unsupported,
            libc::ENOENT => DestroyError::Gone,
            e => DestroyError::Kernel(io::Error::from_raw_os_error(e)),
        }
    }

    /// True when trying more sockets cannot help: every one would fail the same way.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DestroyError::Open(_) | DestroyError::Permission | DestroyError::Unsupported
        )
    }
}

/// The kernel's state number for a connection as the dump reported it.
fn state_bit(state: TcpState) -> u32 {
    1 << state as u32
}

/// The 8 cookie bytes as the kernel lays out `__u32 idiag_cookie[2]`: low word first, each in host order.
pub fn cookie_bytes(cookie: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(cookie as u32).to_ne_bytes());
    out[4..].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    out
}

/// An address in the socket's family: an IPv4 address of an IPv6 socket is written v4-mapped.
fn in_family(addr: IpAddr, family: Family) -> IpAddr {
    match (addr, family) {
        (IpAddr::V4(v4), Family::Ipv6) => IpAddr::V6(v4.to_ipv6_mapped()),
        (IpAddr::V6(v6), Family::Ipv4) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        _ => addr,
    }
}

/// Appends one SOCK_DESTROY request for exactly `conn` to `out` (pure; tested on bytes).
pub fn encode(conn: &Connection, seq: u32, out: &mut Vec<u8>) {
    let body = InetRequest {
        family: conn.family.af(),
        protocol: libc::IPPROTO_TCP as u8,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::from_bits_retain(state_bit(conn.state)),
        socket_id: SocketId {
            source_port: conn.local_port,
            destination_port: conn.peer_port,
            source_address: in_family(conn.local_addr, conn.family),
            destination_address: in_family(conn.peer_addr, conn.family),
            interface_id: conn.interface,
            cookie: cookie_bytes(conn.cookie),
        },
    };
    let len = NLMSG_HDR_LEN + body.buffer_len();
    let start = out.len();
    // struct nlmsghdr: len, type, flags, seq, pid (0: the kernel fills in our port id).
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DESTROY.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.resize(start + len, 0);
    body.emit(&mut out[start + NLMSG_HDR_LEN..start + len]);
}

/// What one received datagram says about request `seq`: `Some(0)` success, `Some(errno)` the kernel's refusal,
/// `None` nothing about it (a message for another sequence number).
pub fn parse_ack(buf: &[u8], seq: u32) -> Result<Option<i32>, DestroyError> {
    let mut at = 0;
    while at + NLMSG_HDR_LEN <= buf.len() {
        let u32_at = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let len = u32_at(at) as usize;
        if len < NLMSG_HDR_LEN || at + len > buf.len() {
            return Err(DestroyError::Malformed("message length out of bounds"));
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let msg_seq = u32_at(at + 8);
        if kind == NLMSG_ERROR && msg_seq == seq {
            if len < NLMSG_HDR_LEN + 4 {
                return Err(DestroyError::Malformed("error message without a status"));
            }
            let status =
                i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
            return Ok(Some(-status));
        }
        at += (len + 3) & !3;
    }
    Ok(None)
}

/// One NETLINK_SOCK_DIAG socket that destroys sockets one at a time, waiting for each ack.
pub struct Destroyer {
    socket: Socket,
    seq: u32,
    req: Vec<u8>,
    buf: Vec<u8>,
}

impl Destroyer {
    pub fn open() -> Result<Destroyer, DestroyError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DestroyError::Open)?;
        socket.bind_auto().map_err(DestroyError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(DestroyError::Open)?;
        Ok(Destroyer {
            socket,
            seq: 0,
            req: Vec::with_capacity(DESTROY_REQ_LEN),
            buf: Vec::with_capacity(8192),
        })
    }

    /// Destroys exactly `conn` (matched by addresses, ports and cookie).
    pub fn destroy(&mut self, conn: &Connection) -> Result<(), DestroyError> {
        self.seq = self.seq.wrapping_add(1);
        self.req.clear();
        encode(conn, self.seq, &mut self.req);
        loop {
            match self.socket.send(&self.req, 0) {
                Ok(n) if n == self.req.len() => break,
                Ok(_) => return Err(DestroyError::Send(io::Error::other("short write"))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {} // send again
                Err(e) => return Err(DestroyError::Send(e)),
            }
        }
        // Bounded: the kernel answers every request with exactly one ack; stray messages are few.
        for _ in 0..64 {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return Err(DestroyError::Malformed("empty datagram")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DestroyError::Recv(e)),
            }
            match parse_ack(&self.buf, self.seq)? {
                Some(0) => return Ok(()),
                Some(errno) => return Err(DestroyError::from_errno(errno)),
                None => {} // not our ack: read the next message
            }
        }
        Err(DestroyError::Malformed("no answer to the request"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn conn(local: IpAddr, peer: IpAddr, family: Family) -> Connection {
        Connection {
            cookie: 0x1122_3344_5566_7788,
            family,
            state: TcpState::CloseWait,
            local_addr: local,
            local_port: 8080,
            peer_addr: peer,
            peer_port: 40_000,
            interface: 3,
            inode: 99,
            ..crate::testing::conn()
        }
    }

    #[test]
    fn encodes_the_exact_socket_of_an_ipv4_connection() {
        let c = conn(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            Family::Ipv4,
        );
        let mut out = vec![0xaa]; // appends: earlier bytes stay
        encode(&c, 9, &mut out);
        assert_eq!(out[0], 0xaa);
        let b = &out[1..];
        assert_eq!(b.len(), DESTROY_REQ_LEN);
        assert_eq!(b.len(), 72);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 21); // SOCK_DESTROY
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 0x1 | 0x4); // NLM_F_REQUEST | NLM_F_ACK
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 9);
        assert_eq!(u32::from_ne_bytes(b[12..16].try_into().unwrap()), 0);
        // struct inet_diag_req_v2
        assert_eq!(b[16], libc::AF_INET as u8);
        assert_eq!(b[17], libc::IPPROTO_TCP as u8);
        assert_eq!(b[18], 0, "no extensions asked");
        assert_eq!(b[19], 0, "pad");
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 1 << 8);
        // struct inet_diag_sockid: ports in network order, addresses, interface, cookie
        assert_eq!(&b[24..26], &8080u16.to_be_bytes());
        assert_eq!(&b[26..28], &40_000u16.to_be_bytes());
        assert_eq!(&b[28..32], &[192, 0, 2, 1]);
        assert!(b[32..44].iter().all(|x| *x == 0));
        assert_eq!(&b[44..48], &[192, 0, 2, 2]);
        assert!(b[48..60].iter().all(|x| *x == 0));
        assert_eq!(u32::from_ne_bytes(b[60..64].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_ne_bytes(b[64..68].try_into().unwrap()),
            0x5566_7788
        );
        assert_eq!(
            u32::from_ne_bytes(b[68..72].try_into().unwrap()),
            0x1122_3344
        );
    }

    #[test]
    fn encodes_ipv6_and_maps_ipv4_addresses_of_ipv6_sockets() {
        let peer = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
        let c = conn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(peer),
            Family::Ipv6,
        );
        let mut out = Vec::new();
        encode(&c, 1, &mut out);
        assert_eq!(out[16], libc::AF_INET6 as u8);
        assert_eq!(&out[28..44], &Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
        assert_eq!(&out[44..60], &peer.octets());
    }

    #[test]
    fn the_state_mask_names_the_socket_state_only() {
        let mut c = conn(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Family::Ipv4,
        );
        c.state = TcpState::Established;
        let mut out = Vec::new();
        encode(&c, 1, &mut out);
        assert_eq!(u32::from_ne_bytes(out[20..24].try_into().unwrap()), 1 << 1);
    }

    fn ack(seq: u32, status: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&36u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&status.to_ne_bytes());
        b.extend_from_slice(&[0u8; 16]); // the request's header, echoed
        b
    }

    #[test]
    fn acks_are_read_by_sequence_number() {
        assert_eq!(parse_ack(&ack(4, 0), 4).unwrap(), Some(0));
        assert_eq!(
            parse_ack(&ack(4, -libc::EPERM), 4).unwrap(),
            Some(libc::EPERM)
        );
        assert_eq!(parse_ack(&ack(3, -libc::EPERM), 4).unwrap(), None);
        let mut two = ack(3, 0);
        two.extend(ack(4, -libc::ENOENT));
        assert_eq!(parse_ack(&two, 4).unwrap(), Some(libc::ENOENT));
        assert!(parse_ack(&ack(4, 0)[..30], 4).is_err());
        assert_eq!(parse_ack(&[], 4).unwrap(), None);
    }

    #[test]
    fn errnos_become_plain_errors() {
        let msg = |e| DestroyError::from_errno(e).to_string();
        assert!(msg(libc::EPERM).contains("needs root or CAP_NET_ADMIN"));
        assert!(msg(libc::EOPNOTSUPP).contains("CONFIG_INET_DIAG_DESTROY"));
        assert_eq!(msg(libc::ENOENT), "socket already gone");
        assert!(DestroyError::from_errno(libc::EPERM).is_fatal());
        assert!(!DestroyError::from_errno(libc::ENOENT).is_fatal());
        assert!(!DestroyError::from_errno(libc::EINVAL).is_fatal());
    }
}
