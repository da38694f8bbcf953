//! The TUI drawn from fixture snapshots with a frozen clock into ratatui's TestBackend, at 80x24 and 160x50,
//! compared with insta snapshots (the .snap files are the screenshots: review them by eye).

mod common;

use insta::assert_snapshot;
use kwatch::analyze::{Thresholds, analyze};
use kwatch::filter::Filter;
use kwatch::model::keepalive::KeepaliveSettings;
use kwatch::model::{Snapshot, TimerKind};
use kwatch::pace::Stretch;
use kwatch::tui::{Action, App, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// The fixtures' `taken_at_unix_ms`.
const T0: u64 = 1_700_000_000_000;

fn load(name: &str) -> Snapshot {
    let mut snap = kwatch::testing::fixture(name);
    analyze(&mut snap, &Thresholds::default());
    snap
}

/// An app that has seen `fixture` once, 1.2s after it was taken.
fn app_with(fixture: &str, size: (u16, u16)) -> App {
    app_of(load(fixture), size)
}

/// An app that has seen `snap` once, 1.2s after the fixtures were taken.
fn app_of(snap: Snapshot, (width, height): (u16, u16)) -> App {
    let mut app = App::new(Filter::default(), false);
    update(&mut app, Action::Resize { width, height });
    update(
        &mut app,
        Action::Snapshot {
            snapshot: std::sync::Arc::new(snap),
            now_ms: T0 + 1_200,
        },
    );
    app
}

fn draw(app: &App, (width, height): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    terminal
}

fn press(app: &mut App, actions: impl IntoIterator<Item = Action>) {
    for a in actions {
        update(app, a);
    }
}

fn type_filter(app: &mut App, text: &str) {
    update(app, Action::FilterOpen);
    update(app, Action::FilterClearLine);
    for c in text.chars() {
        update(app, Action::FilterChar(c));
    }
    update(app, Action::FilterApply);
}

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 50)];

fn name(what: &str, (w, h): (u16, u16)) -> String {
    format!("{what}_{w}x{h}")
}

#[test]
fn connections_view_marks_stuck_rows() {
    for size in SIZES {
        let app = app_with("busy.json", size);
        let terminal = draw(&app, size);
        let screen = format!("{}", terminal.backend());
        // Under NO_COLOR (this app has no colours) stuck rows still carry a text marker.
        assert!(screen.contains("!! ESTAB"), "{screen}");
        assert!(screen.contains("!! CLOSE-WAIT"), "{screen}");
        assert!(screen.contains("!  CLOSE-WAIT"), "{screen}");
        // Info rows carry the `~` the table and the README use.
        assert!(screen.contains("~  ESTAB"), "{screen}");
        // The hostile process name reaches the screen escaped.
        assert!(!screen.contains('\u{1b}'), "{screen}");
        assert_snapshot!(name("connections", size), terminal.backend());
    }
}

/// The first frame of a big host (the dump alone): sockets without owners read as pending, never as unowned, and
/// the header says what is being read.
#[test]
fn a_dump_only_first_frame_shows_owners_as_pending() {
    let size = (160, 30);
    let mut snap = load("busy.json");
    let full = format!("{}", draw(&app_of(snap.clone(), size), size).backend());
    // The owner cell alone: `…` between spaces (a truncated finding ends its line with one).
    assert!(!full.contains(" … "), "{full}");
    for c in &mut snap.connections {
        c.owners = kwatch::model::Owners::new();
    }
    snap.processes.clear();
    snap.owners_pending = true;
    let screen = format!("{}", draw(&app_of(snap, size), size).backend());
    assert!(
        screen.contains("reading owners and socket options"),
        "{screen}"
    );
    let pending = screen
        .lines()
        .filter(|l| l.contains("ESTAB") && l.contains(" … "))
        .count();
    assert!(pending > 0, "{screen}");
}

/// The busy fixture with keepalive settings as a collection fills them ([`common::fill_busy_keepalive`]).
fn with_keepalive(mut snap: Snapshot) -> Snapshot {
    common::fill_busy_keepalive(&mut snap);
    snap
}

#[test]
fn connections_view_shows_each_sockets_keepalive() {
    let size = (160, 50);
    let app = app_of(with_keepalive(load("busy.json")), size);
    let terminal = draw(&app, size);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("KEEPALIVE"), "{screen}");
    for cell in ["30/10/3", "300/100/3", "7200/75/9*", " off "] {
        assert!(screen.contains(cell), "no '{cell}':\n{screen}");
    }
    assert_snapshot!(name("connections_keepalive", size), terminal.backend());
    // Without settings on any socket (the bare fixture) there is no column of dashes.
    let bare = draw(&app_with("busy.json", size), size);
    assert!(!format!("{}", bare.backend()).contains("KEEPALIVE"));
}

#[test]
fn processes_view() {
    for size in SIZES {
        let mut app = app_with("busy.json", size);
        press(&mut app, [Action::SwitchView]);
        let terminal = draw(&app, size);
        assert_snapshot!(name("processes", size), terminal.backend());
    }
}

/// nginx master 811 and worker 812 (one service: they share the :443 listener) hold the keepalive-less sockets
/// 1005 and 1014 and the keepalive ones 1003 and 1009, one pair each, then swapped: the per-process finding
/// moves from one to the other, the service's stays on both rows, the same text.
#[test]
fn processes_view_shows_a_steady_service_finding_whichever_worker_holds_what() {
    use kwatch::model::Owner;
    let size = (160, 50);
    let mut screens = Vec::new();
    for (off, on) in [(811, 812), (812, 811)] {
        let mut snap = load("busy.json");
        for c in &mut snap.connections {
            match c.cookie {
                1005 | 1014 => {
                    c.owners = Owner {
                        pid: off,
                        fd: c.cookie as u32,
                    }
                    .into()
                }
                1003 | 1009 => {
                    c.owners = Owner {
                        pid: on,
                        fd: c.cookie as u32,
                    }
                    .into()
                }
                _ => {}
            }
        }
        analyze(&mut snap, &Thresholds::default());
        let mut app = app_of(snap, size);
        press(&mut app, [Action::SwitchView]);
        let flagged: Vec<u32> = app
            .procs
            .iter()
            .filter(|p| !p.process_findings.is_empty() && p.comm == "nginx")
            .map(|p| p.pid)
            .collect();
        assert_eq!(
            flagged,
            vec![off],
            "the per-process finding follows the sockets"
        );
        let screen = format!("{}", draw(&app, size).backend());
        let rows: Vec<String> = screen
            .lines()
            .filter(|l| l.contains(" nginx "))
            .map(|l| l.to_string())
            .collect();
        assert_eq!(rows.len(), 2, "{screen}");
        for row in &rows {
            assert!(row.contains("811/nginx ×2 ~keepalive_off"), "{row}");
        }
        screens.push(screen);
    }
    assert_snapshot!("processes_service_160x50", screens[0]);
}

#[test]
fn processes_view_enter_shows_that_process() {
    let size = (80, 24);
    let mut app = app_with("busy.json", size);
    press(&mut app, [Action::SwitchView, Action::Enter]);
    let terminal = draw(&app, size);
    assert_snapshot!(name("process_connections", size), terminal.backend());
}

/// The dead-peer socket (cookie 1004) seen over several refreshes: probes climbing, idle growing.
fn app_with_history(size: (u16, u16)) -> App {
    let mut app = App::new(Filter::default(), false);
    update(
        &mut app,
        Action::Resize {
            width: size.0,
            height: size.1,
        },
    );
    for step in 0..12u64 {
        let mut snap = load("busy.json");
        snap.taken_at_unix_ms = T0 + step * 75_000;
        let settings = snap.settings;
        for c in snap.connections.iter_mut().filter(|c| c.cookie == 1004) {
            assert_eq!(c.timer.kind, TimerKind::Keepalive);
            c.keepalive = Some(KeepaliveSettings::assumed(c, &settings).into());
            c.timer.count = (step / 4) as u8 + 1;
            if let Some(info) = c.tcp_info.as_mut() {
                let idle = info.last_data_recv_ms().unwrap_or(0) - 900_000 + (step as u32) * 75_000;
                info.set_last_data_recv_ms(Some(idle));
                info.set_last_ack_recv_ms(Some(idle));
            }
        }
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(snap),
                now_ms: T0 + step * 75_000 + 1_200,
            },
        );
    }
    app
}

/// The live view records the history on the collector thread, which may already hold the next snapshot: the
/// detail pane then does not give the time in a state the row does not show.
#[test]
fn detail_pane_gives_no_time_in_a_state_the_history_has_moved_past() {
    let size = (80, 24);
    let mut app = app_with_history(size);
    press(&mut app, [Action::Home, Action::Enter]);
    let session = |app: &App| {
        let screen = format!("{}", draw(app, size).backend());
        screen
            .lines()
            .find(|l| l.contains("session"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(session(&app).contains("already ESTAB"), "{}", session(&app));
    let mut next = load("busy.json");
    next.taken_at_unix_ms = T0 + 12 * 75_000;
    for c in next.connections.iter_mut().filter(|c| c.cookie == 1004) {
        c.state = kwatch::model::TcpState::CloseWait;
    }
    app.history
        .lock()
        .history
        .observe(&next, next.taken_at_unix_ms, None);
    let line = session(&app);
    assert!(line.contains("first seen 13m46s ago "), "{line}");
    assert!(!line.contains("ESTAB") && !line.contains("CLOSE"), "{line}");
}

#[test]
fn detail_pane_reads_the_timer_and_shows_history() {
    for size in SIZES {
        let mut app = app_with_history(size);
        press(&mut app, [Action::Home, Action::Enter]);
        let detail = app.detail.as_ref().expect("detail open");
        assert_eq!(detail.conn.cookie, 1004);
        let terminal = draw(&app, size);
        let screen = format!("{}", terminal.backend());
        assert!(
            screen.contains("keepalive probes unanswered; with 75s x 9"),
            "{screen}"
        );
        assert_snapshot!(name("detail", size), terminal.backend());
    }
}

#[test]
fn detail_pane_without_keepalive() {
    let size = (80, 24);
    let mut app = app_with("busy.json", size);
    let row = app
        .rows
        .iter()
        .position(|i| app.snapshot.as_ref().map(|s| s.connections[*i].cookie) == Some(1005));
    press(&mut app, [Action::Home]);
    for _ in 0..row.expect("cookie 1005 listed") {
        update(&mut app, Action::Down);
    }
    update(&mut app, Action::Enter);
    let terminal = draw(&app, size);
    let screen = format!("{}", terminal.backend());
    assert!(
        screen.contains("no keepalive: if this peer vanished"),
        "{screen}"
    );
    assert_snapshot!(name("detail_no_keepalive", size), terminal.backend());
}

#[test]
fn help_overlay_lists_every_key() {
    for size in SIZES {
        let mut app = app_with("busy.json", size);
        press(&mut app, [Action::ToggleHelp]);
        let terminal = draw(&app, size);
        let screen = format!("{}", terminal.backend());
        for (keys, _) in kwatch::tui::keys::HELP {
            assert!(
                screen.contains(keys.trim()),
                "help misses '{keys}' at {size:?}:\n{screen}"
            );
        }
        // The markers the help names are the table's.
        use kwatch::model::Severity;
        for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
            let mark = kwatch::output::table::severity_marker(sev);
            assert!(
                screen.contains(&format!("{mark} {}", sev.label())),
                "help lacks '{mark} {}':\n{screen}",
                sev.label()
            );
        }
        assert!(screen.contains("~ info"), "{screen}");
        assert_snapshot!(name("help", size), terminal.backend());
    }
}

#[test]
fn filter_error_is_shown_in_the_prompt() {
    for size in SIZES {
        let mut app = app_with("busy.json", size);
        type_filter(&mut app, "port:443 state:closewait");
        assert!(app.prompt.as_ref().and_then(|p| p.error.as_ref()).is_some());
        let terminal = draw(&app, size);
        assert_snapshot!(name("filter_error", size), terminal.backend());
    }
}

#[test]
fn filter_narrows_the_rows() {
    let size = (80, 24);
    let mut app = app_with("busy.json", size);
    type_filter(&mut app, "state:close-wait");
    let terminal = draw(&app, size);
    assert_snapshot!(name("filtered", size), terminal.backend());
}

#[test]
fn empty_result() {
    for size in SIZES {
        let mut app = app_with("busy.json", size);
        type_filter(&mut app, "port:1");
        assert!(app.rows.is_empty());
        let terminal = draw(&app, size);
        assert_snapshot!(name("empty_result", size), terminal.backend());
    }
    let size = (80, 24);
    let app = app_with("empty.json", size);
    let terminal = draw(&app, size);
    assert_snapshot!(name("no_sockets", size), terminal.backend());
}

#[test]
fn paused_before_the_first_snapshot_and_collector_error() {
    let size = (80, 24);
    let mut app = App::new(Filter::default(), false);
    press(
        &mut app,
        [
            Action::Resize {
                width: 80,
                height: 24,
            },
            Action::TogglePause,
        ],
    );
    press(
        &mut app,
        [Action::CollectorError(
            "sock_diag dump failed: permission denied".into(),
        )],
    );
    let terminal = draw(&app, size);
    assert_snapshot!(name("starting", size), terminal.backend());
}

/// A watch event about a socket `local` → `peer` held by `owner` (pid, fd, comm).
fn socket(cookie: u64, local: &str, peer: &str) -> kwatch::events::SocketId {
    let local: std::net::SocketAddr = local.parse().expect("local");
    let peer: std::net::SocketAddr = peer.parse().expect("peer");
    kwatch::events::SocketId {
        cookie,
        family: if local.is_ipv4() {
            kwatch::model::Family::Ipv4
        } else {
            kwatch::model::Family::Ipv6
        },
        local_addr: local.ip(),
        local_port: local.port(),
        peer_addr: peer.ip(),
        peer_port: peer.port(),
    }
}

/// What the log view and the held dead sockets are drawn from: java (2231) kept the fd of a connection its peer
/// let die by keepalive; the hostile process (3107) keeps one that was reset; a few deaths and state changes.
fn app_with_deaths(size: (u16, u16)) -> App {
    use kwatch::events::WatchEvent;
    use kwatch::model::StateName;
    use kwatch::model::keepalive::DeathCause;
    use kwatch::model::{HeldDeadSocket, Owner, TcpInfo, TcpInfoFields, TcpState};
    let mut app = App::new(Filter::default(), false);
    update(
        &mut app,
        Action::Resize {
            width: size.0,
            height: size.1,
        },
    );
    let mut snap = load("busy.json");
    snap.taken_at_unix_ms = T0 + 100_000;
    snap.held_dead = vec![
        HeldDeadSocket {
            pid: 2231,
            fd: 17,
            inode: 90_017,
            local_addr: Some("10.0.0.5".parse().expect("addr")),
            local_port: Some(40180),
            tcp_info: Some(TcpInfo::from(TcpInfoFields {
                state: Some(7),
                probes: Some(9),
                retransmits: Some(0),
                ..TcpInfoFields::default()
            })),
            cause: DeathCause::KeepaliveExhausted,
        },
        HeldDeadSocket {
            pid: 3107,
            fd: 9,
            inode: 90_009,
            local_addr: None,
            local_port: None,
            tcp_info: None,
            cause: DeathCause::Reset,
        },
    ];
    update(
        &mut app,
        Action::Snapshot {
            snapshot: std::sync::Arc::new(snap),
            now_ms: T0 + 101_200,
        },
    );
    let java = |fd| vec![Owner { pid: 2231, fd }];
    let destroy =
        |t, s, owners, comm: Option<&str>, last, probes, retransmits, cause| WatchEvent::Destroy {
            time_unix_ms: T0 + t,
            socket: s,
            owners,
            comm: comm.map(str::to_string),
            last_state: StateName(last),
            probes: Some(probes),
            retransmits: Some(retransmits),
            cause,
        };
    let events = vec![
        WatchEvent::Start {
            time_unix_ms: T0,
            sockets: 14,
            destroy_events: true,
        },
        WatchEvent::State {
            time_unix_ms: T0 + 61_000,
            socket: socket(2001, "10.0.0.5:40180", "10.0.0.13:5432"),
            owners: java(17),
            comm: Some("java".into()),
            from: StateName(TcpState::Established),
            to: StateName(TcpState::Close),
        },
        WatchEvent::State {
            time_unix_ms: T0 + 62_000,
            socket: socket(1003, "10.0.0.5:443", "203.0.113.7:51234"),
            owners: vec![Owner { pid: 812, fd: 11 }],
            comm: Some("nginx".into()),
            from: StateName(TcpState::Established),
            to: StateName(TcpState::CloseWait),
        },
        destroy(
            75_000,
            socket(2002, "10.0.0.5:40190", "10.0.0.14:5432"),
            java(18),
            Some("java"),
            TcpState::Established,
            9,
            0,
            DeathCause::KeepaliveExhausted,
        ),
        destroy(
            80_000,
            socket(2003, "10.0.0.5:443", "203.0.113.9:50600"),
            vec![Owner { pid: 812, fd: 12 }],
            Some("nginx"),
            TcpState::FinWait2,
            0,
            0,
            DeathCause::Closed,
        ),
        destroy(
            90_000,
            socket(2004, "10.0.0.5:40200", "198.51.100.20:80"),
            vec![Owner { pid: 3107, fd: 9 }],
            Some("evil\u{1b}]0;pwned\u{7}"),
            TcpState::Established,
            0,
            1,
            DeathCause::Reset,
        ),
        destroy(
            95_000,
            socket(2005, "[2001:db8::5]:40210", "[2001:db8::99]:443"),
            vec![],
            None,
            TcpState::Established,
            0,
            15,
            DeathCause::RetransmitTimeout,
        ),
        WatchEvent::Warning {
            time_unix_ms: T0 + 96_000,
            message: "destroy notifications may have been lost: no buffer space available".into(),
        },
    ];
    update(&mut app, Action::Log(events));
    app
}

#[test]
fn log_view_lists_deaths_newest_first_under_the_held_dead_sockets() {
    for size in SIZES {
        let mut app = app_with_deaths(size);
        press(&mut app, [Action::ToggleLog]);
        let terminal = draw(&app, size);
        let screen = format!("{}", terminal.backend());
        assert!(screen.contains(" Event log 8 "), "{screen}");
        assert!(screen.contains("keepalive_exhausted"), "{screen}");
        assert!(!screen.contains('\u{1b}'), "{screen}");
        // The held socket's peer comes from the log's record of it leaving the dump.
        assert!(
            screen
                .lines()
                .any(|l| l.contains("2231/java") && l.contains("10.0.0.13:5432")),
            "{screen}"
        );
        assert_snapshot!(name("log", size), terminal.backend());
    }
}

#[test]
fn held_dead_sockets_show_in_the_header_and_per_process() {
    for size in SIZES {
        let mut app = app_with_deaths(size);
        press(&mut app, [Action::SwitchView]);
        let terminal = draw(&app, size);
        let screen = format!("{}", terminal.backend());
        assert!(screen.contains("! 2 dead sockets still held"), "{screen}");
        assert!(screen.contains("DEAD"), "{screen}");
        assert_snapshot!(name("processes_held_dead", size), terminal.backend());
    }
}

#[test]
fn log_view_without_destroy_notifications() {
    let size = (80, 24);
    let mut app = app_with("busy.json", size);
    press(
        &mut app,
        [
            Action::Log(vec![
                kwatch::events::WatchEvent::Warning {
                    time_unix_ms: T0,
                    message: "no destroy notifications: cannot open a sock_diag socket: permission denied"
                        .into(),
                },
                kwatch::events::WatchEvent::Start {
                    time_unix_ms: T0,
                    sockets: 14,
                    destroy_events: false,
                },
            ]),
            Action::ToggleLog,
        ],
    );
    let terminal = draw(&app, size);
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains("deaths are not logged"), "{screen}");
    assert_snapshot!(name("log_no_destroy_events", size), terminal.backend());
}

#[test]
fn log_view_before_anything_happened() {
    let size = (80, 24);
    let mut app = app_with("busy.json", size);
    press(&mut app, [Action::ToggleLog]);
    let terminal = draw(&app, size);
    assert_snapshot!(name("log_empty", size), terminal.backend());
}

/// The first line of the screen, as text.
fn first_line(terminal: &Terminal<TestBackend>) -> String {
    let buf = terminal.backend().buffer();
    (0..buf.area.width)
        .map(|x| buf[(x, 0)].symbol().to_string())
        .collect()
}

#[test]
fn the_header_says_when_refreshes_come_less_often_than_the_interval() {
    let size = (160, 50);
    let mut app = app_with("busy.json", size);
    let plain = first_line(&draw(&app, size));
    assert!(
        plain.ends_with("refreshed 1s ago · dump 1.8ms + /proc 5.2ms"),
        "{plain}"
    );
    update(
        &mut app,
        Action::Stretched(Some(Stretch {
            period: std::time::Duration::from_millis(1800),
            over_budget: false,
        })),
    );
    let stretched = first_line(&draw(&app, size));
    assert!(
        stretched.ends_with("refreshed 1s ago, every 1.8s (CPU budget) · dump 1.8ms + /proc 5.2ms"),
        "{stretched}"
    );
    // At the longest period a refresh still costs more than the budget (a million sockets): the header says so.
    update(
        &mut app,
        Action::Stretched(Some(Stretch {
            period: std::time::Duration::from_secs(5),
            over_budget: true,
        })),
    );
    let over = first_line(&draw(&app, size));
    assert!(
        over.ends_with("refreshed 1s ago, every 5.0s (over CPU budget) · dump 1.8ms + /proc 5.2ms"),
        "{over}"
    );
    update(&mut app, Action::Stretched(None));
    assert_eq!(first_line(&draw(&app, size)), plain);
}

#[test]
fn a_terminal_too_small_for_one_row_says_so() {
    let text = |terminal: &Terminal<TestBackend>| {
        let buf = terminal.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for size in [(20, 5), (39, 24), (80, 8), (1, 1)] {
        let app = app_with("busy.json", size);
        let shown = text(&draw(&app, size));
        assert!(
            shown.contains("terminal too small") || size == (1, 1),
            "{size:?}: {shown}"
        );
    }
    let app = app_with("busy.json", (20, 5));
    let shown = text(&draw(&app, (20, 5)));
    assert!(shown.contains("(need 40x"), "{shown}");
    // From the size it names, the table is back.
    let need_h: u16 = shown
        .split("(need 40x")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|h| h.parse().ok())
        .expect("a height");
    let size = (40, need_h);
    let app = app_with("busy.json", size);
    let shown = text(&draw(&app, size));
    assert!(!shown.contains("terminal too small"), "{shown}");
    assert!(
        shown.contains("ESTAB") || shown.contains("LISTEN"),
        "a row: {shown}"
    );
}
