//! Encodes one SOCK_DIAG_BY_FAMILY dump request (nlmsghdr + inet_diag_req_v2) into bytes.

use netlink_packet_core::Emitable;
use netlink_packet_sock_diag::SOCK_DIAG_BY_FAMILY;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use super::bytecode::INET_DIAG_REQ_BYTECODE;
use crate::model::{Family, TcpState};

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDR_LEN: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
pub const INET_DIAG_REQ_V2_LEN: usize = 56;
/// `sizeof(struct nlattr)`.
pub const NLA_HDR_LEN: usize = 4;

const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;

/// State bits of every state `model::TcpState` can represent (1..=12). Newer kernels know pseudo-states past
/// these (13, `TCP_BOUND_INACTIVE`); asking only for known ones keeps them out of the reply.
pub const KNOWN_STATES: u32 = 0x1ffe;

/// The state mask sent to the kernel: the caller's mask limited to known states. Request sockets (the kernel's
/// `TCP_NEW_SYN_RECV`) are reported as `SYN_RECV`, so asking for SYN_RECV asks for them too.
pub fn kernel_states(states: u32) -> u32 {
    let mut mask = states & KNOWN_STATES;
    if mask & (1 << TcpState::SynRecv as u8) != 0 {
        mask |= 1 << TcpState::NewSynRecv as u8;
    }
    mask
}

/// Appends one dump request for `family` to `out`: TCP sockets in `states` (a kernel mask, see
/// [`kernel_states`]) with tcp_info, congestion control name and shutdown state, and only those that pass
/// `bytecode` (a [`PortFilter`](super::bytecode::PortFilter) program; empty: all), sent as an
/// `INET_DIAG_REQ_BYTECODE` attribute after the request body.
///
/// Omitting tcp_info would be clearing `ExtensionFlags::INFO`.
pub fn encode(family: Family, states: u32, bytecode: &[u8], seq: u32, out: &mut Vec<u8>) {
    let body = InetRequest {
        family: family.af(),
        protocol: libc::IPPROTO_TCP as u8,
        // The kernel sends INET_DIAG_SHUTDOWN for full sockets whether asked or not (since Linux 3.x);
        // asking costs nothing and keeps older kernels right.
        extensions: ExtensionFlags::INFO | ExtensionFlags::CONG | ExtensionFlags::SHUTDOWN,
        states: StateFlags::from_bits_retain(states),
        socket_id: match family {
            Family::Ipv4 => SocketId::new_v4(),
            Family::Ipv6 => SocketId::new_v6(),
        },
    };
    let attr_len = if bytecode.is_empty() {
        0
    } else {
        NLA_HDR_LEN + bytecode.len()
    };
    let len = NLMSG_HDR_LEN + body.buffer_len() + attr_len;
    let start = out.len();
    // struct nlmsghdr: len, type, flags, seq, pid (0: the kernel fills in our port id).
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    let body_end = start + NLMSG_HDR_LEN + body.buffer_len();
    out.resize(body_end, 0);
    body.emit(&mut out[start + NLMSG_HDR_LEN..body_end]);
    if !bytecode.is_empty() {
        // struct nlattr: len (header included), type; then the program (a multiple of 4 bytes: no padding).
        out.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        out.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        out.extend_from_slice(bytecode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_and_inet_diag_req_v2() {
        let mut out = Vec::new();
        encode(Family::Ipv6, 0x0400, &[], 7, &mut out);
        assert_eq!(out.len(), NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN);
        assert_eq!(
            u32::from_ne_bytes(out[0..4].try_into().unwrap_or_default()),
            72
        );
        assert_eq!(u16::from_ne_bytes([out[4], out[5]]), 20); // SOCK_DIAG_BY_FAMILY
        assert_eq!(u16::from_ne_bytes([out[6], out[7]]), 0x301); // NLM_F_REQUEST | NLM_F_DUMP
        assert_eq!(
            u32::from_ne_bytes(out[8..12].try_into().unwrap_or_default()),
            7
        );
        assert_eq!(out[16], libc::AF_INET6 as u8); // sdiag_family
        assert_eq!(out[17], libc::IPPROTO_TCP as u8); // sdiag_protocol
        assert_eq!(out[18], 0x02 | 0x08 | 0x80); // idiag_ext: INFO, CONG, SHUTDOWN
        assert_eq!(
            u32::from_ne_bytes(out[20..24].try_into().unwrap_or_default()),
            0x0400
        );
        assert!(
            out[24..].iter().all(|b| *b == 0),
            "dump requests carry an empty socket id"
        );
    }

    #[test]
    fn a_port_filter_follows_the_body_as_one_attribute() {
        let program = [11, 8, 12, 0, 0, 0, 80, 0];
        let mut out = Vec::new();
        encode(Family::Ipv4, 0x0002, &program, 1, &mut out);
        let body_end = NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN;
        assert_eq!(out.len(), body_end + NLA_HDR_LEN + program.len());
        assert_eq!(
            u32::from_ne_bytes(out[0..4].try_into().unwrap_or_default()) as usize,
            out.len(),
            "nlmsg_len covers the attribute"
        );
        assert_eq!(
            u16::from_ne_bytes([out[body_end], out[body_end + 1]]),
            12,
            "nla_len counts its header"
        );
        assert_eq!(
            u16::from_ne_bytes([out[body_end + 2], out[body_end + 3]]),
            1
        );
        assert_eq!(&out[body_end + NLA_HDR_LEN..], program);
    }

    #[test]
    fn state_mask_drops_unknown_states_and_adds_request_sockets() {
        assert_eq!(kernel_states(u32::MAX), KNOWN_STATES);
        assert_eq!(kernel_states(1 << 3), (1 << 3) | (1 << 12));
        assert_eq!(kernel_states(1 << 10), 1 << 10);
        assert_eq!(kernel_states(1 << 13), 0);
    }
}
