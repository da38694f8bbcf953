//! Connection deaths between scrapes: the kernel's destroy notifications joined with earlier snapshots.

use crate::events::{Event, Subscriber, Tracker};
use crate::filter::Filter;
use crate::model::{Connection, Snapshot};
use crate::serve::metrics::{self, DeathCounts};

/// Counts deaths of sockets seen in earlier snapshots, from the kernel's destroy notifications (kwatch's own
/// namespace only). Notifications queue in the kernel between scrapes and are read at each collection.
pub struct DeathWatch {
    subscriber: Option<Subscriber>,
    tracker: Tracker,
    destroyed: Vec<Connection>,
    counts: DeathCounts,
}

impl DeathWatch {
    /// Subscribes to destroy notifications; without them (a warning on stderr) no deaths are counted.
    pub fn open() -> DeathWatch {
        let subscriber = match Subscriber::open() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("kwatch: warning: no connection deaths: {e}");
                None
            }
        };
        DeathWatch {
            subscriber,
            tracker: Tracker::new(),
            destroyed: Vec::new(),
            counts: DeathCounts::default(),
        }
    }

    /// Reads the notifications queued since the last collection (before the dump, as `--watch` does).
    pub fn drain(&mut self) {
        self.destroyed.clear();
        if let Some(sub) = &mut self.subscriber {
            if sub.drain(&mut self.destroyed).is_err() {
                self.counts.lost += 1;
            }
        }
    }

    /// Counts the deaths among the drained notifications of sockets seen before; remembers `snapshot`'s.
    pub fn step(&mut self, snapshot: &Snapshot, filter: &Filter) -> Option<DeathCounts> {
        self.subscriber.as_ref()?;
        for event in self.tracker.step(snapshot, filter, &self.destroyed, 0) {
            if let Event::Destroy { cause, comm, .. } = event {
                let comm = comm.unwrap_or_else(|| "?".to_string());
                *self
                    .counts
                    .by_cause
                    .entry((metrics::cause_name(cause), comm))
                    .or_default() += 1;
            }
        }
        Some(self.counts.clone())
    }
}
