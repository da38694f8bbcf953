//! The /proc cache and the reusing collector on the real /proc and kernel: sockets opened between refreshes are
//! found with our pid, also when an fd is replaced without the fd count changing.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

use kwatch::collect::{self, Collector};
use kwatch::model::{Owner, Owners};
use kwatch::proc::{ProcCache, ScanConfig};
use kwatch::testing::socket_inode;

fn me(fd: i32) -> Owners {
    [Owner {
        pid: std::process::id(),
        fd: u32::try_from(fd).unwrap(),
    }]
    .into()
}

#[test]
fn cache_follows_sockets_opened_and_replaced_between_refreshes() {
    let mut cache = ProcCache::new(&ScanConfig::new("/proc"));
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let first_fd = first.as_raw_fd();
    let first_inode = socket_inode(&first);

    let map = cache.refresh(&[first_inode]);
    assert_eq!(map.owners.get(first_inode), Some(me(first_fd)));
    let pids = cache.stats().pids;
    assert!(pids > 1, "{:?}", cache.stats());

    // A second listener: our fd count moved, so we are read again.
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let second_inode = socket_inode(&second);
    let map = cache.refresh(&[first_inode, second_inode]);
    assert_eq!(map.owners.get(second_inode), Some(me(second.as_raw_fd())));
    assert!(
        cache.stats().scanned < pids,
        "processes whose fds did not change are not read again: {:?}",
        cache.stats()
    );

    // The first listener's fd now holds the second socket: the same fds, the first inode gone, a new one there.
    let second_fd = second.into_raw_fd();
    // SAFETY: both fds are open and owned by this test; dup2 closes the first listener's socket (its
    // `TcpListener` is forgotten below so that it is not closed twice).
    assert_eq!(unsafe { libc::dup2(second_fd, first_fd) }, first_fd);
    std::mem::forget(first);
    let map = cache.refresh(&[second_inode]);
    let mut both: Vec<u32> = map
        .owners
        .get(second_inode)
        .unwrap()
        .iter()
        .map(|o| o.fd)
        .collect();
    both.sort_unstable();
    let mut expected = vec![first_fd as u32, second_fd as u32];
    expected.sort_unstable();
    assert_eq!(both, expected);
    assert!(!map.owners.contains_key(first_inode));
    // SAFETY: both fds are ours and closed once each.
    unsafe {
        libc::close(first_fd);
        libc::close(second_fd);
    }
}

#[test]
fn a_reused_collector_gives_the_same_owners_as_a_fresh_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = collect::Options {
        request: Default::default(),
        proc_root: "/proc".into(),
        map_processes: true,
        only_pids: None,
        thresholds: Default::default(),
        read_sockopts: false,
        netns: Default::default(),
    };
    let mut collector = Collector::new(options.clone());
    let owners_of = |snapshot: &kwatch::model::Snapshot, port: u16| {
        snapshot
            .connections
            .iter()
            .find(|c| c.local_port == port)
            .map(|c| c.owners.clone())
    };
    let expected = Some(me(listener.as_raw_fd()));
    assert_eq!(owners_of(&collector.collect().unwrap(), port), expected);

    let later = TcpListener::bind("127.0.0.1:0").unwrap();
    let later_port = later.local_addr().unwrap().port();
    let reused = collector.collect().unwrap();
    assert_eq!(owners_of(&reused, port), expected);
    assert_eq!(owners_of(&reused, later_port), Some(me(later.as_raw_fd())));
    let fresh = collect::collect(&options).unwrap();
    assert_eq!(
        owners_of(&fresh, later_port),
        owners_of(&reused, later_port)
    );
    assert!(Path::new("/proc/self/fd").exists());
}

/// The live view's first frame on a big host: the dump alone says owners are pending and holds our socket without
/// one; the full snapshot taken next has the owner, and nothing pending.
#[test]
fn a_dump_only_snapshot_marks_owners_pending_and_the_next_one_has_them() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = collect::Options {
        request: Default::default(),
        proc_root: "/proc".into(),
        map_processes: true,
        only_pids: None,
        thresholds: Default::default(),
        read_sockopts: true,
        netns: Default::default(),
    };
    let mut collector = Collector::new(options);
    let ours = |snapshot: &kwatch::model::Snapshot| {
        snapshot
            .connections
            .iter()
            .find(|c| c.local_port == port)
            .cloned()
            .unwrap()
    };
    let quick = collector.collect_dump_only().unwrap();
    assert!(quick.owners_pending);
    assert!(ours(&quick).owners.is_empty() && quick.processes.is_empty());
    let full = collector.collect().unwrap();
    assert!(!full.owners_pending);
    let me = std::process::id();
    assert!(
        ours(&full).owners.iter().any(|o| o.pid == me),
        "{:?}",
        ours(&full)
    );
    drop(listener);
}
