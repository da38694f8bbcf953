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
use crate::model::{Connection, Snapshot};
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
    while !stop.load(Ordering::Relaxed) {
        let (started, cpu) = (Instant::now(), process_cpu());
        // Notifications first, then the dump: a socket destroyed in between is still in the feed's memory.
        feed.drain();
        let mut snapshot = collector.collect().context("cannot take a snapshot")?;
        keep_matching(&mut snapshot, filter);
        // The feed asks /proc now whether sockets that left the dump are still held: replay cannot.
        for event in feed.step(&snapshot, &Filter::default(), snapshot.taken_at_unix_ms) {
            warn(&event);
        }
        let evidence = feed.take_evidence();
        if let Some(log) = json_log.as_mut() {
            collect::sort_by_address(&mut snapshot.connections);
            let conns: Vec<&Connection> = snapshot.connections.iter().collect();
            json::write(log, &snapshot, &conns, 0)?;
            log.flush()?;
        }
        recorder.append(snapshot, &evidence, feed.is_listening())?;
        pace.record(process_cpu().saturating_sub(cpu));
        let next = started + pace.period();
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(WAKE));
        }
    }
    recorder.sync()
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

/// Drops the sockets the filter does not show, as the exporter does.
fn keep_matching(snapshot: &mut Snapshot, filter: &Filter) {
    if filter.is_empty() {
        return;
    }
    let keep: Vec<bool> = snapshot
        .connections
        .iter()
        .map(|c| filter.matches_in(c, snapshot))
        .collect();
    let mut keep = keep.into_iter();
    snapshot
        .connections
        .retain(|_| keep.next().unwrap_or(false));
}
