//! The connections table: one row per socket, stuck rows marked, columns dropped by priority when narrow.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Row, Table, Widget};

use super::{Col, Theme, conn_header, constraints, empty_message, fit, truncate};
use crate::escape::escape;
use crate::model::{Connection, Snapshot, UnitKind};
use crate::tui::app::{App, clamp_offset};
use crate::tui::format;
use crate::tui::prepare::ConnSort;

/// Columns in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    Mark,
    /// Only with more than one network namespace (`--all-netns`).
    Netns,
    State,
    Local,
    LPort,
    Peer,
    Timer,
    Probes,
    /// The socket's effective keepalive settings (`300/100/3`, `7200/75/9*` assumed, `off`); only shown when some
    /// socket has settings.
    Keepalive,
    RecvQ,
    SendQ,
    Idle,
    Process,
    Findings,
}

/// (column, header, priority: lower matters more, right-aligned, cap on content width narrow and wide, sort column)
type Spec = (C, &'static str, u8, bool, (u16, u16), Option<ConnSort>);

const COLUMNS: [Spec; 14] = [
    (C::Mark, "", 0, false, (2, 2), Some(ConnSort::Severity)),
    (C::Netns, "NETNS", 6, false, (12, 28), None),
    (C::State, "STATE", 1, false, (10, 10), Some(ConnSort::State)),
    (
        C::Local,
        "LOCAL",
        11,
        false,
        (22, 46),
        Some(ConnSort::Local),
    ),
    (C::LPort, "LPORT", 7, true, (6, 6), Some(ConnSort::Local)),
    (C::Peer, "PEER", 2, false, (22, 46), Some(ConnSort::Peer)),
    (C::Timer, "TIMER", 3, false, (16, 16), Some(ConnSort::Timer)),
    (C::Probes, "PROBES", 8, true, (6, 6), Some(ConnSort::Probes)),
    (C::Keepalive, "KEEPALIVE", 6, false, (10, 12), None),
    (C::RecvQ, "RECV-Q", 9, true, (6, 6), Some(ConnSort::RecvQ)),
    (C::SendQ, "SEND-Q", 10, true, (6, 6), Some(ConnSort::SendQ)),
    (C::Idle, "IDLE", 6, true, (8, 8), Some(ConnSort::Idle)),
    (
        C::Process,
        "PID/PROCESS",
        4,
        false,
        (14, 24),
        Some(ConnSort::Process),
    ),
    (C::Findings, "FINDINGS", 5, false, (10, 10), None),
];

/// Width from which findings show their sentence, not just their code.
const WIDE: u16 = 160;
/// Below this width, columns use their narrow caps.
const NARROW: u16 = 120;

fn cell(c: C, conn: &Connection, snap: &Snapshot, wide: bool) -> String {
    match c {
        C::Mark => format::marker(conn.worst()).to_string(),
        C::Netns => netns(conn, snap),
        C::State => conn.state.label().to_string(),
        C::Local => format::endpoint(conn.local_addr, conn.local_port),
        C::LPort => conn.local_port.to_string(),
        C::Peer => format::peer(conn),
        C::Timer => format::timer(conn),
        C::Probes => format::probes(conn),
        C::Keepalive => crate::format::compact(conn.keepalive.as_deref()),
        C::RecvQ => format::bytes_short(u64::from(conn.recv_q)),
        C::SendQ => format::bytes_short(u64::from(conn.send_q)),
        C::Idle => format::idle(conn),
        C::Process => format::owner(conn, snap),
        C::Findings if wide => format::finding_long(conn),
        C::Findings => format::finding_codes(conn),
    }
}

/// `web`, `ns:4026532`, `ns:4026532 docker:3f4e1b2c9d8a` (the container its owner runs in).
fn netns(conn: &Connection, snap: &Snapshot) -> String {
    let Some(ns) = &conn.netns else {
        return "-".to_string();
    };
    match snap.unit_of(conn).filter(|u| u.kind != UnitKind::Systemd) {
        Some(unit) => escape(&format!("{} {}", ns.label(), unit.label())).into_owned(),
        None => escape(&ns.label()).into_owned(),
    }
}

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let total = app.snapshot.as_ref().map_or(0, |s| s.connections.len());
    let mut title = vec![Span::styled(" Connections ", theme.title())];
    title.push(Span::raw(format!("{} of {total} ", app.rows.len())));
    if let Some(pid) = app.drill_pid {
        let comm = app.snapshot.as_ref().map_or("?", |s| s.comm(pid));
        title.push(Span::styled(
            format!(" process {pid}/{} ", escape(comm)),
            theme.flag(),
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
    if app.rows.is_empty() {
        if snap.connections.is_empty() {
            empty_message("no TCP sockets in this namespace", "", theme, inner, buf);
        } else {
            let what = match (app.filter_text.is_empty(), app.drill_pid) {
                (false, _) => format!("no connections match '{}'", app.filter_text),
                (true, Some(pid)) => format!("process {pid} holds no TCP sockets now"),
                (true, None) => "no connections".to_string(),
            };
            empty_message(&what, "/ edit the filter · Esc clear it", theme, inner, buf);
        }
        return;
    }

    let page = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = clamp_offset(app.conn_offset, app.conn_sel, page);
    let visible: Vec<&Connection> = app
        .rows
        .iter()
        .skip(offset)
        .take(page)
        .filter_map(|i| snap.connections.get(*i))
        .collect();
    let wide = inner.width >= WIDE;
    // One namespace: no column for it; no socket with settings: no column of dashes.
    let any_keepalive = app.counts.with_keepalive > 0;
    let columns: Vec<&Spec> = COLUMNS
        .iter()
        .filter(|c| c.0 != C::Netns || snap.namespaces.len() > 1)
        .filter(|c| c.0 != C::Keepalive || any_keepalive)
        .collect();
    let cells: Vec<Vec<String>> = visible
        .iter()
        .map(|conn| {
            columns
                .iter()
                .map(|col| cell(col.0, conn, snap, wide))
                .collect()
        })
        .collect();

    let mut cols: Vec<Col> = columns
        .iter()
        .copied()
        .enumerate()
        .map(|(i, (c, name, priority, right, (narrow, wide), sort))| {
            let cap = if inner.width < NARROW { *narrow } else { *wide };
            let header = if *c == C::Mark {
                String::new()
            } else {
                conn_header(app, name, *sort)
            };
            let content = cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0) as u16;
            let min = if *c == C::Findings {
                10
            } else {
                header.chars().count() as u16
            };
            Col {
                header,
                width: content.min(cap).max(min),
                priority: *priority,
                right: *right,
                flex: *c == C::Findings,
            }
        })
        .collect();
    // The full local address replaces the port column when the screen has room for it.
    let local = columns.iter().position(|c| c.0 == C::Local).unwrap_or(0);
    let lport = columns.iter().position(|c| c.0 == C::LPort).unwrap_or(0);
    let mut kept = fit(&cols, inner.width);
    if kept.contains(&local) {
        kept.retain(|i| *i != lport);
    } else {
        let spare = inner.width.saturating_sub(used(&cols, &kept));
        if kept.contains(&lport) && spare >= cols[local].width.saturating_sub(cols[lport].width) {
            kept.retain(|i| *i != lport);
            kept.push(local);
            kept.sort_unstable();
        }
    }
    super::flex_to_rest(&mut cols, &kept, inner.width);

    let header = Row::new(kept.iter().map(|i| header_cell(&cols[*i]))).style(theme.column_header());
    let rows = visible
        .iter()
        .zip(&cells)
        .enumerate()
        .map(|(n, (conn, texts))| {
            let selected = offset + n == app.conn_sel;
            let style = if selected {
                theme.selected()
            } else {
                theme.severity(conn.worst())
            };
            Row::new(kept.iter().map(|i| body_cell(&cols[*i], &texts[*i]))).style(style)
        });
    let widths = constraints(&cols, &kept);
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(inner, buf);
}

fn used(cols: &[Col], kept: &[usize]) -> u16 {
    let widths: u16 = kept.iter().map(|i| cols[*i].width).sum();
    widths + kept.len().saturating_sub(1) as u16
}

pub(super) fn header_cell(col: &Col) -> Cell<'static> {
    let text = Line::from(col.header.clone());
    Cell::from(if col.right {
        text.right_aligned()
    } else {
        text
    })
}

pub(super) fn body_cell(col: &Col, text: &str) -> Cell<'static> {
    let text = truncate(text, usize::from(col.width));
    let line = Line::from(text);
    Cell::from(Text::from(if col.right {
        line.right_aligned()
    } else {
        line
    }))
}
