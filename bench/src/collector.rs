//! The interactive view's collector in steady state: the same `Options`, the same reused `Collector` and the same
//! pacing as the TUI's collector thread (`tui::event::spawn_collector`), in this process, with CPU time from
//! getrusage(RUSAGE_SELF).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use kwatch::cli::Args;
use kwatch::collect::Collector;

use crate::measure::self_cpu;
use crate::report::{fmt_duration, median};

/// What a minute of refreshes cost.
#[derive(Debug, Clone)]
pub struct Steady {
    pub interval: Duration,
    /// Time from one refresh's start to the next's as the default pace set it (the interval, or longer to stay
    /// within the CPU budget), median over the steady refreshes.
    pub period: Duration,
    /// The first refresh (cold caches): the TUI's first frame waits for it.
    pub first_wall: Duration,
    pub first_cpu: Duration,
    pub refreshes: usize,
    pub cpu_per_refresh: Duration,
    pub wall_per_refresh: Duration,
    pub dump_per_refresh: Duration,
    pub proc_scan_per_refresh: Duration,
    /// CPU time over elapsed time of the steady phase: the share of one core the collector uses.
    pub core_share: f64,
    pub sockets: usize,
    /// The flight recorder's work on each refresh's snapshot (encode, compress, append to a store), CPU, median.
    pub record_per_refresh: Duration,
}

/// Refreshes for `duration` the way the TUI's collector does with default flags, paced the same way
/// ([`kwatch::pace::Pace`]).
pub fn measure(duration: Duration, stop: &AtomicBool) -> anyhow::Result<Steady> {
    let args = Args::try_parse_from(["kwatch"]).context("default kwatch flags do not parse")?;
    let config = kwatch::config::Config::new(&args);
    let options = config.collect_options(&config.filter);
    let mut pace = config.pace;
    let interval = pace.interval();
    let mut collector = Collector::new(options);

    let (cpu0, t0) = (self_cpu(), Instant::now());
    let first = collector.collect()?;
    let (first_cpu, first_wall) = (self_cpu() - cpu0, t0.elapsed());
    drop(first);
    pace.record(first_cpu);
    pause(pace.period().saturating_sub(first_wall), stop)?;

    let (mut cpus, mut walls, mut dumps, mut scans) = (vec![], vec![], vec![], vec![]);
    // The recorder's cost, measured on the same snapshots, into a store removed afterwards.
    let store = std::env::temp_dir().join(format!("kwatch-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let retention = kwatch::recording::store::Retention {
        max_age_ms: u64::MAX,
        max_bytes: 1 << 40,
    };
    let (mut writer, _) = kwatch::recording::store::Writer::open(&store, retention)?;
    let mut encoder = kwatch::recording::frame::Encoder::new();
    let mut records = vec![];
    let mut periods = vec![];
    let mut sockets = 0;
    let (phase_cpu, phase_start) = (self_cpu(), Instant::now());
    // Bounded: at most one refresh per interval plus those that overrun it, and never past `duration`.
    let max_refreshes = (duration.as_millis() / interval.as_millis().max(1)) as usize + 1;
    while phase_start.elapsed() < duration && cpus.len() < max_refreshes {
        let (cpu, started) = (self_cpu(), Instant::now());
        let snapshot = collector.collect()?;
        let wall = started.elapsed();
        let spent = self_cpu() - cpu;
        pace.record(spent);
        periods.push(pace.period());
        cpus.push(spent);
        walls.push(wall);
        dumps.push(Duration::from_micros(snapshot.dump_us));
        scans.push(Duration::from_micros(snapshot.proc_scan_us));
        sockets = snapshot.connections.len();
        let recording = self_cpu();
        let time = snapshot.taken_at_unix_ms;
        let key = writer.begin(time)?;
        let bytes = encoder.encode(
            std::sync::Arc::new(snapshot),
            &kwatch::events::Evidence::default(),
            key,
            0,
        );
        let kind = if key {
            kwatch::recording::store::Kind::Key
        } else {
            kwatch::recording::store::Kind::Delta
        };
        writer.append(kind, time, &bytes)?;
        records.push(self_cpu() - recording);
        pause(pace.period().saturating_sub(wall), stop)?;
    }
    drop(writer);
    let _ = std::fs::remove_dir_all(&store);
    let phase_cpu = self_cpu() - phase_cpu - records.iter().sum::<Duration>();
    let phase_wall = phase_start.elapsed();
    let refreshes = cpus.len();
    Ok(Steady {
        interval,
        period: median(periods),
        first_wall,
        first_cpu,
        refreshes,
        cpu_per_refresh: median(cpus),
        wall_per_refresh: median(walls),
        dump_per_refresh: median(dumps),
        proc_scan_per_refresh: median(scans),
        core_share: phase_cpu.as_secs_f64() / phase_wall.as_secs_f64().max(1e-9),
        sockets,
        record_per_refresh: median(records),
    })
}

/// Sleeps in short steps so that Ctrl-C is answered quickly.
fn pause(d: Duration, stop: &AtomicBool) -> anyhow::Result<()> {
    let until = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// The markdown lines for the report.
pub fn table(s: &Steady) -> String {
    format!(
        "| TUI collector (default pace: every {}, or less often to stay within a quarter of a core) | value |\n|---|---:|\n\
         | sockets per refresh | {} |\n\
         | time between refreshes, steady state (median) | {} |\n\
         | first refresh, wall (first frame waits for it) | {} |\n\
         | first refresh, CPU | {} |\n\
         | steady refreshes measured | {} |\n\
         | CPU per refresh (median) | {} |\n\
         | wall per refresh (median) | {} |\n\
         | of which kernel dump / /proc scan (median) | {} / {} |\n\
         | share of one core, steady state | {:.1} % |\n\
         | share of one core at a fixed `--interval {}` (CPU per refresh / interval) | {:.1} % |\n\
         | flight recorder per refresh: encode, compress, write (median; not in the figures above) | {} ({:.1} % of a refresh) |\n",
        fmt_duration(s.interval),
        s.sockets,
        fmt_duration(s.period),
        fmt_duration(s.first_wall),
        fmt_duration(s.first_cpu),
        s.refreshes,
        fmt_duration(s.cpu_per_refresh),
        fmt_duration(s.wall_per_refresh),
        fmt_duration(s.dump_per_refresh),
        fmt_duration(s.proc_scan_per_refresh),
        s.core_share * 100.0,
        fmt_duration(s.interval),
        fixed_share(s) * 100.0,
        fmt_duration(s.record_per_refresh),
        s.record_per_refresh.as_secs_f64() / s.cpu_per_refresh.as_secs_f64().max(1e-9) * 100.0,
    )
}

/// The share of one core refreshes would take every interval, whatever they cost (`--interval` given): CPU per
/// refresh over the interval, or over the refresh's own wall time when it takes longer (refreshes then run
/// back to back).
pub fn fixed_share(s: &Steady) -> f64 {
    let per_refresh = s.cpu_per_refresh.as_secs_f64();
    per_refresh
        / s.interval
            .as_secs_f64()
            .max(s.wall_per_refresh.as_secs_f64())
            .max(1e-9)
}
