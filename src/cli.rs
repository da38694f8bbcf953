//! Command-line arguments: clap derive, validation only, no I/O; resolved into what `run` needs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::analyze::Thresholds;
use crate::duration::parse_duration;
use crate::filter::{Filter, parse_pid, parse_port, parse_state};
use crate::model::{Family, TcpState};
use crate::netns::Scope;
use crate::record::time::{TimeSpec, parse_time};

/// Shows every TCP socket with its timer, unanswered keepalive probes and owning processes, and flags the stuck
/// ones: lingering CLOSE_WAIT, dead peers, idle connections without keepalive, retransmission and zero-window stalls.
#[derive(Debug, Parser)]
#[command(name = "kwatch", version = env!("KWATCH_VERSION"), about, long_about = None)]
#[command(
    after_help = "Without --once, kwatch opens the interactive view (q quits, ? lists the keys).\n\
Examples:\n  kwatch --once --stuck\n  kwatch --once --json --state close-wait\n  kwatch --port 443 --pid 1234"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print one snapshot as a table and exit, instead of the interactive view.
    #[arg(long)]
    pub once: bool,

    /// With --once: print one JSON document (schema: docs/json-schema.md).
    #[arg(long, requires = "once")]
    pub json: bool,

    /// Stream events instead of one snapshot: state changes of the listed sockets and how connections die
    /// (kernel destroy notifications, with the cause), one line each, until interrupted.
    #[arg(long, conflicts_with = "once")]
    pub watch: bool,

    /// With --watch: one JSON object per line (schema: docs/json-schema.md).
    #[arg(long, requires = "watch")]
    pub ndjson: bool,

    /// Refresh interval of the interactive view and of --watch (e.g. 500ms, 2s; at least 100ms). Without it:
    /// every second, or less often where a refresh costs more than a quarter of a core (hundreds of thousands
    /// of sockets); given alone, it is kept whatever a refresh costs.
    #[arg(short = 'i', long, value_parser = parse_interval, value_name = "DURATION")]
    pub interval: Option<Duration>,

    /// Share of one core, in percent, that refreshes of the interactive view and of --watch may use: they come
    /// every interval or less often (default 25 without --interval, none with it).
    #[arg(long, value_parser = parse_cpu_budget, value_name = "PERCENT")]
    pub cpu_budget: Option<f64>,

    /// Only sockets with this local or peer port (repeatable, or comma-separated).
    #[arg(short = 'p', long, value_parser = parse_port, value_delimiter = ',', value_name = "PORT", global = true)]
    pub port: Vec<u16>,

    /// Only sockets with this local (source) port.
    #[arg(long, value_parser = parse_port, value_delimiter = ',', value_name = "PORT", global = true)]
    pub sport: Vec<u16>,

    /// Only sockets with this peer (destination) port.
    #[arg(long, value_parser = parse_port, value_delimiter = ',', value_name = "PORT", global = true)]
    pub dport: Vec<u16>,

    /// Only sockets held by this process (repeatable, or comma-separated).
    #[arg(long, value_parser = parse_pid, value_delimiter = ',', value_name = "PID", global = true)]
    pub pid: Vec<u32>,

    /// Only sockets in this state: established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, close,
    /// close-wait, last-ack, listen, closing (repeatable, or comma-separated).
    #[arg(short = 's', long, value_parser = parse_state, value_delimiter = ',', value_name = "STATE", global = true)]
    pub state: Vec<TcpState>,

    /// Only sockets with at least one finding.
    #[arg(long, global = true)]
    pub stuck: bool,

    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6", global = true)]
    pub ipv4: bool,

    /// Only IPv6 sockets.
    #[arg(short = '6', long = "ipv6", global = true)]
    pub ipv6: bool,

    /// Flag CLOSE_WAIT sockets whose peer closed at least this long ago.
    #[arg(long, default_value = "30s", value_parser = parse_threshold, value_name = "DURATION", global = true)]
    pub close_wait_after: Duration,

    /// Flag ESTABLISHED sockets without keepalive that have been idle at least this long.
    #[arg(long, default_value = "5m", value_parser = parse_threshold, value_name = "DURATION", global = true)]
    pub idle_after: Duration,

    /// Flag sockets on the retransmit timer with at least this many retransmits or backoffs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), value_name = "N", global = true)]
    pub retransmit_min: u32,

    /// Do not look up owning processes in /proc (faster; the process column stays empty).
    #[arg(long, global = true)]
    pub no_processes: bool,

    /// Do not read keepalive options (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT) from the owners'
    /// sockets; assume the namespace sysctls instead.
    #[arg(long, global = true)]
    pub no_sockopt: bool,

    /// Inspect this network namespace instead of kwatch's own: a name under /run/netns (as `ip netns` lists them)
    /// or a path such as /proc/PID/ns/net. Entering another namespace needs root.
    #[arg(
        long,
        value_name = "NAME|PATH",
        conflicts_with = "all_netns",
        global = true
    )]
    pub netns: Option<String>,

    /// Inspect every network namespace on the host (containers included), each from inside it, with its own
    /// sysctls. Namespaces kwatch cannot enter are named in a warning; the rest are still shown.
    #[arg(long, global = true)]
    pub all_netns: bool,

    /// When to colour the table.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", global = true)]
    pub color: ColorChoice,

    /// Where procfs is mounted.
    #[arg(long, default_value = "/proc", hide = true, global = true)]
    pub proc_root: PathBuf,
}

/// The filter terms `kill` and `keepalive` take (the live view's `/` syntax, parsed by `Filter::parse`), for their
/// long help and man pages.
macro_rules! filter_terms {
    () => {
        concat!(
            "FILTER is one or more terms in the live view's `/` syntax. Terms combine with AND; a term may list ",
            "several values separated by commas (`port:80,443`), any of which matches:\n",
            "  port:443                    local or peer port\n",
            "  sport:443                   local (source) port\n",
            "  dport:5432                  peer (destination) port\n",
            "  pid:1234                    an owning process\n",
            "  state:close-wait            TCP state (also ss's names: estab, close_wait, ...)\n",
            "  code:close_wait             has this finding: close_wait, dead_peer_suspect,\n",
            "                              no_keepalive_idle, retransmitting, zero_window\n",
            "  comm:nginx, or bare nginx   an owner's process name contains this (case-insensitive)\n",
            "  netns:web, netns:4026532    network namespace, by name (under /run/netns) or inode\n",
            "  stuck                       has any finding\n",
            "  4, ipv4, 6, ipv6            address family\n",
            "The snapshot flags (--port, --state, --pid, --netns, ...) narrow the selection further."
        )
    };
}

/// What kwatch can do besides showing sockets.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Prometheus metrics of every snapshot over HTTP (`/metrics`).
    Serve(crate::serve::ServeArgs),
    /// Destroy matching sockets with SOCK_DESTROY, as `ss -K` does, after showing them and asking.
    #[command(long_about = concat!(
        "Destroy matching sockets with SOCK_DESTROY, as `ss -K` does, after showing them and asking.\n\n",
        filter_terms!()
    ))]
    Kill(crate::act::KillArgs),
    /// Turn keepalive on, live, for matching sockets of running programs.
    #[command(long_about = concat!(
        "Turn keepalive on, live, for matching sockets of running programs.\n\n",
        filter_terms!()
    ))]
    Keepalive(crate::act::KeepaliveArgs),
    /// Record every refresh's sockets, owners, findings and deaths into DIR until stopped (docs/recording.md).
    Record(RecordArgs),
    /// Open the live view on a recording, print a recorded moment as `--once` did, or a window's events as
    /// `--watch` did (docs/recording.md).
    Replay(ReplayArgs),
    /// Write the man pages or print shell completions (packages ship them already).
    Generate(crate::generate::GenerateArgs),
}

/// `kwatch record DIR`: takes the snapshot flags (filters, thresholds, `--all-netns`) as well.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Directory of the recording (created if missing; an existing recording is continued).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Time between refreshes (at least 100ms). Without it: the live view's pace, every second or less often
    /// where a refresh costs more than --cpu-budget.
    #[arg(short = 'i', long, value_parser = parse_interval, value_name = "DURATION")]
    pub interval: Option<Duration>,

    /// Share of one core, in percent, that refreshes may use (default 25 without --interval).
    #[arg(long, value_parser = parse_cpu_budget, value_name = "PERCENT")]
    pub cpu_budget: Option<f64>,

    /// Remove recorded hours older than this.
    #[arg(long, default_value = "7d", value_parser = parse_threshold, value_name = "DURATION")]
    pub retain: Duration,

    /// Remove the oldest recorded hours while the recording is larger than this (K, M, G, T: powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size, value_name = "SIZE")]
    pub max_size: u64,

    /// Test hook: append each refresh's `--once --json` document to this file.
    #[arg(long, hide = true, value_name = "FILE")]
    pub json_log: Option<PathBuf>,
}

/// `kwatch replay DIR`: filter flags narrow what is shown.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Directory of the recording.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The moment to show (the live view starts there): HH:MM[:SS] (the last such time), YYYY-MM-DD HH:MM[:SS]
    /// (local time), -DURATION (ago, like -2h), @UNIX_MS or now (the default); the last refresh recorded at or
    /// before it is shown.
    #[arg(long, value_parser = parse_time, value_name = "TIME", conflicts_with = "events", allow_hyphen_values = true)]
    pub at: Option<TimeSpec>,

    /// Print the recorded moment as `kwatch --once` printed it.
    #[arg(long)]
    pub once: bool,

    /// With --once: the JSON document (the live schema plus `replay`; docs/recording.md).
    #[arg(long, requires = "once")]
    pub json: bool,

    /// Print the state changes and deaths of a window (--from, --to) in the `--watch` format.
    #[arg(long, conflicts_with = "once")]
    pub events: bool,

    /// With --events: start of the window (default: the start of the recording).
    #[arg(long, value_parser = parse_time, value_name = "TIME", requires = "events", allow_hyphen_values = true)]
    pub from: Option<TimeSpec>,

    /// With --events: end of the window (default: now).
    #[arg(long, value_parser = parse_time, value_name = "TIME", requires = "events", allow_hyphen_values = true)]
    pub to: Option<TimeSpec>,

    /// With --events: one JSON object per line, as `--watch --ndjson`.
    #[arg(long, requires = "events")]
    pub ndjson: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

impl Args {
    /// The connection filter the flags describe, shared with the interactive view.
    pub fn filter(&self) -> Filter {
        Filter {
            ports: self.port.clone(),
            sports: self.sport.clone(),
            dports: self.dport.clone(),
            pids: self.pid.clone(),
            states: self.state.clone(),
            stuck: self.stuck,
            family: match (self.ipv4, self.ipv6) {
                (true, _) => Some(Family::Ipv4),
                (_, true) => Some(Family::Ipv6),
                _ => None,
            },
            ..Filter::default()
        }
    }

    /// Which network namespaces to inspect.
    pub fn netns_scope(&self) -> Scope {
        match (&self.netns, self.all_netns) {
            (_, true) => Scope::All,
            (Some(spec), false) => Scope::One(spec.clone()),
            (None, false) => Scope::Current,
        }
    }

    /// How often the live view and `--watch` refresh (see [`Pace`](crate::pace::Pace)).
    pub fn pace(&self) -> crate::pace::Pace {
        crate::pace::Pace::from_flags(
            self.interval,
            self.cpu_budget.map(|percent| percent / 100.0),
        )
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            close_wait_after_ms: self.close_wait_after.as_millis() as u64,
            idle_after_ms: self.idle_after.as_millis() as u64,
            retransmit_min: self.retransmit_min,
        }
    }
}

/// The shortest refresh interval: faster than this, the collector would dominate a busy host.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = Duration::from_millis(parse_duration(s)?);
    if d < MIN_INTERVAL {
        return Err(format!("invalid interval '{s}': must be at least 100ms"));
    }
    Ok(d)
}

pub(crate) fn parse_cpu_budget(s: &str) -> Result<f64, String> {
    let invalid = || {
        format!(
            "invalid CPU budget '{s}': must be a percentage of one core, above 0 and at most 100"
        )
    };
    let percent: f64 = s.trim_end_matches('%').parse().map_err(|_| invalid())?;
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(invalid());
    }
    Ok(percent)
}

pub(crate) fn parse_threshold(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_millis)
}

/// A size in bytes: `1G`, `500M`, `64K`, `2T` (powers of 1024, an optional `B` or `iB` after the unit), or bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size '{s}': expected a number with a unit, like 500M or 1G");
    let text = s.trim();
    let text = text
        .strip_suffix("iB")
        .or_else(|| text.strip_suffix('B'))
        .unwrap_or(text);
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(invalid()),
    };
    let bytes = n.checked_mul(1 << shift).ok_or_else(invalid)?;
    if bytes < 1 << 20 {
        return Err(format!("invalid size '{s}': must be at least 1M"));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kwatch").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert!(!a.once && !a.json);
        assert_eq!(a.interval, None);
        assert_eq!(
            a.pace(),
            crate::pace::Pace::budgeted(Duration::from_secs(1), 0.25)
        );
        assert_eq!(a.filter(), Filter::default());
        assert_eq!(a.thresholds().close_wait_after_ms, 30_000);
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
        let f = a.filter();
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
        assert_eq!(a.netns_scope(), Scope::One("web".into()));
        assert_eq!(a.filter().pids, vec![7]);
        assert!(matches!(a.command, Some(Command::Kill(_))));
        let a = parse(&["serve", "--all-netns", "--idle-after", "1m"]).unwrap();
        assert_eq!(a.netns_scope(), Scope::All);
        assert_eq!(a.thresholds().idle_after_ms, 60_000);
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
        assert!(a.filter().stuck && a.netns_scope() == Scope::All);
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
        let a = parse(&[
            "replay", "d", "--once", "--json", "--at", "-2h", "--port", "443",
        ])
        .unwrap();
        let Some(Command::Replay(r)) = &a.command else {
            panic!("{a:?}")
        };
        assert_eq!(r.at, Some(TimeSpec::Ago(7_200_000)));
        assert!(r.once && r.json && a.filter().ports == vec![443]);
        let a = parse(&["replay", "d", "--events", "--from", "-2h", "--to", "-90s"]).unwrap();
        let Some(Command::Replay(r)) = &a.command else {
            panic!("{a:?}")
        };
        assert_eq!(
            (r.from, r.to),
            (Some(TimeSpec::Ago(7_200_000)), Some(TimeSpec::Ago(90_000)))
        );
    }

    #[test]
    fn interval_and_cpu_budget_make_the_pace() {
        use crate::pace::Pace;
        let ms = Duration::from_millis;
        let pace = |args: &[&str]| parse(args).unwrap().pace();
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
        assert_eq!(parse(&[]).unwrap().netns_scope(), Scope::Current);
        assert_eq!(
            parse(&["--netns", "web"]).unwrap().netns_scope(),
            Scope::One("web".into())
        );
        assert_eq!(
            parse(&["--netns", "/proc/1/ns/net"]).unwrap().netns_scope(),
            Scope::One("/proc/1/ns/net".into())
        );
        assert_eq!(parse(&["--all-netns"]).unwrap().netns_scope(), Scope::All);
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        for (args, needle) in [
            (&["--port", "70000"][..], "invalid port '70000'"),
            (&["--port", "abc"][..], "invalid port 'abc'"),
            (&["--pid", "0"][..], "invalid pid '0'"),
            (&["--pid=-1"][..], "invalid pid '-1'"),
            (&["--state", "bogus"][..], "unknown state 'bogus'"),
            (&["--interval", "50ms"][..], "at least 100ms"),
            (&["--cpu-budget", "0"][..], "invalid CPU budget '0'"),
            (&["--cpu-budget", "150"][..], "at most 100"),
            (&["--cpu-budget", "lots"][..], "invalid CPU budget 'lots'"),
            (&["--json"][..], "--once"),
            (&["-4", "-6"][..], "cannot be used with"),
            (&["--netns", "a", "--all-netns"][..], "cannot be used with"),
            (
                &["record", "d", "--max-size", "1X"][..],
                "invalid size '1X'",
            ),
            (&["record", "d", "--max-size", "100K"][..], "at least 1M"),
            (
                &["record", "d", "--retain", "soon"][..],
                "invalid duration 'soon'",
            ),
            (&["replay", "d", "--json"][..], "--once"),
            (
                &["replay", "d", "--events", "--at", "-2h"][..],
                "cannot be used with",
            ),
            (
                &["replay", "d", "--once", "--at", "3:12"][..],
                "invalid time '3:12'",
            ),
            (
                &["replay", "d", "--once", "--events"][..],
                "cannot be used with",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
