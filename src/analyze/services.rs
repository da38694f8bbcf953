//! Services: processes that serve together, and the rollup of their sockets and findings.
//!
//! Identical workers take turns accepting connections, so a per-process finding such as `keepalive_off` comes and
//! goes with whichever connections a worker happens to hold. A service rolls them up: processes that hold the same
//! listening socket (an nginx master and its workers, a prefork server), that run the same executable as their
//! parent (postgres backends under the postmaster), or that run the same executable with the same command line as
//! their siblings under one parent other than init (identical workers; two different apps of one interpreter under
//! one supervisor stay apart), always in the same container or systemd unit. The
//! grouping reads only listeners, parents and executables, never the accepted connections, so it stays the same
//! from one refresh to the next. Every process is in exactly one service; a process alone is a service of one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::ProcessSummary;
use crate::model::{Connection, FindingCode, Severity, Snapshot, TcpState};

/// One service's members and the rollup of their sockets (each socket once, however many members hold it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// The leader's comm, raw (escape before display).
    pub name: String,
    /// The member the others descend from (its parent is not a member); the lowest such pid.
    pub leader_pid: u32,
    /// Every member, sorted.
    pub pids: Vec<u32>,
    /// The rollup over the members' distinct sockets: `pid` and `comm` are the leader's, `process_findings` are the
    /// service's own (`keepalive_off`, `keepalive_default` judged over all its ESTABLISHED sockets).
    pub totals: ProcessSummary,
}

/// What a process's row says of its service: which one, how many members, and the service's own findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    pub leader_pid: u32,
    /// The leader's comm, raw.
    pub name: String,
    pub members: u32,
    /// The service's findings about itself (`keepalive_off`, `keepalive_default`), with their severity.
    pub findings: Vec<(FindingCode, Severity)>,
}

/// Sets `service` of every process summary whose service has more than one member, from the services over the
/// same connections (so the service's findings cover what the rows count).
pub fn attach<'a>(
    snapshot: &Snapshot,
    conns: impl IntoIterator<Item = &'a Connection>,
    procs: &mut [ProcessSummary],
) {
    let mut by_pid: BTreeMap<u32, ServiceRef> = BTreeMap::new();
    for s in services(snapshot, conns) {
        if s.pids.len() < 2 {
            continue;
        }
        let r = ServiceRef {
            leader_pid: s.leader_pid,
            name: s.name.clone(),
            members: s.pids.len() as u32,
            findings: s
                .totals
                .process_findings
                .iter()
                .map(|f| (f.code, f.severity))
                .collect(),
        };
        for pid in &s.pids {
            by_pid.insert(*pid, r.clone());
        }
    }
    for p in procs {
        p.service = by_pid.get(&p.pid).cloned();
    }
}

/// Which service each process of the snapshot belongs to: pid → leader pid. Covers every process that owns a
/// socket of the snapshot or holds a dead one, and every process in `snapshot.processes`.
pub fn group(snapshot: &Snapshot) -> BTreeMap<u32, u32> {
    // Owners repeat over many sockets: deduplicated in a hash set first, then ordered.
    let mut owners: FxHashSet<u32> = FxHashSet::default();
    owners.extend(
        snapshot
            .connections
            .iter()
            .flat_map(|c| c.owners.iter().map(|o| o.pid)),
    );
    let mut pids: BTreeSet<u32> = snapshot.processes.keys().copied().collect();
    pids.extend(owners);
    pids.extend(snapshot.held_dead.iter().map(|g| g.pid));
    let mut sets = Sets::new(&pids);

    // Holding the same listening socket.
    for conn in &snapshot.connections {
        if conn.state != TcpState::Listen {
            continue;
        }
        let mut owners = conn.owners.iter().map(|o| o.pid);
        if let Some(first) = owners.next() {
            for pid in owners {
                sets.join(first, pid);
            }
        }
    }
    // The same executable in the same unit as the parent; the same executable and command line in the same unit as
    // a sibling under a parent other than init.
    let kind = |pid: u32| -> Option<(&str, Option<String>)> {
        let exe = snapshot
            .lineage
            .get(&pid)
            .and_then(|l| l.exe.as_deref())
            .or_else(|| snapshot.processes.get(&pid).map(|p| p.comm.as_str()))?;
        Some((exe, snapshot.units.get(&pid).map(crate::model::Unit::label)))
    };
    let cmdline = |pid: u32| snapshot.processes.get(&pid).map(|p| p.cmdline.as_slice());
    type Sibling<'s> = (u32, (&'s str, Option<String>), Option<&'s [String]>);
    let mut siblings: BTreeMap<Sibling, u32> = BTreeMap::new();
    for &pid in &pids {
        let (Some(ppid), Some(mine)) = (snapshot.lineage.get(&pid).and_then(|l| l.ppid), kind(pid))
        else {
            continue;
        };
        if pids.contains(&ppid) && kind(ppid).as_ref() == Some(&mine) {
            sets.join(ppid, pid);
        }
        if ppid > 1 {
            let first = *siblings.entry((ppid, mine, cmdline(pid))).or_insert(pid);
            sets.join(first, pid);
        }
    }

    // Each set's leader: the lowest pid whose parent is not in the set.
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &pid in &pids {
        members.entry(sets.root(pid)).or_default().push(pid);
    }
    let mut leader_of = BTreeMap::new();
    for group in members.values() {
        let inside: BTreeSet<u32> = group.iter().copied().collect();
        let leader = group
            .iter()
            .copied()
            .find(|pid| {
                snapshot
                    .lineage
                    .get(pid)
                    .and_then(|l| l.ppid)
                    .is_none_or(|ppid| !inside.contains(&ppid))
            })
            .unwrap_or(group[0]);
        for &pid in group {
            leader_of.insert(pid, leader);
        }
    }
    leader_of
}

/// Per-service rollup over the given connections, worst first (the order of [`super::rollup`]); ties by leader pid.
/// Grouping uses the whole snapshot ([`group`]), so a filter changes what is counted, never who is in a service.
/// Only services with a member that holds one of `conns` (or a dead socket) are listed; `pids` lists every
/// member all the same. Reads `findings`, so run [`super::analyze`] first.
pub fn services<'a>(
    snapshot: &Snapshot,
    conns: impl IntoIterator<Item = &'a Connection>,
) -> Vec<ServiceSummary> {
    let leader_of = group(snapshot);
    // Looked up once per socket owner.
    let leader_fast: FxHashMap<u32, u32> = leader_of.iter().map(|(p, l)| (*p, *l)).collect();
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (&pid, &leader) in &leader_of {
        members.entry(leader).or_default().push(pid);
    }
    let mut by_leader: BTreeMap<u32, ProcessSummary> = BTreeMap::new();
    let mut add = |leader: u32, conn: &Connection| {
        by_leader
            .entry(leader)
            .or_insert_with(|| ProcessSummary::new(leader, snapshot))
            .add(conn);
    };
    for conn in conns {
        // A socket held by several members (a shared listener) counts once for their service. Nearly every socket
        // has one owner, or owners of one service: no set is built for those.
        let mut leaders = conn
            .owners
            .iter()
            .filter_map(|o| leader_fast.get(&o.pid).copied());
        let Some(first) = leaders.next() else {
            continue;
        };
        if leaders.clone().all(|l| l == first) {
            add(first, conn);
        } else {
            let all: BTreeSet<u32> = leaders.chain([first]).collect();
            for leader in all {
                add(leader, conn);
            }
        }
    }
    let held: BTreeSet<(u32, u32)> = snapshot
        .held_dead
        .iter()
        .filter_map(|g| Some((*leader_of.get(&g.pid)?, g.inode)))
        .collect();
    for (leader, _) in held {
        by_leader
            .entry(leader)
            .or_insert_with(|| ProcessSummary::new(leader, snapshot))
            .held_dead_sockets += 1;
    }
    let mut out: Vec<ServiceSummary> = by_leader
        .into_values()
        .map(|mut totals| {
            totals.judge_keepalive();
            ServiceSummary {
                name: totals.comm.clone(),
                leader_pid: totals.pid,
                pids: members.remove(&totals.pid).unwrap_or_default(),
                totals,
            }
        })
        .collect();
    out.sort_by_key(|s| {
        let t = &s.totals;
        (
            Reverse(t.critical),
            Reverse(t.warning),
            Reverse(t.close_wait()),
            Reverse(t.sockets),
            s.leader_pid,
        )
    });
    out
}

/// Disjoint sets of pids (union-find with path halving).
struct Sets {
    parent: BTreeMap<u32, u32>,
}

impl Sets {
    fn new(pids: &BTreeSet<u32>) -> Sets {
        Sets {
            parent: pids.iter().map(|p| (*p, *p)).collect(),
        }
    }

    fn root(&mut self, mut pid: u32) -> u32 {
        loop {
            let parent = *self.parent.entry(pid).or_insert(pid);
            if parent == pid {
                return pid;
            }
            let grand = *self.parent.entry(parent).or_insert(parent);
            self.parent.insert(pid, grand);
            pid = grand;
        }
    }

    /// Joins the sets of `a` and `b`; the lower root stays the root (a stable choice).
    fn join(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(high, low);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::analyze::{Thresholds, analyze};
    use crate::model::{Lineage, Owner, Unit, UnitKind};

    fn busy() -> Snapshot {
        let mut snap = crate::testing::fixture("busy.json");
        analyze(&mut snap, &Thresholds::default());
        snap
    }

    fn lineage(snap: &mut Snapshot, pid: u32, ppid: u32, exe: &str) {
        snap.lineage.insert(
            pid,
            Lineage {
                ppid: Some(ppid),
                exe: Some(exe.to_string()),
            },
        );
    }

    #[test]
    fn processes_sharing_a_listener_are_one_service_led_by_the_parent() {
        // 811 (nginx master) and 812 (worker) share the :443 listener; nothing else is shared.
        let mut snap = busy();
        let groups = group(&snap);
        assert_eq!(groups[&811], groups[&812]);
        assert_eq!(groups[&640], 640);
        assert_eq!(groups[&2231], 2231);
        // Without lineage the lowest pid leads; with it, the parent.
        assert_eq!(groups[&812], 811);
        lineage(&mut snap, 811, 1, "/usr/sbin/nginx");
        lineage(&mut snap, 812, 811, "/usr/sbin/nginx");
        assert_eq!(group(&snap)[&812], 811);

        let services = services(&snap, &snap.connections);
        let nginx = services.iter().find(|s| s.leader_pid == 811).unwrap();
        assert_eq!(
            (nginx.name.as_str(), nginx.pids.clone()),
            ("nginx", vec![811, 812])
        );
        // The shared listener counts once: 1 listener, 2 ESTABLISHED, 1 TIME-WAIT is nobody's.
        assert_eq!(nginx.totals.sockets, 3);
        assert_eq!(nginx.totals.by_state.get(&TcpState::Listen), Some(&1));
        assert_eq!(nginx.totals.warning, 1, "the zero-window socket");
        // Every process is in one service: sshd, java, evil, nginx.
        let mut leaders: Vec<u32> = services.iter().map(|s| s.leader_pid).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![640, 811, 2231, 3107]);
    }

    /// Two identical workers under one master (no shared listener in view: a filtered dump), one holding a
    /// keepalive-less connection, the other one with keepalive: the workers' own findings differ, the service's
    /// does not, whichever worker holds which connection.
    #[test]
    fn identical_workers_under_one_parent_are_one_service_whatever_they_accepted() {
        let mut snap = busy();
        // Make the two java connections' owners two workers 3001 and 3002 of master 3000 (same executable).
        snap.processes.insert(
            3001,
            crate::model::Process {
                pid: 3001,
                comm: "worker".into(),
                cmdline: vec![],
                uid: None,
                user: None,
            },
        );
        snap.processes.insert(
            3002,
            crate::model::Process {
                pid: 3002,
                comm: "worker".into(),
                cmdline: vec![],
                uid: None,
                user: None,
            },
        );
        lineage(&mut snap, 3001, 3000, "/usr/bin/app");
        lineage(&mut snap, 3002, 3000, "/usr/bin/app");
        let off = snap
            .connections
            .iter()
            .position(|c| c.cookie == 1005)
            .unwrap();
        let on = snap
            .connections
            .iter()
            .position(|c| c.cookie == 1004)
            .unwrap();
        let judged = |snap: &Snapshot| {
            let s = services(snap, &snap.connections);
            let svc = s
                .iter()
                .find(|s| s.pids == vec![3001, 3002])
                .unwrap()
                .clone();
            let per_process: Vec<(u32, usize)> = super::super::rollup(snap, &snap.connections)
                .iter()
                .filter(|p| p.pid == 3001 || p.pid == 3002)
                .map(|p| (p.pid, p.process_findings.len()))
                .collect();
            (svc, per_process)
        };
        for (a, b) in [(3001, 3002), (3002, 3001)] {
            snap.connections[off].owners = Owner { pid: a, fd: 5 }.into();
            snap.connections[on].owners = Owner { pid: b, fd: 5 }.into();
            let (svc, mut per_process) = judged(&snap);
            per_process.sort_unstable();
            // Per process: the one holding the keepalive-less socket is flagged, the other is not.
            let flagged: Vec<u32> = per_process
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(p, _)| *p)
                .collect();
            assert_eq!(flagged, vec![a]);
            // Per service: the same every time.
            assert_eq!(svc.leader_pid, 3001);
            assert_eq!(svc.totals.sockets, 2);
            assert_eq!(svc.totals.established_without_keepalive, 1);
            let codes: Vec<_> = svc.totals.process_findings.iter().map(|f| f.code).collect();
            assert_eq!(codes, vec![crate::model::FindingCode::KeepaliveOff]);
        }
    }

    #[test]
    fn init_children_and_other_units_stay_apart() {
        let mut snap = busy();
        // sshd (640) and java (2231) as two children of init running the same binary: still two services.
        lineage(&mut snap, 640, 1, "/usr/bin/same");
        lineage(&mut snap, 2231, 1, "/usr/bin/same");
        let g = group(&snap);
        assert_ne!(g[&640], g[&2231]);
        // Siblings under one parent running one executable with different command lines (two apps of one
        // interpreter under a supervisor): apart; with the same command line (identical workers): together.
        lineage(&mut snap, 640, 500, "/usr/bin/same");
        lineage(&mut snap, 2231, 500, "/usr/bin/same");
        assert_eq!(group(&snap)[&2231], 2231, "different command lines");
        let java_cmdline = snap.processes[&2231].cmdline.clone();
        snap.processes.get_mut(&640).unwrap().cmdline = java_cmdline;
        assert_eq!(
            group(&snap)[&2231],
            640,
            "same parent, executable and command line"
        );
        // Siblings under one parent, but in two containers: apart.
        snap.units.insert(
            2231,
            Unit {
                kind: UnitKind::Docker,
                id: "3f4e1b2c9d8a".into(),
                pod: None,
            },
        );
        let g = group(&snap);
        assert_ne!(g[&640], g[&2231]);
        // A child running the executable of its parent joins it.
        snap.units.clear();
        lineage(&mut snap, 640, 1, "/usr/bin/same");
        lineage(&mut snap, 2231, 640, "/usr/bin/same");
        assert_eq!(group(&snap)[&2231], 640);
        lineage(&mut snap, 2231, 640, "/usr/bin/other");
        assert_eq!(group(&snap)[&2231], 2231);
    }

    #[test]
    fn a_filter_changes_the_counts_never_the_members() {
        let snap = busy();
        let all = services(&snap, &snap.connections);
        let established: Vec<&Connection> = snap
            .connections
            .iter()
            .filter(|c| c.state == TcpState::Established)
            .collect();
        let some = services(&snap, established.iter().copied());
        let nginx = |s: &[ServiceSummary]| s.iter().find(|s| s.leader_pid == 811).cloned().unwrap();
        assert_eq!(nginx(&all).pids, nginx(&some).pids);
        assert_eq!(nginx(&some).totals.sockets, 2);
        assert!(services(&snap, []).is_empty());
    }
}
