//! Dump + /proc map + join + analysis: one `Snapshot`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::analyze::{self, Thresholds};
use crate::diag::{self, DumpRequest};
use crate::ghost;
use crate::model::{Connection, Family, Snapshot};
use crate::proc::{self, ProcMap};
use crate::sockopt;
use crate::sysctl;

/// Everything a snapshot needs to be taken.
#[derive(Debug, Clone)]
pub struct Options {
    pub request: DumpRequest,
    pub proc_root: PathBuf,
    /// Map processes at all (`false` skips the /proc scan).
    pub map_processes: bool,
    /// Limit the /proc scan to these pids (from `--pid`).
    pub only_pids: Option<Vec<u32>>,
    pub thresholds: Thresholds,
    /// Read keepalive options from each socket through its owner (`false`: assume the namespace sysctls), and
    /// look for held dead sockets (needs a complete dump: all states, both families).
    pub read_sockopts: bool,
}

/// Takes one snapshot: kernel dump, process map, join, analysis.
pub fn collect(opts: &Options) -> anyhow::Result<Snapshot> {
    let taken_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let started = Instant::now();
    let connections = diag::dump(&opts.request).context("cannot list TCP sockets")?;
    let dump_us = started.elapsed().as_micros() as u64;

    let started = Instant::now();
    let map = if opts.map_processes {
        proc::map_inodes(&opts.proc_root, opts.only_pids.as_deref())
    } else {
        ProcMap::default()
    };
    let proc_scan_us = started.elapsed().as_micros() as u64;

    let mut snapshot = Snapshot {
        taken_at_unix_ms,
        dump_us,
        proc_scan_us,
        host: read_line(&opts.proc_root.join("sys/kernel/hostname")),
        kernel: read_line(&opts.proc_root.join("sys/kernel/osrelease")),
        settings: sysctl::read_settings(&opts.proc_root),
        ..Snapshot::default()
    };
    for pid in opts.only_pids.iter().flatten() {
        if !opts.proc_root.join(pid.to_string()).exists() {
            snapshot
                .warnings
                .push(format!("no process with pid '{pid}'"));
        }
    }
    let mut reader = sockopt::Reader::new();
    let complete = opts.request.states == u32::MAX
        && [Family::Ipv4, Family::Ipv6]
            .iter()
            .all(|f| opts.request.families.contains(f));
    let mut ghost_processes = Vec::new();
    if opts.read_sockopts && opts.map_processes && complete {
        let dumped: HashSet<u64> = connections.iter().map(|c| c.inode).collect();
        snapshot.held_dead = ghost::find(&opts.proc_root, &dumped, &map.owners, &mut reader);
        ghost_processes = snapshot
            .held_dead
            .iter()
            .filter_map(|g| map.processes.get(&g.pid).cloned())
            .collect();
    }
    join(&mut snapshot, connections, map);
    for p in ghost_processes {
        snapshot.processes.entry(p.pid).or_insert(p);
    }
    sockopt::fill(&mut snapshot, opts.read_sockopts.then_some(&mut reader));
    analyze::analyze(&mut snapshot, &opts.thresholds);
    Ok(snapshot)
}

/// Attaches owners to connections and keeps the processes that hold at least one of them. Sorted by address
/// so that output is stable from one run to the next.
pub fn join(snapshot: &mut Snapshot, mut connections: Vec<Connection>, mut map: ProcMap) {
    for conn in &mut connections {
        if conn.inode != 0 {
            if let Some(owners) = map.owners.remove(&conn.inode) {
                conn.owners = owners;
            }
        }
    }
    connections.sort_unstable_by(|a, b| {
        (
            a.family,
            a.local_addr,
            a.local_port,
            a.peer_addr,
            a.peer_port,
            a.cookie,
        )
            .cmp(&(
                b.family,
                b.local_addr,
                b.local_port,
                b.peer_addr,
                b.peer_port,
                b.cookie,
            ))
    });
    let mut processes = std::mem::take(&mut map.processes);
    let mut held = std::collections::BTreeMap::new();
    for owner in connections.iter().flat_map(|c| &c.owners) {
        if let Some(p) = processes.remove(&owner.pid) {
            held.insert(owner.pid, p);
        }
    }
    snapshot.connections = connections;
    snapshot.processes = held;
    snapshot.unreadable = map.unreadable;
}

fn read_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string())
}
