//! `kwatch record` and `kwatch replay`: the flight recorder. Every refresh's snapshot and the destroy
//! notifications received before it are kept in a store of kwatch's own ([`store`], format in
//! docs/recording.md), as frames that hold only what changed ([`frame`]); replay rebuilds the snapshot of any
//! recorded moment and shows it with the live output code.

pub mod codec;
pub mod frame;
pub mod replay;
pub mod store;
pub mod time;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::collect::{self, Collector, Options};
use crate::events::{Event, Evidence, Feed};
use crate::filter::Filter;
use crate::model::{Connection, Snapshot};
use crate::output::json;
use crate::pace::{Pace, process_cpu};
use frame::{Encoder, FLAG_DEATHS, FLAG_SESSION_START};
use store::{Kind, Retention, Writer};

/// What `kwatch record` needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub dir: PathBuf,
    pub options: Options,
    /// Sockets recorded (filters given with `record` narrow the recording).
    pub filter: Filter,
    pub pace: Pace,
    pub retention: Retention,
    /// Test hook: also append each refresh's `--once --json` document to this file.
    pub json_log: Option<PathBuf>,
}

/// How long the loop sleeps at a time while waiting for the next refresh, so that a stop signal is acted on soon.
const WAKE: Duration = Duration::from_millis(50);

/// Records until SIGTERM or SIGINT: a snapshot as often as the pace says, appended to the store with the destroy
/// notifications received before it; retention enforced after every refresh. A failed write (a full disk) ends
/// the recording with an error; the store keeps every refresh before it.
pub fn record(cfg: &RecordConfig) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let mut recorder = Recorder::open(&cfg.dir, cfg.retention)?;
    let mut feed = Feed::open(&cfg.options.netns, &cfg.options.proc_root);
    feed.keep_evidence();
    let mut json_log = match &cfg.json_log {
        Some(path) => Some(BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open '{}'", path.display()))?,
        )),
        None => None,
    };
    let mut collector = Collector::new(cfg.options.clone());
    let mut pace = cfg.pace.clone();
    while !stop.load(Ordering::Relaxed) {
        let (started, cpu) = (Instant::now(), process_cpu());
        // Notifications first, then the dump: a socket destroyed in between is still in the feed's memory.
        feed.drain();
        let mut snapshot = collector.collect().context("cannot take a snapshot")?;
        keep_matching(&mut snapshot, &cfg.filter);
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

/// A store being written: each refresh appended as a frame of what changed since the one before, retention
/// enforced after each. Used by `kwatch record` and `kwatch serve --record`.
pub struct Recorder {
    writer: Writer,
    encoder: Encoder,
    /// Flags of the next frame.
    flags: u64,
}

impl Recorder {
    /// Opens (or creates) the store in `dir`, after its last good entry; what was skipped is warned of on stderr.
    pub fn open(dir: &Path, retention: Retention) -> anyhow::Result<Recorder> {
        let (writer, warnings) =
            Writer::open(dir, retention).context("cannot open the recording")?;
        for w in warnings {
            eprintln!("kwatch: warning: {w}");
        }
        Ok(Recorder {
            writer,
            encoder: Encoder::new(),
            flags: FLAG_SESSION_START,
        })
    }

    /// Appends one refresh: its snapshot (taken over), what the feed heard and found before it, and whether a
    /// destroy notification subscription was open (deaths are recorded). Then removes what retention says.
    pub fn append(
        &mut self,
        snapshot: Snapshot,
        evidence: &Evidence,
        listening: bool,
    ) -> anyhow::Result<()> {
        const KEPT: &str = "cannot record; the recording keeps every refresh before this one";
        let time = snapshot.taken_at_unix_ms;
        let key = self.writer.begin(time).context(KEPT)?;
        if listening {
            self.flags |= FLAG_DEATHS;
        }
        let bytes = self.encoder.encode(snapshot, evidence, key, self.flags);
        let kind = if key { Kind::Key } else { Kind::Delta };
        self.writer.append(kind, time, &bytes).context(KEPT)?;
        self.flags = 0;
        self.writer.enforce(unix_ms()).context(KEPT)?;
        Ok(())
    }

    /// Writes what the system still buffers to disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.writer.sync().context("cannot record")?;
        Ok(())
    }
}

/// Says on stderr what the recorder's feed warns of: namespaces without destroy notifications, lost ones.
fn warn(event: &Event) {
    match event {
        Event::Warning { message, .. } => eprintln!("kwatch: warning: {message}"),
        Event::Start {
            destroy_events: false,
            ..
        } => eprintln!("kwatch: warning: deaths are not recorded: no destroy notifications"),
        Event::Lost { notifications, .. } => eprintln!(
            "kwatch: warning: {notifications} destroy notifications were lost: deaths in that time may be \
             missing"
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

/// The wall clock, milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
