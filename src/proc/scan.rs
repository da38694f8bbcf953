//! Reads one proc root: the list of pids, each pid's socket fds (one readlinkat per fd), and its name and user.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;

use super::parse;
use super::passwd::Users;
use crate::model::{Process, UnreadableProcess};

/// A failure that affects the whole scan rather than one process.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list processes in '{path}'")]
    List {
        path: PathBuf,
        #[source]
        source: procfs::ProcError,
    },
    #[error("skipped {count} entries of '{path}' that could not be opened")]
    Skipped {
        path: PathBuf,
        count: usize,
        #[source]
        first: procfs::ProcError,
    },
    #[error("cannot read user names from '{path}'")]
    Passwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One socket held by a process: the fd number and the socket's inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SocketFd {
    pub fd: u32,
    pub inode: u32,
}

/// What reading one process's fd table found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdScan {
    /// The process exited (or its directory lacks the files a live process has).
    Gone,
    /// The fd table could not be read: opening `fd/` failed (EACCES when not root), or listing worked but a
    /// readlink failed (EACCES on every fd of a process kwatch may not trace, e.g. PID 1 in some containers).
    /// Sockets found before the failure are dropped, so an unreadable process never shows partial owners.
    Unreadable,
    /// Every socket fd, in directory order; empty when the process holds none.
    Sockets(Vec<SocketFd>),
}

/// Everything one process contributes to a [`ProcMap`](super::ProcMap). Results of different processes are
/// independent, so a caller that refreshes often can keep them per pid and rescan only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidScan {
    Gone,
    NoSockets,
    Unreadable(UnreadableProcess),
    Sockets {
        process: Process,
        sockets: Vec<SocketFd>,
    },
}

impl PidScan {
    /// Takes the socket list out, leaving the rest (the process stays described).
    pub fn take_sockets(&mut self) -> Vec<SocketFd> {
        match self {
            PidScan::Sockets { sockets, .. } => std::mem::take(sockets),
            _ => Vec::new(),
        }
    }
}

/// The pids found in a proc root, and the entries that could not be opened.
#[derive(Debug, Default)]
pub struct PidList {
    pub pids: Vec<u32>,
    /// Non-vanished entries procfs could not open (a vanished process is dropped silently).
    pub skipped: Vec<procfs::ProcError>,
}

/// Reads processes under one proc root, naming users from one parsed passwd file.
#[derive(Debug, Clone)]
pub struct Scanner {
    proc_root: PathBuf,
    users: Users,
}

/// Long enough for any `socket:[INODE]` (at most 29 bytes); a longer target is not a socket.
const LINK_BUF: usize = 64;

impl Scanner {
    pub fn new(proc_root: impl Into<PathBuf>, users: Users) -> Scanner {
        Scanner {
            proc_root: proc_root.into(),
            users,
        }
    }

    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Every process (thread-group leader) in the proc root, in directory order.
    pub fn pids(&self) -> Result<PidList, ScanError> {
        let processes =
            procfs::process::all_processes_with_root(&self.proc_root).map_err(|source| {
                ScanError::List {
                    path: self.proc_root.clone(),
                    source,
                }
            })?;
        let mut list = PidList::default();
        for process in processes {
            match process {
                Ok(p) => list.pids.extend(u32::try_from(p.pid).ok()),
                Err(procfs::ProcError::NotFound(_)) => {}
                Err(e) => list.skipped.push(e),
            }
        }
        Ok(list)
    }

    /// Reads one process: its socket fds and, only when it holds any, its comm, cmdline and user.
    pub fn scan_pid(&self, pid: u32) -> PidScan {
        match self.scan_fds(pid) {
            FdScan::Gone => PidScan::Gone,
            // A kernel thread has no fd table that could hold a socket; only root may look into its (empty) one.
            FdScan::Unreadable if super::is_kernel_thread(&self.proc_root, pid) => {
                PidScan::NoSockets
            }
            FdScan::Unreadable => match fs::read(self.pid_dir(pid).join("comm")) {
                Ok(comm) => PidScan::Unreadable(UnreadableProcess {
                    pid,
                    comm: Some(parse::comm(&comm)),
                }),
                Err(e) if io_gone(&e) => PidScan::Gone,
                Err(_) => PidScan::Unreadable(UnreadableProcess { pid, comm: None }),
            },
            FdScan::Sockets(sockets) if sockets.is_empty() => PidScan::NoSockets,
            FdScan::Sockets(sockets) => match self.describe(pid) {
                Some(process) => PidScan::Sockets { process, sockets },
                None => PidScan::Gone,
            },
        }
    }

    /// [`scan_pid`](Self::scan_pid) with the socket fds already known (read by the BPF iterator): only the
    /// process's comm, cmdline and user are read. A process that cannot be described is read the usual way.
    pub fn scan_pid_given(&self, pid: u32, sockets: Vec<SocketFd>) -> PidScan {
        if sockets.is_empty() {
            return self.scan_pid(pid);
        }
        match self.describe(pid) {
            Some(process) => PidScan::Sockets { process, sockets },
            None => self.scan_pid(pid),
        }
    }

    /// Lists `PID/fd` and reads each link once (readlinkat relative to the open directory; no stat, no
    /// allocation per fd).
    pub fn scan_fds(&self, pid: u32) -> FdScan {
        let path = self.pid_dir(pid).join("fd");
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir_fd = match rustix::fs::openat(rustix::fs::CWD, &path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if errno_gone(e) => return FdScan::Gone,
            Err(_) => return FdScan::Unreadable,
        };
        let mut dir = match Dir::new(dir_fd) {
            Ok(dir) => dir,
            Err(e) if errno_gone(e) => return FdScan::Gone,
            Err(_) => return FdScan::Unreadable,
        };
        let mut sockets = Vec::new();
        let mut buf = [0u8; LINK_BUF];
        while let Some(entry) = dir.read() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if errno_gone(e) => return FdScan::Gone,
                Err(_) => return FdScan::Unreadable,
            };
            let name = entry.file_name();
            let Some(fd) = parse_fd_name(name.to_bytes()) else {
                continue; // `.`, `..`
            };
            let Ok(dir_fd) = dir.fd() else {
                return FdScan::Unreadable;
            };
            match rustix::fs::readlinkat_raw(dir_fd, name, &mut buf[..]) {
                Ok(len) if len < LINK_BUF => {
                    if let Some(inode) = parse::socket_inode(&buf[..len]) {
                        sockets.push(SocketFd { fd, inode });
                    }
                }
                // Filled the buffer: too long to be a socket; NOENT: closed since the listing; INVAL: not a
                // symlink (only in fake trees).
                Ok(_) | Err(Errno::NOENT | Errno::INVAL) => {}
                Err(Errno::SRCH) => return FdScan::Gone,
                Err(_) => return FdScan::Unreadable,
            }
        }
        FdScan::Sockets(sockets)
    }

    /// Reads comm, cmdline and the real uid of a process; `None` when it is gone (no `comm`).
    pub fn describe(&self, pid: u32) -> Option<Process> {
        let dir = self.pid_dir(pid);
        let comm = match fs::read(dir.join("comm")) {
            Ok(comm) => parse::comm(&comm),
            Err(e) if io_gone(&e) => return None,
            Err(_) => String::new(),
        };
        let cmdline = fs::read(dir.join("cmdline"))
            .map(|c| parse::cmdline(&c))
            .unwrap_or_default();
        let uid = fs::read(dir.join("status"))
            .ok()
            .and_then(|s| parse::status_uid(&s));
        let user = uid.and_then(|uid| self.users.name(uid)).map(str::to_owned);
        Some(Process {
            pid,
            comm,
            cmdline,
            uid,
            user,
        })
    }

    fn pid_dir(&self, pid: u32) -> PathBuf {
        self.proc_root.join(pid.to_string())
    }
}

/// An fd directory entry name: a decimal fd number.
fn parse_fd_name(name: &[u8]) -> Option<u32> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// ENOENT or ESRCH: the process exited while we looked.
fn errno_gone(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::SRCH
}

fn io_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_names_are_decimal() {
        assert_eq!(parse_fd_name(b"0"), Some(0));
        assert_eq!(parse_fd_name(b"19999"), Some(19999));
        assert_eq!(parse_fd_name(b"."), None);
        assert_eq!(parse_fd_name(b".."), None);
        assert_eq!(parse_fd_name(b""), None);
        assert_eq!(parse_fd_name(b"-1"), None);
        assert_eq!(parse_fd_name(b"99999999999"), None);
    }
}
