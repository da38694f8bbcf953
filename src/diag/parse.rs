//! Pure parser: a received netlink buffer of sock_diag replies → `Connection`s, reading the bytes in place.
//!
//! Reads `struct inet_diag_msg` and its rtattrs by offset rather than through `netlink-packet-sock-diag`,
//! whose response type drops `idiag_retrans` for keepalive and zero-window timers, drops the TIME_WAIT expiry
//! and rejects a tcp_info shorter than 232 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_sock_diag::{
    INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_SHUTDOWN, SOCK_DIAG_BY_FAMILY,
};

use super::DiagError;
use super::request::NLMSG_HDR_LEN;
use super::tcp_info;
use crate::model::{Congestion, Connection, Family, Findings, Owners, TcpState, Timer, TimerKind};

pub const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
pub const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// Set on a dump message when the kernel's tables changed while the dump ran: the dump may be inconsistent.
pub const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
/// `sizeof(struct inet_diag_msg)`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// `sizeof(struct rtattr)`.
const RTA_HDR_LEN: usize = 4;
/// `NLA_TYPE_MASK`: strips the nested / byte-order flag bits from an attribute type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What one buffer told about the dump as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// `NLMSG_DONE` arrived: the dump is complete. Nothing after it in the buffer is read.
    pub done: bool,
    /// A message carried `NLM_F_DUMP_INTR`: the dump must be thrown away and started again.
    pub interrupted: bool,
    /// Sockets left out because their state, timer or family number is one kwatch does not know.
    pub skipped: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn truncated(offset: usize, what: &'static str) -> DiagError {
    DiagError::Malformed { offset, what }
}

/// Parses every netlink message in `buf` (one `recv`), appending the sockets to `out`.
///
/// Messages whose sequence number is not `seq` are stale replies to an earlier request and are skipped.
/// `NLMSG_ERROR` (and an `NLMSG_DONE` carrying a negative status) become [`DiagError::Kernel`]; a message or
/// attribute whose length runs past the buffer is [`DiagError::Malformed`].
pub fn parse_buffer(
    buf: &[u8],
    seq: u32,
    out: &mut Vec<Connection>,
) -> Result<Progress, DiagError> {
    let mut progress = Progress::default();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < NLMSG_HDR_LEN {
            return Err(truncated(at, "netlink header cut short"));
        }
        // struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        let flags = u16_at(rest, 6);
        let msg_seq = u32_at(rest, 8);
        if len < NLMSG_HDR_LEN {
            return Err(truncated(
                at,
                "netlink message length smaller than its header",
            ));
        }
        if len > rest.len() {
            return Err(truncated(
                at,
                "netlink message runs past the end of the buffer",
            ));
        }
        let payload = &rest[NLMSG_HDR_LEN..len];
        if msg_seq == seq {
            if flags & NLM_F_DUMP_INTR != 0 {
                progress.interrupted = true;
            }
            match kind {
                NLMSG_DONE => {
                    // A dump that failed part-way ends with a negative errno in NLMSG_DONE.
                    if payload.len() >= 4 {
                        let status = u32_at(payload, 0) as i32;
                        if status < 0 {
                            return Err(DiagError::Kernel {
                                errno: status.saturating_neg(),
                            });
                        }
                    }
                    progress.done = true;
                    return Ok(progress);
                }
                NLMSG_ERROR => {
                    if payload.len() < 4 {
                        return Err(truncated(at, "netlink error message without an error code"));
                    }
                    let error = u32_at(payload, 0) as i32;
                    // 0 is an acknowledgement, which a dump only sends if asked (NLM_F_ACK); nothing to do.
                    if error != 0 {
                        return Err(DiagError::Kernel {
                            errno: error.saturating_neg(),
                        });
                    }
                }
                SOCK_DIAG_BY_FAMILY => match parse_inet(
                    payload,
                    at + NLMSG_HDR_LEN,
                    out.last().and_then(|c| c.congestion.as_ref()),
                )? {
                    Some(conn) => out.push(conn),
                    None => progress.skipped += 1,
                },
                // NLMSG_NOOP and anything newer: nothing for us.
                _ => {}
            }
        }
        at += align4(len).min(rest.len());
    }
    Ok(progress)
}

/// Parses one `struct inet_diag_msg` and its attributes. `base` is the payload's offset in the received
/// buffer, for error messages; `previous_congestion`, the name of the socket parsed before it, shared when equal.
/// `Ok(None)`: a socket kwatch cannot represent (unknown family, state or timer).
pub fn parse_inet(
    p: &[u8],
    base: usize,
    previous_congestion: Option<&Congestion>,
) -> Result<Option<Connection>, DiagError> {
    if p.len() < INET_DIAG_MSG_LEN {
        return Err(truncated(base, "inet_diag_msg cut short"));
    }
    // u8 idiag_family, idiag_state, idiag_timer, idiag_retrans
    let (family, state, timer, retrans) = (p[0], p[1], p[2], p[3]);
    let family = match i32::from(family) {
        libc::AF_INET => Family::Ipv4,
        libc::AF_INET6 => Family::Ipv6,
        _ => return Ok(None),
    };
    let (Some(state), Some(timer_kind)) =
        (TcpState::from_kernel(state), TimerKind::from_kernel(timer))
    else {
        return Ok(None);
    };
    // struct inet_diag_sockid at 4: be16 sport, be16 dport, be32 src[4], be32 dst[4], u32 if, u32 cookie[2]
    let local_port = be16_at(p, 4);
    let peer_port = be16_at(p, 6);
    let addr = |at: usize| -> IpAddr {
        match family {
            // AF_INET uses the first 4 of the 16 address bytes.
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3])),
            Family::Ipv6 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&p[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            }
        }
    };
    let local_addr = addr(8);
    let peer_addr = addr(24);
    let interface = u32_at(p, 40);
    let cookie = u64::from(u32_at(p, 44)) | u64::from(u32_at(p, 48)) << 32;
    // u32 idiag_expires (ms), idiag_rqueue, idiag_wqueue, idiag_uid, idiag_inode
    let expires_ms = u32_at(p, 52);
    let recv_q = u32_at(p, 56);
    let send_q = u32_at(p, 60);
    let uid = u32_at(p, 64);
    let inode = u32_at(p, 68);

    let mut conn = Connection {
        cookie,
        family,
        state,
        local_addr,
        local_port,
        peer_addr,
        peer_port,
        interface,
        inode,
        uid,
        recv_q,
        send_q,
        timer: Timer {
            kind: timer_kind,
            expires_ms,
            count: retrans,
        },
        shutdown: None,
        congestion: None,
        tcp_info: None,
        owners: Owners::new(),
        keepalive: None,
        netns: None,
        findings: Findings::NONE,
    };

    // struct rtattr { u16 rta_len; u16 rta_type; } + payload, each padded to 4 bytes.
    let mut at = INET_DIAG_MSG_LEN;
    while p.len() - at >= RTA_HDR_LEN {
        let len = u16_at(p, at) as usize;
        let kind = u16_at(p, at + 2) & NLA_TYPE_MASK;
        if len < RTA_HDR_LEN {
            return Err(truncated(
                base + at,
                "attribute length smaller than its header",
            ));
        }
        if len > p.len() - at {
            return Err(truncated(
                base + at,
                "attribute runs past the end of its message",
            ));
        }
        let data = &p[at + RTA_HDR_LEN..at + len];
        match kind {
            INET_DIAG_INFO => conn.tcp_info = Some(tcp_info::parse(data)),
            INET_DIAG_CONG => {
                let name = data.split(|b| *b == 0).next().unwrap_or_default();
                // Every socket names one of a handful of algorithms: share the previous socket's name when it is
                // the same, rather than keep 200,000 copies of "cubic".
                conn.congestion = match previous_congestion {
                    Some(prev) if prev.as_bytes() == name => Some(prev.clone()),
                    _ if name.is_empty() => None,
                    _ => Some(Congestion::from(&*String::from_utf8_lossy(name))),
                };
            }
            INET_DIAG_SHUTDOWN => conn.shutdown = data.first().copied(),
            _ => {}
        }
        at += align4(len).min(p.len() - at);
    }
    Ok(Some(conn))
}
