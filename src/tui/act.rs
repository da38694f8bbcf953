//! Acting from the live view: `K` kills, `E` turns keepalive on (60/10/5), for the connection under the cursor or
//! every socket of the process under the cursor, after a y/N question in the footer.
//!
//! A process's listening sockets are killed only when the filter names `state:listen`, as with `kwatch kill`; a
//! listener row under the cursor is itself named, and the question says it is a listener.
//!
//! [`plan`] is pure (what the question names). Once the user said yes, the UI thread hands the [`Pending`] action to
//! the collector thread, which performs it (`tui/perform.rs`) and sends one line for the footer back.

use crate::act::plan;
use crate::escape::escape;
use crate::model::keepalive::KeepaliveValues;
use crate::model::{Connection, Snapshot, TcpState};
use crate::tui::app::{App, View};

/// What `K` and `E` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActKind {
    Kill,
    Keepalive,
}

/// An action waiting for its y/N answer, then to be performed on the collector thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub kind: ActKind,
    /// Copies: the sockets named in the question are the ones acted on, whatever the next refresh shows.
    pub targets: Vec<Connection>,
    /// What the question names: `ESTAB 10.0.0.1:443 -> 10.0.0.9:5123` or `nginx[1234]`.
    pub subject: String,
    /// Sockets of the subject left out (wrong state, no owner), listeners included.
    pub skipped: usize,
    /// Of `skipped`, the listening sockets left out because the filter does not name `state:listen`.
    pub listeners: usize,
}

impl Pending {
    /// The footer's question.
    pub fn question(&self) -> String {
        let n = self.targets.len();
        let sockets = if n == 1 {
            "1 socket".to_string()
        } else {
            format!("{n} sockets")
        };
        let mut skipped = if self.skipped > 0 {
            format!(", {} skipped", self.skipped)
        } else {
            String::new()
        };
        if self.listeners > 0 {
            skipped.push_str(&format!(
                " ({} listening: filter state:listen to include)",
                self.listeners
            ));
        }
        let listening = self
            .targets
            .iter()
            .filter(|c| c.state == TcpState::Listen)
            .count();
        match self.kind {
            ActKind::Kill if listening > 0 => format!(
                "kill {sockets} of {}{skipped}, {listening} LISTENING: the service stops accepting?",
                self.subject
            ),
            ActKind::Kill => format!(
                "kill {sockets} of {}{skipped}? the program keeps a dead fd",
                self.subject
            ),
            ActKind::Keepalive => {
                let v = KeepaliveValues::DEFAULT;
                format!(
                    "keepalive on (idle {}s intvl {}s cnt {}) for {sockets} of {}{skipped}?",
                    v.idle_s, v.intvl_s, v.cnt, self.subject
                )
            }
        }
    }
}

/// The sockets `kind` would act on from where the cursor is: the connection (in the table or the detail pane), or
/// every visible socket of the process. `Err` says why there is nothing to ask about.
pub fn plan(app: &App, kind: ActKind) -> Result<Pending, String> {
    let snap = app.snapshot.as_ref().ok_or("no snapshot yet")?;
    // The row under the cursor is named by pointing at it; a process's listeners only by the filter.
    let (candidates, subject, listen_named): (Vec<&Connection>, String, bool) = match app.view {
        View::Connections => {
            let conn = match app.detail.as_ref() {
                Some(d) if d.gone => return Err("that socket is gone".into()),
                Some(d) => &d.conn,
                None => app.selected_conn().ok_or("no connection selected")?,
            };
            (
                vec![conn],
                plan::socket_line(conn, &Snapshot::default()),
                true,
            )
        }
        View::Processes => {
            let p = app.selected_proc().ok_or("no process selected")?;
            let conns = snap
                .connections
                .iter()
                .filter(|c| c.owners.iter().any(|o| o.pid == p.pid))
                .filter(|c| app.filter.matches_in(c, snap))
                .collect();
            (
                conns,
                format!("{}[{}]", escape(&p.comm), p.pid),
                plan::names_listen(&[&app.filter]),
            )
        }
        View::Log => return Err("select a connection or a process first".into()),
    };
    let plan = match kind {
        ActKind::Kill => plan::plan_kill(&candidates, listen_named),
        ActKind::Keepalive => plan::plan_keepalive(&candidates),
    };
    let skipped = candidates.len() - plan.targets.len();
    if plan.targets.is_empty() {
        return Err(match kind {
            ActKind::Kill if !plan.listeners.is_empty() => format!(
                "nothing to kill in {subject} but listening sockets: filter state:listen to include them"
            ),
            ActKind::Kill => format!("nothing to kill in {subject}"),
            ActKind::Keepalive => format!(
                "keepalive: nothing to change in {subject} (only ESTABLISHED and CLOSE-WAIT sockets of a known process)"
            ),
        });
    }
    Ok(Pending {
        kind,
        listeners: plan.listeners.len(),
        targets: plan.targets.into_iter().cloned().collect(),
        subject,
        skipped,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::filter::Filter;
    use crate::model::{Owner, Process, TcpState};
    use crate::tui::app::{Action, STATUS_MS, update};

    fn conn(cookie: u64, state: TcpState, pid: Option<u32>) -> Connection {
        Connection {
            cookie,
            state,
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            local_port: 443,
            peer_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
            peer_port: 5000 + cookie as u16,
            inode: u32::try_from(cookie).unwrap(),
            owners: pid.map(|pid| Owner { pid, fd: 3 }).into_iter().collect(),
            ..crate::testing::conn()
        }
    }

    fn app() -> App {
        let mut snap = Snapshot {
            connections: vec![
                conn(1, TcpState::Established, Some(7)),
                conn(2, TcpState::CloseWait, Some(7)),
                conn(3, TcpState::Listen, Some(7)),
                conn(4, TcpState::Established, Some(8)),
            ],
            ..Snapshot::default()
        };
        snap.processes.insert(
            7,
            Process {
                pid: 7,
                comm: "web\x1b".into(),
                cmdline: vec![],
                uid: None,
                user: None,
            },
        );
        let mut app = App::new(Filter::default(), false);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(snap),
                now_ms: 0,
            },
        );
        app
    }

    #[test]
    fn a_connection_row_names_that_socket() {
        let app = app();
        let p = plan(&app, ActKind::Kill).unwrap();
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].cookie, app.selected_conn().unwrap().cookie);
        assert!(
            p.question()
                .starts_with("kill 1 socket of ESTAB 10.0.0.1:443 -> 10.0.0.9:")
                || p.question().starts_with("kill 1 socket of CLOSE-WAIT")
                || p.question().starts_with("kill 1 socket of LISTEN"),
            "{}",
            p.question()
        );
        assert!(p.question().ends_with("the program keeps a dead fd"));
    }

    /// Switches to the processes view and moves the cursor to `pid`.
    fn select_process(app: &mut App, pid: u32) {
        update(app, Action::SwitchView);
        while app.selected_proc().map(|p| p.pid) != Some(pid) {
            update(app, Action::Down);
        }
    }

    fn sorted_cookies(p: &Pending) -> Vec<u64> {
        let mut cookies: Vec<u64> = p.targets.iter().map(|c| c.cookie).collect();
        cookies.sort_unstable();
        cookies
    }

    #[test]
    fn a_process_row_takes_all_its_sockets_that_apply() {
        let mut app = app();
        select_process(&mut app, 7);
        let kill = plan(&app, ActKind::Kill).unwrap();
        let cookies = sorted_cookies(&kill);
        assert_eq!(cookies, vec![1, 2], "the listener is not killed unasked");
        assert_eq!(kill.subject, "web\\x1b[7]");
        assert_eq!(
            kill.question(),
            "kill 2 sockets of web\\x1b[7], 1 skipped (1 listening: filter state:listen to include)? the \
             program keeps a dead fd"
        );
        let ka = plan(&app, ActKind::Keepalive).unwrap();
        assert_eq!(ka.targets.len(), 2, "the listener is skipped");
        assert_eq!(
            ka.question(),
            "keepalive on (idle 60s intvl 10s cnt 5) for 2 sockets of web\\x1b[7], 1 skipped?"
        );
    }

    #[test]
    fn a_process_listener_is_killed_only_when_the_filter_names_listen() {
        let mut app = app();
        update(&mut app, Action::FilterOpen);
        for c in "state:listen,established".chars() {
            update(&mut app, Action::FilterChar(c));
        }
        update(&mut app, Action::FilterApply);
        select_process(&mut app, 7);
        let kill = plan(&app, ActKind::Kill).unwrap();
        let cookies = sorted_cookies(&kill);
        assert_eq!(cookies, vec![1, 3]);
        assert!(
            kill.question().starts_with(
                "kill 2 sockets of web\\x1b[7], 1 LISTENING: the service stops accepting?"
            ),
            "{}",
            kill.question()
        );
    }

    #[test]
    fn a_listener_row_is_named_and_the_question_says_so() {
        let mut app = app();
        while app.selected_conn().map(|c| c.state) != Some(TcpState::Listen) {
            update(&mut app, Action::Down);
        }
        let kill = plan(&app, ActKind::Kill).unwrap();
        assert_eq!(kill.targets.len(), 1);
        assert!(
            kill.question()
                .starts_with("kill 1 socket of LISTEN 10.0.0.1:443 -> 10.0.0.9:")
                && kill
                    .question()
                    .ends_with(", 1 LISTENING: the service stops accepting?"),
            "{}",
            kill.question()
        );
    }

    #[test]
    fn the_question_takes_the_keys_and_only_yes_requests_the_act() {
        use crate::tui::app::Mode;
        let mut app = app();
        update(&mut app, Action::Tick { now_ms: 1_000 });
        update(&mut app, Action::Kill);
        assert_eq!(app.mode(), Mode::Confirm);
        let asked = app.confirm.clone().unwrap();
        update(&mut app, Action::ConfirmNo);
        assert_eq!(app.mode(), Mode::Browse);
        assert_eq!(app.act_request, None);
        assert_eq!(app.status, Some(("nothing done".to_string(), 1_000)));

        update(&mut app, Action::EnableKeepalive);
        update(&mut app, Action::ConfirmYes);
        assert_eq!(app.mode(), Mode::Browse);
        let request = app.act_request.take().unwrap();
        assert_eq!(request.kind, ActKind::Keepalive);
        assert_eq!(request.targets, asked.targets);
        update(&mut app, Action::ActDone("keepalive on for 1 of 1".into()));
        assert_eq!(
            app.status,
            Some(("keepalive on for 1 of 1".to_string(), 1_000))
        );
    }

    #[test]
    fn the_footer_shows_the_question_then_the_outcome_for_a_while() {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;
        let mut app = app();
        update(
            &mut app,
            Action::Resize {
                width: 120,
                height: 12,
            },
        );
        let screen = |app: &App| {
            let mut t = Terminal::new(TestBackend::new(120, 12)).unwrap();
            t.draw(|f| f.render_widget(app, f.area())).unwrap();
            let buf = t.backend().buffer().clone();
            (0..12)
                .map(|y| {
                    (0..120)
                        .map(|x| buf[(x, y)].symbol().to_string())
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        update(&mut app, Action::Kill);
        assert!(
            screen(&app).contains(" y/N  kill 1 socket of "),
            "{}",
            screen(&app)
        );
        update(&mut app, Action::ConfirmYes);
        update(&mut app, Action::ActDone("killed 1 of 1".into()));
        assert!(
            screen(&app).contains(" K/E  killed 1 of 1"),
            "{}",
            screen(&app)
        );
        update(&mut app, Action::Tick { now_ms: STATUS_MS });
        assert!(!screen(&app).contains("killed 1 of 1"), "{}", screen(&app));
    }

    #[test]
    fn nothing_to_act_on_is_said_not_asked() {
        let app = App::new(Filter::default(), false);
        assert_eq!(plan(&app, ActKind::Kill).unwrap_err(), "no snapshot yet");
        let mut app = self::app();
        update(&mut app, Action::SwitchView);
        while app.selected_proc().map(|p| p.pid) != Some(8) {
            update(&mut app, Action::Down);
        }
        // pid 8's socket has an owner and is established: fine; a listener alone is not.
        assert!(plan(&app, ActKind::Keepalive).is_ok());
    }
}
