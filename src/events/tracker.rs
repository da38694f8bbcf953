//! Pure bookkeeping of watched sockets across snapshots: turns snapshots and destroy notifications into events.
//!
//! A socket that leaves the dump is told apart by what the same refresh's /proc shows:
//! - an fd still holds it: the kernel ended it under the program (a `state` event to `close`, when the dump
//!   lists every state: a narrower one may only have lost sight of it); its `destroy` comes at `close()`;
//! - no fd holds it: its destroy notification is on its way (the kernel sends it from a work queue, seconds late
//!   at times). It is awaited for [`NOTIFICATION_WAIT_MS`]; without one, it is reported dead with cause `unknown`.
//!
//! Sockets are keyed by (network namespace inode, cookie), and a namespace that could not be listed this time
//! keeps its sockets as they were: missing from a failed listing is not dying.
//!
//! Memory: the tracker keeps the snapshot of its last step (shared, when the caller shares it: the live view
//! shows the same one) and, per watched socket, its key and its place in that snapshot (24 bytes). A socket's
//! details are copied only when it leaves the dump (into the bounded set that awaits its notification) or when
//! its namespace could not be listed. A caller that lets its snapshot go after the step (the exporter) asks for
//! [`Tracker::keep_brief`]: only what events read of each socket is kept then, 88 bytes instead of 176, so that
//! the next snapshot is not taken beside a whole earlier one (at a million sockets, 84 MiB instead of 172).

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::listener::Destroyed;
use super::{SocketId, WatchEvent};
use crate::analyze::predict::{DeathEvidence, infer_cause};
use crate::filter::Filter;
use crate::model::keepalive::{DeathCause, KeepaliveSettings};
use crate::model::{Connection, Owner, Owners, Snapshot, StateName, TcpState};

/// How long a socket that left the dump, held by no fd, waits for its destroy notification before it is reported
/// dead with cause `unknown`. The kernel was seen 3 to 4 s late; 10 s leaves room for a busy host.
pub const NOTIFICATION_WAIT_MS: u64 = 10_000;

/// Sockets that left the dump are remembered this many at most, waiting for their destroy notification.
const GONE_MAX: usize = 65_536;

/// (network namespace inode, cookie): cookies are unique on the host, the namespace makes a notification meet
/// only sockets of the namespace it was heard in.
type Key = (u64, u64);

fn key(c: &Connection) -> Key {
    (c.netns.as_ref().map_or(0, |n| n.inode), c.cookie)
}

/// A watched socket: its key and where its details are.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Key,
    /// Index into the last step's snapshot, or [`KEPT`].
    at: u32,
}

/// The slot's details are in [`Tracker::kept`], not in the last snapshot.
const KEPT: u32 = u32::MAX;

/// What kwatch last saw of a socket that is no longer in the last snapshot: only what events need.
#[derive(Debug, Clone)]
struct Seen {
    id: SocketId,
    state: TcpState,
    inode: u32,
    owners: Owners,
    keepalive: Option<Arc<KeepaliveSettings>>,
    /// Shared by every socket of the process (one allocation per process, not per socket).
    comm: Option<Arc<str>>,
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

/// What the tracker keeps of its last step's snapshot: the details of every watched socket in it.
#[derive(Debug)]
enum Last {
    /// The snapshot itself, shared with the caller.
    Shared(Arc<Snapshot>),
    /// Only what events read ([`Tracker::keep_brief`]).
    Brief(Briefs),
}

/// Of each socket of a snapshot, by position, what events read; and each owning process's comm.
#[derive(Debug, Default)]
struct Briefs {
    sockets: Vec<Brief>,
    comms: FxHashMap<u32, Arc<str>>,
}

impl Briefs {
    /// Of `snapshot`, in `reuse`'s memory: a million briefs are 84 MiB, mapped anew and faulted in at every step
    /// if their vector were freed and allocated again.
    fn of(snapshot: &Snapshot, mut reuse: Vec<Brief>) -> Briefs {
        reuse.clear();
        reuse.extend(snapshot.connections.iter().map(Brief::of));
        Briefs {
            sockets: reuse,
            comms: snapshot
                .processes
                .iter()
                .map(|(pid, p)| (*pid, Arc::from(p.comm.as_str())))
                .collect(),
        }
    }
}

/// One socket as events see it: [`Seen`] without the comm, which its owner's pid finds.
#[derive(Debug, Clone)]
struct Brief {
    id: SocketId,
    state: TcpState,
    inode: u32,
    owners: Owners,
    keepalive: Option<Arc<KeepaliveSettings>>,
}

impl Brief {
    fn of(c: &Connection) -> Brief {
        Brief {
            id: SocketId::of(c),
            state: c.state,
            inode: c.inode,
            owners: c.owners.clone(),
            keepalive: c.keepalive.clone(),
        }
    }
}

/// Pure bookkeeping of watched sockets across snapshots: turns snapshots and destroy notifications into events.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The last step's snapshot, or what events read of it.
    last: Option<Last>,
    /// Keep [`Last::Brief`] rather than the snapshot.
    brief: bool,
    /// Watched sockets, sorted by key.
    live: Vec<Slot>,
    /// Details of watched sockets that are not in `last` (their namespace could not be listed).
    kept: FxHashMap<Key, Seen>,
    /// The comm of a watched socket whose owner a later dump could not map (the process exited): an earlier
    /// owner stays known. Kernel-assigned keys, so a fast hash without flooding protection is safe.
    comms: FxHashMap<Key, Arc<str>>,
    /// Left the dump but not destroyed yet.
    gone: FxHashMap<Key, Gone>,
    started: bool,
    /// `live` is every socket of `last` (stepped without a filter, none kept from an unlisted namespace): a step
    /// whose snapshot lists the same sockets in the same order (a steady host) watches the same slots.
    whole: bool,
}

/// What one step's pass over the sockets listed again shares.
struct Step<'s, 'r, 'l> {
    snapshot: &'s Snapshot,
    dead: &'s FxHashSet<Key>,
    started: bool,
    now_unix_ms: u64,
    reader: &'r mut Reader<'l>,
    events: &'r mut Vec<WatchEvent>,
    comms: &'r mut FxHashMap<Key, Arc<str>>,
}

/// Reads the details of watched sockets out of the last snapshot, one shared comm per process.
struct Reader<'a> {
    last: Option<&'a Last>,
    comms: FxHashMap<u32, Arc<str>>,
}

impl Reader<'_> {
    /// A socket's state and first owner.
    fn glance(&self, slot: Slot) -> Option<(TcpState, Option<Owner>)> {
        match self.last? {
            Last::Shared(s) => s
                .connections
                .get(slot.at as usize)
                .map(|c| (c.state, c.owners.first().copied())),
            Last::Brief(b) => b
                .sockets
                .get(slot.at as usize)
                .map(|c| (c.state, c.owners.first().copied())),
        }
    }

    /// What events read of a socket, copied.
    fn brief(&self, slot: Slot) -> Option<Brief> {
        match self.last? {
            Last::Shared(s) => s.connections.get(slot.at as usize).map(Brief::of),
            Last::Brief(b) => b.sockets.get(slot.at as usize).cloned(),
        }
    }

    fn comm_of(&mut self, pid: u32) -> Option<Arc<str>> {
        let last = self.last?;
        Some(Arc::clone(self.comms.entry(pid).or_insert_with(
            || match last {
                Last::Shared(s) => Arc::from(s.comm(pid)),
                Last::Brief(b) => b.comms.get(&pid).cloned().unwrap_or_else(|| Arc::from("?")),
            },
        )))
    }
}

/// A caller's word on the snapshot a tracker is stepped with ([`Tracker::step_unchanged`]): `now` lists the same
/// sockets (by namespace and cookie) as `was`, the last step's, in the same order, and of them only those at
/// `stirred` (ascending) may be in another state or without an owner. The recorder's encoder finds this in its
/// own comparison of the two snapshots, so that the tracker reads them no more.
#[derive(Debug, Clone, Copy)]
pub struct Unchanged<'a> {
    pub was: &'a Arc<Snapshot>,
    pub now: &'a Arc<Snapshot>,
    pub stirred: &'a [u32],
}

/// When `now` lists the same sockets as `was` in the same order, the positions of those a step must look at
/// ([`Tracker::still_listed`]): destroyed since (`dead`), in another state, or without an owner (their comm is
/// kept from the last one). `None` when the lists differ. One pass over both snapshots, in memory order, reading
/// a few fields of each socket: it was two (the keys compared, then every socket looked at), 11 ms a step at
/// 200,000 sockets.
fn stirred(was: &Snapshot, now: &Snapshot, dead: &FxHashSet<Key>) -> Option<Vec<u32>> {
    if was.connections.len() != now.connections.len()
        || u32::try_from(now.connections.len()).is_err()
    {
        return None;
    }
    let mut out = Vec::new();
    for (i, (a, b)) in was.connections.iter().zip(&now.connections).enumerate() {
        let k = key(b);
        if key(a) != k {
            return None;
        }
        if a.state != b.state || b.owners.is_empty() || (!dead.is_empty() && dead.contains(&k)) {
            out.push(i as u32);
        }
    }
    Some(out)
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Keeps only what events read of each socket of the last step's snapshot, not the snapshot (see the
    /// module doc), for callers that let theirs go after the step.
    pub fn keep_brief(&mut self) {
        self.brief = true;
    }

    /// [`Tracker::step_shared`] with a copy of `snapshot`, for callers that go on changing theirs.
    pub fn step(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        destroyed: &[Destroyed],
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
    ) -> Vec<WatchEvent> {
        self.step_shared(
            &Arc::new(snapshot.clone()),
            filter,
            destroyed,
            now_unix_ms,
            holds,
        )
    }

    /// Takes one step: `destroyed` are the notifications received since the last step, `snapshot` the dump taken
    /// after them (kept until the next step), `holds(inode, owner)` whether that fd holds that socket now (read
    /// from /proc). Emits deaths of sockets seen before, then state changes of watched sockets.
    pub fn step_shared(
        &mut self,
        snapshot: &Arc<Snapshot>,
        filter: &Filter,
        destroyed: &[Destroyed],
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
    ) -> Vec<WatchEvent> {
        self.step_unchanged(snapshot, filter, destroyed, now_unix_ms, holds, None)
    }

    /// [`Tracker::step_shared`], told by a caller that compared `snapshot` with the last step's which sockets
    /// are where they were ([`Unchanged`]; ignored unless it speaks of those two snapshots). The same events.
    pub fn step_unchanged(
        &mut self,
        snapshot: &Arc<Snapshot>,
        filter: &Filter,
        destroyed: &[Destroyed],
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
        unchanged: Option<Unchanged<'_>>,
    ) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        let last = self.last.take();
        let mut reader = Reader {
            last: last.as_ref(),
            comms: FxHashMap::default(),
        };
        let dead = self.hear(snapshot, destroyed, now_unix_ms, &mut reader, &mut events);
        let started = self.started;
        // The sockets this step watches, sorted by key to be merged with those watched so far: the same slots as
        // the last step's when it watched every socket and this snapshot lists the same ones in the same order
        // (no sort of a million slots on a steady host). Briefs do not keep the keys: a brief tracker sorts.
        let stirred = match &last {
            Some(Last::Shared(l))
                if self.whole
                    && filter.is_empty()
                    && self.live.len() == snapshot.connections.len() =>
            {
                match unchanged {
                    Some(u) if Arc::ptr_eq(u.was, l) && Arc::ptr_eq(u.now, snapshot) => {
                        Some(self.told(u.stirred, &dead))
                    }
                    _ => stirred(l, snapshot, &dead),
                }
            }
            _ => None,
        };
        let same = stirred.is_some();
        let fresh = (!same).then(|| listing(snapshot, filter));
        let old = std::mem::take(&mut self.live);
        let listed: &[Slot] = fresh.as_deref().unwrap_or(&old);
        let mut comms = FxHashMap::default();
        let mut left = Vec::new();
        let (mut at_old, mut at_new) = (0, 0);
        let mut step = Step {
            snapshot,
            dead: &dead,
            started,
            now_unix_ms,
            reader: &mut reader,
            events: &mut events,
            comms: &mut comms,
        };
        if let Some(stirred) = stirred {
            // Every watched socket is where it was in both snapshots, and only those [`stirred`] found have
            // anything to tell (the others keep their state and have an owner to tell their comm).
            for i in stirred {
                // A position past the end (never from the encoder) is no socket.
                let Some(conn) = snapshot.connections.get(i as usize) else {
                    continue;
                };
                let slot = Slot {
                    key: key(conn),
                    at: i,
                };
                self.still_listed(slot, slot, &mut step);
            }
            (at_old, at_new) = (old.len(), listed.len());
        }
        while at_old < old.len() || at_new < listed.len() {
            let order = match (old.get(at_old), listed.get(at_new)) {
                (Some(was), Some(now)) => was.key.cmp(&now.key),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    if !dead.contains(&old[at_old].key) {
                        left.push(old[at_old]);
                    }
                    at_old += 1;
                }
                std::cmp::Ordering::Greater => {
                    // New, or back in sight (a namespace listed again): no longer awaited.
                    self.gone.remove(&listed[at_new].key);
                    at_new += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (was, now) = (old[at_old], listed[at_new]);
                    at_old += 1;
                    at_new += 1;
                    self.still_listed(was, now, &mut step);
                }
            }
        }
        self.live = fresh.unwrap_or(old);
        self.whole = filter.is_empty() && left.is_empty();
        let left = self.leave(
            snapshot,
            filter,
            left,
            now_unix_ms,
            holds,
            &mut reader,
            &mut events,
        );
        drop(reader);
        self.comms = comms;
        if !left.is_empty() {
            self.whole = false;
            self.live.extend(left);
            self.live.sort_unstable_by_key(|s| s.key);
        }
        // The earlier briefs are emptied first and their memory reused: two sets of a million are 84 MiB more.
        let reuse = match last {
            Some(Last::Brief(b)) => b.sockets,
            _ => Vec::new(),
        };
        self.last = Some(if self.brief {
            Last::Brief(Briefs::of(snapshot, reuse))
        } else {
            Last::Shared(Arc::clone(snapshot))
        });
        self.expire(now_unix_ms, holds, &mut events);
        events.sort_by_key(|e| match e {
            WatchEvent::Destroy { socket, .. } => (0, socket.cookie),
            WatchEvent::State { socket, .. } => (1, socket.cookie),
            _ => (2, 0),
        });
        self.started = true;
        events
    }

    /// What [`stirred`] would find, from what a caller found ([`Unchanged::stirred`]) and the positions of the
    /// sockets destroyed since the last step (`dead`: each watched slot, where it was, is where it is).
    fn told(&self, stirred: &[u32], dead: &FxHashSet<Key>) -> Vec<u32> {
        let mut out = stirred.to_vec();
        if !dead.is_empty() {
            out.extend(dead.iter().filter_map(|k| {
                let i = self.live.binary_search_by_key(k, |s| s.key).ok()?;
                Some(self.live[i].at).filter(|at| *at != KEPT)
            }));
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    /// The deaths the kernel announced of sockets seen before (watched, or awaited). Returns the keys of the
    /// watched ones, no longer watched.
    fn hear(
        &mut self,
        snapshot: &Snapshot,
        destroyed: &[Destroyed],
        now_unix_ms: u64,
        reader: &mut Reader,
        events: &mut Vec<WatchEvent>,
    ) -> FxHashSet<Key> {
        let mut dead = FxHashSet::default();
        if destroyed.is_empty() {
            return dead;
        }
        // A TIME-WAIT entry inherits the cookie of the connection that closed normally.
        let time_wait: FxHashSet<Key> = snapshot
            .connections
            .iter()
            .filter(|c| c.state == TcpState::TimeWait)
            .map(key)
            .collect();
        let retries2 = |netns: u64| {
            snapshot
                .namespaces
                .iter()
                .find(|n| n.netns.inode == netns)
                .map_or(snapshot.settings.tcp_retries2, |n| n.settings.tcp_retries2)
        };
        for d in destroyed {
            let k = (d.netns, d.cookie);
            let watched = self
                .live
                .binary_search_by_key(&k, |s| s.key)
                .ok()
                .map(|i| self.live[i])
                .filter(|s| !dead.contains(&s.key));
            let seen = if let Some(slot) = watched {
                dead.insert(k);
                let seen = self.seen(slot, reader);
                self.kept.remove(&k);
                let Some(seen) = seen else { continue };
                seen
            } else if let Some(g) = self.gone.remove(&k) {
                g.seen
            } else {
                continue;
            };
            let cause = infer_cause(&DeathEvidence {
                probes: d.probes,
                retransmits: d.retransmits,
                settings: seen.keepalive.as_deref(),
                last_state: Some(seen.state),
                orphan: seen.inode == 0,
                tcp_retries2: retries2(d.netns),
                time_wait_twin: time_wait.contains(&k),
            });
            events.push(destroy(seen, now_unix_ms, d.probes, d.retransmits, cause));
        }
        dead
    }

    /// A watched socket listed again (`was` in the last step, `now` in this one): its state change, if any, and
    /// its comm kept for when no owner tells it.
    fn still_listed(&mut self, was: Slot, now: Slot, step: &mut Step<'_, '_, '_>) {
        if step.dead.contains(&was.key) {
            // Destroyed since the last step: this is another socket by the same key.
            self.gone.remove(&now.key);
            return;
        }
        let conn = &step.snapshot.connections[now.at as usize];
        let state = self.state_of(was, step.reader);
        if state != conn.state
            && step.started
            && let Some(seen) = self.seen(was, step.reader)
        {
            step.events.push(WatchEvent::State {
                time_unix_ms: step.now_unix_ms,
                socket: seen.id,
                owners: seen.owners.to_vec(),
                comm: seen.comm.as_deref().map(str::to_string),
                from: StateName(seen.state),
                to: StateName(conn.state),
            });
        }
        // Its comm looked up only when no owner tells it now.
        if conn.owners.is_empty()
            && let (_, Some(comm)) = self.glance(was, step.reader)
        {
            step.comms.insert(now.key, comm);
        }
        if was.at == KEPT {
            self.kept.remove(&was.key);
        }
    }

    /// A watched socket's last state.
    fn state_of(&self, slot: Slot, reader: &Reader) -> TcpState {
        if slot.at == KEPT {
            return self
                .kept
                .get(&slot.key)
                .map_or(TcpState::Close, |s| s.state);
        }
        reader
            .glance(slot)
            .map_or(TcpState::Close, |(state, _)| state)
    }

    /// A watched socket's last state and comm, without copying the rest.
    fn glance(&self, slot: Slot, reader: &mut Reader) -> (TcpState, Option<Arc<str>>) {
        if slot.at == KEPT {
            return self
                .kept
                .get(&slot.key)
                .map_or((TcpState::Close, None), |s| (s.state, s.comm.clone()));
        }
        let Some((state, owner)) = reader.glance(slot) else {
            return (TcpState::Close, None);
        };
        let comm = match owner {
            Some(o) => reader.comm_of(o.pid),
            None => self.comms.get(&slot.key).cloned(),
        };
        (state, comm)
    }

    /// What was last seen of a watched socket, copied (`None` never happens: a slot points into the last
    /// snapshot or at a kept entry).
    fn seen(&self, slot: Slot, reader: &mut Reader) -> Option<Seen> {
        if slot.at == KEPT {
            return self.kept.get(&slot.key).cloned();
        }
        let c = reader.brief(slot)?;
        let (_, comm) = self.glance(slot, reader);
        Some(Seen {
            id: c.id,
            state: c.state,
            inode: c.inode,
            owners: c.owners,
            keepalive: c.keepalive,
            comm,
        })
    }

    /// Handles watched sockets this step did not list: still in the dump (they no longer match the filter: no
    /// longer watched), in a namespace that could not be listed (kept as they were: returned, to stay watched),
    /// or gone from the dump.
    #[allow(clippy::too_many_arguments)]
    fn leave(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        left: Vec<Slot>,
        now_unix_ms: u64,
        holds: &mut dyn FnMut(u32, Owner) -> bool,
        reader: &mut Reader,
        events: &mut Vec<WatchEvent>,
    ) -> Vec<Slot> {
        let mut still_watched = Vec::new();
        if left.is_empty() {
            return still_watched;
        }
        let left_set: FxHashSet<Key> = left.iter().map(|s| s.key).collect();
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
        for slot in left {
            let k = slot.key;
            if unlisted.contains(&k.0) {
                if slot.at != KEPT
                    && let Some(seen) = self.seen(slot, reader)
                {
                    self.kept.insert(k, seen);
                }
                still_watched.push(Slot { key: k, at: KEPT });
                continue;
            }
            let seen = self.seen(slot, reader);
            self.kept.remove(&k);
            let Some(seen) = seen else { continue };
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
        still_watched
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

/// The slots of the sockets of `snapshot` that `filter` keeps, sorted by key; a socket listed twice counts once,
/// as it was last listed.
fn listing(snapshot: &Snapshot, filter: &Filter) -> Vec<Slot> {
    // Sized once: grown by doubling, it would keep up to twice the slots it needs.
    let mut listed: Vec<Slot> = Vec::with_capacity(snapshot.connections.len());
    listed.extend(
        snapshot
            .connections
            .iter()
            .enumerate()
            .filter(|(_, c)| filter.matches_in(c, snapshot))
            .map(|(i, c)| Slot {
                key: key(c),
                at: u32::try_from(i).unwrap_or(KEPT),
            })
            .filter(|s| s.at != KEPT),
    );
    if listed.len() < listed.capacity() / 2 {
        listed.shrink_to_fit();
    }
    listed.sort_unstable_by_key(|s| (s.key, u32::MAX - s.at));
    listed.dedup_by_key(|s| s.key);
    listed
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

#[cfg(test)]
mod reference;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::keepalive::Source;
    use crate::model::{NamespaceInfo, NetnsRef, Process, Settings, Timer, TimerKind};

    fn conn(cookie: u64, state: TcpState) -> Connection {
        Connection {
            cookie,
            state,
            local_addr: "192.0.2.1".parse().unwrap(),
            local_port: 40000 + cookie as u16,
            peer_addr: "192.0.2.2".parse().unwrap(),
            peer_port: 9100,
            inode: u32::try_from(1000 + cookie).unwrap(),
            timer: Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 1000,
                count: 0,
            },
            owners: Owner { pid: 7, fd: 3 }.into(),
            keepalive: Some(
                KeepaliveSettings {
                    enabled: Some(true),
                    idle_s: Some(3),
                    intvl_s: Some(2),
                    cnt: Some(3),
                    user_timeout_ms: Some(0),
                    source: Source::Socket,
                }
                .into(),
            ),
            ..crate::testing::conn()
        }
    }

    fn snap(conns: Vec<Connection>) -> Snapshot {
        Snapshot {
            connections: conns,
            processes: BTreeMap::from([(
                7,
                Process {
                    pid: 7,
                    comm: "app".to_string(),
                    cmdline: vec![],
                    uid: Some(0),
                    user: None,
                },
            )]),
            ..Snapshot::default()
        }
    }

    /// What the kernel says when it frees a socket: its cookie and final counters.
    fn destroyed(cookie: u64, probes: u8, retransmits: u8) -> Destroyed {
        Destroyed {
            netns: 0,
            cookie,
            probes: Some(probes),
            retransmits: Some(retransmits),
        }
    }

    /// /proc as the tests set it: these inodes are held by every owner asked about, others by none.
    fn held(inodes: &[u32]) -> impl FnMut(u32, Owner) -> bool + '_ {
        move |inode, _| inodes.contains(&inode)
    }

    /// The cause of the one death among `ev`, which holds nothing else.
    fn the_death(ev: &[WatchEvent]) -> DeathCause {
        match ev {
            [WatchEvent::Destroy { cause, .. }] => *cause,
            _ => panic!("one death expected: {ev:?}"),
        }
    }

    /// A tracker that has seen socket 1 ESTABLISHED in one snapshot (at time 0).
    fn watching_one(f: &Filter) -> Tracker {
        let mut t = Tracker::new();
        let first = t.step(
            &snap(vec![conn(1, TcpState::Established)]),
            f,
            &[],
            0,
            &mut held(&[]),
        );
        assert!(first.is_empty(), "{first:?}");
        t
    }

    #[test]
    fn a_keepalive_death_under_a_held_fd_shows_as_close_then_destroy_with_the_cause() {
        let f = Filter::default();
        let mut t = Tracker::new();
        let mut fd = held(&[1001]);
        assert!(
            t.step(
                &snap(vec![conn(1, TcpState::Established)]),
                &f,
                &[],
                10,
                &mut fd
            )
            .is_empty()
        );
        // The kernel ended it; /proc shows the program still holding the fd: gone from the dump, no notification.
        let ev = t.step(&snap(vec![]), &f, &[], 30, &mut fd);
        assert_eq!(ev.len(), 1);
        let WatchEvent::State {
            from,
            to,
            owners,
            comm,
            ..
        } = &ev[0]
        else {
            panic!("{ev:?}")
        };
        assert_eq!((from.0, to.0), (TcpState::Established, TcpState::Close));
        assert_eq!((owners[0].pid, comm.as_deref()), (7, Some("app")));
        // Held, it waits for its close() however long that takes.
        assert!(
            t.step(&snap(vec![]), &f, &[], 30 + 60_000, &mut fd)
                .is_empty()
        );
        // close(): the kernel frees it and says so.
        let ev = t.step(&snap(vec![]), &f, &[destroyed(1, 3, 0)], 70_000, &mut fd);
        assert_eq!(
            ev,
            vec![WatchEvent::Destroy {
                time_unix_ms: 70_000,
                socket: SocketId::of(&conn(1, TcpState::Established)),
                owners: vec![Owner { pid: 7, fd: 3 }],
                comm: Some("app".to_string()),
                last_state: StateName(TcpState::Established),
                probes: Some(3),
                retransmits: Some(0),
                cause: DeathCause::KeepaliveExhausted,
            }]
        );
        // Told once.
        assert!(
            t.step(&snap(vec![]), &f, &[destroyed(1, 3, 0)], 70_100, &mut fd)
                .is_empty()
        );
    }

    #[test]
    fn a_socket_no_fd_holds_is_not_called_held_and_its_late_notification_is_awaited() {
        let f = Filter::default();
        let mut t = watching_one(&f);
        let mut none = held(&[]);
        // It left the dump, its program had closed it: no "still held", no death yet.
        assert!(t.step(&snap(vec![]), &f, &[], 1_000, &mut none).is_empty());
        assert_eq!(t.waiting(), 1);
        // The notification comes 4 s late: a death, with the evidence it carries.
        let ev = t.step(&snap(vec![]), &f, &[destroyed(1, 0, 15)], 5_000, &mut none);
        assert_eq!(the_death(&ev), DeathCause::RetransmitTimeout);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn without_a_notification_in_time_the_death_is_reported_with_cause_unknown() {
        let f = Filter::default();
        let mut t = watching_one(&f);
        let mut none = held(&[]);
        assert!(t.step(&snap(vec![]), &f, &[], 1_000, &mut none).is_empty());
        let due = 1_000 + NOTIFICATION_WAIT_MS;
        assert!(
            t.step(&snap(vec![]), &f, &[], due - 1, &mut none)
                .is_empty()
        );
        let ev = t.step(&snap(vec![]), &f, &[], due, &mut none);
        let [
            WatchEvent::Destroy {
                cause,
                probes,
                retransmits,
                last_state,
                ..
            },
        ] = &ev[..]
        else {
            panic!("{ev:?}")
        };
        assert_eq!(*cause, DeathCause::Unknown);
        assert_eq!((*probes, *retransmits), (None, None));
        assert_eq!(last_state.0, TcpState::Established);
        // A notification after that finds nothing to report twice.
        assert!(
            t.step(&snap(vec![]), &f, &[destroyed(1, 0, 0)], due + 1, &mut none)
                .is_empty()
        );
    }

    #[test]
    fn a_held_socket_whose_fd_is_closed_without_a_notification_ends_unknown() {
        let f = Filter::default();
        let mut t = Tracker::new();
        t.step(
            &snap(vec![conn(1, TcpState::Established)]),
            &f,
            &[],
            0,
            &mut held(&[1001]),
        );
        assert_eq!(
            t.step(&snap(vec![]), &f, &[], 1_000, &mut held(&[1001]))
                .len(),
            1
        );
        // The fd is closed, and the notification was lost: it is awaited from now, then given up.
        assert!(
            t.step(&snap(vec![]), &f, &[], 2_000, &mut held(&[]))
                .is_empty()
        );
        let ev = t.step(
            &snap(vec![]),
            &f,
            &[],
            2_000 + NOTIFICATION_WAIT_MS,
            &mut held(&[]),
        );
        assert_eq!(the_death(&ev), DeathCause::Unknown);
    }

    #[test]
    fn unseen_sockets_are_not_reported_and_time_wait_twins_mean_a_normal_close() {
        let f = Filter::default();
        let mut t = Tracker::new();
        let mut none = held(&[]);
        t.step(
            &snap(vec![
                conn(1, TcpState::Established),
                conn(2, TcpState::Established),
            ]),
            &f,
            &[],
            0,
            &mut none,
        );
        let mut tw = conn(1, TcpState::TimeWait);
        tw.owners.clear();
        tw.inode = 0;
        let ev = t.step(
            &snap(vec![tw, conn(2, TcpState::Established)]),
            &f,
            &[destroyed(1, 0, 0), destroyed(99, 0, 0)],
            5,
            &mut none,
        );
        let kinds: Vec<(&str, u64)> = ev
            .iter()
            .map(|e| match e {
                WatchEvent::Destroy { socket, cause, .. } => {
                    assert_eq!(*cause, DeathCause::Closed);
                    ("destroy", socket.cookie)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        // The destroy took the entry away; the TIME-WAIT entry is new to the tracker.
        assert_eq!(kinds, vec![("destroy", 1)]);
    }

    #[test]
    fn a_fast_close_with_no_evidence_is_unknown_not_reset() {
        let f = Filter::default();
        let mut t = watching_one(&f);
        let mut none = held(&[]);
        let ev = t.step(&snap(vec![]), &f, &[destroyed(1, 0, 0)], 5, &mut none);
        assert_eq!(the_death(&ev), DeathCause::Unknown);
    }

    #[test]
    fn notifications_meet_only_sockets_of_their_namespace_and_unlisted_namespaces_keep_theirs() {
        let f = Filter::default();
        let ns = |inode: u64, error: Option<&str>| NamespaceInfo {
            netns: NetnsRef { inode, name: None },
            current: false,
            pid: None,
            settings: Settings::default(),
            error: error.map(str::to_string),
        };
        let in_ns = |cookie: u64, inode: u64| {
            let mut c = conn(cookie, TcpState::Established);
            c.netns = Some(Arc::new(NetnsRef { inode, name: None }));
            c
        };
        let mut t = Tracker::new();
        let mut none = held(&[]);
        let mut first = snap(vec![in_ns(1, 10), in_ns(2, 20)]);
        first.namespaces = vec![ns(10, None), ns(20, None)];
        t.step(&first, &f, &[], 0, &mut none);
        // Namespace 20 could not be listed this time: its socket is not gone. A notification heard in namespace
        // 20 for cookie 1 (of namespace 10) is not joined with it.
        let mut second = snap(vec![in_ns(1, 10)]);
        second.namespaces = vec![ns(10, None), ns(20, Some("cannot enter"))];
        let wrong_ns = Destroyed {
            netns: 20,
            ..destroyed(1, 0, 0)
        };
        assert!(t.step(&second, &f, &[wrong_ns], 1, &mut none).is_empty());
        assert_eq!((t.watched(), t.waiting()), (2, 0));
        let right = Destroyed {
            netns: 10,
            ..destroyed(1, 3, 0)
        };
        let ev = t.step(&second, &f, &[right], 2, &mut none);
        assert_eq!(the_death(&ev), DeathCause::KeepaliveExhausted);
    }

    #[test]
    fn a_narrower_state_filter_does_not_call_a_held_socket_dead() {
        let f = Filter {
            states: vec![TcpState::Established],
            ..Filter::default()
        };
        let mut t = Tracker::new();
        let mut fd = held(&[1001]);
        t.step(
            &snap(vec![conn(1, TcpState::Established)]),
            &f,
            &[],
            0,
            &mut fd,
        );
        // Gone from an ESTABLISHED-only dump while held: maybe CLOSE-WAIT now. Nothing is claimed.
        assert!(t.step(&snap(vec![]), &f, &[], 1, &mut fd).is_empty());
        assert!(
            t.step(&snap(vec![]), &f, &[], 1 + NOTIFICATION_WAIT_MS, &mut fd)
                .is_empty()
        );
    }

    #[test]
    fn filters_limit_what_is_watched_and_events_serialize_as_documented() {
        let f = Filter {
            dports: vec![9100],
            ..Filter::default()
        };
        let mut other = conn(2, TcpState::Established);
        other.peer_port = 22;
        let mut t = Tracker::new();
        t.step(
            &snap(vec![conn(1, TcpState::Established), other.clone()]),
            &f,
            &[],
            0,
            &mut held(&[]),
        );
        assert_eq!(t.watched(), 1);
        let ev = t.step(
            &snap(vec![conn(1, TcpState::CloseWait)]),
            &f,
            &[destroyed(2, 0, 0)],
            1,
            &mut held(&[]),
        );
        assert_eq!(ev.len(), 1, "{ev:?}");
        let v = serde_json::to_value(&ev[0]).unwrap();
        assert_eq!(v["event"], "state");
        assert_eq!(v["from"], "established");
        assert_eq!(v["to"], "close-wait");
        assert_eq!(v["cookie"], 1);
        assert_eq!(v["local_addr"], "192.0.2.1");
        assert_eq!(v["owners"][0]["pid"], 7);
        let d = serde_json::to_value(WatchEvent::Destroy {
            time_unix_ms: 1,
            socket: SocketId::of(&conn(1, TcpState::Established)),
            owners: Vec::default(),
            comm: None,
            last_state: StateName(TcpState::FinWait1),
            probes: None,
            retransmits: Some(15),
            cause: DeathCause::RetransmitTimeout,
        })
        .unwrap();
        assert_eq!(d["event"], "destroy");
        assert_eq!(d["last_state"], "fin-wait-1");
        assert_eq!(d["cause"], "retransmit_timeout");
        assert!(d["probes"].is_null());
        let lost = WatchEvent::Lost {
            time_unix_ms: 1,
            notifications: 3,
            total: 5,
        };
        let v = serde_json::to_value(&lost).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "lost", "time_unix_ms": 1, "notifications": 3, "total": 5})
        );
    }

    #[test]
    fn time_wait_entries_and_orphans_end_quietly() {
        let f = Filter::default();
        let mut t = Tracker::new();
        let mut none = held(&[]);
        let mut tw = conn(3, TcpState::TimeWait);
        tw.inode = 0;
        tw.owners.clear();
        t.step(&snap(vec![tw]), &f, &[], 0, &mut none);
        assert!(t.step(&snap(vec![]), &f, &[], 1, &mut none).is_empty());
        assert_eq!(t.waiting(), 0);
    }

    /// A small deterministic generator (xorshift), so the sequence below is the same on every run.
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % sides
        }
    }

    /// A host whose sockets change state, lose their owner, leave the dump (held or not, announced or not, in
    /// time or late), come back in namespaces that could not be listed for a while, and are filtered.
    /// `steps` refreshes of a random world; `quiet`: three steps in four without a birth, a death or an unlisted
    /// namespace (states and owners still change), so that the tracker sees the same sockets in the same order.
    fn world_steps(
        seed: u64,
        steps: usize,
        quiet: bool,
    ) -> Vec<(Snapshot, Vec<Destroyed>, Vec<u32>, u64)> {
        let mut dice = Dice(seed);
        let states = [
            TcpState::Established,
            TcpState::CloseWait,
            TcpState::FinWait1,
            TcpState::SynSent,
            TcpState::Listen,
            TcpState::TimeWait,
        ];
        let ns = |inode: u64, error: bool| NamespaceInfo {
            netns: NetnsRef { inode, name: None },
            current: inode == 10,
            pid: None,
            settings: Settings::default(),
            error: error.then(|| "cannot enter".to_string()),
        };
        // Live sockets: cookie -> connection; dead ones: cookie and inode, for late notifications and held fds.
        let mut alive: BTreeMap<u64, Connection> = BTreeMap::new();
        let mut dead: Vec<(u64, u64, u32)> = Vec::new();
        let mut next = 1;
        let mut out = Vec::new();
        for step in 0..steps {
            let now = step as u64 * 3_000;
            let calm = quiet && step % 4 != 0;
            for _ in 0..if calm { 0 } else { dice.roll(6) } {
                let mut c = conn(next, states[dice.roll(5) as usize]);
                c.peer_port = [9100, 22][dice.roll(2) as usize];
                c.owners = Owner {
                    pid: [7, 8][dice.roll(2) as usize],
                    fd: 3,
                }
                .into();
                c.netns = Some(Arc::new(NetnsRef {
                    inode: [10, 20][dice.roll(2) as usize],
                    name: None,
                }));
                alive.insert(next, c);
                next += 1;
            }
            let mut destroyed = Vec::new();
            let cookies: Vec<u64> = alive.keys().copied().collect();
            for cookie in cookies {
                let netns = alive[&cookie].netns.as_ref().map_or(0, |n| n.inode);
                match dice.roll(12) {
                    0 if calm => {}
                    0 => {
                        let c = alive.remove(&cookie).unwrap();
                        dead.push((netns, cookie, c.inode));
                    }
                    1 => {
                        // Ended normally: a TIME-WAIT twin with the same cookie, and the notification.
                        let c = alive.get_mut(&cookie).unwrap();
                        c.state = TcpState::TimeWait;
                        c.owners.clear();
                        c.inode = 0;
                        destroyed.push(Destroyed {
                            netns,
                            ..destroyed_note(cookie, 0, 0)
                        });
                    }
                    2 => alive.get_mut(&cookie).unwrap().state = states[dice.roll(6) as usize],
                    3 => alive.get_mut(&cookie).unwrap().owners.clear(),
                    4 => {
                        alive.get_mut(&cookie).unwrap().owners = Owner { pid: 8, fd: 4 }.into();
                    }
                    // A notification for a socket listed again as it was (its cookie heard dying).
                    5 if dice.roll(4) == 0 => destroyed.push(Destroyed {
                        netns,
                        ..destroyed_note(cookie, 0, 0)
                    }),
                    _ => {}
                }
            }
            // Late, lost and stray notifications.
            dead.retain(|&(netns, cookie, _)| match dice.roll(4) {
                0 => {
                    destroyed.push(Destroyed {
                        netns,
                        ..destroyed_note(cookie, dice.roll(4) as u8, dice.roll(16) as u8)
                    });
                    false
                }
                1 => false,
                _ => true,
            });
            if dice.roll(5) == 0 {
                destroyed.push(destroyed_note(10_000 + dice.roll(50), 1, 1));
            }
            let held: Vec<u32> = dead
                .iter()
                .filter(|_| dice.roll(2) == 0)
                .map(|&(_, _, inode)| inode)
                .collect();
            let unlisted = dice.roll(4) == 0 && !calm;
            let mut snapshot = snap(
                alive
                    .values()
                    .filter(|c| !(unlisted && c.netns.as_ref().is_some_and(|n| n.inode == 20)))
                    .cloned()
                    .collect(),
            );
            if dice.roll(3) == 0 {
                snapshot.processes.insert(
                    8,
                    Process {
                        pid: 8,
                        comm: "db".to_string(),
                        cmdline: vec![],
                        uid: Some(0),
                        user: None,
                    },
                );
            }
            snapshot.namespaces = vec![ns(10, false), ns(20, unlisted)];
            out.push((snapshot, destroyed, held, now));
        }
        out
    }

    fn destroyed_note(cookie: u64, probes: u8, retransmits: u8) -> Destroyed {
        destroyed(cookie, probes, retransmits)
    }

    #[test]
    fn the_shared_and_brief_trackers_say_what_the_copying_one_said() {
        let filters = [
            Filter::default(),
            Filter {
                states: vec![TcpState::Established],
                ..Filter::default()
            },
            Filter {
                dports: vec![9100],
                ..Filter::default()
            },
        ];
        let mut events = 0;
        // Steps in which the told tracker was told, with deaths heard.
        let (mut told_steps, mut told_deaths) = (0, 0);
        for (seed, quiet) in (1..=40u64).flat_map(|seed| [(seed, false), (seed, true)]) {
            for f in &filters {
                let mut old = reference::Tracker::new();
                let mut new = Tracker::new();
                let mut brief = Tracker::new();
                brief.keep_brief();
                // Told which sockets are where they were, as `kwatch record`'s encoder tells it (the encoder's
                // side of it is tested in recording::frame); nothing told now and then, as at a key frame.
                let mut told = Tracker::new();
                let mut last: Option<Arc<Snapshot>> = None;
                for (i, (snapshot, destroyed, held_inodes, now)) in
                    world_steps(seed * 7919, 60, quiet).into_iter().enumerate()
                {
                    let want = old.step(&snapshot, f, &destroyed, now, &mut held(&held_inodes));
                    // The brief tracker's snapshot is dropped right after its step: it keeps its own.
                    let briefly = brief.step_shared(
                        &Arc::new(snapshot.clone()),
                        f,
                        &destroyed,
                        now,
                        &mut held(&held_inodes),
                    );
                    let shared = Arc::new(snapshot);
                    let got = new.step_shared(&shared, f, &destroyed, now, &mut held(&held_inodes));
                    assert_eq!(got, want, "seed {seed}, step {i}, filter {f:?}");
                    let was = last.take().filter(|_| i % 16 != 0);
                    let stirred = was.as_ref().and_then(|w| changed_or_ownerless(w, &shared));
                    let unchanged =
                        was.as_ref()
                            .zip(stirred.as_deref())
                            .map(|(was, stirred)| Unchanged {
                                was,
                                now: &shared,
                                stirred,
                            });
                    if unchanged.is_some() && f.is_empty() {
                        told_steps += 1;
                        told_deaths += usize::from(!destroyed.is_empty());
                    }
                    let toldly = told.step_unchanged(
                        &shared,
                        f,
                        &destroyed,
                        now,
                        &mut held(&held_inodes),
                        unchanged,
                    );
                    assert_eq!(toldly, want, "told: seed {seed}, step {i}, filter {f:?}");
                    last = Some(shared);
                    assert_eq!(briefly, want, "brief: seed {seed}, step {i}, filter {f:?}");
                    assert_eq!(
                        (brief.watched(), brief.waiting()),
                        (old.watched(), old.waiting()),
                        "brief: seed {seed}, step {i}"
                    );
                    assert_eq!(
                        (new.watched(), new.waiting()),
                        (old.watched(), old.waiting()),
                        "seed {seed}, step {i}"
                    );
                    events += want.len();
                }
            }
        }
        // The sequences exercise every kind of event, not just quiet steps, and the told tracker is told often,
        // in steps with deaths too.
        assert!(events > 1_000, "{events}");
        assert!(
            told_steps > 500 && told_deaths > 100,
            "{told_steps} {told_deaths}"
        );
    }

    /// What the recorder's encoder tells of `now` after `was`: when they list the same sockets in the same
    /// order, those that changed at all or have no owner.
    fn changed_or_ownerless(was: &Snapshot, now: &Snapshot) -> Option<Vec<u32>> {
        if was.connections.len() != now.connections.len() {
            return None;
        }
        let mut out = Vec::new();
        for (i, (a, b)) in was.connections.iter().zip(&now.connections).enumerate() {
            if key(a) != key(b) {
                return None;
            }
            if a != b || b.owners.is_empty() {
                out.push(i as u32);
            }
        }
        Some(out)
    }

    #[test]
    fn a_tracker_told_of_other_snapshots_does_not_listen() {
        // Told that nothing moved, of a pair of snapshots it was not stepped with: it looks for itself and sees
        // the state change.
        let f = Filter::default();
        let mut t = Tracker::new();
        let mut none = held(&[]);
        let first = Arc::new(snap(vec![conn(1, TcpState::Established)]));
        t.step_shared(&first, &f, &[], 0, &mut none);
        let second = Arc::new(snap(vec![conn(1, TcpState::CloseWait)]));
        let other = Arc::new(snap(vec![conn(1, TcpState::Established)]));
        let nothing = Unchanged {
            was: &other,
            now: &second,
            stirred: &[],
        };
        let ev = t.step_unchanged(&second, &f, &[], 1, &mut none, Some(nothing));
        assert_eq!(ev.len(), 1, "{ev:?}");
        // Told truly (the socket at 0 is stirred), it sees the change back.
        let third = Arc::new(snap(vec![conn(1, TcpState::Established)]));
        let told = Unchanged {
            was: &second,
            now: &third,
            stirred: &[0],
        };
        let ev = t.step_unchanged(&third, &f, &[], 2, &mut none, Some(told));
        assert!(matches!(&ev[..], [WatchEvent::State { .. }]), "{ev:?}");
    }
}
