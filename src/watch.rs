//! `--watch`: a snapshot as often as the pace allows, and the events between them (state changes, deaths) streamed
//! one per line, or as NDJSON.

use std::io::{self, Write};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::collect;
use crate::config::Config;
use crate::events::{Feed, WatchEvent};
use crate::output::event_line;
use crate::pace::process_cpu;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Watches until the output closes or SIGTERM/SIGINT arrives (then it ends with status 0 after the line being
/// written): a snapshot as often as `pace` says, events written one per line (JSON with `ndjson`) and flushed at
/// once.
pub fn run(config: &Config, ndjson: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let filter = &config.filter;
    let opts = config.collect_options(filter);
    let mut pace = config.pace.clone();
    let stop = stop_on_signals().context("cannot install signal handlers")?;
    let mut feed = Feed::open(&opts.netns, &opts.proc_root);
    let mut collector = collect::Collector::new(opts);
    loop {
        let (started, cpu) = (Instant::now(), process_cpu());
        feed.drain();
        // Shared with the feed's tracker, which keeps it until the next step instead of a copy of each socket.
        let snapshot = Arc::new(collector.collect().context("cannot take a snapshot")?);
        for e in &feed.step_shared(&snapshot, filter, unix_ms()) {
            write_event(out, e, ndjson)?;
        }
        pace.record(process_cpu().saturating_sub(cpu));
        match stop.recv_timeout(pace.period().saturating_sub(started.elapsed())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // A signal, or the signal thread gone: stop between two refreshes, every line written whole.
            _ => return Ok(()),
        }
    }
}

/// One event as one line ([`event_line::write_line`]), flushed.
pub fn write_event(out: &mut dyn Write, e: &WatchEvent, ndjson: bool) -> io::Result<()> {
    event_line::write_line(out, e, ndjson)?;
    out.flush()
}

/// A channel that receives once SIGTERM or SIGINT arrives: they no longer end the process at once.
fn stop_on_signals() -> io::Result<mpsc::Receiver<()>> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kwatch-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(());
            }
        })?;
    Ok(rx)
}
