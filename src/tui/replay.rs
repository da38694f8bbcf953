//! The live view on a recording (`kwatch replay DIR`), on the UI thread: what the keys that move through recorded
//! time do (mapped in [`super::keys`]), the `t` prompt, and what the source thread ([`super::playback`]) sends
//! besides snapshots. No I/O here.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::events::WatchEvent;
use crate::moment::{format_local, parse_time};
use crate::tui::app::{Action, App, Mode, Prompt, update};
use crate::tui::event::{Control, UiEvent};
use crate::tui::event_log::EventLog;
use crate::tui::history::History;
use crate::tui::keys;

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
pub const PLAY_STEP: Duration = Duration::from_secs(1);

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

/// Resolves what was typed at the `t` prompt against the wall clock `now_ms`.
pub fn resolve(text: &str, now_ms: u64, tz: &TimeZone) -> Result<u64, String> {
    parse_time(text)?.resolve(now_ms, tz)
}

/// Handles what is the replay's own before the live view's event handling: its keys, the live view's keys
/// that make no sense on a recording (`K`, `E`), and the source thread's messages. Gives the event back when it
/// is not the replay's; `wall_ms` (the wall clock) resolves typed times like `-2h`.
pub fn intercept(
    app: &mut App,
    ev: UiEvent,
    control: &Sender<Control>,
    wall_ms: u64,
) -> Option<UiEvent> {
    if app.replay.is_none() {
        return Some(ev);
    }
    match ev {
        UiEvent::Replay(Message::Warm(history, events)) => {
            app.history.lock().history = *history;
            app.log = EventLog::default();
            app.held_log.clear();
            app.log_sel = 0;
            app.log_offset = 0;
            update(app, Action::Log(events));
            None
        }
        UiEvent::Replay(Message::Status(line)) => {
            app.status = Some((line, app.now_ms));
            None
        }
        UiEvent::Replay(Message::Stopped) => {
            if let Some(r) = app.replay.as_mut() {
                r.playing = false;
            }
            None
        }
        UiEvent::Key(key) => {
            let mode = app.mode();
            let prompt_open = app.replay.as_ref().is_some_and(|r| r.prompt.is_some());
            let browsing = matches!(mode, Mode::Browse | Mode::Detail);
            match keys::map_replay_key(prompt_open, browsing, key) {
                Some(k) => apply(app, k, control, wall_ms),
                None => match keys::map_key(mode, key) {
                    Some(Action::Kill | Action::EnableKeepalive) => {
                        app.status = Some((
                            "a recording cannot be changed: K and E act on live sockets"
                                .to_string(),
                            app.now_ms,
                        ));
                    }
                    _ => return Some(UiEvent::Key(key)),
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
            });
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
