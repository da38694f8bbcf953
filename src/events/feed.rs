//! The I/O side of watching, shared by `--watch`, the live view's event log and the exporter's death counters:
//! destroy notifications of every inspected namespace ([`Listener`]) and each snapshot, turned into events by a
//! [`Tracker`] that asks /proc whether a socket that left the dump is still held.

use std::path::{Path, PathBuf};

use super::WatchEvent;
use super::listener::{Destroyed, Listener};
use super::tracker::Tracker;
use crate::filter::Filter;
use crate::model::Snapshot;
use crate::netns::Scope;
use crate::proc;

/// Runs next to a collector: call [`Feed::drain`] right before a dump and [`Feed::step`] with its snapshot.
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
}

impl Feed {
    /// Subscribes in every namespace of `scope` (`proc_root` is where pids and their fds are looked up). A failed
    /// subscription is reported by the first [`Feed::step`] (a warning, then a start event with
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
        }
    }

    /// Takes every destroy notification received so far, without waiting.
    pub fn drain(&mut self) {
        let (lost, warnings) = self.listener.take(&mut self.destroyed);
        self.lost += lost;
        self.warnings.extend(warnings);
    }

    /// The events of one snapshot taken after [`Feed::drain`], oldest first, for the sockets `filter` keeps;
    /// `now_unix_ms` stamps them. Subscribes in namespaces the snapshot lists for the first time and drops those it
    /// no longer lists.
    pub fn step(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        now_unix_ms: u64,
    ) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        let proc_root = &self.proc_root;
        let events = self.tracker.step(
            snapshot,
            filter,
            &self.destroyed,
            now_unix_ms,
            &mut |inode, owner| proc::holds(proc_root, owner, inode),
        );
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

    /// Notifications lost since the start.
    pub fn lost_total(&self) -> u64 {
        self.lost_total
    }

    /// Whether any destroy notification subscription is open.
    pub fn is_listening(&self) -> bool {
        self.listener.is_listening()
    }
}
