//! The kernel seam: a NETLINK_SOCK_DIAG dump of TCP sockets, parsed into `Connection`s, and the subscription to
//! their destroy notifications ([`destroy`]); SOCK_DESTROY requests that abort one socket ([`sock_destroy`]).
//!
//! [`Dumper`] owns one netlink socket and one receive buffer, both reused across families and refreshes; the
//! bytes are parsed in place by the pure [`parse::parse_buffer`], so tests need no kernel.
//!
//! Sockets whose state, timer or family number `model` cannot represent are left out and counted in
//! [`DumpStats::skipped`] rather than failing the dump or being shown with a made-up value. The request already
//! asks only for known states, so in practice this only guards against a kernel newer than kwatch.

pub mod bytecode;
pub mod destroy;
pub mod parse;
pub mod request;
pub mod sock_destroy;
pub mod tcp_info;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

pub use bytecode::{PortCond, PortFilter};

use crate::model::{Connection, Family};

/// Size of the reused receive buffer. The kernel fills at most ~32 KiB per dump datagram; the margin means a
/// datagram is never cut (and a cut one is reported, not parsed).
pub const RECV_BUF_LEN: usize = 256 * 1024;

/// How many times one family's dump is started before `NLM_F_DUMP_INTR` becomes an error.
pub const MAX_TRIES: u32 = 3;

/// What to ask the kernel for.
///
/// Every dump asks for tcp_info, the congestion control name and the shutdown state. Leaving tcp_info out would
/// be a later addition to this struct, encoded in [`request::encode`]; build it with [`DumpRequest::all`] or
/// `..Default::default()` to stay compatible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRequest {
    /// Families to dump, in order; a family listed twice is dumped once.
    pub families: Vec<Family>,
    /// Bit mask of TCP states, bit n = state n (as `1 << TcpState as u8`). `u32::MAX` for all.
    /// Asking for SYN_RECV includes request sockets (the kernel's NEW_SYN_RECV).
    pub states: u32,
    /// Only sockets with these ports, decided by the kernel (`INET_DIAG_REQ_BYTECODE`); empty: all. A filter
    /// too long for one request (thousands of ports) is not sent, and the dump holds every port.
    pub ports: PortFilter,
}

impl DumpRequest {
    /// Whether the dump lists every TCP socket of the namespace (no state, family or port left out).
    pub fn is_complete(&self) -> bool {
        self.states == u32::MAX
            && self.ports.is_empty()
            && [Family::Ipv4, Family::Ipv6]
                .iter()
                .all(|f| self.families.contains(f))
    }

    /// The same request without its port filter.
    #[must_use]
    pub fn without_ports(&self) -> DumpRequest {
        DumpRequest {
            ports: PortFilter::default(),
            ..self.clone()
        }
    }
}

impl DumpRequest {
    /// IPv4 and IPv6, every state.
    pub fn all() -> DumpRequest {
        DumpRequest {
            families: vec![Family::Ipv4, Family::Ipv6],
            states: u32::MAX,
            ports: PortFilter::default(),
        }
    }
}

impl Default for DumpRequest {
    fn default() -> Self {
        DumpRequest::all()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("cannot open sock_diag netlink socket: {0}")]
    Open(io::Error),
    #[error("cannot send sock_diag request: {0}")]
    Send(io::Error),
    #[error("cannot receive sock_diag reply: {0}")]
    Recv(io::Error),
    /// The kernel answered with an error (`NLMSG_ERROR`, or a negative status in `NLMSG_DONE`).
    #[error("sock_diag dump failed: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    /// A reply shorter than its own length fields say, or than the structs it must hold.
    #[error("malformed sock_diag reply at byte '{offset}': {what}")]
    Malformed { offset: usize, what: &'static str },
    /// Every try saw `NLM_F_DUMP_INTR`: the socket tables changed under each dump.
    #[error(
        "sock_diag dump interrupted '{tries}' times in a row: sockets are changing too fast, try again"
    )]
    Interrupted { tries: u32 },
    #[error("sock_diag: {0}")]
    Other(String),
}

impl DiagError {
    /// The OS error number behind this error, if any (for hints such as "run as root").
    pub fn errno(&self) -> Option<i32> {
        match self {
            DiagError::Open(e) | DiagError::Send(e) | DiagError::Recv(e) => e.raw_os_error(),
            DiagError::Kernel { errno } => Some(*errno),
            _ => None,
        }
    }
}

/// Counts from one dump, for warnings and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Sockets left out: unknown state, timer or family number.
    pub skipped: u32,
    /// Dumps thrown away and started again because of `NLM_F_DUMP_INTR`.
    pub restarts: u32,
}

/// One NETLINK_SOCK_DIAG socket plus buffers, reusable for any number of dumps (one per TUI refresh).
pub struct Dumper {
    socket: Socket,
    /// Receive buffer: capacity `RECV_BUF_LEN`, cleared (not freed) before each `recv`.
    buf: Vec<u8>,
    /// Encoded request, reused.
    req: Vec<u8>,
    /// Sequence number of the request in flight; replies to anything else are skipped.
    seq: u32,
}

impl Dumper {
    /// Opens the netlink socket.
    pub fn open() -> Result<Dumper, DiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Open)?;
        socket.bind_auto().map_err(DiagError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(DiagError::Open)?;
        Ok(Dumper {
            socket,
            buf: Vec::with_capacity(RECV_BUF_LEN),
            req: Vec::with_capacity(128),
            seq: 0,
        })
    }

    /// Dumps every matching TCP socket.
    pub fn dump(&mut self, req: &DumpRequest) -> Result<Vec<Connection>, DiagError> {
        let mut out = Vec::new();
        self.dump_into(req, &mut out)?;
        Ok(out)
    }

    /// Appends every matching TCP socket to `out`. On error `out` is left as it was.
    pub fn dump_into(
        &mut self,
        req: &DumpRequest,
        out: &mut Vec<Connection>,
    ) -> Result<DumpStats, DiagError> {
        let start = out.len();
        let result = self.dump_families(req, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn dump_families(
        &mut self,
        req: &DumpRequest,
        out: &mut Vec<Connection>,
    ) -> Result<DumpStats, DiagError> {
        let mut stats = DumpStats::default();
        let states = request::kernel_states(req.states);
        if states == 0 {
            return Ok(stats);
        }
        let bytecode = req.ports.bytecode().unwrap_or_default();
        for (i, &family) in req.families.iter().enumerate() {
            if req.families[..i].contains(&family) {
                continue;
            }
            let start = out.len();
            let mut tries = 0;
            loop {
                tries += 1;
                let progress = self.dump_family(family, states, &bytecode, out)?;
                if !progress.interrupted {
                    stats.skipped += progress.skipped;
                    break;
                }
                out.truncate(start);
                if tries >= MAX_TRIES {
                    return Err(DiagError::Interrupted { tries });
                }
                stats.restarts += 1;
            }
        }
        Ok(stats)
    }

    /// Sends one family's request and reads replies until `NLMSG_DONE`.
    fn dump_family(
        &mut self,
        family: Family,
        states: u32,
        bytecode: &[u8],
        out: &mut Vec<Connection>,
    ) -> Result<parse::Progress, DiagError> {
        self.seq = self.seq.wrapping_add(1);
        self.req.clear();
        request::encode(family, states, bytecode, self.seq, &mut self.req);
        loop {
            match self.socket.send(&self.req, 0) {
                Ok(n) if n == self.req.len() => break,
                Ok(_) => return Err(DiagError::Send(io::Error::other("short write"))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {} // send again
                Err(e) => return Err(DiagError::Send(e)),
            }
        }
        let mut total = parse::Progress::default();
        loop {
            self.buf.clear();
            // MSG_TRUNC: the return value is the datagram's real length even if it did not fit.
            let n = match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DiagError::Recv(e)),
            };
            if n > self.buf.len() {
                return Err(DiagError::Malformed {
                    offset: self.buf.len(),
                    what: "datagram larger than the receive buffer",
                });
            }
            if n == 0 {
                return Err(DiagError::Malformed {
                    offset: 0,
                    what: "empty datagram before the end of the dump",
                });
            }
            let progress = parse::parse_buffer(&self.buf, self.seq, out)?;
            total.skipped += progress.skipped;
            total.interrupted |= progress.interrupted;
            if progress.done {
                total.done = true;
                return Ok(total);
            }
        }
    }
}

/// Dumps every matching TCP socket, on a socket opened for this one dump.
pub fn dump(req: &DumpRequest) -> Result<Vec<Connection>, DiagError> {
    Dumper::open()?.dump(req)
}
