//! Socket fds of every process from a BPF task_file iterator: the kernel's fd tables read in the kernel.
//!
//! The /proc walk costs a dentry lookup and a readlink per fd, ~2.6 µs each: at a million sockets 2.6 s of CPU,
//! a third of a snapshot. The iterator (bpf/task_sockets.bpf.c, embedded as `task_sockets.bpf.o`) writes 16 bytes
//! per socket fd instead, for every process at once, at ~0.1 µs per fd. Loading it costs ~0.1 s (parsing the
//! kernel's BTF, loading and verifying the program), so [`ProcCache`](super::ProcCache) uses it only when the
//! processes it is about to read hold at least [`MIN_FDS`] fds, and only where its pids are /proc's: the real
//! /proc in the initial pid namespace. It needs root (CAP_BPF and CAP_PERFMON) and Linux 5.8 with BTF; without
//! them the /proc walk does the work, as before.

use std::io::Read;

use aya::programs::Iter;
use rustc_hash::FxHashMap;

use super::scan::SocketFd;

/// Below this many fds to read, the /proc walk is used. Loading the iterator costs ~0.1 s of CPU (40,000
/// readlinks) but also ~30 MiB of heap while the kernel's BTF is parsed, beside a snapshot being taken: at
/// 200,000 socket fds the iterator saved 0.32 s of CPU and cost 6 MiB of peak RSS in `--once` (bench/results).
/// From 250,000 fds on, the CPU saved (≥ 0.5 s) is worth it.
pub const MIN_FDS: usize = 250_000;

/// The compiled iterator (bpf/build.sh), with the BTF its field relocations need.
static OBJECT: &[u8] = aya::include_bytes_aligned!("task_sockets.bpf.o");

/// Why the iterator could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel BTF: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("loading the BPF iterator: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("BPF iterator: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("BPF iterator link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
    #[error("the BPF object has no program 'task_sockets'")]
    Missing,
    #[error("reading the BPF iterator: {0}")]
    Read(#[from] std::io::Error),
}

/// Whether the iterator is worth trying here, and what happened when it was.
#[derive(Debug)]
pub struct TaskFiles {
    /// `None` while usable (untried or working); the reason otherwise.
    unusable: Option<String>,
}

impl TaskFiles {
    /// Usable only over the real /proc with the initial pid namespace's pids (a fake tree, or a container's
    /// /proc, names processes by other pids than the kernel's).
    pub fn new(proc_root: &std::path::Path) -> TaskFiles {
        let unusable = if proc_root != std::path::Path::new("/proc") {
            Some(format!("{} is not /proc", proc_root.display()))
        } else if !pids_are_global() {
            Some("kwatch runs in a pid namespace".to_string())
        } else {
            None
        };
        TaskFiles { unusable }
    }

    pub fn usable(&self) -> bool {
        self.unusable.is_none()
    }

    /// Why the iterator is not used, if it is not.
    pub fn unusable(&self) -> Option<&str> {
        self.unusable.as_deref()
    }

    /// [`socket_fds`]; after the first failure (no privilege, no BTF, an old kernel) `None` without trying again.
    pub fn socket_fds(&mut self) -> Option<FxHashMap<u32, Vec<SocketFd>>> {
        if self.unusable.is_some() {
            return None;
        }
        socket_fds()
            .map_err(|e| self.unusable = Some(e.to_string()))
            .ok()
    }
}

/// Every process's socket fds (pid → fds sorted by fd), as the kernel's fd tables hold them now, readable or not
/// by /proc (a process whose `fd/` even root may not list is read too). Pids are those of the initial pid
/// namespace.
pub fn socket_fds() -> Result<FxHashMap<u32, Vec<SocketFd>>, Error> {
    let btf = aya::Btf::from_sys_fs()?;
    let mut ebpf = aya::EbpfLoader::new().btf(Some(&btf)).load(OBJECT)?;
    let program: &mut Iter = ebpf
        .program_mut("task_sockets")
        .ok_or(Error::Missing)?
        .try_into()?;
    program.load("task_file", &btf)?;
    let link = program.attach()?;
    let mut file = program.take_link(link)?.into_file()?;
    // The iterator's fd keeps the program alive: the loader and the parsed BTF can go before the records come.
    drop(ebpf);
    drop(btf);
    give_back_freed_heap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(parse(&bytes))
}

/// Returns the ~30 MiB the BTF parsing freed to the kernel at once. The iterator is loaded while the dump fills
/// its vector on another thread; without this, the freed heap stays resident beside that vector and adds to the
/// process's peak.
fn give_back_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Records of 16 bytes: pid (u32), fd (u32), inode (u64), native endian. A short tail is ignored.
fn parse(bytes: &[u8]) -> FxHashMap<u32, Vec<SocketFd>> {
    let mut by_pid: FxHashMap<u32, Vec<SocketFd>> = FxHashMap::default();
    for r in bytes.chunks_exact(16) {
        let (pid, rest) = r.split_at(4);
        let (fd, inode) = rest.split_at(4);
        let (Ok(pid), Ok(fd), Ok(inode)) = (pid.try_into(), fd.try_into(), inode.try_into()) else {
            continue;
        };
        by_pid
            .entry(u32::from_ne_bytes(pid))
            .or_default()
            .push(SocketFd {
                fd: u32::from_ne_bytes(fd),
                inode: u64::from_ne_bytes(inode),
            });
    }
    // A thread with a file table of its own (rare: unshare(CLONE_FILES)) is iterated apart from its process, under
    // the same pid: its sockets are kept beside the process's, as the owners they are.
    for fds in by_pid.values_mut() {
        fds.sort_unstable();
        fds.dedup();
    }
    by_pid
}

/// Whether this process sees the initial pid namespace's pids (the iterator reports those): `NSpid` in
/// `/proc/self/status` lists one pid per namespace level, so a single one means no nesting.
pub fn pids_are_global() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|pids| pids.split_whitespace().count() == 1)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_group_by_pid_sorted_by_fd() {
        let mut bytes = Vec::new();
        for (pid, fd, inode) in [
            (7u32, 9u32, 1u64 << 40 | 5),
            (7, 3, 6),
            (8, 4, 7),
            (7, 3, 6),
        ] {
            bytes.extend_from_slice(&pid.to_ne_bytes());
            bytes.extend_from_slice(&fd.to_ne_bytes());
            bytes.extend_from_slice(&inode.to_ne_bytes());
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        let by_pid = parse(&bytes);
        assert_eq!(
            by_pid[&7],
            [
                SocketFd { fd: 3, inode: 6 },
                SocketFd {
                    fd: 9,
                    inode: 1 << 40 | 5
                }
            ]
        );
        assert_eq!(by_pid[&8], [SocketFd { fd: 4, inode: 7 }]);
        assert_eq!(by_pid.len(), 2);
    }

    /// Whether a test that loads the iterator can run: as root. Otherwise it is skipped with a reason, except where
    /// privileged tests must run (CI, or KWATCH_REQUIRE_PRIVILEGED=1, as tests/common says), where it fails.
    fn root_or_skip() -> bool {
        if crate::proc::running_as_root() {
            return true;
        }
        let must = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
            || std::env::var_os("KWATCH_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1");
        assert!(
            !must,
            "loading a BPF iterator needs root, and this run must not skip it"
        );
        eprintln!("skipped: loading a BPF iterator needs root");
        false
    }

    /// The iterator against /proc for this process's own sockets (needs root; skipped with a reason without).
    #[test]
    fn the_iterator_sees_what_proc_shows_for_our_own_sockets() {
        if !root_or_skip() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let me = std::process::id();
        let scanner = super::super::Scanner::new("/proc", super::super::Users::default());
        // Other test threads open and close sockets meanwhile: ours are compared, by fd.
        let ours: Vec<u32> = [&listener as &dyn std::os::fd::AsRawFd, &client, &server]
            .iter()
            .map(|s| u32::try_from(s.as_raw_fd()).unwrap())
            .collect();
        let by_bpf = socket_fds().expect("BPF iterator");
        let Some(super::super::FdScan::Sockets(by_proc)) = Some(scanner.scan_fds(me)) else {
            panic!("own fds unreadable")
        };
        let pick = |fds: &[SocketFd]| -> Vec<SocketFd> {
            fds.iter()
                .filter(|s| ours.contains(&s.fd))
                .copied()
                .collect()
        };
        assert_eq!(pick(&by_bpf[&me]).len(), 3, "{:?}", by_bpf.get(&me));
        assert_eq!(pick(&by_bpf[&me]), pick(&by_proc));
        assert!(pids_are_global());
    }

    /// The cache's map is the same whichever way it read the fds (needs root).
    #[test]
    fn the_cache_maps_the_same_owners_through_the_iterator() {
        if !root_or_skip() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let inode = |s: &dyn std::os::fd::AsRawFd| {
            rustix::fs::stat(format!("/proc/self/fd/{}", s.as_raw_fd()))
                .unwrap()
                .st_ino
        };
        let wanted = [inode(&listener), inode(&client)];
        let me = std::process::id();
        let map = |bpf_min_fds| {
            let mut cache = crate::proc::ProcCache::new(&crate::proc::ScanConfig {
                only_pids: Some(vec![me]),
                bpf_min_fds,
                ..crate::proc::ScanConfig::new("/proc")
            });
            let map = cache.refresh(&wanted).clone();
            (
                map,
                cache.stats().bpf,
                cache.bpf_unusable().map(str::to_string),
            )
        };
        let (by_bpf, used, why) = map(0);
        assert!(used, "iterator not used: {why:?}");
        let (by_proc, used, _) = map(usize::MAX);
        assert!(!used);
        for i in wanted {
            assert_eq!(by_bpf.owners.get(i), by_proc.owners.get(i), "inode {i}");
            assert!(
                by_bpf
                    .owners
                    .get(i)
                    .is_some_and(|o| o.iter().all(|o| o.pid == me))
            );
        }
        assert_eq!(by_bpf.processes.get(&me), by_proc.processes.get(&me));
    }
}
