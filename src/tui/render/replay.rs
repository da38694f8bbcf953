//! What a replay adds to the screen: REPLAY and the recorded time in the header, the `t` prompt and the replay
//! keys in the footer (from the key table of [`crate::tui::keys`]).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::Theme;
use crate::escape::escape;
use crate::model::Snapshot;
use crate::tui::app::{App, Mode};
use crate::tui::keys::{hint_keys, replay_hints};
use crate::tui::replay::Replay;

/// The header's first spans after the name: `REPLAY 2026-12-05 03:12:30.000 UTC`, and whether it plays.
pub fn header(replay: &Replay, snapshot: Option<&Snapshot>, theme: Theme) -> Vec<Span<'static>> {
    let mut spans = vec![Span::raw("  "), Span::styled(" REPLAY ", theme.key())];
    if let Some(snap) = snapshot {
        spans.push(Span::styled(
            format!(" {}", replay.format(snap.taken_at_unix_ms)),
            theme.flag(),
        ));
    }
    if replay.playing {
        spans.push(Span::raw(" ▶ playing"));
    }
    spans
}

/// Draws the footer of a replay when it has one to show: the time prompt, a line from the replay, or the
/// replay's keys. False when the live view's footer applies (not a replay, the filter prompt, a question).
pub fn footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) -> bool {
    let Some(replay) = app.replay.as_ref() else {
        return false;
    };
    let line = if let Some(prompt) = replay.prompt.as_ref() {
        let mut spans = vec![
            Span::styled(" Go to ", theme.key()),
            Span::raw(" "),
            Span::raw(escape(&prompt.text).into_owned()),
            Span::styled("█", theme.dim()),
        ];
        match prompt.error.as_ref() {
            Some(e) => spans.push(Span::styled(format!("   {}", escape(e)), theme.error())),
            None => spans.push(Span::styled(
                "   03:12 · 2026-12-05 03:12:30 · -2h   Enter go · Esc cancel",
                theme.dim(),
            )),
        }
        Line::from(spans)
    } else if !matches!(app.mode(), Mode::Browse | Mode::Detail) {
        return false;
    } else if let Some((text, _)) = app.status.as_ref() {
        Line::from(vec![
            Span::styled(" REPLAY ", theme.key()),
            Span::raw(" "),
            Span::raw(escape(text).into_owned()),
        ])
    } else {
        let mut spans = Vec::new();
        for (keys, label) in replay_hints(replay.playing) {
            spans.push(Span::styled(hint_keys(keys), theme.key()));
            spans.push(Span::raw(format!("{label} ")));
        }
        Line::from(spans)
    };
    Paragraph::new(line).render(area, buf);
    true
}
