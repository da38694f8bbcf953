//! `kwatch record` as it runs on a host: the real binary, started in the benchmark's namespace like the other rows
//! (no namespace flag: it records the namespace it runs in, the farm's), recording into a temporary directory
//! until its store holds `frames` refreshes (or a deadline), then stopped with SIGTERM. Its CPU comes from the line
//! it prints at exit (the snapshot apart from the recorder's own work, key frames apart from deltas) and from
//! /proc; the store's bytes per key frame and per delta are read back from its shards, and a day is projected from
//! them by the store's own rules ([`day`]).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kwatch::recording::store::{self, Kind, Retention, ShardReader};

use crate::report::{fmt_duration, median};

/// What `kwatch record` wrote and cost.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Refreshes in the store when it was stopped.
    pub refreshes: usize,
    /// Median time between refreshes: the recorder's default pace on this host.
    pub period: Duration,
    /// Bytes on disk of the first key frame (entry head included), and of a delta entry: the median (a steady
    /// host's, what the projection uses), the mean and the largest (a few deltas of a run can be much larger).
    pub key_bytes: u64,
    pub delta_bytes: u64,
    pub delta_mean: u64,
    pub delta_max: u64,
    pub deltas: usize,
    pub store_bytes: u64,
    /// What kwatch said at exit.
    pub said: Said,
    /// The whole process's CPU (every thread, from /proc) over the refreshes it recorded.
    pub process_cpu_per_refresh: Duration,
    /// VmRSS after the last refresh and VmHWM (peak), KiB.
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// A day of this host (steady: deltas like these) at `period` and at 10 s, by the store's rules.
    pub day: Day,
    pub day_10s: Day,
}

/// The CPU figures of `kwatch record`'s exit line, per refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Said {
    pub snapshot: Duration,
    pub recorder: Duration,
    pub key: Duration,
    pub delta: Duration,
    pub encode: Duration,
    pub feed: Duration,
}

impl Recorded {
    /// The recorder's own CPU per refresh over a day of the projection: key frames as often as the store writes
    /// them, deltas otherwise.
    pub fn own_per_refresh(&self) -> Duration {
        let d = &self.day;
        let total = d.refreshes.max(1);
        let keys = d.keys.min(total);
        (self.said.key * keys as u32 + self.said.delta * (total - keys) as u32) / total as u32
    }

    /// [`Recorded::own_per_refresh`] as a share of the snapshot's CPU.
    pub fn own_share(&self) -> f64 {
        self.own_per_refresh().as_secs_f64() / self.said.snapshot.as_secs_f64().max(1e-9)
    }
}

/// The recorder process, stopped by pid (SIGTERM, then SIGKILL) and reaped when dropped.
struct Running {
    child: Child,
}

impl Running {
    /// SIGTERM, then waits up to `grace` for it to finish its refresh and exit; SIGKILL after. Whether it exited by
    /// itself with status 0.
    fn stop(&mut self, grace: Duration) -> bool {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; the child is not reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// Runs `kwatch record` into `scratch/record` until its store holds `frames` refreshes, at most `deadline`.
pub fn measure(
    kwatch: &Path,
    scratch: &Path,
    frames: usize,
    deadline: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<Recorded> {
    let dir = scratch.join("record");
    let _ = std::fs::remove_dir_all(&dir);
    let result = run(kwatch, &dir, scratch, frames, deadline, stop);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(
    kwatch: &Path,
    dir: &Path,
    scratch: &Path,
    frames: usize,
    deadline: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<Recorded> {
    let err_path = scratch.join("record.stderr");
    let mut cmd = Command::new(kwatch);
    cmd.arg("record")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path)?);
    // SAFETY: the hook only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // Dies with the harness.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut running = Running {
        child: cmd.spawn().context("cannot start 'kwatch record'")?,
    };
    let pid = running.child.id();
    let started = Instant::now();
    let (mut cpu_at_first, mut last_count, mut rss) = (None, 0, (0, 0));
    // Bounded by the deadline; polls the store's heads every 200 ms.
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            bail!("'kwatch record' exited early ({status}): {}", err.trim());
        }
        let count = entries(dir).map_or(0, |e| e.len());
        if count > last_count {
            // CPU from the end of the first refresh on: what the steady refreshes cost.
            if last_count == 0 {
                cpu_at_first = Some((crate::live::process_cpu(pid)?, count));
            }
            last_count = count;
            rss = crate::live::process_rss(pid)?;
        }
        if count >= frames || started.elapsed() >= deadline {
            break;
        }
        crate::live::pause(Duration::from_millis(200), stop)?;
    }
    let cpu_end = crate::live::process_cpu(pid)?;
    let (_, hwm_kib) = crate::live::process_rss(pid)?;
    // A refresh in progress finishes before it exits: at a million sockets that takes seconds.
    let clean = running.stop(Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if !clean {
        bail!(
            "'kwatch record' did not exit cleanly on SIGTERM: {}",
            stderr.trim()
        );
    }
    let said = stderr
        .lines()
        .find_map(parse_said)
        .with_context(|| format!("'kwatch record' printed no cost line: {}", stderr.trim()))?;
    let all = entries(dir)?;
    let (key_bytes, deltas, times): (u64, Vec<u64>, Vec<u64>) = {
        let key = all
            .iter()
            .find(|(kind, _, _)| *kind == Kind::Key)
            .map_or(0, |e| e.1);
        let deltas = all
            .iter()
            .filter(|(kind, _, _)| *kind == Kind::Delta)
            .map(|e| e.1)
            .collect();
        (key, deltas, all.iter().map(|e| e.2).collect())
    };
    let gaps: Vec<Duration> = times
        .windows(2)
        .map(|w| Duration::from_millis(w[1].saturating_sub(w[0])))
        .collect();
    let period = median(gaps);
    let delta_mean = deltas.iter().sum::<u64>() / (deltas.len() as u64).max(1);
    let mut sorted = deltas.clone();
    sorted.sort_unstable();
    let delta_bytes = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let delta_max = sorted.last().copied().unwrap_or(0);
    let store_bytes = store::list(dir)?
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
        .sum();
    let steady = cpu_at_first.map_or(Duration::ZERO, |(cpu, at)| {
        cpu_end.saturating_sub(cpu)
            / u32::try_from(last_count.saturating_sub(at).max(1)).unwrap_or(1)
    });
    let period_ms = (period.as_millis() as u64).max(1);
    Ok(Recorded {
        refreshes: all.len(),
        period,
        key_bytes,
        delta_bytes,
        delta_mean,
        delta_max,
        deltas: deltas.len(),
        store_bytes,
        said,
        process_cpu_per_refresh: steady,
        rss_kib: rss.0,
        hwm_kib,
        day: day(key_bytes, delta_bytes, period_ms),
        day_10s: day(key_bytes, delta_bytes, 10_000),
    })
}

/// Every complete entry of the store in `dir`: kind, bytes on disk (head included), time.
fn entries(dir: &Path) -> anyhow::Result<Vec<(Kind, u64, u64)>> {
    let mut out = Vec::new();
    for shard in store::list(dir)? {
        let reader = ShardReader::open(&shard.path)?;
        out.extend(
            reader
                .entries
                .iter()
                .map(|e| (e.kind, e.end() - e.offset, e.time_ms)),
        );
    }
    Ok(out)
}

/// `kwatch: recorded 6 refreshes (1 key frame), ...; CPU per refresh: snapshot 364.2 ms, recorder 14.0 ms = 3.8 %
/// (key frames 60.1 ms, deltas 4.8 ms; encode and write 9.0 ms, death feed 5.0 ms)`.
fn parse_said(line: &str) -> Option<Said> {
    let rest = line.strip_prefix("kwatch: recorded ")?;
    let ms = |label: &str| -> Option<Duration> {
        let after = rest.split_once(label)?.1;
        let number = after.split_once(" ms")?.0;
        number
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| Duration::from_secs_f64(v / 1e3))
    };
    Some(Said {
        snapshot: ms("snapshot ")?,
        recorder: ms("recorder ")?,
        key: ms("key frames ")?,
        delta: ms("deltas ")?,
        encode: ms("encode and write ")?,
        feed: ms("death feed ")?,
    })
}

/// A day of recording projected by the store's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub refreshes: u64,
    pub keys: u64,
    pub bytes: u64,
    /// Time a shard spans (the store's rule for key frames of this size), ms.
    pub span_ms: u64,
}

/// A day of a steady host whose key frames take `key` bytes on disk and whose deltas take `delta`, a refresh every
/// `period_ms`, with the default `--max-size` (1G): the store's rules applied refresh by refresh (a key frame
/// begins each shard, a shard spans [`store::span_ms`] or closes at an eighth of `--max-size`, and a key frame
/// follows when the deltas since the last one outweigh it). The store would keep only `--max-size` of it.
pub fn day(key: u64, delta: u64, period_ms: u64) -> Day {
    const DAY_MS: u64 = 86_400_000;
    let shard_max = Retention {
        max_age_ms: u64::MAX,
        max_bytes: 1 << 30,
    }
    .shard_max();
    let span = store::span_ms(key);
    let refreshes = DAY_MS / period_ms.max(1);
    let (mut keys, mut bytes) = (0, 0);
    // (start, size, deltas since the key frame) of the current shard.
    let mut shard: Option<(u64, u64, u64)> = None;
    for i in 0..refreshes {
        let t = i * period_ms;
        let rotate = shard.is_none_or(|(start, size, _)| t >= start + span || size >= shard_max);
        if rotate {
            shard = Some((t, 16, 0));
        }
        let Some((_, size, since)) = shard.as_mut() else {
            continue;
        };
        if rotate || *since > key {
            keys += 1;
            bytes += key;
            *size += key;
            *since = 0;
        } else {
            bytes += delta;
            *size += delta;
            *since += delta;
        }
    }
    Day {
        refreshes,
        keys,
        bytes,
        span_ms: span,
    }
}

/// The markdown lines for the report.
pub fn table(r: &Recorded, snapshot_cpu: Option<Duration>) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let pct = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9) * 100.0;
    let s = &r.said;
    let mut out = String::from(
        "| `kwatch record DIR` (the real binary, default flags, recording the farm) | value |\n|---|---:|\n",
    );
    out.push_str(&format!(
        "| refreshes recorded (1 key frame, then deltas) / time between them (default pace) | {} / {} |\n",
        r.refreshes,
        fmt_duration(r.period)
    ));
    out.push_str(&format!(
        "| CPU per refresh: the snapshot (dump, /proc, analysis), as kwatch record measured it | {} |\n",
        fmt_duration(s.snapshot)
    ));
    if let Some(c) = snapshot_cpu {
        out.push_str(&format!(
            "| for comparison: the TUI collector's steady refresh in this run | {} |\n",
            fmt_duration(c)
        ));
    }
    out.push_str(&format!(
        "| recorder's own CPU, a delta refresh (death feed, encode, compress, write) | {} ({:.1} % of the snapshot) |\n\
         | recorder's own CPU, the key frame refresh (once a shard) | {} ({:.1} %) |\n\
         | recorder's own CPU over a projected day (key frames as often as the store writes them) | {} ({:.1} %) |\n\
         | of all refreshes here: encode and write / death feed | {} / {} |\n\
         | whole process CPU per steady refresh (every thread, /proc) | {} |\n",
        fmt_duration(s.delta),
        pct(s.delta, s.snapshot),
        fmt_duration(s.key),
        pct(s.key, s.snapshot),
        fmt_duration(r.own_per_refresh()),
        r.own_share() * 100.0,
        fmt_duration(s.encode),
        fmt_duration(s.feed),
        fmt_duration(r.process_cpu_per_refresh),
    ));
    out.push_str(&format!(
        "| key frame on disk / delta on disk, median of {} (mean, largest) | {:.2} MB / {} B ({} B, {} B) |\n\
         | store after the run | {:.2} MB |\n\
         | a steady day at this pace (median delta): key frames (a shard spans {:.1} h) / deltas / bytes | {} / {} / {:.0} MB |\n\
         | a steady day at `-i 10s` (the packaged service): key frames / bytes | {} / {:.0} MB |\n\
         | RSS after the last refresh / peak RSS | {:.1} / {:.1} MiB |\n",
        r.deltas,
        mb(r.key_bytes),
        r.delta_bytes,
        r.delta_mean,
        r.delta_max,
        mb(r.store_bytes),
        r.day.span_ms as f64 / 3.6e6,
        r.day.keys,
        r.day.refreshes - r.day.keys.min(r.day.refreshes),
        mb(r.day.bytes),
        r.day_10s.keys,
        mb(r.day_10s.bytes),
        r.rss_kib as f64 / 1024.0,
        r.hwm_kib as f64 / 1024.0,
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_line_is_read_back() {
        let line = "kwatch: recorded 6 refreshes (1 key frame), 2.1 MB in the store; CPU per refresh: snapshot \
                    364.2 ms, recorder 14.0 ms = 3.8 % (key frames 60.1 ms, deltas 4.8 ms; encode and write 9.0 \
                    ms, death feed 5.0 ms)";
        let said = parse_said(line).unwrap();
        assert_eq!(said.snapshot, Duration::from_micros(364_200));
        assert_eq!(said.key, Duration::from_micros(60_100));
        assert_eq!(said.delta, Duration::from_micros(4_800));
        assert_eq!(said.feed, Duration::from_millis(5));
        assert_eq!(parse_said("kwatch: stopped"), None);
        assert_eq!(parse_said("kwatch: recorded x"), None);
    }

    #[test]
    fn a_day_has_a_key_frame_per_shard_and_when_deltas_outweigh_it() {
        // Small key frames: a shard an hour, 24 key frames.
        let d = day(200_000, 100, 10_000);
        assert_eq!((d.refreshes, d.keys, d.span_ms), (8640, 24, 3_600_000));
        assert_eq!(d.bytes, 24 * 200_000 + (8640 - 24) * 100);
        // Deltas that outweigh the key frame after three: a key frame every fourth refresh.
        let d = day(1000, 400, 10_000);
        assert_eq!(d.keys, 8640 / 4);
        // 20 MiB key frames: a shard spans 5 h, so 5 of them a day (0, 5, 10, 15, 20 h).
        let d = day(20 << 20, 100, 5_000);
        assert_eq!((d.span_ms, d.keys), (5 * 3_600_000, 5));
        // Key frames over 128 MiB close a shard at each refresh (an eighth of --max-size 1G).
        assert_eq!(day(200 << 20, 100, 60_000).keys, 1440);
    }
}
