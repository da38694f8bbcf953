//! The interactive view end to end, as a person sees it: the real `kwatch` in a pane of a tmux server of its own
//! (started from this process, so inside the benchmark's namespace). Measures the time to the first frame that
//! shows the sockets, what the whole process costs in steady state (share of one core, RSS), and how fast a key
//! is answered while refreshes run: `?` opens and closes the help overlay, and the time from `send-keys` until
//! the pane shows the change is one answer (tmux's own path included, as in a person's terminal).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::report::fmt_duration;

/// The pane's size: a common wide terminal.
const COLS: u16 = 200;
const ROWS: u16 = 50;
/// How often the pane is read while waiting for a change.
const POLL: Duration = Duration::from_millis(2);
/// A key not answered in this long is counted as unanswered.
const KEY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often RSS is read while the view is watched without keys.
const RSS_EVERY: Duration = Duration::from_millis(250);
/// The target: every key answered within this.
pub const KEY_TARGET: Duration = Duration::from_millis(100);

/// What one run of the live view showed.
#[derive(Debug, Clone)]
pub struct Live {
    /// From starting the pane to the first frame listing the sockets.
    pub first_frame: Duration,
    /// How long the process was watched without keys.
    pub quiet: Duration,
    /// CPU time of the whole process (every thread) over `quiet`, as a share of one core.
    pub cpu_share: f64,
    /// RSS over the quiet window (read every 250 ms): median and largest, and the process's peak so far
    /// (VmHWM, which includes the first refreshes), in KiB.
    pub rss_kib: u64,
    pub rss_max_kib: u64,
    pub hwm_kib: u64,
    /// What the header said of the refresh pace at the end of the quiet window: `every 1.8s (CPU budget)` when
    /// it stretched the interval, `None` when it refreshed every interval.
    pub pace: Option<String>,
    /// Time to answer each key, sorted.
    pub keys: Vec<Duration>,
    pub unanswered: usize,
    /// Keys the run set out to press (it stops earlier only at its deadline).
    pub keys_wanted: usize,
}

impl Live {
    pub fn key_max(&self) -> Duration {
        self.keys.last().copied().unwrap_or_default()
    }

    fn key_quantile(&self, q: f64) -> Duration {
        if self.keys.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.keys.len() - 1) as f64 * q).round() as usize;
        self.keys[i.min(self.keys.len() - 1)]
    }

    /// Keys answered later than [`KEY_TARGET`], unanswered ones included.
    pub fn keys_late(&self) -> usize {
        self.keys.iter().filter(|k| **k > KEY_TARGET).count() + self.unanswered
    }
}

/// A tmux server of this run's own (`tmux -L NAME`), killed with everything in it when dropped.
struct Tmux {
    socket: String,
    /// The kwatch process in the pane, once known; killed by pid if it outlives the server.
    pid: Option<u32>,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let all: Vec<&str> = ["-L", self.socket.as_str(), "-f", "/dev/null"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        crate::cmd::stdout_of("tmux", &all, "tmux")
    }

    fn screen(&self) -> anyhow::Result<String> {
        self.run(&["capture-pane", "-p", "-t", "kw"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(pid) = self.pid {
            // SAFETY: kill has no memory preconditions; the pid is the pane's process, which this run started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Runs `kwatch` (default flags) in a pane, watches it for `quiet` without keys, then presses `presses` keys
/// (at most for `presses` × 6 s), then quits it with `q`.
pub fn measure(
    kwatch: &Path,
    quiet: Duration,
    presses: usize,
    stop: &AtomicBool,
) -> anyhow::Result<Live> {
    let mut tmux = Tmux {
        socket: format!("kwatch-bench-{}", std::process::id()),
        pid: None,
    };
    let command = format!("exec '{}'", kwatch.display());
    let started = Instant::now();
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "kw",
        "-x",
        &COLS.to_string(),
        "-y",
        &ROWS.to_string(),
        &command,
    ])?;
    let pid: u32 = tmux
        .run(&["list-panes", "-t", "kw", "-F", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("tmux did not say the pane's pid")?;
    tmux.pid = Some(pid);

    wait_until(&tmux, Duration::from_secs(120), stop, lists_sockets)?
        .context("the live view showed no sockets within 120 s")?;
    let first_frame = started.elapsed();

    // On a big host the first frame is the dump alone; the full snapshot follows. Let the first refreshes pass,
    // then watch the process alone over at least three of the refresh periods its header shows (a share measured
    // over less than a cycle says more about where the window fell than about the pace).
    wait_until(&tmux, Duration::from_secs(120), stop, |s| {
        !s.contains("reading owners")
    })?
    .context("the live view's first full snapshot did not come within 120 s")?;
    // The pace settles after a warm refresh: one period (as first shown) later.
    pause(Duration::from_secs(2), stop)?;
    let period = |tmux: &Tmux| -> anyhow::Result<f64> {
        Ok(header_pace(&tmux.screen()?)
            .and_then(|p| pace_secs(&p))
            .unwrap_or(1.0)
            .min(30.0))
    };
    pause(Duration::from_secs_f64(period(&tmux)?), stop)?;
    let quiet = quiet.max(Duration::from_secs_f64(3.0 * period(&tmux)?));
    let (cpu0, t0) = (process_cpu(pid)?, Instant::now());
    let mut rss = Vec::new();
    // Bounded by `quiet`; one RSS reading per step.
    while t0.elapsed() < quiet {
        rss.push(process_rss(pid)?.0);
        pause(RSS_EVERY.min(quiet.saturating_sub(t0.elapsed())), stop)?;
    }
    let cpu = process_cpu(pid)?.saturating_sub(cpu0);
    let watched = t0.elapsed();
    let (last_rss, hwm_kib) = process_rss(pid)?;
    rss.push(last_rss);
    rss.sort_unstable();
    let (rss_kib, rss_max_kib) = (rss[rss.len() / 2], rss[rss.len() - 1]);
    let pace = header_pace(&tmux.screen()?);

    let mut keys = Vec::new();
    let mut unanswered = 0;
    let mut help_open = false;
    // Bounded: `presses` keys, each answered or given up within KEY_TIMEOUT after a gap under 1 s.
    let until = Instant::now() + (KEY_TIMEOUT + Duration::from_secs(1)) * presses as u32;
    // Keys at irregular moments (a fixed sequence of gaps), so that some land while a refresh is applied.
    let gaps = [130u64, 70, 210, 90, 170, 50, 240, 110];
    let mut i = 0;
    while i < presses && Instant::now() < until {
        pause(Duration::from_millis(gaps[i % gaps.len()]), stop)?;
        i += 1;
        let want = !help_open;
        let sent = Instant::now();
        tmux.run(&["send-keys", "-t", "kw", "?"])?;
        match wait_until(&tmux, KEY_TIMEOUT, stop, |s| shows_help(s) == want)? {
            Some(_) => {
                keys.push(sent.elapsed());
                help_open = want;
            }
            None => {
                unanswered += 1;
                help_open = shows_help(&tmux.screen()?);
            }
        }
    }
    keys.sort_unstable();

    tmux.run(&["send-keys", "-t", "kw", "q"])?;
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Live {
        first_frame,
        quiet: watched,
        cpu_share: cpu.as_secs_f64() / watched.as_secs_f64().max(1e-9),
        rss_kib,
        rss_max_kib,
        hwm_kib,
        pace,
        keys,
        unanswered,
        keys_wanted: presses,
    })
}

/// The refresh pace the header's first line states when the CPU budget stretched the interval:
/// `refreshed 932ms ago, every 1.8s (CPU budget) · dump ...` gives `every 1.8s (CPU budget)`.
fn header_pace(screen: &str) -> Option<String> {
    let first = screen.lines().next()?;
    let from = first.find("every ")?;
    let rest = &first[from..];
    let to = rest.find(')')?;
    Some(rest[..=to].to_string())
}

/// The seconds of a pace the header shows: `every 13.2s (CPU budget)` gives 13.2.
fn pace_secs(pace: &str) -> Option<f64> {
    pace.strip_prefix("every ")?.split('s').next()?.parse().ok()
}

/// The header line `sockets N ...` with a count, which the view draws once the first snapshot is in.
fn lists_sockets(screen: &str) -> bool {
    screen.lines().any(|l| {
        l.trim_start()
            .strip_prefix("sockets ")
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|n| n.parse::<u64>().is_ok())
    })
}

/// The help overlay names its `markers` row.
fn shows_help(screen: &str) -> bool {
    screen.contains(" markers ")
}

/// Reads the pane until `done` holds; `None` after `timeout`. Returns the time it took.
fn wait_until(
    tmux: &Tmux,
    timeout: Duration,
    stop: &AtomicBool,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    loop {
        if done(&tmux.screen()?) {
            return Ok(Some(started.elapsed()));
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

pub fn pause(d: Duration, stop: &AtomicBool) -> anyhow::Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
    }
    Ok(())
}

/// User + system CPU time of every thread of `pid` so far (`/proc/PID/stat` fields 14 and 15), exited threads
/// included.
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("kwatch (pid {pid}) is gone"))?;
    cpu_from_stat(&stat).context("cannot read /proc/PID/stat")
}

fn cpu_from_stat(stat: &str) -> Option<Duration> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: field 3 (state) is fields[0], so utime (14) is fields[11] and stime (15) fields[12].
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// (VmRSS, VmHWM) of `pid` in KiB.
pub fn process_rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("kwatch (pid {pid}) is gone"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok((kib("VmRSS:"), kib("VmHWM:")))
}

/// The markdown lines for the report.
pub fn table(l: &Live) -> String {
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    format!(
        "| live view, end to end in tmux ({COLS}x{ROWS}) | value |\n|---|---:|\n\
         | first frame listing the sockets | {} |\n\
         | refresh pace the header shows | {} |\n\
         | whole process, share of one core ({:.0} s without keys) | {:.1} % |\n\
         | RSS without keys: median / largest (read every {} ms) | {:.1} / {:.1} MiB |\n\
         | peak RSS of the process (VmHWM, first refreshes included) | {:.1} MiB |\n\
         | keys answered: median / 90th percentile / slowest | {} / {} / {} |\n\
         | keys answered later than {} (of {} pressed{}) | {} |\n",
        fmt_duration(l.first_frame),
        l.pace.as_deref().unwrap_or("every interval (1 s)"),
        l.quiet.as_secs_f64(),
        l.cpu_share * 100.0,
        RSS_EVERY.as_millis(),
        l.rss_kib as f64 / 1024.0,
        l.rss_max_kib as f64 / 1024.0,
        l.hwm_kib as f64 / 1024.0,
        ms(l.key_quantile(0.5)),
        ms(l.key_quantile(0.9)),
        ms(l.key_max()),
        ms(KEY_TARGET),
        l.keys.len() + l.unanswered,
        if l.keys.len() + l.unanswered < l.keys_wanted {
            format!(", {} wanted: stopped at its deadline", l.keys_wanted)
        } else {
            String::new()
        },
        l.keys_late(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_in_seconds_comes_from_the_header() {
        assert_eq!(pace_secs("every 13.2s (CPU budget)"), Some(13.2));
        assert_eq!(pace_secs("every 1.0s (over CPU budget)"), Some(1.0));
        assert_eq!(pace_secs("every interval (1 s)"), None);
    }

    #[test]
    fn cpu_comes_from_fields_14_and_15_even_with_an_odd_name() {
        // SAFETY: sysconf has no memory preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let stat = "4242 (kw (a) b) S 1 2 3 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1 2 3";
        assert_eq!(
            cpu_from_stat(stat),
            Some(Duration::from_micros(300 * 1_000_000 / hz))
        );
        assert_eq!(cpu_from_stat("4242 (kw) S 1"), None);
    }

    #[test]
    fn the_first_frame_is_the_one_with_a_socket_count() {
        assert!(!lists_sockets(
            "kwatch  host\nwaiting for the first snapshot"
        ));
        assert!(lists_sockets(
            "kwatch  host\nsockets 200007   ESTAB 180008\nstuck 9"
        ));
        assert!(shows_help("│ markers          !! critical"));
    }

    #[test]
    fn the_pace_is_read_from_the_header_when_stretched() {
        let stretched = "kwatch  vm  linux 6.18   refreshed 932ms ago, every 1.8s (CPU budget) · dump 322ms + /proc 6.6ms\nkeepalive";
        assert_eq!(
            header_pace(stretched).as_deref(),
            Some("every 1.8s (CPU budget)")
        );
        assert_eq!(
            header_pace("kwatch  vm   refreshed 1s ago · dump 9ms + /proc 3ms\n"),
            None
        );
    }
}
