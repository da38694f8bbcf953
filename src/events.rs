//! Watch mode: how connections change and die. Destroy notifications (sock_diag multicast, what `ss -E` reads)
//! joined with what earlier snapshots saw of each socket, as events streamed one per line.
//!
//! The kernel announces a socket's destruction when it is freed: at once for a socket its program already
//! closed, but only at `close()` for one whose fd a program still holds after the kernel ended the connection.
//! That earlier moment shows as a state event to `close` (the socket left the dump). Only sockets kwatch had seen
//! in a snapshot are reported; their owners, last state and keepalive settings come from that snapshot, the
//! final probe and retransmit counts from the destroy message's tcp_info.

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};
use serde::Serialize;

use crate::collect::{self, Options};
use crate::diag::{DiagError, parse};
use crate::escape::escape;
use crate::filter::Filter;
use crate::keepalive::{self, DeathCause};
use crate::model::{Connection, Family, Owner, Snapshot, TcpState};
use crate::output::json::StateName;
use crate::pace::{Pace, process_cpu};

/// sock_diag multicast groups (`enum sknetlink_groups`): TCP over IPv4 and over IPv6.
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
/// Sockets that left the dump are remembered this many at most, waiting for their destroy notification.
const GONE_MAX: usize = 65_536;

/// One line of `kwatch --watch --ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Watching started: the first snapshot was taken.
    Start {
        time_unix_ms: u64,
        /// Sockets watched (after filters).
        sockets: u64,
        /// Whether destroy notifications are received (false: the subscription failed; see the warning).
        destroy_events: bool,
    },
    /// A watched socket changed state; `to` is `close` when a socket a program held left the dump without being
    /// destroyed (the kernel ended it while the program still holds its fd).
    State {
        time_unix_ms: u64,
        #[serde(flatten)]
        socket: SocketId,
        owners: Vec<Owner>,
        comm: Option<String>,
        from: StateName,
        to: StateName,
    },
    /// A socket kwatch had seen was destroyed (freed) by the kernel.
    Destroy {
        time_unix_ms: u64,
        #[serde(flatten)]
        socket: SocketId,
        /// Owners when kwatch last saw the socket.
        owners: Vec<Owner>,
        comm: Option<String>,
        /// The state kwatch last saw in a dump.
        last_state: StateName,
        /// Unanswered keepalive or window probes in the final tcp_info.
        probes: Option<u8>,
        /// Consecutive retransmits in the final tcp_info.
        retransmits: Option<u8>,
        cause: DeathCause,
    },
    /// Something went wrong but watching goes on (e.g. destroy notifications were lost).
    Warning { time_unix_ms: u64, message: String },
}

/// Which socket an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketId {
    pub cookie: u64,
    pub family: Family,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub peer_addr: IpAddr,
    pub peer_port: u16,
}

impl SocketId {
    fn of(c: &Connection) -> SocketId {
        SocketId {
            cookie: c.cookie,
            family: c.family,
            local_addr: c.local_addr,
            local_port: c.local_port,
            peer_addr: c.peer_addr,
            peer_port: c.peer_port,
        }
    }
}

/// What kwatch last saw of a socket: only what events need, so that a step over 100k sockets that did not
/// change allocates nothing.
#[derive(Debug, Clone)]
struct Seen {
    id: SocketId,
    state: TcpState,
    inode: u64,
    owners: crate::model::Owners,
    keepalive: Option<crate::keepalive::KeepaliveSettings>,
    /// Shared by every socket of the process (one allocation per process, not per socket).
    comm: Option<Arc<str>>,
    /// The step that last saw it in the dump.
    step: u64,
}

/// The comm of `pid` in `snapshot`, one shared copy per process for the whole step.
fn comm_of<'a>(
    comms: &'a mut FxHashMap<u32, Arc<str>>,
    snapshot: &Snapshot,
    pid: u32,
) -> &'a Arc<str> {
    comms
        .entry(pid)
        .or_insert_with(|| Arc::from(snapshot.comm(pid)))
}

/// Pure bookkeeping of watched sockets across snapshots: turns snapshots and destroy notifications into events.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Keyed by cookie: kernel-assigned, so a fast hash without flooding protection is safe.
    live: FxHashMap<u64, Seen>,
    /// Left the dump but not destroyed yet (held by a program, or the notification is still to come).
    gone: FxHashMap<u64, Seen>,
    started: bool,
    steps: u64,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Takes one step: `destroyed` are the notifications received since the last step, `snapshot` the dump
    /// taken after them. Emits deaths of sockets seen before, then state changes of watched sockets.
    pub fn step(
        &mut self,
        snapshot: &Snapshot,
        filter: &Filter,
        destroyed: &[Connection],
        now_unix_ms: u64,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        // A TIME-WAIT entry inherits the cookie of the connection that closed normally.
        let time_wait: HashSet<u64> = if destroyed.is_empty() {
            HashSet::new()
        } else {
            snapshot
                .connections
                .iter()
                .filter(|c| c.state == TcpState::TimeWait)
                .map(|c| c.cookie)
                .collect()
        };
        for d in destroyed {
            let Some(seen) = self
                .live
                .remove(&d.cookie)
                .or_else(|| self.gone.remove(&d.cookie))
            else {
                continue;
            };
            let twin = time_wait.contains(&d.cookie);
            let info = d.tcp_info.as_ref();
            let cause =
                keepalive::infer_cause(info, seen.keepalive.as_ref(), Some(seen.state), twin);
            events.push(Event::Destroy {
                time_unix_ms: now_unix_ms,
                socket: seen.id,
                owners: seen.owners.to_vec(),
                comm: seen.comm.as_deref().map(str::to_string),
                last_state: StateName(seen.state),
                probes: info.and_then(|i| i.probes()),
                retransmits: info.and_then(|i| i.retransmits()),
                cause,
            });
        }
        self.steps += 1;
        let step = self.steps;
        let started = self.started;
        let mut listed = 0;
        let mut comms: FxHashMap<u32, Arc<str>> = FxHashMap::default();
        self.live
            .reserve(snapshot.connections.len().saturating_sub(self.live.len()));
        for c in snapshot
            .connections
            .iter()
            .filter(|c| filter.matches_in(c, snapshot))
        {
            listed += 1;
            let comm = c
                .owners
                .first()
                .map(|o| comm_of(&mut comms, snapshot, o.pid));
            match self.live.get_mut(&c.cookie) {
                Some(seen) => {
                    if seen.state != c.state {
                        if started {
                            events.push(Event::State {
                                time_unix_ms: now_unix_ms,
                                socket: seen.id.clone(),
                                owners: seen.owners.to_vec(),
                                comm: seen.comm.as_deref().map(str::to_string),
                                from: StateName(seen.state),
                                to: StateName(c.state),
                            });
                        }
                        seen.state = c.state;
                    }
                    if seen.owners != c.owners {
                        seen.owners.clone_from(&c.owners);
                    }
                    // An earlier owner stays known when a later dump could not map it (the process exited).
                    if let Some(comm) = comm
                        && seen.comm.as_deref() != Some(&**comm)
                    {
                        seen.comm = Some(Arc::clone(comm));
                    }
                    seen.inode = c.inode;
                    seen.keepalive = c.keepalive;
                    seen.step = step;
                }
                None => {
                    self.live.insert(
                        c.cookie,
                        Seen {
                            id: SocketId::of(c),
                            state: c.state,
                            inode: c.inode,
                            owners: c.owners.clone(),
                            keepalive: c.keepalive,
                            comm: comm.cloned(),
                            step,
                        },
                    );
                }
            }
        }
        // Sockets that left the dump wait for their destroy notification. When every socket known is listed
        // (cookies are unique), none left: no pass over all of them.
        let left: Vec<u64> = if self.live.len() == listed {
            Vec::new()
        } else {
            self.live
                .iter()
                .filter(|(_, s)| s.step != step)
                .map(|(k, _)| *k)
                .collect()
        };
        for cookie in left {
            let Some(seen) = self.live.remove(&cookie) else {
                continue;
            };
            // No fd holds a TIME-WAIT entry or an orphan: leaving the dump is their normal end.
            if started && seen.inode != 0 {
                events.push(Event::State {
                    time_unix_ms: now_unix_ms,
                    socket: seen.id.clone(),
                    owners: seen.owners.to_vec(),
                    comm: seen.comm.as_deref().map(str::to_string),
                    from: StateName(seen.state),
                    to: StateName(TcpState::Close),
                });
            }
            if self.gone.len() >= GONE_MAX {
                self.gone.clear();
            }
            self.gone.insert(cookie, seen);
        }
        events.sort_by_key(|e| match e {
            Event::Destroy { socket, .. } => (0, socket.cookie),
            Event::State { socket, .. } => (1, socket.cookie),
            _ => (2, 0),
        });
        self.started = true;
        events
    }

    /// Sockets currently watched.
    pub fn watched(&self) -> usize {
        self.live.len()
    }
}

/// A subscription to TCP destroy notifications of the current network namespace (works unprivileged).
pub struct Subscriber {
    socket: Socket,
    buf: Vec<u8>,
}

impl Subscriber {
    pub fn open() -> Result<Subscriber, DiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Open)?;
        let groups = 1 << (SKNLGRP_INET_TCP_DESTROY - 1) | 1 << (SKNLGRP_INET6_TCP_DESTROY - 1);
        socket
            .bind(&SocketAddr::new(0, groups))
            .map_err(DiagError::Open)?;
        socket.set_non_blocking(true).map_err(DiagError::Open)?;
        Ok(Subscriber {
            socket,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Every notification received so far, without waiting. `Err` with ENOBUFS means some were lost (the
    /// receive buffer overflowed); what was read before is kept in `out`.
    pub fn drain(&mut self, out: &mut Vec<Connection>) -> Result<(), DiagError> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(0) => return Ok(()),
                // Notifications carry sequence number 0.
                Ok(_) => {
                    parse::parse_buffer(&self.buf, 0, out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DiagError::Recv(e)),
            }
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One event as a line for people: `04:55:01 destroy 192.0.2.1:40000 > 192.0.2.2:9100 1234/app ...`.
pub fn human_line(e: &Event) -> String {
    let clock = |ms: u64| {
        let s = ms / 1000 % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    };
    let sock = |s: &SocketId| {
        let ep = |a: IpAddr, p: u16| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        format!(
            "{} > {}",
            ep(s.local_addr, s.local_port),
            ep(s.peer_addr, s.peer_port)
        )
    };
    let who = |owners: &[Owner], comm: &Option<String>| match (owners.first(), comm) {
        (Some(o), Some(c)) => format!(" {}/{}", o.pid, escape(c)),
        (Some(o), None) => format!(" {}", o.pid),
        _ => String::new(),
    };
    match e {
        Event::Start {
            time_unix_ms,
            sockets,
            destroy_events,
        } => format!(
            "{} watching {sockets} sockets{}",
            clock(*time_unix_ms),
            if *destroy_events {
                ""
            } else {
                " (no destroy events)"
            }
        ),
        Event::State {
            time_unix_ms,
            socket,
            owners,
            comm,
            from,
            to,
        } => format!(
            "{} state {}{} {} -> {}",
            clock(*time_unix_ms),
            sock(socket),
            who(owners, comm),
            from.0.name(),
            to.0.name()
        ),
        Event::Destroy {
            time_unix_ms,
            socket,
            owners,
            comm,
            last_state,
            probes,
            retransmits,
            cause,
        } => format!(
            "{} destroy {}{} {} (last {}, {} probes, {} retransmits)",
            clock(*time_unix_ms),
            sock(socket),
            who(owners, comm),
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            last_state.0.name(),
            probes.unwrap_or(0),
            retransmits.unwrap_or(0)
        ),
        Event::Warning {
            time_unix_ms,
            message,
        } => format!("{} warning: {}", clock(*time_unix_ms), escape(message)),
    }
}

/// Watches until the output closes or the process is stopped: a snapshot as often as `pace` says, events written
/// one per line (JSON with `ndjson`) and flushed at once.
pub fn watch(
    opts: &Options,
    filter: &Filter,
    mut pace: Pace,
    ndjson: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut subscriber = Subscriber::open();
    let mut collector = collect::Collector::new(opts.clone());
    let mut tracker = Tracker::new();
    let mut destroyed = Vec::new();
    let emit = |out: &mut dyn Write, e: &Event| -> io::Result<()> {
        if ndjson {
            serde_json::to_writer(&mut *out, e)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", human_line(e))?;
        }
        out.flush()
    };
    if let Err(e) = &subscriber {
        emit(
            out,
            &Event::Warning {
                time_unix_ms: unix_ms(),
                message: format!("no destroy notifications: {e}"),
            },
        )?;
    }
    let mut announced = false;
    loop {
        let (started, cpu) = (Instant::now(), process_cpu());
        destroyed.clear();
        let mut lost = None;
        if let Ok(sub) = subscriber.as_mut() {
            if let Err(e) = sub.drain(&mut destroyed) {
                lost = Some(e.to_string());
            }
        }
        let snapshot = collector.collect().context("cannot take a snapshot")?;
        let now = unix_ms();
        let events = tracker.step(&snapshot, filter, &destroyed, now);
        if let Some(message) = lost {
            emit(
                out,
                &Event::Warning {
                    time_unix_ms: now,
                    message: format!("destroy notifications may have been lost: {message}"),
                },
            )?;
        }
        if !announced {
            announced = true;
            emit(
                out,
                &Event::Start {
                    time_unix_ms: now,
                    sockets: tracker.watched() as u64,
                    destroy_events: subscriber.is_ok(),
                },
            )?;
        }
        for e in &events {
            emit(out, e)?;
        }
        pace.record(process_cpu().saturating_sub(cpu));
        std::thread::sleep(pace.period().saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::keepalive::{KeepaliveSettings, Source};
    use crate::model::{Process, TcpInfo, TcpInfoFields, Timer, TimerKind};

    fn conn(cookie: u64, state: TcpState) -> Connection {
        Connection {
            cookie,
            family: Family::Ipv4,
            state,
            local_addr: "192.0.2.1".parse().unwrap(),
            local_port: 40000 + cookie as u16,
            peer_addr: "192.0.2.2".parse().unwrap(),
            peer_port: 9100,
            interface: 0,
            inode: 1000 + cookie,
            uid: 0,
            recv_q: 0,
            send_q: 0,
            timer: Timer {
                kind: TimerKind::Keepalive,
                expires_ms: 1000,
                count: 0,
            },
            shutdown: None,
            congestion: None,
            tcp_info: None,
            owners: Owner { pid: 7, fd: 3 }.into(),
            findings: Default::default(),
            keepalive: Some(KeepaliveSettings {
                enabled: Some(true),
                idle_s: Some(3),
                intvl_s: Some(2),
                cnt: Some(3),
                user_timeout_ms: Some(0),
                source: Source::Socket,
            }),
            netns: None,
        }
    }

    fn snap(conns: Vec<Connection>) -> Snapshot {
        Snapshot {
            connections: conns,
            processes: BTreeMap::from([(
                7,
                Process {
                    pid: 7,
                    comm: "app".to_string(),
                    cmdline: vec![],
                    uid: Some(0),
                    user: None,
                },
            )]),
            ..Snapshot::default()
        }
    }

    /// What the kernel says when it frees a socket: state CLOSE, final counters, no owner.
    fn destroyed(cookie: u64, probes: u8, retransmits: u8) -> Connection {
        let mut c = conn(cookie, TcpState::Close);
        c.owners.clear();
        c.keepalive = None;
        c.tcp_info = Some(TcpInfo::from(TcpInfoFields {
            probes: Some(probes),
            retransmits: Some(retransmits),
            ..TcpInfoFields::default()
        }));
        c
    }

    #[test]
    fn a_keepalive_death_under_a_held_fd_shows_as_close_then_destroy_with_the_cause() {
        let f = Filter::default();
        let mut t = Tracker::new();
        assert!(
            t.step(&snap(vec![conn(1, TcpState::Established)]), &f, &[], 10)
                .is_empty()
        );
        assert!(
            t.step(&snap(vec![conn(1, TcpState::Established)]), &f, &[], 20)
                .is_empty()
        );
        // The kernel ended it; the program still holds the fd: gone from the dump, no notification yet.
        let ev = t.step(&snap(vec![]), &f, &[], 30);
        assert_eq!(ev.len(), 1);
        let Event::State {
            from,
            to,
            owners,
            comm,
            ..
        } = &ev[0]
        else {
            panic!("{ev:?}")
        };
        assert_eq!((from.0, to.0), (TcpState::Established, TcpState::Close));
        assert_eq!((owners[0].pid, comm.as_deref()), (7, Some("app")));
        assert!(t.step(&snap(vec![]), &f, &[], 40).is_empty());
        // close(): the kernel frees it and says so.
        let ev = t.step(&snap(vec![]), &f, &[destroyed(1, 3, 0)], 50);
        assert_eq!(
            ev,
            vec![Event::Destroy {
                time_unix_ms: 50,
                socket: SocketId::of(&conn(1, TcpState::Established)),
                owners: vec![Owner { pid: 7, fd: 3 }],
                comm: Some("app".to_string()),
                last_state: StateName(TcpState::Established),
                probes: Some(3),
                retransmits: Some(0),
                cause: DeathCause::KeepaliveExhausted,
            }]
        );
        // Told once.
        assert!(
            t.step(&snap(vec![]), &f, &[destroyed(1, 3, 0)], 60)
                .is_empty()
        );
    }

    #[test]
    fn unseen_sockets_are_not_reported_and_time_wait_twins_mean_a_normal_close() {
        let f = Filter::default();
        let mut t = Tracker::new();
        t.step(
            &snap(vec![
                conn(1, TcpState::Established),
                conn(2, TcpState::Established),
            ]),
            &f,
            &[],
            0,
        );
        let mut tw = conn(1, TcpState::TimeWait);
        tw.owners.clear();
        let ev = t.step(
            &snap(vec![tw, conn(2, TcpState::Established)]),
            &f,
            &[destroyed(1, 0, 0), destroyed(99, 0, 0)],
            5,
        );
        let kinds: Vec<(&str, u64)> = ev
            .iter()
            .map(|e| match e {
                Event::Destroy { socket, cause, .. } => {
                    assert_eq!(*cause, DeathCause::Closed);
                    ("destroy", socket.cookie)
                }
                Event::State {
                    socket, from, to, ..
                } => {
                    assert_eq!((from.0, to.0), (TcpState::Established, TcpState::TimeWait));
                    ("state", socket.cookie)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        // The destroy took the entry away; the TIME-WAIT entry is new to the tracker.
        assert_eq!(kinds, vec![("destroy", 1)]);
    }

    #[test]
    fn filters_limit_what_is_watched_and_events_serialize_as_documented() {
        let f = Filter {
            dports: vec![9100],
            ..Filter::default()
        };
        let mut other = conn(2, TcpState::Established);
        other.peer_port = 22;
        let mut t = Tracker::new();
        t.step(
            &snap(vec![conn(1, TcpState::Established), other.clone()]),
            &f,
            &[],
            0,
        );
        assert_eq!(t.watched(), 1);
        let ev = t.step(
            &snap(vec![conn(1, TcpState::CloseWait)]),
            &f,
            &[destroyed(2, 0, 0)],
            1,
        );
        assert_eq!(ev.len(), 1, "{ev:?}");
        let v = serde_json::to_value(&ev[0]).unwrap();
        assert_eq!(v["event"], "state");
        assert_eq!(v["from"], "established");
        assert_eq!(v["to"], "close-wait");
        assert_eq!(v["cookie"], 1);
        assert_eq!(v["local_addr"], "192.0.2.1");
        assert_eq!(v["owners"][0]["pid"], 7);
        let line = human_line(&ev[0]);
        assert!(
            line.contains("192.0.2.1:40001 > 192.0.2.2:9100 7/app established -> close-wait"),
            "{line}"
        );
        let d = serde_json::to_value(Event::Destroy {
            time_unix_ms: 1,
            socket: SocketId::of(&conn(1, TcpState::Established)),
            owners: Default::default(),
            comm: None,
            last_state: StateName(TcpState::FinWait1),
            probes: None,
            retransmits: Some(15),
            cause: DeathCause::RetransmitTimeout,
        })
        .unwrap();
        assert_eq!(d["event"], "destroy");
        assert_eq!(d["last_state"], "fin-wait-1");
        assert_eq!(d["cause"], "retransmit_timeout");
        assert!(d["probes"].is_null());
    }

    #[test]
    fn time_wait_entries_and_orphans_end_quietly() {
        let f = Filter::default();
        let mut t = Tracker::new();
        let mut tw = conn(3, TcpState::TimeWait);
        tw.inode = 0;
        tw.owners.clear();
        t.step(&snap(vec![tw]), &f, &[], 0);
        assert!(t.step(&snap(vec![]), &f, &[], 1).is_empty());
    }
}
