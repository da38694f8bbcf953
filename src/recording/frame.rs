//! One recorded refresh as bytes, and back: key frames hold every socket, delta frames what changed since the
//! frame before (pure; compression and files are [`super::store`]'s).
//!
//! A frame (before compression):
//! ```text
//! flags, clock count, clocks, dump_us, proc_scan_us      varints; a clock: zigzag(first socket - previous
//!                                                         clock's), zigzag(base - previous clock's base)
//! part mask, then each part present: length + JSON        host, kernel, settings, as_root, namespaces,
//!                                                         processes, unreadable, warnings, held_dead, units
//! socket count, op count, ops                             op = n << 1 | 0: n sockets equal to the previous
//!                                                         frame's, from index start (zigzag delta follows);
//!                                                         op = n << 1 | 1: n sockets written in full follow
//! destroyed count, destroyed                            destroy notifications received before this refresh:
//!                                                         netns inode, cookie, probes + 1, retransmits + 1 (0:
//!                                                         not known)
//! held count, held                                        (socket inode, pid) pairs /proc showed holding a
//!                                                         socket that left the dump
//! lost                                                    destroy notifications lost before this refresh
//! ```
//! Sockets are stored with their times as moments on their clock's `base` ([`codec::to_moments`]), so a
//! socket whose state, counters and timers did not change is equal to its previous record and costs a share of one
//! copy op. A part of the snapshot that did not change (the process table, the namespaces) is left out of a delta
//! frame. Key frames write every part and every socket.

use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{self, DecodeError, Interner, Reader, put};
use crate::events::listener::Destroyed;
use crate::events::{Evidence, Unchanged};
use crate::model::{Connection, Snapshot, TimerKind};

/// Frame flag: the first frame a recorder wrote after it started (what came before is another session).
pub const FLAG_SESSION_START: u64 = 1;
/// Frame flag: the recorder had a destroy notification subscription open (deaths are recorded).
pub const FLAG_DEATHS: u64 = 2;
const FLAGS_KNOWN: u64 = FLAG_SESSION_START | FLAG_DEATHS;

/// One decoded refresh: the snapshot as it was taken, what the recorder's feed heard and found before it, and
/// the frame's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub snapshot: Snapshot,
    pub evidence: Evidence,
    pub flags: u64,
}

/// Turns snapshots into frames, remembering the last one to write only what changed.
#[derive(Default)]
pub struct Encoder {
    /// The previous frame's snapshot as it was taken, shared with whoever else keeps it (the death feed's tracker
    /// keeps the same one until its next step): the encoder neither copies nor changes a snapshot.
    prev: Option<Arc<Snapshot>>,
    /// The previous frame's clocks, as (first socket, base): its sockets' moments are their times on these.
    clocks: Vec<(usize, u64)>,
    /// Socket key -> index in `prev.connections` (the first socket with that key), built when a socket is not
    /// where it was (a steady host lists its sockets in the same order: never, and a million entries are not kept).
    index: FxHashMap<(u64, u64), u32>,
    /// Whether `index` is built for `prev`.
    indexed: bool,
    /// [`Compared::stirred`]'s memory, kept from one frame to the next.
    stirred: Vec<u32>,
}

fn key_of(c: &Connection) -> (u64, u64) {
    (c.cookie, c.netns.as_ref().map_or(0, |n| n.inode))
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Encodes `snapshot` (kept, shared, for the next delta; never changed) and the destroy notifications received
    /// before it. `key` writes a key frame, which reads without any frame before it; the first frame is always one.
    pub fn encode(
        &mut self,
        snapshot: Arc<Snapshot>,
        evidence: &Evidence,
        key: bool,
        flags: u64,
    ) -> Vec<u8> {
        let compared = self.compare(snapshot, key);
        self.finish(compared, evidence, flags)
    }

    /// The first half of [`Encoder::encode`]: compares `snapshot` with the previous frame's (unless `key`), in one
    /// pass over the sockets, each found in the previous frame and compared with its match as moments on a clock
    /// (a pass to find them first read both snapshots once more: 3 ms a delta at 200,000 sockets). Changes
    /// nothing the next frame reads until [`Encoder::finish`].
    pub fn compare(&mut self, snapshot: Arc<Snapshot>, key: bool) -> Compared {
        let prev = if key { None } else { self.prev.clone() };
        let was = prev.as_deref().map(|p| (p, self.clocks.as_slice()));
        let fallback = match (&prev, self.clocks.first()) {
            (Some(p), Some(&(_, base))) => {
                base.wrapping_add(snapshot.taken_at_unix_ms.wrapping_sub(p.taken_at_unix_ms))
            }
            _ => snapshot.taken_at_unix_ms,
        };
        let mut matcher = prev.as_deref().map(|p| Matcher {
            prev: p,
            index: &mut self.index,
            indexed: &mut self.indexed,
            next: 0,
        });
        let mut stirred = std::mem::take(&mut self.stirred);
        stirred.clear();
        let (clocks, ops, in_place) = clocks_and_ops(
            was,
            &snapshot.connections,
            matcher.as_mut(),
            fallback,
            &mut stirred,
        );
        let same_order = in_place
            && prev
                .as_ref()
                .is_some_and(|p| p.connections.len() == snapshot.connections.len());
        Compared {
            snapshot,
            prev,
            clocks,
            ops,
            same_order,
            stirred,
        }
    }

    /// The second half of [`Encoder::encode`]: writes the frame `compare` found, with `evidence`.
    pub fn finish(&mut self, compared: Compared, evidence: &Evidence, flags: u64) -> Vec<u8> {
        let Compared {
            snapshot,
            prev,
            clocks,
            ops,
            same_order,
            stirred,
        } = compared;
        // A key frame takes some 40 bytes a socket before compression, a steady delta a few bytes in all.
        let capacity = match prev {
            Some(_) => 4096,
            None => 64 + snapshot.connections.len() * 40,
        };
        let mut buf = Vec::with_capacity(capacity);
        put(&mut buf, flags);
        put(&mut buf, clocks.len() as u64);
        let mut last = (0, 0);
        for &(from, base) in &clocks {
            put(&mut buf, zigzag(from as i64 - last.0 as i64));
            put(&mut buf, zigzag(base.wrapping_sub(last.1) as i64));
            last = (from, base);
        }
        put(&mut buf, snapshot.dump_us);
        put(&mut buf, snapshot.proc_scan_us);
        put_parts(&mut buf, prev.as_deref(), &snapshot);
        put(&mut buf, snapshot.connections.len() as u64);
        put(&mut buf, ops.len() as u64);
        let mut expected: u64 = 0;
        for op in ops {
            match op {
                Op::Copy { start, n } => {
                    put(&mut buf, (n as u64) << 1);
                    put(&mut buf, zigzag(start as i64 - expected as i64));
                    expected = start as u64 + n as u64;
                }
                Op::Full { from, n } => {
                    put(&mut buf, (n as u64) << 1 | 1);
                    for (i, c) in snapshot.connections[from..from + n].iter().enumerate() {
                        codec::put_connection(&mut buf, c, base_at(&clocks, from + i));
                    }
                }
            }
        }
        put_evidence(&mut buf, evidence);
        // Every socket where it was in the previous frame (a steady host): the index, if built, still holds.
        if !same_order {
            self.index = FxHashMap::default();
            self.indexed = false;
        }
        self.clocks = clocks;
        self.stirred = stirred;
        // The previous frame's snapshot is let go here, after the new frame is written (freed if no one else
        // holds it).
        drop(prev);
        self.prev = Some(snapshot);
        buf
    }
}

/// A snapshot compared with the previous frame's ([`Encoder::compare`]), to be written by [`Encoder::finish`].
pub struct Compared {
    snapshot: Arc<Snapshot>,
    /// The previous frame's snapshot it was compared with; `None` for a key frame.
    prev: Option<Arc<Snapshot>>,
    clocks: Vec<(usize, u64)>,
    ops: Vec<Op>,
    /// Every socket was found at its own index in `prev`, which lists as many.
    same_order: bool,
    /// With `same_order`: the sockets not equal to their previous record, or without an owner, ascending.
    stirred: Vec<u32>,
}

impl Compared {
    /// What the comparison says to the death feed's tracker, stepped with the same snapshot after the previous
    /// frame's (see [`Unchanged`]): when every socket is where it was, the few to look at. The tracker then reads
    /// the two snapshots no more (a pass over both, 4.5 ms a refresh at 200,000 sockets).
    pub fn unchanged(&self) -> Option<Unchanged<'_>> {
        let was = self.prev.as_ref()?;
        self.same_order.then_some(Unchanged {
            was,
            now: &self.snapshot,
            stirred: &self.stirred,
        })
    }
}

/// Finds sockets of a frame in the previous one, in dump order ([`Matcher::find`]).
struct Matcher<'a> {
    prev: &'a Snapshot,
    index: &'a mut FxHashMap<(u64, u64), u32>,
    indexed: &'a mut bool,
    /// Where the next socket is looked for first: after the last match.
    next: usize,
}

impl Matcher<'_> {
    /// The index of the previous frame's socket with the key of `c`, if any (the first one with it). A dump lists
    /// sockets in the same order from one refresh to the next, so the one after the last match is tried before
    /// a lookup in the index (built at the first socket not found there).
    fn find(&mut self, c: &Connection) -> Option<u32> {
        let j = match self.prev.connections.get(self.next) {
            Some(n) if key_of(n) == key_of(c) => self.next as u32,
            _ => {
                if !*self.indexed {
                    self.index.reserve(self.prev.connections.len());
                    for (i, c) in self.prev.connections.iter().enumerate() {
                        self.index.entry(key_of(c)).or_insert(i as u32);
                    }
                    *self.indexed = true;
                }
                *self.index.get(&key_of(c))?
            }
        };
        self.next = j as usize + 1;
        Some(j)
    }
}

/// The frame's clocks, as (first socket, base) in dump order, and its ops: runs of sockets equal to their match in
/// the previous frame (`prev`, with its clocks, where `matcher` finds them), and runs of sockets to write in full; sockets are compared as
/// moments on their clock's base ([`codec::same_moments`]), neither changed nor copied.
///
/// A clock is how far the kernel's clock moved since the frame before, told by the sockets that did not change: a
/// base that keeps a steady socket's moments (its timer's expiry, its last receive) where they were. The kernel's
/// clock ticks (4 ms jiffies) while a dump runs, and the sockets of one dump do not all see the ticks in their
/// order, so the clocks are chosen socket by socket: a socket not equal to its previous record on the current base
/// but equal on the base it asks for ([`wanted_base`]) starts a clock there (two varints, instead of the socket
/// written in full); a socket that changed stays on the current clock and is written in full. Any clocks decode
/// exactly; good ones make steady sockets free. Also returns whether every socket was found at its own index, and
/// while it was, pushes to `stirred` those not equal to their previous record or without an owner.
fn clocks_and_ops(
    prev: Option<(&Snapshot, &[(usize, u64)])>,
    conns: &[Connection],
    mut matcher: Option<&mut Matcher>,
    fallback: u64,
    stirred: &mut Vec<u32>,
) -> (Vec<(usize, u64)>, Vec<Op>, bool) {
    let mut clocks: Vec<(usize, u64)> = vec![(0, fallback)];
    let mut ops: Vec<Op> = Vec::new();
    let mut base = fallback;
    // Whether a socket is on the last clock yet: a clock that none is on is moved rather than followed.
    let mut used = false;
    // The previous frame's clock of its socket `j`, found by walking forward (matches mostly ascend).
    let mut was_clock = 0;
    // Whether every socket so far was found where it is.
    let mut in_place = true;
    for (i, c) in conns.iter().enumerate() {
        let j = matcher.as_mut().and_then(|m| m.find(c));
        in_place &= j == Some(i as u32);
        let same = match prev.zip(j) {
            None => None,
            Some(((p, p_clocks), j)) => {
                let j = j as usize;
                let was = &p.connections[j];
                if p_clocks.get(was_clock).is_none_or(|(from, _)| *from > j) {
                    was_clock = 0;
                }
                while p_clocks
                    .get(was_clock + 1)
                    .is_some_and(|(from, _)| *from <= j)
                {
                    was_clock += 1;
                }
                let was_base = p_clocks.get(was_clock).map_or(0, |(_, base)| *base);
                if codec::same_moments(c, base, was, was_base) {
                    Some(j)
                } else if let Some(w) = wanted_base(was, was_base, c, base)
                    .filter(|w| *w != base && codec::same_moments(c, *w, was, was_base))
                {
                    match clocks.last_mut() {
                        Some(last) if !used => last.1 = w,
                        _ => clocks.push((i, w)),
                    }
                    base = w;
                    Some(j)
                } else {
                    None
                }
            }
        };
        used = true;
        if in_place && (same.is_none() || c.owners.is_empty()) {
            stirred.push(i as u32);
        }
        match (same, ops.last_mut()) {
            (Some(j), Some(Op::Copy { start, n })) if *start + *n == j => *n += 1,
            (Some(j), _) => ops.push(Op::Copy { start: j, n: 1 }),
            (None, Some(Op::Full { n, .. })) => *n += 1,
            (None, _) => ops.push(Op::Full { from: i, n: 1 }),
        }
    }
    (clocks, ops, in_place)
}

/// The base on which socket `now` keeps the moments of its previous record `was` (as taken, on clock
/// `was_base`), if it tells: by its timer when it did not change kind or count, else by its last receive. `near` is
/// a base close to the answer (to widen the 32-bit moments).
fn wanted_base(was: &Connection, was_base: u64, now: &Connection, near: u64) -> Option<u64> {
    if now.timer.kind != TimerKind::None
        && was.timer.kind == now.timer.kind
        && was.timer.count == now.timer.count
    {
        // moment = base + expires_ms (mod 2^32)
        let moment = (was_base as u32).wrapping_add(was.timer.expires_ms);
        return Some(widen(moment.wrapping_sub(now.timer.expires_ms), near));
    }
    let moment = (was_base as u32).wrapping_sub(was.tcp_info.as_ref()?.last_ack_recv_ms()?);
    let ago = now.tcp_info.as_ref()?.last_ack_recv_ms()?;
    // moment = base - ago (mod 2^32)
    Some(widen(moment.wrapping_add(ago), near))
}

/// The 64-bit value nearest `near` whose low 32 bits are `low`.
fn widen(low: u32, near: u64) -> u64 {
    near.wrapping_add(i64::from(low.wrapping_sub(near as u32) as i32) as u64)
}

/// The base of socket `i`: the last clock starting at or before it.
fn base_at(clocks: &[(usize, u64)], i: usize) -> u64 {
    let at = clocks.partition_point(|(from, _)| *from <= i);
    clocks[at.saturating_sub(1)].1
}

/// The base of each socket, in order, from the clocks.
fn bases(clocks: &[(usize, u64)]) -> impl Iterator<Item = u64> + '_ {
    let mut at = 0;
    (0..).map(move |i| {
        while clocks.get(at + 1).is_some_and(|(from, _)| *from <= i) {
            at += 1;
        }
        clocks.get(at).map_or(0, |(_, base)| *base)
    })
}

enum Op {
    Copy { start: usize, n: usize },
    Full { from: usize, n: usize },
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The snapshot's parts other than its sockets, each stored as JSON when it changed (rare: the process table,
/// the namespaces); JSON so that a part's type can gain a field without making older recordings unreadable.
macro_rules! parts {
    ($($bit:literal => $field:ident),* $(,)?) => {
        fn put_parts(buf: &mut Vec<u8>, prev: Option<&Snapshot>, now: &Snapshot) {
            let mut mask: u64 = 0;
            $( if prev.is_none_or(|p| p.$field != now.$field) { mask |= 1 << $bit; } )*
            put(buf, mask);
            $( if mask & 1 << $bit != 0 { put_json(buf, &now.$field); } )*
        }

        fn get_parts(r: &mut Reader, snapshot: &mut Snapshot, key: bool) -> Result<(), DecodeError> {
            let mask = r.get()?;
            const ALL: u64 = $( 1 << $bit | )* 0;
            if mask & !ALL != 0 || (key && mask != ALL) {
                return Err(DecodeError::Invalid("part mask"));
            }
            $( if mask & 1 << $bit != 0 { snapshot.$field = get_json(r)?; } )*
            Ok(())
        }
    };
}

parts! {
    0 => host,
    1 => kernel,
    2 => settings,
    3 => as_root,
    4 => namespaces,
    5 => processes,
    6 => unreadable,
    7 => warnings,
    8 => held_dead,
    9 => units,
}

fn put_json(buf: &mut Vec<u8>, value: &impl Serialize) {
    // Serializing these plain data types to memory cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    codec::put_part(buf, &bytes);
}

fn get_json<T: DeserializeOwned>(r: &mut Reader) -> Result<T, DecodeError> {
    serde_json::from_slice(r.get_bytes()?).map_err(|_| DecodeError::Invalid("snapshot part"))
}

/// Turns frames back into snapshots, from a key frame on.
#[derive(Default)]
pub struct Decoder {
    /// The last frame's snapshot without its sockets.
    prev: Option<Snapshot>,
    /// The last frame's sockets, as moments. Shared, so that a frame copying 200,000 sockets from the one before
    /// copies pointers, not sockets.
    conns: Vec<Rc<Connection>>,
    interner: Interner,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one frame taken at `taken_at_unix_ms`; `key` says whether it is a key frame (a delta frame needs the
    /// frame before it decoded first). [`Decoder::frame`] builds its snapshot.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        key: bool,
        taken_at_unix_ms: u64,
    ) -> Result<Decoded, DecodeError> {
        let prev = if key {
            None
        } else {
            Some(
                self.prev
                    .take()
                    .ok_or(DecodeError::Invalid("delta frame without key frame"))?,
            )
        };
        let prev_conns = if key {
            Vec::new()
        } else {
            std::mem::take(&mut self.conns)
        };
        self.conns.clear();
        let mut r = Reader::new(bytes);
        let flags = r.get()?;
        if flags & !FLAGS_KNOWN != 0 {
            return Err(DecodeError::Invalid("frame flags"));
        }
        let count = r.get_len()?;
        if count == 0 {
            return Err(DecodeError::Invalid("clock count"));
        }
        let mut clocks: Vec<(usize, u64)> = Vec::with_capacity(count);
        let mut last: (i64, u64) = (0, 0);
        for _ in 0..count {
            let from = last
                .0
                .checked_add(unzigzag(r.get()?))
                .filter(|f| *f >= last.0)
                .ok_or(DecodeError::Invalid("clock"))?;
            let base = last.1.wrapping_add(unzigzag(r.get()?) as u64);
            clocks.push((
                usize::try_from(from).map_err(|_| DecodeError::Invalid("clock"))?,
                base,
            ));
            last = (from, base);
        }
        if clocks[0].0 != 0 {
            return Err(DecodeError::Invalid("clock"));
        }
        let (dump_us, proc_scan_us) = (r.get()?, r.get()?);
        let mut snapshot = Snapshot {
            taken_at_unix_ms,
            dump_us,
            proc_scan_us,
            ..prev.unwrap_or_default()
        };
        get_parts(&mut r, &mut snapshot, key)?;
        let total = r.get_as::<usize>("socket count")?;
        let mut conns: Vec<Rc<Connection>> =
            Vec::with_capacity(total.min(prev_conns.len() + r_len(&r)));
        let ops = r.get_len()?;
        let mut expected: i64 = 0;
        for _ in 0..ops {
            let op = r.get()?;
            let n = usize::try_from(op >> 1).map_err(|_| DecodeError::Invalid("op"))?;
            if op & 1 == 0 {
                let start = expected
                    .checked_add(unzigzag(r.get()?))
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or(DecodeError::Invalid("copy op"))?;
                let run = start
                    .checked_add(n)
                    .and_then(|end| prev_conns.get(start..end))
                    .ok_or(DecodeError::Invalid("copy op"))?;
                conns.extend(run.iter().cloned());
                expected = (start + n) as i64;
            } else {
                if n > r_len(&r) {
                    return Err(DecodeError::Truncated);
                }
                for _ in 0..n {
                    let base = base_at(&clocks, conns.len());
                    let c = codec::get_connection(&mut r, &mut self.interner, base)?;
                    conns.push(Rc::new(c));
                }
            }
            if conns.len() > total {
                return Err(DecodeError::Invalid("socket count"));
            }
        }
        if conns.len() != total {
            return Err(DecodeError::Invalid("socket count"));
        }
        let evidence = get_evidence(&mut r)?;
        if !r.is_empty() {
            return Err(DecodeError::Invalid("frame length"));
        }
        self.prev = Some(snapshot);
        self.conns = conns;
        Ok(Decoded {
            clocks,
            flags,
            evidence,
        })
    }

    /// The snapshot of the frame decoded last, as it was taken (times relative to its moment again).
    pub fn frame(&self, decoded: Decoded) -> Option<Frame> {
        let mut snapshot = self.prev.clone()?;
        snapshot.connections = self
            .conns
            .iter()
            .zip(bases(&decoded.clocks))
            .map(|(c, base)| {
                let mut c = Connection::clone(c);
                codec::from_moments(&mut c, base);
                c
            })
            .collect();
        Some(Frame {
            snapshot,
            evidence: decoded.evidence,
            flags: decoded.flags,
        })
    }
}

fn r_len(r: &Reader) -> usize {
    // An upper bound on how many more sockets the entry can hold (each takes well over one byte).
    r.remaining()
}

/// What [`Decoder::decode`] read besides the sockets.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// (first socket, base) in socket order.
    clocks: Vec<(usize, u64)>,
    pub flags: u64,
    pub evidence: Evidence,
}

/// An optional small count as one varint: 0 when unknown, else the count + 1.
fn put_opt(buf: &mut Vec<u8>, v: Option<u8>) {
    put(buf, v.map_or(0, |v| u64::from(v) + 1));
}

fn get_opt(r: &mut Reader) -> Result<Option<u8>, DecodeError> {
    match r.get()? {
        0 => Ok(None),
        v => u8::try_from(v - 1)
            .map(Some)
            .map_err(|_| DecodeError::Invalid("count")),
    }
}

fn put_evidence(buf: &mut Vec<u8>, e: &Evidence) {
    put(buf, e.destroyed.len() as u64);
    for d in &e.destroyed {
        put(buf, d.netns);
        put(buf, d.cookie);
        put_opt(buf, d.probes);
        put_opt(buf, d.retransmits);
    }
    put(buf, e.held.len() as u64);
    for (inode, pid) in &e.held {
        put(buf, u64::from(*inode));
        put(buf, u64::from(*pid));
    }
    put(buf, e.lost);
}

fn get_evidence(r: &mut Reader) -> Result<Evidence, DecodeError> {
    let mut e = Evidence::default();
    let n = r.get_len()?;
    e.destroyed.reserve(n.min(r.remaining()));
    for _ in 0..n {
        e.destroyed.push(Destroyed {
            netns: r.get()?,
            cookie: r.get()?,
            probes: get_opt(r)?,
            retransmits: get_opt(r)?,
        });
    }
    let n = r.get_len()?;
    e.held.reserve(n.min(r.remaining()));
    for _ in 0..n {
        e.held.push((r.get_as("inode")?, r.get_as("pid")?));
    }
    e.lost = r.get()?;
    Ok(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Process, TcpInfoFields, TcpState, Timer, TimerKind};
    use crate::recording::codec::tests::busy_connection;

    fn snap(at: u64, conns: Vec<Connection>) -> Snapshot {
        Snapshot {
            taken_at_unix_ms: at,
            dump_us: at % 1000,
            host: "h".into(),
            connections: conns,
            processes: BTreeMap::from([(
                1,
                Process {
                    pid: 1,
                    comm: "init".into(),
                    cmdline: vec!["/sbin/init".into()],
                    uid: Some(0),
                    user: Some("root".into()),
                },
            )]),
            warnings: vec![format!("w{at}")],
            ..Snapshot::default()
        }
    }

    fn conn(cookie: u64, expires: u32) -> Connection {
        let mut c = busy_connection();
        c.cookie = cookie;
        c.state = TcpState::Established;
        c.timer = Timer {
            kind: TimerKind::Keepalive,
            expires_ms: expires,
            count: 0,
        };
        // Linux always reports 0 here: steady, not a time that moves.
        let mut info = TcpInfoFields::from(c.tcp_info.take().unwrap());
        info.last_ack_sent_ms = Some(0);
        c.tcp_info = Some(info.into());
        c
    }

    /// Encodes a series, decodes it back, and returns the sizes of the frames.
    fn round_trip(series: &[(Snapshot, bool)]) -> Vec<usize> {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut sizes = Vec::new();
        for (i, (s, key)) in series.iter().enumerate() {
            let evidence = Evidence {
                destroyed: vec![Destroyed {
                    netns: 4_026_531_840,
                    cookie: 1000 + i as u64,
                    probes: Some(i as u8),
                    retransmits: None,
                }],
                held: vec![(77 + i as u32, 1234)],
                lost: i as u64,
            };
            let bytes = enc.encode(Arc::new(s.clone()), &evidence, *key || i == 0, FLAG_DEATHS);
            sizes.push(bytes.len());
            let decoded = dec
                .decode(&bytes, *key || i == 0, s.taken_at_unix_ms)
                .unwrap();
            let frame = dec.frame(decoded).unwrap();
            assert_eq!(frame.snapshot, *s, "frame {i}");
            assert_eq!(frame.evidence, evidence);
            assert_eq!(frame.flags, FLAG_DEATHS);
        }
        sizes
    }

    #[test]
    fn steady_sockets_cost_nothing_and_changes_read_back_exactly() {
        let steady: Vec<Connection> = (0..1000).map(|k| conn(k, 7_000_000 + k as u32)).collect();
        let mut series = Vec::new();
        for step in 0..6u64 {
            // The clock moves 10 s: every keepalive timer is 10 s nearer; one socket changes state, one
            // leaves, one arrives; the warnings change.
            let mut conns: Vec<Connection> = steady
                .iter()
                .filter(|c| c.cookie != 500 + step)
                .map(|c| {
                    let mut c = c.clone();
                    c.timer.expires_ms -= step as u32 * 10_000;
                    let mut info = TcpInfoFields::from(c.tcp_info.take().unwrap());
                    let age = |v: Option<u32>| v.map(|v| v.wrapping_add(step as u32 * 10_000));
                    info.last_ack_recv_ms = age(info.last_ack_recv_ms);
                    info.last_data_recv_ms = age(info.last_data_recv_ms);
                    c.tcp_info = Some(info.into());
                    c
                })
                .collect();
            conns[10].state = TcpState::CloseWait;
            conns[10].recv_q = step as u32;
            conns.push(conn(5000 + step, 42));
            series.push((snap(1_000_000 + step * 10_000, conns), step == 4));
        }
        let sizes = round_trip(&series);
        // A key frame holds every socket; a delta a few of them and a few copy ops.
        assert!(sizes[0] > 50_000, "{sizes:?}");
        for (i, size) in sizes
            .iter()
            .enumerate()
            .filter(|(i, _)| ![0, 4].contains(i))
        {
            assert!(*size < 1500, "frame {i}: {sizes:?}");
        }
        assert!(sizes[4] > 50_000, "{sizes:?}");
    }

    /// `n` steady sockets (keepalive timers, last receives) `step` refreshes of 10 s after the first.
    fn steady(n: u64, step: u32) -> Vec<Connection> {
        (0..n)
            .map(|k| {
                let mut c = conn(k, 7_000_000 + k as u32);
                c.timer.expires_ms -= step * 10_000;
                let mut info = TcpInfoFields::from(c.tcp_info.take().unwrap());
                let age = |v: Option<u32>| v.map(|v| v.wrapping_add(step * 10_000));
                info.last_ack_recv_ms = age(info.last_ack_recv_ms);
                info.last_data_recv_ms = age(info.last_data_recv_ms);
                c.tcp_info = Some(info.into());
                c
            })
            .collect()
    }

    /// A change made to a socket, named.
    type Change = (&'static str, fn(&mut Connection));

    /// The key frame of `first` and the delta frame of `then`, 10 s later.
    fn frames(first: Vec<Connection>, then: Vec<Connection>) -> (Vec<u8>, Vec<u8>) {
        let mut enc = Encoder::new();
        let ev = Evidence::default();
        let key = enc.encode(Arc::new(snap(1_000_000, first)), &ev, true, 0);
        let delta = enc.encode(Arc::new(snap(1_010_000, then)), &ev, false, 0);
        (key, delta)
    }

    #[test]
    fn an_unchanged_socket_costs_nothing() {
        // 100 or 10,000 steady sockets: the delta differs only by the width of two counts (the sockets, the run
        // copied), a byte each.
        let small = frames(steady(100, 0), steady(100, 1)).1.len();
        let large = frames(steady(10_000, 0), steady(10_000, 1)).1.len();
        assert_eq!(large, small + 2, "{small} {large}");
    }

    #[test]
    fn a_change_in_one_field_of_one_socket_records_exactly_that_socket() {
        let unchanged = frames(steady(100, 0), steady(100, 1)).1.len();
        let changes: [Change; 6] = [
            ("state", |c| c.state = TcpState::CloseWait),
            ("recv_q", |c| c.recv_q += 1),
            ("timer count", |c| c.timer.count += 1),
            ("owners", |c| {
                c.owners.push(crate::model::Owner { pid: 9, fd: 9 });
            }),
            ("rtt", |c| {
                let mut t = TcpInfoFields::from(c.tcp_info.take().unwrap());
                t.rtt_us = Some(t.rtt_us.unwrap_or(0) + 1);
                c.tcp_info = Some(t.into());
            }),
            ("keepalive", |c| c.keepalive = None),
        ];
        for (name, change) in changes {
            let mut then = steady(100, 1);
            change(&mut then[37]);
            let (key, bytes) = frames(steady(100, 0), then.clone());
            // The socket in full (on the frame's one clock: the key frame's moved 10 s) after its op's byte, and
            // two copy ops of two bytes around it where the unchanged delta has one of three; one op count.
            let mut full = Vec::new();
            codec::put_connection(&mut full, &then[37], 1_010_000);
            assert_eq!(bytes.len(), unchanged + full.len() + 2, "{name}");
            // And it reads back as that change.
            let mut dec = Decoder::new();
            let d = dec.decode(&key, true, 1_000_000).unwrap();
            dec.frame(d).unwrap();
            let d = dec.decode(&bytes, false, 1_010_000).unwrap();
            assert_eq!(dec.frame(d).unwrap().snapshot.connections, then, "{name}");
        }
    }

    #[test]
    fn the_encoder_keeps_the_snapshot_it_is_given_not_a_copy() {
        let mut enc = Encoder::new();
        let first = Arc::new(snap(1_000, steady(10, 0)));
        enc.encode(Arc::clone(&first), &Evidence::default(), true, 0);
        assert_eq!(Arc::strong_count(&first), 2);
        let second = Arc::new(snap(11_000, steady(10, 1)));
        enc.encode(Arc::clone(&second), &Evidence::default(), false, 0);
        // The first is let go once the second is written; the second kept as it was given, unchanged.
        assert_eq!(Arc::strong_count(&first), 1);
        assert_eq!(Arc::strong_count(&second), 2);
        assert_eq!(*second, snap(11_000, steady(10, 1)));
    }

    #[test]
    fn a_kernel_clock_that_ticks_during_the_dump_keeps_steady_sockets_free() {
        // Sockets with a keepalive timer and sockets with none (told by their last receive) alternate; the clock
        // moves 10 s between dumps and one more 4 ms jiffy partway through each dump, at a different socket.
        let base: Vec<Connection> = (0..1000)
            .map(|k| {
                let mut c = conn(k, 7_000_000 + k as u32);
                if k % 2 == 1 {
                    c.timer = Timer::NONE;
                }
                c
            })
            .collect();
        let mut series = Vec::new();
        for step in 0..5u64 {
            let tick_at = 200 * step as usize + 100;
            let conns = base
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    let moved = step * 10_000 + if i >= tick_at { 4 } else { 0 };
                    if c.timer.kind != TimerKind::None {
                        c.timer.expires_ms -= moved as u32;
                    }
                    let mut info = TcpInfoFields::from(c.tcp_info.take().unwrap());
                    let age = |v: Option<u32>| v.map(|v| v.wrapping_add(moved as u32));
                    info.last_ack_recv_ms = age(info.last_ack_recv_ms);
                    info.last_data_recv_ms = age(info.last_data_recv_ms);
                    c.tcp_info = Some(info.into());
                    c
                })
                .collect();
            series.push((snap(1_000_000 + step * 10_000, conns), false));
        }
        let sizes = round_trip(&series);
        for (i, size) in sizes.iter().enumerate().skip(1) {
            assert!(*size < 300, "frame {i}: {sizes:?}");
        }
    }

    #[test]
    fn sockets_that_see_the_tick_out_of_dump_order_are_not_written_again() {
        // As above, but 20 sockets here and there see the 4 ms tick on their own (before the rest, or not yet):
        // each costs two clocks, not a socket written in full.
        let base: Vec<Connection> = (0..1000).map(|k| conn(k, 7_000_000 + k as u32)).collect();
        let mut series = Vec::new();
        for step in 0..5u64 {
            let conns = base
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    let ticked = (i >= 500) != (i % 50 == 7);
                    c.timer.expires_ms -= step as u32 * 10_000 + if ticked { 4 } else { 0 };
                    let mut info = TcpInfoFields::from(c.tcp_info.take().unwrap());
                    let moved = (step * 10_000) as u32 + if ticked { 4 } else { 0 };
                    info.last_ack_recv_ms = info.last_ack_recv_ms.map(|v| v.wrapping_add(moved));
                    info.last_data_recv_ms = info.last_data_recv_ms.map(|v| v.wrapping_add(moved));
                    c.tcp_info = Some(info.into());
                    c
                })
                .collect();
            series.push((snap(1_000_000 + step * 10_000, conns), false));
        }
        let sizes = round_trip(&series);
        for (i, size) in sizes.iter().enumerate().skip(1) {
            assert!(*size < 400, "frame {i}: {sizes:?}");
        }
    }

    #[test]
    fn duplicates_reorders_and_empty_frames_read_back() {
        let a = conn(1, 100);
        let mut b = conn(2, 100);
        b.netns = None;
        let series = vec![
            (snap(10, vec![a.clone(), b.clone(), a.clone()]), false),
            (
                snap(20, vec![b.clone(), a.clone(), a.clone(), b.clone()]),
                false,
            ),
            (snap(30, vec![]), false),
            (snap(40, vec![a.clone()]), false),
            (snap(5, vec![a, b]), false),
        ];
        round_trip(&series);
    }

    #[test]
    fn sockets_reordered_after_steady_frames_read_back() {
        // The index of the previous frame is built only when a socket is not where it was: after frames in the
        // same order, after a reorder, and again after a key frame.
        let (a, b, c) = (conn(1, 100), conn(2, 200), conn(3, 300));
        let abc = vec![a.clone(), b.clone(), c.clone()];
        let cab = vec![c.clone(), a.clone(), b.clone()];
        let series = vec![
            (snap(10, abc.clone()), true),
            (snap(20, abc.clone()), false),
            (snap(30, cab.clone()), false),
            (snap(40, cab.clone()), false),
            (snap(50, vec![b.clone(), c.clone(), a.clone()]), false),
            (snap(60, abc.clone()), true),
            (snap(70, vec![b, a, c]), false),
        ];
        let sizes = round_trip(&series);
        // The reordered sockets are copied, not written in full.
        for i in [2, 4, 6] {
            assert!(sizes[i] < 100, "frame {i}: {sizes:?}");
        }
    }

    #[test]
    fn the_comparison_tells_which_sockets_are_not_where_and_as_they_were() {
        // What the death feed's tracker is told: only in a delta whose sockets are all where they were, and then
        // every socket that changed or has no owner.
        let mut enc = Encoder::new();
        let (a, b, c) = (conn(1, 100), conn(2, 200), conn(3, 300));
        let first = Arc::new(snap(10, vec![a.clone(), b.clone(), c.clone()]));
        let key = enc.compare(Arc::clone(&first), true);
        assert!(key.unchanged().is_none(), "a key frame compares nothing");
        enc.finish(key, &Evidence::default(), 0);
        let (mut b2, mut c2) = (b.clone(), c.clone());
        b2.recv_q += 1;
        c2.owners.clear();
        let second = Arc::new(snap(1010, vec![a.clone(), b2, c2]));
        let delta = enc.compare(Arc::clone(&second), false);
        let told = delta.unchanged().expect("every socket where it was");
        assert!(Arc::ptr_eq(told.was, &first) && Arc::ptr_eq(told.now, &second));
        assert_eq!(told.stirred, &[1, 2]);
        enc.finish(delta, &Evidence::default(), 0);
        // A socket gone or the order changed: nothing is told.
        for conns in [
            vec![a.clone(), b.clone()],
            vec![b.clone(), a.clone(), c.clone()],
        ] {
            let mut enc = Encoder::new();
            let key = enc.compare(Arc::clone(&first), true);
            enc.finish(key, &Evidence::default(), 0);
            let delta = enc.compare(Arc::new(snap(1010, conns)), false);
            assert!(delta.unchanged().is_none());
        }
    }

    #[test]
    fn what_the_comparison_tells_the_tracker_holds_over_random_series() {
        // The tracker trusts it (events::Unchanged): told only when every socket is where it was, and then of
        // every socket in another state or without an owner.
        let mut dice: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut roll = |sides: u64| {
            dice ^= dice << 13;
            dice ^= dice >> 7;
            dice ^= dice << 17;
            dice % sides
        };
        let mut enc = Encoder::new();
        let mut conns: Vec<Connection> = (1..=20).map(|c| conn(c, 1000 + c as u32)).collect();
        let mut prev: Option<Arc<Snapshot>> = None;
        let mut told = 0;
        for step in 0..400u64 {
            for c in &mut conns {
                match roll(40) {
                    0 => c.state = TcpState::CloseWait,
                    1 => c.owners.clear(),
                    2 => c.recv_q += 1,
                    3 => c.timer.expires_ms += 7,
                    _ => {}
                }
            }
            match roll(10) {
                0 if conns.len() > 1 => {
                    let other = 1 + roll(conns.len() as u64 - 1) as usize;
                    conns.swap(0, other);
                }
                1 => {
                    conns.pop();
                }
                2 => conns.push(conn(100 + step, 5)),
                _ => {}
            }
            let now = Arc::new(snap(10 + step * 1000, conns.clone()));
            let compared = enc.compare(Arc::clone(&now), step % 50 == 0);
            if let Some(u) = compared.unchanged() {
                told += 1;
                let was = prev.as_ref().expect("a frame before");
                assert!(Arc::ptr_eq(u.was, was) && Arc::ptr_eq(u.now, &now));
                assert_eq!(was.connections.len(), now.connections.len());
                assert!(u.stirred.windows(2).all(|w| w[0] < w[1]));
                for (i, (a, b)) in was.connections.iter().zip(&now.connections).enumerate() {
                    assert_eq!(key_of(a), key_of(b), "step {step}");
                    if a.state != b.state || b.owners.is_empty() {
                        assert!(u.stirred.contains(&(i as u32)), "step {step}, socket {i}");
                    }
                }
            }
            enc.finish(compared, &Evidence::default(), 0);
            prev = Some(now);
        }
        assert!((100..400).contains(&told), "{told}");
    }

    #[test]
    fn a_delta_without_its_key_frame_or_damaged_bytes_are_errors() {
        let mut enc = Encoder::new();
        let key = enc.encode(
            Arc::new(snap(1, vec![conn(1, 1)])),
            &Evidence::default(),
            true,
            0,
        );
        let delta = enc.encode(
            Arc::new(snap(2, vec![conn(1, 1)])),
            &Evidence::default(),
            false,
            0,
        );
        assert!(Decoder::new().decode(&delta, false, 2).is_err());
        for cut in 0..key.len() {
            assert!(Decoder::new().decode(&key[..cut], true, 1).is_err());
        }
        for i in 0..key.len() {
            let mut bad = key.clone();
            bad[i] ^= 0x55;
            let _ = Decoder::new().decode(&bad, true, 1);
        }
    }

    /// A clock whose low 32 bits wrap between the first frame and the second (an epoch time in 2027).
    const WRAPPING_CLOCK: u64 = 419 << 32 | 0xffff_ec78;

    /// Three refreshes of six sockets on [`WRAPPING_CLOCK`]: steady timers of each kind (one at the largest expiry
    /// the kernel can report), a retransmitting socket that changes every time, a socket without a timer, and one
    /// that sees the kernel's clock tick on its own.
    fn pinned_series() -> Vec<Snapshot> {
        let mut first = [
            conn(1, 41_000),
            conn(2, 200),
            conn(3, 60_000),
            conn(4, 0),
            conn(5, 4_294_967_295),
            conn(6, 90_000),
        ];
        first[1].timer.kind = TimerKind::Retransmit;
        first[1].timer.count = 3;
        first[2].timer.kind = TimerKind::TimeWait;
        first[2].state = TcpState::TimeWait;
        first[2].tcp_info = None;
        first[3].timer = Timer::NONE;
        (0..3u8)
            .map(|step| {
                let conns = first
                    .iter()
                    .map(|c| {
                        let mut c = c.clone();
                        let moved = u32::from(step) * 10_000 + if c.cookie == 6 { 4 } else { 0 };
                        match c.timer.kind {
                            TimerKind::None => {}
                            TimerKind::Retransmit => {
                                for _ in 0..step {
                                    c.timer.count += 1;
                                    c.timer.expires_ms *= 2;
                                }
                            }
                            _ => c.timer.expires_ms -= moved,
                        }
                        if let Some(info) = c.tcp_info.take() {
                            let mut info = TcpInfoFields::from(info);
                            let age = |v: Option<u32>| v.map(|v| v.wrapping_add(moved));
                            info.last_ack_recv_ms = age(info.last_ack_recv_ms);
                            info.last_data_recv_ms = age(info.last_data_recv_ms);
                            c.tcp_info = Some(info.into());
                        }
                        c
                    })
                    .collect();
                Snapshot {
                    taken_at_unix_ms: WRAPPING_CLOCK + u64::from(step) * 10_000,
                    connections: conns,
                    ..Snapshot::default()
                }
            })
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// What kwatch wrote for [`pinned_series`] when the timer's expiry was a u64 in memory (c8b63b0).
    const PINNED_FRAMES: [&str; 3] = [
        "010100f0b1ffffff680000ff0702222202222283017b227463705f6b656570616c6976655f74696d655f7322\
         3a6e756c6c2c227463705f6b656570616c6976655f696e74766c5f73223a6e756c6c2c227463705f6b656570\
         616c6976655f70726f626573223a6e756c6c2c227463705f7265747269657332223a6e756c6c2c227463705f\
         66696e5f74696d656f75745f73223a6e756c6c7d0566616c7365025b5d027b7d025b5d025b5d025b5d027b7d\
         06010d01430620010db8000000000000000000000001bb030620010db8000000000000000000000002ffff03\
         0386a43cffffffff0f07ffffffff0fa0998280c034000406637562696399808782090400ff0100f9d8ffff0f\
         f8d8ffff0fffffffffffffffffff010002010363040224060101a138000a0101808080800f04776562022306\
         20010db8000000000000000000000001bb030620010db8000000000000000000000002ffff030386a43cffff\
         ffff0f07ffffffff0fc0daffffbf34030406637562696399808782090400ff0100f9d8ffff0ff8d8ffff0fff\
         ffffffffffffffff010002010363040224060101a138000a0101808080800f04776562036d0620010db80000\
         00000000000000000001bb030620010db8000000000000000000000002ffff030386a43cffffffff0f07ffff\
         ffff0fd8ad8380c03400040663756269630002010363040224060101a138000a0101808080800f0477656204\
         030620010db8000000000000000000000001bb030620010db8000000000000000000000002ffff030386a43c\
         ffffffff0f07ffffffff0f00000406637562696399808782090400ff0100f9d8ffff0ff8d8ffff0fffffffff\
         ffffffffff010002010363040224060101a138000a0101808080800f0477656205430620010db80000000000\
         00000000000001bb030620010db8000000000000000000000002ffff030386a43cffffffff0f07ffffffff0f\
         f7d8ffffcf34000406637562696399808782090400ff0100f9d8ffff0ff8d8ffff0fffffffffffffffffff01\
         0002010363040224060101a138000a0101808080800f0477656206430620010db80000000000000000000000\
         01bb030620010db8000000000000000000000002ffff030386a43cffffffff0f07ffffffff0f84988580c034\
         000406637562696399808782090400ff0100f5d8ffff0ff4d8ffff0fffffffffffffffffff01000201036304\
         0224060101a138000a0101808080800f04776562000000",
        "01010090ce80808069000000060302000302230620010db8000000000000000000000001bb030620010db800\
         0000000000000000000002ffff030386a43cffffffff0f07ffffffff0f98aa8080c034040406637562696399\
         808782090400ff0100f9d8ffff0ff8d8ffff0fffffffffffffffffff010002010363040224060101a138000a\
         0101808080800f047765620802000000",
        "010100b0ea81808069000000060302000302230620010db8000000000000000000000001bb030620010db800\
         0000000000000000000002ffff030386a43cffffffff0f07ffffffff0fb8fb8080c034050406637562696399\
         808782090400ff0100f9d8ffff0ff8d8ffff0fffffffffffffffffff010002010363040224060101a138000a\
         0101808080800f047765620802000000",
    ];

    #[test]
    fn frames_are_written_and_read_as_before() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        for (i, (s, pinned)) in pinned_series().iter().zip(PINNED_FRAMES).enumerate() {
            let key = i == 0;
            let bytes = enc.encode(
                Arc::new(s.clone()),
                &Evidence::default(),
                key,
                FLAG_SESSION_START,
            );
            assert_eq!(hex(&bytes), pinned, "frame {i} is written as before");
            let old: Vec<u8> = (0..pinned.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&pinned[at..at + 2], 16).unwrap())
                .collect();
            let decoded = dec.decode(&old, key, s.taken_at_unix_ms).unwrap();
            assert_eq!(
                dec.frame(decoded).unwrap().snapshot,
                *s,
                "frame {i} reads as before"
            );
        }
    }
}
