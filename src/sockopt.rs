//! Reads keepalive socket options of sockets held by other processes: pidfd_getfd, getsockopt, close.
//!
//! Nothing is changed: the duplicate fd refers to the same open socket, getsockopt only reads, and the duplicate
//! is closed at once. pidfd_getfd (Linux 5.6+) needs ptrace-attach permission over the owner (root, or the same
//! user under a permissive Yama scope). Where it fails, the caller falls back to the namespace sysctls and marks
//! the values as assumed.

pub mod enable;
pub mod from_kernel;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use rustix::net::sockopt;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};

use crate::model::keepalive::{KeepaliveSettings, Source};
use crate::model::{Connection, Owner, Snapshot, TcpState, TimerKind, settings_in};
use from_kernel::KernelOptions;

/// Why a socket's options could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SockoptError {
    #[error("cannot open pid '{pid}': {source}")]
    Open { pid: u32, source: io::Error },
    #[error("cannot duplicate fd '{fd}' of pid '{pid}': {source}")]
    GetFd {
        pid: u32,
        fd: u32,
        source: io::Error,
    },
    #[error("fd '{fd}' of pid '{pid}' no longer holds socket inode '{inode}'")]
    Stale { pid: u32, fd: u32, inode: u32 },
    #[error("cannot read '{option}' of fd '{fd}' of pid '{pid}': {source}")]
    Get {
        pid: u32,
        fd: u32,
        option: &'static str,
        source: io::Error,
    },
}

impl SockoptError {
    /// True when the failure is a lack of permission (not root, Yama ptrace scope, other user), as opposed to a
    /// process or fd that went away.
    pub fn is_permission(&self) -> bool {
        let source = match self {
            SockoptError::Open { source, .. }
            | SockoptError::GetFd { source, .. }
            | SockoptError::Get { source, .. } => source,
            SockoptError::Stale { .. } => return false,
        };
        matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES))
    }
}

/// Reads socket options for one snapshot: opens one pidfd per process on first use and closes them on drop.
#[derive(Debug, Default)]
pub struct Reader {
    pidfds: HashMap<u32, Result<OwnedFd, io::ErrorKind>>,
}

impl Reader {
    pub fn new() -> Self {
        Reader::default()
    }

    /// Reads the keepalive options of the socket with inode `inode` held by `owner`.
    pub fn read(&mut self, owner: Owner, inode: u32) -> Result<KeepaliveSettings, SockoptError> {
        self.read_with(owner, inode, None)
    }

    /// [`Reader::read`], taking SO_KEEPALIVE as `enabled` when the caller already knows it.
    pub fn read_with(
        &mut self,
        owner: Owner,
        inode: u32,
        enabled: Option<bool>,
    ) -> Result<KeepaliveSettings, SockoptError> {
        let dup = self.dup(owner, inode)?;
        let read = read_options_with(&dup, enabled);
        drop(dup);
        read.map_err(|(option, e)| SockoptError::Get {
            pid: owner.pid,
            fd: owner.fd,
            option,
            source: e.into(),
        })
    }

    /// A duplicate of `owner.fd`, checked to still be socket `inode`. Close it as soon as possible.
    pub fn dup(&mut self, owner: Owner, inode: u32) -> Result<OwnedFd, SockoptError> {
        let pid = owner.pid;
        let pidfd = match self.pidfds.entry(pid).or_insert_with(|| open_pidfd(pid)) {
            Ok(fd) => fd,
            Err(kind) => {
                return Err(SockoptError::Open {
                    pid,
                    source: io::Error::from(*kind),
                });
            }
        };
        dup_foreign(pidfd.as_fd(), owner, inode)
    }
}

fn open_pidfd(pid: u32) -> Result<OwnedFd, io::ErrorKind> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(io::ErrorKind::InvalidInput)?;
    pidfd_open(pid, PidfdFlags::empty()).map_err(|e| io::Error::from(e).kind())
}

/// Duplicates `owner.fd` out of the process behind `pidfd` and checks it is still socket `inode` (the fd number
/// may have been reused since /proc was read).
pub fn dup_foreign(pidfd: impl AsFd, owner: Owner, inode: u32) -> Result<OwnedFd, SockoptError> {
    let (pid, fd) = (owner.pid, owner.fd);
    let raw = i32::try_from(fd).map_err(|_| SockoptError::GetFd {
        pid,
        fd,
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let dup =
        pidfd_getfd(pidfd, raw, PidfdGetfdFlags::empty()).map_err(|e| SockoptError::GetFd {
            pid,
            fd,
            source: e.into(),
        })?;
    let same = rustix::fs::fstat(&dup).is_ok_and(|st| st.st_ino == u64::from(inode));
    if !same {
        return Err(SockoptError::Stale { pid, fd, inode });
    }
    Ok(dup)
}

/// getsockopt of SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT on a socket of this
/// process. The kernel answers the effective values: a socket that did not set TCP_KEEPIDLE reports the sysctl.
pub fn read_options(fd: impl AsFd) -> Result<KeepaliveSettings, (&'static str, rustix::io::Errno)> {
    read_options_with(fd, None)
}

/// [`read_options`], asking SO_KEEPALIVE only when `enabled` is not already known.
fn read_options_with(
    fd: impl AsFd,
    enabled: Option<bool>,
) -> Result<KeepaliveSettings, (&'static str, rustix::io::Errno)> {
    let fd = fd.as_fd();
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let enabled = match enabled {
        Some(known) => known,
        None => sockopt::socket_keepalive(fd).map_err(|e| ("SO_KEEPALIVE", e))?,
    };
    Ok(KeepaliveSettings {
        enabled: Some(enabled),
        idle_s: Some(secs(
            sockopt::tcp_keepidle(fd).map_err(|e| ("TCP_KEEPIDLE", e))?,
        )),
        intvl_s: Some(secs(
            sockopt::tcp_keepintvl(fd).map_err(|e| ("TCP_KEEPINTVL", e))?,
        )),
        cnt: Some(sockopt::tcp_keepcnt(fd).map_err(|e| ("TCP_KEEPCNT", e))?),
        user_timeout_ms: Some(sockopt::tcp_user_timeout(fd).map_err(|e| ("TCP_USER_TIMEOUT", e))?),
        source: Source::Socket,
    })
}

/// Whether a socket's keepalive matters: the states [`crate::analyze::predict::predict`] covers.
pub fn wanted(conn: &Connection) -> bool {
    matches!(conn.state, TcpState::Established | TcpState::CloseWait)
}

/// How many refreshes options read from a socket are trusted before they are read again.
pub const REREAD_EVERY: u64 = 10;

/// One shared copy of each distinct set of keepalive settings: a million sockets hold a handful of them (the
/// namespace's sysctls, what each program sets), 8 bytes a socket instead of 36.
#[derive(Debug, Default)]
pub struct Interner {
    known: FxHashMap<KeepaliveSettings, Arc<KeepaliveSettings>>,
}

impl Interner {
    pub fn get(&mut self, settings: KeepaliveSettings) -> Arc<KeepaliveSettings> {
        Arc::clone(
            self.known
                .entry(settings)
                .or_insert_with(|| Arc::new(settings)),
        )
    }
}

/// Options read in earlier refreshes of the live view, by socket cookie. Programs set keepalive options once,
/// when they open a connection, so rereading 50,000 sockets every second (8 syscalls each) would be most of a
/// refresh. A socket is read when first seen or when its state or timer kind changed (`SO_KEEPALIVE` switched on
/// arms the keepalive timer), and otherwise every [`REREAD_EVERY`] refreshes, a different share of the sockets at
/// each refresh, so a later `setsockopt` shows within that many refreshes.
#[derive(Debug, Default)]
pub struct Memory {
    /// Cookies are the kernel's, so a fast hash without flooding protection is safe. 24 bytes an entry.
    by_cookie: FxHashMap<u64, Remembered>,
    /// Counts refreshes, wrapping: only compared for equality with `seen`.
    refresh: u32,
}

#[derive(Debug, Clone)]
struct Remembered {
    settings: Arc<KeepaliveSettings>,
    state: TcpState,
    timer: TimerKind,
    /// The refresh that last saw the socket.
    seen: u32,
}

impl Memory {
    pub fn new() -> Self {
        Memory::default()
    }

    /// Settings read earlier that still hold for `conn` in this refresh.
    fn recall(&mut self, conn: &Connection) -> Option<Arc<KeepaliveSettings>> {
        let due = conn.cookie.wrapping_add(u64::from(self.refresh)) % REREAD_EVERY == 0;
        let r = self.by_cookie.get_mut(&conn.cookie)?;
        if due || r.state != conn.state || r.timer != conn.timer.kind {
            return None;
        }
        r.seen = self.refresh;
        Some(Arc::clone(&r.settings))
    }

    fn remember(&mut self, conn: &Connection, settings: Arc<KeepaliveSettings>) {
        let r = Remembered {
            settings,
            state: conn.state,
            timer: conn.timer.kind,
            seen: self.refresh,
        };
        self.by_cookie.insert(conn.cookie, r);
    }

    /// Ends a refresh: forgets sockets it did not see.
    fn end_refresh(&mut self) {
        let now = self.refresh;
        self.by_cookie.retain(|_, r| r.seen == now);
        self.refresh = self.refresh.wrapping_add(1);
    }
}

/// Sockets read by one thread in one go: enough that opening each owner's pidfd again per batch costs nothing.
const BATCH: usize = 2048;

/// What reading one socket's options came to.
enum Outcome {
    Read(KeepaliveSettings),
    Denied,
    Failed,
}

/// Fills `keepalive` of every ESTABLISHED and CLOSE_WAIT socket: with `read`, options read from
/// the socket through one of its owners where permitted (or recalled from `memory`, see [`Memory`]), otherwise
/// assumed from the namespace sysctls. With `read`, LISTEN sockets are read too: Linux copies a listener's
/// SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT into every socket it accepts, so
/// theirs are what accepted connections start with; a listener that could not be read keeps `None` (nothing is
/// assumed of it). Sockets are read on every core. Adds one warning when permission was missing for some
/// ESTABLISHED or CLOSE_WAIT sockets.
pub fn fill(snapshot: &mut Snapshot, read: bool, memory: Option<&mut Memory>) {
    fill_from(
        snapshot,
        read,
        Known {
            memory,
            kernel: None,
        },
    );
}

/// What a refresh knows of its sockets' options before reading any.
#[derive(Debug, Default)]
pub struct Known<'a> {
    /// Options read in earlier refreshes (the live view's).
    pub memory: Option<&'a mut Memory>,
    /// Options the BPF iterator read in this refresh.
    pub kernel: Option<&'a KernelOptions>,
}

/// [`fill`], taking the options of the sockets in `known.kernel` from it instead of reading them through their
/// owners.
pub fn fill_from(snapshot: &mut Snapshot, read: bool, known: Known<'_>) {
    let Known { mut memory, kernel } = known;
    // No timer pending means SO_KEEPALIVE is off and nothing is in flight: the socket's own options cannot
    // change when it dies (never), so the dump already says all that matters and 8 syscalls are saved.
    // A listener has no timer but hands its options to every connection it accepts: always worth it.
    let worth_reading =
        |c: &Connection| read && (c.timer.kind != TimerKind::None || c.state == TcpState::Listen);
    // Settings read (or recalled) go straight into the socket; the wanted sockets left without any are assumed
    // below. No table with a slot per socket: a snapshot may hold 200,000.
    let mut to_read = Vec::new();
    for (i, conn) in snapshot.connections.iter_mut().enumerate() {
        if !wanted(conn) && conn.state != TcpState::Listen {
            continue;
        }
        conn.keepalive = None;
        if !worth_reading(conn) {
            continue;
        }
        match memory.as_deref_mut().and_then(|m| m.recall(conn)) {
            Some(s) => conn.keepalive = Some(s),
            None => to_read.push(i),
        }
    }
    let mut interner = Interner::default();
    if let Some(kernel) = kernel {
        to_read = take_from_kernel(
            snapshot,
            to_read,
            kernel,
            &mut interner,
            memory.as_deref_mut(),
        );
    }
    let connections = &snapshot.connections;
    let batches: Vec<&[usize]> = to_read.chunks(BATCH).collect();
    let read_batch = |batch: &&[usize]| {
        let mut reader = Reader::new();
        batch
            .iter()
            .map(|&i| (i, read_any(&mut reader, &connections[i])))
            .collect::<Vec<_>>()
    };
    let mut denied = 0u64;
    for (i, outcome) in crate::parallel::map(&batches, read_batch)
        .into_iter()
        .flatten()
    {
        match outcome {
            Outcome::Read(s) => {
                let s = interner.get(s);
                if let Some(m) = memory.as_deref_mut() {
                    m.remember(&snapshot.connections[i], Arc::clone(&s));
                }
                snapshot.connections[i].keepalive = Some(s);
            }
            Outcome::Denied => denied += u64::from(wanted(&snapshot.connections[i])),
            Outcome::Failed => {}
        }
    }
    if let Some(m) = memory {
        m.end_refresh();
    }

    // Each socket's defaults are its own namespace's sysctls.
    let (namespaces, default) = (&snapshot.namespaces, &snapshot.settings);
    for conn in &mut snapshot.connections {
        if !wanted(conn) || conn.keepalive.is_some() {
            continue;
        }
        let net = settings_in(namespaces, default, conn);
        conn.keepalive = Some(interner.get(KeepaliveSettings::assumed(conn, net)));
    }
    if denied > 0 {
        snapshot.warnings.push(format!(
            "keepalive settings of '{denied}' sockets are assumed from the namespace sysctls: reading another \
             process's socket options needs root or CAP_SYS_PTRACE"
        ));
    }
}

/// Gives the sockets at `to_read` the options `kernel` holds for them, in one merge (sorted by inode: a lookup
/// each into a table of a million is ~20 cache misses); returns the indices of those it does not hold.
fn take_from_kernel(
    snapshot: &mut Snapshot,
    to_read: Vec<usize>,
    kernel: &KernelOptions,
    interner: &mut Interner,
    mut memory: Option<&mut Memory>,
) -> Vec<usize> {
    let connections = &mut snapshot.connections;
    let mut by_inode: Vec<(u32, usize)> = to_read
        .into_iter()
        .map(|i| (connections[i].inode, i))
        .collect();
    by_inode.sort_unstable();
    let found = kernel.get_sorted(by_inode.iter().map(|&(inode, _)| inode));
    let mut missing = Vec::new();
    for (&(inode, i), settings) in by_inode.iter().zip(found) {
        match settings.filter(|_| inode != 0) {
            Some(s) => {
                let s = interner.get(s);
                if let Some(m) = memory.as_deref_mut() {
                    m.remember(&connections[i], Arc::clone(&s));
                }
                connections[i].keepalive = Some(s);
            }
            None => missing.push(i),
        }
    }
    missing.sort_unstable();
    missing
}

/// Reads a socket's options through the first of its owners that allows it. An ESTABLISHED or CLOSE_WAIT socket
/// whose keepalive timer is pending has SO_KEEPALIVE on (the kernel arms that timer in those states only for
/// it, and stops it when the option is turned off), so the dump already said so: one syscall of eight saved.
fn read_any(reader: &mut Reader, conn: &Connection) -> Outcome {
    let enabled = (wanted(conn) && conn.timer.kind == TimerKind::Keepalive).then_some(true);
    let mut denied = false;
    for owner in &conn.owners {
        match reader.read_with(*owner, conn.inode, enabled) {
            Ok(s) => return Outcome::Read(s),
            Err(e) => denied |= e.is_permission(),
        }
    }
    if denied {
        Outcome::Denied
    } else {
        Outcome::Failed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

    fn pair() -> (TcpListener, TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (l, c, s)
    }

    fn inode(s: &TcpStream) -> u32 {
        crate::testing::socket_inode(s)
    }

    #[test]
    fn reads_set_options_through_a_pidfd_of_this_process() {
        let (_l, c, _s) = pair();
        let sock = socket2::SockRef::from(&c);
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(5))
            .with_retries(4);
        sock.set_tcp_keepalive(&ka).unwrap();
        sock.set_tcp_user_timeout(Some(Duration::from_secs(45)))
            .unwrap();
        let owner = Owner {
            pid: std::process::id(),
            fd: c.as_raw_fd() as u32,
        };
        let got = Reader::new().read(owner, inode(&c)).unwrap();
        assert_eq!(
            got,
            KeepaliveSettings {
                enabled: Some(true),
                idle_s: Some(30),
                intvl_s: Some(5),
                cnt: Some(4),
                user_timeout_ms: Some(45_000),
                source: Source::Socket,
            }
        );
    }

    /// One refresh of `fill` with memory over the socket `c` as the kernel dumps it now.
    fn refresh(c: &TcpStream, memory: &mut Memory) -> Connection {
        // By inode: a TIME-WAIT entry of another test's closed connection may carry the same port.
        let mut conn = crate::diag::dump(&crate::diag::DumpRequest::all())
            .unwrap()
            .into_iter()
            .find(|x| x.inode == inode(c))
            .unwrap();
        conn.owners = Owner {
            pid: std::process::id(),
            fd: c.as_raw_fd() as u32,
        }
        .into();
        let mut snapshot = Snapshot {
            connections: vec![conn],
            ..Snapshot::default()
        };
        fill(&mut snapshot, true, Some(memory));
        snapshot.connections.pop().unwrap()
    }

    #[test]
    fn remembered_options_are_reread_on_schedule_and_when_the_timer_changes() {
        let (_l, c, _s) = pair();
        let sock = socket2::SockRef::from(&c);
        let idle = |secs| socket2::TcpKeepalive::new().with_time(Duration::from_secs(secs));
        sock.set_tcp_keepalive(&idle(30)).unwrap();
        let mut memory = Memory::new();
        let first = refresh(&c, &mut memory);
        assert_eq!(
            first.keepalive.as_deref().copied().unwrap().idle_s,
            Some(30)
        );
        assert_eq!(
            first.keepalive.as_deref().copied().unwrap().source,
            Source::Socket
        );

        // Changed behind kwatch's back: remembered until the socket's turn comes, then read again.
        sock.set_tcp_keepalive(&idle(40)).unwrap();
        let due = (1..=REREAD_EVERY)
            .find(|r| (first.cookie + r) % REREAD_EVERY == 0)
            .unwrap();
        for r in 1..=REREAD_EVERY {
            let want = if r < due { 30 } else { 40 };
            let got = refresh(&c, &mut memory)
                .keepalive
                .as_deref()
                .copied()
                .unwrap();
            assert_eq!(got.idle_s, Some(want), "refresh {r}, due at {due}");
            assert_eq!(got.source, Source::Socket);
        }

        // Keepalive off: no timer, nothing read, the socket forgotten; on again with new values: read at once.
        sock.set_keepalive(false).unwrap();
        let off = refresh(&c, &mut memory)
            .keepalive
            .as_deref()
            .copied()
            .unwrap();
        assert_eq!((off.enabled, off.source), (Some(false), Source::Sysctl));
        sock.set_tcp_keepalive(&idle(50)).unwrap();
        sock.set_keepalive(true).unwrap();
        assert_eq!(
            refresh(&c, &mut memory)
                .keepalive
                .as_deref()
                .copied()
                .unwrap()
                .idle_s,
            Some(50)
        );
    }

    #[test]
    fn options_the_kernel_iterator_read_are_taken_and_the_rest_read_through_owners() {
        let (_l, c, s) = pair();
        socket2::SockRef::from(&c).set_keepalive(true).unwrap();
        socket2::SockRef::from(&s).set_keepalive(true).unwrap();
        let dumped = crate::diag::dump(&crate::diag::DumpRequest::all()).unwrap();
        let conn = |sock: &TcpStream| {
            let mut conn = dumped
                .iter()
                .find(|x| x.inode == inode(sock))
                .cloned()
                .unwrap();
            conn.owners = Owner {
                pid: std::process::id(),
                fd: sock.as_raw_fd() as u32,
            }
            .into();
            conn
        };
        // What the iterator would have said of `c` (made up, so that a read through its owner would differ).
        let mut kernel = from_kernel::Builder::new();
        let made_up = from_kernel::RawOptions {
            keepalive: true,
            idle_jiffies: 9_900,
            intvl_jiffies: 300,
            probes: 2,
            user_timeout_ms: 7,
        };
        kernel.push(inode(&c), made_up);
        let kernel = kernel.build(100);
        let mut snapshot = Snapshot {
            connections: vec![conn(&c), conn(&s)],
            ..Snapshot::default()
        };
        let mut memory = Memory::new();
        let known = Known {
            memory: Some(&mut memory),
            kernel: Some(&kernel),
        };
        fill_from(&mut snapshot, true, known);
        let got = |i: usize| {
            snapshot.connections[i]
                .keepalive
                .as_deref()
                .copied()
                .unwrap()
        };
        assert_eq!(got(0), made_up.settings(100));
        assert_eq!(got(1), read_options(&s).unwrap());
        assert_eq!(memory.by_cookie.len(), 2, "both remembered");
    }

    #[test]
    fn a_listeners_options_are_read_and_are_what_the_sockets_it_accepts_get() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        socket2::SockRef::from(&l).set_tcp_keepalive(&ka).unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // What the kernel copies at accept(): the accepted socket has the listener's options without setting any.
        let got = read_options(&s).unwrap();
        assert_eq!(
            (got.enabled, got.idle_s, got.intvl_s, got.cnt),
            (Some(true), Some(30), Some(10), Some(3))
        );

        let listener = || {
            let mut conn = crate::diag::dump(&crate::diag::DumpRequest::all())
                .unwrap()
                .into_iter()
                .find(|x| x.inode == crate::testing::socket_inode(&l))
                .unwrap();
            conn.owners = Owner {
                pid: std::process::id(),
                fd: l.as_raw_fd() as u32,
            }
            .into();
            Snapshot {
                connections: vec![conn],
                ..Snapshot::default()
            }
        };
        let mut read = listener();
        fill(&mut read, true, None);
        let got = read.connections[0].keepalive.as_deref().copied().unwrap();
        assert_eq!(
            (got.enabled, got.idle_s, got.intvl_s, got.cnt, got.source),
            (Some(true), Some(30), Some(10), Some(3), Source::Socket)
        );
        // Not read: nothing is assumed of a listener (the sysctls say nothing of its SO_KEEPALIVE).
        let mut assumed = listener();
        fill(&mut assumed, false, None);
        assert_eq!(assumed.connections[0].keepalive, None);
    }

    #[test]
    fn a_pending_keepalive_timer_means_so_keepalive_is_on() {
        // What `read_any` relies on to skip SO_KEEPALIVE: on an ESTABLISHED socket the kernel arms its keepalive
        // timer when the option goes on and stops it when it goes off.
        let (_l, c, _s) = pair();
        let timer = || {
            let all = crate::diag::dump(&crate::diag::DumpRequest::all()).unwrap();
            let me = all.iter().find(|x| x.inode == inode(&c)).unwrap();
            (me.state, me.timer.kind)
        };
        assert_eq!(timer(), (TcpState::Established, TimerKind::None));
        sockopt::set_socket_keepalive(&c, true).unwrap();
        assert_eq!(timer(), (TcpState::Established, TimerKind::Keepalive));
        sockopt::set_socket_keepalive(&c, false).unwrap();
        assert_eq!(timer(), (TcpState::Established, TimerKind::None));
    }

    #[test]
    fn an_untouched_socket_reports_keepalive_off_and_the_sysctl_values() {
        let (_l, c, _s) = pair();
        let got = read_options(&c).unwrap();
        assert_eq!(got.enabled, Some(false));
        assert_eq!(got.user_timeout_ms, Some(0));
        let net = crate::sysctl::read_settings(std::path::Path::new("/proc"));
        assert_eq!(got.idle_s, net.tcp_keepalive_time_s);
        assert_eq!(got.intvl_s, net.tcp_keepalive_intvl_s);
        assert_eq!(got.cnt, net.tcp_keepalive_probes);
    }

    #[test]
    fn a_reused_fd_number_is_detected_not_misread() {
        let (_l, c, _s) = pair();
        let owner = Owner {
            pid: std::process::id(),
            fd: c.as_raw_fd() as u32,
        };
        let err = Reader::new().read(owner, inode(&c) + 1).unwrap_err();
        assert!(matches!(err, SockoptError::Stale { .. }), "{err}");
        assert!(!err.is_permission());
        assert!(
            err.to_string().contains("no longer holds socket inode"),
            "{err}"
        );
    }

    #[test]
    fn missing_processes_and_fds_are_errors_without_permission_blame() {
        let mut reader = Reader::new();
        let gone = Owner {
            pid: u32::MAX - 1,
            fd: 3,
        };
        let err = reader.read(gone, 1).unwrap_err();
        assert!(matches!(err, SockoptError::Open { .. }), "{err}");
        assert!(!err.is_permission());
        let closed = Owner {
            pid: std::process::id(),
            fd: 1_000_000,
        };
        let err = reader.read(closed, 1).unwrap_err();
        assert!(matches!(err, SockoptError::GetFd { .. }), "{err}");
        assert!(!err.is_permission());
    }
}
