//! `kwatch replay`: the snapshot of a recorded moment as the live `--once` prints it, and the events of a window
//! as `--watch` prints them, rebuilt from the store.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use jiff::tz::TimeZone;
use serde::Serialize;

use super::frame::{Decoded, Decoder, FLAG_DEATHS, FLAG_SESSION_START, Frame};
use super::store::{self, Kind, Payload, Shard, ShardReader, StoreError};
use super::time::format_local;
use crate::events::{Event, Tracker, human_line};
use crate::filter::Filter;
use crate::model::Connection;
use crate::output::{json, table};

/// Reads a store's frames in order, from the key frame before a moment on, across shards.
pub struct Cursor {
    shards: Vec<Shard>,
    /// Index in `shards` of the open one.
    at: usize,
    reader: Option<ShardReader>,
    /// Next entry of `reader` to read.
    entry: usize,
    decoder: Decoder,
}

impl Cursor {
    /// A cursor whose next frame is the key frame from which the frame at `t_ms` decodes (or the first frame of
    /// the store when `t_ms` is before it).
    pub fn seek(dir: &Path, t_ms: u64) -> Result<Cursor, StoreError> {
        let shards = store::list(dir)?;
        let at = shards.iter().rposition(|s| s.start_ms <= t_ms).unwrap_or(0);
        let reader = ShardReader::open(&shards[at].path)?;
        let entry = reader
            .entries
            .iter()
            .rposition(|e| e.kind == Kind::Key && e.time_ms <= t_ms)
            .unwrap_or(0);
        Ok(Cursor {
            shards,
            at,
            reader: Some(reader),
            entry,
            decoder: Decoder::new(),
        })
    }

    /// Time of the next frame, opening the next shard when this one is read through.
    pub fn peek(&mut self) -> Result<Option<u64>, StoreError> {
        loop {
            if let Some(reader) = &self.reader
                && let Some(e) = reader.entries.get(self.entry)
            {
                return Ok(Some(e.time_ms));
            }
            if !self.next_shard()? {
                return Ok(None);
            }
        }
    }

    fn next_shard(&mut self) -> Result<bool, StoreError> {
        self.at += 1;
        self.entry = 0;
        self.reader = None;
        match self.shards.get(self.at) {
            None => Ok(false),
            Some(shard) => {
                // Removed by retention since the store was listed: the next one goes on.
                match ShardReader::open(&shard.path) {
                    Ok(r) => self.reader = Some(r),
                    Err(StoreError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(true)
            }
        }
    }

    /// Decodes the next frame; `None` at the end of the recording. A frame cut short (torn by a crash, or being
    /// written) ends its shard.
    pub fn advance(&mut self) -> Result<Option<(u64, Decoded)>, StoreError> {
        loop {
            let Some(time) = self.peek()? else {
                return Ok(None);
            };
            let Some(reader) = self.reader.as_mut() else {
                continue;
            };
            let i = self.entry;
            let entry = reader.entries[i];
            match reader.frame(i)? {
                Payload::Torn => {
                    self.entry = reader.entries.len();
                    continue;
                }
                Payload::Frame(bytes) => {
                    self.entry += 1;
                    let key = entry.kind == Kind::Key;
                    let decoded = self.decoder.decode(&bytes, key, time).map_err(|e| {
                        StoreError::Damaged {
                            path: reader.path.clone(),
                            offset: entry.offset,
                            what: e.to_string(),
                        }
                    })?;
                    return Ok(Some((time, decoded)));
                }
            }
        }
    }

    /// The snapshot of the frame [`Cursor::advance`] returned last.
    pub fn frame(&self, decoded: Decoded) -> Option<Frame> {
        self.decoder.frame(decoded)
    }

    /// How many frames of the open shard from the next one on were recorded at or before `t_ms` (after
    /// [`Cursor::seek`] to `t_ms`: the frames from the key frame to `t_ms`, which are all in that shard).
    pub fn pending_until(&self, t_ms: u64) -> usize {
        self.reader.as_ref().map_or(0, |r| {
            r.entries
                .iter()
                .skip(self.entry)
                .take_while(|e| e.time_ms <= t_ms)
                .count()
        })
    }

    /// Time of the store's first frame.
    pub fn first_time(&self) -> u64 {
        self.shards.first().map_or(0, |s| s.start_ms)
    }
}

/// Reads the frames from the key frame before `t_ms` to it (at least one) without building their snapshots:
/// a store that cannot be shown there is an error naming its file before anything else happens.
pub fn check(dir: &Path, t_ms: u64) -> Result<(), StoreError> {
    let mut cursor = Cursor::seek(dir, t_ms)?;
    let mut read = false;
    while let Some(time) = cursor.peek()? {
        if time > t_ms && read {
            break;
        }
        read |= cursor.advance()?.is_some();
    }
    Ok(())
}

/// The last frame recorded at or before `t_ms`.
pub fn frame_at(dir: &Path, t_ms: u64) -> anyhow::Result<Frame> {
    let mut cursor = Cursor::seek(dir, t_ms)?;
    let mut last = None;
    while let Some(time) = cursor.peek()? {
        if time > t_ms {
            break;
        }
        last = cursor.advance()?;
    }
    let tz = TimeZone::system();
    match last.and_then(|(_, d)| cursor.frame(d)) {
        Some(frame) => Ok(frame),
        None => bail!(
            "nothing recorded at or before {} in '{}': the recording starts at {}",
            format_local(t_ms, &tz),
            dir.display(),
            format_local(cursor.first_time(), &tz)
        ),
    }
}

/// What `kwatch replay --once` prints.
#[derive(Debug, Clone)]
pub struct OnceConfig {
    pub dir: PathBuf,
    pub at_ms: u64,
    pub filter: Filter,
    /// `None`: JSON.
    pub table: Option<table::TableOptions>,
}

/// The `replay` member the JSON document adds to the live schema.
#[derive(Debug, Serialize)]
struct ReplayInfo {
    /// When the shown refresh was taken (equal to `taken_at_unix_ms`).
    recorded_at_unix_ms: u64,
    /// The moment asked for (`--at`); the refresh shown is the last one recorded at or before it.
    requested_unix_ms: u64,
}

/// Prints the recorded moment as `kwatch --once [--json]` printed it then.
pub fn once(cfg: &OnceConfig, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut frame = frame_at(&cfg.dir, cfg.at_ms)?;
    let snapshot = &mut frame.snapshot;
    crate::collect::sort_by_address(&mut snapshot.connections);
    let snapshot = &frame.snapshot;
    let recorded = snapshot.taken_at_unix_ms;
    let tz = TimeZone::system();
    if cfg.at_ms.saturating_sub(recorded) > GAP_MS {
        eprintln!(
            "kwatch: warning: nothing recorded between {} and {}; showing {}",
            format_local(recorded, &tz),
            format_local(cfg.at_ms, &tz),
            format_local(recorded, &tz)
        );
    }
    let conns: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| cfg.filter.matches_in(c, snapshot))
        .collect();
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    match &cfg.table {
        None => {
            let mut doc = Vec::with_capacity(1 << 16);
            json::write(
                &mut doc,
                snapshot,
                &conns,
                started.elapsed().as_micros() as u64,
            )?;
            // The live document plus one member at its end: `,"replay":{…}}`.
            let body = doc
                .strip_suffix(b"}\n")
                .context("the JSON document does not end as expected")?;
            out.write_all(body)?;
            out.write_all(b",\"replay\":")?;
            serde_json::to_writer(
                &mut *out,
                &ReplayInfo {
                    recorded_at_unix_ms: recorded,
                    requested_unix_ms: cfg.at_ms,
                },
            )?;
            out.write_all(b"}\n")?;
        }
        Some(opts) => {
            writeln!(out, "REPLAY recorded {}", format_local(recorded, &tz))?;
            table::write(out, snapshot, &conns, opts)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A moment further than this after the last recorded refresh gets a warning: the recorder was not running.
const GAP_MS: u64 = 60_000;

/// What `kwatch replay --events` prints.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub dir: PathBuf,
    pub from_ms: u64,
    pub to_ms: u64,
    pub filter: Filter,
    pub ndjson: bool,
}

/// Prints the state changes and deaths of a window in the `--watch` formats: the recorded snapshots and destroy
/// notifications go through the same tracker the live `--watch` uses, from the key frame before the window on.
pub fn events(cfg: &EventsConfig, out: &mut impl Write) -> anyhow::Result<()> {
    let mut cursor = Cursor::seek(&cfg.dir, cfg.from_ms)?;
    let mut tracker = Tracker::new();
    let mut started = false;
    let emit = |out: &mut dyn Write, e: &Event| -> io::Result<()> {
        if cfg.ndjson {
            serde_json::to_writer(&mut *out, e)?;
            out.write_all(b"\n")
        } else {
            writeln!(out, "{}", human_line(e))
        }
    };
    let mut stepped = false;
    // Notifications lost since the window's start.
    let mut lost_total = 0;
    while let Some(time) = cursor.peek()? {
        if time > cfg.to_ms {
            break;
        }
        let Some((time, decoded)) = cursor.advance()? else {
            break;
        };
        let Some(frame) = cursor.frame(decoded) else {
            continue;
        };
        let in_window = time >= cfg.from_ms;
        if frame.flags & FLAG_SESSION_START != 0 && stepped {
            // The recorder was restarted: what happened in between is unknown.
            tracker = Tracker::new();
            if in_window && started {
                emit(
                    out,
                    &Event::Warning {
                        time_unix_ms: time,
                        message:
                            "the recording resumes here: changes and deaths before this moment \
                                  and since the last refresh were not recorded"
                                .to_string(),
                    },
                )?;
            }
        }
        let evidence = &frame.evidence;
        let events = tracker.step(
            &frame.snapshot,
            &cfg.filter,
            &evidence.destroyed,
            time,
            &mut |inode, owner| evidence.holds(inode, owner),
        );
        stepped = true;
        if !in_window {
            continue;
        }
        if !started {
            started = true;
            emit(
                out,
                &Event::Start {
                    time_unix_ms: time,
                    sockets: tracker.watched() as u64,
                    destroy_events: frame.flags & FLAG_DEATHS != 0,
                },
            )?;
        }
        if evidence.lost > 0 {
            lost_total += evidence.lost;
            emit(
                out,
                &Event::Lost {
                    time_unix_ms: time,
                    notifications: evidence.lost,
                    total: lost_total,
                },
            )?;
        }
        for e in &events {
            emit(out, e)?;
        }
    }
    out.flush()?;
    if !started {
        let tz = TimeZone::system();
        bail!(
            "nothing recorded between {} and {} in '{}'",
            format_local(cfg.from_ms, &tz),
            format_local(cfg.to_ms, &tz),
            cfg.dir.display()
        );
    }
    Ok(())
}
