//! What the session has seen of each socket (by cookie): first sight, time in the current state, recent samples.
//!
//! The live view keeps it on the collector thread's side ([`Shared`]): observed there after each snapshot is sent,
//! a slice at a time, so that the UI thread does no per-socket work when a snapshot arrives and waits at most one
//! slice when the detail pane reads it.
//!
//! Memory is what a million sockets ask of it: one 24-byte entry per socket in a vector sorted by cookie (found by
//! binary search, updated by walking it beside the snapshot's cookies in order), times kept as 40-bit offsets in
//! milliseconds, and samples apart, for the few sockets that keep them (8 bytes a sample, at most 60 each and
//! 10,000 sockets sampled on a big host: 4.6 MiB). A hash map of 40-byte entries took 112 MiB at a million sockets
//! (2^21 slots); the entries take 23 MiB.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;

use crate::model::{Connection, Severity, Snapshot, TcpState};

/// Samples kept per socket for the detail pane's sparklines.
pub const SAMPLES: usize = 60;
/// Up to this many sockets in one snapshot, every socket keeps samples. Above it, the selected socket does, and
/// sockets with a warning or critical finding while fewer than this many keep samples (those already sampled
/// keep their place; new ones in the order of their cookies): a host with 200,000 idle sockets would otherwise
/// hold 60 samples of each.
pub const SAMPLE_ALL_LIMIT: usize = 10_000;
/// A socket not seen for this long is forgotten.
pub const FORGET_AFTER_MS: u64 = 60_000;

/// One observation of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unanswered probes or retransmits (the timer's count).
    pub probes: u32,
    /// Milliseconds since the last data or ack was received, when the kernel said.
    pub idle_ms: Option<u64>,
}

/// One sample as kept: 8 bytes instead of 16. The kernel counts idle time in 32 bits of milliseconds; 0 here
/// means unknown, so the largest value, 2^32 - 1 ms (49.7 days), reads one millisecond less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    probes: u32,
    idle: u32,
}

impl Kept {
    fn new(s: Sample) -> Kept {
        Kept {
            probes: s.probes,
            // At most u32::MAX - 1, so the `+ 1` fits.
            idle: s
                .idle_ms
                .map_or(0, |ms| ms.min(u64::from(u32::MAX) - 1) as u32 + 1),
        }
    }

    fn sample(self) -> Sample {
        Sample {
            probes: self.probes,
            idle_ms: self.idle.checked_sub(1).map(u64::from),
        }
    }
}

/// Recent samples of one socket, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples(VecDeque<Kept>);

/// What [`History::get`] shows of a socket that keeps no samples.
static NO_SAMPLES: Samples = Samples(VecDeque::new());

impl Samples {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        self.0.iter().map(|k| k.sample())
    }

    pub fn back(&self) -> Option<Sample> {
        self.0.back().map(|k| k.sample())
    }

    /// Adds one, dropping the oldest past [`SAMPLES`].
    fn push(&mut self, sample: Sample) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(SAMPLES);
        }
        if self.0.len() == SAMPLES {
            self.0.pop_front();
        }
        self.0.push_back(Kept::new(sample));
    }
}

/// The session's memory of one socket, as [`History::get`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    /// Wall clock (Unix ms) of the first snapshot that contained this socket.
    pub first_seen_ms: u64,
    pub state: TcpState,
    /// Wall clock (Unix ms) of the first snapshot that showed the socket in `state`.
    pub state_since_ms: u64,
    /// True when the socket was already in `state` the first time kwatch saw it (so the time is a lower bound).
    pub state_since_start: bool,
    /// Wall clock (Unix ms) of the last snapshot that contained this socket.
    pub last_seen_ms: u64,
    pub samples: &'a Samples,
}

/// Bytes the history keeps per socket, samples apart (for the benchmark's profile).
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// Times are kept as offsets from the history's epoch in this many bits: 2^40 ms is 34.8 years.
const TIME_BITS: u32 = 40;
/// The epoch lies this far before the first snapshot observed, so that a clock set back (or a replay's older
/// frames) still fits: 17.4 years either way.
const EPOCH_BEFORE_MS: u64 = 1 << (TIME_BITS - 1);
const TIME_MAX: u64 = (1 << TIME_BITS) - 1;

/// One socket's memory in 24 bytes: the cookie, then three 40-bit times split into their low 32 bits and a byte
/// each of `high` (bits 0-7 first seen, 8-15 in state since, 16-23 last seen), the state (bits 24-27) and whether
/// the socket was in that state at first sight (bit 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    cookie: u64,
    first_seen: u32,
    state_since: u32,
    last_seen: u32,
    high: u32,
}

/// Which of an entry's times.
#[derive(Clone, Copy)]
enum Time {
    FirstSeen = 0,
    StateSince = 1,
    LastSeen = 2,
}

const STATE_SHIFT: u32 = 24;
const SINCE_START_BIT: u32 = 1 << 28;

impl Entry {
    /// A socket first seen at `at` (an offset from the epoch), in `state`.
    fn new(cookie: u64, state: TcpState, at: u64) -> Entry {
        let mut e = Entry {
            cookie,
            first_seen: 0,
            state_since: 0,
            last_seen: 0,
            high: SINCE_START_BIT,
        };
        e.set_state(state);
        for which in [Time::FirstSeen, Time::StateSince, Time::LastSeen] {
            e.set(which, at);
        }
        e
    }

    fn get(&self, which: Time) -> u64 {
        let low = match which {
            Time::FirstSeen => self.first_seen,
            Time::StateSince => self.state_since,
            Time::LastSeen => self.last_seen,
        };
        let high = (self.high >> (8 * which as u32)) & 0xff;
        (u64::from(high) << 32) | u64::from(low)
    }

    fn set(&mut self, which: Time, at: u64) {
        let at = at.min(TIME_MAX);
        // Truncation intended: the low 32 bits here, the next 8 in `high`.
        let low = at as u32;
        match which {
            Time::FirstSeen => self.first_seen = low,
            Time::StateSince => self.state_since = low,
            Time::LastSeen => self.last_seen = low,
        }
        let shift = 8 * which as u32;
        self.high = (self.high & !(0xff << shift)) | (((at >> 32) as u32 & 0xff) << shift);
    }

    fn state(&self) -> TcpState {
        // Only states from `set_state` are stored; the fallback is never taken.
        TcpState::from_kernel(((self.high >> STATE_SHIFT) & 0xf) as u8).unwrap_or(TcpState::Close)
    }

    fn set_state(&mut self, state: TcpState) {
        // The kernel's states are 1 to 12: four bits.
        self.high =
            (self.high & !(0xf << STATE_SHIFT)) | ((u32::from(state as u8) & 0xf) << STATE_SHIFT);
    }

    fn since_start(&self) -> bool {
        self.high & SINCE_START_BIT != 0
    }
}

/// Session history for every socket seen recently. Memory is bounded: entries of sockets gone for
/// [`FORGET_AFTER_MS`] are dropped and each keeps at most [`SAMPLES`] samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Sorted by cookie, each once.
    entries: Vec<Entry>,
    /// The samples of the sockets that keep them (every socket on a small host, at most [`SAMPLE_ALL_LIMIT`] on a
    /// big one), by cookie: kernel-assigned, so a fast hash without flooding protection is safe.
    samples: FxHashMap<u64, Samples>,
    /// Unix ms that the entries' times count from; set by the first snapshot observed.
    epoch_ms: Option<u64>,
}

/// One snapshot being recorded: its sockets in the order of their cookies, and how far the walk beside the
/// entries has come.
struct Pass {
    /// (cookie, index in the snapshot), sorted by cookie.
    order: Vec<(u64, u32)>,
    /// The first entry not yet walked past.
    next: usize,
    /// Sockets seen for the first time, sorted by cookie: merged into the entries when the pass ends.
    fresh: Vec<Entry>,
    /// Entries walked past (not in the snapshot) that are old enough to forget.
    stale: usize,
    /// The last cookie recorded: a cookie twice in one snapshot is recorded once.
    last_cookie: Option<u64>,
    /// `now` as an offset from the epoch.
    now: u64,
}

impl History {
    pub fn get(&self, cookie: u64) -> Option<Seen<'_>> {
        let i = self
            .entries
            .binary_search_by_key(&cookie, |e| e.cookie)
            .ok()?;
        let e = &self.entries[i];
        let epoch = self.epoch_ms.unwrap_or(0);
        Some(Seen {
            first_seen_ms: epoch + e.get(Time::FirstSeen),
            state: e.state(),
            state_since_ms: epoch + e.get(Time::StateSince),
            state_since_start: e.since_start(),
            last_seen_ms: epoch + e.get(Time::LastSeen),
            samples: self.samples.get(&cookie).unwrap_or(&NO_SAMPLES),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many sockets keep samples.
    pub fn sampled(&self) -> usize {
        self.samples.len()
    }

    /// Records one snapshot taken at `now_ms`. `selected` always keeps samples, even on very large hosts.
    pub fn observe(&mut self, snapshot: &Snapshot, now_ms: u64, selected: Option<u64>) {
        let mut pass = self.begin(order(snapshot), now_ms);
        let all = pass.order.len();
        self.observe_part(&mut pass, snapshot, 0..all, selected);
        self.finish(pass);
    }

    /// Starts recording a snapshot whose sockets are `order` (see [`order`]), taken at `now_ms`.
    fn begin(&mut self, order: Vec<(u64, u32)>, now_ms: u64) -> Pass {
        let epoch = *self
            .epoch_ms
            .get_or_insert(now_ms.saturating_sub(EPOCH_BEFORE_MS));
        // The first snapshot: every socket is new, and the fresh entries become the entries as they are.
        let fresh = Vec::with_capacity(order.len().saturating_sub(self.entries.len()));
        Pass {
            order,
            next: 0,
            fresh,
            stale: 0,
            last_cookie: None,
            now: now_ms.saturating_sub(epoch).min(TIME_MAX),
        }
    }

    /// Walks the entries past those below `cookie`, counting the ones old enough to forget.
    fn walk_to(&self, pass: &mut Pass, cookie: u64) {
        while let Some(e) = self.entries.get(pass.next).filter(|e| e.cookie < cookie) {
            if pass.now.saturating_sub(e.get(Time::LastSeen)) >= FORGET_AFTER_MS {
                pass.stale += 1;
            }
            pass.next += 1;
        }
    }

    /// Records the sockets `range` of `pass.order` (see [`History::observe`]); [`History::finish`] ends the pass.
    fn observe_part(
        &mut self,
        pass: &mut Pass,
        snapshot: &Snapshot,
        range: std::ops::Range<usize>,
        selected: Option<u64>,
    ) {
        let sample_all = snapshot.connections.len() <= SAMPLE_ALL_LIMIT;
        let now = pass.now;
        for k in range {
            let Some(&(cookie, index)) = pass.order.get(k) else {
                break;
            };
            let Some(conn) = snapshot.connections.get(index as usize) else {
                continue;
            };
            if pass.last_cookie.replace(cookie) == Some(cookie) {
                continue;
            }
            self.walk_to(pass, cookie);
            match self
                .entries
                .get_mut(pass.next)
                .filter(|e| e.cookie == cookie)
            {
                Some(e) => {
                    if e.state() != conn.state {
                        e.set_state(conn.state);
                        e.set(Time::StateSince, now);
                        e.high &= !SINCE_START_BIT;
                    }
                    e.set(Time::LastSeen, now);
                    pass.next += 1;
                }
                None => pass.fresh.push(Entry::new(cookie, conn.state, now)),
            }
            let wanted = sample_all
                || selected == Some(cookie)
                || conn.worst().is_some_and(|s| s >= Severity::Warning);
            self.sample(conn, wanted, sample_all || selected == Some(cookie));
        }
    }

    /// Gives `conn` a sample when `wanted` and, unless `unbounded` (every socket is sampled, or this one is
    /// selected: it may pass the limit by one), there is room for it; takes its samples away when not wanted.
    fn sample(&mut self, conn: &Connection, wanted: bool, unbounded: bool) {
        if !wanted {
            self.samples.remove(&conn.cookie);
            return;
        }
        let room = unbounded || self.samples.len() < SAMPLE_ALL_LIMIT;
        let sample = Sample {
            probes: u32::from(conn.timer.count),
            idle_ms: heard_ms(conn),
        };
        match self.samples.get_mut(&conn.cookie) {
            Some(samples) => samples.push(sample),
            None if room => self.samples.entry(conn.cookie).or_default().push(sample),
            None => {}
        }
    }

    /// Ends a pass: forgets the sockets not seen for [`FORGET_AFTER_MS`] and adds those seen for the first time.
    fn finish(&mut self, mut pass: Pass) {
        self.walk_to(&mut pass, u64::MAX);
        // An entry left is that of cookie u64::MAX, which `walk_to` cannot pass, not in this snapshot.
        if let Some(e) = self.entries.get(pass.next)
            && pass.now.saturating_sub(e.get(Time::LastSeen)) >= FORGET_AFTER_MS
        {
            pass.stale += 1;
        }
        if pass.stale > 0 {
            let now = pass.now;
            let samples = &mut self.samples;
            self.entries.retain(|e| {
                let keep = now.saturating_sub(e.get(Time::LastSeen)) < FORGET_AFTER_MS;
                if !keep {
                    samples.remove(&e.cookie);
                }
                keep
            });
            // To what the fresh ones will need, not below: `merge` would grow it again at once.
            if self.entries.capacity() > 2 * self.entries.len() + 1024 {
                self.entries
                    .shrink_to(self.entries.len() + pass.fresh.len());
            }
        }
        self.merge(pass.fresh);
    }

    /// Adds `fresh` (sorted by cookie, none already here) to the entries, keeping them sorted: from the back, so
    /// that only the entries above the smallest fresh cookie move (cookies grow, so usually none do).
    fn merge(&mut self, fresh: Vec<Entry>) {
        if fresh.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries = fresh;
            return;
        }
        let old = self.entries.len();
        if self.entries.capacity() < old + fresh.len() {
            // Exact, with a little room: doubling a million entries for a hundred new ones would keep 23 MiB more.
            self.entries.reserve_exact(fresh.len() + old / 64);
        }
        self.entries.resize(old + fresh.len(), fresh[0]);
        let (mut i, mut j, mut k) = (old, fresh.len(), old + fresh.len());
        while j > 0 {
            k -= 1;
            if i > 0 && self.entries[i - 1].cookie > fresh[j - 1].cookie {
                self.entries[k] = self.entries[i - 1];
                i -= 1;
            } else {
                self.entries[k] = fresh[j - 1];
                j -= 1;
            }
        }
    }
}

/// A snapshot's sockets in the order of their cookies: (cookie, index in the snapshot). Taken before the history
/// is locked (sorting a million takes tens of milliseconds).
fn order(snapshot: &Snapshot) -> Vec<(u64, u32)> {
    let mut order: Vec<(u64, u32)> = snapshot
        .connections
        .iter()
        .enumerate()
        // A snapshot holds far fewer than 2^32 sockets (each is a file descriptor somewhere).
        .map(|(i, c)| (c.cookie, i as u32))
        .collect();
    order.sort_unstable();
    order
}

/// Sockets recorded per hold of the lock of a [`Shared`] history: a few milliseconds, the longest the detail pane
/// waits for it.
const PART: usize = 8_192;

/// The live view's history: observed on the collector thread, read by the detail pane on the UI thread.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Session>>);

/// The history and the socket the view has selected (which keeps samples on any host).
#[derive(Debug, Default)]
pub struct Session {
    pub history: History,
    pub selected: Option<u64>,
}

impl Shared {
    /// The history, for reading or replacing; the collector thread holds it at most one part at a time.
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one snapshot taken at `now_ms`, [`PART`] sockets per hold of the lock. Only this thread changes
    /// the history meanwhile (a replay, which replaces it, records none here).
    pub fn observe(&self, snapshot: &Snapshot, now_ms: u64) {
        let order = order(snapshot);
        let all = order.len();
        let mut pass = self.lock().history.begin(order, now_ms);
        let mut from = 0;
        while from < all {
            let to = (from + PART).min(all);
            let mut session = self.lock();
            let selected = session.selected;
            session
                .history
                .observe_part(&mut pass, snapshot, from..to, selected);
            from = to;
        }
        self.lock().history.finish(pass);
    }
}

/// The idle column: [`Connection::heard_ms`], except for listeners, where it means nothing.
pub fn heard_ms(conn: &Connection) -> Option<u64> {
    if conn.state == TcpState::Listen {
        return None;
    }
    conn.heard_ms()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{Timer, TimerKind};

    fn conn(cookie: u64, state: TcpState, count: u8) -> Connection {
        Connection {
            cookie,
            state,
            local_port: 1,
            peer_port: 2,
            inode: 0,
            timer: Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 0,
                count,
            },
            ..crate::testing::conn()
        }
    }

    fn snap(conns: Vec<Connection>) -> Snapshot {
        Snapshot {
            connections: conns,
            ..Snapshot::default()
        }
    }

    #[test]
    fn tracks_first_seen_state_changes_and_samples() {
        let mut h = History::default();
        h.observe(&snap(vec![conn(1, TcpState::Established, 0)]), 1_000, None);
        h.observe(&snap(vec![conn(1, TcpState::Established, 2)]), 2_000, None);
        h.observe(&snap(vec![conn(1, TcpState::CloseWait, 3)]), 3_000, None);
        let seen = h.get(1).unwrap();
        assert_eq!(seen.first_seen_ms, 1_000);
        assert_eq!(seen.state, TcpState::CloseWait);
        assert_eq!(seen.state_since_ms, 3_000);
        assert!(!seen.state_since_start);
        let probes: Vec<u32> = seen.samples.iter().map(|s| s.probes).collect();
        assert_eq!(probes, [0, 2, 3]);
    }

    #[test]
    fn samples_are_bounded_and_gone_sockets_are_forgotten() {
        let mut h = History::default();
        for i in 0..(SAMPLES as u64 + 10) {
            h.observe(
                &snap(vec![conn(1, TcpState::Established, i as u8)]),
                i * 1_000,
                None,
            );
        }
        assert_eq!(h.get(1).unwrap().samples.len(), SAMPLES);
        assert_eq!(
            h.get(1).unwrap().samples.back().unwrap().probes,
            SAMPLES as u32 + 9
        );
        let later = (SAMPLES as u64 + 10) * 1_000;
        h.observe(&snap(vec![conn(2, TcpState::Established, 0)]), later, None);
        assert!(h.get(1).is_some(), "gone briefly: still remembered");
        h.observe(
            &snap(vec![conn(2, TcpState::Established, 0)]),
            later + FORGET_AFTER_MS,
            None,
        );
        assert!(h.get(1).is_none(), "gone for a while: forgotten");
        assert_eq!(h.len(), 1);
    }

    fn stuck(mut c: Connection, severity: Severity) -> Connection {
        c.findings.insert(crate::model::Finding {
            code: crate::model::FindingCode::DeadPeerSuspect,
            severity,
        });
        c
    }

    #[test]
    fn large_snapshots_sample_only_the_selected_and_warnings_within_the_limit() {
        let mut h = History::default();
        let n = 3 * SAMPLE_ALL_LIMIT as u64 + 30;
        // Cookies 0..n: every third critical, every third info-only, the rest healthy.
        let conns = |n: u64| -> Vec<Connection> {
            (0..n)
                .map(|c| {
                    let plain = conn(c, TcpState::Established, 0);
                    match c % 3 {
                        0 => stuck(plain, Severity::Critical),
                        1 => stuck(plain, Severity::Info),
                        _ => plain,
                    }
                })
                .collect()
        };
        h.observe(&snap(conns(n)), 1_000, Some(7));
        assert_eq!(h.get(7).unwrap().samples.len(), 1, "selected, healthy");
        assert!(h.get(4).unwrap().samples.is_empty(), "info only");
        assert!(h.get(5).unwrap().samples.is_empty(), "healthy");
        assert_eq!(h.get(3).unwrap().samples.len(), 1, "critical");
        // n / 3 critical sockets are more than the limit: the limit holds, counting the selected one.
        let with_samples = (0..n)
            .filter(|c| !h.get(*c).unwrap().samples.is_empty())
            .count();
        assert_eq!(with_samples, SAMPLE_ALL_LIMIT);
        assert_eq!(h.sampled(), SAMPLE_ALL_LIMIT);
        // Next snapshot: those sampled keep their place; the deselected one gives its up.
        h.observe(&snap(conns(n)), 2_000, None);
        assert!(h.get(7).unwrap().samples.is_empty());
        assert_eq!(h.get(3).unwrap().samples.len(), 2);
        assert_eq!(h.sampled(), SAMPLE_ALL_LIMIT);
        // The newest (highest) cookie selected while the limit is full: it gets its sample all the same.
        h.observe(&snap(conns(n)), 3_000, Some(n - 1));
        assert_eq!(
            h.get(n - 1).unwrap().samples.len(),
            1,
            "selected past the limit"
        );
        assert_eq!(h.sampled(), SAMPLE_ALL_LIMIT + 1);
        // Everything gone for long enough: forgotten, and the count with it.
        h.observe(&snap(vec![]), 3_000 + FORGET_AFTER_MS, None);
        assert_eq!((h.len(), h.sampled()), (0, 0));
    }

    #[test]
    fn the_shared_history_recorded_in_parts_equals_one_recorded_whole() {
        // More sockets than a part and than the sampling limit, one of them selected; then some leave for good.
        // Listed from the highest cookie down, so that each part's sockets are reordered by cookie.
        let n = 2 * PART as u64 + 17;
        let conns = |n: u64, state: TcpState| -> Vec<Connection> {
            (0..n)
                .rev()
                .map(|c| {
                    let plain = conn(c, state, 0);
                    if c % 5 == 0 {
                        stuck(plain, Severity::Warning)
                    } else {
                        plain
                    }
                })
                .collect()
        };
        let steps = [
            (snap(conns(n, TcpState::Established)), 1_000),
            (snap(conns(n, TcpState::CloseWait)), 2_000),
            (
                snap(conns(n / 2, TcpState::CloseWait)),
                2_000 + FORGET_AFTER_MS,
            ),
        ];
        let mut whole = History::default();
        let shared = Shared::default();
        shared.lock().selected = Some(PART as u64 + 3);
        for (snapshot, now) in &steps {
            whole.observe(snapshot, *now, Some(PART as u64 + 3));
            shared.observe(snapshot, *now);
        }
        let session = shared.lock();
        assert_eq!(session.history, whole);
        assert_eq!(session.history.len(), n as usize / 2);
        assert_eq!(
            session.history.get(PART as u64 + 3).unwrap().samples.len(),
            3,
            "the selected socket keeps samples on a big host"
        );
        assert_eq!(
            session.history.get(1).unwrap().samples.len(),
            1,
            "a healthy socket is sampled only once the host has few enough sockets"
        );
        assert_eq!(
            session.history.get(1).unwrap().state_since_ms,
            2_000,
            "in CLOSE-WAIT since the second snapshot"
        );
    }

    #[test]
    fn an_entry_is_24_bytes() {
        // The point of the layout: a million sockets in 23 MiB.
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn forgets_a_socket_gone_for_exactly_forget_after_ms_and_its_samples() {
        let mut h = History::default();
        h.observe(
            &snap(vec![
                conn(1, TcpState::Established, 0),
                conn(2, TcpState::Established, 0),
            ]),
            1_000,
            None,
        );
        assert_eq!(h.sampled(), 2, "a small host samples every socket");
        let only_2 = snap(vec![conn(2, TcpState::Established, 0)]);
        h.observe(&only_2, 1_000 + FORGET_AFTER_MS - 1, None);
        assert_eq!(h.get(1).unwrap().last_seen_ms, 1_000, "gone one ms short");
        assert_eq!(h.sampled(), 2);
        h.observe(&only_2, 1_000 + FORGET_AFTER_MS, None);
        assert!(h.get(1).is_none(), "gone for FORGET_AFTER_MS");
        assert_eq!((h.len(), h.sampled()), (1, 1));
        assert_eq!(h.get(2).unwrap().last_seen_ms, 1_000 + FORGET_AFTER_MS);
    }

    #[test]
    fn a_socket_back_before_it_is_forgotten_keeps_its_first_sight_and_after_starts_anew() {
        let mut h = History::default();
        let with = snap(vec![conn(7, TcpState::Established, 1)]);
        let without = snap(vec![conn(8, TcpState::Established, 0)]);
        h.observe(&with, 1_000, None);
        h.observe(&without, 2_000, None);
        h.observe(&with, 3_000, None);
        let seen = h.get(7).unwrap();
        assert_eq!((seen.first_seen_ms, seen.last_seen_ms), (1_000, 3_000));
        assert!(seen.state_since_start);
        assert_eq!(seen.samples.len(), 2, "one sample per snapshot it was in");
        h.observe(&without, 3_000 + FORGET_AFTER_MS, None);
        assert!(h.get(7).is_none());
        h.observe(&with, 4_000 + FORGET_AFTER_MS, None);
        let seen = h.get(7).unwrap();
        assert_eq!(
            seen.first_seen_ms,
            4_000 + FORGET_AFTER_MS,
            "a new first sight"
        );
        assert_eq!(seen.samples.len(), 1, "the old samples went with it");
    }

    #[test]
    fn sockets_new_below_known_cookies_are_found_whatever_the_snapshot_order() {
        let mut h = History::default();
        let first: Vec<u64> = vec![30, 10, 20, u64::MAX];
        h.observe(
            &snap(
                first
                    .iter()
                    .map(|&c| conn(c, TcpState::Established, 0))
                    .collect(),
            ),
            1_000,
            None,
        );
        // New cookies below, between and above the known ones (0 and u64::MAX are cookies too), another order.
        let second: Vec<u64> = vec![u64::MAX, 35, 0, 20, 15, 5, 10, 30, 25];
        h.observe(
            &snap(
                second
                    .iter()
                    .map(|&c| conn(c, TcpState::CloseWait, 0))
                    .collect(),
            ),
            2_000,
            None,
        );
        assert_eq!(h.len(), second.len());
        for c in second {
            let seen = h.get(c).unwrap();
            let known = first.contains(&c);
            assert_eq!(
                seen.first_seen_ms,
                if known { 1_000 } else { 2_000 },
                "cookie {c}"
            );
            assert_eq!(seen.state, TcpState::CloseWait);
            assert_eq!(seen.state_since_start, !known, "cookie {c}");
        }
        assert!(h.get(1).is_none() && h.get(u64::MAX - 1).is_none());
    }

    #[test]
    fn times_far_from_the_first_snapshot_and_before_it_are_exact() {
        let mut h = History::default();
        let t0 = 1_800_000_000_000;
        let decade = 10 * 365 * 24 * 3_600_000;
        h.observe(&snap(vec![conn(1, TcpState::Established, 0)]), t0, None);
        // A clock set back: a socket first seen before the first snapshot.
        h.observe(
            &snap(vec![conn(2, TcpState::Established, 0)]),
            t0 - 5_000,
            None,
        );
        h.observe(
            &snap(vec![conn(2, TcpState::CloseWait, 0)]),
            t0 + decade,
            None,
        );
        assert_eq!(h.get(2).unwrap().first_seen_ms, t0 - 5_000);
        assert_eq!(h.get(2).unwrap().state_since_ms, t0 + decade);
        assert_eq!(h.get(2).unwrap().last_seen_ms, t0 + decade);
        assert!(h.get(1).is_none(), "gone for ten years");
    }

    #[test]
    fn a_cookie_twice_in_one_snapshot_is_recorded_once() {
        let mut h = History::default();
        let twice = snap(vec![
            conn(3, TcpState::Established, 1),
            conn(3, TcpState::Established, 1),
        ]);
        h.observe(&twice, 1_000, None);
        h.observe(&twice, 2_000, None);
        assert_eq!(h.len(), 1);
        assert_eq!(h.get(3).unwrap().samples.len(), 2);
    }

    /// What a socket's history should be, kept the plain way.
    #[derive(Debug, Clone, PartialEq)]
    struct Plain {
        first: u64,
        state: TcpState,
        since: u64,
        since_start: bool,
        last: u64,
        probes: Vec<u32>,
    }

    #[test]
    fn matches_a_plain_map_through_random_snapshots_in_random_orders() {
        // A fixed pseudo-random walk: sockets come, change state, leave, come back, in a new order each time.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let states = [
            TcpState::Established,
            TcpState::CloseWait,
            TcpState::FinWait2,
        ];
        let mut h = History::default();
        let shared = Shared::default();
        let mut plain = std::collections::HashMap::<u64, Plain>::new();
        let mut now = 1_700_000_000_000;
        for step in 0..200 {
            now += next(25_000);
            let mut conns: Vec<Connection> = Vec::new();
            for c in 0..400u64 {
                if next(3) == 0 {
                    continue;
                }
                // Cookies spread over the whole range, u64::MAX among them.
                let cookie = c.wrapping_mul(0x0040_0000_0000_0001).wrapping_sub(1);
                conns.push(conn(cookie, states[next(3) as usize], next(5) as u8));
            }
            for i in (1..conns.len()).rev() {
                conns.swap(i, next(i as u64 + 1) as usize);
            }
            for c in &conns {
                let p = plain.entry(c.cookie).or_insert(Plain {
                    first: now,
                    state: c.state,
                    since: now,
                    since_start: true,
                    last: now,
                    probes: Vec::new(),
                });
                if p.state != c.state {
                    (p.state, p.since, p.since_start) = (c.state, now, false);
                }
                p.last = now;
                p.probes.push(u32::from(c.timer.count));
                if p.probes.len() > SAMPLES {
                    p.probes.remove(0);
                }
            }
            plain.retain(|_, p| now - p.last < FORGET_AFTER_MS);
            let snapshot = snap(conns);
            h.observe(&snapshot, now, None);
            shared.observe(&snapshot, now);
            assert_eq!(h.len(), plain.len(), "step {step}");
            assert_eq!(h.sampled(), plain.len(), "step {step}");
            for (cookie, p) in &plain {
                let seen = h.get(*cookie).unwrap();
                let got = Plain {
                    first: seen.first_seen_ms,
                    state: seen.state,
                    since: seen.state_since_ms,
                    since_start: seen.state_since_start,
                    last: seen.last_seen_ms,
                    probes: seen.samples.iter().map(|s| s.probes).collect(),
                };
                assert_eq!(&got, p, "step {step}, cookie {cookie}");
            }
        }
        assert_eq!(
            shared.lock().history,
            h,
            "recorded through Shared (one part: fewer sockets than PART)"
        );
    }

    #[test]
    fn samples_keep_idle_times_exactly_up_to_the_kernels_width() {
        let mut samples = Samples::default();
        let idle = [
            None,
            Some(0),
            Some(1),
            Some(u64::from(u32::MAX) - 1),
            Some(u64::from(u32::MAX)),
        ];
        for (probes, idle_ms) in idle.into_iter().enumerate() {
            samples.push(Sample {
                probes: probes as u32,
                idle_ms,
            });
        }
        let back: Vec<Option<u64>> = samples.iter().map(|s| s.idle_ms).collect();
        let widest = u64::from(u32::MAX) - 1;
        assert_eq!(back, [None, Some(0), Some(1), Some(widest), Some(widest)]);
        assert_eq!(samples.back().unwrap().probes, 4);
        assert_eq!(std::mem::size_of::<Kept>(), 8);
    }
}
