//! What the session has seen of each socket (by cookie): first sight, time in the current state, recent samples.
//!
//! The live view keeps it on the collector thread's side ([`Shared`]): observed there after each snapshot is sent,
//! a slice at a time, so that the UI thread does no per-socket work when a snapshot arrives and waits at most one
//! slice when the detail pane reads it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;

use crate::model::{Connection, Severity, Snapshot, TcpState};

/// Samples kept per socket for the detail pane's sparklines.
pub const SAMPLES: usize = 60;
/// Up to this many sockets in one snapshot, every socket keeps samples. Above it, the selected socket does, and
/// sockets with a warning or critical finding while fewer than this many keep samples (those already sampled
/// keep their place): a host with 200,000 idle sockets would otherwise hold 60 samples of each.
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

/// Recent samples of one socket, oldest first: no allocation (one word) for the sockets that keep none, which on
/// a big host is nearly all.
/// Boxed on purpose: an empty `VecDeque` is four words in every socket's entry, a box one.
#[allow(clippy::box_collection)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples(Option<Box<VecDeque<Sample>>>);

impl Samples {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.0.iter().flat_map(|s| s.iter())
    }

    pub fn back(&self) -> Option<&Sample> {
        self.0.as_ref().and_then(|s| s.back())
    }

    /// Adds one, dropping the oldest past [`SAMPLES`].
    fn push(&mut self, sample: Sample) {
        let s = self
            .0
            .get_or_insert_with(|| Box::new(VecDeque::with_capacity(SAMPLES)));
        if s.len() == SAMPLES {
            s.pop_front();
        }
        s.push_back(sample);
    }
}

/// The session's memory of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Wall clock (Unix ms) of the first snapshot that contained this socket.
    pub first_seen_ms: u64,
    pub state: TcpState,
    /// Wall clock (Unix ms) of the first snapshot that showed the socket in `state`.
    pub state_since_ms: u64,
    /// True when the socket was already in `state` the first time kwatch saw it (so the time is a lower bound).
    pub state_since_start: bool,
    /// Wall clock (Unix ms) of the last snapshot that contained this socket.
    pub last_seen_ms: u64,
    pub samples: Samples,
}

/// Session history for every socket seen recently, keyed by cookie. Memory is bounded: entries of sockets gone
/// for [`FORGET_AFTER_MS`] are dropped and each keeps at most [`SAMPLES`] samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Keyed by cookie: kernel-assigned, so a fast hash without flooding protection is safe.
    seen: FxHashMap<u64, Seen>,
    /// How many entries of `seen` hold samples.
    sampled: usize,
}

impl History {
    pub fn get(&self, cookie: u64) -> Option<&Seen> {
        self.seen.get(&cookie)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records one snapshot taken at `now_ms`. `selected` always keeps samples, even on very large hosts.
    pub fn observe(&mut self, snapshot: &Snapshot, now_ms: u64, selected: Option<u64>) {
        self.observe_part(snapshot, &snapshot.connections, now_ms, selected);
        self.forget(snapshot, now_ms);
    }

    /// Records `part` of the connections of `snapshot` (see [`History::observe`]); [`History::forget`] ends the
    /// snapshot.
    fn observe_part(
        &mut self,
        snapshot: &Snapshot,
        part: &[Connection],
        now_ms: u64,
        selected: Option<u64>,
    ) {
        let sample_all = snapshot.connections.len() <= SAMPLE_ALL_LIMIT;
        // Grown once to its size rather than doubling through 200,000 first sightings (the first frame waits).
        self.seen
            .reserve(snapshot.connections.len().saturating_sub(self.seen.len()));
        for conn in part {
            let wanted = sample_all
                || selected == Some(conn.cookie)
                || conn.worst().is_some_and(|s| s >= Severity::Warning);
            self.observe_one(conn, now_ms, wanted, sample_all);
        }
    }

    /// Forgets the sockets not seen for [`FORGET_AFTER_MS`], once every part of `snapshot` was recorded.
    fn forget(&mut self, snapshot: &Snapshot, now_ms: u64) {
        if self.seen.len() == snapshot.connections.len() {
            // Every socket remembered is in this snapshot (cookies are unique): none to forget.
            return;
        }
        let sampled = &mut self.sampled;
        self.seen.retain(|_, seen| {
            let keep = now_ms.saturating_sub(seen.last_seen_ms) < FORGET_AFTER_MS;
            if !keep && !seen.samples.is_empty() {
                *sampled -= 1;
            }
            keep
        });
    }

    /// Records one socket; it gets a sample when `wanted` and, unless `unbounded`, there is room for it.
    fn observe_one(&mut self, conn: &Connection, now_ms: u64, wanted: bool, unbounded: bool) {
        let seen = self.seen.entry(conn.cookie).or_insert_with(|| Seen {
            first_seen_ms: now_ms,
            state: conn.state,
            state_since_ms: now_ms,
            state_since_start: true,
            last_seen_ms: now_ms,
            samples: Samples::default(),
        });
        if seen.state != conn.state {
            seen.state = conn.state;
            seen.state_since_ms = now_ms;
            seen.state_since_start = false;
        }
        seen.last_seen_ms = now_ms;
        let has_samples = !seen.samples.is_empty();
        if wanted && (has_samples || unbounded || self.sampled < SAMPLE_ALL_LIMIT) {
            if !has_samples {
                self.sampled += 1;
            }
            seen.samples.push(Sample {
                probes: u32::from(conn.timer.count),
                idle_ms: heard_ms(conn),
            });
        } else if !wanted && has_samples {
            seen.samples = Samples::default();
            self.sampled -= 1;
        }
    }

    /// How many sockets keep samples.
    pub fn sampled(&self) -> usize {
        self.sampled
    }
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

    /// Records one snapshot taken at `now_ms`, [`PART`] sockets per hold of the lock.
    pub fn observe(&self, snapshot: &Snapshot, now_ms: u64) {
        for part in snapshot.connections.chunks(PART) {
            let mut session = self.lock();
            let selected = session.selected;
            session
                .history
                .observe_part(snapshot, part, now_ms, selected);
        }
        self.lock().history.forget(snapshot, now_ms);
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
        // Everything gone for long enough: forgotten, and the count with it.
        h.observe(&snap(vec![]), 2_000 + FORGET_AFTER_MS, None);
        assert_eq!((h.len(), h.sampled()), (0, 0));
    }

    #[test]
    fn the_shared_history_recorded_in_parts_equals_one_recorded_whole() {
        // More sockets than a part and than the sampling limit, one of them selected; then some leave for good.
        let n = 2 * PART as u64 + 17;
        let conns = |n: u64, state: TcpState| -> Vec<Connection> {
            (0..n)
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
}
