//! Dump + /proc map + join + analysis: one `Snapshot`.

use std::borrow::{Borrow, Cow};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHashSet;

use crate::analyze::{self, Thresholds};
use crate::diag::{self, DiagError, DumpRequest, Dumper};
use crate::held_dead;
use crate::model::{Connection, Snapshot};
use crate::netns::{self, Scope};
use crate::proc::{OwnerIndex, ProcCache, ProcMap, ScanConfig};
use crate::sockopt;
use crate::sysctl;

/// Everything a snapshot needs to be taken.
#[derive(Debug, Clone)]
pub struct Options {
    pub request: DumpRequest,
    pub proc_root: PathBuf,
    /// Map processes at all (`false` skips the /proc scan).
    pub map_processes: bool,
    /// Limit the /proc scan to these pids (from `--pid`).
    pub only_pids: Option<Vec<u32>>,
    pub thresholds: Thresholds,
    /// Read keepalive options from each socket through its owner (`false`: assume the namespace sysctls), and
    /// look for held dead sockets (needs a complete dump: all states, both families).
    pub read_sockopts: bool,
    /// Which network namespaces to list (`--netns`, `--all-netns`); kwatch's own by default.
    pub netns: Scope,
}

/// Takes one snapshot: kernel dump, process map, join, analysis.
pub fn collect(opts: &Options) -> anyhow::Result<Snapshot> {
    Collector::new(opts.clone()).take(true)
}

/// Takes snapshot after snapshot (the live view, one per refresh), keeping what can be reused: the netlink
/// socket and its buffer, and the map of which process holds which socket, in which only processes whose fd
/// table changed are read again (see [`ProcCache`]).
pub struct Collector {
    opts: Options,
    /// Opened at the first dump; dropped after a failed one so that the next dump starts afresh.
    dumper: Option<Dumper>,
    /// `None` when processes are not mapped.
    procs: Option<ProcCache>,
    /// Socket options read in earlier refreshes.
    sockopts: sockopt::Memory,
}

impl Collector {
    pub fn new(opts: Options) -> Collector {
        let procs = opts.map_processes.then(|| {
            ProcCache::new(&ScanConfig {
                only_pids: opts.only_pids.clone(),
                netns: netns::scope_inode(
                    &opts.netns,
                    &opts.proc_root,
                    Path::new(netns::RUN_NETNS),
                ),
                ..ScanConfig::new(&opts.proc_root)
            })
        });
        Collector {
            opts,
            dumper: None,
            procs,
            sockopts: sockopt::Memory::new(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Whether the next snapshot is worth showing in two steps (see [`Collector::collect_dump_only`]): the
    /// processes are mapped and kwatch's namespace holds at least `sockets` TCP sockets (`/proc/net/sockstat`).
    pub fn expects_at_least(&self, sockets: u64) -> bool {
        self.opts.map_processes
            && crate::proc::tcp_sockets_in_use(&self.opts.proc_root).is_some_and(|n| n >= sockets)
    }

    /// The dump alone, analysed, with `owners_pending` set and keepalive settings assumed: a first frame on a big
    /// host, which the /proc map and the socket options would delay by seconds. Keeps nothing for the next
    /// refresh (the map and option memory are left as they are).
    pub fn collect_dump_only(&mut self) -> anyhow::Result<Snapshot> {
        let taken_at_unix_ms = now_unix_ms();
        let Collector { opts, dumper, .. } = self;
        let (dumped, dump_us) = timed(|| dump_every_namespace(opts, dumper));
        let (dumped, connections) = take_connections(dumped?);
        let header = Snapshot {
            taken_at_unix_ms,
            dump_us,
            owners_pending: true,
            ..Snapshot::default()
        };
        let quick = Options {
            map_processes: false,
            read_sockopts: false,
            ..opts.clone()
        };
        let mut memory = sockopt::Memory::new();
        Ok(finish(
            &quick,
            header,
            connections,
            dumped,
            None,
            Cow::Owned(ProcMap::default()),
            sockopt::Known {
                memory: Some(&mut memory),
                kernel: None,
            },
        ))
    }

    /// Takes one snapshot: kernel dump and /proc update at the same time, then join and analysis. Its
    /// connections are in dump order (the live view and the exporter order what they show themselves).
    pub fn collect(&mut self) -> anyhow::Result<Snapshot> {
        self.take(false)
    }

    /// Takes a snapshot; the `last` one takes the /proc map over instead of copying it, reads every socket's
    /// options afresh, and sorts the connections by address for output that is stable from run to run.
    fn take(&mut self, last: bool) -> anyhow::Result<Snapshot> {
        let taken_at_unix_ms = now_unix_ms();
        let Collector {
            opts,
            dumper,
            procs,
            sockopts,
        } = self;
        // The dump and the /proc update are independent: run them at the same time (the update itself uses
        // every core). Only sockets the update could not account for need a second look afterwards.
        let (dumped, mut proc_scan_us) = std::thread::scope(|s| {
            let dump = s.spawn(|| timed(|| dump_every_namespace(opts, dumper)));
            let (_, update_us) = timed(|| procs.as_mut().map(ProcCache::update));
            let dumped = dump
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (dumped, update_us)
        });
        let (dumped, dump_us) = dumped;
        let (dumped, connections) = take_connections(dumped?);
        // A socket a process holds is dead only if a complete dump lacks it: not if a filter left it out. A port
        // filter only cuts what is shown, so the search asks for the rest. Held dead sockets are looked for in
        // every namespace listed (see `held_dead::find`).
        let look_for_held_dead = opts.read_sockopts
            && opts.map_processes
            && opts.request.without_ports().is_complete()
            && dumped.namespaces.iter().any(|n| n.error.is_none());
        // Without a port filter the dump is every live socket; with one, a second dump without it says which.
        // Sorted, the inodes are merged against the map's (one pass, not a lookup each) by the cache's check
        // and the search.
        let every = look_for_held_dead.then(|| every_inode(opts, &dumped, &connections));
        if let Some(cache) = procs.as_mut() {
            // Every live socket of the namespace, when the search for dead ones needs them, is accounted for: a
            // process of another namespace that holds one (and maybe a dead one) is read too.
            let ((), resolve_us) = timed(|| match &every {
                Some(Ok(all)) => cache.resolve(&all.inodes),
                _ => cache.resolve(&sorted_inodes(&connections)),
            });
            proc_scan_us += resolve_us;
        }
        // Keepalive options the BPF iterator read with the fd tables: no socket of them is read again.
        let options = procs
            .as_mut()
            .and_then(ProcCache::take_options)
            .filter(|_| opts.read_sockopts);
        // The live view keeps its map for the next refresh and copies owners out of it; a one-shot snapshot
        // takes the map over and moves them.
        let map = match procs.as_mut() {
            Some(cache) if !last => Cow::Borrowed(cache.map()),
            _ => Cow::Owned(procs.take().map(ProcCache::into_map).unwrap_or_default()),
        };
        let header = Snapshot {
            taken_at_unix_ms,
            dump_us,
            proc_scan_us,
            ..Snapshot::default()
        };
        let known = sockopt::Known {
            memory: (!last).then_some(sockopts),
            kernel: options.as_ref(),
        };
        Ok(finish(opts, header, connections, dumped, every, map, known))
    }
}

/// Milliseconds since the Unix epoch, 0 if the clock is before it.
fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The dump of every namespace in the collector's scope, through its netlink socket for kwatch's own.
fn dump_every_namespace(
    opts: &Options,
    dumper: &mut Option<Dumper>,
) -> anyhow::Result<netns::Dumped> {
    netns::dump_scope(
        &opts.netns,
        &opts.proc_root,
        Path::new(netns::RUN_NETNS),
        &opts.request,
        |request| dump(dumper, request),
    )
}

/// Takes the connections out of a dump. Grown by doubling while the dump was read, their vector can hold up to
/// twice the sockets: the slack is given back before the map, the held-dead search and the join add theirs (for
/// a vector this large the allocator returns it in place, with mremap, instead of copying).
fn take_connections(mut dumped: netns::Dumped) -> (netns::Dumped, Vec<Connection>) {
    let mut connections = std::mem::take(&mut dumped.connections);
    connections.shrink_to_fit();
    (dumped, connections)
}

/// Dumps with the collector's netlink socket, opening it first if needed and dropping it after an error.
fn dump(dumper: &mut Option<Dumper>, request: &DumpRequest) -> Result<Vec<Connection>, DiagError> {
    let mut open = match dumper.take() {
        Some(open) => open,
        None => Dumper::open()?,
    };
    let connections = open.dump(request)?;
    *dumper = Some(open);
    Ok(connections)
}

/// Everything after the dump and the map: snapshot header, held dead sockets, join, socket options, analysis.
/// Without `known.memory` (a one-shot snapshot), connections are sorted by address and every socket's options read.
fn finish(
    opts: &Options,
    header: Snapshot,
    connections: Vec<Connection>,
    namespaces: netns::Dumped,
    every: Option<anyhow::Result<Every>>,
    map: Cow<'_, ProcMap>,
    known: sockopt::Known<'_>,
) -> Snapshot {
    let mut snapshot = Snapshot {
        host: read_line(&opts.proc_root.join("sys/kernel/hostname")),
        kernel: read_line(&opts.proc_root.join("sys/kernel/osrelease")),
        settings: match namespaces.namespaces.first() {
            Some(first) => first.settings,
            None => sysctl::read_settings(&opts.proc_root),
        },
        as_root: crate::proc::running_as_root(),
        ..header
    };
    snapshot.namespaces = namespaces.namespaces;
    snapshot.warnings.extend(namespaces.warnings);
    snapshot.warnings.extend(map.warnings.iter().cloned());
    for pid in opts.only_pids.iter().flatten() {
        if !opts.proc_root.join(pid.to_string()).exists() {
            snapshot
                .warnings
                .push(format!("no process with pid '{pid}'"));
        }
    }
    let mut reader = sockopt::Reader::new();
    let mut held_dead_processes = Vec::new();
    // `every`: the inode of every live socket of the namespaces listed, when held dead sockets are looked for.
    match every {
        Some(Ok(every)) => {
            snapshot.held_dead = held_dead::find(
                &opts.proc_root,
                &every.namespaces,
                &every.inodes,
                &map.owners,
                &mut reader,
            );
            held_dead_processes = snapshot
                .held_dead
                .iter()
                .filter_map(|g| map.processes.get(&g.pid).cloned())
                .collect();
        }
        Some(Err(e)) => snapshot
            .warnings
            .push(format!("held dead sockets not looked for: {e:#}")),
        None => {}
    }
    let sort = known.memory.is_none();
    join(&mut snapshot, connections, map, sort);
    if opts.map_processes {
        snapshot.units = netns::units(&opts.proc_root, snapshot.processes.keys().copied());
    }
    for p in held_dead_processes {
        snapshot.processes.entry(p.pid).or_insert(p);
    }
    if opts.map_processes {
        snapshot.lineage =
            crate::proc::lineage(&opts.proc_root, snapshot.processes.keys().copied());
    }
    sockopt::fill_from(&mut snapshot, opts.read_sockopts, known);
    analyze::analyze(&mut snapshot, &opts.thresholds);
    snapshot
}

/// The namespaces listed in full, and the inode of every socket in them: the dump's, or when a port filter cut
/// the dump, those of a second dump without it (the held-dead-socket search must know every live socket). A
/// namespace is searched only when both dumps listed it.
fn every_inode(
    opts: &Options,
    dumped: &netns::Dumped,
    connections: &[Connection],
) -> anyhow::Result<Every> {
    let listed = |d: &netns::Dumped| -> FxHashSet<u64> {
        d.namespaces
            .iter()
            .filter(|n| n.error.is_none())
            .map(|n| n.netns.inode)
            .collect()
    };
    if opts.request.ports.is_empty() {
        return Ok(Every {
            namespaces: listed(dumped),
            inodes: sorted_inodes(connections),
        });
    }
    let all = netns::dump_scope(
        &opts.netns,
        &opts.proc_root,
        Path::new(netns::RUN_NETNS),
        &opts.request.without_ports(),
        diag::dump,
    )?;
    let again = listed(&all);
    Ok(Every {
        namespaces: listed(dumped)
            .into_iter()
            .filter(|n| again.contains(n))
            .collect(),
        inodes: sorted_inodes(&all.connections),
    })
}

/// What the held-dead-socket search needs: the namespaces it covers and every live socket in them.
struct Every {
    namespaces: FxHashSet<u64>,
    /// Sorted, without duplicates: 4 bytes a socket (a hash set took ~18 at its load factor, at the moment the
    /// one-shot snapshot peaks), and merged against the /proc map's inode order.
    inodes: Vec<u32>,
}

fn sorted_inodes(connections: &[Connection]) -> Vec<u32> {
    let mut inodes: Vec<u32> = connections.iter().map(|c| c.inode).collect();
    inodes.sort_unstable();
    inodes.dedup();
    inodes
}

/// Attaches owners to connections and keeps the processes that hold at least one of them; with `sort`, orders
/// the connections by address so that output is stable from one run to the next. An owned map is taken apart
/// (owners moved, not copied); a borrowed one is left as it was.
pub fn join(
    snapshot: &mut Snapshot,
    mut connections: Vec<Connection>,
    map: Cow<'_, ProcMap>,
    sort: bool,
) {
    // A BTreeSet collected from a million owners gathered and sorted them all first (the peak of `--once --json`
    // rose 6 MiB there): a small set, and a run of one process's sockets checked against the last pid alone.
    let held_pids = |connections: &[Connection]| -> Vec<u32> {
        let mut pids = FxHashSet::default();
        let mut last = None;
        for owner in connections.iter().flat_map(|c| &c.owners) {
            if last != Some(owner.pid) {
                pids.insert(owner.pid);
                last = Some(owner.pid);
            }
        }
        pids.into_iter().collect()
    };
    match map {
        Cow::Owned(mut map) => {
            attach_owners(&mut connections, &map.owners);
            snapshot.processes = held_pids(&connections)
                .into_iter()
                .filter_map(|pid| map.processes.remove(&pid).map(|p| (pid, p)))
                .collect();
            snapshot.unreadable = map.unreadable;
        }
        Cow::Borrowed(map) => {
            attach_owners(&mut connections, &map.owners);
            snapshot.processes = held_pids(&connections)
                .into_iter()
                .filter_map(|pid| map.processes.get(&pid).map(|p| (pid, p.clone())))
                .collect();
            snapshot.unreadable.clone_from(&map.unreadable);
        }
    }
    if sort {
        sort_by_address(&mut connections);
    }
    // A no-op after `Collector::take`; other callers may hand over a vector grown by doubling.
    connections.shrink_to_fit();
    snapshot.connections = connections;
}

/// Gives each connection the owners of its inode (none for inode 0: TIME_WAIT and orphaned sockets).
fn attach_owners(connections: &mut [Connection], owners: &OwnerIndex) {
    owners.attach(connections, |c| c.inode, |c, found| c.owners = found);
}

/// Runs `f` and measures its wall time in microseconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed().as_micros() as u64)
}

/// Sorts sockets (or references to them) by family, addresses, ports and cookie, in place. The cookie makes every
/// key unique, so an unstable sort gives the one order. Sorting cached keys moves each socket once but needs an
/// 11 MB key table for 200,000 sockets, which set the peak RSS of a one-shot snapshot; this allocates nothing, and
/// the swaps of 296-byte sockets are its price. A long list is split at its median and the halves sorted side by side on two threads.
pub fn sort_by_address<C: Borrow<Connection> + Send>(connections: &mut [C]) {
    let key = |c: &C| {
        let c = c.borrow();
        (
            c.family,
            c.local_addr,
            c.local_port,
            c.peer_addr,
            c.peer_port,
            c.cookie,
        )
    };
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if !two_cores || connections.len() < PARALLEL_SORT_MIN {
        connections.sort_unstable_by_key(key);
        return;
    }
    let mid = connections.len() / 2;
    connections.select_nth_unstable_by_key(mid, key);
    let (low, high) = connections.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| low.sort_unstable_by_key(key));
        high.sort_unstable_by_key(key);
    });
}

/// Sockets from which the sort takes a second thread (below, it sorts in a few milliseconds on one).
const PARALLEL_SORT_MIN: usize = 20_000;

fn read_line(path: &Path) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::model::Family;

    fn conn(family: Family, local_port: u16, peer_port: u16, cookie: u64) -> Connection {
        let addr = match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        Connection {
            cookie,
            family,
            local_addr: addr,
            local_port,
            peer_addr: addr,
            peer_port,
            inode: cookie as u32,
            ..crate::testing::conn()
        }
    }

    #[test]
    fn sorting_by_address_agrees_with_a_plain_sort_for_every_arrangement() {
        // Every order of a few connections, and a longer scrambled list with equal ports told apart by cookie.
        let base = [
            conn(Family::Ipv6, 80, 1, 1),
            conn(Family::Ipv4, 443, 2, 2),
            conn(Family::Ipv4, 80, 9, 3),
            conn(Family::Ipv4, 80, 9, 4),
            conn(Family::Ipv4, 22, 5, 5),
        ];
        let mut lists: Vec<Vec<Connection>> = Vec::new();
        let n = base.len();
        let mut idx: Vec<usize> = (0..n).collect();
        // Heap's algorithm: all 120 permutations.
        let mut c = vec![0; n];
        lists.push(idx.iter().map(|&i| base[i].clone()).collect());
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    idx.swap(0, i);
                } else {
                    idx.swap(c[i], i);
                }
                lists.push(idx.iter().map(|&i| base[i].clone()).collect());
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(lists.len(), 120);
        lists.push(
            (0..500u64)
                .map(|k| conn(Family::Ipv4, (k * 7919 % 97) as u16, 1, k * 31 % 500))
                .collect(),
        );
        // Long enough to be split and sorted on two threads.
        let long = PARALLEL_SORT_MIN as u64 * 2 + 3;
        lists.push(
            (0..long)
                .map(|k| {
                    let family = if k % 3 == 0 {
                        Family::Ipv6
                    } else {
                        Family::Ipv4
                    };
                    conn(
                        family,
                        (k * 7919 % 997) as u16,
                        (k % 7) as u16,
                        k * 104_729 % long,
                    )
                })
                .collect(),
        );
        for mut list in lists {
            let mut expected = list.clone();
            expected.sort_by_key(|c| {
                (
                    c.family,
                    c.local_addr,
                    c.local_port,
                    c.peer_addr,
                    c.peer_port,
                    c.cookie,
                )
            });
            sort_by_address(&mut list);
            assert_eq!(list, expected);
        }
    }
}
