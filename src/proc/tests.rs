//! Fake proc trees in a tempdir drive the scan: sockets, shared inodes, unreadable and vanished processes.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use super::*;

/// A proc root under construction in a tempdir, with a passwd file beside it.
struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new() -> FakeProc {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("proc")).unwrap();
        fs::write(
            dir.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
        )
        .unwrap();
        FakeProc { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    fn config(&self, only_pids: Option<Vec<u32>>) -> ScanConfig {
        ScanConfig {
            proc_root: self.root(),
            passwd_path: self.dir.path().join("passwd"),
            only_pids,
            netns: None,
            bpf_min_fds: usize::MAX,
        }
    }

    /// A live-looking process: comm, cmdline, status with `Uid:`, and `fd/` holding links to `targets`.
    /// (procfs itself needs only the numeric directory to list a pid.)
    fn process(
        &self,
        pid: u32,
        comm: &[u8],
        cmdline: &[u8],
        uid: u32,
        fds: &[(u32, &str)],
    ) -> PathBuf {
        let dir = self.root().join(pid.to_string());
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("comm"), [comm, b"\n"].concat()).unwrap();
        fs::write(dir.join("cmdline"), cmdline).unwrap();
        let status = format!(
            "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\n"
        );
        fs::write(dir.join("status"), status).unwrap();
        fs::create_dir(dir.join("fd")).unwrap();
        for (fd, target) in fds {
            symlink(target, dir.join("fd").join(fd.to_string())).unwrap();
        }
        dir
    }
}

fn owners(map: &ProcMap, inode: u32) -> Vec<(u32, u32)> {
    map.owners
        .get(inode)
        .map(|o| o.iter().map(|o| (o.pid, o.fd)).collect())
        .unwrap_or_default()
}

/// The usual cast: two processes sharing a socket, a process without sockets, noise in the root.
fn standard_tree() -> FakeProc {
    let fake = FakeProc::new();
    fake.process(
        100,
        b"nginx",
        b"nginx: master process\0-g\0daemon off;\0",
        33,
        &[
            (0, "/dev/null"),
            (3, "socket:[1234]"),
            (4, "pipe:[5]"),
            (7, "socket:[999]"),
            (12, "socket:[1234]"),
        ],
    );
    fake.process(
        200,
        b"worker",
        b"worker\0",
        1000,
        &[(1, "/dev/null"), (5, "socket:[1234]")],
    );
    fake.process(
        300,
        b"sleep",
        b"sleep\x00100\x00",
        0,
        &[(0, "/dev/null"), (1, "pipe:[5]")],
    );
    let root = fake.root();
    fs::create_dir(root.join("net")).unwrap();
    fs::write(root.join("uptime"), "1.0 1.0\n").unwrap();
    symlink("100", root.join("self")).unwrap();
    fake
}

#[test]
fn maps_socket_inodes_to_every_owner() {
    let fake = standard_tree();
    let map = map_inodes_with(&fake.config(None));

    assert_eq!(
        owners(&map, 1234),
        [(100, 3), (100, 12), (200, 5)],
        "shared inode lists every (pid, fd), sorted"
    );
    assert_eq!(owners(&map, 999), [(100, 7)]);
    assert_eq!(
        map.owners.len(),
        2,
        "pipes and files are not sockets: {:?}",
        map.owners
    );
    assert_eq!(
        map.processes.keys().copied().collect::<Vec<_>>(),
        [100, 200],
        "300 holds no socket"
    );
    assert!(map.unreadable.is_empty());
    assert!(map.warnings.is_empty(), "{:?}", map.warnings);

    let nginx = &map.processes[&100];
    assert_eq!(
        nginx,
        &Process {
            pid: 100,
            comm: "nginx".into(),
            cmdline: vec![
                "nginx: master process".into(),
                "-g".into(),
                "daemon off;".into()
            ],
            uid: Some(33),
            user: Some("www-data".into()),
        }
    );
    let worker = &map.processes[&200];
    assert_eq!(
        (worker.uid, worker.user.as_deref()),
        (Some(1000), None),
        "uid without a passwd entry"
    );
}

#[test]
fn unreadable_fd_tables_are_listed_with_their_comm() {
    let fake = standard_tree();
    // As root, chmod does not stop us: make `fd` something that cannot be opened as a directory.
    let not_a_dir = fake.process(400, b"secret", b"secret\0", 0, &[]);
    fs::remove_dir(not_a_dir.join("fd")).unwrap();
    fs::write(not_a_dir.join("fd"), "").unwrap();
    let looping = fake.process(410, b"loop", b"loop\0", 0, &[]);
    fs::remove_dir(looping.join("fd")).unwrap();
    symlink("fd", looping.join("fd")).unwrap();
    let nameless = fake.process(420, b"x", b"", 0, &[]);
    fs::remove_dir(nameless.join("fd")).unwrap();
    fs::write(nameless.join("fd"), "").unwrap();
    fs::remove_file(nameless.join("comm")).unwrap();
    fs::create_dir(nameless.join("comm")).unwrap();

    let map = map_inodes_with(&fake.config(None));

    assert_eq!(
        map.unreadable,
        [
            UnreadableProcess {
                pid: 400,
                comm: Some("secret".into())
            },
            UnreadableProcess {
                pid: 410,
                comm: Some("loop".into())
            },
            UnreadableProcess {
                pid: 420,
                comm: None
            },
        ]
    );
    assert_eq!(
        owners(&map, 1234),
        [(100, 3), (100, 12), (200, 5)],
        "others are still mapped"
    );
}

#[test]
fn kernel_threads_are_not_counted_as_unreadable() {
    let fake = standard_tree();
    // Both fd tables are closed to us; only the stat flags tell the kernel thread (PF_KTHREAD) apart.
    for (pid, comm, flags) in [(2, "kthreadd", 0x0020_8040u32), (500, "app", 0x0040_0100)] {
        let dir = fake.process(pid, comm.as_bytes(), b"", 0, &[]);
        fs::remove_dir(dir.join("fd")).unwrap();
        fs::write(dir.join("fd"), "").unwrap();
        fs::write(
            dir.join("stat"),
            format!("{pid} ({comm}) S 0 0 0 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0\n"),
        )
        .unwrap();
    }
    let map = map_inodes_with(&fake.config(None));
    assert_eq!(
        map.unreadable,
        [UnreadableProcess {
            pid: 500,
            comm: Some("app".into())
        }]
    );
}

#[test]
fn vanished_processes_are_skipped_silently() {
    let fake = standard_tree();
    // Only a pid directory: the process exited between the listing and the fd scan.
    fs::create_dir(fake.root().join("500")).unwrap();
    // fd/ is read but comm is gone by the time we describe the process.
    let late = fake.process(600, b"late", b"late\0", 0, &[(3, "socket:[4242]")]);
    fs::remove_file(late.join("comm")).unwrap();
    // A dangling `fd` symlink is ENOENT as well.
    let dangling = fake.process(700, b"dangling", b"", 0, &[]);
    fs::remove_dir(dangling.join("fd")).unwrap();
    symlink("nowhere", dangling.join("fd")).unwrap();

    let map = map_inodes_with(&fake.config(None));

    assert!(map.unreadable.is_empty(), "{:?}", map.unreadable);
    assert!(!map.owners.contains_key(4242));
    assert_eq!(
        map.processes.keys().copied().collect::<Vec<_>>(),
        [100, 200]
    );
    assert!(map.warnings.is_empty(), "{:?}", map.warnings);
}

#[test]
fn raw_names_are_kept_lossily() {
    let fake = FakeProc::new();
    fake.process(
        100,
        b"\x1b]0;evil\x07\xff",
        b"a\xfe\0\x1b[2J\0",
        0,
        &[(3, "socket:[1]")],
    );

    let map = map_inodes_with(&fake.config(None));

    let p = &map.processes[&100];
    assert_eq!(p.comm, "\x1b]0;evil\x07\u{fffd}");
    assert_eq!(p.cmdline, ["a\u{fffd}", "\x1b[2J"]);
    assert_eq!(p.user.as_deref(), Some("root"));
}

#[test]
fn odd_fd_entries_are_not_sockets() {
    let fake = FakeProc::new();
    let dir = fake.process(100, b"odd", b"", 0, &[(3, "socket:[77]")]);
    fs::write(dir.join("fd/4"), "socket:[78]").unwrap(); // a regular file: readlink says EINVAL
    symlink(format!("socket:[79]{}", "x".repeat(100)), dir.join("fd/5")).unwrap();
    symlink("socket:[80]", dir.join("fd/notanumber")).unwrap();

    let map = map_inodes_with(&fake.config(None));

    assert_eq!(map.owners.keys().collect::<Vec<_>>(), [77]);
    assert!(map.unreadable.is_empty());
}

#[test]
fn only_pids_limits_the_scan() {
    let fake = standard_tree();
    let secret = fake.process(400, b"secret", b"", 0, &[]);
    fs::remove_dir(secret.join("fd")).unwrap();
    fs::write(secret.join("fd"), "").unwrap();

    let map = map_inodes_with(&fake.config(Some(vec![400, 200, 99999, 200])));

    assert_eq!(owners(&map, 1234), [(200, 5)]);
    assert_eq!(map.owners.len(), 1);
    assert_eq!(map.processes.keys().copied().collect::<Vec<_>>(), [200]);
    assert_eq!(
        map.unreadable,
        [UnreadableProcess {
            pid: 400,
            comm: Some("secret".into())
        }]
    );
    assert!(
        map.warnings.is_empty(),
        "a missing pid is simply absent: {:?}",
        map.warnings
    );
}

#[test]
fn missing_passwd_means_no_names_and_no_warning() {
    let fake = standard_tree();
    let config = ScanConfig {
        passwd_path: fake.dir.path().join("nope"),
        ..fake.config(None)
    };

    let map = map_inodes_with(&config);

    assert_eq!(map.processes[&100].user, None);
    assert_eq!(map.processes[&100].uid, Some(33));
    assert!(map.warnings.is_empty(), "{:?}", map.warnings);
}

#[test]
fn unreadable_passwd_is_a_warning() {
    let fake = standard_tree();
    let config = ScanConfig {
        passwd_path: fake.dir.path().to_owned(),
        ..fake.config(None)
    };

    let map = map_inodes_with(&config);

    assert_eq!(map.warnings.len(), 1, "{:?}", map.warnings);
    assert!(
        map.warnings[0].starts_with("cannot read user names from '"),
        "{}",
        map.warnings[0]
    );
    assert_eq!(owners(&map, 1234).len(), 3, "the scan goes on");
}

#[test]
fn missing_proc_root_is_a_warning_not_a_panic() {
    let fake = FakeProc::new();
    let config = ScanConfig {
        proc_root: fake.dir.path().join("no-such-proc"),
        ..fake.config(None)
    };

    let map = map_inodes_with(&config);

    assert!(map.owners.is_empty() && map.processes.is_empty());
    assert_eq!(map.warnings.len(), 1, "{:?}", map.warnings);
    assert!(
        map.warnings[0].starts_with("cannot list processes in '"),
        "{}",
        map.warnings[0]
    );
    assert!(
        map.warnings[0].contains("no-such-proc"),
        "{}",
        map.warnings[0]
    );
}

#[test]
fn a_pid_entry_that_is_not_a_directory_is_reported() {
    let fake = standard_tree();
    fs::write(fake.root().join("800"), "").unwrap();

    let map = map_inodes_with(&fake.config(None));

    assert_eq!(map.warnings.len(), 1, "{:?}", map.warnings);
    assert!(
        map.warnings[0].starts_with("skipped 1 entries of '"),
        "{}",
        map.warnings[0]
    );
    assert_eq!(map.processes.len(), 2);
}

#[test]
fn map_inodes_reads_the_given_root() {
    let fake = standard_tree();
    let map = map_inodes(&fake.root(), Some(&[100]));
    assert_eq!(owners(&map, 1234), [(100, 3), (100, 12)]);
    assert_eq!(map.processes[&100].comm, "nginx");
}

#[test]
fn from_scans_sorts_regardless_of_input_order() {
    let process = |pid| Process {
        pid,
        comm: String::new(),
        cmdline: vec![],
        uid: None,
        user: None,
    };
    let scans = vec![
        PidScan::Sockets {
            process: process(9),
            sockets: vec![SocketFd { fd: 2, inode: 1 }],
        },
        PidScan::Unreadable(UnreadableProcess { pid: 8, comm: None }),
        PidScan::Gone,
        PidScan::Sockets {
            process: process(3),
            sockets: vec![SocketFd { fd: 7, inode: 1 }, SocketFd { fd: 4, inode: 1 }],
        },
        PidScan::Unreadable(UnreadableProcess { pid: 1, comm: None }),
        PidScan::NoSockets,
    ];

    let map = ProcMap::from_scans(scans);

    assert_eq!(owners(&map, 1), [(3, 4), (3, 7), (9, 2)]);
    assert_eq!(
        map.unreadable.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [1, 8]
    );
    assert_eq!(map.processes.len(), 2);
}

#[test]
fn scanner_parts_can_be_used_one_process_at_a_time() {
    let fake = standard_tree();
    let scanner = Scanner::new(fake.root(), Users::default());

    let mut pids = scanner.pids().unwrap().pids;
    pids.sort_unstable();
    assert_eq!(pids, [100, 200, 300]);
    assert_eq!(
        sorted_fds(&scanner, 100),
        [
            SocketFd { fd: 3, inode: 1234 },
            SocketFd { fd: 7, inode: 999 },
            SocketFd {
                fd: 12,
                inode: 1234
            }
        ]
    );
    assert_eq!(scanner.scan_fds(300), FdScan::Sockets(vec![]));
    assert_eq!(scanner.scan_fds(12345), FdScan::Gone);
    assert_eq!(scanner.scan_pid(300), PidScan::NoSockets);
    assert_eq!(scanner.describe(100).unwrap().user, None, "no passwd given");
}

fn sorted_fds(scanner: &Scanner, pid: u32) -> Vec<SocketFd> {
    let FdScan::Sockets(mut fds) = scanner.scan_fds(pid) else {
        panic!("pid {pid}: not readable")
    };
    fds.sort();
    fds
}

/// Sets the mtime of `pid`'s `fd/` to `secs`: a stamp the test controls, whatever the filesystem's clock does.
fn set_fd_mtime(fake: &FakeProc, pid: u32, secs: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let at = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at,
        last_modification: at,
    };
    let path = fake.root().join(format!("{pid}/fd"));
    utimensat(CWD, &path, &times, AtFlags::empty()).unwrap();
}

/// The standard tree with every `fd/` stamped at time 1.
fn stamped_tree() -> FakeProc {
    let fake = standard_tree();
    for pid in [100, 200, 300] {
        set_fd_mtime(&fake, pid, 1);
    }
    fake
}

#[test]
fn cache_reads_each_process_once_while_nothing_changes() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));

    let first = cache.refresh(&[1234, 999]).clone();
    assert_eq!(first, map_inodes_with(&fake.config(None)));
    assert_eq!(cache.stats().scanned, 3);
    assert_eq!(cache.stats().pids, 3);

    let second = cache.refresh(&[1234, 999]).clone();
    assert_eq!(second, first);
    assert_eq!(
        cache.stats(),
        RefreshStats {
            pids: 3,
            scanned: 0,
            full: false,
            bpf: false
        }
    );
}

#[test]
fn cache_rereads_a_process_whose_fd_table_changed_and_forgets_exited_ones() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));
    cache.refresh(&[1234, 999]);

    symlink("socket:[777]", fake.root().join("300/fd/9")).unwrap();
    set_fd_mtime(&fake, 300, 2);
    fs::remove_dir_all(fake.root().join("200")).unwrap();
    fake.process(400, b"new", b"new\0", 0, &[(3, "socket:[888]")]);

    let map = cache.refresh(&[1234, 999, 777, 888]).clone();
    assert_eq!(owners(&map, 777), [(300, 9)]);
    assert_eq!(owners(&map, 888), [(400, 3)]);
    assert_eq!(owners(&map, 1234), [(100, 3), (100, 12)], "200 exited");
    assert_eq!(
        map.processes.keys().copied().collect::<Vec<_>>(),
        [100, 300, 400]
    );
    assert_eq!(
        cache.stats(),
        RefreshStats {
            pids: 3,
            scanned: 2,
            full: false,
            bpf: false
        },
        "only 300 (changed) and 400 (new) are read"
    );
    assert_eq!(map, map_inodes_with(&fake.config(None)));
}

#[test]
fn the_map_keeps_every_owner_when_resolve_reads_more_after_it_took_the_lists() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));
    cache.update();
    assert_eq!(cache.map(), &map_inodes_with(&fake.config(None)));

    // While the dump runs: 300 opens a socket (its stamp moves), 400 starts, 200 exits.
    symlink("socket:[777]", fake.root().join("300/fd/9")).unwrap();
    set_fd_mtime(&fake, 300, 2);
    fs::remove_dir_all(fake.root().join("200")).unwrap();
    fake.process(400, b"new", b"new\0", 0, &[(3, "socket:[888]")]);

    cache.resolve(&[777, 888, 1234]);
    assert_eq!(
        cache.stats().scanned,
        3 + 2,
        "then 300 and 400 are read again"
    );
    // 100's owners come from the first build, whose lists it took; 300's and 400's from the second.
    let map = cache.into_map();
    assert_eq!(owners(&map, 1234), [(100, 3), (100, 12)], "200 exited");
    assert_eq!(map, map_inodes_with(&fake.config(None)));
}

#[test]
fn cache_finds_a_socket_its_stamps_missed_by_reading_everything() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));
    cache.refresh(&[1234, 999]);

    // fd 7 of 100 now holds another socket: same count, same mtime, so the stamp cannot tell.
    fs::remove_file(fake.root().join("100/fd/7")).unwrap();
    symlink("socket:[555]", fake.root().join("100/fd/7")).unwrap();
    set_fd_mtime(&fake, 100, 1);

    cache.update();
    assert_eq!(cache.stats().scanned, 0, "the stamp did not move");
    cache.resolve(&[1234, 555]);
    assert_eq!(owners(cache.map(), 555), [(100, 7)]);
    assert!(owners(cache.map(), 999).is_empty());
    assert_eq!(
        cache.stats(),
        RefreshStats {
            pids: 3,
            scanned: 3,
            full: true,
            bpf: false
        }
    );
}

#[test]
fn cache_does_not_read_everything_again_for_sockets_nobody_holds() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));
    // 4242: a kernel socket, in the dump but in no fd table. 0: a socket without a file.
    cache.refresh(&[1234, 4242, 0]);
    assert!(!cache.map().owners.contains_key(4242));

    cache.refresh(&[1234, 4242, 0]);
    assert_eq!(
        cache.stats(),
        RefreshStats {
            pids: 3,
            scanned: 0,
            full: false,
            bpf: false
        }
    );

    // A new unknown socket is looked for once more.
    cache.refresh(&[1234, 4242, 4343]);
    assert!(cache.stats().full);
    assert_eq!(cache.stats().scanned, 3);
}

#[test]
fn cache_reads_everything_every_full_scan_interval() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(None));
    let mut scanned = Vec::new();
    for _ in 0..FULL_SCAN_EVERY {
        cache.refresh(&[1234]);
        scanned.push(cache.stats().scanned);
    }
    assert_eq!(scanned[0], 3);
    assert!(scanned[1..scanned.len() - 1].iter().all(|n| *n == 0));
    assert_eq!(scanned.last(), Some(&3));
    assert!(cache.stats().full);
}

#[test]
fn cache_with_only_pids_reads_only_those() {
    let fake = stamped_tree();
    let mut cache = ProcCache::new(&fake.config(Some(vec![200, 200, 12345])));
    let map = cache.refresh(&[1234, 999]).clone();
    assert_eq!(owners(&map, 1234), [(200, 5)]);
    assert_eq!(map.processes.keys().copied().collect::<Vec<_>>(), [200]);
    assert_eq!(cache.stats().pids, 2);

    cache.refresh(&[1234, 999]);
    assert_eq!(
        cache.stats().scanned,
        1,
        "only the missing pid is tried again"
    );
}

/// Puts `pid` in the namespace `ns` of the fake tree: `PID/ns/net` is a hard link to one file per namespace, so
/// processes of one namespace share its inode as they do under /proc.
fn in_netns(fake: &FakeProc, pid: u32, ns: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let file = fake.dir.path().join(format!("netns-{ns}"));
    if !file.exists() {
        fs::write(&file, ns).unwrap();
    }
    let dir = fake.root().join(pid.to_string()).join("ns");
    fs::create_dir_all(&dir).unwrap();
    fs::hard_link(&file, dir.join("net")).unwrap();
    fs::metadata(&file).unwrap().ino()
}

#[test]
fn processes_of_other_namespaces_are_read_only_when_a_socket_is_still_unowned() {
    let fake = FakeProc::new();
    fake.process(100, b"web", b"web\0", 0, &[(3, "socket:[1001]")]);
    fake.process(200, b"db", b"db\0", 0, &[(4, "socket:[2001]")]);
    fake.process(300, b"proxy", b"proxy\0", 0, &[(5, "socket:[1002]")]);
    // Not allowed to see its namespace: read, it may be ours.
    fake.process(400, b"hidden", b"hidden\0", 0, &[(6, "socket:[1003]")]);
    let ours = in_netns(&fake, 100, "host");
    in_netns(&fake, 200, "container");
    // A process of another namespace holding a socket of ours (opened before it moved, or passed to it).
    in_netns(&fake, 300, "container");
    let mut cache = ProcCache::new(&ScanConfig {
        netns: Some(ours),
        ..fake.config(None)
    });

    let map = cache.refresh(&[1001, 1003]).clone();
    assert_eq!(owners(&map, 1001), [(100, 3)]);
    assert_eq!(owners(&map, 1003), [(400, 6)]);
    assert!(
        owners(&map, 2001).is_empty(),
        "the container's own process is not read"
    );
    assert_eq!(cache.stats().scanned, 2);
    assert!(!cache.stats().full);

    // A socket of ours that no process of our namespace holds: everything is read, once.
    let map = cache.refresh(&[1001, 1002, 1003]).clone();
    assert_eq!(owners(&map, 1002), [(300, 5)]);
    assert!(cache.stats().full);
    // From then on the process that held it is kept up to date like the others; the rest is left alone again.
    let map = cache.refresh(&[1001, 1002, 1003]).clone();
    assert_eq!(owners(&map, 1002), [(300, 5)]);
    assert!(!cache.stats().full);

    // Without a namespace named, every process is read at once (the map of before this option).
    let mut all = ProcCache::new(&fake.config(None));
    assert_eq!(owners(all.refresh(&[1001]), 2001), [(200, 4)]);
}

#[test]
fn a_process_of_another_namespace_is_looked_at_once_until_the_next_full_rescan() {
    let fake = FakeProc::new();
    fake.process(100, b"web", b"web\0", 0, &[(3, "socket:[1001]")]);
    fake.process(200, b"db", b"db\0", 0, &[(4, "socket:[2001]")]);
    let ours = in_netns(&fake, 100, "host");
    in_netns(&fake, 200, "container");
    let mut cache = ProcCache::new(&ScanConfig {
        netns: Some(ours),
        ..fake.config(None)
    });
    assert!(owners(cache.refresh(&[1001]), 2001).is_empty());
    // Its namespace can no longer be told: looked at again, it would be read (it might be ours). It is not
    // looked at again until a full rescan.
    fs::remove_file(fake.root().join("200/ns/net")).unwrap();
    for _ in 1..FULL_SCAN_EVERY - 1 {
        assert!(owners(cache.refresh(&[1001]), 2001).is_empty());
        assert!(!cache.stats().full);
    }
    assert_eq!(owners(cache.refresh(&[1001]), 2001), [(200, 4)]);
    assert!(cache.stats().full);
}
