//! `kwatch replay DIR --once` and `--events`: the snapshot of a recorded moment as the live `--once` prints it,
//! and the events of a window as `--watch` prints them, rebuilt from the recording. (Without either, `run` opens
//! the live view on the recording.)

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::collect;
use crate::config::Config;
use crate::events::{Tracker, WatchEvent};
use crate::model::Connection;
use crate::moment::format_local;
use crate::output::event_line;
use crate::output::{json, table};
use crate::recording::cursor::{Cursor, frame_at};
use crate::recording::frame::{FLAG_DEATHS, FLAG_SESSION_START};

/// The `replay` member the JSON document adds to the live schema.
#[derive(Debug, Serialize)]
struct ReplayInfo {
    /// When the shown refresh was taken (equal to `taken_at_unix_ms`).
    recorded_at_unix_ms: u64,
    /// The moment asked for (`--at`); the refresh shown is the last one recorded at or before it.
    requested_unix_ms: u64,
}

/// Prints the refresh recorded at or before `at_ms` as `kwatch --once` (`as_json`: `--once --json`) printed it then, the sockets
/// `config`'s filter shows.
pub fn once(
    dir: &Path,
    at_ms: u64,
    as_json: bool,
    config: &Config,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut frame = frame_at(dir, at_ms)?;
    let snapshot = &mut frame.snapshot;
    collect::sort_by_address(&mut snapshot.connections);
    let snapshot = &frame.snapshot;
    let recorded = snapshot.taken_at_unix_ms;
    let tz = TimeZone::system();
    if at_ms.saturating_sub(recorded) > GAP_MS {
        eprintln!(
            "kwatch: warning: nothing recorded between {} and {}; showing {}",
            format_local(recorded, &tz),
            format_local(at_ms, &tz),
            format_local(recorded, &tz)
        );
    }
    let conns: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| config.filter.matches_in(c, snapshot))
        .collect();
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    if as_json {
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
                requested_unix_ms: at_ms,
            },
        )?;
        out.write_all(b"}\n")?;
    } else {
        writeln!(out, "REPLAY recorded {}", format_local(recorded, &tz))?;
        table::write(out, snapshot, &conns, &config.table_options())?;
    }
    out.flush()?;
    Ok(())
}

/// A moment further than this after the last recorded refresh gets a warning: the recorder was not running.
const GAP_MS: u64 = 60_000;

/// Prints the state changes and deaths of a window in the `--watch` formats: the recorded snapshots and destroy
/// notifications go through the same tracker the live `--watch` uses, from the key frame before the window on.
pub fn events(
    dir: &Path,
    (from_ms, to_ms): (u64, u64),
    ndjson: bool,
    config: &Config,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut cursor = Cursor::seek(dir, from_ms)?;
    let mut tracker = Tracker::new();
    let mut started = false;
    let emit = |out: &mut dyn Write, e: &WatchEvent| event_line::write_line(out, e, ndjson);
    let mut stepped = false;
    // Notifications lost since the window's start.
    let mut lost_total = 0;
    while let Some(time) = cursor.peek()? {
        if time > to_ms {
            break;
        }
        let Some((time, decoded)) = cursor.advance()? else {
            break;
        };
        let Some(frame) = cursor.frame(decoded) else {
            continue;
        };
        let in_window = time >= from_ms;
        if frame.flags & FLAG_SESSION_START != 0 && stepped {
            // The recorder was restarted: what happened in between is unknown.
            tracker = Tracker::new();
            if in_window && started {
                emit(
                    out,
                    &WatchEvent::Warning {
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
            &config.filter,
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
                &WatchEvent::Start {
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
                &WatchEvent::Lost {
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
            format_local(from_ms, &tz),
            format_local(to_ms, &tz),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Args;
    use crate::events::Evidence;
    use crate::model::{Owner, Process, Snapshot, TcpState};
    use crate::recording::Recorder;
    use crate::recording::codec::tests::busy_connection;
    use crate::recording::store::Retention;

    /// A recording of one socket owned by `comm`, ESTABLISHED and then CLOSE_WAIT.
    fn recording(dir: &Path, comm: &str) {
        let keep_all = Retention {
            max_age_ms: u64::MAX,
            max_bytes: u64::MAX,
        };
        let (mut recorder, warnings) = Recorder::open(dir, keep_all).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        for (time, state) in [(1_000, TcpState::Established), (2_000, TcpState::CloseWait)] {
            let mut snapshot = Snapshot {
                taken_at_unix_ms: time,
                ..Default::default()
            };
            snapshot.processes.insert(
                7,
                Process {
                    pid: 7,
                    comm: comm.to_string(),
                    cmdline: Vec::new(),
                    uid: None,
                    user: None,
                },
            );
            let mut c = busy_connection();
            c.state = state;
            c.owners = [Owner { pid: 7, fd: 3 }].into();
            snapshot.connections.push(c);
            recorder
                .append(std::sync::Arc::new(snapshot), &Evidence::default(), false)
                .unwrap();
        }
        recorder.sync().unwrap();
    }

    #[test]
    fn events_are_written_as_watch_writes_them_bidi_escaped_in_ndjson() {
        let dir = tempfile::tempdir().unwrap();
        let name = "evil\u{202e}gnp.exe\u{2066}";
        recording(dir.path(), name);
        let config = Config::new(&Args::parse_from(["kwatch"]));
        let mut out = Vec::new();
        events(dir.path(), (0, 10_000), true, &config, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "a start and the state change: {text}");
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{2066}'),
            "{text:?}"
        );
        assert!(
            lines[1].contains("\\u202e") && lines[1].contains("\\u2066"),
            "{text:?}"
        );
        let change: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(change["event"], "state");
        assert_eq!(change["comm"], name);

        let mut out = Vec::new();
        events(dir.path(), (0, 10_000), false, &config, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{202e}'), "{text:?}");
    }
}
