//! The processes table: one row per process holding sockets, worst first.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, Widget};

use super::connections::{body_cell, header_cell};
use super::{Col, Theme, constraints, empty_message, fit, proc_header};
use crate::analyze::ProcessSummary;
use crate::escape::{escape, escape_cmdline};
use crate::model::{Snapshot, TcpState};
use crate::tui::app::{App, clamp_offset};
use crate::tui::format;
use crate::tui::prepare::{ProcSort, no_keepalive_share};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    Mark,
    Pid,
    User,
    Comm,
    Sockets,
    Estab,
    CloseWait,
    /// Dead sockets it still holds fds of; only shown when some process holds one.
    Dead,
    NoKeepalive,
    Findings,
    /// The service it belongs to with the others (`811/nginx ×3 ~keepalive_off`); blank for a process alone.
    Service,
    Cmd,
}

/// (column, header, priority: lower matters more, right-aligned, cap on content width narrow and wide, sort column)
type Spec = (C, &'static str, u8, bool, (u16, u16), Option<ProcSort>);

const COLUMNS: [Spec; 12] = [
    (C::Mark, "", 0, false, (2, 2), Some(ProcSort::Worst)),
    (C::Pid, "PID", 1, true, (7, 7), Some(ProcSort::Pid)),
    (C::User, "USER", 8, false, (8, 12), None),
    (C::Comm, "COMM", 2, false, (15, 16), Some(ProcSort::Comm)),
    (
        C::Sockets,
        "SOCKS",
        5,
        true,
        (6, 6),
        Some(ProcSort::Sockets),
    ),
    (
        C::Estab,
        "ESTAB",
        6,
        true,
        (6, 6),
        Some(ProcSort::Established),
    ),
    (
        C::CloseWait,
        "CLOSE-WAIT",
        4,
        true,
        (10, 10),
        Some(ProcSort::CloseWait),
    ),
    (C::Dead, "DEAD", 3, true, (4, 4), None),
    (
        C::NoKeepalive,
        "NO-KA",
        7,
        true,
        (6, 6),
        Some(ProcSort::NoKeepalive),
    ),
    (
        C::Findings,
        "FINDINGS",
        3,
        false,
        (24, 60),
        Some(ProcSort::Worst),
    ),
    (C::Service, "SERVICE", 5, false, (22, 40), None),
    (C::Cmd, "COMMAND", 9, false, (20, 20), None),
];

/// Below this width, columns use their narrow caps.
const NARROW: u16 = 120;

fn cell(c: C, p: &ProcessSummary, snap: &Snapshot) -> String {
    match c {
        C::Mark => format::marker(worst(p)).to_string(),
        C::Pid => p.pid.to_string(),
        C::User => p.user.as_deref().map_or_else(
            || {
                snap.processes
                    .get(&p.pid)
                    .and_then(|pr| pr.uid)
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            },
            |u| escape(u).into_owned(),
        ),
        C::Comm => escape(&p.comm).into_owned(),
        C::Sockets => p.sockets.to_string(),
        C::Estab => p
            .by_state
            .get(&TcpState::Established)
            .copied()
            .unwrap_or(0)
            .to_string(),
        C::CloseWait => p.close_wait().to_string(),
        C::Dead if p.held_dead_sockets > 0 => p.held_dead_sockets.to_string(),
        C::Dead => String::new(),
        C::NoKeepalive => format::percent(no_keepalive_share(p)),
        C::Findings => {
            let mut parts: Vec<String> = p
                .findings
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            parts.extend(p.process_findings.iter().map(|f| f.code.to_string()));
            parts.join(", ")
        }
        C::Service => service(p),
        C::Cmd => snap
            .processes
            .get(&p.pid)
            .map(|pr| escape_cmdline(&pr.cmdline))
            .unwrap_or_default(),
    }
}

/// `811/nginx ×3`, then the service's own findings with their markers (`~keepalive_off`): the same for every
/// member, whichever connections each holds. Blank for a process alone.
fn service(p: &ProcessSummary) -> String {
    let Some(s) = &p.service else {
        return String::new();
    };
    let mut out = format!("{}/{} ×{}", s.leader_pid, escape(&s.name), s.members);
    for (code, severity) in &s.findings {
        out.push_str(&format!(" {}{code}", severity.marker()));
    }
    out
}

/// The worst severity among its sockets' findings and its own (process-level) findings; holding a dead socket
/// is a warning.
fn worst(p: &ProcessSummary) -> Option<crate::model::Severity> {
    let held = (p.held_dead_sockets > 0).then_some(crate::model::Severity::Warning);
    p.worst()
        .max(p.process_findings.iter().map(|f| f.severity).max())
        .max(held)
}

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let unowned = app.snapshot.as_ref().map_or(0, |s| {
        s.connections
            .iter()
            .filter(|c| c.owners.is_empty() && app.filter.matches_in(c, s))
            .count()
    });
    let mut title = vec![
        Span::styled(" Processes ", theme.title()),
        Span::raw(format!("{} ", app.procs.len())),
    ];
    if unowned > 0 {
        title.push(Span::styled(
            format!(" +{unowned} sockets with no known owner "),
            theme.dim(),
        ));
    }
    if !app.filter_text.is_empty() {
        title.push(Span::styled(
            format!(" filter: {} ", app.filter_text),
            theme.flag(),
        ));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);

    let Some(snap) = app.snapshot.as_ref() else {
        empty_message("taking the first snapshot…", "", theme, inner, buf);
        return;
    };
    if app.procs.is_empty() {
        let hint = if app.filter_text.is_empty() {
            ""
        } else {
            "/ edit the filter · Esc clear it"
        };
        let what = if app.filter_text.is_empty() {
            "no process holds a TCP socket kwatch can see".to_string()
        } else {
            format!("no process has connections matching '{}'", app.filter_text)
        };
        empty_message(&what, hint, theme, inner, buf);
        return;
    }

    let page = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = clamp_offset(app.proc_offset, app.proc_sel, page);
    let visible: Vec<&ProcessSummary> = app.procs.iter().skip(offset).take(page).collect();
    let any_dead = app.procs.iter().any(|p| p.held_dead_sockets > 0);
    let specs: Vec<&Spec> = COLUMNS
        .iter()
        .filter(|s| s.0 != C::Dead || any_dead)
        .collect();
    let cells: Vec<Vec<String>> = visible
        .iter()
        .map(|p| specs.iter().map(|col| cell(col.0, p, snap)).collect())
        .collect();
    let mut cols: Vec<Col> = specs
        .iter()
        .enumerate()
        .map(|(i, (c, name, priority, right, (narrow, wide), sort))| {
            let cap = if inner.width < NARROW { *narrow } else { *wide };
            let header = if *c == C::Mark {
                String::new()
            } else {
                proc_header(app, name, *sort)
            };
            let content = cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0) as u16;
            Col {
                width: content.min(cap).max(header.chars().count() as u16),
                header,
                priority: *priority,
                right: *right,
                flex: *c == C::Cmd,
            }
        })
        .collect();
    let kept = fit(&cols, inner.width);
    super::flex_to_rest(&mut cols, &kept, inner.width);
    let header = Row::new(kept.iter().map(|i| header_cell(&cols[*i]))).style(theme.column_header());
    let rows = visible
        .iter()
        .zip(&cells)
        .enumerate()
        .map(|(n, (p, texts))| {
            let style = if offset + n == app.proc_sel {
                theme.selected()
            } else {
                theme.severity(worst(p))
            };
            Row::new(kept.iter().map(|i| body_cell(&cols[*i], &texts[*i]))).style(style)
        });
    let widths = constraints(&cols, &kept);
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(inner, buf);
}
