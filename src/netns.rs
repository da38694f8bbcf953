//! Network namespaces: which exist ([`discover`]), listing a namespace's sockets and sysctls from a thread that
//! entered it ([`enter`]), and which container or service a process belongs to ([`cgroup`]).
//!
//! `/proc` is shared by every network namespace of a pid namespace, so one /proc scan maps the sockets of all of
//! them to processes: socket inodes are unique across namespaces. Only the sock_diag dump and the sysctls are
//! per namespace, and both must be read from inside it.

pub mod cgroup;
pub mod discover;
pub mod enter;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::diag::{DiagError, DumpRequest, Dumper};
use crate::model::{Connection, NamespaceInfo, NetnsRef, Settings, Unit};
use crate::sysctl;

pub use discover::{Discovery, Found};

/// Where named namespaces live (`ip netns add NAME`).
pub const RUN_NETNS: &str = "/run/netns";

/// How many namespaces are listed at the same time.
pub const PARALLEL: usize = 4;

/// Which network namespaces a snapshot covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// kwatch's own (the default).
    #[default]
    Current,
    /// One namespace: a name under /run/netns or a path such as `/proc/PID/ns/net` (`--netns`).
    One(String),
    /// Every distinct namespace found through /proc and /run/netns (`--all-netns`).
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace '{path}': {source}")]
    Open { path: String, source: io::Error },
    #[error("cannot enter network namespace '{label}': {}", enter_reason(.source))]
    Enter { label: String, source: io::Error },
    #[error("cannot list TCP sockets in network namespace '{label}': {source}")]
    Dump { label: String, source: DiagError },
}

impl NetnsError {
    /// True when the cause is missing privilege (entering another namespace needs CAP_SYS_ADMIN).
    pub fn is_permission(&self) -> bool {
        let errno = match self {
            NetnsError::Open { source, .. } | NetnsError::Enter { source, .. } => {
                source.raw_os_error()
            }
            NetnsError::Dump { source, .. } => source.errno(),
        };
        matches!(errno, Some(libc::EPERM | libc::EACCES))
    }

    /// True when the namespace was gone by the time it was opened (its only process exited).
    pub fn is_gone(&self) -> bool {
        matches!(self, NetnsError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn enter_reason(e: &io::Error) -> String {
    enter_reason_as(e, crate::proc::running_as_root())
}

/// Why a namespace could not be entered. "Needs root" only when kwatch is not root: root refused is refused by
/// something else (a security module, a namespace owned by another user namespace), and then the error is all
/// that is known.
fn enter_reason_as(e: &io::Error, as_root: bool) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) if !as_root => {
            "operation not permitted: entering a network namespace needs root (CAP_SYS_ADMIN)"
                .into()
        }
        Some(libc::EPERM | libc::EACCES) if as_root => format!(
            "{e}, although kwatch runs as root (refused by a security module or the namespace's owner)"
        ),
        Some(libc::EINVAL) => "not a network namespace".into(),
        _ => e.to_string(),
    }
}

/// The warning for processes whose namespace could not be read (see [`discover::Discovery`]).
fn unreadable_warning(n: u32, first_error: Option<&str>, as_root: bool) -> String {
    let why = match (as_root, first_error) {
        (false, _) => "needs root".to_string(),
        (true, Some(e)) => format!("{e}, although kwatch runs as root"),
        (true, None) => "refused although kwatch runs as root".to_string(),
    };
    format!(
        "the network namespace of '{n}' processes could not be read ({why}): namespaces only they run in are not \
         shown"
    )
}

/// The warning for namespaces that could not be entered for want of permission.
fn denied_warning(labels: &[String], as_root: bool) -> String {
    let why = if as_root {
        "refused although kwatch runs as root (see each namespace's error)"
    } else {
        "entering a namespace needs root (CAP_SYS_ADMIN)"
    };
    format!(
        "cannot enter '{}' network namespaces ({}): {why}; their sockets are not shown",
        labels.len(),
        labels
            .iter()
            .map(|l| format!("'{l}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One namespace's sockets (each stamped with the namespace) and sysctls, read from inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub connections: Vec<Connection>,
    pub settings: Settings,
}

/// The reference every socket of `found` carries.
pub fn reference(found: &Found) -> NetnsRef {
    NetnsRef {
        inode: found.inode,
        name: found.name.as_deref().map(Arc::from),
    }
}

/// Stamps connections with the namespace they were dumped in.
/// One shared reference per namespace: a socket carries a pointer, not a copy.
pub fn stamp(connections: &mut [Connection], netns: &NetnsRef) {
    let shared = Arc::new(netns.clone());
    for c in connections {
        c.netns = Some(Arc::clone(&shared));
    }
}

/// Lists the sockets and sysctls of each namespace from a thread inside it (a fresh sock_diag socket is opened
/// there; `proc_root/sys/net` is read there), at most [`PARALLEL`] at a time. Result `i` is `namespaces[i]`'s.
pub fn list_each(
    namespaces: &[Found],
    request: &DumpRequest,
    proc_root: &Path,
) -> Vec<Result<Listing, NetnsError>> {
    let label = |f: &Found| reference(f).label();
    let opened: Vec<Result<File, NetnsError>> = namespaces
        .iter()
        .map(|found| {
            enter::open(&found.path).map_err(|source| NetnsError::Open {
                path: found.path.display().to_string(),
                source,
            })
        })
        .collect();
    let files: Vec<&File> = opened.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut listed = enter::run_in_each(&files, PARALLEL, |_| {
        let settings = sysctl::read_settings(proc_root);
        Dumper::open()
            .and_then(|mut d| d.dump(request))
            .map(|connections| Listing {
                connections,
                settings,
            })
    })
    .into_iter();
    namespaces
        .iter()
        .zip(opened)
        .map(|(found, file)| {
            file?;
            let outcome = listed
                .next()
                .unwrap_or_else(|| Err(io::Error::other("not listed")));
            match outcome {
                Err(source) => Err(NetnsError::Enter {
                    label: label(found),
                    source,
                }),
                Ok(Err(source)) => Err(NetnsError::Dump {
                    label: label(found),
                    source,
                }),
                Ok(Ok(mut listing)) => {
                    stamp(&mut listing.connections, &reference(found));
                    Ok(listing)
                }
            }
        })
        .collect()
}

/// The sockets of every namespace in a scope, stamped with their namespace, and what is known of each namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dumped {
    pub connections: Vec<Connection>,
    /// kwatch's own first when it is in scope; those that could not be listed carry the reason in `error`.
    pub namespaces: Vec<NamespaceInfo>,
    /// Namespaces that could not be found or entered, one line each, for the snapshot's warnings.
    pub warnings: Vec<String>,
}

/// The inode of the one namespace `scope` names (`None` for every namespace, or one that cannot be found: the
/// dump reports that).
pub fn scope_inode(scope: &Scope, proc_root: &Path, run_netns: &Path) -> Option<u64> {
    let found = match scope {
        Scope::Current => discover::resolve_current(proc_root, run_netns),
        Scope::One(spec) => discover::resolve(spec, proc_root, run_netns).ok()?,
        Scope::All => return None,
    };
    (found.inode != 0).then_some(found.inode)
}

/// Dumps the namespaces of `scope`. kwatch's own namespace is dumped with `own` on the calling thread (the
/// caller's reusable netlink socket, no privilege needed); every other one from a thread inside it. With
/// [`Scope::All`], a namespace that cannot be entered is reported in `warnings` and the rest are still listed;
/// with [`Scope::One`] it is an error, as is a failure of `own`.
pub fn dump_scope(
    scope: &Scope,
    proc_root: &Path,
    run_netns: &Path,
    request: &DumpRequest,
    own: impl FnOnce(&DumpRequest) -> Result<Vec<Connection>, DiagError>,
) -> anyhow::Result<Dumped> {
    let own_ns = || discover::resolve_current(proc_root, run_netns);
    let found = match scope {
        Scope::Current => vec![own_ns()],
        Scope::One(spec) => vec![discover::resolve(spec, proc_root, run_netns)?],
        Scope::All => {
            let d = discover::discover(proc_root, run_netns);
            let mut out = Dumped::default();
            if d.unreadable > 0 {
                out.warnings.push(unreadable_warning(
                    d.unreadable,
                    d.first_error.as_deref(),
                    crate::proc::running_as_root(),
                ));
            }
            return dump_found(d.found, proc_root, request, own, true, out);
        }
    };
    dump_found(found, proc_root, request, own, false, Dumped::default())
}

/// Dumps each found namespace into `out`; `tolerant`: failures of other namespaces become warnings.
fn dump_found(
    found: Vec<Found>,
    proc_root: &Path,
    request: &DumpRequest,
    own: impl FnOnce(&DumpRequest) -> Result<Vec<Connection>, DiagError>,
    tolerant: bool,
    mut out: Dumped,
) -> anyhow::Result<Dumped> {
    let (current, others): (Vec<Found>, Vec<Found>) = found.into_iter().partition(|f| f.current);
    let (own_result, listed) = std::thread::scope(|s| {
        let others = s.spawn(|| list_each(&others, request, proc_root));
        let own_result = current
            .first()
            .map(|_| (own(request), sysctl::read_settings(proc_root)));
        let listed = others
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (own_result, listed)
    });
    if let (Some(f), Some((connections, settings))) = (current.first(), own_result) {
        let mut connections = connections.context("cannot list TCP sockets")?;
        let netns = reference(f);
        stamp(&mut connections, &netns);
        out.connections = connections;
        out.namespaces.push(NamespaceInfo {
            netns,
            current: true,
            pid: f.pid,
            settings,
            error: None,
        });
    }
    let mut denied = Vec::new();
    for (f, result) in others.iter().zip(listed) {
        let netns = reference(f);
        let (settings, error) = match result {
            Ok(listing) => {
                out.connections.extend(listing.connections);
                (listing.settings, None)
            }
            Err(e) if !tolerant => return Err(e.into()),
            // Found through a process that exited since: nothing left to show.
            Err(e) if e.is_gone() => continue,
            Err(e) => {
                if e.is_permission() {
                    denied.push(netns.label());
                } else {
                    out.warnings.push(e.to_string());
                }
                (Settings::default(), Some(e.to_string()))
            }
        };
        out.namespaces.push(NamespaceInfo {
            netns,
            current: false,
            pid: f.pid,
            settings,
            error,
        });
    }
    if !denied.is_empty() {
        out.warnings
            .push(denied_warning(&denied, crate::proc::running_as_root()));
    }
    Ok(out)
}

/// What runs each of `pids`, read from `proc_root/PID/cgroup`; pids without a recognizable unit are left out.
pub fn units(proc_root: &Path, pids: impl IntoIterator<Item = u32>) -> BTreeMap<u32, Unit> {
    pids.into_iter()
        .filter_map(|pid| {
            let content = std::fs::read_to_string(proc_root.join(format!("{pid}/cgroup"))).ok()?;
            Some((pid, cgroup::parse(&content)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_root_is_said_only_to_non_root() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            enter_reason_as(&eperm, false),
            "operation not permitted: entering a network namespace needs root (CAP_SYS_ADMIN)"
        );
        for (e, text) in [
            (&eperm, "Operation not permitted"),
            (&eacces, "Permission denied"),
        ] {
            let as_root = enter_reason_as(e, true);
            assert!(!as_root.contains("needs root"), "{as_root}");
            assert!(
                as_root.starts_with(text) && as_root.contains("although kwatch runs as root"),
                "{as_root}"
            );
        }
        let denied = ["web".to_string(), "ns:4026532".to_string()];
        assert_eq!(
            denied_warning(&denied, false),
            "cannot enter '2' network namespaces ('web', 'ns:4026532'): entering a namespace needs root \
             (CAP_SYS_ADMIN); their sockets are not shown"
        );
        assert!(!denied_warning(&denied, true).contains("needs root"));
        assert_eq!(
            unreadable_warning(3, Some("Permission denied (os error 13)"), false),
            "the network namespace of '3' processes could not be read (needs root): namespaces only they run \
             in are not shown"
        );
        assert_eq!(
            unreadable_warning(1, Some("Permission denied (os error 13)"), true),
            "the network namespace of '1' processes could not be read (Permission denied (os error 13), \
             although kwatch runs as root): namespaces only they run in are not shown"
        );
    }
}
