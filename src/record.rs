//! `kwatch record DIR`: a snapshot as often as the pace allows, each appended to the recording with the destroy
//! notifications received before it, until SIGTERM or SIGINT.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::RecordArgs;
use crate::collect::{self, Collector};
use crate::config::Config;
use crate::events::{Feed, WatchEvent};
use crate::filter::Filter;
use crate::model::Connection;
use crate::output::json;
use crate::pace::{Pace, process_cpu};
use crate::recording::Recorder;
use crate::recording::store::Retention;

/// How long the loop sleeps at a time while waiting for the next refresh, so that a stop signal is acted on soon.
const WAKE: Duration = Duration::from_millis(50);

/// Records until SIGTERM or SIGINT: a snapshot as often as `--interval`/`--cpu-budget` say, appended to the
/// recording with the destroy notifications received before it; retention enforced after every refresh. The
/// snapshot flags in `config` decide what is collected and kept. A failed write (a full disk) ends the recording
/// with an error; the recording keeps every refresh before it.
pub fn run(rec: &RecordArgs, config: &Config) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let retention = Retention {
        max_age_ms: rec.retain.as_millis() as u64,
        max_bytes: rec.max_size,
    };
    let (mut recorder, warnings) = Recorder::open(&rec.dir, retention)?;
    for w in warnings {
        log!("kwatch: warning: {w}");
    }
    let filter = &config.filter;
    let options = config.collect_options(filter);
    let mut feed = Feed::open(&options.netns, &options.proc_root);
    feed.keep_evidence();
    let mut json_log = match &rec.json_log {
        Some(path) => Some(BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open '{}'", path.display()))?,
        )),
        None => None,
    };
    let mut collector = Collector::new(options);
    let mut pace = Pace::from_flags(rec.interval, rec.cpu_budget.map(|p| p / 100.0));
    let mut cost = Cost::default();
    while !stop.load(Ordering::Relaxed) {
        let (started, cpu) = (Instant::now(), process_cpu());
        // Notifications first, then the dump: a socket destroyed in between is still in the feed's memory.
        feed.drain();
        let collecting = process_cpu();
        let mut snapshot = collector.collect().context("cannot take a snapshot")?;
        filter.retain_matching(&mut snapshot);
        let snapshot_cpu = process_cpu().saturating_sub(collecting);
        // One snapshot, shared by the feed's tracker and the recorder (each keeps it until the next refresh): a
        // copy for the tracker was 238 ms of CPU a refresh at a million sockets.
        let snapshot = Arc::new(snapshot);
        // The recorder compares the snapshot with the last one first, and tells the feed's tracker which sockets
        // are where they were: the tracker's own pass over both was 4.5 ms of CPU a refresh at 200,000 sockets.
        let comparing = process_cpu();
        let pending = recorder.compare(Arc::clone(&snapshot))?;
        let compare_cpu = process_cpu().saturating_sub(comparing);
        // The feed asks /proc now whether sockets that left the dump are still held: replay cannot.
        for event in feed.step_unchanged(
            &snapshot,
            &Filter::default(),
            snapshot.taken_at_unix_ms,
            pending.unchanged(),
        ) {
            warn(&event);
        }
        let evidence = feed.take_evidence();
        if let Some(log) = json_log.as_mut() {
            let mut conns: Vec<&Connection> = snapshot.connections.iter().collect();
            collect::sort_by_address(&mut conns);
            json::write(log, &snapshot, &conns, 0)?;
            log.flush()?;
        }
        let appending = process_cpu();
        let key = recorder.append_compared(pending, &evidence, feed.is_listening())?;
        drop(snapshot);
        let spent = process_cpu().saturating_sub(cpu);
        cost.add(
            key,
            snapshot_cpu,
            compare_cpu + process_cpu().saturating_sub(appending),
            spent.saturating_sub(snapshot_cpu),
        );
        pace.record(spent);
        let next = started + pace.period();
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(WAKE));
        }
    }
    recorder.sync()?;
    log!("kwatch: {}", cost.summary(recorder.size()));
    Ok(())
}

/// What the refreshes of this run cost, for the line printed at exit: CPU of the snapshot (dump, /proc, analysis,
/// filter) apart from the recorder's own (the death feed, the JSON log, encoding, compressing, writing, retention),
/// key frames apart from deltas.
#[derive(Debug, Default, Clone, PartialEq)]
struct Cost {
    refreshes: u64,
    keys: u64,
    snapshot: Duration,
    /// The recorder's own CPU, split by the frame the refresh was written as.
    own_key: Duration,
    own_delta: Duration,
    /// Of the recorder's own: encoding, compressing, writing and retention (the rest is the death feed).
    append: Duration,
}

impl Cost {
    fn add(&mut self, key: bool, snapshot: Duration, append: Duration, own: Duration) {
        self.refreshes += 1;
        self.snapshot += snapshot;
        self.append += append;
        if key {
            self.keys += 1;
            self.own_key += own;
        } else {
            self.own_delta += own;
        }
    }

    /// `recorded 12 refreshes (1 key frame), 3.1 MB in the store; CPU per refresh: snapshot 364 ms, recorder
    /// 14.2 ms = 3.9 % (key frames 120 ms, deltas 4.6 ms; encode and write 10.1 ms, death feed 4.1 ms)`.
    fn summary(&self, store_bytes: u64) -> String {
        let per = |d: Duration, n: u64| d / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        let own = self.own_key + self.own_delta;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let share = own.as_secs_f64() / self.snapshot.as_secs_f64().max(1e-9) * 100.0;
        format!(
            "recorded {} refreshes ({} key frame{}), {:.1} MB in the store; CPU per refresh: snapshot {}, \
             recorder {} = {share:.1} % (key frames {}, deltas {}; encode and write {}, death feed {})",
            self.refreshes,
            self.keys,
            if self.keys == 1 { "" } else { "s" },
            store_bytes as f64 / 1e6,
            ms(per(self.snapshot, self.refreshes)),
            ms(per(own, self.refreshes)),
            ms(per(self.own_key, self.keys)),
            ms(per(self.own_delta, self.refreshes - self.keys)),
            ms(per(self.append, self.refreshes)),
            ms(per(own.saturating_sub(self.append), self.refreshes)),
        )
    }
}

/// Says on stderr what the recorder's feed warns of: namespaces without destroy notifications, lost ones.
fn warn(event: &WatchEvent) {
    match event {
        WatchEvent::Warning { message, .. } => log!("kwatch: warning: {message}"),
        WatchEvent::Start {
            destroy_events: false,
            ..
        } => log!("kwatch: warning: deaths are not recorded: no destroy notifications"),
        WatchEvent::Lost { notifications, .. } => log!(
            "kwatch: warning: {notifications} destroy notifications were lost: deaths in that time may be missing"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_line_splits_the_snapshot_from_the_recorder_and_keys_from_deltas() {
        let ms = Duration::from_millis;
        let mut cost = Cost::default();
        cost.add(true, ms(300), ms(82), ms(100));
        for _ in 0..3 {
            cost.add(false, ms(300), ms(6), ms(12));
        }
        assert_eq!(
            cost.summary(3_100_000),
            "recorded 4 refreshes (1 key frame), 3.1 MB in the store; CPU per refresh: snapshot 300.0 ms, \
             recorder 34.0 ms = 11.3 % (key frames 100.0 ms, deltas 12.0 ms; encode and write 25.0 ms, \
             death feed 9.0 ms)"
        );
        assert!(
            Cost::default()
                .summary(0)
                .starts_with("recorded 0 refreshes (0 key frames), 0.0 MB")
        );
    }
}
