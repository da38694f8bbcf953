//! The `--once` text table: whole-output snapshots of the busy fixture at several widths, width and escaping
//! guarantees, and colour only on request.
#![allow(clippy::unwrap_used)]

mod common;

use kwatch::analyze::{self, Thresholds};
use kwatch::model::{Connection, Snapshot, UnreadableProcess};
use kwatch::output::table::{self, TableOptions};
use unicode_width::UnicodeWidthStr;

fn load(name: &str) -> Snapshot {
    let mut snapshot = kwatch::testing::fixture(name);
    analyze::analyze(&mut snapshot, &Thresholds::default());
    snapshot
}

fn render(snapshot: &Snapshot, width: Option<usize>, color: bool) -> String {
    let conns: Vec<&Connection> = snapshot.connections.iter().collect();
    table::render(snapshot, &conns, &TableOptions { width, color })
}

fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.width() <= width,
            "line wider than {width}: {line:?} ({})",
            line.width()
        );
    }
}

#[test]
fn busy_unlimited() {
    let text = render(&load("busy.json"), None, false);
    insta::assert_snapshot!(text);
}

#[test]
fn busy_120() {
    let text = render(&load("busy.json"), Some(120), false);
    assert_fits(&text, 120);
    insta::assert_snapshot!(text);
}

#[test]
fn busy_80() {
    let text = render(&load("busy.json"), Some(80), false);
    assert_fits(&text, 80);
    insta::assert_snapshot!(text);
}

#[test]
fn empty_snapshot_has_header_and_footer() {
    let text = render(&load("empty.json"), Some(80), false);
    assert_fits(&text, 80);
    insta::assert_snapshot!(text);
}

#[test]
fn no_line_exceeds_any_width() {
    let snapshot = load("busy.json");
    for width in 1..=200 {
        assert_fits(&render(&snapshot, Some(width), false), width);
    }
}

#[test]
fn narrow_tables_keep_findings_and_process_before_queues() {
    let snapshot = load("busy.json");
    let wide = render(&snapshot, None, false);
    let header = wide.lines().next().unwrap();
    assert!(header.contains("Send-Q") && header.contains("Recv-Q"));
    let narrow = render(&snapshot, Some(100), false);
    let header = narrow.lines().next().unwrap();
    assert!(!header.contains("Send-Q"), "{header}");
    assert!(
        header.contains("Process") && header.contains("Findings"),
        "{header}"
    );
}

#[test]
fn hostile_comm_is_escaped_in_every_layout() {
    let snapshot = load("busy.json");
    for width in [None, Some(200), Some(120), Some(80), Some(40)] {
        let text = render(&snapshot, width, false);
        assert!(!text.contains('\u{1b}'), "raw ESC at width {width:?}");
        assert!(!text.contains('\u{7}'), "raw BEL at width {width:?}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "control char at width {width:?}"
        );
    }
    assert!(render(&snapshot, None, false).contains("3107/evil\\x1b]0;pwned\\x07"));
}

#[test]
fn colour_codes_only_when_asked() {
    let snapshot = load("busy.json");
    let plain = render(&snapshot, Some(120), false);
    assert!(!plain.contains('\u{1b}'));
    let coloured = render(&snapshot, Some(120), true);
    assert!(coloured.contains("\u{1b}[31m"), "critical rows are red");
    assert!(coloured.contains("\u{1b}[0m"));
    // The hostile name is still escaped: only kwatch's own SGR sequences appear.
    assert!(!coloured.contains("\u{1b}]"));
    // Stripping the colour gives back the plain table.
    let stripped = strip_sgr(&coloured);
    assert_eq!(stripped, plain);
}

#[test]
fn unreadable_processes_turn_ownerless_sockets_into_question_marks() {
    let mut snapshot = load("busy.json");
    let text = render(&snapshot, None, false);
    // 1014 has an inode but no owner while pid 4242 could not be read.
    let row = text.lines().find(|l| l.contains("127.0.0.1:9100")).unwrap();
    assert!(
        row.contains(" ? ") || row.trim_end().ends_with('?'),
        "{row}"
    );
    assert!(text.contains("1 process could not be read; run as root to see their sockets"));
    snapshot.as_root = true;
    let text = render(&snapshot, None, false);
    assert!(
        text.contains("1 process could not be read; not even root may read them"),
        "as root, no hint to become root: {text}"
    );
    snapshot.as_root = false;
    // TIME_WAIT (inode 0) belongs to no process either way.
    let tw = text.lines().find(|l| l.starts_with("TIME-WAIT")).unwrap();
    assert!(tw.trim_end().ends_with(" -"), "{tw}");

    snapshot.unreadable.clear();
    let text = render(&snapshot, None, false);
    let row = text.lines().find(|l| l.contains("127.0.0.1:9100")).unwrap();
    assert!(!row.contains('?'), "{row}");
    assert!(!text.contains("could not be read"));

    snapshot.unreadable = (1..=3)
        .map(|pid| UnreadableProcess { pid, comm: None })
        .collect();
    let text = render(&snapshot, Some(60), false);
    assert_fits(&text, 60);
    assert!(text.contains("3 processes could not be read"), "{text}");
}

#[test]
fn keepalive_defaults_are_flagged_and_others_are_not() {
    let mut snapshot = load("busy.json");
    let text = render(&snapshot, None, false);
    assert!(text.contains("dead peers take 2h11m to notice"), "{text}");
    assert!(text.contains("kernel defaults (7200/75/9)"));

    snapshot.settings.tcp_keepalive_time_s = Some(60);
    snapshot.settings.tcp_keepalive_intvl_s = Some(10);
    snapshot.settings.tcp_keepalive_probes = Some(3);
    let text = render(&snapshot, None, false);
    assert!(text.contains("dead peers take 1m30s to notice"), "{text}");
    assert!(!text.contains("kernel defaults"));
}

fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn thousands_of_rows_come_out_in_order_and_aligned_as_few() {
    // More rows than one thread formats at a time: the busy fixture's sockets 400 times over.
    let busy = load("busy.json");
    let few = render(&busy, None, false);
    let n = busy.connections.len();
    let few_rows: Vec<&str> = few.lines().skip(1).take(n).collect();
    let mut many = busy.clone();
    many.connections = (0..400)
        .flat_map(|_| busy.connections.iter().cloned())
        .collect();
    let text = render(&many, None, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], few.lines().next().unwrap());
    for (i, line) in lines[1..=n * 400].iter().enumerate() {
        assert_eq!(*line, few_rows[i % n], "row {i}");
    }
}

/// The busy fixture with keepalive settings as a collection fills them ([`common::fill_busy_keepalive`]).
fn with_keepalive() -> Snapshot {
    let mut snapshot = load("busy.json");
    common::fill_busy_keepalive(&mut snapshot);
    snapshot
}

#[test]
fn keepalive_column_says_read_assumed_off_and_what_a_listener_hands_on() {
    let snapshot = with_keepalive();
    let text = render(&snapshot, None, false);
    let header = text.lines().next().unwrap();
    let at = header.find("Keepalive").expect("a Keepalive column");
    // Each row's cell starts where the header's does (left-aligned).
    let cell = |needle: &str| -> String {
        let row = text.lines().find(|l| l.contains(needle)).unwrap();
        row[at..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(cell("0.0.0.0:443 "), "30/10/3", "the listener: read");
    assert_eq!(
        cell("203.0.113.7:51234"),
        "300/100/3",
        "read from the socket"
    );
    assert_eq!(
        cell("10.0.0.9:5432"),
        "7200/75/9*",
        "assumed from the sysctls"
    );
    assert_eq!(cell("10.0.0.10:6379"), "off", "no timer: SO_KEEPALIVE off");
    assert_eq!(
        cell("192.0.2.50:9000"),
        "?",
        "retransmitting, not read: unknown"
    );
    assert_eq!(cell("203.0.113.9:50500"), "-", "TIME-WAIT: does not apply");
    assert_eq!(cell("[::]:22"), "-", "a listener not read");
    insta::assert_snapshot!(text);

    // Narrow: the column goes after the queues and counts, before the timer.
    let narrow = render(&snapshot, Some(120), false);
    assert_fits(&narrow, 120);
    let header = narrow.lines().next().unwrap();
    assert!(
        header.contains("Keepalive") && !header.contains("Send-Q"),
        "{header}"
    );
    let narrower = render(&snapshot, Some(100), false);
    let header = narrower.lines().next().unwrap();
    assert!(
        !header.contains("Keepalive") && header.contains("Timer"),
        "{header}"
    );

    // Without any settings (the bare fixture), no column of dashes.
    let bare = render(&load("busy.json"), None, false);
    assert!(!bare.lines().next().unwrap().contains("Keepalive"));
}
