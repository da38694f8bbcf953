//! The header: host and kernel, keepalive settings, socket counts by state, stuck counts, what could not be read.

use crate::tui::prepare::Counts;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::Theme;
use crate::duration::format_duration_ms;
use crate::escape::escape;
use crate::model::{FindingCode, Settings, Severity, Snapshot, TcpState};
use crate::tui::app::App;
use crate::tui::format::marker;

pub fn render(app: &App, theme: Theme, area: Rect, buf: &mut Buffer) {
    let mut lines: Vec<Line> = Vec::new();
    let mut first = vec![Span::styled("kwatch", theme.title())];
    if let Some(replay) = app.replay.as_ref() {
        first.extend(super::replay::header(
            replay,
            app.snapshot.as_deref(),
            theme,
        ));
    }
    match app.snapshot.as_ref() {
        None if app.replay.is_some() => {
            first.push(Span::raw("  reading the recording…"));
            lines.push(Line::from(first));
            lines.push(Line::default());
        }
        None => {
            first.push(Span::raw("  taking the first snapshot…"));
            lines.push(Line::from(first));
            lines.push(Line::default());
        }
        Some(snap) => {
            first.push(Span::raw(format!("  {}", escape(&snap.host))));
            first.push(Span::styled(
                format!("  linux {}", escape(&snap.kernel)),
                theme.dim(),
            ));
            lines.push(Line::from(first));
            lines.push(keepalive(&snap.settings, theme, usize::from(area.width)));
            lines.push(states(snap, &app.counts, theme));
            lines.push(stuck(&app.counts, theme));
            if !snap.held_dead.is_empty() {
                lines.push(held_dead(snap, theme));
            }
            if snap.owners_pending {
                lines.push(Line::from(vec![Span::styled(
                    "reading owners and socket options… (keepalive settings assumed meanwhile)",
                    theme.dim(),
                )]));
            }
            if !snap.unreadable.is_empty() {
                lines.push(unreadable(snap, theme));
            }
            if let Some(w) = snap.warnings.first() {
                let more = snap.warnings.len() - 1;
                let more = if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                };
                lines.push(Line::from(vec![
                    Span::styled("warning: ", theme.flag()),
                    Span::raw(format!("{}{more}", escape(w))),
                ]));
            }
        }
    }
    if app.destroy_events == Some(false) {
        let why = app.log_warning.as_deref().map_or_else(
            || "no destroy notifications".to_string(),
            |w| escape(w.strip_prefix("no destroy notifications: ").unwrap_or(w)).into_owned(),
        );
        lines.push(Line::from(vec![
            Span::styled("! deaths are not logged: ", theme.flag()),
            Span::raw(why),
        ]));
    }
    if let Some(err) = app.collector_error.as_ref() {
        let last = if app.snapshot.is_some() {
            " (showing the last good snapshot)"
        } else {
            ""
        };
        lines.push(Line::from(vec![
            Span::styled("collector error: ", theme.error()),
            Span::raw(format!("{}{last}", escape(err))),
        ]));
    }
    let left: usize = lines.first().map_or(0, |l| {
        l.spans.iter().map(|s| s.content.chars().count()).sum()
    });
    let width = usize::from(area.width);
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|l| super::ellipsize(l, width))
        .collect();
    Paragraph::new(lines).render(area, buf);

    // Right side of the first line: freshness, dump cost, pause.
    let mut right: Vec<Span> = Vec::new();
    if app.paused {
        right.push(Span::styled(" PAUSED ", theme.key()));
        right.push(Span::raw(" "));
    }
    if let Some(snap) = app.snapshot.as_ref()
        && app.replay.is_none()
    {
        let age = app.now_ms.saturating_sub(snap.taken_at_unix_ms);
        right.push(Span::raw(format!(
            "refreshed {} ago",
            format_duration_ms(age)
        )));
        if let Some(stretch) = app.stretched {
            // Slower than the interval to keep refreshes within a quarter of a core (`--interval` overrides); at
            // the longest period a refresh may still cost more, and then the header says so.
            right.push(Span::raw(format!(
                ", every {} ({}CPU budget)",
                micros(stretch.period.as_micros() as u64),
                if stretch.over_budget { "over " } else { "" }
            )));
        }
    }
    if let Some(snap) = app.snapshot.as_ref() {
        right.push(Span::styled(
            format!(
                " · dump {} + /proc {}",
                micros(snap.dump_us),
                micros(snap.proc_scan_us)
            ),
            theme.dim(),
        ));
    }
    let width: usize = right.iter().map(|s| s.content.chars().count()).sum();
    if area.height > 0 && left + width + 2 <= usize::from(area.width) {
        let line_area = Rect { height: 1, ..area };
        Paragraph::new(Line::from(right))
            .alignment(Alignment::Right)
            .render(line_area, buf);
    }
}

/// `850us`, `1.8ms`, `42ms`, `1.2s`.
pub fn micros(us: u64) -> String {
    match us {
        us if us < 1_000 => format!("{us}us"),
        us if us < 10_000 => format!("{}.{}ms", us / 1_000, (us % 1_000) / 100),
        us if us < 1_000_000 => format!("{}ms", us / 1_000),
        us => format!("{}.{}s", us / 1_000_000, (us % 1_000_000) / 100_000),
    }
}

fn keepalive(s: &Settings, theme: Theme, width: usize) -> Line<'static> {
    let label = Span::styled("keepalive ", theme.label());
    let (Some(time), Some(intvl), Some(probes)) = (
        s.tcp_keepalive_time_s,
        s.tcp_keepalive_intvl_s,
        s.tcp_keepalive_probes,
    ) else {
        return Line::from(vec![
            label,
            Span::styled("settings unreadable", theme.dim()),
        ]);
    };
    let notice =
        format_duration_ms((u64::from(time) + u64::from(intvl) * u64::from(probes)) * 1_000);
    let mut spans = vec![label, Span::raw(format!("{time}s/{intvl}s/{probes}  "))];
    if s.keepalive_is_default() {
        spans.push(Span::styled(
            format!("! kernel defaults: a dead peer takes {notice} to notice"),
            theme.flag(),
        ));
    } else {
        spans.push(Span::raw(format!("a dead peer is noticed within {notice}")));
    }
    let mut rest = Vec::new();
    if let Some(r) = s.tcp_retries2 {
        rest.push(format!("retries2 {r}"));
    }
    if let Some(f) = s.tcp_fin_timeout_s {
        rest.push(format!("fin_timeout {f}s"));
    }
    let rest = format!("   {}", rest.join(" · "));
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    if used + rest.chars().count() <= width {
        spans.push(Span::styled(rest, theme.dim()));
    }
    Line::from(spans)
}

fn states(snap: &Snapshot, counts: &Counts, theme: Theme) -> Line<'static> {
    let mut spans = vec![
        Span::styled("sockets ", theme.label()),
        Span::styled(format!("{}", snap.connections.len()), theme.title()),
        Span::raw("  "),
    ];
    for &(label, n, state) in &counts.states {
        let style = if state == TcpState::CloseWait {
            theme.flag()
        } else {
            Style::default()
        };
        spans.push(Span::styled(format!(" {label} {n}"), style));
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

fn stuck(counts: &Counts, theme: Theme) -> Line<'static> {
    let (by_sev, by_code, stuck) = (&counts.by_severity, &counts.by_code, counts.stuck());
    let mut spans = vec![Span::styled("stuck ", theme.label())];
    if stuck == 0 {
        spans.push(Span::styled("0  nothing stuck", theme.good()));
        return Line::from(spans);
    }
    spans.push(Span::styled(format!("{stuck}"), theme.title()));
    spans.push(Span::raw("  "));
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        if let Some(n) = by_sev.get(&sev) {
            spans.push(Span::styled(
                format!(" {} {n} {} ", marker(Some(sev)).trim_end(), sev.label()),
                theme.severity(Some(sev)),
            ));
        }
    }
    let mut codes: Vec<(FindingCode, u32)> = by_code.iter().map(|(c, n)| (*c, *n)).collect();
    codes.sort_by_key(|(code, n)| (std::cmp::Reverse(*n), *code));
    let codes: Vec<String> = codes
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    spans.push(Span::styled(
        format!("  {}", codes.join(" · ")),
        theme.dim(),
    ));
    Line::from(spans)
}

/// `! 2 dead sockets still held (L) 2231/java fd 17 (keepalive_exhausted), ...`.
fn held_dead(snap: &Snapshot, theme: Theme) -> Line<'static> {
    let n = snap.held_dead.len();
    let noun = if n == 1 { "socket" } else { "sockets" };
    let list: Vec<String> = snap
        .held_dead
        .iter()
        .take(3)
        .map(|g| {
            let cause = serde_json::to_value(g.cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "{}/{} fd {} ({cause})",
                g.pid,
                escape(snap.comm(g.pid)),
                g.fd
            )
        })
        .collect();
    let more = if n > 3 {
        format!(" +{}", n - 3)
    } else {
        String::new()
    };
    Line::from(vec![
        Span::styled(format!("! {n} dead {noun} still held"), theme.flag()),
        Span::styled(" (L) ", theme.dim()),
        Span::raw(format!("{}{more}", list.join(", "))),
    ])
}

fn unreadable(snap: &Snapshot, theme: Theme) -> Line<'static> {
    let n = snap.unreadable.len();
    let names: Vec<String> = snap
        .unreadable
        .iter()
        .take(3)
        .map(|u| match &u.comm {
            Some(c) => format!("{}/{}", u.pid, escape(c)),
            None => u.pid.to_string(),
        })
        .collect();
    let more = if n > 3 {
        format!(" +{}", n - 3)
    } else {
        String::new()
    };
    let noun = if n == 1 { "process" } else { "processes" };
    Line::from(vec![
        Span::styled(format!("! {n} {noun} unreadable "), theme.flag()),
        Span::raw(format!(
            "({}{more}) - {}",
            names.join(", "),
            snap.unreadable_hint()
        )),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_stay_short() {
        assert_eq!(micros(850), "850us");
        assert_eq!(micros(1_840), "1.8ms");
        assert_eq!(micros(42_000), "42ms");
        assert_eq!(micros(1_250_000), "1.2s");
    }
}
