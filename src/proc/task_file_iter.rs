//! Socket fds of every process from a BPF task_file iterator: the kernel's fd tables read in the kernel.
//!
//! The /proc walk costs a dentry lookup and a readlink per fd, ~2.6 µs each: at a million sockets 2.6 s of CPU,
//! a third of a snapshot. The iterator (bpf/task_sockets.bpf.c, embedded as `task_sockets.bpf.o`) writes 32 bytes
//! per socket fd instead, for every process at once, and with a TCP socket's record its keepalive options
//! ([`crate::sockopt::from_kernel`]), which otherwise cost a pidfd_getfd and five getsockopt calls each: ~0.7 µs
//! per socket fd in all, most of it the cache misses of reading ~8 lines of a cold socket (bench/README.md). The
//! object holds two programs that write the same records ([`Reads`]): the one with typed pointers (Linux 5.11+)
//! is tried first, the one that reads every field through a helper call (5.8+, ~0.9 µs) when the kernel refuses
//! it. Loading costs ~0.1 s (parsing the kernel's BTF, loading and verifying the program), so
//! [`ProcCache`](super::ProcCache) uses it only when the processes it is about to read hold at least [`MIN_FDS`]
//! fds, and only where its pids are /proc's: the real /proc in the initial pid namespace. It needs root (CAP_BPF
//! and CAP_PERFMON) and Linux 5.8 with BTF; without them the /proc walk does the work, as before.

use std::io::Read;

use aya::programs::Iter;
use rustc_hash::FxHashMap;

use super::scan::SocketFd;
use crate::sockopt::from_kernel::{Builder, KernelOptions, RawOptions};

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
    #[error("the BPF object has no program '{0}'")]
    Missing(&'static str),
    #[error("reading the BPF iterator: {0}")]
    Read(#[from] std::io::Error),
    #[error("{0} (the program tried before it: {1})")]
    Neither(Box<Error>, Box<Error>),
}

/// Which of the object's two programs (bpf/task_sockets.bpf.c) read the sockets: both write the same records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// `task_sock_typed`, Linux 5.11+: the fields of the socket, its `struct sock` and its namespace as plain loads
    /// through the typed pointer `bpf_sock_from_file` gives, the four of `struct tcp_sock` through helper calls.
    Typed,
    /// `task_sock_probe`, Linux 5.8+: every field through a `bpf_probe_read_kernel` call.
    Probed,
}

impl Reads {
    fn program(self) -> &'static str {
        match self {
            Reads::Typed => "task_sock_typed",
            Reads::Probed => "task_sock_probe",
        }
    }
}

/// The programs in the order they are tried: the cheaper first, the older kernels' when the verifier refuses it.
const PROGRAMS: [Reads; 2] = [Reads::Typed, Reads::Probed];

/// Whether the iterator is worth trying here, and what happened when it was.
#[derive(Debug)]
pub struct TaskFiles {
    /// `None` while usable (untried or working); the reason otherwise.
    unusable: Option<String>,
    /// The programs to try, in order: all until a run shows which one the kernel takes, that one from then on.
    programs: &'static [Reads],
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
        TaskFiles {
            unusable,
            programs: &PROGRAMS,
        }
    }

    pub fn usable(&self) -> bool {
        self.unusable.is_none()
    }

    /// Why the iterator is not used, if it is not.
    pub fn unusable(&self) -> Option<&str> {
        self.unusable.as_deref()
    }

    /// [`socket_fds`] by the programs not refused yet: one the kernel refused once (the typed one before Linux
    /// 5.11) is not tried again. After the first failure of all (no privilege, no BTF, a kernel before 5.8) `None`
    /// without trying again.
    pub fn socket_fds(&mut self) -> Option<TaskSockets> {
        if self.unusable.is_some() {
            return None;
        }
        let sockets = socket_fds(self.programs)
            .map_err(|e| self.unusable = Some(e.to_string()))
            .ok()?;
        let taken = PROGRAMS.iter().position(|&p| p == sockets.reads);
        self.programs = &PROGRAMS[taken.unwrap_or(0)..];
        Some(sockets)
    }
}

/// What one run of the iterator read.
#[derive(Debug)]
pub struct TaskSockets {
    /// Every process's socket fds (pid → fds sorted by fd).
    pub by_pid: FxHashMap<u32, Vec<SocketFd>>,
    /// The keepalive options of the TCP sockets kwatch reads (see `Records::parse`); `None` when the kernel's HZ
    /// could not be measured (the options are then read through the owners, as without the iterator).
    pub options: Option<KernelOptions>,
    /// The program that read them.
    pub reads: Reads,
}

/// Every process's socket fds, as the kernel's fd tables hold them now, readable or not by /proc (a process whose
/// `fd/` even root may not list is read too), and the TCP sockets' keepalive options. Pids are those of the
/// initial pid namespace. Read by the first of `programs` the kernel accepts ([`PROGRAMS`]; tests force one).
fn socket_fds(programs: &[Reads]) -> Result<TaskSockets, Error> {
    let (file, reads) = open(programs)?;
    // Open while the records are read: the iterator reports it among kwatch's own fds.
    let calibration = Calibration::open();
    let mut records = Records::new(calibration.as_ref());
    read_records(file, |bytes| records.parse(bytes))?;
    Ok(records.finish(reads))
}

/// The iterator's file, whose reads run it, from the first of `programs` the kernel loads.
fn open(programs: &[Reads]) -> Result<(std::fs::File, Reads), Error> {
    open_named(programs.iter().map(|&reads| (reads.program(), reads)))
}

/// [`open`] by the programs' names in the object (a test names one it lacks, as a kernel that refuses it).
fn open_named(
    programs: impl IntoIterator<Item = (&'static str, Reads)>,
) -> Result<(std::fs::File, Reads), Error> {
    let btf = aya::Btf::from_sys_fs()?;
    let mut ebpf = aya::EbpfLoader::new().btf(Some(&btf)).load(OBJECT)?;
    let mut refused: Option<Error> = None;
    let mut opened = None;
    for (name, reads) in programs {
        match attach(&mut ebpf, &btf, name) {
            Ok(file) => {
                opened = Some((file, reads));
                break;
            }
            Err(e) => {
                refused = Some(match refused {
                    None => e,
                    Some(first) => Error::Neither(Box::new(e), Box::new(first)),
                });
            }
        }
    }
    // The iterator's fd keeps the program alive: the loader and the parsed BTF can go before the records come.
    drop(ebpf);
    drop(btf);
    // The ~30 MiB the BTF parsing freed, returned at once: the iterator is loaded while the dump fills its vector
    // on another thread, and without this the freed heap stays resident beside it and adds to the peak.
    crate::heap::give_back_freed();
    opened.ok_or_else(|| refused.unwrap_or(Error::Missing("any")))
}

/// Loads one program (the verifier's say) and attaches it.
fn attach(
    ebpf: &mut aya::Ebpf,
    btf: &aya::Btf,
    name: &'static str,
) -> Result<std::fs::File, Error> {
    let program: &mut Iter = ebpf
        .program_mut(name)
        .ok_or(Error::Missing(name))?
        .try_into()?;
    program.load("task_file", btf)?;
    let link = program.attach()?;
    Ok(program.take_link(link)?.into_file()?)
}

/// Runs the iterator to its end, handing `parse` whole records as they come, a buffer at a time: at a million
/// sockets the records are 32 MB.
fn read_records(mut file: std::fs::File, mut parse: impl FnMut(&[u8])) -> Result<(), Error> {
    let mut buf = vec![0u8; 1 << 16];
    let mut filled = 0;
    loop {
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let whole = filled - filled % RECORD;
        parse(&buf[..whole]);
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

/// Bytes per record of bpf/task_sockets.bpf.c: pid u32, fd u32, inode u64, idle u32, intvl u32, user timeout
/// u32, probes u16, flags u8, TCP state u8; native endian.
const RECORD: usize = 32;
/// `flags`: the keepalive fields were read (a TCP socket).
const TCP: u8 = 1;
/// `flags`: SO_KEEPALIVE is on.
const KEEPOPEN: u8 = 2;
/// The kernel's TCP_LISTEN state.
const LISTEN: u8 = 10;

/// A TCP socket of kwatch's own with known TCP_KEEPIDLE and TCP_KEEPINTVL: its record, in jiffies, says the
/// kernel's HZ, which no interface reports (`CONFIG_HZ`: 100, 250, 300 or 1000; the clock tick `sysconf` gives is
/// USER_HZ, always 100). Never bound, so no dump lists it.
struct Calibration {
    /// Held open until the records are read.
    _socket: std::os::fd::OwnedFd,
    inode: u64,
}

impl Calibration {
    const IDLE_S: u32 = 3011;
    const INTVL_S: u32 = 17;

    fn open() -> Option<Calibration> {
        use rustix::net::{AddressFamily, SocketType, socket, sockopt};
        let socket = socket(AddressFamily::INET, SocketType::STREAM, None).ok()?;
        let secs = |s: u32| std::time::Duration::from_secs(u64::from(s));
        sockopt::set_tcp_keepidle(&socket, secs(Self::IDLE_S)).ok()?;
        sockopt::set_tcp_keepintvl(&socket, secs(Self::INTVL_S)).ok()?;
        let inode = rustix::fs::fstat(&socket).ok()?.st_ino;
        Some(Calibration {
            _socket: socket,
            inode,
        })
    }

    /// HZ from the calibration socket's record, when it is consistent.
    fn hz(raw: &RawOptions) -> Option<u32> {
        let hz = raw.idle_jiffies / Self::IDLE_S;
        (hz > 0 && raw.idle_jiffies == hz * Self::IDLE_S && raw.intvl_jiffies == hz * Self::INTVL_S)
            .then_some(hz)
    }
}

/// Records parsed so far.
struct Records {
    by_pid: FxHashMap<u32, Vec<SocketFd>>,
    /// TCP sockets' options, in jiffies until HZ is known.
    tcp: Builder,
    /// kwatch's pid and its calibration socket's inode.
    calibration: Option<(u32, u64)>,
    hz: Option<u32>,
}

impl Records {
    fn new(calibration: Option<&Calibration>) -> Records {
        Records {
            by_pid: FxHashMap::default(),
            tcp: Builder::new(),
            calibration: calibration.map(|c| (std::process::id(), c.inode)),
            hz: None,
        }
    }

    /// Whole records; a short tail is ignored.
    fn parse(&mut self, bytes: &[u8]) {
        for r in bytes.chunks_exact(RECORD) {
            let u32_at = |at: usize| {
                r.get(at..at + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes)
            };
            let (Some(pid), Some(fd), Some(inode), Some(idle), Some(intvl), Some(user_timeout)) = (
                u32_at(0),
                u32_at(4),
                r.get(8..16)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes),
                u32_at(16),
                u32_at(20),
                u32_at(24),
            ) else {
                continue;
            };
            let probes = u16::from_ne_bytes([r[28], r[29]]);
            let (flags, state) = (r[30], r[31]);
            let raw = (flags & TCP != 0).then_some(RawOptions {
                keepalive: flags & KEEPOPEN != 0,
                idle_jiffies: idle,
                intvl_jiffies: intvl,
                probes,
                user_timeout_ms: user_timeout,
            });
            if self.calibration == Some((pid, inode)) {
                self.hz = raw.as_ref().and_then(Calibration::hz);
                continue;
            }
            // Socket inodes are 32-bit (see `proc::parse::socket_inode`): a wider one names no dumped socket.
            let Ok(inode) = u32::try_from(inode) else {
                continue;
            };
            self.by_pid
                .entry(pid)
                .or_default()
                .push(SocketFd { fd, inode });
            // Kept only where kwatch would read them: a socket with SO_KEEPALIVE or TCP_USER_TIMEOUT, whose
            // timers the options drive, or a listener, whose options its connections inherit. Another socket is
            // read through its owner if the dump shows a timer pending on it (rare without either option). In the
            // benchmark's million, the sockets worth a read were 250,016 (strace counted the pidfd_getfd calls of
            // the owner path): the table holds those, not the million.
            if let Some(raw) =
                raw.filter(|r| r.keepalive || r.user_timeout_ms != 0 || state == LISTEN)
            {
                self.tcp.push(inode, raw);
            }
        }
    }

    fn finish(mut self, reads: Reads) -> TaskSockets {
        // A thread with a file table of its own (rare: unshare(CLONE_FILES)) is iterated apart from its process,
        // under the same pid: its sockets are kept beside the process's, as the owners they are.
        for fds in self.by_pid.values_mut() {
            fds.sort_unstable();
            fds.dedup();
        }
        let options = self.hz.map(|hz| self.tcp.build(hz));
        TaskSockets {
            by_pid: self.by_pid,
            options,
            reads,
        }
    }
}

#[cfg(test)]
fn parse(bytes: &[u8]) -> TaskSockets {
    let mut records = Records::new(None);
    records.parse(bytes);
    records.finish(Reads::Typed)
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

    /// One record as bpf/task_sockets.bpf.c writes it, of an ESTABLISHED socket when TCP.
    fn record(pid: u32, fd: u32, inode: u64, tcp: Option<RawOptions>) -> Vec<u8> {
        record_in(1, pid, fd, inode, tcp)
    }

    fn record_in(state: u8, pid: u32, fd: u32, inode: u64, tcp: Option<RawOptions>) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&pid.to_ne_bytes());
        r.extend_from_slice(&fd.to_ne_bytes());
        r.extend_from_slice(&inode.to_ne_bytes());
        let raw = tcp.unwrap_or(RawOptions {
            keepalive: false,
            idle_jiffies: 0,
            intvl_jiffies: 0,
            probes: 0,
            user_timeout_ms: 0,
        });
        r.extend_from_slice(&raw.idle_jiffies.to_ne_bytes());
        r.extend_from_slice(&raw.intvl_jiffies.to_ne_bytes());
        r.extend_from_slice(&raw.user_timeout_ms.to_ne_bytes());
        r.extend_from_slice(&raw.probes.to_ne_bytes());
        let flags = match tcp {
            Some(raw) => TCP | if raw.keepalive { KEEPOPEN } else { 0 },
            None => 0,
        };
        r.extend_from_slice(&[flags, state]);
        assert_eq!(r.len(), RECORD);
        r
    }

    fn raw(idle_jiffies: u32, intvl_jiffies: u32) -> RawOptions {
        RawOptions {
            keepalive: true,
            idle_jiffies,
            intvl_jiffies,
            probes: 4,
            user_timeout_ms: 45_000,
        }
    }

    #[test]
    fn records_group_by_pid_sorted_by_fd() {
        let mut bytes = Vec::new();
        // The record past 32 bits is dropped: no dumped socket has such an inode.
        for (pid, fd, inode) in [
            (7u32, 9u32, 5u64),
            (7, 10, 1 << 40 | 5),
            (7, 3, 6),
            (8, 4, 7),
            (7, 3, 6),
        ] {
            bytes.extend(record(pid, fd, inode, None));
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        let by_pid = parse(&bytes).by_pid;
        assert_eq!(
            by_pid[&7],
            [SocketFd { fd: 3, inode: 6 }, SocketFd { fd: 9, inode: 5 }]
        );
        assert_eq!(by_pid[&8], [SocketFd { fd: 4, inode: 7 }]);
        assert_eq!(by_pid.len(), 2);
    }

    #[test]
    fn the_calibration_socket_gives_hz_and_is_left_out() {
        let parse_with = |calibration: RawOptions| {
            let mut records = Records::new(None);
            records.calibration = Some((99, 500));
            let mut bytes = record(7, 3, 6, Some(raw(60 * 250, 5 * 250)));
            bytes.extend(record(7, 4, 8, None));
            bytes.extend(record(99, 10, 500, Some(calibration)));
            records.parse(&bytes);
            records.finish(Reads::Typed)
        };
        let hz = 250;
        let got = parse_with(raw(Calibration::IDLE_S * hz, Calibration::INTVL_S * hz));
        assert!(!got.by_pid.contains_key(&99), "{:?}", got.by_pid);
        let options = got.options.expect("HZ measured");
        assert_eq!(options.count(), 1);
        let s = options.get(6).unwrap();
        assert_eq!((s.idle_s, s.intvl_s, s.cnt), (Some(60), Some(5), Some(4)));
        assert_eq!(options.get(8), None, "not a TCP socket");
        // A record that does not say one HZ (changed meanwhile, or misread) gives no options at all.
        let got = parse_with(raw(Calibration::IDLE_S * hz, Calibration::INTVL_S * hz + 1));
        assert!(got.options.is_none());
        assert!(parse(&record(7, 3, 6, Some(raw(1, 1)))).options.is_none());
    }

    #[test]
    fn only_options_kwatch_would_read_are_kept() {
        let mut records = Records::new(None);
        records.calibration = Some((99, 500));
        let off = RawOptions {
            keepalive: false,
            user_timeout_ms: 0,
            ..raw(7200, 75)
        };
        let mut bytes = record(
            99,
            10,
            500,
            Some(raw(Calibration::IDLE_S, Calibration::INTVL_S)),
        );
        bytes.extend(record(7, 3, 1, Some(off)));
        bytes.extend(record_in(LISTEN, 7, 4, 2, Some(off)));
        bytes.extend(record(7, 5, 3, Some(raw(60, 5))));
        bytes.extend(record(
            7,
            6,
            4,
            Some(RawOptions {
                user_timeout_ms: 1,
                ..off
            }),
        ));
        records.parse(&bytes);
        let options = records.finish(Reads::Typed).options.unwrap();
        let kept: Vec<bool> = (1..=4).map(|i| options.get(i).is_some()).collect();
        assert_eq!(kept, [false, true, true, true]);
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
        let by_bpf = socket_fds(&PROGRAMS).expect("BPF iterator").by_pid;
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
        let wanted = [
            crate::testing::socket_inode(&listener),
            crate::testing::socket_inode(&client),
        ];
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

    /// The options the iterator reads are what getsockopt answers, set or not, by either program (needs root).
    #[test]
    fn the_iterator_reads_the_options_getsockopt_reports() {
        if !root_or_skip() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ka = socket2::TcpKeepalive::new()
            .with_time(std::time::Duration::from_secs(30))
            .with_interval(std::time::Duration::from_secs(5))
            .with_retries(4);
        socket2::SockRef::from(&listener)
            .set_tcp_keepalive(&ka)
            .unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(&client)
            .set_tcp_user_timeout(Some(std::time::Duration::from_millis(45_500)))
            .unwrap();
        socket2::SockRef::from(&client)
            .set_tcp_keepalive(
                &socket2::TcpKeepalive::new().with_time(std::time::Duration::from_secs(7)),
            )
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        // SO_KEEPALIVE alone: the namespace's sysctls, as getsockopt says. Untouched (keepalive off, no user
        // timeout, not listening): not kept, kwatch does not read such a socket unless a timer runs on it.
        let on = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(&on).set_keepalive(true).unwrap();
        let untouched = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        for reads in PROGRAMS {
            let options = socket_fds(&[reads])
                .expect("BPF iterator")
                .options
                .expect("HZ measured");
            let sockets: [&dyn std::os::fd::AsFd; 3] = [&listener, &client, &server];
            for s in sockets {
                let inode = crate::testing::socket_inode(s);
                let want = crate::sockopt::read_options(s).unwrap();
                assert_eq!(options.get(inode), Some(want), "{reads:?}: inode {inode}");
            }
            let got = options.get(crate::testing::socket_inode(&on)).unwrap();
            assert_eq!(got, crate::sockopt::read_options(&on).unwrap(), "{reads:?}");
            assert_eq!((got.enabled, got.user_timeout_ms), (Some(true), Some(0)));
            assert_eq!(
                options.get(crate::testing::socket_inode(&untouched)),
                None,
                "{reads:?}"
            );
        }
    }

    /// Whether the running kernel's release (/proc/sys/kernel/osrelease) is at least `major.minor`.
    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let running = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        running >= (major, minor)
    }

    /// Both programs write the same record, byte for byte, for the same sockets: TCP over IPv4 and IPv6 with and
    /// without options, a listener and its connections, a socket of another namespace whose sysctls differ, UDP and
    /// Unix sockets. And kwatch uses the typed one wherever the kernel has `bpf_sock_from_file` (5.11+), the
    /// probing one when forced to (needs root).
    #[test]
    fn both_programs_write_the_same_records() {
        if !root_or_skip() {
            return;
        }
        let secs = std::time::Duration::from_secs;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ka = socket2::TcpKeepalive::new()
            .with_time(secs(30))
            .with_interval(secs(5))
            .with_retries(4);
        socket2::SockRef::from(&listener)
            .set_tcp_keepalive(&ka)
            .unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let client_ref = socket2::SockRef::from(&client);
        client_ref
            .set_tcp_user_timeout(Some(std::time::Duration::from_millis(45_500)))
            .unwrap();
        client_ref
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(secs(7)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        let on = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket2::SockRef::from(&on).set_keepalive(true).unwrap();
        let untouched = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        v6.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_interval(secs(11)))
            .unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (unix, _unix_peer) = std::os::unix::net::UnixStream::pair().unwrap();
        // A thread moves to a network namespace of its own (gone with its last socket), sets its sysctls (probes
        // above 127, which no socket may set for itself, and a byte wide since Linux 6.0) and opens a socket there.
        let other_ns = std::thread::spawn(|| {
            // SAFETY: CLONE_NEWNET changes only this thread's network namespace; nothing shared is unshared.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .unwrap();
            for (name, value) in [
                ("tcp_keepalive_time", "1234"),
                ("tcp_keepalive_intvl", "21"),
                ("tcp_keepalive_probes", "200"),
            ] {
                std::fs::write(format!("/proc/sys/net/ipv4/{name}"), value).unwrap();
            }
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_keepalive(true).unwrap();
            socket
        })
        .join()
        .unwrap();
        // The records carry the kernel's `i_ino`, 64 bits wide.
        let inode = |s: &dyn std::os::fd::AsFd| u64::from(crate::testing::socket_inode(s));
        let sockets: [(&str, u64); 10] = [
            ("listener", inode(&listener)),
            ("client", inode(&client)),
            ("server", inode(&server)),
            ("keepalive on", inode(&on)),
            ("untouched", inode(&untouched)),
            ("ipv6", inode(&v6)),
            ("udp", inode(&udp)),
            ("unix", inode(&unix)),
            ("other namespace", inode(&other_ns)),
            ("client again", inode(&client)),
        ];
        let me = std::process::id();
        let records = |reads: Reads| {
            let (file, opened) = open(&[reads]).expect("BPF iterator");
            assert_eq!(opened, reads);
            let mut ours = FxHashMap::default();
            read_records(file, |bytes| {
                for r in bytes.chunks_exact(RECORD) {
                    let pid = u32::from_ne_bytes(r[0..4].try_into().unwrap());
                    let ino = u64::from_ne_bytes(r[8..16].try_into().unwrap());
                    if pid == me && sockets.iter().any(|&(_, i)| i == ino) {
                        ours.insert(ino, r.to_vec());
                    }
                }
            })
            .unwrap();
            ours
        };
        let typed = records(Reads::Typed);
        let probed = records(Reads::Probed);
        for (name, ino) in sockets {
            let record = typed
                .get(&ino)
                .unwrap_or_else(|| panic!("{name}: no record"));
            assert_eq!(Some(record), probed.get(&ino), "{name}");
        }
        // What the records say, that both say it: flags, and the other namespace's probes.
        let flags = |name: &str| typed[&sockets.iter().find(|s| s.0 == name).unwrap().1][30];
        assert_eq!(flags("keepalive on"), TCP | KEEPOPEN);
        assert_eq!(flags("untouched"), TCP);
        assert_eq!(flags("ipv6"), TCP | KEEPOPEN);
        assert_eq!((flags("udp"), flags("unix")), (0, 0));
        let other = &typed[&inode(&other_ns)];
        assert_eq!(u16::from_ne_bytes([other[28], other[29]]), 200);
        // Unforced, kwatch takes the typed program wherever the kernel has its helpers.
        let default = socket_fds(&PROGRAMS).expect("BPF iterator").reads;
        if kernel_at_least(5, 11) {
            assert_eq!(default, Reads::Typed);
        }
    }

    /// A program that does not load (here: one the object lacks, as a kernel refuses the typed one before 5.11)
    /// gives way to the next; when none loads, the error names every failure (needs root).
    #[test]
    fn a_program_that_does_not_load_gives_way_to_the_next() {
        if !root_or_skip() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ino = crate::testing::socket_inode(&listener);
        let (file, reads) = open_named([
            ("task_sock_absent", Reads::Typed),
            (Reads::Probed.program(), Reads::Probed),
        ])
        .expect("the second program");
        assert_eq!(reads, Reads::Probed);
        let mut seen = false;
        read_records(file, |bytes| {
            seen |= bytes
                .chunks_exact(RECORD)
                .any(|r| u64::from_ne_bytes(r[8..16].try_into().unwrap()) == u64::from(ino));
        })
        .unwrap();
        assert!(seen, "the listener's record");
        let error = open_named([
            ("task_sock_absent", Reads::Typed),
            ("task_sock_gone", Reads::Probed),
        ])
        .expect_err("neither loads")
        .to_string();
        assert!(
            error.contains("task_sock_gone") && error.contains("task_sock_absent"),
            "{error}"
        );
    }

    /// A socket that set only SO_KEEPALIVE gets its own namespace's sysctls, not kwatch's (needs root).
    #[test]
    fn a_socket_without_options_reads_its_own_namespaces_sysctls() {
        if !root_or_skip() {
            return;
        }
        // A thread of this test moves to a network namespace of its own (gone with its last socket) and opens a
        // TCP socket there after setting that namespace's keepalive sysctls.
        let (socket, want) = std::thread::spawn(|| {
            // SAFETY: CLONE_NEWNET changes only this thread's network namespace; nothing shared is unshared.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .unwrap();
            for (name, value) in [
                ("tcp_keepalive_time", "1234"),
                ("tcp_keepalive_intvl", "21"),
                ("tcp_keepalive_probes", "5"),
            ] {
                // /proc/sys/net is the namespace of the thread that opens it.
                std::fs::write(format!("/proc/sys/net/ipv4/{name}"), value).unwrap();
            }
            let socket = rustix::net::socket(
                rustix::net::AddressFamily::INET6,
                rustix::net::SocketType::STREAM,
                None,
            )
            .unwrap();
            rustix::net::sockopt::set_socket_keepalive(&socket, true).unwrap();
            let want = crate::sockopt::read_options(&socket).unwrap();
            (socket, want)
        })
        .join()
        .unwrap();
        assert_eq!(
            (want.idle_s, want.intvl_s, want.cnt),
            (Some(1234), Some(21), Some(5)),
            "the namespace's sysctls"
        );
        let inode = crate::testing::socket_inode(&socket);
        for reads in PROGRAMS {
            let options = socket_fds(&[reads]).unwrap().options.unwrap();
            assert_eq!(options.get(inode), Some(want), "{reads:?}");
        }
    }
}
