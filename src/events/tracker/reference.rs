//! The tracker as it was before it shared the snapshot (a full copy of every watched socket in a hash map), kept
//! as the reference the equivalence test compares the tracker with.

#![allow(clippy::pedantic)]

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::analyze::predict::{DeathEvidence, infer_cause};
use crate::events::listener::Destroyed;
use crate::events::{SocketId, WatchEvent};
use crate::filter::Filter;
use crate::model::keepalive::{DeathCause, KeepaliveSettings};
use crate::model::{Connection, Owner, Owners, Snapshot, StateName, TcpState};

use crate::events::NOTIFICATION_WAIT_MS;

/// Sockets that left the dump are remembered this many at most, waiting for their destroy notification.
const GONE_MAX: usize = 65_536;

/// (network namespace inode, cookie): cookies are unique on the host, the namespace makes a notification meet
/// only sockets of the namespace it was heard in.
type Key = (u64, u64);

fn key(c: &Connection) -> Key {
    (c.netns.as_ref().map_or(0, |n| n.inode), c.cookie)
}

/// What kwatch last saw of a socket: only what events need, so that a step over 100k sockets that did not
/// change allocates nothing.
#[derive(Debug, Clone)]
struct Seen {
    id: SocketId,
    state: TcpState,
    inode: u32,
    owners: Owners,
    keepalive: Option<KeepaliveSettings>,
    /// Shared by every socket of the process (one allocation per process, not per socket).
    comm: Option<Arc<str>>,
    /// The step that last saw it in the dump.
    step: u64,
}

/// Why a socket that left the dump is still remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// An fd holds it: its notification comes when the last one is closed.
    Held,
    /// Nothing holds it: its notification is due by this time (unix ms).
    Until(u64),
}

#[derive(Debug, Clone)]
struct Gone {
    seen: Seen,
    wait: Wait,
}

/// The comm of `pid` in `snapshot`, one shared copy per process for the whole step.
fn comm_of<'a>(
    comms: &'a mut FxHashMap<u32, Arc<str>>,
    snapshot: &Snapshot,
    pid: u32,
) -> &'a Arc<str> {
    comms
        .entry(pid)
        .or_insert_with(|| Arc::from(snapshot.comm(pid)))
}

/// Pure bookkeeping of watched sockets across snapshots: turns snapshots and destroy notifications into events.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Kernel-assigned keys, so a fast hash without flooding protection is safe.
    live: FxHashMap<Key, Seen>,
    /// Left the dump but not destroyed yet.
    gone: FxHashMap<Key, Gone>,
    started: bool,
    steps: u64,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Takes one step: `destroyed` are the notifications received since the last step, `snapshot` the dump taken
    /// after them, `holds(inode, owner)` whether that fd holds that socket now (read from /proc). Emits deaths of
    /// sockets seen before, then state changes of watched sockets.
    pub fn step(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        destroyed: &[Destroyed],
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
    ) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        // A TIME-WAIT entry inherits the cookie of the connection that closed normally.
        let time_wait: FxHashSet<Key> = if destroyed.is_empty() {
            FxHashSet::default()
        } else {
            snapshot
                .connections
                .iter()
                .filter(|c| c.state == TcpState::TimeWait)
                .map(key)
                .collect()
        };
        let retries2 = |netns: u64| {
            snapshot
                .namespaces
                .iter()
                .find(|n| n.netns.inode == netns)
                .map_or(snapshot.settings.tcp_retries2, |n| n.settings.tcp_retries2)
        };
        for d in destroyed {
            let k = (d.netns, d.cookie);
            let Some(seen) = self
                .live
                .remove(&k)
                .or_else(|| self.gone.remove(&k).map(|g| g.seen))
            else {
                continue;
            };
            let cause = infer_cause(&DeathEvidence {
                probes: d.probes,
                retransmits: d.retransmits,
                settings: seen.keepalive.as_ref(),
                last_state: Some(seen.state),
                orphan: seen.inode == 0,
                tcp_retries2: retries2(d.netns),
                time_wait_twin: time_wait.contains(&k),
            });
            events.push(destroy(seen, now_unix_ms, d.probes, d.retransmits, cause));
        }
        self.steps += 1;
        let step = self.steps;
        let started = self.started;
        let mut listed = 0;
        let mut comms: FxHashMap<u32, Arc<str>> = FxHashMap::default();
        self.live
            .reserve(snapshot.connections.len().saturating_sub(self.live.len()));
        for c in snapshot
            .connections
            .iter()
            .filter(|c| filter.matches_in(c, snapshot))
        {
            listed += 1;
            let comm = c
                .owners
                .first()
                .map(|o| comm_of(&mut comms, snapshot, o.pid));
            if let Some(seen) = self.live.get_mut(&key(c)) {
                if seen.state != c.state {
                    if started {
                        events.push(WatchEvent::State {
                            time_unix_ms: now_unix_ms,
                            socket: seen.id.clone(),
                            owners: seen.owners.to_vec(),
                            comm: seen.comm.as_deref().map(str::to_string),
                            from: StateName(seen.state),
                            to: StateName(c.state),
                        });
                    }
                    seen.state = c.state;
                }
                if seen.owners != c.owners {
                    seen.owners.clone_from(&c.owners);
                }
                // An earlier owner stays known when a later dump could not map it (the process exited).
                if let Some(comm) = comm
                    && seen.comm.as_deref() != Some(&**comm)
                {
                    seen.comm = Some(Arc::clone(comm));
                }
                seen.inode = c.inode;
                seen.keepalive = c.keepalive.as_deref().copied();
                seen.step = step;
            } else {
                // Back in sight (a namespace listed again): no longer awaited.
                self.gone.remove(&key(c));
                self.live.insert(
                    key(c),
                    Seen {
                        id: SocketId::of(c),
                        state: c.state,
                        inode: c.inode,
                        owners: c.owners.clone(),
                        keepalive: c.keepalive.as_deref().copied(),
                        comm: comm.cloned(),
                        step,
                    },
                );
            }
        }
        // When every socket known is listed (keys are unique), none left: no pass over all of them.
        let left: Vec<Key> = if self.live.len() == listed {
            Vec::new()
        } else {
            self.live
                .iter()
                .filter(|(_, s)| s.step != step)
                .map(|(k, _)| *k)
                .collect()
        };
        if !left.is_empty() {
            self.leave(snapshot, filter, left, now_unix_ms, holds, &mut events);
        }
        self.expire(now_unix_ms, holds, &mut events);
        events.sort_by_key(|e| match e {
            WatchEvent::Destroy { socket, .. } => (0, socket.cookie),
            WatchEvent::State { socket, .. } => (1, socket.cookie),
            _ => (2, 0),
        });
        self.started = true;
        events
    }

    /// Handles watched sockets this step did not list: still in the dump (they no longer match the filter: no
    /// longer watched), in a namespace that could not be listed (kept as they were), or gone from the dump.
    fn leave(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        left: Vec<Key>,
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
        events: &mut Vec<WatchEvent>,
    ) {
        let left_set: FxHashSet<Key> = left.iter().copied().collect();
        let still_dumped: FxHashSet<Key> = snapshot
            .connections
            .iter()
            .map(key)
            .filter(|k| left_set.contains(k))
            .collect();
        let unlisted: FxHashSet<u64> = snapshot
            .namespaces
            .iter()
            .filter(|n| n.error.is_some())
            .map(|n| n.netns.inode)
            .collect();
        // A dump narrowed to some states loses sight of a socket that moves to another: not a death.
        let every_state = filter.states.is_empty();
        for k in left {
            if unlisted.contains(&k.0) {
                if let Some(seen) = self.live.get_mut(&k) {
                    seen.step = self.steps;
                }
                continue;
            }
            let Some(seen) = self.live.remove(&k) else {
                continue;
            };
            if still_dumped.contains(&k) {
                continue;
            }
            // No notification comes for a TIME-WAIT entry or a request socket: leaving the dump is their end.
            if matches!(
                seen.state,
                TcpState::TimeWait | TcpState::NewSynRecv | TcpState::SynRecv
            ) && seen.inode == 0
            {
                continue;
            }
            let holders: Vec<Owner> = if seen.inode == 0 {
                Vec::new()
            } else {
                seen.owners
                    .iter()
                    .copied()
                    .filter(|o| holds(seen.inode, *o))
                    .collect()
            };
            let wait = if holders.is_empty() {
                Wait::Until(now_unix_ms + NOTIFICATION_WAIT_MS)
            } else {
                if self.started && every_state {
                    events.push(WatchEvent::State {
                        time_unix_ms: now_unix_ms,
                        socket: seen.id.clone(),
                        owners: holders,
                        comm: seen.comm.as_deref().map(str::to_string),
                        from: StateName(seen.state),
                        to: StateName(TcpState::Close),
                    });
                }
                Wait::Held
            };
            if self.gone.len() >= GONE_MAX {
                self.gone.clear();
            }
            self.gone.insert(k, Gone { seen, wait });
        }
    }

    /// Sockets whose notification is overdue are reported dead, cause unknown. A held one whose fds were all
    /// closed since starts waiting for its notification.
    fn expire(
        &mut self,
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
        events: &mut Vec<WatchEvent>,
    ) {
        let mut overdue = Vec::new();
        for (k, g) in &mut self.gone {
            match g.wait {
                Wait::Held => {
                    let inode = g.seen.inode;
                    if !g.seen.owners.iter().any(|o| holds(inode, *o)) {
                        g.wait = Wait::Until(now_unix_ms + NOTIFICATION_WAIT_MS);
                    }
                }
                Wait::Until(due) if due <= now_unix_ms => overdue.push(*k),
                Wait::Until(_) => {}
            }
        }
        for k in overdue {
            if let Some(g) = self.gone.remove(&k) {
                events.push(destroy(
                    g.seen,
                    now_unix_ms,
                    None,
                    None,
                    DeathCause::Unknown,
                ));
            }
        }
    }

    /// Sockets currently watched.
    pub fn watched(&self) -> usize {
        self.live.len()
    }

    /// Sockets that left the dump and wait for their destroy notification.
    pub fn waiting(&self) -> usize {
        self.gone.len()
    }
}

fn destroy(
    seen: Seen,
    now_unix_ms: u64,
    probes: Option<u8>,
    retransmits: Option<u8>,
    cause: DeathCause,
) -> WatchEvent {
    WatchEvent::Destroy {
        time_unix_ms: now_unix_ms,
        socket: seen.id,
        owners: seen.owners.to_vec(),
        comm: seen.comm.as_deref().map(str::to_string),
        last_state: StateName(seen.state),
        probes,
        retransmits,
        cause,
    }
}
