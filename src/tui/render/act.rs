//! The footer line of `K` and `E`: the y/N question while it waits, then the outcome for a few seconds.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::Theme;
use crate::escape::escape;
use crate::tui::app::{App, STATUS_MS};

/// Draws the question or a recent outcome in the footer; false when there is neither (the hints show).
pub fn footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) -> bool {
    let line = if let Some(pending) = app.confirm.as_ref() {
        Line::from(vec![
            Span::styled(" y/N ", theme.key()),
            Span::raw(" "),
            Span::styled(pending.question(), theme.flag()),
            Span::styled("  (y: yes, any other key: no)", theme.dim()),
        ])
    } else if let Some((text, _)) = app
        .status
        .as_ref()
        .filter(|(_, at)| app.now_ms.saturating_sub(*at) < STATUS_MS)
    {
        Line::from(vec![
            Span::styled(" K/E ", theme.key()),
            Span::raw(" "),
            Span::raw(escape(text).into_owned()),
        ])
    } else {
        return false;
    };
    Paragraph::new(line).render(area, buf);
    true
}
