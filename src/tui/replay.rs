//! The live view on a recording (`kwatch replay DIR`): a source thread that reads the store and feeds the UI
//! the way the collector thread does (snapshots with their rows, watch events), the keys that move through
//! recorded time, and what the header and footer show of it.
//!
//! Moving to a moment shows its refresh at once; then the refreshes before it (up to a sparkline's worth, from
//! the key frame before the moment) are read again to rebuild the detail pane's samples and the event log as a
//! live view running then would have had them.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use jiff::tz::TimeZone;

use crate::events::{Event as WatchEvent, Tracker};
use crate::filter::Filter;
use crate::model::Snapshot;
use crate::record::frame::{FLAG_DEATHS, FLAG_SESSION_START, Frame};
use crate::record::replay::Cursor;
use crate::record::store::StoreError;
use crate::record::time::{format_local, parse_time};
use crate::tui::app::{Action, App, Mode, Prompt, ViewSpec, prepare, update};
use crate::tui::event::{Control, Event};
use crate::tui::history::{History, SAMPLES};
use crate::tui::keys;
use crate::tui::log::Log;

/// Where the replay starts: a recording and a moment in it.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    /// The first refresh shown is the last one recorded at or before this (the first one when none is).
    pub at_ms: u64,
    pub tz: TimeZone,
}

/// A move through recorded time, from a key to the source thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    /// The refresh recorded before the one shown.
    Prev,
    /// The refresh recorded after the one shown (also one written since replay started).
    Next,
    /// The last refresh at or before the one shown plus this many milliseconds (negative: back).
    By(i64),
    /// The last refresh at or before this moment (Unix ms).
    To(u64),
    /// Play (one recorded refresh after another) or pause.
    Play(bool),
}

/// One minute and one hour, the jumps of `[` `]` and `{` `}`.
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

/// While playing, the next recorded refresh is shown this long after the last one.
pub const PLAY_STEP: Duration = Duration::from_millis(1000);

/// What the UI keeps of the replay: the time zone of the times it shows, whether it plays, the `t` prompt.
#[derive(Debug, Clone)]
pub struct Replay {
    pub tz: TimeZone,
    pub playing: bool,
    /// The `t` prompt while it is open.
    pub prompt: Option<Prompt>,
}

impl Replay {
    pub fn new(tz: TimeZone) -> Replay {
        Replay {
            tz,
            playing: false,
            prompt: None,
        }
    }

    /// A recorded moment as the header shows it.
    pub fn format(&self, ms: u64) -> String {
        format_local(ms, &self.tz)
    }
}

/// What a key does in a replay, before the live view's own key map is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayKey {
    Go(Go),
    /// Space: play or pause.
    TogglePlay,
    /// `t`: open the time prompt.
    OpenPrompt,
    PromptChar(char),
    PromptBackspace,
    PromptApply,
    PromptCancel,
}

/// Maps a key to a replay action: every key while the time prompt is open, the replay keys while browsing
/// (`browsing`: no filter prompt, help or confirmation open). `None`: the live view's key map decides.
pub fn map_key(prompt_open: bool, browsing: bool, key: KeyEvent) -> Option<ReplayKey> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if prompt_open {
        return match key.code {
            KeyCode::Char('c') if ctrl => None,
            KeyCode::Esc => Some(ReplayKey::PromptCancel),
            KeyCode::Enter => Some(ReplayKey::PromptApply),
            KeyCode::Backspace => Some(ReplayKey::PromptBackspace),
            KeyCode::Char(c) if !ctrl => Some(ReplayKey::PromptChar(c)),
            _ => Some(ReplayKey::PromptCancel),
        };
    }
    if !browsing || ctrl {
        return None;
    }
    Some(match key.code {
        KeyCode::Left | KeyCode::Char(',') => ReplayKey::Go(Go::Prev),
        KeyCode::Right | KeyCode::Char('.') => ReplayKey::Go(Go::Next),
        KeyCode::Char('[') => ReplayKey::Go(Go::By(-MINUTE_MS)),
        KeyCode::Char(']') => ReplayKey::Go(Go::By(MINUTE_MS)),
        KeyCode::Char('{') => ReplayKey::Go(Go::By(-HOUR_MS)),
        KeyCode::Char('}') => ReplayKey::Go(Go::By(HOUR_MS)),
        KeyCode::Char('t') => ReplayKey::OpenPrompt,
        KeyCode::Char(' ') => ReplayKey::TogglePlay,
        _ => return None,
    })
}

/// Resolves what was typed at the `t` prompt against the wall clock `now_ms`.
pub fn resolve(text: &str, now_ms: u64, tz: &TimeZone) -> Result<u64, String> {
    parse_time(text)?.resolve(now_ms, tz)
}

/// Handles what is the replay's own before the live view's event handling: its keys, the live view's keys
/// that make no sense on a recording (`K`, `E`), and the source thread's messages. Gives the event back when it
/// is not the replay's; `wall_ms` (the wall clock) resolves typed times like `-2h`.
pub fn intercept(
    app: &mut App,
    ev: Event,
    control: &Sender<Control>,
    wall_ms: u64,
) -> Option<Event> {
    if app.replay.is_none() {
        return Some(ev);
    }
    match ev {
        Event::Replay(Message::Warm(history, events)) => {
            app.history = *history;
            app.log = Log::default();
            app.held_log.clear();
            app.log_sel = 0;
            app.log_offset = 0;
            update(app, Action::Log(events));
            None
        }
        Event::Replay(Message::Status(line)) => {
            app.status = Some((line, app.now_ms));
            None
        }
        Event::Replay(Message::Stopped) => {
            if let Some(r) = app.replay.as_mut() {
                r.playing = false;
            }
            None
        }
        Event::Key(key) => {
            let mode = app.mode();
            let prompt_open = app.replay.as_ref().is_some_and(|r| r.prompt.is_some());
            let browsing = matches!(mode, Mode::Browse | Mode::Detail);
            match map_key(prompt_open, browsing, key) {
                Some(k) => apply(app, k, control, wall_ms),
                None => match keys::map_key(mode, key) {
                    Some(Action::Kill | Action::EnableKeepalive) => {
                        app.status = Some((
                            "a recording cannot be changed: K and E act on live sockets"
                                .to_string(),
                            app.now_ms,
                        ));
                    }
                    _ => return Some(Event::Key(key)),
                },
            }
            None
        }
        other => Some(other),
    }
}

fn apply(app: &mut App, key: ReplayKey, control: &Sender<Control>, wall_ms: u64) {
    let Some(replay) = app.replay.as_mut() else {
        return;
    };
    let mut go = None;
    match key {
        ReplayKey::Go(g) => go = Some(g),
        ReplayKey::TogglePlay => {
            replay.playing = !replay.playing;
            go = Some(Go::Play(replay.playing));
        }
        ReplayKey::OpenPrompt => {
            replay.prompt = Some(Prompt {
                text: String::new(),
                error: None,
            })
        }
        ReplayKey::PromptChar(c) => {
            if let Some(p) = replay.prompt.as_mut() {
                p.text.push(c);
                p.error = None;
            }
        }
        ReplayKey::PromptBackspace => {
            if let Some(p) = replay.prompt.as_mut() {
                p.text.pop();
                p.error = None;
            }
        }
        ReplayKey::PromptCancel => replay.prompt = None,
        ReplayKey::PromptApply => {
            if let Some(p) = replay.prompt.as_mut() {
                match resolve(&p.text, wall_ms, &replay.tz) {
                    Ok(t) => {
                        replay.prompt = None;
                        go = Some(Go::To(t));
                    }
                    Err(e) => p.error = Some(e),
                }
            }
        }
    }
    if let Some(g) = go {
        if !matches!(g, Go::Play(_)) {
            app.status = None;
        }
        let _ = control.send(Control::Replay(g));
    }
}

/// What the source thread sends besides snapshots, logs and errors.
#[derive(Debug)]
pub enum Message {
    /// The session as a live view would have had it at the refresh just sent: the sockets' history (samples,
    /// time in state) and the events of the refreshes before it. Replaces the UI's.
    Warm(Box<History>, Vec<WatchEvent>),
    /// A line for the footer: the start or end of the recording was reached, a time could not be shown.
    Status(String),
    /// Playing stopped (at the end of the recording).
    Stopped,
}

/// Starts the thread that reads the recording: the refresh at `source.at_ms` first, then as `Go` messages say,
/// until the UI hangs up `control`.
pub fn spawn_source(
    source: Source,
    tx: Sender<Event>,
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
    tx: Sender<Event>,
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
                Control::Refresh => {}
                Control::Replay(Go::Play(on)) => playing = on,
                Control::Replay(Go::Next) => {
                    if !self.next()? && playing {
                        playing = false;
                        self.send(Event::Replay(Message::Stopped))?;
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

    fn send(&self, event: Event) -> Result<(), Gone> {
        self.tx.send(event).map_err(|_| Gone)
    }

    fn status(&self, line: String) -> Result<(), Gone> {
        self.send(Event::Replay(Message::Status(line)))
    }

    fn error(&self, e: &StoreError) -> Result<(), Gone> {
        self.send(Event::CollectorError(e.to_string()))
    }

    /// Sends a refresh with its rows for the view the UI last sent.
    fn show(&mut self, snapshot: Snapshot) -> Result<(), Gone> {
        self.shown = Some(snapshot.taken_at_unix_ms);
        let prepared = self.view.as_ref().map(|v| Box::new(prepare(&snapshot, v)));
        self.send(Event::Snapshot(Box::new(snapshot), prepared))
    }

    /// Shows the refresh after the one shown; false at the end of the recording.
    fn next(&mut self) -> Result<bool, Gone> {
        let Some(shown) = self.shown else {
            return Ok(false);
        };
        // Read through: the recorder may have written more since; the store is listed again.
        let at_end = match self.cursor.as_mut().map(|c| c.peek()) {
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
            self.send(Event::Log(events))?;
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
                self.send(Event::Replay(Message::Warm(Box::new(history), events)))
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

    /// Reads the refreshes up to `at` again, the last [`SAMPLES`] of them (from the key frame before `at` on) in
    /// full: the history and events a live view would have had at `at`. `None` when the UI asked for something
    /// else meanwhile (kept in `pending`): a history half rebuilt is not sent.
    fn warm(
        &mut self,
        at: u64,
        flags: u64,
        control: &Receiver<Control>,
    ) -> Result<Option<(History, Vec<WatchEvent>)>, StoreError> {
        let mut cursor = Cursor::seek(&self.source.dir, at)?;
        let skip = cursor.pending_until(at).saturating_sub(SAMPLES);
        for _ in 0..skip {
            cursor.advance()?;
        }
        let mut history = History::default();
        let mut tracker = Tracker::new();
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn replay_key_table() {
        use KeyCode::*;
        for (code, want) in [
            (Left, Some(ReplayKey::Go(Go::Prev))),
            (Char(','), Some(ReplayKey::Go(Go::Prev))),
            (Right, Some(ReplayKey::Go(Go::Next))),
            (Char('.'), Some(ReplayKey::Go(Go::Next))),
            (Char('['), Some(ReplayKey::Go(Go::By(-MINUTE_MS)))),
            (Char(']'), Some(ReplayKey::Go(Go::By(MINUTE_MS)))),
            (Char('{'), Some(ReplayKey::Go(Go::By(-HOUR_MS)))),
            (Char('}'), Some(ReplayKey::Go(Go::By(HOUR_MS)))),
            (Char('t'), Some(ReplayKey::OpenPrompt)),
            (Char(' '), Some(ReplayKey::TogglePlay)),
            // The live view's keys stay the live view's.
            (Char('/'), None),
            (Char('q'), None),
            (Down, None),
            (Tab, None),
        ] {
            assert_eq!(map_key(false, true, press(code)), want, "{code:?}");
        }
        // With the filter prompt, help or a question open, the live view's map decides.
        assert_eq!(map_key(false, false, press(Char('t'))), None);
        // The time prompt takes every key.
        for (code, want) in [
            (Char('q'), ReplayKey::PromptChar('q')),
            (Char(':'), ReplayKey::PromptChar(':')),
            (Backspace, ReplayKey::PromptBackspace),
            (Enter, ReplayKey::PromptApply),
            (Esc, ReplayKey::PromptCancel),
            (Tab, ReplayKey::PromptCancel),
        ] {
            assert_eq!(map_key(true, true, press(code)), Some(want), "{code:?}");
        }
        let ctrl_c = KeyEvent::new(Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map_key(true, true, ctrl_c), None, "Ctrl-C still quits");
    }

    #[test]
    fn typed_times_resolve_or_say_why_not() {
        let tz = TimeZone::UTC;
        // 2026-12-05 04:00:00 UTC.
        let now = 1_796_443_200_000;
        assert_eq!(resolve("-2h", now, &tz), Ok(now - 7_200_000));
        assert_eq!(resolve("03:12", now, &tz), Ok(now - 48 * 60_000));
        assert_eq!(
            resolve("2026-12-05 03:12:30", now, &tz),
            Ok(now - 47 * 60_000 - 30_000)
        );
        let err = resolve("3:12", now, &tz).unwrap_err();
        assert!(err.contains("invalid time '3:12'"), "{err}");
    }
}
