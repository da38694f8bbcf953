//! Command-line arguments, subcommands included: clap derive, validation only, no I/O; `config` resolves them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::duration::parse_duration;
use crate::filter::{parse_pid, parse_port, parse_state};
use crate::model::TcpState;
use crate::model::keepalive::KeepaliveValues;
use crate::moment::{TimeSpec, parse_time};

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
    Serve(ServeArgs),
    /// Destroy matching sockets with SOCK_DESTROY, as `ss -K` does, after showing them and asking.
    #[command(long_about = concat!(
        "Destroy matching sockets with SOCK_DESTROY, as `ss -K` does, after showing them and asking.\n\n",
        filter_terms!()
    ))]
    Kill(KillArgs),
    /// Turn keepalive on, live, for matching sockets of running programs.
    #[command(long_about = concat!(
        "Turn keepalive on, live, for matching sockets of running programs.\n\n",
        filter_terms!()
    ))]
    Keepalive(KeepaliveArgs),
    /// Record every refresh's sockets, owners, findings and deaths into DIR until stopped (docs/recording.md).
    Record(RecordArgs),
    /// Open the live view on a recording, print a recorded moment as `--once` did, or a window's events as
    /// `--watch` did (docs/recording.md).
    Replay(ReplayArgs),
    /// Write the man pages or print shell completions (packages ship them already).
    Generate(GenerateArgs),
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

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:9813", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Label per-process series with the pid as well as the comm: one series per process instead of per
    /// program name (many more series on a busy host).
    #[arg(long)]
    pub pid_label: bool,

    /// Answer 503 when a scrape's snapshot is not ready within this time; the collection goes on and the next
    /// scrape gets its result. Keep it below Prometheus's scrape_timeout.
    #[arg(long, default_value = "8s", value_parser = parse_timeout, value_name = "DURATION")]
    pub scrape_timeout: Duration,

    /// Scrapes arriving within this time of the last collection's end get its result instead of a new
    /// collection: at most one collection per interval, however many scrapers (0: collect for every scrape).
    #[arg(long, default_value = "1s", value_parser = parse_min_interval, value_name = "DURATION")]
    pub min_interval: Duration,

    /// TLS and basic authentication, in the web configuration format of Prometheus exporters
    /// (exporter-toolkit: tls_server_config, basic_auth_users, http_server_config.headers, rate_limit). Read
    /// again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Also record every collection into DIR, as `kwatch record DIR` does (docs/recording.md); collections
    /// are taken at --record-interval when scrapes do not take them more often.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,

    /// With --record: time between recorded refreshes when no scrape comes sooner (at least 100ms). Without it:
    /// the live view's pace, every second or less often where a refresh costs more than a quarter of a core.
    #[arg(long, value_parser = parse_interval, value_name = "DURATION", requires = "record")]
    pub record_interval: Option<Duration>,

    /// With --record: remove recorded hours older than this.
    #[arg(long, default_value = "7d", value_parser = parse_threshold, value_name = "DURATION", requires = "record")]
    pub retain: Duration,

    /// With --record: remove the oldest recorded hours while the recording is larger than this (K, M, G, T:
    /// powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size, value_name = "SIZE", requires = "record")]
    pub max_size: u64,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The owning program keeps its file descriptor: the socket becomes a dead fd in \
that program (reads and writes fail with ECONNABORTED) until it closes it.\n\
Listening sockets are killed only when the filter names state:listen (or --state listen): otherwise \
they are listed as skipped.\n\
Needs root or CAP_NET_ADMIN, and a kernel built with CONFIG_INET_DIAG_DESTROY.\n\
Exit status: 0 every socket was killed (or had closed meanwhile); 1 nothing to do (nothing matched, \
all skipped, or the answer was no); 2 error, or not one could be killed; 3 some could not be killed.\n\
Examples:\n  kwatch kill --dry-run state:close-wait comm:myapp\n  kwatch kill dport:5432 pid:1234\n  \
kwatch kill --port 5000 --state close-wait\n  kwatch kill --yes code:dead_peer_suspect"
)]
pub struct KillArgs {
    /// Do not ask: kill at once (for scripts).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Only show which sockets would be killed.
    #[arg(short = 'n', long, conflicts_with = "yes")]
    pub dry_run: bool,

    /// Which sockets, in the filter syntax of the live view: `port:443 state:close-wait pid:1234 stuck`;
    /// `comm:NAME` is an owner's exact process name, `comm:php*` a glob (`*`, `?`). Optional when flags such
    /// as --port or --pid narrow the sockets.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Only ESTABLISHED and CLOSE-WAIT sockets are changed; others are listed as skipped.\n\
Needs root (or CAP_SYS_PTRACE over the owners) to duplicate their sockets with pidfd_getfd (Linux 5.6+).\n\
Exit status: 0 every socket has the settings (read back); 1 nothing to do (nothing matched, all \
skipped, or the answer was no); 2 error, or not one could be changed (a socket whose owner could not be \
read counts as not changed); 3 some could not be changed.\n\
Examples:\n  kwatch keepalive --dry-run comm:myapp state:established\n  \
kwatch keepalive --idle 60 --intvl 10 --cnt 5 dport:5432\n  kwatch keepalive --yes --idle 5m code:no_keepalive_idle"
)]
pub struct KeepaliveArgs {
    /// TCP_KEEPIDLE: seconds of silence before the first probe (1-32767; `90`, `90s` or `5m`).
    #[arg(long, default_value = "60", value_parser = parse_idle, value_name = "SECONDS")]
    pub idle: u32,

    /// TCP_KEEPINTVL: seconds between unanswered probes (1-32767).
    #[arg(long, default_value = "10", value_parser = parse_intvl, value_name = "SECONDS")]
    pub intvl: u32,

    /// TCP_KEEPCNT: unanswered probes before the kernel resets the connection (1-127).
    #[arg(long, default_value = "5", value_parser = parse_cnt, value_name = "N")]
    pub cnt: u32,

    /// Do not ask: apply at once (for scripts).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Only show which sockets would be changed.
    #[arg(short = 'n', long, conflicts_with = "yes")]
    pub dry_run: bool,

    /// Which sockets, in the filter syntax of the live view (`comm:NAME` exact, `comm:php*` a glob).
    /// Optional when flags such as --port or --pid narrow the sockets.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

impl KeepaliveArgs {
    pub fn values(&self) -> KeepaliveValues {
        KeepaliveValues {
            idle_s: self.idle,
            intvl_s: self.intvl,
            cnt: self.cnt,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kwatch generate man /usr/local/share/man/man1\n  \
kwatch generate completions bash > ~/.local/share/bash-completion/completions/kwatch"
)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write the man pages, kwatch.1 and one per subcommand (kwatch-serve.1, ...), into DIR (created if missing).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on stdout.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: Shell,
    },
}

/// The kernel's limits (`MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`, `MAX_TCP_KEEPCNT`).
pub const MAX_IDLE_S: u32 = 32_767;
pub const MAX_INTVL_S: u32 = 32_767;
pub const MAX_CNT: u32 = 127;

/// The shortest refresh interval: faster than this, the collector would dominate a busy host.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = Duration::from_millis(parse_duration(s)?);
    if d < MIN_INTERVAL {
        return Err(format!("invalid interval '{s}': must be at least 100ms"));
    }
    Ok(d)
}

fn parse_cpu_budget(s: &str) -> Result<f64, String> {
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

fn parse_threshold(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_millis)
}

/// A size in bytes: `1G`, `500M`, `64K`, `2T` (powers of 1024, an optional `B` or `iB` after the unit), or bytes.
fn parse_size(s: &str) -> Result<u64, String> {
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

/// Parses `--idle` / `--intvl`: whole seconds, bare (`60`) or with a unit (`1m`, `90s`), within the kernel's
/// limit. Errors: `invalid idle '0': must be 1-32767 seconds`.
pub fn parse_seconds(name: &str, text: &str, max: u32) -> Result<u32, String> {
    let invalid = || format!("invalid {name} '{text}': must be 1-{max} seconds");
    let ms = crate::duration::parse_duration(text).map_err(|_| invalid())?;
    if ms % 1000 != 0 {
        return Err(format!(
            "invalid {name} '{text}': must be whole seconds (the kernel counts in seconds)"
        ));
    }
    match u32::try_from(ms / 1000) {
        Ok(s) if (1..=max).contains(&s) => Ok(s),
        _ => Err(invalid()),
    }
}

pub fn parse_idle(text: &str) -> Result<u32, String> {
    parse_seconds("idle", text, MAX_IDLE_S)
}

pub fn parse_intvl(text: &str) -> Result<u32, String> {
    parse_seconds("intvl", text, MAX_INTVL_S)
}

/// Parses `--cnt`: 1-127 probes.
pub fn parse_cnt(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CNT).contains(&n) => Ok(n),
        _ => Err(format!("invalid cnt '{text}': must be 1-{MAX_CNT} probes")),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        0 => Err(format!("invalid timeout '{s}': must be more than 0")),
        ms => Ok(Duration::from_millis(ms)),
    }
}

fn parse_min_interval(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_millis)
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

    #[test]
    fn values_are_checked_against_the_kernel_limits() {
        assert_eq!(parse_idle("60"), Ok(60));
        assert_eq!(parse_idle("1m"), Ok(60));
        assert_eq!(parse_idle("32767"), Ok(32_767));
        assert_eq!(parse_intvl("1"), Ok(1));
        assert_eq!(parse_cnt("127"), Ok(127));
        assert_eq!(parse_cnt(" 5 "), Ok(5));
        for (got, want) in [
            (parse_idle("0"), "invalid idle '0': must be 1-32767 seconds"),
            (
                parse_idle("32768"),
                "invalid idle '32768': must be 1-32767 seconds",
            ),
            (
                parse_idle("abc"),
                "invalid idle 'abc': must be 1-32767 seconds",
            ),
            (
                parse_intvl("0"),
                "invalid intvl '0': must be 1-32767 seconds",
            ),
            (parse_cnt("0"), "invalid cnt '0': must be 1-127 probes"),
            (parse_cnt("128"), "invalid cnt '128': must be 1-127 probes"),
            (parse_cnt("-1"), "invalid cnt '-1': must be 1-127 probes"),
        ] {
            assert_eq!(got.unwrap_err(), want);
        }
        assert!(parse_idle("1500ms").unwrap_err().contains("whole seconds"));
    }

    #[test]
    fn timeout_must_be_positive() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("invalid timeout '0s'")
        );
        assert!(parse_timeout("x").is_err());
        assert_eq!(parse_min_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_min_interval("1s"), Ok(Duration::from_secs(1)));
    }
}
