//! Connection deaths between scrapes: the kernel's destroy notifications joined with earlier snapshots.

use std::path::Path;
use std::sync::Arc;

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
    /// there are counted. `evidence`: keep what the feed hears and finds, for a recording. `shared`: a recorder
    /// keeps each collection's snapshot (the whole one: no filter) until the next, and the watch shares it;
    /// otherwise only what deaths read of each socket is kept between scrapes, not the snapshot (the next one is
    /// then taken beside 84 MiB at a million sockets instead of a 172 MiB snapshot).
    pub fn open(evidence: bool, shared: bool) -> DeathWatch {
        let mut feed = Feed::open(&Scope::Current, Path::new("/proc"));
        if evidence {
            feed.keep_evidence();
        }
        if !shared {
            feed.keep_brief();
        }
        DeathWatch {
            feed,
            counts: DeathCounts::default(),
        }
    }

    /// What the feed heard and found since the last call (kept only when `open` was told of a recording).
    pub fn take_evidence(&mut self) -> crate::events::Evidence {
        self.feed.take_evidence()
    }

    /// Whether a destroy notification subscription is open.
    pub fn is_listening(&self) -> bool {
        self.feed.is_listening()
    }

    pub fn drain(&mut self) {
        self.feed.drain();
    }

    /// Counts the deaths among the drained notifications of sockets seen before; remembers `snapshot`'s (what
    /// deaths read of each socket). `None` while no namespace's notifications are received.
    pub fn step(&mut self, snapshot: &Arc<Snapshot>, filter: &Filter) -> Option<DeathCounts> {
        // Stamped with the dump's time, as the live view's feed and a replay of a recording do.
        for event in self
            .feed
            .step_shared(snapshot, filter, snapshot.taken_at_unix_ms)
        {
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
