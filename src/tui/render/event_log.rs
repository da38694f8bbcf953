//! The log view (`L`): dead sockets programs still hold, then deaths and state changes of watched sockets,
//! newest first.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, Widget};

use super::connections::{body_cell, header_cell};
use super::{Col, Theme, constraints, empty_message, fit};
use crate::escape::escape;
use crate::events::{SocketId, WatchEvent};
use crate::model::keepalive::DeathCause;
use crate::model::{HeldDeadSocket, Owner, Severity, Snapshot, TcpInfo, TcpState};
use crate::tui::app::{App, HELD_ROWS, clamp_offset};
use crate::tui::format;

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let [held_area, log_area] = Layout::vertical([
        Constraint::Length(app.held_lines().min(area.height)),
        Constraint::Min(0),
    ])
    .areas(area);
    if let Some(snap) = app.snapshot.as_ref().filter(|s| !s.held_dead.is_empty()) {
        held(app, snap, theme, held_area, buf);
    }
    events(app, theme, log_area, buf);
}

/// (header, priority: lower matters more, right-aligned, cap on content width, takes the rest)
type Spec = (&'static str, u8, bool, u16, bool);

/// Builds the columns for `cells` and draws them as a table under `block`; `selected` is a row index.
fn table(
    specs: &[Spec],
    cells: Vec<(Option<Severity>, Vec<String>)>,
    selected: Option<usize>,
    theme: Theme,
    area: Rect,
    buf: &mut Buffer,
) {
    let mut cols: Vec<Col> = specs
        .iter()
        .enumerate()
        .map(|(i, (header, priority, right, cap, flex))| {
            let content = cells
                .iter()
                .map(|(_, r)| r[i].chars().count())
                .max()
                .unwrap_or(0) as u16;
            Col {
                header: header.to_string(),
                width: content.min(*cap).max(header.chars().count() as u16),
                priority: *priority,
                right: *right,
                flex: *flex,
            }
        })
        .collect();
    let kept = fit(&cols, area.width);
    super::flex_to_rest(&mut cols, &kept, area.width);
    let header = Row::new(kept.iter().map(|i| header_cell(&cols[*i]))).style(theme.column_header());
    let rows = cells.iter().enumerate().map(|(n, (sev, texts))| {
        let style = if Some(n) == selected {
            theme.selected()
        } else {
            theme.severity(*sev)
        };
        Row::new(kept.iter().map(|i| body_cell(&cols[*i], &texts[*i]))).style(style)
    });
    let widths = constraints(&cols, &kept);
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(area, buf);
}

const HELD_COLUMNS: [Spec; 7] = [
    ("", 0, false, 2, false),
    ("PROCESS", 1, false, 16, false),
    ("FD", 2, true, 5, false),
    ("LOCAL", 5, false, 47, false),
    ("LAST PEER", 4, false, 47, false),
    ("CAUSE", 3, false, 20, false),
    ("FINAL COUNTERS", 6, false, 30, true),
];

fn held(app: &App, snap: &Snapshot, theme: Theme, area: Rect, buf: &mut Buffer) {
    let n = snap.held_dead.len();
    let more = n.saturating_sub(HELD_ROWS);
    let mut title = vec![
        Span::styled(" Dead sockets still held ", theme.title()),
        Span::raw(format!("{n} ")),
        Span::styled(
            " the kernel ended them; these fds were never closed ",
            theme.dim(),
        ),
    ];
    if more > 0 {
        title.push(Span::styled(format!(" +{more} more "), theme.flag()));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);
    let cells = snap
        .held_dead
        .iter()
        .take(HELD_ROWS)
        .map(|g| (Some(cause_severity(g.cause)), held_cells(app, snap, g)))
        .collect();
    table(&HELD_COLUMNS, cells, None, theme, inner, buf);
}

fn held_cells(app: &App, snap: &Snapshot, g: &HeldDeadSocket) -> Vec<String> {
    let local = match (g.local_addr, g.local_port) {
        (Some(a), Some(p)) => format::endpoint(a, p),
        _ => "?".to_string(),
    };
    vec![
        format::marker(Some(cause_severity(g.cause))).to_string(),
        format!("{}/{}", g.pid, escape(snap.comm(g.pid))),
        g.fd.to_string(),
        local,
        last_peer(app, g).unwrap_or_else(|| "?".to_string()),
        cause_name(g.cause),
        counters(g.tcp_info.as_ref()),
    ]
}

/// The peer of a held dead socket, from the log's event of its leaving the dump under the same pid and fd.
fn last_peer(app: &App, g: &HeldDeadSocket) -> Option<String> {
    let owner = Owner {
        pid: g.pid,
        fd: g.fd,
    };
    app.log.iter().find_map(|e| match e {
        WatchEvent::State { socket, owners, .. } if owners.contains(&owner) => {
            Some(format::endpoint(socket.peer_addr, socket.peer_port))
        }
        _ => None,
    })
}

fn counters(info: Option<&TcpInfo>) -> String {
    match info {
        Some(i) => format!(
            "{} probes, {} retransmits",
            i.probes().unwrap_or(0),
            i.retransmits().unwrap_or(0)
        ),
        None => String::new(),
    }
}

const LOG_COLUMNS: [Spec; 6] = [
    ("", 0, false, 2, false),
    ("TIME", 1, false, 8, false),
    ("PROCESS", 3, false, 16, false),
    ("LOCAL", 5, false, 47, false),
    ("PEER", 4, false, 47, false),
    ("WHAT", 2, false, 44, true),
];

fn events(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut title = vec![
        Span::styled(" Event log ", theme.title()),
        Span::raw(format!("{} ", app.log.len())),
        Span::styled(" newest first · times UTC ", theme.dim()),
    ];
    if app.destroy_events == Some(false) {
        title.push(Span::styled(" no destroy events ", theme.flag()));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);
    if app.log.is_empty() {
        empty_message(
            "nothing has happened yet",
            "deaths and state changes of the sockets kwatch has seen appear here",
            theme,
            inner,
            buf,
        );
        return;
    }
    let page = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = clamp_offset(app.log_offset, app.log_sel, page);
    let cells = app
        .log
        .iter()
        .skip(offset)
        .take(page)
        .map(|e| (severity(e), event_cells(e)))
        .collect();
    table(
        &LOG_COLUMNS,
        cells,
        app.log_sel.checked_sub(offset),
        theme,
        inner,
        buf,
    );
}

/// How bad an event is: deaths by timeout critical, resets and sockets that left the dump under a held fd
/// warnings.
fn severity(e: &WatchEvent) -> Option<Severity> {
    match e {
        WatchEvent::Destroy { cause, .. } => Some(cause_severity(*cause))
            .filter(|_| !matches!(cause, DeathCause::Closed | DeathCause::Unknown)),
        WatchEvent::State { to, .. } if to.0 == TcpState::Close => Some(Severity::Warning),
        WatchEvent::Warning { .. } | WatchEvent::Lost { .. } => Some(Severity::Warning),
        _ => None,
    }
}

fn cause_severity(cause: DeathCause) -> Severity {
    match cause {
        DeathCause::KeepaliveExhausted | DeathCause::RetransmitTimeout => Severity::Critical,
        DeathCause::Reset => Severity::Warning,
        DeathCause::Closed | DeathCause::Unknown => Severity::Info,
    }
}

/// The cause as JSON names it: `keepalive_exhausted`, `reset`, ...
fn cause_name(cause: DeathCause) -> String {
    serde_json::to_value(cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `ESTAB`, `CLOSE-WAIT`; a socket that left the dump is `CLOSED`.
fn state_label(s: TcpState) -> &'static str {
    match s {
        TcpState::Close => "CLOSED",
        s => s.label(),
    }
}

/// `ESTAB, 9 probes`, `FIN-WAIT-2`: the last state seen and the final counters that are not zero.
fn last_counts(last: TcpState, probes: Option<u8>, retransmits: Option<u8>) -> String {
    let mut parts = vec![state_label(last).to_string()];
    let plural = |n: u8, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if let Some(n) = probes.filter(|n| *n > 0) {
        parts.push(plural(n, "probe", "probes"));
    }
    if let Some(n) = retransmits.filter(|n| *n > 0) {
        parts.push(plural(n, "retransmit", "retransmits"));
    }
    parts.join(", ")
}

/// `05:10:03` (UTC).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn who(owners: &[Owner], comm: Option<&String>) -> String {
    match (owners.first(), comm) {
        (Some(o), Some(c)) => format!("{}/{}", o.pid, escape(c)),
        (Some(o), None) => o.pid.to_string(),
        _ => String::new(),
    }
}

/// Local and peer endpoints; a listener's peer is `*`.
fn ends(s: &SocketId) -> (String, String) {
    let peer = if s.peer_port == 0 && s.peer_addr.is_unspecified() {
        "*".to_string()
    } else {
        format::endpoint(s.peer_addr, s.peer_port)
    };
    (format::endpoint(s.local_addr, s.local_port), peer)
}

/// Cells of an event about no socket: marker, time, what happened.
fn note(mark: String, time_unix_ms: u64, what: String) -> Vec<String> {
    vec![
        mark,
        clock(time_unix_ms),
        String::new(),
        String::new(),
        String::new(),
        what,
    ]
}

/// Cells: marker, time, process, local, peer, what happened.
fn event_cells(e: &WatchEvent) -> Vec<String> {
    let mark = format::marker(severity(e)).to_string();
    match e {
        WatchEvent::Start {
            time_unix_ms,
            sockets,
            destroy_events,
        } => {
            let what = if *destroy_events {
                format!("watching {sockets} sockets")
            } else {
                format!("watching {sockets} sockets (no destroy events)")
            };
            vec![
                mark,
                clock(*time_unix_ms),
                String::new(),
                String::new(),
                String::new(),
                what,
            ]
        }
        WatchEvent::State {
            time_unix_ms,
            socket,
            owners,
            comm,
            from,
            to,
        } => {
            let (local, peer) = ends(socket);
            let what = if to.0 == TcpState::Close {
                format!(
                    "{} -> CLOSED: left the dump, fd still held",
                    state_label(from.0)
                )
            } else {
                format!("{} -> {}", state_label(from.0), state_label(to.0))
            };
            vec![
                mark,
                clock(*time_unix_ms),
                who(owners, comm.as_ref()),
                local,
                peer,
                what,
            ]
        }
        WatchEvent::Destroy {
            time_unix_ms,
            socket,
            owners,
            comm,
            last_state,
            probes,
            retransmits,
            cause,
        } => {
            let (local, peer) = ends(socket);
            vec![
                mark,
                clock(*time_unix_ms),
                who(owners, comm.as_ref()),
                local,
                peer,
                format!(
                    "died: {} ({})",
                    cause_name(*cause),
                    last_counts(last_state.0, *probes, *retransmits)
                ),
            ]
        }
        WatchEvent::Lost {
            time_unix_ms,
            notifications,
            total,
        } => note(
            mark,
            *time_unix_ms,
            format!("lost {notifications} destroy notifications ({total} since the start)"),
        ),
        WatchEvent::Warning {
            time_unix_ms,
            message,
        } => note(mark, *time_unix_ms, format!("warning: {}", escape(message))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_utc() {
        assert_eq!(clock(1_700_000_000_000), "22:13:20");
        assert_eq!(clock(0), "00:00:00");
    }
}
