//! Test support shared by unit tests (`cfg(test)`) and integration tests (the `testing` feature, which the tests
//! turn on through the crate's dev-dependency on itself): one `Connection` builder and one fixture loader.
//!
//! Names only the model, so any module's tests may use it without an import cycle.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use crate::model::{Connection, Family, Findings, Owners, Snapshot, TcpState, Timer};

/// A connection with every field at its plainest: cookie and inode 1, IPv4 ESTABLISHED 127.0.0.1:1000 ->
/// 127.0.0.1:2000, no timer, no tcp_info, no owner, no finding, no settings, no namespace. A test states what it
/// needs and takes the rest from here: `Connection { state: TcpState::CloseWait, ..conn() }`.
pub fn conn() -> Connection {
    Connection {
        cookie: 1,
        family: Family::Ipv4,
        state: TcpState::Established,
        local_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        local_port: 1000,
        peer_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        peer_port: 2000,
        interface: 0,
        inode: 1,
        uid: 0,
        recv_q: 0,
        send_q: 0,
        timer: Timer::NONE,
        shutdown: None,
        congestion: None,
        tcp_info: None,
        owners: Owners::default(),
        findings: Findings::default(),
        keepalive: None,
        netns: None,
    }
}

/// The snapshot in `tests/fixtures/NAME` (`busy.json`, `empty.json`), as saved: not analyzed. Panics, naming the
/// file, when it cannot be read or parsed.
pub fn fixture(name: &str) -> Snapshot {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read '{path}': {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse '{path}': {e}"))
}

/// The inode of a socket of the test's own, as fstat sees it (not through the code under test). Socket inodes are
/// 32-bit (the kernel's `get_next_ino`): a wider one panics here rather than being cut.
#[allow(clippy::expect_used)]
pub fn socket_inode(socket: impl AsFd) -> u32 {
    let ino = rustix::fs::fstat(socket)
        .expect("fstat of a test's socket")
        .st_ino;
    u32::try_from(ino).expect("a socket inode past 32 bits")
}
