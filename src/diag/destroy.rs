//! Destroy notifications: a sock_diag multicast subscription to TCP sockets being freed (what `ss -E` reads), in
//! the network namespace of the thread that opens it. A netlink socket stays bound to the namespace it was
//! created in, so a subscription opened on a thread that entered another namespace hears that namespace's deaths.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::{DiagError, parse};
use crate::model::Connection;

/// sock_diag multicast groups (`enum sknetlink_groups`): TCP over IPv4 and over IPv6.
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

/// The receive buffer asked for. A notification takes about 1 KiB of it (its skb), so 8 MiB (the kernel doubles
/// it for overhead) queues some 16,000 deaths: 16 s at 1,000 a second, while a reader drains it every few
/// milliseconds. Granted in full to root (SO_RCVBUFFORCE); others get what `net.core.rmem_max` allows.
pub const RCVBUF_BYTES: usize = 8 << 20;

/// Bytes read per `recv`: the kernel sends one notification (about 350 bytes) per datagram.
const RECV_LEN: usize = 64 * 1024;

/// A subscription to TCP destroy notifications of one network namespace (works unprivileged).
pub struct Subscriber {
    socket: Socket,
    buf: Vec<u8>,
    /// The socket's drop counter when last read (see [`Subscriber::lost`]).
    drops_seen: u32,
    /// Whether the kernel counts drops for us (`SO_MEMINFO`, Linux 4.12+).
    counts_drops: bool,
}

/// What one [`Subscriber::receive`] took in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Notifications parsed.
    pub notifications: usize,
    /// Notifications the kernel dropped since the last call because the receive buffer was full.
    pub lost: u64,
}

impl Subscriber {
    /// Subscribes in the calling thread's network namespace, with a receive buffer of [`RCVBUF_BYTES`] when the
    /// kernel grants it.
    pub fn open() -> Result<Subscriber, DiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Open)?;
        set_rcvbuf(&socket, RCVBUF_BYTES);
        let groups = 1 << (SKNLGRP_INET_TCP_DESTROY - 1) | 1 << (SKNLGRP_INET6_TCP_DESTROY - 1);
        socket
            .bind(&SocketAddr::new(0, groups))
            .map_err(DiagError::Open)?;
        socket.set_non_blocking(true).map_err(DiagError::Open)?;
        let drops = read_drops(&socket);
        Ok(Subscriber {
            socket,
            buf: Vec::with_capacity(RECV_LEN),
            drops_seen: drops.unwrap_or(0),
            counts_drops: drops.is_some(),
        })
    }

    /// The receive buffer the kernel granted, in bytes (it reports twice what was set: its overhead included).
    pub fn rcvbuf(&self) -> Option<usize> {
        self.socket.get_rx_buf_sz().ok()
    }

    /// For `poll`: readable when notifications wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Every notification waiting, without blocking, appended to `out` (each a socket in state CLOSE with its
    /// final tcp_info); and how many the kernel dropped since the last call. A full buffer (ENOBUFS) does not stop
    /// the reading: the kernel reports it once and keeps what it queued before.
    pub fn receive(&mut self, out: &mut Vec<Connection>) -> Result<Received, DiagError> {
        let mut received = Received::default();
        let mut overflowed = false;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => break,
                Ok(_) => {
                    let before = out.len();
                    // Notifications carry sequence number 0.
                    parse::parse_buffer(&self.buf, 0, out)?;
                    received.notifications += out.len() - before;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {} // receive again
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => overflowed = true,
                Err(e) => return Err(DiagError::Recv(e)),
            }
        }
        received.lost = self.lost(overflowed);
        Ok(received)
    }

    /// Notifications dropped since the last look: the kernel's count (`SK_MEMINFO_DROPS`) when it keeps one, else
    /// at least one per overflow reported.
    fn lost(&mut self, overflowed: bool) -> u64 {
        if self.counts_drops
            && let Some(drops) = read_drops(&self.socket)
        {
            let lost = drops.wrapping_sub(self.drops_seen);
            self.drops_seen = drops;
            return u64::from(lost);
        }
        u64::from(overflowed)
    }
}

/// Asks for a receive buffer of `bytes`: SO_RCVBUFFORCE (needs CAP_NET_ADMIN) past `net.core.rmem_max`, else
/// SO_RCVBUF up to it. Neither failing is an error: the default buffer still works, only sooner full.
fn set_rcvbuf(socket: &Socket, bytes: usize) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// The socket's count of messages dropped for want of buffer space (`SO_MEMINFO`'s `SK_MEMINFO_DROPS`).
fn read_drops(socket: &Socket) -> Option<u32> {
    // `SK_MEMINFO_VARS`: the drop count is the last of the nine.
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: a valid socket fd, a writable buffer of `len` bytes and a pointer to its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if rc != 0 || (len as usize) < std::mem::size_of_val(&info) {
        return None;
    }
    info.get(libc::SK_MEMINFO_DROPS as usize).copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn notifications_dropped_for_want_of_buffer_are_counted_and_reading_goes_on() {
        let mut sub = Subscriber::open().unwrap();
        // The smallest buffer the kernel allows holds a handful of notifications.
        set_rcvbuf_exactly(&sub.socket, 1);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            socket2::SockRef::from(&s)
                .set_linger(Some(std::time::Duration::ZERO))
                .unwrap();
            drop(s);
            drop(c);
        }
        // The kernel sends them from a work queue: wait until the overflow is reported.
        let mut out = Vec::new();
        let mut total = Received::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while total.lost == 0 && std::time::Instant::now() < deadline {
            let r = sub.receive(&mut out).unwrap();
            total.lost += r.lost;
            total.notifications += r.notifications;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(total.lost > 0, "{total:?}");
        assert!(
            total.notifications > 0,
            "what was queued is still read: {total:?}"
        );
    }

    /// Sets SO_RCVBUF without the 8 MiB of `open` (the kernel rounds up to its minimum).
    fn set_rcvbuf_exactly(socket: &Socket, bytes: libc::c_int) {
        // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }

    #[test]
    fn a_subscription_counts_drops_and_gets_a_big_buffer_as_root() {
        let mut sub = Subscriber::open().unwrap();
        assert!(sub.counts_drops, "SO_MEMINFO is read on this kernel");
        let mut out = Vec::new();
        assert_eq!(sub.receive(&mut out).unwrap().lost, 0);
        if rustix::process::geteuid().is_root() {
            // The kernel reports twice what was set.
            assert!(sub.rcvbuf().unwrap() >= RCVBUF_BYTES, "{:?}", sub.rcvbuf());
        }
    }
}
