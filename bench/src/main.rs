//! kwatch-bench: N loopback connections in a fresh network namespace, then kwatch timed against ss and lsof.
//!
//! Usage: `kwatch-bench N [--rounds R] [--tui-secs S] [--budget S] [--timeout S] [--kwatch PATH] ...` (normally
//! through `bench/run.sh`, which builds them). Needs root. The tables go to stdout, progress to stderr.

mod check;
mod cmd;
mod collector;
mod exporter;
mod farm;
mod farms;
mod live;
mod measure;
mod netns;
mod plan;
mod profile;
mod record;
mod recorder;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::farms::Farms;
use crate::netns::Netns;
use crate::report::Row;

const USAGE: &str = "usage: kwatch-bench N [--rounds R] [--tui-secs S] [--budget S] [--timeout S] \
[--cap S] [--keys K] [--scrapes K] [--scrape-interval S] [--record-frames K] [--profile] [--per-process P] [--kwatch PATH] [--hold S]
  N              loopback connections to open (2N sockets)
  --rounds R     timed rounds per command after one warm-up round (default 5)
  --budget S     stop repeating a command once its measured runs add up to S seconds (default 60):
                 slow commands (ss -tanop at N=100,000) get fewer rounds, at least one
  --tui-secs S   how long to measure the TUI collector in steady state (default 60; 0 skips it)
  --live-secs S  run the real live view in tmux: watch it S seconds without keys (default 20; 0 skips it),
                 then press --keys keys
  --keys K       keys pressed in the live view, each timed until the pane shows the change (default 100)
  --scrapes K    scrapes of `kwatch serve` (default 3; 0 skips it), the first half an interval after it
                 starts, then --scrape-interval apart
  --scrape-interval S  time between scrapes, as Prometheus's scrape_interval (default 15)
  --record-frames K  run `kwatch record` until its store holds K refreshes (default 6; 0 skips it)
  --profile      also break one snapshot down (kernel dump, /proc, socket options, output) and what the live
                 view keeps per socket (kwatch-bench-profile), sample `kwatch --once --json` with perf, and
                 time `ss -tanoi` (the kernel work of kwatch's own dump) beside the other commands
  --timeout S    kill any one command after S seconds (default 600)
  --cap S        stop `ss -tanop` (quadratic: minutes at a million sockets) after S seconds and report a
                 lower bound (default 60)
  --per-process P  connections per farm process (default 16000; the fd limit is per process)
  --kwatch PATH  the kwatch binary (default: target/release/kwatch next to bench/)
  --hold S       set up and check, then keep the connections open for S seconds (or until Ctrl-C) without
                 timing anything, e.g. to profile: ip netns exec kwatch-bench-PID perf record ...";

#[derive(Debug)]
struct Config {
    n: usize,
    rounds: usize,
    budget: Duration,
    tui: Duration,
    live: Duration,
    keys: usize,
    scrapes: usize,
    scrape_interval: Duration,
    record_frames: usize,
    profile: bool,
    timeout: Duration,
    cap: Duration,
    per_process: usize,
    kwatch: PathBuf,
    hold: Duration,
}

fn parse_args(args: &[String]) -> anyhow::Result<Config> {
    let mut cfg = Config {
        n: 0,
        rounds: 5,
        budget: Duration::from_secs(60),
        tui: Duration::from_secs(60),
        live: Duration::from_secs(20),
        keys: 100,
        scrapes: 3,
        scrape_interval: Duration::from_secs(15),
        record_frames: 6,
        profile: false,
        timeout: Duration::from_secs(600),
        cap: Duration::from_secs(60),
        per_process: 16_000,
        kwatch: default_kwatch(),
        hold: Duration::ZERO,
    };
    let mut n = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("'{name}' needs a value\n{USAGE}"))
        };
        let num = |s: String| -> anyhow::Result<u64> {
            s.replace(['_', ','], "")
                .parse()
                .with_context(|| format!("invalid number '{s}'\n{USAGE}"))
        };
        match arg.as_str() {
            "--rounds" => cfg.rounds = num(value(arg)?)? as usize,
            "--budget" => cfg.budget = Duration::from_secs(num(value(arg)?)?),
            "--tui-secs" => cfg.tui = Duration::from_secs(num(value(arg)?)?),
            "--live-secs" => cfg.live = Duration::from_secs(num(value(arg)?)?),
            "--timeout" => cfg.timeout = Duration::from_secs(num(value(arg)?)?.max(1)),
            "--cap" => cfg.cap = Duration::from_secs(num(value(arg)?)?.max(1)),
            "--keys" => cfg.keys = num(value(arg)?)? as usize,
            "--scrapes" => cfg.scrapes = num(value(arg)?)? as usize,
            "--scrape-interval" => {
                cfg.scrape_interval = Duration::from_secs(num(value(arg)?)?.max(1));
            }
            "--record-frames" => cfg.record_frames = num(value(arg)?)? as usize,
            "--profile" => cfg.profile = true,
            "--per-process" => cfg.per_process = num(value(arg)?)? as usize,
            "--kwatch" => cfg.kwatch = PathBuf::from(value(arg)?),
            "--hold" => cfg.hold = Duration::from_secs(num(value(arg)?)?),
            "--n" => n = Some(num(value(arg)?)? as usize),
            "-h" | "--help" => bail!("{USAGE}"),
            s if !s.starts_with('-') && n.is_none() => n = Some(num(s.to_string())? as usize),
            s => bail!("unknown argument '{s}'\n{USAGE}"),
        }
    }
    cfg.n = n.with_context(|| format!("missing N\n{USAGE}"))?;
    if cfg.n == 0 {
        bail!("invalid N '0': must be at least 1");
    }
    Ok(cfg)
}

/// `target/release/kwatch` of the crate this benchmark lives in.
fn default_kwatch() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/kwatch")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("farm") {
        return match farm::Role::parse(&args[1..]).and_then(|role| farm::run(&role)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kwatch-bench farm: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if args.first().map(String::as_str) == Some("record-size") {
        return match record_size(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kwatch-bench record-size: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    match parse_args(&args).and_then(|cfg| bench(&cfg)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kwatch-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `kwatch-bench record-size [N] [--hours H]`: the flight recorder on a synthetic host (no root needed).
fn record_size(args: &[String]) -> anyhow::Result<()> {
    let (mut n, mut hours) = (10_000, 24);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let num = |s: Option<&String>| -> anyhow::Result<u64> {
            let s = s.context("'--hours' needs a value")?;
            s.replace(['_', ','], "")
                .parse()
                .with_context(|| format!("invalid number '{s}'"))
        };
        match arg.as_str() {
            "--hours" => hours = num(it.next())?.max(1),
            s if !s.starts_with('-') => n = num(Some(arg))? as usize,
            s => bail!("unknown argument '{s}': usage: kwatch-bench record-size [N] [--hours H]"),
        }
    }
    let size = record::measure(n, hours)?;
    println!("{}", record::table(&size));
    Ok(())
}

/// One command compared: its label, how to run it, and the cap after which it is stopped and reported as a
/// lower bound (`None`: it must finish within `--timeout`).
struct Cmd {
    label: String,
    argv: Vec<String>,
    cap: Option<Duration>,
}

/// The commands compared. `ss -tanop` is quadratic in the sockets (10 s at 200,000, minutes at a million): it is
/// stopped at `cap`. `netstat -tanp` is left out at every size. With `profile`, `ss -tanoi` too: it asks the
/// kernel for what kwatch's dump asks (timers, `tcp_info`, congestion control), so it shows that dump's cost.
fn commands(kwatch: &Path, cap: Duration, profile: bool) -> Vec<Cmd> {
    let k = kwatch.to_string_lossy().to_string();
    let cmd = |label: &str, argv: &[&str], cap: Option<Duration>| Cmd {
        label: label.to_string(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        cap,
    };
    let mut out = vec![
        cmd("kwatch --once --json", &[&k, "--once", "--json"], None),
        cmd("kwatch --once", &[&k, "--once"], None),
        cmd(report::SS_P, &["ss", "-tanop"], Some(cap)),
        cmd(report::SS, &["ss", "-tano"], None),
    ];
    if profile {
        out.push(cmd("ss -tanoi", &["ss", "-tanoi"], None));
    }
    if which("lsof") {
        out.push(cmd("lsof -nP -iTCP", &["lsof", "-nP", "-iTCP"], None));
    } else {
        progress("lsof is not installed: its row is left out (apt-get install lsof)");
    }
    out
}

/// Runs the whole benchmark; `Ok(false)` when the correctness check failed.
fn bench(cfg: &Config) -> anyhow::Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root: it creates a network namespace");
    }
    if !cfg.kwatch.is_file() {
        bail!(
            "no kwatch binary at '{}': run 'cargo build --release' first, or pass --kwatch",
            cfg.kwatch.display()
        );
    }
    let kwatch = cfg.kwatch.canonicalize()?;
    for name in netns::remove_stale()? {
        progress(&format!(
            "removed namespace '{name}' left by an earlier run"
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let machine = machine();
    let load_at_start = loadavg();
    let scratch = Scratch::new()?;

    // Declared first, dropped last: the namespace outlives the farms in it.
    let ns = Netns::create_and_enter()?;
    progress(&format!("namespace '{}'", ns.name));
    for (name, value) in [
        ("net.ipv4.ip_local_port_range", "1024 65535"),
        ("net.core.somaxconn", "65535"),
        ("net.ipv4.tcp_max_syn_backlog", "65535"),
    ] {
        netns::set_sysctl(name, value)?;
    }

    let per_process = cfg
        .per_process
        .min(farm::hard_fd_limit().saturating_sub(200) as usize)
        .max(1);
    let pairs = plan::plan(cfg.n, per_process);
    let expected = plan::expected_sockets(&pairs);
    let mut farms = Farms::new();
    let setup = Instant::now();
    let ready_timeout = Duration::from_secs(60 + cfg.n as u64 / 1000);
    progress(&format!(
        "{} farm processes ({} pairs), at most {per_process} connections each",
        2 * pairs.len(),
        pairs.len()
    ));
    for p in &pairs {
        farms.start(p.server.clone())?;
    }
    farms.wait_for(0..pairs.len(), "listening", ready_timeout, &stop)?;
    for p in &pairs {
        farms.start(p.client.clone())?;
    }
    farms.wait_for(0..2 * pairs.len(), "ready", ready_timeout, &stop)?;
    let count = wait_for_sockets(
        expected,
        Duration::from_secs(60 + cfg.n as u64 / 5000),
        &stop,
    )?;
    progress(&format!(
        "{} connections by {} server and {} client processes: {count} sockets, in {:.1} s",
        cfg.n,
        pairs.len(),
        pairs.len(),
        setup.elapsed().as_secs_f64()
    ));

    let verdict = check_correctness(&kwatch, &farms, &pairs, &scratch, cfg, &stop)?;
    progress(&verdict.summary);

    if !cfg.hold.is_zero() {
        progress(&format!(
            "holding for {} s (Ctrl-C ends it): ip netns exec {} COMMAND",
            cfg.hold.as_secs(),
            ns.name
        ));
        let until = Instant::now() + cfg.hold;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        return Ok(verdict.ok);
    }

    let rows = time_commands(
        &commands(&kwatch, cfg.cap, cfg.profile),
        cfg,
        &scratch,
        &stop,
    )?;
    let steady = if cfg.tui.is_zero() {
        None
    } else {
        progress(&format!(
            "TUI collector: {} s of refreshes",
            cfg.tui.as_secs()
        ));
        Some(collector::measure(cfg.tui, &stop)?)
    };
    let live = if cfg.live.is_zero() {
        None
    } else if !which("tmux") {
        progress("tmux is not installed: the live view is not measured (apt-get install tmux)");
        None
    } else {
        progress(&format!(
            "live view in tmux: {} s without keys, then {} keys",
            cfg.live.as_secs(),
            cfg.keys
        ));
        Some(live::measure(&kwatch, cfg.live, cfg.keys, &stop)?)
    };
    let served = if cfg.scrapes == 0 {
        None
    } else {
        progress(&format!("kwatch serve: {} scrapes", cfg.scrapes));
        Some(exporter::measure(
            &kwatch,
            cfg.scrapes,
            cfg.scrape_interval,
            &stop,
        )?)
    };
    let recorded = if cfg.record_frames == 0 {
        None
    } else {
        progress(&format!(
            "kwatch record: until its store holds {} refreshes",
            cfg.record_frames
        ));
        let deadline = Duration::from_secs(120 + cfg.n as u64 / 2000);
        Some(recorder::measure(
            &kwatch,
            &scratch.dir,
            cfg.record_frames,
            deadline,
            &stop,
        )?)
    };
    let profiled = if cfg.profile {
        progress("profile: one snapshot broken down, what the live view keeps, perf");
        Some(profile::run(&kwatch, &scratch.dir, &stop)?)
    } else {
        None
    };
    drop(farms);
    drop(ns);

    println!(
        "## kwatch benchmark: N = {} connections ({count} sockets)\n",
        group(cfg.n)
    );
    println!("{machine}\n");
    println!(
        "Load average (1, 5, 15 min) at the start: {load_at_start}; at the end: {}. Above the CPU count, other work \
         competed for the CPUs and wall times are stretched: compare the CPU columns.\n",
        loadavg()
    );
    println!("{}", report::table(&rows));
    let mut targets = report::targets(cfg.n, &rows, "kwatch --once --json", "lsof -nP -iTCP");
    let target = |what: &str, measured: String, met: bool| report::Target {
        what: what.to_string(),
        measured,
        met,
    };
    if let Some(s) = &steady {
        println!("{}", collector::table(s));
        targets.push(target(
            "TUI collector ≤ 25 % of one core, default pace (target at N=100,000)",
            format!(
                "{:.1} %, a refresh every {}",
                s.core_share * 100.0,
                report::fmt_duration(s.period)
            ),
            s.core_share <= 0.25,
        ));
        let fixed = collector::fixed_share(s);
        targets.push(target(
            "TUI collector ≤ 25 % of one core at a fixed 1 s (`--interval 1s`)",
            format!("{:.1} %", fixed * 100.0),
            fixed <= 0.25,
        ));
        targets.push(target(
            "first refresh ≤ 1.5 s",
            report::fmt_duration(s.first_wall),
            s.first_wall <= Duration::from_millis(1500),
        ));
    }
    if let Some(l) = &live {
        println!("{}", live::table(l));
        targets.push(target(
            "live view: first frame ≤ 1.5 s (end to end)",
            report::fmt_duration(l.first_frame),
            l.first_frame <= Duration::from_millis(1500),
        ));
        targets.push(target(
            "live view: every key answered within 100 ms while refreshes run",
            format!(
                "slowest {:.0} ms, {} of {} later",
                l.key_max().as_secs_f64() * 1e3,
                l.keys_late(),
                l.keys.len() + l.unanswered
            ),
            l.keys_late() == 0 && !l.keys.is_empty(),
        ));
    }
    if let Some(e) = &served {
        println!("{}", exporter::table(e));
    }
    if let Some(r) = &recorded {
        println!(
            "{}",
            recorder::table(r, steady.as_ref().map(|s| s.cpu_per_refresh))
        );
    }
    let targets_md = report::targets_table(&targets);
    println!("Targets of issue 5 that apply at this N:\n\n{targets_md}");
    if cfg.n >= 500_000 {
        let mut million = million_targets(&rows, steady.as_ref(), live.as_ref(), served.as_ref());
        match &recorded {
            Some(r) => million.extend(report::record_targets(
                r.own_per_refresh(),
                r.said.snapshot,
                r.day.bytes,
            )),
            None => million.push(report::Target {
                what: "`kwatch record`".into(),
                measured: "not measured in this run (`--record-frames 0`)".into(),
                met: false,
            }),
        }
        println!(
            "Targets of issue 19 (a million sockets):\n\n{}",
            report::targets_table(&million)
        );
    }
    if let Some(p) = &profiled {
        println!("{p}");
    }
    println!("Correctness: {}", verdict.summary);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.samples.iter().any(|s| s.status != 0 && !s.timed_out))
        .map(|r| r.label.as_str())
        .collect();
    if !failed.is_empty() {
        println!("Exited non-zero at least once: {}", failed.join(", "));
    }
    Ok(verdict.ok)
}

/// Polls `ss -tanH` until it lists `expected` sockets.
fn wait_for_sockets(
    expected: usize,
    timeout: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let count = ss_tan()?.lines().filter(|l| !l.trim().is_empty()).count();
        if count == expected {
            return Ok(count);
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if Instant::now() >= deadline {
            bail!("'ss -tanH' lists {count} sockets, expected {expected}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ss_tan() -> anyhow::Result<String> {
    cmd::stdout_of("ss", &["-tanH"], "iproute2")
}

struct Verdict {
    ok: bool,
    summary: String,
}

/// kwatch's JSON against `ss -tanH` (same sockets, same states), and every socket owned by the right farm.
fn check_correctness(
    kwatch: &Path,
    farms: &Farms,
    pairs: &[plan::Pair],
    scratch: &Scratch,
    cfg: &Config,
    stop: &AtomicBool,
) -> anyhow::Result<Verdict> {
    let json = scratch.path("kwatch.json");
    let argv: Vec<String> = vec![
        kwatch.to_string_lossy().into(),
        "--once".into(),
        "--json".into(),
    ];
    let sample = measured(&argv, &json, cfg.timeout, scratch, stop)?;
    if sample.timed_out {
        bail!(
            "'kwatch --once --json' did not finish within {} s",
            cfg.timeout.as_secs()
        );
    }
    if sample.status != 0 {
        let err = std::fs::read_to_string(scratch.path("stderr")).unwrap_or_default();
        return Ok(Verdict {
            ok: false,
            summary: format!(
                "FAILED: kwatch exited with {}: {}",
                sample.status,
                err.trim()
            ),
        });
    }
    let ss = check::parse_ss(&ss_tan()?)?;
    let file = std::fs::File::open(&json).context("cannot read kwatch's output")?;
    let parsed = check::parse_kwatch(file);
    let _ = std::fs::remove_file(&json);
    let k = match parsed {
        Ok(k) => k,
        Err(e) => {
            return Ok(Verdict {
                ok: false,
                summary: format!("FAILED: {e:#}"),
            });
        }
    };
    let mut problems = Vec::new();
    if let Some(d) = check::diff(&ss, &k.keys, 5) {
        problems.push(d);
    }
    for (i, (pid, role)) in farms.pids().into_iter().enumerate() {
        let pair = &pairs[i % pairs.len()];
        let want = match role {
            farm::Role::Server { .. } => pair.count + 1,
            farm::Role::Client { .. } => pair.count,
        };
        let got = k.sockets_by_pid.get(&pid).copied().unwrap_or(0);
        if got != want {
            problems.push(format!(
                "farm pid {pid} owns {got} sockets in kwatch's JSON, expected {want}"
            ));
        }
    }
    if k.without_owner != 0 {
        problems.push(format!("{} sockets without an owner", k.without_owner));
    }
    let states: Vec<String> = check::by_state(&ss)
        .into_iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    Ok(if problems.is_empty() {
        Verdict {
            ok: true,
            summary: format!(
                "kwatch lists the same {} sockets and states as `ss -tanH` ({}), each owned by the right farm process.",
                ss.len(),
                states.join(", ")
            ),
        }
    } else {
        Verdict {
            ok: false,
            summary: format!("FAILED: {}", problems.join("; ")),
        }
    })
}

/// One warm-up round, then `rounds` rounds of every command in turn, each command's output to /dev/null. A
/// command stopped at its cap is not run again.
fn time_commands(
    cmds: &[Cmd],
    cfg: &Config,
    scratch: &Scratch,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = cmds
        .iter()
        .map(|c| Row {
            label: c.label.clone(),
            samples: Vec::new(),
        })
        .collect();
    let devnull = Path::new("/dev/null");
    let err_path = scratch.path("stderr");
    for round in 0..=cfg.rounds {
        for (cmd, row) in cmds.iter().zip(rows.iter_mut()) {
            let label = &cmd.label;
            let spent: Duration = row.samples.iter().map(|s| s.wall).sum();
            let last = row.samples.last().map_or(Duration::ZERO, |s| s.wall);
            if round > 0 && !row.samples.is_empty() && spent + last > cfg.budget {
                continue;
            }
            if row.samples.iter().any(|s| s.timed_out) {
                continue;
            }
            let timeout = cmd.cap.unwrap_or(cfg.timeout).min(cfg.timeout);
            let s = measured(&cmd.argv, devnull, timeout, scratch, stop)
                .with_context(|| format!("running '{label}'"))?;
            if s.timed_out {
                if cmd.cap.is_none() {
                    bail!("'{label}' did not finish within {} s", timeout.as_secs());
                }
                progress(&format!(
                    "round {round} {label}: stopped at its cap of {} s (reported as a lower bound, not run again)",
                    timeout.as_secs()
                ));
                row.samples.push(s);
                continue;
            }
            if s.status != 0 {
                let err = std::fs::read_to_string(&err_path).unwrap_or_default();
                progress(&format!(
                    "'{label}' exited with {}: {}",
                    s.status,
                    err.trim()
                ));
            }
            // The warm-up run counts only when it is slow enough that warming up no longer matters.
            let counted = round > 0 || s.wall >= Duration::from_secs(2);
            progress(&format!(
                "round {round}{} {label}: {} wall, {} CPU, {} peak RSS",
                if counted { "" } else { " (warm-up)" },
                report::fmt_duration(s.wall),
                report::fmt_duration(s.cpu),
                report::fmt_mib(s.max_rss_kib)
            ));
            if counted {
                row.samples.push(s);
            }
        }
    }
    Ok(rows)
}

/// Runs `argv` through `kwatch-bench-spawn` (see there why) and returns what it measured (`timed_out` when it
/// was stopped after `timeout`); stdout goes to `stdout_to`, stderr to the scratch file `stderr`.
fn measured(
    argv: &[String],
    stdout_to: &Path,
    timeout: Duration,
    scratch: &Scratch,
    stop: &AtomicBool,
) -> anyhow::Result<measure::Sample> {
    let spawner = std::env::current_exe()?.with_file_name("kwatch-bench-spawn");
    let mut full: Vec<String> = vec![
        spawner.to_string_lossy().into(),
        timeout.as_millis().to_string(),
        stdout_to.to_string_lossy().into(),
        scratch.path("stderr").to_string_lossy().into(),
        "--".into(),
    ];
    full.extend(argv.iter().cloned());
    let (out, err) = (scratch.path("spawn.out"), scratch.path("spawn.err"));
    let spawn = measure::run(&full, &out, &err, timeout + Duration::from_secs(30), stop)?;
    if spawn.timed_out {
        bail!("kwatch-bench-spawn did not return within its timeout");
    }
    if spawn.status != 0 {
        bail!(
            "{}",
            std::fs::read_to_string(&err).unwrap_or_default().trim()
        );
    }
    measure::Sample::parse(&std::fs::read_to_string(&out)?)
}

/// A private directory for captured output, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("kwatch-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        Ok(Scratch { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One line on the machine the numbers come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or("?".into(), |kib| format!("{:.0}", kib / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ss = first_line("ss", &["-V"]);
    let lsof = first_line("lsof", &["-v"])
        .lines()
        .find(|l| l.contains("revision"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    format!(
        "Machine: {nproc} CPUs (nproc), {cpu}, {mem_gib} GiB RAM, kernel {kernel}; {ss}; lsof {lsof}; date {}.",
        first_line("date", &["-u", "+%Y-%m-%d"])
    )
}

/// The first three fields of /proc/loadavg: `0.52 0.71 0.80`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            if cmd == "lsof" {
                String::from_utf8_lossy(&text).into_owned()
            } else {
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            }
        })
        .unwrap_or_default()
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()))
}

/// 100000 → `100,000`.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The targets of issue 19 at N=500,000 (a million sockets), from every part of the run that measured them.
fn million_targets(
    rows: &[Row],
    steady: Option<&collector::Steady>,
    live: Option<&live::Live>,
    served: Option<&exporter::Exporter>,
) -> Vec<report::Target> {
    let mut out = report::million_targets(rows, "kwatch --once --json", "lsof -nP -iTCP");
    let target = |what: &str, measured: String, met: bool| report::Target {
        what: what.to_string(),
        measured,
        met,
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    if let Some(l) = live {
        out.push(target(
            "live view: first frame listing the sockets ≤ 3 s",
            report::fmt_duration(l.first_frame),
            l.first_frame <= Duration::from_secs(3),
        ));
        out.push(target(
            "live view: RSS in steady state ≤ 400 MiB",
            format!(
                "{:.0} MiB (median; largest {:.0} MiB)",
                mib(l.rss_kib),
                mib(l.rss_max_kib)
            ),
            mib(l.rss_kib) <= 400.0,
        ));
        out.push(target(
            "live view: peak RSS ≤ 500 MiB",
            format!("{:.0} MiB", mib(l.hwm_kib)),
            mib(l.hwm_kib) <= 500.0,
        ));
        out.push(target(
            "live view: share of one core with default flags ≤ 25 %, the header saying the pace",
            format!(
                "{:.1} %, header: {}",
                l.cpu_share * 100.0,
                l.pace.as_deref().unwrap_or("no stretched pace shown")
            ),
            l.cpu_share <= 0.25 && l.pace.is_some(),
        ));
        out.push(target(
            "live view: keys answered ≤ 100 ms while refreshing, slowest of 100 presses",
            format!(
                "slowest {:.0} ms of {} pressed, {} later",
                l.key_max().as_secs_f64() * 1e3,
                l.keys.len() + l.unanswered,
                l.keys_late()
            ),
            l.keys_late() == 0 && l.keys.len() >= 100,
        ));
    }
    if let Some(s) = steady {
        out.push(target(
            "TUI collector alone (in the harness): share of one core at the default pace ≤ 25 %",
            format!(
                "{:.1} %, a refresh every {}",
                s.core_share * 100.0,
                report::fmt_duration(s.period)
            ),
            s.core_share <= 0.25,
        ));
    }
    if let Some(e) = served {
        out.push(target(
            "`kwatch serve`: every scrape answered within the scrape timeout (8 s)",
            match e.slowest_ok() {
                Some(t) => format!(
                    "slowest {} ({} of {} answered 200)",
                    report::fmt_duration(t),
                    e.scrapes.iter().filter(|s| s.status == 200).count(),
                    e.scrapes.len()
                ),
                None => "no scrape answered 200".to_string(),
            },
            e.all_within_timeout(),
        ));
        out.push(target(
            "`kwatch serve`: exporter RSS ≤ 400 MiB",
            format!("{:.0} MiB (peak {:.0} MiB)", mib(e.rss_kib), mib(e.hwm_kib)),
            mib(e.hwm_kib) <= 400.0,
        ));
    }
    out
}

fn progress(msg: &str) {
    eprintln!("kwatch-bench: {msg}");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let c = parse_args(&args("10_000")).unwrap();
        assert_eq!((c.n, c.rounds, c.tui.as_secs()), (10_000, 5, 60));
        let c = parse_args(&args("--n 1000 --rounds 2 --tui-secs 0 --budget 30")).unwrap();
        assert_eq!(
            (c.n, c.rounds, c.tui.as_secs(), c.budget.as_secs()),
            (1000, 2, 0, 30)
        );
        assert!(parse_args(&args("")).is_err());
        assert!(parse_args(&args("0")).is_err());
        assert!(parse_args(&args("10 --bogus")).is_err());
        assert!(parse_args(&args("10 --rounds")).is_err());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group(100_000), "100,000");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(999), "999");
    }
}
