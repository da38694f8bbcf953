//! What the session has seen of each socket (by cookie): first sight, time in the current state, recent samples.

use std::collections::VecDeque;

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
    pub samples: VecDeque<Sample>,
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
        let sample_all = snapshot.connections.len() <= SAMPLE_ALL_LIMIT;
        // Grown once to its size rather than doubling through 200,000 first sightings (the first frame waits).
        self.seen
            .reserve(snapshot.connections.len().saturating_sub(self.seen.len()));
        for conn in &snapshot.connections {
            let wanted = sample_all
                || selected == Some(conn.cookie)
                || conn.worst().is_some_and(|s| s >= Severity::Warning);
            self.observe_one(conn, now_ms, wanted, sample_all);
        }
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
            samples: VecDeque::new(),
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
                seen.samples.reserve_exact(SAMPLES);
            }
            if seen.samples.len() == SAMPLES {
                seen.samples.pop_front();
            }
            seen.samples.push_back(Sample {
                probes: conn.timer.count,
                idle_ms: heard_ms(conn),
            });
        } else if !wanted && has_samples {
            seen.samples = VecDeque::new();
            self.sampled -= 1;
        }
    }

    /// How many sockets keep samples.
    pub fn sampled(&self) -> usize {
        self.sampled
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

    fn conn(cookie: u64, state: TcpState, count: u32) -> Connection {
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
                &snap(vec![conn(1, TcpState::Established, i as u32)]),
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
}
