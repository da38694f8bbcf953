//! Draws the App: header, the table in view (or the detail pane), footer or filter prompt, help overlay. No clock,
//! no I/O: everything comes from `App`.

mod act;
mod connections;
mod detail;
mod event_log;
mod header;
mod help;
mod processes;
mod replay;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::model::Severity;
use crate::tui::app::{App, View};
use crate::tui::keys::{footer_hints, hint_keys};
use crate::tui::prepare::{ConnSort, ProcSort};

/// Styles, or their monochrome stand-ins under NO_COLOR (bold, reverse, underline only).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn pick(self, colored: Style, mono: Style) -> Style {
        if self.color { colored } else { mono }
    }

    /// A row or marker of a stuck socket.
    pub fn severity(self, sev: Option<Severity>) -> Style {
        match sev {
            Some(Severity::Critical) => self.pick(
                Style::new()
                    .fg(Color::LightRed)
                    .add_modifier(Modifier::BOLD),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Some(Severity::Warning) => self.pick(Style::new().fg(Color::Yellow), Style::new()),
            Some(Severity::Info) => self.pick(Style::new().fg(Color::Cyan), Style::new()),
            None => Style::new(),
        }
    }

    pub fn selected(self) -> Style {
        self.pick(
            Style::new()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn column_header(self) -> Style {
        self.pick(
            Style::new().bg(Color::Green).fg(Color::Black),
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }

    pub fn key(self) -> Style {
        self.pick(
            Style::new().bg(Color::Cyan).fg(Color::Black),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    pub fn label(self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn flag(self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn error(self) -> Style {
        self.pick(
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    pub fn good(self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }

    pub fn dim(self) -> Style {
        self.pick(Style::new().fg(Color::DarkGray), Style::new())
    }

    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

/// One table column: its header, the width its content needs, and how much it matters when space is short.
#[derive(Debug, Clone)]
pub struct Col {
    pub header: String,
    /// Content width (at least the header's).
    pub width: u16,
    /// Lower is more important; columns are dropped from the highest number up.
    pub priority: u8,
    pub right: bool,
    /// Takes the space left over (at least `width`).
    pub flex: bool,
}

/// Layout constraints of the `kept` columns: flexible ones take the space left over, the rest their width.
pub fn constraints(cols: &[Col], kept: &[usize]) -> Vec<Constraint> {
    kept.iter()
        .map(|i| match &cols[*i] {
            c if c.flex => Constraint::Fill(1),
            c => Constraint::Length(c.width),
        })
        .collect()
}

/// Which columns (indices, in display order) fit into `avail` cells with one space between columns.
pub fn fit(cols: &[Col], avail: u16) -> Vec<usize> {
    let mut by_priority: Vec<usize> = (0..cols.len()).collect();
    by_priority.sort_by_key(|i| cols[*i].priority);
    let mut used: u16 = 0;
    let mut kept = Vec::new();
    for i in by_priority {
        let need = cols[i].width + u16::from(!kept.is_empty());
        if used + need <= avail {
            used += need;
            kept.push(i);
        }
    }
    kept.sort_unstable();
    kept
}

/// Gives the kept flex column every cell the others leave, so its text can be cut with `…` at the right place.
pub fn flex_to_rest(cols: &mut [Col], kept: &[usize], avail: u16) {
    let fixed: u16 = kept
        .iter()
        .filter(|i| !cols[**i].flex)
        .map(|i| cols[*i].width)
        .sum();
    let gaps = kept.len().saturating_sub(1) as u16;
    if let Some(flex) = kept.iter().find(|i| cols[**i].flex) {
        cols[*flex].width = avail.saturating_sub(fixed + gaps).max(cols[*flex].width);
    }
}

/// Cuts a line to `width` cells, ending it with `…` when something had to go.
pub fn ellipsize(line: Line<'static>, width: usize) -> Line<'static> {
    if line.width() <= width {
        return line;
    }
    let mut used = 0;
    let mut spans = Vec::new();
    for span in line.spans {
        let len = span.content.chars().count();
        if used + len < width {
            used += len;
            spans.push(span);
            continue;
        }
        let keep = width.saturating_sub(used);
        spans.push(Span::styled(truncate(&span.content, keep), span.style));
        break;
    }
    Line::from(spans)
}

/// Cuts `s` to `width` display cells, ending with `…` when it had to cut.
pub fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// The sort marker after a column header: `▼` natural order, `▲` reversed.
pub fn sort_arrow(reverse: bool) -> &'static str {
    if reverse { "▲" } else { "▼" }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        render(self, area, buf);
    }
}

/// Draws the whole screen.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = Theme { color: app.color };
    // A detail pane on a short screen needs the room more than the header's summary does.
    let compact = app.detail.is_some() && app.view == View::Connections && area.height < 40;
    let full_header_h = if compact { 1 } else { app.header_lines() };
    // The header, a table's title and column line, one row, and the footer: less shows nothing useful.
    let need = (MIN_WIDTH, full_header_h + 3 + 1);
    if area.width < need.0 || area.height < need.1 {
        too_small(need, theme, area, buf);
        return;
    }
    let header_h = full_header_h.min(area.height);
    // A filter error wraps over up to three lines above the prompt.
    let error_h = app
        .prompt
        .as_ref()
        .and_then(|p| p.error.as_ref())
        .map_or(0, |e| {
            let len = e.chars().count() + "error: ".len();
            len.div_ceil(usize::from(area.width.max(1))).min(3) as u16
        });
    let footer_h = 1 + error_h;
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Min(0),
        Constraint::Length(footer_h),
    ])
    .areas(area);
    header::render(app, theme, head, buf);
    match (app.view, app.detail.as_ref()) {
        (View::Connections, Some(detail)) => {
            if body.height >= 30 {
                let table_h = (body.height / 3).max(8);
                let [top, bottom] =
                    Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(body);
                connections::render(app, theme, top, buf);
                detail::render(app, detail, theme, bottom, buf);
            } else {
                detail::render(app, detail, theme, body, buf);
            }
        }
        (View::Connections, None) => connections::render(app, theme, body, buf),
        (View::Processes, _) => processes::render(app, theme, body, buf),
        (View::Log, _) => event_log::render(app, theme, body, buf),
    }
    footer(app, theme, foot, buf);
    if app.help {
        help::render(theme, area, buf);
    }
}

/// The narrowest screen the views can use: the state, the local address and a little more.
pub const MIN_WIDTH: u16 = 40;

/// Instead of a screen with no row and no message: what size is needed, wrapped to whatever width there is.
fn too_small((w, h): (u16, u16), theme: Theme, area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::styled(
            format!(
                "terminal too small (need {w}x{h}, have {}x{})",
                area.width, area.height
            ),
            theme.error(),
        ),
        Line::styled("q quits", theme.dim()),
    ];
    Paragraph::new(lines)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .render(area, buf);
}

/// A message in the middle of an empty table.
fn empty_message(text: &str, hint: &str, theme: Theme, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let y = area.y + area.height / 2;
    let lines = vec![
        Line::from(text.to_string()),
        Line::styled(hint.to_string(), theme.dim()),
    ];
    let rect = Rect {
        y: y.saturating_sub(1).max(area.y),
        height: 2.min(area.height),
        ..area
    };
    Paragraph::new(lines)
        .alignment(Alignment::Center)
        .render(rect, buf);
}

fn footer(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    if replay::footer(app, theme, area, buf) || act::footer(app, theme, area, buf) {
        return;
    }
    if let Some(prompt) = app.prompt.as_ref() {
        let mut area = area;
        if let Some(err) = prompt.error.as_ref() {
            let [error, rest] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
            Paragraph::new(Line::styled(format!("error: {err}"), theme.error()))
                .wrap(Wrap { trim: false })
                .render(error, buf);
            area = rest;
        }
        let rows = Line::from(vec![
            Span::styled(" Filter ", theme.key()),
            Span::raw(" "),
            Span::raw(prompt.text.clone()),
            Span::styled("█", theme.dim()),
            Span::styled("   Enter apply · Esc cancel · empty clears", theme.dim()),
        ]);
        Paragraph::new(rows).render(area, buf);
        return;
    }
    let hints: Vec<(String, &str)> = footer_hints(app.mode(), app.view, app.drill_pid.is_some())
        .iter()
        .map(|(keys, label)| (hint_keys(keys), *label))
        .collect();
    let mut spans = Vec::new();
    for (key, label) in &hints {
        spans.push(Span::styled(key.clone(), theme.key()));
        spans.push(Span::raw(format!("{label} ")));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
    let sort = match app.view {
        View::Connections => format!(
            "sort {}{}",
            app.conn_sort.label(),
            sort_arrow(app.conn_reverse)
        ),
        View::Processes => format!(
            "sort {}{}",
            app.proc_sort.label(),
            sort_arrow(app.proc_reverse)
        ),
        View::Log => String::new(),
    };
    let used: u16 = hints
        .iter()
        .map(|(k, l)| (k.chars().count() + l.chars().count() + 1) as u16)
        .sum();
    if used + sort.chars().count() as u16 + 2 <= area.width {
        Paragraph::new(Line::styled(sort, theme.dim()))
            .alignment(Alignment::Right)
            .render(area, buf);
    }
}

/// Header text of a connections column with the sort arrow when it is the sort column.
fn conn_header(app: &App, name: &str, sort: Option<ConnSort>) -> String {
    match sort {
        Some(s) if s == app.conn_sort => format!("{name}{}", sort_arrow(app.conn_reverse)),
        _ => name.to_string(),
    }
}

/// Header text of a processes column with the sort arrow when it is the sort column.
fn proc_header(app: &App, name: &str, sort: Option<ProcSort>) -> String {
    match sort {
        Some(s) if s == app.proc_sort => format!("{name}{}", sort_arrow(app.proc_reverse)),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(width: u16, priority: u8) -> Col {
        Col {
            header: String::new(),
            width,
            priority,
            right: false,
            flex: false,
        }
    }

    #[test]
    fn fit_drops_least_important_columns_first() {
        let cols = [col(10, 0), col(10, 3), col(10, 1), col(10, 2)];
        assert_eq!(fit(&cols, 43), [0, 1, 2, 3]);
        assert_eq!(fit(&cols, 42), [0, 2, 3]);
        assert_eq!(fit(&cols, 21), [0, 2]);
        assert_eq!(fit(&cols, 5), Vec::<usize>::new());
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("nginx", 5), "nginx");
        assert_eq!(truncate("node_exporter", 6), "node_…");
    }
}
