//! Destroy notifications of every inspected network namespace, read as they come by a thread of their own.
//!
//! One subscription per namespace ([`Subscriber`]), each opened on a thread that entered its namespace (the
//! socket stays bound there). A reader thread waits on all of them at once and moves each notification into a
//! queue the caller takes at every refresh, so the kernel's buffer never fills while a refresh runs: at 1,000
//! deaths a second none is lost. What the kernel dropped anyway, and what the queue could not hold, is counted.
//! A subscription keeps its namespace alive, so one whose namespace a snapshot no longer lists is dropped (after
//! its last notifications are read).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rustc_hash::FxHashSet;

use crate::diag::destroy::Subscriber;
use crate::model::{Connection, NamespaceInfo};
use crate::netns::{self, Found, Scope, discover};

/// Notifications kept for the caller at most (32 bytes each): some 17 minutes of 1,000 deaths a second between two
/// takes. Past it, the newest are dropped and counted as lost.
pub const QUEUE_MAX: usize = 1 << 20;

/// How long the reader waits on the subscriptions before it looks for new ones or a stop.
const POLL_MS: i32 = 100;

/// The kernel's last word on a socket it freed, in the namespace (inode) whose subscription heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destroyed {
    pub netns: u64,
    pub cookie: u64,
    /// Unanswered keepalive or window probes in the final tcp_info.
    pub probes: Option<u8>,
    /// Consecutive retransmits in the final tcp_info.
    pub retransmits: Option<u8>,
}

impl Destroyed {
    /// From a parsed notification heard in namespace `netns`.
    pub fn of(netns: u64, c: &Connection) -> Destroyed {
        let info = c.tcp_info.as_ref();
        Destroyed {
            netns,
            cookie: c.cookie,
            probes: info.and_then(crate::model::TcpInfo::probes),
            retransmits: info.and_then(crate::model::TcpInfo::retransmits),
        }
    }
}

/// A namespace to subscribe in: its inode, and the path to enter it by (`None`: kwatch's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub inode: u64,
    pub path: Option<PathBuf>,
    /// How warnings name it.
    pub label: String,
}

impl Target {
    /// The namespace as discovery found it.
    pub fn found(f: &Found) -> Target {
        Target {
            inode: f.inode,
            path: (!f.current).then(|| f.path.clone()),
            label: netns::reference(f).label(),
        }
    }

    /// The namespace as a snapshot lists it: entered by name or through its process; `None` when neither is known.
    pub fn listed(n: &NamespaceInfo, proc_root: &Path) -> Option<Target> {
        let path = if n.current {
            None
        } else if let Some(name) = &n.netns.name {
            Some(Path::new(netns::RUN_NETNS).join(&**name))
        } else {
            Some(proc_root.join(format!("{}/ns/net", n.pid?)))
        };
        Some(Target {
            inode: n.netns.inode,
            path,
            label: n.netns.label(),
        })
    }
}

/// What the reader thread and the caller share.
#[derive(Default)]
struct Shared {
    queue: Vec<Destroyed>,
    /// Lost since the last take.
    lost: u64,
    /// Subscriptions for the reader to add, and inodes of those to drop (after reading them out).
    add: Vec<(u64, Subscriber)>,
    remove: Vec<u64>,
    /// A subscription failed while being read: its namespace and why (it is dropped).
    failed: Vec<(u64, String)>,
    stop: bool,
}

/// The subscriptions of a set of namespaces and the thread that reads them.
pub struct Listener {
    shared: Arc<Mutex<Shared>>,
    reader: Option<JoinHandle<()>>,
    /// Namespaces subscribed, by inode.
    subscribed: FxHashSet<u64>,
    /// Namespaces that could not be subscribed in, by inode, and why: not tried again.
    refused: HashMap<u64, String>,
}

impl Default for Listener {
    fn default() -> Self {
        Listener::new()
    }
}

impl Listener {
    /// No subscription yet; the reader thread starts with the first.
    pub fn new() -> Listener {
        Listener {
            shared: Arc::new(Mutex::new(Shared::default())),
            reader: None,
            subscribed: FxHashSet::default(),
            refused: HashMap::new(),
        }
    }

    /// Subscribes in every namespace of `scope` as found now (before the first snapshot, so that no death after it
    /// is missed). Returns a line for each namespace that could not be subscribed in.
    pub fn open(scope: &Scope, proc_root: &Path) -> (Listener, Vec<String>) {
        let run_netns = Path::new(netns::RUN_NETNS);
        let found = match scope {
            Scope::Current => vec![discover::resolve_current(proc_root, run_netns)],
            Scope::One(spec) => discover::resolve(spec, proc_root, run_netns)
                .map(|f| vec![f])
                .unwrap_or_default(),
            Scope::All => discover::discover(proc_root, run_netns).found,
        };
        let mut listener = Listener::new();
        let targets: Vec<Target> = found.iter().map(Target::found).collect();
        let warnings = listener.subscribe(&targets);
        (listener, warnings)
    }

    /// Follows the namespaces a snapshot listed: subscribes in those listed without error that have no
    /// subscription yet, and drops the subscriptions of namespaces no longer listed at all (one that failed to
    /// list this time keeps its own). Returns a line for each that could not be subscribed in.
    pub fn follow(&mut self, namespaces: &[NamespaceInfo], proc_root: &Path) -> Vec<String> {
        let listed: FxHashSet<u64> = namespaces.iter().map(|n| n.netns.inode).collect();
        let gone: Vec<u64> = self
            .subscribed
            .iter()
            .copied()
            .filter(|inode| !listed.contains(inode))
            .collect();
        if !gone.is_empty() {
            for inode in &gone {
                self.subscribed.remove(inode);
            }
            self.lock().remove.extend(gone);
        }
        self.refused.retain(|inode, _| listed.contains(inode));
        let targets: Vec<Target> = namespaces
            .iter()
            .filter(|n| n.error.is_none())
            .filter(|n| !self.subscribed.contains(&n.netns.inode))
            .filter(|n| !self.refused.contains_key(&n.netns.inode))
            .filter_map(|n| Target::listed(n, proc_root))
            .collect();
        self.subscribe(&targets)
    }

    /// Namespaces subscribed, by inode.
    pub fn subscribed(&self) -> impl Iterator<Item = u64> + '_ {
        self.subscribed.iter().copied()
    }

    /// Whether any subscription is open.
    pub fn is_listening(&self) -> bool {
        !self.subscribed.is_empty()
    }

    /// Moves every notification received so far into `out`; returns how many were lost since the last take, and a
    /// line for each subscription that failed since (it was dropped, and is tried again at the next follow).
    pub fn take(&mut self, out: &mut Vec<Destroyed>) -> (u64, Vec<String>) {
        let mut shared = self.lock();
        out.append(&mut shared.queue);
        let lost = std::mem::take(&mut shared.lost);
        let failed = std::mem::take(&mut shared.failed);
        drop(shared);
        let warnings = failed
            .into_iter()
            .map(|(inode, why)| {
                self.subscribed.remove(&inode);
                why
            })
            .collect();
        (lost, warnings)
    }

    fn subscribe(&mut self, targets: &[Target]) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut opened = Vec::new();
        for t in targets {
            if !self.subscribed.insert(t.inode) {
                continue;
            }
            match open_in(t) {
                Ok(sub) => opened.push((t.inode, sub)),
                Err(why) => {
                    self.subscribed.remove(&t.inode);
                    let line = format!(
                        "no destroy notifications from network namespace '{}': {why}",
                        t.label
                    );
                    self.refused.insert(t.inode, line.clone());
                    warnings.push(line);
                }
            }
        }
        if !opened.is_empty() {
            self.lock().add.extend(opened);
            self.start_reader();
        }
        warnings
    }

    fn start_reader(&mut self) {
        if self.reader.is_some() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        match std::thread::Builder::new()
            .name("kwatch-destroy".into())
            .spawn(move || read(&shared))
        {
            Ok(handle) => self.reader = Some(handle),
            Err(e) => {
                // Without a reader nothing is heard: say so for each namespace, as for a failed subscription.
                let mut shared = self.lock();
                let added = std::mem::take(&mut shared.add);
                shared.failed.extend(added.into_iter().map(|(inode, _)| {
                    (
                        inode,
                        format!("no destroy notifications: cannot start a thread: {e}"),
                    )
                }));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.lock().stop = true;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Opens a subscription inside the target namespace, checking that the path still leads to the namespace
/// meant (a pid may have been reused, a name given to another namespace).
fn open_in(t: &Target) -> Result<Subscriber, String> {
    let Some(path) = &t.path else {
        return Subscriber::open().map_err(|e| e.to_string());
    };
    let file =
        netns::enter::open(path).map_err(|e| format!("cannot open '{}': {e}", path.display()))?;
    let inode = rustix::fs::fstat(&file)
        .map_err(|e| format!("cannot open '{}': {e}", path.display()))?
        .st_ino;
    if inode != t.inode {
        return Err(format!("'{}' is another namespace now", path.display()));
    }
    enter_and_open(&file)
}

fn enter_and_open(file: &File) -> Result<Subscriber, String> {
    match netns::enter::run_in(file, Subscriber::open) {
        Ok(Ok(sub)) => Ok(sub),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("cannot enter it: {e}")),
    }
}

/// The reader thread: waits on every subscription, moves what arrives into the shared queue, until told to stop.
fn read(shared: &Mutex<Shared>) {
    let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
    let mut subs: Vec<(u64, Subscriber)> = Vec::new();
    let mut parsed = Vec::new();
    let mut batch = Vec::new();
    loop {
        let remove = {
            let mut s = lock();
            if s.stop {
                return;
            }
            subs.append(&mut s.add);
            std::mem::take(&mut s.remove)
        };
        wait(&subs, POLL_MS);
        let mut lost = 0;
        let mut failed = Vec::new();
        subs.retain_mut(|(inode, sub)| {
            parsed.clear();
            let kept = match sub.receive(&mut parsed) {
                Ok(r) => {
                    lost += r.lost;
                    true
                }
                Err(e) => {
                    failed.push((*inode, format!("destroy notifications stopped: {e}")));
                    false
                }
            };
            batch.extend(parsed.iter().map(|c| Destroyed::of(*inode, c)));
            // A namespace no longer inspected is dropped only now, its last notifications read.
            kept && !remove.contains(inode)
        });
        if batch.is_empty() && lost == 0 && failed.is_empty() {
            continue;
        }
        let mut s = lock();
        let room = QUEUE_MAX.saturating_sub(s.queue.len());
        if batch.len() > room {
            s.lost += (batch.len() - room) as u64;
            batch.truncate(room);
        }
        s.queue.append(&mut batch);
        s.lost += lost;
        s.failed.append(&mut failed);
    }
}

/// Waits until a subscription has something to read, or `timeout_ms` passed.
fn wait(subs: &[(u64, Subscriber)], timeout_ms: i32) {
    if subs.is_empty() {
        std::thread::sleep(Duration::from_millis(timeout_ms as u64));
        return;
    }
    let mut fds: Vec<libc::pollfd> = subs
        .iter()
        .map(|(_, s)| libc::pollfd {
            fd: s.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries whose fds stay open during the call. An error
    // (EINTR) only ends the wait early.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}
