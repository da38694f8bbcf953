//! The source thread of the live view on a recording (`kwatch replay DIR`): reads the recording and feeds the UI
//! the way the collector thread ([`super::event`]) does, snapshots with their rows and watch events, moving
//! through recorded time as the UI's [`Go`] messages say.
//!
//! Moving to a moment shows its refresh at once; then the refreshes before it (up to a sparkline's worth, from
//! the key frame before the moment) are read again to rebuild the detail pane's samples and the event log as a
//! live view running then would have had them.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;

use crate::events::{Tracker, WatchEvent};
use crate::filter::Filter;
use crate::model::Snapshot;
use crate::moment::format_local;
use crate::recording::cursor::Cursor;
use crate::recording::frame::{FLAG_DEATHS, FLAG_SESSION_START, Frame};
use crate::recording::store::StoreError;
use crate::tui::event::{Control, UiEvent};
use crate::tui::history::{History, SAMPLES};
use crate::tui::prepare::{ViewSpec, prepare};
use crate::tui::replay::{Go, Message, PLAY_STEP, Source};

/// Starts the thread that reads the recording: the refresh at `source.at_ms` first, then as `Go` messages say,
/// until the UI hangs up `control`.
pub fn spawn(
    source: Source,
    tx: Sender<UiEvent>,
    control: Receiver<Control>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kwatch-replay".into())
        .spawn(move || {
            let mut reader = Reader {
                source,
                tx,
                view: None,
                cursor: None,
                shown: None,
                tracker: Tracker::new(),
                pending: None,
            };
            let _ = reader.run(control);
        })
}

/// The source thread's state.
struct Reader {
    source: Source,
    tx: Sender<UiEvent>,
    view: Option<ViewSpec>,
    /// Positioned after the refresh shown.
    cursor: Option<Cursor>,
    /// Time of the refresh shown.
    shown: Option<u64>,
    /// The event tracker, stepped up to the refresh shown.
    tracker: Tracker,
    /// A message that arrived while the history was being rebuilt: acted on next.
    pending: Option<Control>,
}

/// The UI hung up.
struct Gone;

impl Reader {
    fn run(&mut self, control: Receiver<Control>) -> Result<(), Gone> {
        let mut playing = false;
        self.go_to(self.source.at_ms, &control)?;
        loop {
            let message = match self.pending.take() {
                Some(m) => m,
                None if playing => match control.recv_timeout(PLAY_STEP) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => Control::Replay(Go::Next),
                    Err(RecvTimeoutError::Disconnected) => return Err(Gone),
                },
                None => control.recv().map_err(|_| Gone)?,
            };
            match message {
                Control::View(v) => self.view = Some(*v),
                Control::Retire(old) => drop(old),
                // Never sent on a recording (`replay::intercept` answers K and E), but never silent either.
                Control::Act(_) => self.send(UiEvent::ActDone(
                    "a recording cannot be changed: K and E act on live sockets".to_string(),
                ))?,
                Control::Replay(Go::Play(on)) => playing = on,
                Control::Replay(Go::Next) => {
                    if !self.next()? && playing {
                        playing = false;
                        self.send(UiEvent::Replay(Message::Stopped))?;
                    }
                }
                Control::Replay(Go::Prev) => match self.shown {
                    Some(t) if t > 0 => self.go_to_before(t, &control)?,
                    _ => {}
                },
                Control::Replay(Go::By(d)) => {
                    let t = self.shown.unwrap_or(self.source.at_ms);
                    let to = if d < 0 {
                        t.saturating_sub(d.unsigned_abs())
                    } else {
                        t.saturating_add(d as u64)
                    };
                    self.go_to(to, &control)?;
                }
                Control::Replay(Go::To(t)) => self.go_to(t, &control)?,
            }
        }
    }

    fn send(&self, event: UiEvent) -> Result<(), Gone> {
        self.tx.send(event).map_err(|_| Gone)
    }

    fn status(&self, line: String) -> Result<(), Gone> {
        self.send(UiEvent::Replay(Message::Status(line)))
    }

    fn error(&self, e: &StoreError) -> Result<(), Gone> {
        self.send(UiEvent::CollectorError(e.to_string()))
    }

    /// Sends a refresh with its rows for the view the UI last sent.
    fn show(&mut self, snapshot: Snapshot) -> Result<(), Gone> {
        self.shown = Some(snapshot.taken_at_unix_ms);
        let prepared = self.view.as_ref().map(|v| Box::new(prepare(&snapshot, v)));
        self.send(UiEvent::Snapshot(std::sync::Arc::new(snapshot), prepared))
    }

    /// Shows the refresh after the one shown; false at the end of the recording.
    fn next(&mut self) -> Result<bool, Gone> {
        let Some(shown) = self.shown else {
            return Ok(false);
        };
        // Read through: the recorder may have written more since; the store is listed again.
        let at_end = match self.cursor.as_mut().map(Cursor::peek) {
            Some(Ok(Some(_))) => false,
            Some(Err(e)) => return self.error(&e).map(|()| false),
            _ => true,
        };
        if at_end {
            match self.reopen_after(shown) {
                Ok(true) => {}
                Ok(false) => {
                    self.status("the last refresh recorded".to_string())?;
                    return Ok(false);
                }
                Err(e) => return self.error(&e).map(|()| false),
            }
        }
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(false);
        };
        let frame = match cursor.advance() {
            Ok(Some((_, decoded))) => cursor.frame(decoded),
            Ok(None) => None,
            Err(e) => return self.error(&e).map(|()| false),
        };
        let Some(frame) = frame else {
            return Ok(false);
        };
        let events = step(&mut self.tracker, &frame);
        if !events.is_empty() {
            self.send(UiEvent::Log(events))?;
        }
        self.show(frame.snapshot)?;
        Ok(true)
    }

    /// A cursor on the store as it is now, positioned after the refresh at `shown`; false when none follows.
    fn reopen_after(&mut self, shown: u64) -> Result<bool, StoreError> {
        let mut cursor = Cursor::seek(&self.source.dir, shown)?;
        while let Some(t) = cursor.peek()? {
            if t > shown {
                self.cursor = Some(cursor);
                return Ok(true);
            }
            cursor.advance()?;
        }
        Ok(false)
    }

    /// Shows the refresh before the one at `shown`.
    fn go_to_before(&mut self, shown: u64, control: &Receiver<Control>) -> Result<(), Gone> {
        let first = Cursor::seek(&self.source.dir, 0).map(|c| c.first_time());
        match first {
            Ok(first) if shown <= first => self.status("the first refresh recorded".to_string()),
            _ => self.go_to(shown - 1, control),
        }
    }

    /// Shows the last refresh recorded at or before `t` (the first one when none is), then rebuilds the session
    /// before it.
    fn go_to(&mut self, t: u64, control: &Receiver<Control>) -> Result<(), Gone> {
        let shown = match self.read_at(t) {
            Ok(Some(frame)) => frame,
            Ok(None) => return self.status("nothing recorded".to_string()),
            Err(e) => return self.error(&e),
        };
        let at = shown.snapshot.taken_at_unix_ms;
        if t < at {
            self.status(format!(
                "the recording starts at {}",
                format_local(at, &self.source.tz)
            ))?;
        }
        let flags = shown.flags;
        self.show(shown.snapshot)?;
        self.tracker = Tracker::new();
        match self.warm(at, flags, control) {
            Ok(Some((history, events))) => {
                self.send(UiEvent::Replay(Message::Warm(Box::new(history), events)))
            }
            Ok(None) => Ok(()),
            Err(e) => self.error(&e),
        }
    }

    /// The frame shown for `t`, with the cursor left after it.
    fn read_at(&mut self, t: u64) -> Result<Option<Frame>, StoreError> {
        let mut cursor = Cursor::seek(&self.source.dir, t)?;
        let mut last = None;
        while let Some(time) = cursor.peek()? {
            if time > t && last.is_some() {
                break;
            }
            last = cursor.advance()?;
        }
        let frame = last.and_then(|(_, d)| cursor.frame(d));
        self.cursor = Some(cursor);
        Ok(frame)
    }

    /// Reads the refreshes up to `at` again, from the key frame before the one before `at` (the last [`SAMPLES`] of
    /// them in full): the history and events a live view would have had at `at`; every change since the key frame
    /// before `at` is among them, one in that key frame's refresh included. `None` when the UI asked for something
    /// else meanwhile (kept in `pending`): a history half rebuilt is not sent.
    fn warm(
        &mut self,
        at: u64,
        flags: u64,
        control: &Receiver<Control>,
    ) -> Result<Option<(History, Vec<WatchEvent>)>, StoreError> {
        let dir = &self.source.dir;
        let mut cursor = Cursor::seek(dir, at)?;
        // A change in the key frame's own refresh shows only against the refresh before it: start at the key frame
        // before that one when the recording has one (at most about a key frame's bytes more to decode).
        if let Some(key) = cursor.peek()?
            && key > cursor.first_time()
        {
            cursor = Cursor::seek(dir, key - 1)?;
        }
        // Refreshes before the last sparkline's worth are decoded, not shown; the one just before those is stepped
        // in the tracker, so that a change in the first refresh shown is one.
        let skip = cursor.pending_until(at).saturating_sub(SAMPLES);
        for _ in 1..skip {
            cursor.advance()?;
        }
        let mut history = History::default();
        let mut tracker = Tracker::new();
        if skip > 0
            && let Some(frame) = cursor.advance()?.and_then(|(_, d)| cursor.frame(d))
        {
            step(&mut tracker, &frame);
        }
        let mut events = vec![WatchEvent::Start {
            time_unix_ms: at,
            sockets: 0,
            destroy_events: flags & FLAG_DEATHS != 0,
        }];
        while let Some(time) = cursor.peek()? {
            if time > at {
                break;
            }
            match control.try_recv() {
                Ok(Control::View(v)) => self.view = Some(*v),
                Ok(Control::Retire(old)) => drop(old),
                Ok(other) => {
                    self.pending = Some(other);
                    return Ok(None);
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Ok(None),
            }
            let Some(frame) = cursor.advance()?.and_then(|(_, d)| cursor.frame(d)) else {
                continue;
            };
            if frame.flags & FLAG_SESSION_START != 0 {
                // The recorder restarted: a live view would have started again too.
                history = History::default();
                tracker = Tracker::new();
                events.clear();
            }
            events.extend(step(&mut tracker, &frame));
            history.observe(&frame.snapshot, frame.snapshot.taken_at_unix_ms, None);
        }
        if let Some(WatchEvent::Start { sockets, .. }) = events.first_mut() {
            *sockets = tracker.watched() as u64;
        }
        self.tracker = tracker;
        Ok(Some((history, events)))
    }
}

/// The watch events of one recorded refresh, from what the recorder heard and found then.
fn step(tracker: &mut Tracker, frame: &Frame) -> Vec<WatchEvent> {
    let time = frame.snapshot.taken_at_unix_ms;
    let evidence = &frame.evidence;
    let mut events = Vec::new();
    if evidence.lost > 0 {
        events.push(WatchEvent::Lost {
            time_unix_ms: time,
            notifications: evidence.lost,
            total: evidence.lost,
        });
    }
    events.extend(tracker.step(
        &frame.snapshot,
        &Filter::default(),
        &evidence.destroyed,
        time,
        &mut |inode, owner| evidence.holds(inode, owner),
    ));
    events
}
