//! The kernel seam: a NETLINK_SOCK_DIAG dump of TCP sockets, parsed into `Connection`s.

use crate::model::{Connection, Family};

/// What to ask the kernel for.
#[derive(Debug, Clone)]
pub struct DumpRequest {
    pub families: Vec<Family>,
    /// Bit mask of TCP states, bit n = state n (as `1 << TcpState as u8`). `u32::MAX` for all.
    pub states: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("sock_diag: {0}")]
    Other(String),
}

/// Dumps every matching TCP socket.
pub fn dump(_req: &DumpRequest) -> Result<Vec<Connection>, DiagError> {
    unimplemented!("diag::dump")
}
