//! The /proc seam: which processes hold which socket inodes, with their names and users.
//!
//! One `readlinkat` per fd is the whole per-fd cost; comm, cmdline and status are read only for processes that
//! hold a socket. Processes that exit mid-scan vanish silently, processes whose fds cannot be read are listed in
//! [`ProcMap::unreadable`], and nothing one process does fails the scan. Each process's result ([`PidScan`]) is
//! independent of the others, so a refreshing caller can keep them per pid and rebuild the map with
//! [`ProcMap::from_scans`].

mod cache;
mod owner_index;
pub(crate) mod parse;
mod passwd;
mod scan;
mod task_file_iter;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

pub use cache::{FULL_SCAN_EVERY, ProcCache, RefreshStats};
pub use owner_index::OwnerIndex;
pub use passwd::Users;
pub use scan::{FdScan, PidList, PidScan, ScanError, Scanner, SocketFd};

use crate::model::{Lineage, Owner, Process, UnreadableProcess};

/// Whether kwatch runs as root (effective uid 0): then "run as root" is no advice for what it may not read.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether `proc_root/PID` is a kernel thread (PF_KTHREAD in its `stat`, readable by everyone); false when
/// unknown. Kernel threads hold no fds, so there is nothing to miss when theirs cannot be read.
pub fn is_kernel_thread(proc_root: &Path, pid: u32) -> bool {
    std::fs::read(proc_root.join(format!("{pid}/stat")))
        .ok()
        .and_then(|stat| parse::stat_is_kernel_thread(&stat))
        .unwrap_or(false)
}

/// Socket inode → owners, plus what is known of each owning process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcMap {
    /// Every (pid, fd) holding each socket inode, sorted.
    pub owners: OwnerIndex,
    /// Every process that holds at least one socket fd.
    pub processes: BTreeMap<u32, Process>,
    /// Processes whose fd table could not be read, by pid.
    pub unreadable: Vec<UnreadableProcess>,
    /// Problems with the scan as a whole (the proc root or the passwd file could not be read), one line each.
    pub warnings: Vec<String>,
}

impl ProcMap {
    /// Builds the map from per-process results; owners and unreadable processes come out sorted.
    pub fn from_scans(scans: impl IntoIterator<Item = PidScan>) -> ProcMap {
        let mut scans: Vec<PidScan> = scans.into_iter().collect();
        ProcMap::from_scans_taking(&mut scans)
    }

    /// [`from_scans`](Self::from_scans) for results kept elsewhere (a [`ProcCache`]): each process's socket list
    /// is taken out of its scan as its pairs join the index, and freed. At a million sockets the lists are 7.6
    /// MiB and the index 11.4: built from lists all still held, the two met at the peak of `--once --json`
    /// whenever the /proc update ended after the dump. From [`GIVE_BACK_FROM_FDS`] sockets on, the freed lists
    /// are given back to the kernel every [`GIVE_BACK_STEP`] of them, as the index grows.
    pub fn from_scans_taking<'a>(scans: impl IntoIterator<Item = &'a mut PidScan>) -> ProcMap {
        let mut scans: Vec<&mut PidScan> = scans.into_iter().collect();
        let mut map = ProcMap::default();
        let total: usize = scans
            .iter()
            .map(|scan| match scan {
                PidScan::Sockets { sockets, .. } => sockets.len(),
                _ => 0,
            })
            .sum();
        let mut pairs = Vec::with_capacity(total);
        let mut freed = 0;
        for scan in &mut scans {
            let sockets = scan.take_sockets();
            match &**scan {
                PidScan::Gone | PidScan::NoSockets => {}
                PidScan::Unreadable(process) => map.unreadable.push(process.clone()),
                PidScan::Sockets { process, .. } => {
                    pairs.extend(sockets.iter().map(|&SocketFd { fd, inode }| {
                        (
                            inode,
                            Owner {
                                pid: process.pid,
                                fd,
                            },
                        )
                    }));
                    map.processes.insert(process.pid, process.clone());
                }
            }
            freed += sockets.capacity();
            drop(sockets);
            if total >= GIVE_BACK_FROM_FDS && freed >= GIVE_BACK_STEP {
                crate::heap::give_back_freed();
                freed = 0;
            }
        }
        if total >= GIVE_BACK_FROM_FDS && freed > 0 {
            crate::heap::give_back_freed();
        }
        map.owners = OwnerIndex::from_pairs(pairs);
        map.unreadable.sort_by_key(|p| p.pid);
        map.unreadable.dedup_by_key(|p| p.pid);
        map
    }
}

/// From this many socket fds on, building a map gives the freed lists back to the kernel as it goes.
const GIVE_BACK_FROM_FDS: usize = 1 << 18;

/// Freed socket fd lists are given back every this many entries (8 B each: 1 MiB).
const GIVE_BACK_STEP: usize = 1 << 17;

/// TCP sockets in use in kwatch's network namespace, TIME-WAIT included (`/proc/net/sockstat`'s `TCP:` line,
/// `inuse` + `tw`); `None` when it cannot be read.
pub fn tcp_sockets_in_use(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("net/sockstat")).ok()?;
    parse::sockstat_tcp(&text)
}

/// The inode of the network namespace a process (its main thread) runs in, or `None` when it cannot be told
/// (gone, or not allowed to look).
pub fn process_netns(proc_root: &Path, pid: u32) -> Option<u64> {
    rustix::fs::stat(proc_root.join(format!("{pid}/ns/net")))
        .ok()
        .map(|st| st.st_ino)
}

/// Each of `pids`' parent and executable (`/proc/PID/stat`, `/proc/PID/exe`), for grouping processes into services;
/// a pid that is gone is left out, an executable that cannot be read (another user's process, a kernel thread) is
/// `None`.
pub fn lineage(proc_root: &Path, pids: impl IntoIterator<Item = u32>) -> BTreeMap<u32, Lineage> {
    pids.into_iter()
        .filter_map(|pid| {
            let dir = proc_root.join(pid.to_string());
            let stat = std::fs::read(dir.join("stat")).ok()?;
            let exe = std::fs::read_link(dir.join("exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned());
            Some((
                pid,
                Lineage {
                    ppid: parse::stat_ppid(&stat),
                    exe,
                },
            ))
        })
        .collect()
}

/// Whether `owner`'s fd refers to socket `inode` now (`PID/fd/FD` reads `socket:[INODE]`): false when the fd was
/// closed or reused, the process is gone, or its fds cannot be read.
pub fn holds(proc_root: &Path, owner: Owner, inode: u32) -> bool {
    std::fs::read_link(proc_root.join(format!("{}/fd/{}", owner.pid, owner.fd))).is_ok_and(
        |target| {
            use std::os::unix::ffi::OsStrExt;
            parse::socket_inode(target.as_os_str().as_bytes()) == Some(inode)
        },
    )
}

/// Where to look: the proc root, the passwd file for user names, and optionally which pids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanConfig {
    pub proc_root: PathBuf,
    pub passwd_path: PathBuf,
    /// Scan only these pids; a pid that does not exist is simply absent from the map.
    pub only_pids: Option<Vec<u32>>,
    /// The inode of the network namespace whose sockets are wanted: processes that run in another one are read
    /// only when a socket of the dump is still without an owner after the others were read (a process can hold
    /// sockets of a namespace it does not run in, but rarely does). `None`: every process.
    pub netns: Option<u64>,
    /// Read socket fds through the BPF iterator when at least this many fds are to be read (see
    /// [`task_file_iter`]); `usize::MAX` never does.
    pub bpf_min_fds: usize,
}

impl ScanConfig {
    /// Every process under `proc_root`, user names from `/etc/passwd`.
    pub fn new(proc_root: impl Into<PathBuf>) -> ScanConfig {
        ScanConfig {
            proc_root: proc_root.into(),
            passwd_path: PathBuf::from("/etc/passwd"),
            only_pids: None,
            netns: None,
            bpf_min_fds: task_file_iter::MIN_FDS,
        }
    }
}

/// Scans `proc_root` (normally `/proc`); `only_pids` limits the scan to those processes. User names come from
/// `/etc/passwd`.
pub fn map_inodes(proc_root: &Path, only_pids: Option<&[u32]>) -> ProcMap {
    map_inodes_with(&ScanConfig {
        only_pids: only_pids.map(<[u32]>::to_vec),
        ..ScanConfig::new(proc_root)
    })
}

/// Scans as `config` says, processes in parallel on every core. Never fails: what could not be read ends up in
/// `unreadable` or `warnings`.
pub fn map_inodes_with(config: &ScanConfig) -> ProcMap {
    let mut cache = ProcCache::new(config);
    cache.update();
    cache.into_map()
}

/// Parses the passwd file at `path`; a missing file means no names (minimal containers have none).
pub fn read_users(path: &Path) -> Result<Users, ScanError> {
    let wrap = |source| ScanError::Passwd {
        path: path.to_owned(),
        source,
    };
    match File::open(path) {
        Ok(file) => Users::parse(BufReader::new(file)).map_err(wrap),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Users::default()),
        Err(e) => Err(wrap(e)),
    }
}

/// One warning line: the error and its causes.
fn describe(err: &ScanError) -> String {
    let mut line = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests;
