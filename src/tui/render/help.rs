//! The help overlay: every key, and what the markers and timer words mean.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use super::Theme;
use crate::model::Severity;
use crate::tui::keys::HELP;

const KEYS: usize = 16;

pub fn render(theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<KEYS$}"), theme.label()),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    let mut marks = vec![Span::styled(
        format!(" {:<KEYS$}", "markers"),
        theme.label(),
    )];
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        marks.push(Span::styled(
            format!(
                "{} {}  ",
                crate::tui::format::marker(Some(sev)).trim_end(),
                sev.label()
            ),
            theme.severity(Some(sev)),
        ));
    }
    lines.push(Line::from(marks));
    lines.push(Line::from(vec![
        Span::styled(format!(" {:<KEYS$}", "timers"), theme.label()),
        Span::raw("keepalive · retrans · persist (zero window) · timewait"),
    ]));
    lines.push(Line::from(vec![
        Span::styled(format!(" {:<KEYS$}", "columns"), theme.label()),
        Span::raw("PROBES unanswered probes or retransmits; IDLE since rx"),
    ]));
    lines.push(Line::from(vec![
        Span::raw(format!(" {:<KEYS$}", "")),
        Span::raw(format!(
            "KEEPALIVE idle/intvl/cnt, {} assumed; SERVICE its group",
            crate::format::ASSUMED_MARK
        )),
    ]));
    if usize::from(area.height) > lines.len() + 3 {
        lines.insert(HELP.len(), Line::default());
    }
    let width = area.width.saturating_sub(4).min(78);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(
            Block::new()
                .borders(Borders::ALL)
                .title(Line::styled(" kwatch keys ", theme.title()))
                .title_bottom(Line::styled(" Esc or ? closes ", theme.dim()).right_aligned()),
        )
        .render(rect, buf);
}
