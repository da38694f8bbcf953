//! The width-aware text table of `kwatch --once`.
//!
//! Columns follow `ss -tano` plus owner and findings: State, Local, Peer, Timer, Cnt (the timer's count:
//! retransmits for `retransmit`, unanswered probes for `keepalive` and `zwp`), Dies (when the kernel resets the
//! connection if the peer stays silent: `never`, `8s`, `~15m24s` for an estimate; shown when predicted), Keepalive
//! (the socket's effective idle/interval/count, `*` when assumed from the sysctls, `off`; see
//! [`crate::format::compact`]), Recv-Q, Send-Q, Process, Findings; with more than one network namespace (`--all-netns`), Netns first: the namespace's
//! name or `ns:INODE`, and the container its owner runs in.
//! When the width is limited, wide columns shrink (addresses are elided in the middle so the port stays) and
//! low-priority columns are dropped (Send-Q first) until every line fits. Rendering is pure: no clock, no
//! terminal queries; the caller passes the width and whether to colour.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::analyze::predict::prediction_in;
use crate::duration::format_duration_ms;
use crate::escape::escape;
use crate::format::compact;
use crate::model::keepalive::Prediction;
use crate::model::{Connection, FindingCode, Settings, Severity, Snapshot, TcpState, TimerKind};
use crate::parallel;

use super::chunks;

/// How to lay out the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Terminal columns; `None` means no limit (output to a pipe or file).
    pub width: Option<usize>,
    /// Emit ANSI colours (severity colours on stuck rows, bold header).
    pub color: bool,
}

/// The table and its footer as one string.
pub fn render(snapshot: &Snapshot, conns: &[&Connection], opts: &TableOptions) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write(&mut out, snapshot, conns, opts);
    String::from_utf8_lossy(&out).into_owned()
}

/// Rows one thread measures or formats at a time.
const ROWS_PER_CHUNK: usize = 2048;

/// Writes the table and its footer. Two passes over `conns` (measure, then print), each on every core, so memory
/// does not grow with the number of sockets.
pub fn write(
    w: &mut impl Write,
    snapshot: &Snapshot,
    conns: &[&Connection],
    opts: &TableOptions,
) -> io::Result<()> {
    let mut w = io::BufWriter::new(w);
    let unreadable = !snapshot.unreadable.is_empty();
    let parts: Vec<&[&Connection]> = conns.chunks(ROWS_PER_CHUNK).collect();
    let measured = parallel::map(&parts, |rows| measure(snapshot, rows, unreadable));
    let mut natural = Col::ALL.map(|c| c.header().width());
    let (mut any_zwp, mut any_predicted, mut any_keepalive) = (false, false, false);
    for part in measured {
        for (n, m) in natural.iter_mut().zip(part.natural) {
            *n = (*n).max(m);
        }
        any_zwp |= part.any_zwp;
        any_predicted |= part.any_predicted;
        any_keepalive |= part.any_keepalive;
    }
    if snapshot.namespaces.len() < 2 {
        // One namespace: it is in the footer, not in every row.
        natural[Col::Netns.index()] = 0;
    }
    if !any_predicted {
        // Nothing predicted (fixtures, other states only): no column of dashes.
        natural[Col::Dies.index()] = 0;
    }
    if !any_keepalive {
        // No socket has keepalive settings (fixtures, TIME-WAIT only): no column of dashes either.
        natural[Col::Keepalive.index()] = 0;
    }
    let columns = layout(&natural, opts.width);

    let header = Col::ALL.map(|c| c.header().to_string());
    let line = format_row(&columns, &header, opts.width);
    writeln!(w, "{}", paint(&line, opts.color.then_some(BOLD)))?;
    chunks::write(&mut w, conns, ROWS_PER_CHUNK, b"", |rows| {
        let mut out = Vec::with_capacity(rows.len() * 128);
        for conn in rows {
            let line = format_row(&columns, &cells(snapshot, conn, unreadable), opts.width);
            let colour = if opts.color {
                conn.worst().map(severity_colour)
            } else {
                None
            };
            writeln!(out, "{}", paint(&line, colour))?;
        }
        Ok(out)
    })?;

    for (text, colour) in footer(snapshot, conns, any_zwp) {
        for line in wrap(&text, opts.width) {
            writeln!(
                w,
                "{}",
                paint(&line, if opts.color { colour } else { None })
            )?;
        }
    }
    w.flush()
}

/// What measuring some rows found: each column's widest cell, and whether any row has a zero-window probe
/// timer or a prediction.
struct Measured {
    natural: [usize; COLS],
    any_zwp: bool,
    any_predicted: bool,
    any_keepalive: bool,
}

/// How many columns the table knows.
const COLS: usize = Col::ALL.len();

fn measure(snapshot: &Snapshot, rows: &[&Connection], unreadable: bool) -> Measured {
    let mut m = Measured {
        natural: [0; COLS],
        any_zwp: false,
        any_predicted: false,
        any_keepalive: false,
    };
    for conn in rows {
        for (i, cell) in cells(snapshot, conn, unreadable).iter().enumerate() {
            m.natural[i] = m.natural[i].max(cell.width());
        }
        m.any_zwp |= conn.timer.kind == TimerKind::ZeroWindowProbe;
        m.any_predicted |= prediction_in(snapshot, conn).is_some();
        m.any_keepalive |= conn.keepalive.is_some();
    }
    m
}

const SEP: &str = "  ";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Critical => RED,
        Severity::Warning => YELLOW,
        Severity::Info => CYAN,
    }
}

fn paint(line: &str, colour: Option<&str>) -> String {
    match colour {
        Some(c) if !line.is_empty() => format!("{c}{line}{RESET}"),
        _ => line.to_string(),
    }
}

/// The marker that shows a finding's severity without colour ([`Severity::marker`], as in the live view).
pub fn severity_marker(s: Severity) -> &'static str {
    s.marker()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Netns,
    State,
    Local,
    Peer,
    Timer,
    Cnt,
    Dies,
    Keepalive,
    RecvQ,
    SendQ,
    Process,
    Findings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elide {
    Middle,
    End,
}

impl Col {
    /// Display order.
    const ALL: [Col; 12] = [
        Col::Netns,
        Col::State,
        Col::Local,
        Col::Peer,
        Col::Timer,
        Col::Cnt,
        Col::Dies,
        Col::Keepalive,
        Col::RecvQ,
        Col::SendQ,
        Col::Process,
        Col::Findings,
    ];

    fn header(self) -> &'static str {
        match self {
            Col::Netns => "Netns",
            Col::State => "State",
            Col::Local => "Local",
            Col::Peer => "Peer",
            Col::Timer => "Timer",
            Col::Cnt => "Cnt",
            Col::Dies => "Dies",
            Col::Keepalive => "Keepalive",
            Col::RecvQ => "Recv-Q",
            Col::SendQ => "Send-Q",
            Col::Process => "Process",
            Col::Findings => "Findings",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn right_aligned(self) -> bool {
        matches!(self, Col::Cnt | Col::Dies | Col::RecvQ | Col::SendQ)
    }

    fn elide(self) -> Elide {
        match self {
            Col::Local | Col::Peer => Elide::Middle,
            _ => Elide::End,
        }
    }
}

/// One layout move, tried in order until the row fits.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Narrow a column down to at most this width (never below).
    Shrink(Col, usize),
    Drop(Col),
}

/// What gives way first when the terminal is narrow: long names and finding lists shrink to a comfortable width,
/// then the queue and count columns go, then addresses shrink, then the keepalive settings go and the timer after
/// them (the settings answer "what will the kernel do", the timer "when next"), then everything shrinks to
/// a bare minimum, and at last whole columns go, State staying longest.
const STEPS: &[Step] = &[
    Step::Shrink(Col::Netns, 24),
    Step::Shrink(Col::Process, 20),
    Step::Shrink(Col::Findings, 24),
    Step::Shrink(Col::Local, 21),
    Step::Shrink(Col::Peer, 21),
    Step::Drop(Col::SendQ),
    Step::Drop(Col::Dies),
    Step::Drop(Col::RecvQ),
    Step::Drop(Col::Cnt),
    Step::Shrink(Col::Netns, 12),
    Step::Shrink(Col::Local, 15),
    Step::Shrink(Col::Peer, 15),
    Step::Shrink(Col::Process, 12),
    Step::Shrink(Col::Findings, 14),
    Step::Drop(Col::Keepalive),
    Step::Drop(Col::Timer),
    Step::Drop(Col::Netns),
    Step::Shrink(Col::Local, 11),
    Step::Shrink(Col::Peer, 11),
    Step::Shrink(Col::Process, 7),
    Step::Shrink(Col::Findings, 8),
    Step::Drop(Col::Peer),
    Step::Drop(Col::Process),
    Step::Drop(Col::Local),
    Step::Drop(Col::Findings),
];

/// Which columns to show and how wide, given each column's natural width (widest cell or header).
/// A column of natural width 0 is not shown.
fn layout(natural: &[usize; COLS], width: Option<usize>) -> Vec<(Col, usize)> {
    let mut cols: Vec<(Col, usize)> = Col::ALL
        .iter()
        .map(|c| (*c, natural[c.index()]))
        .filter(|(_, w)| *w > 0)
        .collect();
    let Some(limit) = width else {
        return cols;
    };
    let total = |cols: &[(Col, usize)]| -> usize {
        cols.iter().map(|(_, w)| w).sum::<usize>() + SEP.len() * cols.len().saturating_sub(1)
    };
    for step in STEPS {
        let current = total(&cols);
        if current <= limit {
            break;
        }
        match *step {
            Step::Shrink(col, floor) => {
                if let Some((_, w)) = cols.iter_mut().find(|(c, _)| *c == col) {
                    let cut = (current - limit).min(w.saturating_sub(floor));
                    *w -= cut;
                }
            }
            Step::Drop(col) => cols.retain(|(c, _)| *c != col),
        }
    }
    // A drop may free more room than was needed: give it back to the columns that shrank: findings,
    // then addresses (an elided address is worse than a cut process name), then the process.
    for col in [Col::Findings, Col::Peer, Col::Local, Col::Process] {
        let slack = limit.saturating_sub(total(&cols));
        if let Some((_, w)) = cols.iter_mut().find(|(c, _)| *c == col) {
            *w += slack.min(natural[col.index()].saturating_sub(*w));
        }
    }
    cols
}

fn format_row(columns: &[(Col, usize)], cells: &[String; COLS], width: Option<usize>) -> String {
    let mut line = String::new();
    for (i, (col, w)) in columns.iter().enumerate() {
        if i > 0 {
            line.push_str(SEP);
        }
        let cell = &cells[col.index()];
        let fitted = match col.elide() {
            Elide::Middle => elide_middle(cell, *w),
            Elide::End => elide_end(cell, *w),
        };
        let pad = " ".repeat(w.saturating_sub(fitted.width()));
        if col.right_aligned() {
            line.push_str(&pad);
            line.push_str(&fitted);
        } else {
            line.push_str(&fitted);
            line.push_str(&pad);
        }
    }
    let line = line.trim_end();
    match width {
        // Only reached when even the State column alone is wider than the terminal.
        Some(w) if line.width() > w => elide_end(line, w),
        _ => line.to_string(),
    }
}

/// The cells of one row, in `Col::ALL` order, untrusted text already escaped.
fn cells(snapshot: &Snapshot, c: &Connection, unreadable: bool) -> [String; COLS] {
    [
        netns(snapshot, c),
        c.state.label().to_string(),
        endpoint(c.local_addr, c.local_port),
        endpoint(c.peer_addr, c.peer_port),
        timer(c),
        if c.timer.kind == TimerKind::None {
            "-".to_string()
        } else {
            c.timer.count.to_string()
        },
        dies(prediction_in(snapshot, c)),
        compact(c.keepalive.as_deref()),
        c.recv_q.to_string(),
        c.send_q.to_string(),
        process(snapshot, c, unreadable),
        findings(c),
    ]
}

/// `web`, `ns:4026532`, `ns:4026532 docker:3f4e1b2c9d8a` (the container of its owner), `-` when not known.
fn netns(snapshot: &Snapshot, c: &Connection) -> String {
    let Some(ns) = &c.netns else {
        return "-".to_string();
    };
    let mut out = escape(&ns.label()).into_owned();
    if let Some(unit) = snapshot
        .unit_of(c)
        .filter(|u| u.kind != crate::model::UnitKind::Systemd)
    {
        let _ = write!(out, " {}", escape(&unit.label()));
    }
    out
}

/// `10.0.0.5:443`, `[::1]:22`; port 0 (a listener's peer) as `*`, like `ss`.
fn endpoint(addr: IpAddr, port: u16) -> String {
    let port = if port == 0 {
        "*".to_string()
    } else {
        port.to_string()
    };
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `keepalive 1m58s`, `retransmit 200ms`, `time_wait 59s`, `zwp 3s`, `-`.
fn timer(c: &Connection) -> String {
    let kind = match c.timer.kind {
        TimerKind::None => return "-".to_string(),
        TimerKind::ZeroWindowProbe => "zwp",
        other => other.label(),
    };
    format!(
        "{kind} {}",
        format_duration_ms(u64::from(c.timer.expires_ms))
    )
}

/// `8s`, `~15m24s` (estimate), `never`, or `-` when not predicted (not ESTABLISHED or CLOSE-WAIT).
fn dies(prediction: Option<Prediction>) -> String {
    match prediction {
        None => "-".to_string(),
        Some(p) => match p.dies_in_ms {
            None => "never".to_string(),
            Some(ms) if p.dies_in_estimate => format!("~{}", format_duration_ms(ms)),
            Some(ms) => format_duration_ms(ms),
        },
    }
}

/// `1234/nginx`, `+N` more processes, `-` for none, `?` for none when some processes could not be read.
fn process(snapshot: &Snapshot, c: &Connection, unreadable: bool) -> String {
    let pids: BTreeSet<u32> = c.owners.iter().map(|o| o.pid).collect();
    let mut pids = pids.into_iter();
    let Some(first) = pids.next() else {
        return if unreadable && c.inode != 0 {
            "?".to_string()
        } else {
            "-".to_string()
        };
    };
    let mut out = format!("{first}/{}", escape(snapshot.comm(first)));
    let more = pids.count();
    if more > 0 {
        let _ = write!(out, " +{more}");
    }
    out
}

/// Finding codes, worst first, each with its severity marker: `!!close_wait,!retransmitting`.
fn findings(c: &Connection) -> String {
    let mut list: Vec<(Severity, FindingCode)> =
        c.findings.iter().map(|f| (f.severity, f.code)).collect();
    list.sort_by_key(|(severity, _)| std::cmp::Reverse(*severity));
    list.dedup();
    list.iter()
        .map(|(s, code)| format!("{}{code}", severity_marker(*s)))
        .collect::<Vec<_>>()
        .join(",")
}

/// `2 dead sockets still held: 1234/app fd 7 (keepalive_exhausted), 99/db fd 12 (reset)`: TCP connections the
/// kernel ended whose fds a program has not closed (in no dump, so in no row).
fn held_dead_line(snapshot: &Snapshot) -> Option<String> {
    let held = &snapshot.held_dead;
    if held.is_empty() {
        return None;
    }
    let list: Vec<String> = held
        .iter()
        .map(|g| {
            let cause = serde_json::to_value(g.cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "{}/{} fd {} ({cause})",
                g.pid,
                escape(snapshot.comm(g.pid)),
                g.fd
            )
        })
        .collect();
    Some(format!(
        "{} dead {} still held: {}",
        held.len(),
        plural(held.len() as u64, "socket", "sockets"),
        list.join(", ")
    ))
}

/// Footer lines with an optional colour.
fn footer(
    snapshot: &Snapshot,
    conns: &[&Connection],
    any_zwp: bool,
) -> Vec<(String, Option<&'static str>)> {
    let mut lines = Vec::new();
    let mut by_state: BTreeMap<TcpState, u64> = BTreeMap::new();
    let mut by_code: BTreeMap<FindingCode, u64> = BTreeMap::new();
    let mut stuck = 0u64;
    let mut worst: Option<Severity> = None;
    for c in conns {
        *by_state.entry(c.state).or_default() += 1;
        if c.is_stuck() {
            stuck += 1;
            worst = worst.max(c.worst());
        }
        let codes: BTreeSet<FindingCode> = c.findings.iter().map(|f| f.code).collect();
        for code in codes {
            *by_code.entry(code).or_default() += 1;
        }
    }

    let mut sockets = format!(
        "{} {}",
        conns.len(),
        plural(conns.len() as u64, "socket", "sockets")
    );
    if !by_state.is_empty() {
        let parts: Vec<String> = by_state
            .iter()
            .map(|(s, n)| format!("{n} {}", s.name()))
            .collect();
        let _ = write!(sockets, ": {}", parts.join(", "));
    }
    lines.push((sockets, None));

    if stuck == 0 {
        lines.push(("no stuck sockets".to_string(), None));
    } else {
        let parts: Vec<String> = by_code
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        lines.push((
            format!("{stuck} stuck: {}", parts.join(", ")),
            worst.map(severity_colour),
        ));
    }

    if let Some(text) = snapshot.unreadable_line() {
        lines.push((text, Some(YELLOW)));
    }

    if let Some(line) = held_dead_line(snapshot) {
        lines.push((line, Some(RED)));
    }

    for warning in &snapshot.warnings {
        lines.push((format!("warning: {}", escape(warning)), Some(YELLOW)));
    }

    lines.push((settings_line(&snapshot.settings), None));
    if let Some(line) = namespaces_line(snapshot) {
        lines.push((line, None));
    }
    // Namespaces whose sysctls differ from the first one's: each on its own line.
    for ns in snapshot.namespaces.iter().skip(1) {
        if ns.error.is_none() && ns.settings != snapshot.settings {
            lines.push((
                format!(
                    "netns '{}' {}",
                    escape(&ns.netns.label()),
                    settings_line(&ns.settings)
                ),
                None,
            ));
        }
    }
    let s = &snapshot.settings;
    if let (Some(time), Some(intvl), Some(probes)) = (
        s.tcp_keepalive_time_s,
        s.tcp_keepalive_intvl_s,
        s.tcp_keepalive_probes,
    ) {
        let notice_ms = (u64::from(time) + u64::from(intvl) * u64::from(probes)) * 1000;
        let took = format_duration_ms(notice_ms);
        if s.keepalive_is_default() {
            let text = format!(
                "! keepalive on kernel defaults (7200/75/9): dead peers take {took} to notice"
            );
            lines.push((text, Some(YELLOW)));
        } else {
            lines.push((format!("keepalive: dead peers take {took} to notice"), None));
        }
    }

    if any_zwp {
        lines.push((
            "zwp: zero-window probe (the peer's receive window is full)".to_string(),
            None,
        ));
    }
    lines
}

/// `3 network namespaces: 2 listed, 1 could not be entered`, when there is more than one.
fn namespaces_line(snapshot: &Snapshot) -> Option<String> {
    let n = snapshot.namespaces.len();
    if n < 2 {
        return None;
    }
    let failed = snapshot
        .namespaces
        .iter()
        .filter(|ns| ns.error.is_some())
        .count();
    let mut line = format!("{n} network namespaces");
    if failed > 0 {
        let _ = write!(
            line,
            ": {} listed, {failed} could not be entered",
            n - failed
        );
    }
    Some(line)
}

fn settings_line(s: &Settings) -> String {
    let opt = |v: Option<u32>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    format!(
        "settings: tcp_keepalive {}s idle, {}s interval, {} probes; tcp_retries2 {}; tcp_fin_timeout {}s",
        opt(s.tcp_keepalive_time_s),
        opt(s.tcp_keepalive_intvl_s),
        opt(s.tcp_keepalive_probes),
        opt(s.tcp_retries2),
        opt(s.tcp_fin_timeout_s),
    )
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Cuts `s` to at most `w` columns, marking the cut with `…`.
fn elide_end(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let cw = ch.width().unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        out.push(ch);
    }
    out.push('…');
    out
}

/// Cuts the middle out of `s` so it fits `w` columns, keeping more of the end (the port).
fn elide_middle(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    if w < 3 {
        return elide_end(s, w);
    }
    let head_w = (w - 1) / 2;
    let tail_w = w - 1 - head_w;
    let mut head = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let cw = ch.width().unwrap_or(0);
        if used + cw > head_w {
            break;
        }
        used += cw;
        head.push(ch);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for ch in s.chars().rev() {
        let cw = ch.width().unwrap_or(0);
        if used + cw > tail_w {
            break;
        }
        used += cw;
        tail.push(ch);
    }
    head.push('…');
    head.extend(tail.iter().rev());
    head
}

/// Greedy word wrap for footer lines; continuation lines are indented by two spaces. `None` means no limit.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(w) = width else {
        return vec![text.to_string()];
    };
    if text.width() <= w {
        return vec![text.to_string()];
    }
    let indent = if w > 8 { "  " } else { "" };
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let prefix = if lines.is_empty() { "" } else { indent };
        let candidate_w = if line.is_empty() {
            prefix.width() + word.width()
        } else {
            line.width() + 1 + word.width()
        };
        if candidate_w <= w {
            if line.is_empty() {
                line.push_str(prefix);
            } else {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let prefix = if lines.is_empty() { "" } else { indent };
        let word = elide_end(word, w - prefix.width());
        line = format!("{prefix}{word}");
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elides_in_the_middle_keeping_the_port() {
        assert_eq!(elide_middle("203.0.113.7:51234", 15), "203.0.1…7:51234");
        assert_eq!(elide_middle("10.0.0.5:443", 15), "10.0.0.5:443");
        assert_eq!(elide_middle("[2001:db8::77]:60222", 11).width(), 11);
    }

    #[test]
    fn elides_at_the_end_by_display_width() {
        assert_eq!(elide_end("!!close_wait", 8), "!!close…");
        assert_eq!(elide_end("名前名前", 5), "名前…");
        assert_eq!(elide_end("abc", 0), "");
    }

    #[test]
    fn endpoints_bracket_ipv6_and_star_port_zero() {
        assert_eq!(
            endpoint("::1".parse().unwrap_or(IpAddr::V4([0; 4].into())), 22),
            "[::1]:22"
        );
        assert_eq!(endpoint(IpAddr::V4([0, 0, 0, 0].into()), 0), "0.0.0.0:*");
    }

    #[test]
    fn layout_without_limit_keeps_natural_widths() {
        let natural = [12, 10, 16, 20, 15, 3, 5, 10, 6, 6, 23, 35];
        let cols = layout(&natural, None);
        assert_eq!(cols.len(), 12);
        assert!(cols.iter().zip(natural).all(|((_, w), n)| *w == n));
    }

    #[test]
    fn layout_drops_send_q_before_findings_and_process() {
        let natural = [0, 10, 16, 20, 15, 3, 5, 10, 6, 6, 20, 24];
        let full: usize = natural.iter().sum::<usize>() + 2 * 10;
        let cols = layout(&natural, Some(full - 1));
        let names: Vec<Col> = cols.iter().map(|(c, _)| *c).collect();
        assert!(!names.contains(&Col::SendQ));
        assert!(names.contains(&Col::Findings) && names.contains(&Col::Process));
    }

    #[test]
    fn layout_always_fits() {
        let natural = [20, 10, 40, 40, 17, 3, 7, 10, 6, 6, 40, 60];
        for limit in 0..250 {
            let cols = layout(&natural, Some(limit));
            let total: usize =
                cols.iter().map(|(_, w)| w).sum::<usize>() + 2 * cols.len().saturating_sub(1);
            // State alone (10) may exceed a tiny terminal; rows are clipped then.
            assert!(total <= limit.max(10), "limit {limit}: {cols:?}");
        }
    }

    #[test]
    fn a_column_without_content_is_not_laid_out() {
        let natural = [0, 10, 16, 20, 15, 3, 0, 10, 6, 6, 23, 35];
        let cols = layout(&natural, None);
        assert!(cols.iter().all(|(c, _)| *c != Col::Dies));
        assert_eq!(cols.len(), 10);
    }

    #[test]
    fn keepalive_goes_after_the_queues_and_before_the_timer() {
        let natural = [0, 10, 16, 20, 15, 3, 5, 10, 6, 6, 20, 24];
        let names = |limit| -> Vec<Col> {
            layout(&natural, Some(limit))
                .iter()
                .map(|(c, _)| *c)
                .collect()
        };
        let narrow = names(120);
        assert!(narrow.contains(&Col::Keepalive), "{narrow:?}");
        assert!(!narrow.contains(&Col::SendQ) && !narrow.contains(&Col::Cnt));
        let narrower = (40..120)
            .rev()
            .map(names)
            .find(|cols| !cols.contains(&Col::Keepalive))
            .unwrap_or_default();
        assert!(narrower.contains(&Col::Timer), "{narrower:?}");
    }

    #[test]
    fn dies_cells_say_never_estimate_or_time() {
        assert_eq!(dies(None), "-");
        assert_eq!(dies(Some(Prediction::default())), "never");
        let in_8s = Prediction {
            dies_in_ms: Some(8_000),
            ..Prediction::default()
        };
        assert_eq!(dies(Some(in_8s)), "8s");
        let estimate = Prediction {
            dies_in_ms: Some(924_600),
            dies_in_estimate: true,
            ..Prediction::default()
        };
        assert_eq!(dies(Some(estimate)), "~15m24s");
    }

    #[test]
    fn wrap_respects_width_and_indents() {
        let text = "3 processes could not be read; run as root (sudo) to see their sockets' owners";
        let lines = wrap(text, Some(40));
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.width() <= 40), "{lines:?}");
        assert!(lines[1].starts_with("  "));
        assert_eq!(wrap(text, None), vec![text.to_string()]);
        assert!(
            wrap("averyveryverylongword", Some(5))
                .iter()
                .all(|l| l.width() <= 5)
        );
    }
}
