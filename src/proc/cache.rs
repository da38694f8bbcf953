//! The /proc map kept between refreshes: each process's scan is reused until its fd table changes.
//!
//! Reading every fd link is the whole cost of the map (about 3 µs per fd), and on a busy host almost every fd
//! table is the same from one refresh to the next. So each refresh lists the pids, `stat`s each `PID/fd`
//! (since Linux 6.2 its size is the number of open fds; in a fake tree its mtime moves) and reads again only the
//! processes whose stamp moved, plus new ones. A socket the dump lists but no process is known to hold (an fd
//! replaced by another with the same count) makes the processes be read again: first those whose stamp moved
//! since, then every one not read this refresh. Sockets that still have no owner after that (kernel sockets,
//! sockets held only in flight) are remembered so that they do not force a full scan every time. Every
//! [`FULL_SCAN_EVERY`] refreshes everything is read again anyway, which bounds how long a change the stamp cannot
//! see (a new comm, an fd duplicated over another) stays unseen.
//!
//! With a network namespace named ([`ScanConfig::netns`]), processes running in other namespaces (containers) are
//! not read at all until a socket of the dump has no owner after the rest were read; one read then is kept up to
//! date like the others. On a host whose containers hold most of its sockets, their fds are not read for nothing.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use super::scan::{PidList, PidScan, ScanError, Scanner, SocketFd};
use super::task_file_iter::TaskFiles;
use super::{ProcMap, ScanConfig, Users, describe, process_netns, read_users};
use crate::parallel;
use crate::sockopt::from_kernel::KernelOptions;

/// A process's socket fds as the BPF iterator read them (`None`: read them from /proc), taken by the worker
/// that describes the process.
type Given = Mutex<Option<Vec<SocketFd>>>;

/// Every this many refreshes every process is read again, changed or not.
pub const FULL_SCAN_EVERY: u64 = 60;

/// What one process's `fd/` directory looked like when it was last read: a change means the fds changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FdStamp {
    /// The directory's own inode: a new process under a reused pid gets a new one.
    ino: u64,
    /// The number of open fds (Linux 6.2+; 0 before).
    size: i64,
    mtime: (i64, i64),
}

#[derive(Debug)]
struct Entry {
    /// `None` when `fd/` could not be stat'ed: such a process is read every time.
    stamp: Option<FdStamp>,
    scan: PidScan,
    /// The refresh in which this process was last read.
    read_in: u64,
    /// The map's index holds this process's socket fds, taken out of `scan` (see [`ProcCache::map`]).
    drained: bool,
}

/// How much the last refresh had to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Processes listed.
    pub pids: usize,
    /// Processes whose fd table was read (new, changed, or forced).
    pub scanned: usize,
    /// Whether sockets nobody was known to hold made every process be read.
    pub full: bool,
    /// Whether the socket fds came from the BPF iterator (see [`super::task_file_iter`]) rather than /proc.
    pub bpf: bool,
}

/// Socket inode → processes, kept up to date across refreshes at the cost of reading only what changed.
#[derive(Debug)]
pub struct ProcCache {
    scanner: Scanner,
    only_pids: Option<Vec<u32>>,
    /// Read processes of other network namespaces only when needed (see the module doc).
    netns: Option<u64>,
    /// Pids found running in another network namespace: their `ns/net` is not looked at again until they exit
    /// or the next full rescan. (A pid reused by a process of ours is found anyway once one of its sockets is
    /// dumped without an owner.)
    foreign: HashSet<u32>,
    /// Warnings that hold for the cache's whole life (the passwd file).
    base_warnings: Vec<String>,
    /// False when the kernel reports no fd count in `PID/fd`'s size (before 6.2): every process is read always.
    stamps_work: bool,
    entries: HashMap<u32, Entry>,
    /// Dumped inodes that no process held after every process was read; sorted, merged against the dump's.
    unowned: Vec<u32>,
    map: ProcMap,
    /// `map` no longer matches `entries`.
    stale: bool,
    refreshes: u64,
    stats: RefreshStats,
    /// The BPF iterator that reads every fd table at once, used when at least `bpf_min_fds` fds are to be read.
    bpf: TaskFiles,
    bpf_min_fds: usize,
    /// The keepalive options of the TCP sockets kwatch reads, when the iterator read them in this refresh.
    options: Option<KernelOptions>,
}

impl ProcCache {
    /// An empty cache: the first refresh reads every process. User names are read from the passwd file now.
    pub fn new(config: &ScanConfig) -> ProcCache {
        let mut base_warnings = Vec::new();
        let users = read_users(&config.passwd_path).unwrap_or_else(|e| {
            base_warnings.push(describe(&e));
            Users::default()
        });
        let stamps_work = counts_fds(&config.proc_root);
        ProcCache {
            scanner: Scanner::new(&config.proc_root, users),
            only_pids: config.only_pids.clone().map(|mut pids| {
                pids.sort_unstable();
                pids.dedup();
                pids
            }),
            netns: config.netns,
            foreign: HashSet::new(),
            base_warnings,
            stamps_work,
            entries: HashMap::new(),
            unowned: Vec::new(),
            map: ProcMap::default(),
            stale: true,
            refreshes: 0,
            stats: RefreshStats::default(),
            bpf: TaskFiles::new(&config.proc_root),
            bpf_min_fds: config.bpf_min_fds,
            options: None,
        }
    }

    /// Brings the map up to date and makes sure it accounts for every socket in `wanted` (the dumped inodes):
    /// [`update`](Self::update) then [`resolve`](Self::resolve).
    pub fn refresh(&mut self, wanted: &[u32]) -> &ProcMap {
        self.update();
        self.resolve(wanted);
        self.map()
    }

    /// Starts a refresh: lists the pids, forgets processes that exited, reads new processes and those whose fd
    /// table changed (every one every [`FULL_SCAN_EVERY`] refreshes). Needs no dump, so it can run during one.
    pub fn update(&mut self) {
        self.refreshes += 1;
        self.options = None;
        let force = self.refreshes % FULL_SCAN_EVERY == 0;
        self.stats = RefreshStats {
            full: force,
            ..RefreshStats::default()
        };
        self.rescan(force, false);
        // Built now, while the dump this update runs beside is still being read, rather than after it.
        self.map();
    }

    /// Finishes a refresh: when `wanted` holds a socket inode that no known process holds, reads the processes
    /// whose stamp moved since [`update`](Self::update), and if that is not enough every process not read in
    /// this refresh. Inode 0 (a socket no file refers to) is never looked for.
    ///
    /// `wanted` in increasing order (repeats allowed) is merged against the map as it is; any other order is
    /// sorted first, in a copy.
    pub fn resolve(&mut self, wanted: &[u32]) {
        let wanted: Cow<[u32]> = if wanted.is_sorted() {
            Cow::Borrowed(wanted)
        } else {
            let mut sorted = wanted.to_vec();
            sorted.sort_unstable();
            Cow::Owned(sorted)
        };
        if self.unknown(&wanted) == 0 {
            return;
        }
        self.rescan(false, false);
        if self.unknown(&wanted) == 0 {
            return;
        }
        if !self.stats.full {
            self.stats.full = true;
            self.rescan(true, true);
            self.map();
        }
        // Whatever is still unknown has no owner in this proc root: do not look for it again.
        self.unowned = self
            .map
            .owners
            .missing(&wanted)
            .filter(|i| *i != 0)
            .collect();
    }

    /// The map as of the last refresh.
    ///
    /// Each process's socket fds are kept once, in the map's index: a build takes the lists of the processes
    /// read since the last one out of their scans (freeing them as it goes, see [`ProcMap::from_scans_taking`])
    /// and merges them with what the index held of the processes not read again (a process that exited or was
    /// read again drops its earlier pairs). At a million sockets a copy in the scans was 15 MiB beside the index's
    /// 15 MiB, for as long as the cache lives (the live view, the exporter), and at the moment a one-shot snapshot
    /// peaks (the end of the dump).
    pub fn map(&mut self) -> &ProcMap {
        if self.stale {
            let mut map =
                ProcMap::from_scans_taking(self.entries.values_mut().map(|e| &mut e.scan));
            map.warnings = std::mem::take(&mut self.map.warnings);
            let earlier = std::mem::take(&mut self.map.owners);
            // The index already holds the pairs of the processes drained before this build, and only those.
            let entries = &self.entries;
            map.owners = map.owners.merged_with(earlier, |owner| {
                entries.get(&owner.pid).is_some_and(|e| e.drained)
            });
            for entry in self.entries.values_mut() {
                entry.drained = true;
            }
            self.map = map;
            self.stale = false;
        }
        &self.map
    }

    /// The map, without the cache.
    pub fn into_map(mut self) -> ProcMap {
        self.map();
        self.map
    }

    /// What the last refresh read.
    pub fn stats(&self) -> RefreshStats {
        self.stats
    }

    /// The keepalive options of the TCP sockets kwatch reads, when the BPF iterator read the fd tables in this
    /// refresh (taken: 16 bytes a socket with SO_KEEPALIVE or TCP_USER_TIMEOUT, or listening).
    pub fn take_options(&mut self) -> Option<KernelOptions> {
        self.options.take()
    }

    /// Why the BPF iterator is not used, if it is not.
    pub fn bpf_unusable(&self) -> Option<&str> {
        self.bpf.unusable()
    }

    /// How many distinct inodes of `wanted` (sorted) are neither owned nor known to be unowned; prunes
    /// `unowned` to `wanted`. Both lists are merged against the map's, which is in inode order too.
    fn unknown(&mut self, wanted: &[u32]) -> usize {
        self.map();
        let mut known = self.unowned.iter().copied().peekable();
        let mut unowned = Vec::new();
        let mut unknown = 0;
        for inode in self.map.owners.missing(wanted).filter(|i| *i != 0) {
            while known.next_if(|&k| k < inode).is_some() {}
            if known.next_if_eq(&inode).is_some() {
                unowned.push(inode);
            } else {
                unknown += 1;
            }
        }
        self.unowned = unowned;
        unknown
    }

    /// Lists the pids and reads every process that is new, changed, unstampable, or (with `force`) not yet read
    /// in this refresh; processes of other network namespaces only when read before or when `everywhere`.
    fn rescan(&mut self, force: bool, everywhere: bool) {
        let (mut pids, mut warnings) = self.list();
        let before = self.entries.len();
        let alive: HashSet<u32> = pids.iter().copied().collect();
        self.entries.retain(|pid, _| alive.contains(pid));
        if self.entries.len() != before {
            self.stale = true;
        }
        self.foreign.retain(|pid| alive.contains(pid));
        if force {
            self.foreign.clear();
        }
        if let Some(netns) = self.netns.filter(|_| !everywhere) {
            let (root, entries, foreign) =
                (self.scanner.proc_root(), &self.entries, &mut self.foreign);
            pids.retain(|pid| {
                if entries.contains_key(pid) {
                    return true;
                }
                if foreign.contains(pid) {
                    return false;
                }
                match process_netns(root, *pid) {
                    Some(ns) if ns != netns => {
                        foreign.insert(*pid);
                        false
                    }
                    // Ours, or a process whose namespace cannot be told (not allowed to look): it may be ours.
                    _ => true,
                }
            });
        }
        let refresh = self.refreshes;
        let (entries, scanner, stamps_work) = (&self.entries, &self.scanner, self.stamps_work);
        // Our own fd count moves with the directories this scan holds open, so its stamp means nothing: kwatch
        // is read every time (it holds few fds).
        let own_pid = std::process::id();
        let stale: Vec<(u32, Option<FdStamp>)> = parallel::map(&pids, |&pid| {
            let stamp = stamp(scanner, pid);
            let fresh = match entries.get(&pid) {
                Some(e) if force => e.read_in == refresh,
                Some(e) => stamps_work && pid != own_pid && stamp.is_some() && e.stamp == stamp,
                None => false,
            };
            (!fresh).then_some((pid, stamp))
        })
        .into_iter()
        .flatten()
        .collect();
        // Many fds to read: the kernel's fd tables through the BPF iterator, when it can be used.
        let fds: usize = stale
            .iter()
            .filter_map(|(_, stamp)| stamp.and_then(|s| usize::try_from(s.size).ok()))
            .sum();
        let read = if stamps_work && fds >= self.bpf_min_fds && self.bpf.usable() {
            self.bpf.socket_fds()
        } else {
            None
        };
        let mut by_bpf = read.map(|read| {
            if read.options.is_some() {
                self.options = read.options;
            }
            read.by_pid
        });
        self.stats.bpf |= by_bpf.is_some();
        let scanner = &self.scanner;
        // Each process's fds are moved into its scan, not copied: at a million sockets a copy was 15 MiB more,
        // and the heap kept it resident after it was freed.
        let given: Vec<(u32, Option<FdStamp>, Given)> = stale
            .into_iter()
            .map(|(pid, stamp)| {
                let fds = by_bpf.as_mut().map(|b| b.remove(&pid).unwrap_or_default());
                (pid, stamp, Mutex::new(fds))
            })
            .collect();
        drop(by_bpf);
        let read = parallel::map(&given, |(pid, stamp, fds)| {
            let fds = fds.lock().unwrap_or_else(PoisonError::into_inner).take();
            let scan = match fds {
                Some(fds) => scanner.scan_pid_given(*pid, fds),
                None => scanner.scan_pid(*pid),
            };
            Some((*pid, *stamp, scan))
        });
        for (pid, stamp, scan) in read.into_iter().flatten() {
            self.stats.scanned += 1;
            if scan == PidScan::Gone {
                self.stale |= self.entries.remove(&pid).is_some();
                continue;
            }
            // The map is rebuilt when a process's description changed or it holds sockets: its earlier socket list
            // is in the index, not in its entry (see `map`), so a re-read list is merged in, same or not (one pass
            // over the index; before, a changed list re-sorted the whole index).
            self.stale |= self.entries.get(&pid).is_none_or(|old| old.scan != scan);
            let read_in = refresh;
            self.entries.insert(
                pid,
                Entry {
                    stamp,
                    scan,
                    read_in,
                    drained: false,
                },
            );
        }
        self.stats.pids = pids.len();
        self.map.warnings = self.base_warnings.clone();
        self.map.warnings.append(&mut warnings);
    }

    /// The pids to look at, and warnings about the listing.
    fn list(&self) -> (Vec<u32>, Vec<String>) {
        if let Some(pids) = &self.only_pids {
            return (pids.clone(), Vec::new());
        }
        match self.scanner.pids() {
            Ok(PidList { pids, skipped }) => {
                let count = skipped.len();
                let warnings = skipped.into_iter().next().map(|first| {
                    let path = self.scanner.proc_root().to_owned();
                    describe(&ScanError::Skipped { path, count, first })
                });
                (pids, warnings.into_iter().collect())
            }
            Err(e) => (Vec::new(), vec![describe(&e)]),
        }
    }
}

/// The stamp of `PID/fd`, or `None` when it cannot be stat'ed (gone, or not allowed).
fn stamp(scanner: &Scanner, pid: u32) -> Option<FdStamp> {
    let path = scanner.proc_root().join(pid.to_string()).join("fd");
    let st = rustix::fs::stat(&path).ok()?;
    Some(FdStamp {
        ino: st.st_ino,
        size: st.st_size,
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
    })
}

/// Whether `PID/fd` stamps change when fds do. A real proc root reports the fd count as the size since Linux
/// 6.2 (`self/fd` is never empty: kwatch has stdin open, at least this stat's own fd); before, it reports 0 and
/// stamps never move. A fake tree without `self` is a plain directory whose mtime moves.
fn counts_fds(proc_root: &std::path::Path) -> bool {
    match rustix::fs::stat(proc_root.join("self/fd")) {
        Ok(st) => st.st_size > 0,
        Err(_) => true,
    }
}
