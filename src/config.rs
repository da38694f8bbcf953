//! The command line resolved once into what the modes need: the filter, collection options, table options and
//! colour, the pace and the thresholds.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jiff::tz::TimeZone;

use crate::analyze::Thresholds;
use crate::cli::{
    Args, ColorChoice, Command, GenerateArgs, KeepaliveArgs, KillArgs, RecordArgs, ReplayArgs,
    ServeArgs,
};
use crate::collect::Options;
use crate::diag::{DumpRequest, PortFilter};
use crate::filter::Filter;
use crate::model::{Family, TcpState};
use crate::moment::TimeSpec;
use crate::netns::Scope;
use crate::output::table::TableOptions;
use crate::pace::Pace;

/// What kwatch was asked to do: one mode each.
#[derive(Debug)]
pub enum Mode<'a> {
    Serve(&'a ServeArgs),
    Kill(&'a KillArgs),
    Keepalive(&'a KeepaliveArgs),
    Generate(&'a GenerateArgs),
    /// `kwatch record DIR`.
    Record(&'a RecordArgs),
    /// `kwatch replay DIR --once`: the refresh recorded at or before `at_ms`, as the table or (`json`) the
    /// document.
    ReplayOnce {
        dir: &'a Path,
        at_ms: u64,
        json: bool,
    },
    /// `kwatch replay DIR --events`: the events recorded from `from_ms` to `to_ms`, one line each (or NDJSON).
    ReplayEvents {
        dir: &'a Path,
        from_ms: u64,
        to_ms: u64,
        ndjson: bool,
    },
    /// `kwatch replay DIR`: the interactive view on the recording, from the refresh at or before `at_ms`; its
    /// times shown in `tz`.
    ReplayLive {
        dir: &'a Path,
        at_ms: u64,
        tz: TimeZone,
    },
    /// `--once`: one snapshot as a table, or JSON.
    Once {
        json: bool,
    },
    /// `--watch`: events, one line each (or NDJSON).
    Watch {
        ndjson: bool,
    },
    /// The interactive view.
    Live,
}

/// The flags every mode shares, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The connection filter the snapshot flags describe.
    pub filter: Filter,
    /// How often the live view and `--watch` refresh.
    pub pace: Pace,
    pub thresholds: Thresholds,
    /// Which network namespaces to inspect.
    pub netns: Scope,
    /// `--color`.
    pub color: ColorChoice,
    /// Where procfs is mounted.
    pub proc_root: PathBuf,
    /// Look up owning processes (not `--no-processes`).
    pub map_processes: bool,
    /// Read the owners' socket options (not `--no-sockopt`).
    pub read_sockopts: bool,
}

impl Config {
    pub fn new(args: &Args) -> Config {
        Config {
            filter: Filter {
                ports: args.port.clone(),
                sports: args.sport.clone(),
                dports: args.dport.clone(),
                pids: args.pid.clone(),
                states: args.state.clone(),
                stuck: args.stuck,
                family: match (args.ipv4, args.ipv6) {
                    (true, _) => Some(Family::Ipv4),
                    (_, true) => Some(Family::Ipv6),
                    _ => None,
                },
                ..Filter::default()
            },
            pace: Pace::from_flags(
                args.interval,
                args.cpu_budget.map(|percent| percent / 100.0),
            ),
            thresholds: Thresholds {
                close_wait_after_ms: args.close_wait_after.as_millis() as u64,
                idle_after_ms: args.idle_after.as_millis() as u64,
                retransmit_min: args.retransmit_min,
            },
            netns: match (&args.netns, args.all_netns) {
                (_, true) => Scope::All,
                (Some(spec), false) => Scope::One(spec.clone()),
                (None, false) => Scope::Current,
            },
            color: args.color,
            proc_root: args.proc_root.clone(),
            map_processes: !args.no_processes,
            read_sockopts: !args.no_sockopt,
        }
    }

    /// What to ask the kernel and /proc for, for sockets `filter` may match: filters the kernel can apply
    /// (family, state, ports) go into the request.
    pub fn collect_options(&self, filter: &Filter) -> Options {
        Options {
            request: DumpRequest {
                families: match filter.family {
                    Some(f) => vec![f],
                    None => vec![Family::Ipv4, Family::Ipv6],
                },
                states: state_mask(&filter.states),
                ports: PortFilter::new(&filter.ports, &filter.sports, &filter.dports),
            },
            proc_root: self.proc_root.clone(),
            map_processes: self.map_processes,
            only_pids: (!filter.pids.is_empty()).then(|| filter.pids.clone()),
            thresholds: self.thresholds,
            read_sockopts: self.read_sockopts,
            netns: self.netns.clone(),
        }
    }

    /// How a table goes to stdout: as wide as the terminal, coloured as `--color` says (auto: on a terminal
    /// without NO_COLOR).
    pub fn table_options(&self) -> TableOptions {
        let is_tty = io::stdout().is_terminal();
        TableOptions {
            width: if is_tty {
                crossterm::terminal::size().ok().map(|(w, _)| w as usize)
            } else {
                None
            },
            color: match self.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => is_tty && color_from_env(),
            },
        }
    }

    /// Whether the live view uses colours: unless `--color never` or NO_COLOR.
    pub fn live_color(&self) -> bool {
        color_from_env() && self.color != ColorChoice::Never
    }
}

/// The mode the command line asks for; the moments `replay` names are resolved against the wall clock in the
/// local time zone.
pub fn mode(args: &Args) -> anyhow::Result<Mode<'_>> {
    mode_at(args, unix_ms(), TimeZone::system())
}

/// [`mode`] at the wall-clock time `now_ms` in the time zone `tz`.
pub fn mode_at(args: &Args, now_ms: u64, tz: TimeZone) -> anyhow::Result<Mode<'_>> {
    Ok(match &args.command {
        Some(Command::Serve(serve)) => Mode::Serve(serve),
        Some(Command::Kill(kill)) => Mode::Kill(kill),
        Some(Command::Keepalive(ka)) => Mode::Keepalive(ka),
        Some(Command::Generate(g)) => Mode::Generate(g),
        Some(Command::Record(rec)) => Mode::Record(rec),
        Some(Command::Replay(rep)) => replay_mode(rep, now_ms, tz)?,
        None if args.once => Mode::Once { json: args.json },
        None if args.watch => Mode::Watch {
            ndjson: args.ndjson,
        },
        None => Mode::Live,
    })
}

/// `kwatch replay`: `--at` (default now), or the window `--from` (default: the start of the recording) to `--to`
/// (default now).
fn replay_mode(rep: &ReplayArgs, now_ms: u64, tz: TimeZone) -> anyhow::Result<Mode<'_>> {
    let resolve = |spec: &Option<TimeSpec>, default: u64| -> anyhow::Result<u64> {
        match spec {
            Some(spec) => spec
                .resolve(now_ms, &tz)
                .map_err(anyhow::Error::msg)
                .context("invalid time"),
            None => Ok(default),
        }
    };
    let dir = rep.dir.as_path();
    if rep.events {
        let (from_ms, to_ms) = (resolve(&rep.from, 0)?, resolve(&rep.to, now_ms)?);
        if from_ms > to_ms {
            anyhow::bail!("invalid window: --from is after --to");
        }
        return Ok(Mode::ReplayEvents {
            dir,
            from_ms,
            to_ms,
            ndjson: rep.ndjson,
        });
    }
    let at_ms = resolve(&rep.at, now_ms)?;
    Ok(if rep.once {
        Mode::ReplayOnce {
            dir,
            at_ms,
            json: rep.json,
        }
    } else {
        Mode::ReplayLive { dir, at_ms, tz }
    })
}

/// The wall clock, milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// False when `NO_COLOR` is set and non-empty (<https://no-color.org>).
pub fn color_from_env() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The kernel's state bit mask for the requested states (all when none are named).
pub fn state_mask(states: &[TcpState]) -> u32 {
    if states.is_empty() {
        return u32::MAX;
    }
    states.iter().fold(0, |mask, s| {
        // The kernel lists embryonic connections as NEW_SYN_RECV request sockets.
        let extra = if *s == TcpState::SynRecv {
            1 << TcpState::NewSynRecv as u32
        } else {
            0
        };
        mask | 1 << *s as u32 | extra
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kwatch").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert!(!a.once && !a.json);
        assert_eq!(a.interval, None);
        assert_eq!(
            Config::new(&a).pace,
            crate::pace::Pace::budgeted(Duration::from_secs(1), 0.25)
        );
        assert_eq!(Config::new(&a).filter, Filter::default());
        assert_eq!(Config::new(&a).thresholds.close_wait_after_ms, 30_000);
    }

    #[test]
    fn filters_resolve() {
        let a = parse(&[
            "--once",
            "-p",
            "443,80",
            "--state",
            "close-wait",
            "-s",
            "established",
            "--pid",
            "12",
            "--stuck",
            "-6",
        ])
        .unwrap();
        let f = Config::new(&a).filter;
        assert_eq!(f.ports, vec![443, 80]);
        assert_eq!(f.states, vec![TcpState::CloseWait, TcpState::Established]);
        assert_eq!(f.pids, vec![12]);
        assert!(f.stuck);
        assert_eq!(f.family, Some(Family::Ipv6));
    }

    #[test]
    fn snapshot_flags_also_follow_a_subcommand() {
        let a = parse(&[
            "kill",
            "--netns",
            "web",
            "--dry-run",
            "--pid",
            "7",
            "state:close-wait",
        ])
        .unwrap();
        assert_eq!(Config::new(&a).netns, Scope::One("web".into()));
        assert_eq!(Config::new(&a).filter.pids, vec![7]);
        assert!(matches!(a.command, Some(Command::Kill(_))));
        let a = parse(&["serve", "--all-netns", "--idle-after", "1m"]).unwrap();
        assert_eq!(Config::new(&a).netns, Scope::All);
        assert_eq!(Config::new(&a).thresholds.idle_after_ms, 60_000);
    }

    #[test]
    fn record_and_replay_take_their_flags_and_the_snapshot_flags() {
        let a = parse(&["record", "/var/lib/kwatch", "--all-netns", "--stuck"]).unwrap();
        let Some(Command::Record(r)) = &a.command else {
            panic!("{a:?}")
        };
        assert_eq!(r.max_size, 1 << 30);
        assert_eq!(r.retain, Duration::from_secs(7 * 86_400));
        assert_eq!(r.interval, None);
        assert!(Config::new(&a).filter.stuck && Config::new(&a).netns == Scope::All);
        let a = parse(&[
            "record",
            "d",
            "-i",
            "10s",
            "--max-size",
            "500MiB",
            "--retain",
            "2h",
        ])
        .unwrap();
        let Some(Command::Record(r)) = &a.command else {
            panic!("{a:?}")
        };
        assert_eq!(
            (r.interval, r.max_size),
            (Some(Duration::from_secs(10)), 500 << 20)
        );
        assert!(matches!(
            mode_at(&a, 0, TimeZone::UTC).unwrap(),
            Mode::Record(_)
        ));
    }

    #[test]
    fn replay_moments_resolve_against_the_clock() {
        // 2026-12-05 04:00:00 UTC.
        let now = 1_796_443_200_000;
        let mode = |args: &[&str]| {
            let a = parse(args).unwrap();
            let m = format!(
                "{:?}",
                mode_at(&a, now, TimeZone::UTC).map_err(|e| format!("{e:#}"))
            );
            (m, Config::new(&a).filter)
        };
        let (m, filter) = mode(&[
            "replay", "d", "--once", "--json", "--at", "-2h", "--port", "443",
        ]);
        assert!(
            m.contains("ReplayOnce") && m.contains(&format!("at_ms: {}", now - 7_200_000)),
            "{m}"
        );
        assert!(m.contains("json: true"), "{m}");
        assert_eq!(filter.ports, vec![443]);
        let (m, _) = mode(&["replay", "d", "--events", "--from", "-2h", "--to", "-90s"]);
        assert!(
            m.contains(&format!("from_ms: {}", now - 7_200_000))
                && m.contains(&format!("to_ms: {}", now - 90_000))
                && m.contains("ndjson: false"),
            "{m}"
        );
        let (m, _) = mode(&["replay", "d", "--events"]);
        assert!(
            m.contains("from_ms: 0") && m.contains(&format!("to_ms: {now}")),
            "{m}"
        );
        let (m, _) = mode(&["replay", "d", "--at", "03:12"]);
        assert!(
            m.contains("ReplayLive") && m.contains(&format!("at_ms: {}", now - 48 * 60_000)),
            "{m}"
        );
        let (m, _) = mode(&["replay", "d", "--events", "--from", "-1m", "--to", "-2h"]);
        assert!(m.contains("invalid window: --from is after --to"), "{m}");
    }

    #[test]
    fn interval_and_cpu_budget_make_the_pace() {
        use crate::pace::Pace;
        let ms = Duration::from_millis;
        let pace = |args: &[&str]| Config::new(&parse(args).unwrap()).pace;
        assert_eq!(pace(&["--interval", "2s"]), Pace::fixed(ms(2000)));
        assert_eq!(pace(&["--cpu-budget", "5"]), Pace::budgeted(ms(1000), 0.05));
        assert_eq!(
            pace(&["--cpu-budget", "10%"]),
            Pace::budgeted(ms(1000), 0.1)
        );
        assert_eq!(
            pace(&["-i", "500ms", "--cpu-budget", "50"]),
            Pace::budgeted(ms(500), 0.5)
        );
    }

    #[test]
    fn netns_flags_resolve_to_a_scope() {
        assert_eq!(Config::new(&parse(&[]).unwrap()).netns, Scope::Current);
        assert_eq!(
            Config::new(&parse(&["--netns", "web"]).unwrap()).netns,
            Scope::One("web".into())
        );
        assert_eq!(
            Config::new(&parse(&["--netns", "/proc/1/ns/net"]).unwrap()).netns,
            Scope::One("/proc/1/ns/net".into())
        );
        assert_eq!(
            Config::new(&parse(&["--all-netns"]).unwrap()).netns,
            Scope::All
        );
    }

    #[test]
    fn state_mask_names_the_kernel_bits() {
        assert_eq!(state_mask(&[]), u32::MAX);
        assert_eq!(state_mask(&[TcpState::Established]), 1 << 1);
        assert_eq!(
            state_mask(&[TcpState::CloseWait, TcpState::Listen]),
            1 << 8 | 1 << 10
        );
        assert_eq!(state_mask(&[TcpState::SynRecv]), 1 << 3 | 1 << 12);
    }
}
