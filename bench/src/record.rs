//! The flight recorder's size and cost on a synthetic host (issue 17's targets): N steady connections plus 100
//! opened and 100 closed a minute, recorded every 10 s through kwatch's own encoder and store into a temporary
//! directory; bytes on disk per day and encoding CPU per refresh. Synthetic, not measured on a live host: the
//! snapshots are built here, with the kernel's clock running a little apart from the wall clock as it does.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kwatch::model::keepalive::{KeepaliveSettings, Source};
use kwatch::model::{
    Congestion, Connection, Family, NamespaceInfo, NetnsRef, Owner, Process, Snapshot, TcpInfo, TcpInfoFields,
    TcpState, Timer, TimerKind,
};
use kwatch::recording::frame::Encoder;
use kwatch::recording::store::{Kind, Retention, Writer};

use crate::measure::self_cpu;

/// What recording a synthetic day cost.
#[derive(Debug, Clone)]
pub struct Size {
    pub connections: usize,
    pub hours: u64,
    pub refreshes: u64,
    /// Bytes on disk after `hours`.
    pub bytes: u64,
    /// A day projected from the key frame and the mean delta by the store's rules ([`crate::recorder::day`]):
    /// measured when `hours` is 24 or more.
    pub bytes_per_day: u64,
    /// How long a shard spans with key frames of this size.
    pub span_ms: u64,
    /// Encoding, compressing and writing one refresh, CPU, median.
    pub cpu_per_refresh: Duration,
    pub key_frame_bytes: u64,
    /// Replay of the last refresh of the first hour (the most deltas after a key frame): store opened, frames
    /// decoded, snapshot rebuilt.
    pub replay_wall: Duration,
    /// The replay view's first frame at that moment: the store checked up to it, the refresh rebuilt, the rows of
    /// the default view sorted (what `kwatch replay DIR --at T` does before it can draw).
    pub view_first_wall: Duration,
}

const INTERVAL_MS: u64 = 10_000;
/// Connections opened (and as many closed) per minute.
const CHURN_PER_MINUTE: u64 = 100;
/// A closed connection lingers this long in TIME-WAIT.
const TIME_WAIT_MS: u64 = 60_000;
/// Start of the synthetic day: 2026-12-05 00:00 UTC.
const T0: u64 = 1_796_428_800_000;

/// One synthetic connection: its absolute times on the kernel's clock.
#[derive(Clone)]
struct Synthetic {
    cookie: u64,
    opened_ms: u64,
    /// When it was closed (then TIME-WAIT until `closed_ms + TIME_WAIT_MS`).
    closed_ms: Option<u64>,
    keepalive: bool,
    /// Last data received: a keepalive connection is answered every 2 h, others idle since opened.
    last_recv_ms: u64,
}

/// Records `hours` of a host with `n` steady connections into a temporary store.
pub fn measure(n: usize, hours: u64) -> anyhow::Result<Size> {
    let dir = std::env::temp_dir().join(format!("kwatch-bench-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run(&dir, n, hours);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path, n: usize, hours: u64) -> anyhow::Result<Size> {
    let retention = Retention {
        max_age_ms: u64::MAX,
        max_bytes: u64::MAX,
    };
    let (mut writer, _) = Writer::open(dir, retention).context("cannot open the bench store")?;
    let mut encoder = Encoder::new();
    let mut conns: Vec<Synthetic> = (0..n as u64)
        .map(|k| Synthetic {
            cookie: 10_000 + k,
            // Opened during the day before, last heard from in the two hours before the start.
            opened_ms: T0 - 1 - k * 997 % 86_400_000,
            closed_ms: None,
            keepalive: k % 4 == 0,
            last_recv_ms: T0 - 3_600_000 - k * 537 % 7_200_000,
        })
        .collect();
    let mut next_cookie = 10_000 + n as u64;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let refreshes = hours * 3_600_000 / INTERVAL_MS;
    let mut cpus = Vec::with_capacity(refreshes as usize);
    let mut key_frame_bytes = 0;
    let (mut delta_bytes, mut deltas) = (0, 0);
    let churn = CHURN_PER_MINUTE * INTERVAL_MS / 60_000;
    for step in 0..refreshes {
        let wall = T0 + step * INTERVAL_MS;
        // The kernel's clock (4 ms jiffies) runs some milliseconds apart from the wall clock's reading.
        let kernel = (wall + rand() % 20) / 4 * 4;
        // Churn: the oldest open connections close, new ones open; TIME-WAIT entries expire.
        for c in conns
            .iter_mut()
            .filter(|c| c.closed_ms.is_none())
            .take(churn as usize)
        {
            c.closed_ms = Some(kernel);
        }
        conns.retain(|c| c.closed_ms.is_none_or(|t| kernel < t + TIME_WAIT_MS));
        for _ in 0..churn {
            conns.push(Synthetic {
                cookie: next_cookie,
                opened_ms: kernel,
                closed_ms: None,
                keepalive: next_cookie % 4 == 0,
                last_recv_ms: kernel,
            });
            next_cookie += 1;
        }
        // Keepalive probes answered every 2 h: the connection's last receive moves.
        for c in conns
            .iter_mut()
            .filter(|c| c.keepalive && c.closed_ms.is_none())
        {
            if kernel >= c.last_recv_ms + 7_200_000 {
                c.last_recv_ms = kernel;
            }
        }
        let snapshot = snapshot(wall, kernel, &conns);
        let cpu = self_cpu();
        let key = writer.begin(wall)?;
        let bytes = encoder.encode(
            std::sync::Arc::new(snapshot),
            &kwatch::events::Evidence::default(),
            key,
            0,
        );
        let kind = if key { Kind::Key } else { Kind::Delta };
        let before = writer.size();
        writer.append(kind, wall, &bytes)?;
        cpus.push(self_cpu() - cpu);
        if key {
            key_frame_bytes = writer.size() - before;
        } else {
            delta_bytes += writer.size() - before;
            deltas += 1;
        }
    }
    writer.sync()?;
    let bytes = writer.size();
    cpus.sort();
    let started = std::time::Instant::now();
    let last_of_hour = T0 + (3_600_000 / INTERVAL_MS - 1).min(refreshes - 1) * INTERVAL_MS;
    let frame = kwatch::recording::cursor::frame_at(dir, last_of_hour)?;
    let replay_wall = started.elapsed();
    anyhow::ensure!(
        frame.snapshot.taken_at_unix_ms == last_of_hour,
        "replay found the wrong refresh"
    );
    drop(frame);
    let started = std::time::Instant::now();
    kwatch::recording::cursor::check(dir, last_of_hour)?;
    let frame = kwatch::recording::cursor::frame_at(dir, last_of_hour)?;
    let spec = kwatch::tui::App::new(kwatch::filter::Filter::default(), false).view_spec();
    let prepared = kwatch::tui::prepare::prepare(&frame.snapshot, &spec);
    let view_first_wall = started.elapsed();
    anyhow::ensure!(
        prepared.rows.len() == frame.snapshot.connections.len(),
        "the view lost rows"
    );
    Ok(Size {
        connections: n,
        hours,
        refreshes,
        bytes,
        bytes_per_day: if hours >= 24 {
            bytes * 24 / hours
        } else {
            crate::recorder::day(key_frame_bytes, delta_bytes / deltas.max(1), INTERVAL_MS).bytes
        },
        span_ms: kwatch::recording::store::span_ms(key_frame_bytes),
        cpu_per_refresh: cpus.get(cpus.len() / 2).copied().unwrap_or_default(),
        key_frame_bytes,
        replay_wall,
        view_first_wall,
    })
}

/// The snapshot a dump at kernel time `kernel` would give, in the hash order a dump lists sockets in.
fn snapshot(wall: u64, kernel: u64, conns: &[Synthetic]) -> Snapshot {
    let netns = Arc::new(NetnsRef {
        inode: 4_026_531_840,
        name: None,
    });
    let cubic = Congestion::from("cubic");
    let mut connections: Vec<Connection> = conns
        .iter()
        .map(|s| connection(s, kernel, &netns, &cubic))
        .collect();
    connections.sort_by_key(|c| c.cookie.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let processes = (0..20u32)
        .map(|pid| {
            (
                1000 + pid,
                Process {
                    pid: 1000 + pid,
                    comm: format!("worker{pid}"),
                    cmdline: vec![format!("/usr/bin/worker{pid}"), "--serve".into()],
                    uid: Some(33),
                    user: Some("www-data".into()),
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    Snapshot {
        taken_at_unix_ms: wall,
        dump_us: 12_000 + kernel % 997,
        proc_scan_us: 30_000 + kernel % 1009,
        host: "bench".into(),
        kernel: "6.1.0".into(),
        connections,
        processes,
        namespaces: vec![NamespaceInfo {
            netns: (*netns).clone(),
            current: true,
            pid: None,
            settings: Default::default(),
            error: None,
        }],
        as_root: true,
        ..Snapshot::default()
    }
}

fn connection(s: &Synthetic, kernel: u64, netns: &Arc<NetnsRef>, cubic: &Congestion) -> Connection {
    let local_port = 443;
    let peer = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (s.cookie as u32 & 0xffff)));
    let ago = |t: u64| Some(kernel.saturating_sub(t) as u32);
    let (state, timer, tcp_info, owners, keepalive) = match s.closed_ms {
        Some(closed) => (
            TcpState::TimeWait,
            Timer {
                kind: TimerKind::TimeWait,
                expires_ms: (closed + TIME_WAIT_MS).saturating_sub(kernel) as u32,
                count: 0,
            },
            None,
            Default::default(),
            None,
        ),
        None => (
            TcpState::Established,
            if s.keepalive {
                Timer {
                    kind: TimerKind::Keepalive,
                    expires_ms: (s.last_recv_ms + 7_200_000).saturating_sub(kernel) as u32,
                    count: 0,
                }
            } else {
                Timer::NONE
            },
            Some(TcpInfo::from(TcpInfoFields {
                state: Some(1),
                ca_state: Some(0),
                retransmits: Some(0),
                probes: Some(0),
                backoff: Some(0),
                rto_us: Some(204_000),
                ato_us: Some(40_000),
                snd_mss: Some(1448),
                rcv_mss: Some(1448),
                unacked: Some(0),
                sacked: Some(0),
                lost: Some(0),
                retrans: Some(0),
                last_data_sent_ms: ago(s.opened_ms),
                last_ack_sent_ms: Some(0),
                last_data_recv_ms: ago(s.last_recv_ms),
                last_ack_recv_ms: ago(s.last_recv_ms),
                pmtu: Some(1500),
                rtt_us: Some(200 + (s.cookie % 97) as u32),
                rttvar_us: Some(50),
                snd_cwnd: Some(10),
                total_retrans: Some(0),
                bytes_acked: Some(1000 + s.cookie % 5000),
                bytes_received: Some(700 + s.cookie % 3000),
                notsent_bytes: Some(0),
                min_rtt_us: Some(150),
                bytes_sent: Some(1000 + s.cookie % 5000),
                bytes_retrans: Some(0),
                snd_wnd: Some(65_535),
            })),
            Owner {
                pid: 1000 + (s.cookie % 20) as u32,
                fd: 10 + (s.cookie / 20 % 5000) as u32,
            }
            .into(),
            Some(KeepaliveSettings {
                enabled: Some(s.keepalive),
                idle_s: Some(7200),
                intvl_s: Some(75),
                cnt: Some(9),
                user_timeout_ms: Some(0),
                source: Source::Socket,
            }
            .into()),
        ),
    };
    Connection {
        cookie: s.cookie,
        family: Family::Ipv4,
        state,
        local_addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
        local_port,
        peer_addr: peer,
        peer_port: 30_000 + (s.cookie % 30_000) as u16,
        interface: 0,
        inode: if s.closed_ms.is_some() {
            0
        } else {
            // Cookies here count sockets: far below 2^32.
            u32::try_from(500_000 + s.cookie).unwrap_or(u32::MAX)
        },
        uid: 33,
        recv_q: 0,
        send_q: 0,
        timer,
        shutdown: Some(0),
        congestion: Some(cubic.clone()),
        tcp_info,
        owners,
        findings: Default::default(),
        keepalive,
        netns: Some(Arc::clone(netns)),
    }
}

/// The markdown lines for the report.
pub fn table(s: &Size) -> String {
    format!(
        "| Flight recorder, synthetic ({} steady connections, {} opened and {} closed a minute, every 10 s, {} h \
         recorded) | value |\n|---|---:|\n\
         | refreshes recorded / bytes on disk | {} / {:.1} MB |\n\
         | bytes on disk per day (measured over 24 h or more, else projected by the store's rules; a shard spans {:.1} h) | {:.1} MB |\n\
         | key frame (every socket) | {:.0} kB |\n\
         | CPU per refresh: encode, compress, write (median) | {} |\n\
         | replay of the last refresh of an hour (open, decode from the key frame, rebuild) | {} |\n\
         | the replay view's first frame there (check, rebuild, rows of the default view) | {} |\n",
        s.connections,
        CHURN_PER_MINUTE,
        CHURN_PER_MINUTE,
        s.hours,
        s.refreshes,
        s.bytes as f64 / 1e6,
        s.span_ms as f64 / 3.6e6,
        s.bytes_per_day as f64 / 1e6,
        s.key_frame_bytes as f64 / 1e3,
        crate::report::fmt_duration(s.cpu_per_refresh),
        crate::report::fmt_duration(s.replay_wall),
        crate::report::fmt_duration(s.view_first_wall),
    )
}
