//! Test-only builder of sock_diag reply bytes, laid out field by field as the kernel writes them.

use std::net::IpAddr;

/// One `struct inet_diag_msg` plus attributes; every field is the kernel's, named as in inet_diag.h.
#[derive(Debug, Clone)]
pub struct Msg {
    pub family: u8,
    pub state: u8,
    pub timer: u8,
    pub retrans: u8,
    pub sport: u16,
    pub dport: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ifindex: u32,
    pub cookie: u64,
    pub expires: u32,
    pub rqueue: u32,
    pub wqueue: u32,
    pub uid: u32,
    pub inode: u32,
    /// (rta_type, payload) in order.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

impl Msg {
    /// An established IPv4 socket 127.0.0.1:40000 -> 127.0.0.1:8080 with no timer and no attributes.
    pub fn v4() -> Msg {
        Msg {
            family: libc::AF_INET as u8,
            state: 1,
            timer: 0,
            retrans: 0,
            sport: 40000,
            dport: 8080,
            src: "127.0.0.1".parse().expect("literal"),
            dst: "127.0.0.1".parse().expect("literal"),
            ifindex: 0,
            cookie: 0x0000_0001_0000_0002,
            expires: 0,
            rqueue: 0,
            wqueue: 0,
            uid: 1000,
            inode: 4242,
            attrs: Vec::new(),
        }
    }
}

/// A receive buffer under construction.
#[derive(Debug, Default)]
pub struct Buf {
    pub bytes: Vec<u8>,
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

impl Buf {
    /// Appends a netlink message: struct nlmsghdr then `payload`, padded to 4 bytes.
    pub fn message(&mut self, kind: u16, flags: u16, seq: u32, payload: &[u8]) -> &mut Self {
        let len = 16 + payload.len();
        self.bytes.extend_from_slice(&(len as u32).to_ne_bytes()); // nlmsg_len
        self.bytes.extend_from_slice(&kind.to_ne_bytes()); // nlmsg_type
        self.bytes.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
        self.bytes.extend_from_slice(&seq.to_ne_bytes()); // nlmsg_seq
        self.bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        self.bytes.extend_from_slice(payload);
        pad4(&mut self.bytes);
        self
    }

    /// Appends a SOCK_DIAG_BY_FAMILY message (NLM_F_MULTI, plus `extra_flags`) carrying `m`.
    pub fn inet(&mut self, seq: u32, extra_flags: u16, m: &Msg) -> &mut Self {
        let mut p = Vec::with_capacity(72 + 256);
        p.push(m.family); // idiag_family
        p.push(m.state); // idiag_state
        p.push(m.timer); // idiag_timer
        p.push(m.retrans); // idiag_retrans
        p.extend_from_slice(&m.sport.to_be_bytes()); // id.idiag_sport (network order)
        p.extend_from_slice(&m.dport.to_be_bytes()); // id.idiag_dport (network order)
        p.extend_from_slice(&addr16(m.src)); // id.idiag_src[4]
        p.extend_from_slice(&addr16(m.dst)); // id.idiag_dst[4]
        p.extend_from_slice(&m.ifindex.to_ne_bytes()); // id.idiag_if
        p.extend_from_slice(&(m.cookie as u32).to_ne_bytes()); // id.idiag_cookie[0]: low half
        p.extend_from_slice(&((m.cookie >> 32) as u32).to_ne_bytes()); // id.idiag_cookie[1]: high half
        p.extend_from_slice(&m.expires.to_ne_bytes()); // idiag_expires (ms)
        p.extend_from_slice(&m.rqueue.to_ne_bytes()); // idiag_rqueue
        p.extend_from_slice(&m.wqueue.to_ne_bytes()); // idiag_wqueue
        p.extend_from_slice(&m.uid.to_ne_bytes()); // idiag_uid
        p.extend_from_slice(&m.inode.to_ne_bytes()); // idiag_inode
        assert_eq!(p.len(), 72, "struct inet_diag_msg is 72 bytes");
        for (kind, data) in &m.attrs {
            p.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes()); // rta_len (unpadded)
            p.extend_from_slice(&kind.to_ne_bytes()); // rta_type
            p.extend_from_slice(data);
            pad4(&mut p);
        }
        self.message(20, libc::NLM_F_MULTI as u16 | extra_flags, seq, &p)
    }

    /// Appends NLMSG_DONE with status 0.
    pub fn done(&mut self, seq: u32) -> &mut Self {
        self.message(
            libc::NLMSG_DONE as u16,
            libc::NLM_F_MULTI as u16,
            seq,
            &0i32.to_ne_bytes(),
        )
    }

    /// Appends NLMSG_ERROR: `-errno`, then the header of the request it answers.
    pub fn error(&mut self, seq: u32, errno: i32) -> &mut Self {
        let mut p = Vec::new();
        p.extend_from_slice(&(-errno).to_ne_bytes()); // error
        p.extend_from_slice(&72u32.to_ne_bytes()); // msg.nlmsg_len of our request
        p.extend_from_slice(&20u16.to_ne_bytes()); // msg.nlmsg_type
        p.extend_from_slice(&0x301u16.to_ne_bytes()); // msg.nlmsg_flags
        p.extend_from_slice(&seq.to_ne_bytes()); // msg.nlmsg_seq
        p.extend_from_slice(&0u32.to_ne_bytes()); // msg.nlmsg_pid
        self.message(libc::NLMSG_ERROR as u16, 0, seq, &p)
    }
}
