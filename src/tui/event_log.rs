//! The live view's event log: deaths and state changes of sockets the collector had seen, newest first and
//! bounded ([`EventLog`], pure), and the [`Feed`] that produces them on the collector thread from kernel destroy
//! notifications and each snapshot (the I/O side, [`events::Feed`], as `kwatch --watch` does it).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::collect::Options;
use crate::events::{self, WatchEvent};
use crate::filter::Filter;
use crate::model::Snapshot;

/// Events the log keeps; older ones fall off the end.
pub const LOG_MAX: usize = 500;

/// Watch events, newest first, at most [`LOG_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    events: VecDeque<WatchEvent>,
    /// Events ever added (also those that fell off), so a cursor can tell how far the list moved.
    added: u64,
}

impl EventLog {
    /// Adds events given oldest first (as the tracker emits them): the last one ends up on top.
    pub fn extend(&mut self, events: impl IntoIterator<Item = WatchEvent>) {
        for e in events {
            self.events.push_front(e);
            self.added += 1;
        }
        self.events.truncate(LOG_MAX);
    }

    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = &WatchEvent> {
        self.events.iter()
    }

    pub fn get(&self, i: usize) -> Option<&WatchEvent> {
        self.events.get(i)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events ever added.
    pub fn added(&self) -> u64 {
        self.added
    }
}

/// Runs next to the collector: the destroy notifications of every namespace the collector lists, joined with
/// each snapshot through a [`Tracker`](crate::events::Tracker) that watches every collected socket (the view's
/// filter applies to the tables, not to the log). Call [`Feed::drain`] right before a dump and [`Feed::step_shared`]
/// with its snapshot.
pub struct Feed {
    inner: events::Feed,
    filter: Filter,
}

impl Feed {
    /// Subscribes in the namespaces the collector will list (see [`events::Feed::open`]).
    pub fn open(opts: &Options) -> Feed {
        Feed {
            inner: events::Feed::open(&opts.netns, &opts.proc_root),
            filter: Filter::default(),
        }
    }

    /// Takes every destroy notification received so far, without waiting.
    pub fn drain(&mut self) {
        self.inner.drain();
    }

    /// The events of one snapshot taken after [`Feed::drain`], oldest first; `now_unix_ms` stamps them. The feed
    /// keeps the snapshot until the next step (the one the view shows, not a copy).
    pub fn step_shared(&mut self, snapshot: &Arc<Snapshot>, now_unix_ms: u64) -> Vec<WatchEvent> {
        self.inner.step_shared(snapshot, &self.filter, now_unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(n: u64) -> WatchEvent {
        WatchEvent::Warning {
            time_unix_ms: n,
            message: n.to_string(),
        }
    }

    fn times(log: &EventLog) -> Vec<u64> {
        log.iter()
            .map(|e| match e {
                WatchEvent::Warning { time_unix_ms, .. } => *time_unix_ms,
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn newest_first_and_bounded() {
        let mut log = EventLog::default();
        log.extend([warning(1), warning(2)]);
        log.extend([warning(3)]);
        assert_eq!(times(&log), [3, 2, 1]);
        log.extend((4..=LOG_MAX as u64 + 10).map(warning));
        assert_eq!(log.len(), LOG_MAX);
        assert_eq!(log.added(), LOG_MAX as u64 + 10);
        assert_eq!(times(&log)[0], LOG_MAX as u64 + 10);
        assert_eq!(*times(&log).last().unwrap_or(&0), 11, "the oldest fell off");
    }
}
