//! The /proc scan on the real /proc: a listener this test opens is found with our pid, fd and comm.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kwatch::model::Owner;
use kwatch::proc::map_inodes;
use kwatch::testing::socket_inode;

/// The kernel's comm for us: the executable's file name cut to 15 bytes.
fn expected_comm() -> String {
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

#[test]
fn finds_our_own_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    let inode = socket_inode(&listener);
    let pid = std::process::id();

    let map = map_inodes(Path::new("/proc"), None);

    let owners = map
        .owners
        .get(inode)
        .unwrap_or_else(|| panic!("inode {inode} not mapped"));
    assert_eq!(
        &owners[..],
        &[Owner {
            pid,
            fd: u32::try_from(fd).unwrap()
        }]
    );
    let me = &map.processes[&pid];
    assert_eq!(me.comm, expected_comm());
    assert_eq!(me.uid, Some(std::fs::metadata("/proc/self").unwrap().uid()));
    assert!(!me.cmdline.is_empty());
    assert!(map.unreadable.iter().all(|p| p.pid != pid));
    drop(listener);
}

#[test]
fn only_pids_finds_us_and_nobody_else() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let inode = socket_inode(&listener);
    let pid = std::process::id();

    let map = map_inodes(Path::new("/proc"), Some(&[pid]));

    assert!(map.owners.contains_key(inode));
    assert!(
        map.owners.pairs().iter().all(|(_, o)| o.pid == pid),
        "{:?}",
        map.owners
    );
    assert_eq!(map.processes.keys().copied().collect::<Vec<_>>(), [pid]);
    drop(listener);
}
