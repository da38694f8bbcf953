//! Connection deaths between scrapes: the kernel's destroy notifications joined with earlier snapshots.

use std::path::Path;

use crate::events::{Feed, WatchEvent};
use crate::filter::Filter;
use crate::model::Snapshot;
use crate::netns::Scope;
use crate::serve::metrics::{self, DeathCounts};

/// Counts deaths of sockets seen in earlier snapshots, from the destroy notifications of every namespace a
/// snapshot lists (see [`Feed`]): kwatch's own is subscribed at once, others from the first snapshot that lists
/// them. A reader thread queues notifications between scrapes; each collection takes them.
pub struct DeathWatch {
    feed: Feed,
    counts: DeathCounts,
}

impl DeathWatch {
    /// Subscribes to kwatch's own namespace's destroy notifications; without them (a warning on stderr) no deaths
    /// there are counted.
    pub fn open() -> DeathWatch {
        DeathWatch {
            feed: Feed::open(&Scope::Current, Path::new("/proc")),
            counts: DeathCounts::default(),
        }
    }

    /// Takes the notifications queued since the last collection (before the dump, as `--watch` does).
    pub fn drain(&mut self) {
        self.feed.drain();
    }

    /// Counts the deaths among the drained notifications of sockets seen before; remembers `snapshot`'s. `None`
    /// while no namespace's notifications are received.
    pub fn step(&mut self, snapshot: &Snapshot, filter: &Filter) -> Option<DeathCounts> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for event in self.feed.step(snapshot, filter, now) {
            match event {
                WatchEvent::Destroy { cause, comm, .. } => {
                    let comm = comm.unwrap_or_else(|| "?".to_string());
                    *self
                        .counts
                        .by_cause
                        .entry((metrics::cause_name(cause), comm))
                        .or_default() += 1;
                }
                WatchEvent::Lost { notifications, .. } => self.counts.lost += notifications,
                WatchEvent::Warning { message, .. } => log!("kwatch: warning: {message}"),
                _ => {}
            }
        }
        self.feed.is_listening().then(|| self.counts.clone())
    }
}
