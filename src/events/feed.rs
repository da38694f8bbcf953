//! The I/O side of watching, shared by `--watch`, the live view's event log and the exporter's death counters:
//! destroy notifications of every inspected namespace ([`Listener`]) and each snapshot, turned into events by a
//! [`Tracker`] that asks /proc whether a socket that left the dump is still held.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::WatchEvent;
use super::listener::{Destroyed, Listener};
use super::tracker::{Tracker, Unchanged};
use crate::filter::Filter;
use crate::model::{Owner, Snapshot};
use crate::netns::Scope;
use crate::proc;

/// Runs next to a collector: call [`Feed::drain`] right before a dump and [`Feed::step_shared`] with its snapshot.
pub struct Feed {
    listener: Listener,
    tracker: Tracker,
    proc_root: PathBuf,
    destroyed: Vec<Destroyed>,
    /// Problems to report at the next step (namespaces without a subscription).
    warnings: Vec<String>,
    /// Notifications lost since the last step, and since the start.
    lost: u64,
    lost_total: u64,
    started: bool,
    /// What the steps heard and found, kept for the flight recorder when asked for ([`Feed::keep_evidence`]).
    evidence: Option<Evidence>,
}

/// What steps of a feed heard (destroy notifications, lost ones) and found in /proc (fds still holding a socket
/// that left the dump): with the snapshots, enough for a [`Tracker`] to make the same events again later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub destroyed: Vec<Destroyed>,
    /// (socket inode, pid) pairs that /proc showed holding the socket when the tracker asked; other pairs did not.
    pub held: Vec<(u32, u32)>,
    /// Notifications lost.
    pub lost: u64,
}

impl Evidence {
    /// Answers the tracker's question from what was found when it was asked the first time.
    pub fn holds(&self, inode: u32, owner: Owner) -> bool {
        self.held.contains(&(inode, owner.pid))
    }
}

impl Feed {
    /// Subscribes in every namespace of `scope` (`proc_root` is where pids and their fds are looked up). A failed
    /// subscription is reported by the first [`Feed::step_shared`] (a warning, then a start event with
    /// `destroy_events: false` when none works), and state changes are still tracked.
    pub fn open(scope: &Scope, proc_root: &Path) -> Feed {
        let (listener, warnings) = Listener::open(scope, proc_root);
        Feed {
            listener,
            tracker: Tracker::new(),
            proc_root: proc_root.to_path_buf(),
            destroyed: Vec::new(),
            warnings,
            lost: 0,
            lost_total: 0,
            started: false,
            evidence: None,
        }
    }

    /// Keeps only what events read of each socket between steps, not the snapshot: for callers that let theirs
    /// go after the step (see [`Tracker::keep_brief`]).
    pub fn keep_brief(&mut self) {
        self.tracker.keep_brief();
    }

    /// Takes every destroy notification received so far, without waiting.
    pub fn drain(&mut self) {
        let (lost, warnings) = self.listener.take(&mut self.destroyed);
        self.lost += lost;
        self.warnings.extend(warnings);
    }

    /// The events of one snapshot taken after [`Feed::drain`], oldest first, for the sockets `filter` keeps;
    /// `now_unix_ms` stamps them. Subscribes in namespaces the snapshot lists for the first time and drops those it
    /// no longer lists. The tracker keeps `snapshot` until the next step (what it knows of each socket), or only
    /// what events read of it (see [`Feed::keep_brief`]).
    pub fn step_shared(
        &mut self,
        snapshot: &Arc<Snapshot>,
        filter: &Filter,
        now_unix_ms: u64,
    ) -> Vec<WatchEvent> {
        self.step_unchanged(snapshot, filter, now_unix_ms, None)
    }

    /// [`Feed::step_shared`], told which sockets are where they were in the last step's snapshot by a caller
    /// that compared the two ([`Tracker::step_unchanged`]): the recorder.
    pub fn step_unchanged(
        &mut self,
        snapshot: &Arc<Snapshot>,
        filter: &Filter,
        now_unix_ms: u64,
        unchanged: Option<Unchanged<'_>>,
    ) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        let proc_root = &self.proc_root;
        let mut held = Vec::new();
        let events = self.tracker.step_unchanged(
            snapshot,
            filter,
            &self.destroyed,
            now_unix_ms,
            &mut |inode, owner| {
                let holds = proc::holds(proc_root, owner, inode);
                if holds {
                    held.push((inode, owner.pid));
                }
                holds
            },
            unchanged,
        );
        if let Some(evidence) = self.evidence.as_mut() {
            evidence.destroyed.append(&mut self.destroyed);
            evidence.held.append(&mut held);
            evidence.lost += self.lost;
        }
        self.destroyed.clear();
        let followed = self.listener.follow(&snapshot.namespaces, &self.proc_root);
        self.warnings.extend(followed);
        out.extend(self.warnings.drain(..).map(|message| WatchEvent::Warning {
            time_unix_ms: now_unix_ms,
            message,
        }));
        if !self.started {
            self.started = true;
            out.push(WatchEvent::Start {
                time_unix_ms: now_unix_ms,
                sockets: self.tracker.watched() as u64,
                destroy_events: self.listener.is_listening(),
            });
        }
        if self.lost > 0 {
            self.lost_total += self.lost;
            out.push(WatchEvent::Lost {
                time_unix_ms: now_unix_ms,
                notifications: std::mem::take(&mut self.lost),
                total: self.lost_total,
            });
        }
        out.extend(events);
        out
    }

    /// Keeps what every step heard and found from now on, for [`Feed::take_evidence`].
    pub fn keep_evidence(&mut self) {
        self.evidence.get_or_insert_with(Evidence::default);
    }

    /// What the steps since the last call heard and found (empty unless [`Feed::keep_evidence`] was called).
    pub fn take_evidence(&mut self) -> Evidence {
        self.evidence
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Notifications lost since the start.
    pub fn lost_total(&self) -> u64 {
        self.lost_total
    }

    /// Whether any destroy notification subscription is open.
    pub fn is_listening(&self) -> bool {
        self.listener.is_listening()
    }
}
