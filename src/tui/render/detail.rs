//! The detail pane: every field of one socket, a plain reading of its timer, and what the session has seen of it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Widget};

use super::Theme;
use crate::duration::format_duration_ms;
use crate::escape::{escape, escape_cmdline};
use crate::format::format_bytes;
use crate::model::keepalive::{KeepaliveSettings, Source};
use crate::model::{Connection, Snapshot, TcpInfo};
use crate::tui::app::{App, Detail};
use crate::tui::explain::reading;
use crate::tui::format;
use crate::tui::history::Seen;

const LABEL: usize = 10;

pub fn render(app: &App, detail: &Detail, theme: Theme, area: Rect, buf: &mut Buffer) {
    let conn = &detail.conn;
    let mut title = vec![
        Span::styled(
            format!(
                " {} ↔ {} ",
                format::endpoint(conn.local_addr, conn.local_port),
                format::peer(conn)
            ),
            theme.title(),
        ),
        Span::styled(
            format!(" {} ", conn.state.label()),
            theme.severity(conn.worst()),
        ),
    ];
    if detail.gone {
        title.push(Span::styled(
            " CLOSED: no longer in the dump ",
            theme.error(),
        ));
    }
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(title))
        .title_bottom(
            Line::styled(" Esc back · ↑↓ prev/next socket ", theme.dim()).right_aligned(),
        );
    let inner = block.inner(area);
    block.render(area, buf);

    let session = app.history.lock();
    let seen = session.history.get(conn.cookie);
    let samples = seen.map_or(0, |s| s.samples.len());
    let spark_h = if samples > 0 && inner.height >= 12 {
        2
    } else {
        0
    };
    let [text_area, spark_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(spark_h)]).areas(inner);

    let empty = Snapshot::default();
    let snap = app.snapshot.as_deref().unwrap_or(&empty);
    let width = usize::from(text_area.width);
    let lines: Vec<Line> = lines(app, conn, snap, seen.as_ref(), theme)
        .into_iter()
        .flat_map(|row| wrap(row, width))
        .collect();
    Paragraph::new(lines).render(text_area, buf);

    if let Some(seen) = seen.filter(|_| spark_h > 0) {
        sparklines(&seen, theme, spark_area, buf);
    }
}

/// One logical row: a label column, then text that wraps under itself (not under the label).
type Row = Vec<Span<'static>>;

fn row(label: &str, theme: Theme, spans: Vec<Span<'static>>) -> Row {
    let mut all = vec![Span::styled(format!(" {label:<LABEL$} "), theme.label())];
    all.extend(spans);
    all
}

fn text(label: &str, theme: Theme, s: String) -> Row {
    row(label, theme, vec![Span::raw(s)])
}

/// Word-wraps a row to `width` cells; continuation lines are indented past the label.
fn wrap(row: Row, width: usize) -> Vec<Line<'static>> {
    let indent = LABEL + 2;
    let avail = width.saturating_sub(indent).max(1);
    let mut spans = row.into_iter();
    let Some(label) = spans.next() else {
        return Vec::new();
    };
    let mut lines: Vec<Vec<Span<'static>>> = vec![vec![label]];
    let mut used = indent;
    for span in spans {
        for word in span.content.split_inclusive(' ') {
            let mut word = word.to_string();
            loop {
                let visible = word.trim_end().chars().count();
                if used + visible <= width {
                    used += word.chars().count();
                    if let Some(line) = lines.last_mut() {
                        line.push(Span::styled(word, span.style));
                    }
                    break;
                }
                if used == indent {
                    // A word longer than a whole line: cut it.
                    let head: String = word.chars().take(avail).collect();
                    word = word.chars().skip(avail).collect();
                    if let Some(line) = lines.last_mut() {
                        line.push(Span::styled(head, span.style));
                    }
                }
                lines.push(vec![Span::raw(" ".repeat(indent))]);
                used = indent;
                if word.is_empty() {
                    break;
                }
            }
        }
    }
    lines.into_iter().map(Line::from).collect()
}

fn lines(
    app: &App,
    conn: &Connection,
    snap: &Snapshot,
    seen: Option<&Seen<'_>>,
    theme: Theme,
) -> Vec<Row> {
    let mut out = Vec::new();
    if conn.findings.is_empty() {
        out.push(row(
            "findings",
            theme,
            vec![Span::styled("none".to_string(), theme.good())],
        ));
    }
    let mut findings: Vec<_> = conn.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for (i, f) in findings.iter().enumerate() {
        let label = if i == 0 { "findings" } else { "" };
        out.push(row(
            label,
            theme,
            vec![
                Span::styled(
                    format!(
                        "{}{} ({})",
                        format::marker(Some(f.severity)),
                        f.code,
                        f.severity.label()
                    ),
                    theme.severity(Some(f.severity)),
                ),
                Span::raw(format!(": {}", escape(&crate::analyze::explain(conn, f)))),
            ],
        ));
    }
    let timer = match conn.timer.kind {
        crate::model::TimerKind::None => "none".to_string(),
        kind => format!(
            "{} in {}, count {}",
            format::timer_word(kind),
            format_duration_ms(u64::from(conn.timer.expires_ms)),
            conn.timer.count
        ),
    };
    out.push(text("timer", theme, timer));
    out.push(row(
        "reading",
        theme,
        vec![Span::styled(reading(conn, &snap.settings), theme.flag())],
    ));
    if let Some(ka) = conn.keepalive.as_ref() {
        out.push(text("keepalive", theme, keepalive(ka)));
    }
    out.extend(owners(conn, snap, theme));
    if let Some(seen) = seen {
        let in_state = format_duration_ms(app.now_ms.saturating_sub(seen.state_since_ms));
        let first = format_duration_ms(app.now_ms.saturating_sub(seen.first_seen_ms));
        // The history is recorded on the collector thread and may already hold the next snapshot: its time in
        // a state other than the one shown is not this state's.
        let session = if seen.state != conn.state {
            format!("first seen {first} ago")
        } else if seen.state_since_start {
            format!("first seen {first} ago, already {}", conn.state.label())
        } else {
            format!(
                "{} for {in_state} · first seen {first} ago",
                conn.state.label()
            )
        };
        out.push(text("session", theme, session));
    }
    let shutdown = match conn.shutdown {
        None => "?",
        Some(0) => "no",
        Some(1) => "read side",
        Some(2) => "write side",
        Some(_) => "both sides",
    };
    let family = match conn.family {
        crate::model::Family::Ipv4 => "ipv4",
        crate::model::Family::Ipv6 => "ipv6",
    };
    let mut socket = format!(
        "recv-q {} · send-q {} · shutdown {shutdown} · {family} · cookie {} · inode {} · uid {}",
        conn.recv_q, conn.send_q, conn.cookie, conn.inode, conn.uid
    );
    if conn.interface != 0 {
        socket.push_str(&format!(" · if {}", conn.interface));
    }
    if let Some(cc) = conn.congestion.as_ref() {
        socket.push_str(&format!(" · {}", escape(cc)));
    }
    out.push(text("socket", theme, socket));
    if let Some(info) = conn.tcp_info.as_ref() {
        out.extend(tcp_info(info, theme));
    } else {
        out.push(text(
            "tcp_info",
            theme,
            "not sent by the kernel for this socket".to_string(),
        ));
    }
    out
}

fn owners(conn: &Connection, snap: &Snapshot, theme: Theme) -> Vec<Row> {
    if conn.owners.is_empty() {
        let why = if conn.inode == 0 {
            "none (TIME-WAIT and orphaned sockets belong to no process)".to_string()
        } else if snap.unreadable.is_empty() {
            "unknown".to_string()
        } else {
            format!(
                "unknown: some processes could not be read; {}",
                snap.unreadable_hint()
            )
        };
        return vec![text("process", theme, why)];
    }
    let mut out = Vec::new();
    for (i, o) in conn.owners.iter().enumerate() {
        let label = if i == 0 { "process" } else { "" };
        let p = snap.processes.get(&o.pid);
        let user = p
            .and_then(|p| {
                p.user
                    .as_deref()
                    .map(|u| escape(u).into_owned())
                    .or(p.uid.map(|u| u.to_string()))
            })
            .unwrap_or_else(|| "?".to_string());
        let cmd = p.map(|p| escape_cmdline(&p.cmdline)).unwrap_or_default();
        out.push(row(
            label,
            theme,
            vec![
                Span::styled(
                    format!("{}/{}", o.pid, escape(snap.comm(o.pid))),
                    theme.title(),
                ),
                Span::raw(format!(" fd {} · user {user}", o.fd)),
                Span::styled(format!("  {cmd}"), theme.dim()),
            ],
        ));
    }
    out
}

/// `on · idle 30s · probes every 5s x 3 · user timeout off (read from the socket)`.
fn keepalive(ka: &KeepaliveSettings) -> String {
    let secs = |v: Option<u32>| v.map_or_else(|| "?".to_string(), |s| format!("{s}s"));
    let on = match ka.enabled {
        Some(true) => "on",
        Some(false) => "off",
        None => "?",
    };
    let user_timeout = match ka.user_timeout_ms {
        Some(0) => "off".to_string(),
        Some(ms) => format_duration_ms(u64::from(ms)),
        None => "?".to_string(),
    };
    let source = match ka.source {
        Source::Socket => "read from the socket",
        Source::Sysctl => "assumed from the namespace",
    };
    format!(
        "{on} · idle {} · probes every {} x {} · user timeout {user_timeout} ({source})",
        secs(ka.idle_s),
        secs(ka.intvl_s),
        ka.cnt.map_or_else(|| "?".to_string(), |c| c.to_string())
    )
}

fn ms(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format_duration_ms(u64::from(v)))
}

fn us(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| super::header::micros(u64::from(v)))
}

fn n<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn b(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), format_bytes)
}

fn tcp_info(i: &TcpInfo, theme: Theme) -> Vec<Row> {
    let ca = match i.ca_state() {
        Some(0) => "open",
        Some(1) => "disorder",
        Some(2) => "cwr",
        Some(3) => "recovery",
        Some(4) => "loss",
        Some(_) => "?",
        None => "-",
    };
    vec![
        text(
            "last",
            theme,
            format!(
                "data recv {} ago · ack recv {} ago · data sent {} ago",
                ms(i.last_data_recv_ms()),
                ms(i.last_ack_recv_ms()),
                ms(i.last_data_sent_ms())
            ),
        ),
        text(
            "rtt",
            theme,
            format!(
                "{} ±{} · min {} · rto {} · ato {} · cwnd {} · mss {}/{} · pmtu {}",
                us(i.rtt_us()),
                us(i.rttvar_us()),
                us(i.min_rtt_us()),
                us(i.rto_us()),
                us(i.ato_us()),
                n(i.snd_cwnd()),
                n(i.snd_mss()),
                n(i.rcv_mss()),
                n(i.pmtu())
            ),
        ),
        text(
            "loss",
            theme,
            format!(
                "retransmits {} · probes {} · backoff {} · total retrans {} · lost {} · unacked {} · ca {ca}",
                n(i.retransmits()),
                n(i.probes()),
                n(i.backoff()),
                n(i.total_retrans()),
                n(i.lost()),
                n(i.unacked())
            ),
        ),
        text(
            "bytes",
            theme,
            format!(
                "sent {} · acked {} · received {} · retrans {} · notsent {} · snd_wnd {}",
                b(i.bytes_sent()),
                b(i.bytes_acked()),
                b(i.bytes_received()),
                b(i.bytes_retrans()),
                b(i.notsent_bytes().map(u64::from)),
                n(i.snd_wnd())
            ),
        ),
    ]
}

fn sparklines(seen: &Seen<'_>, theme: Theme, area: Rect, buf: &mut Buffer) {
    let probes: Vec<u64> = seen.samples.iter().map(|s| u64::from(s.probes)).collect();
    let idle: Vec<u64> = seen
        .samples
        .iter()
        .map(|s| s.idle_ms.unwrap_or(0))
        .collect();
    let last_probes = probes.last().copied().unwrap_or(0);
    let last_idle = seen.samples.back().and_then(|s| s.idle_ms);
    let rows = [
        ("probes", probes, last_probes.to_string()),
        (
            "idle",
            idle,
            last_idle.map_or_else(|| "-".to_string(), format_duration_ms),
        ),
    ];
    let n = seen.samples.len();
    for (k, (label, data, now)) in rows.into_iter().enumerate() {
        let y = area.y + k as u16;
        if y >= area.y + area.height {
            break;
        }
        let line = Rect {
            y,
            height: 1,
            ..area
        };
        let [label_area, spark_area, now_area] = Layout::horizontal([
            Constraint::Length(LABEL as u16 + 2),
            Constraint::Length(n as u16),
            Constraint::Min(0),
        ])
        .areas(line);
        Paragraph::new(Line::styled(format!(" {label:<LABEL$} "), theme.label()))
            .render(label_area, buf);
        let max = data.iter().copied().max().unwrap_or(0).max(1);
        Sparkline::default()
            .data(&data)
            .max(max)
            .bar_set(ratatui::symbols::bar::Set {
                empty: "·",
                ..ratatui::symbols::bar::NINE_LEVELS
            })
            .style(theme.flag())
            .render(spark_area, buf);
        Paragraph::new(Line::styled(
            format!(" now {now} · last {n} refreshes"),
            theme.dim(),
        ))
        .render(now_area, buf);
    }
}
