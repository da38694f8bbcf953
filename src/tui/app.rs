//! UI state and the pure `update(&mut App, Action)` that every key, snapshot and tick goes through.

use std::sync::Arc;

use crate::analyze::ProcessSummary;
use crate::filter::Filter;
use crate::pace::Stretch;

use crate::events::WatchEvent;
use crate::model::{Connection, Snapshot};
use crate::tui::act::{self, ActKind, Pending};
use crate::tui::event_log::EventLog;
use crate::tui::history::Shared;
use crate::tui::prepare::{ConnSort, Counts, Prepared, ProcSort, ViewSpec, view_rows};

/// Which table is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Connections,
    Processes,
    /// The event log (`L`): deaths and state changes of watched sockets, and held dead sockets.
    Log,
}

/// What keys mean right now (the key map's input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A table (connections or processes) has the keys.
    Browse,
    /// The detail pane of one connection is open.
    Detail,
    /// The `/` filter prompt is taking text.
    Filter,
    /// The help overlay is open.
    Help,
    /// A `K` or `E` question waits for y/N in the footer.
    Confirm,
}

fn next_in<T: Copy + PartialEq>(all: &[T], cur: T) -> T {
    let i = all.iter().position(|x| *x == cur).unwrap_or(0);
    all[(i + 1) % all.len()]
}

/// Everything that changes the app: keys (through the key map), snapshots, collector errors, ticks, resizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Mouse wheel: a few rows at a time.
    ScrollUp,
    ScrollDown,
    SortNext,
    SortReverse,
    SwitchView,
    /// Connections: open the detail pane. Processes: show that process's connections.
    Enter,
    /// Close the detail pane, leave a process's connections, or clear the filter.
    Back,
    TogglePause,
    ToggleHelp,
    /// Open the event log, or go back to the table it was opened from.
    ToggleLog,
    Quit,
    FilterOpen,
    FilterChar(char),
    FilterBackspace,
    FilterClearLine,
    FilterApply,
    FilterCancel,
    /// `K`: ask, then destroy the selected connection or every socket of the selected process.
    Kill,
    /// `E`: ask, then turn keepalive on (60/10/5) for the selected connection or process.
    EnableKeepalive,
    /// The answer to the question.
    ConfirmYes,
    ConfirmNo,
    /// What `K`/`E` did, in one line for the footer (the collector thread performs them after `ConfirmYes`).
    ActDone(String),
    /// A new snapshot arrived at wall-clock time `now_ms` (Unix ms).
    Snapshot {
        snapshot: Arc<Snapshot>,
        now_ms: u64,
    },
    /// A new snapshot with its rows computed by the collector thread for the view it last heard of.
    PreparedSnapshot {
        snapshot: Arc<Snapshot>,
        prepared: Box<Prepared>,
        now_ms: u64,
    },
    CollectorError(String),
    /// Watch events from the collector, oldest first.
    Log(Vec<WatchEvent>),
    /// Refreshes come this far apart to stay within the CPU budget (`None`: every interval).
    Stretched(Option<Stretch>),
    /// Time passed: the header's "refreshed ... ago" moves.
    Tick {
        now_ms: u64,
    },
    Resize {
        width: u16,
        height: u16,
    },
}

/// The `/` prompt while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    /// Why the last Enter was refused.
    pub error: Option<String>,
}

/// The connection the detail pane shows: a copy, so a socket that closes stays readable (marked gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub conn: Connection,
    pub gone: bool,
}

/// Held dead sockets listed at most above the log (the header counts them all).
pub const HELD_ROWS: usize = 5;
/// Rows scrolled per mouse wheel notch.
const WHEEL_ROWS: usize = 3;
/// Terminal lines around a table besides the header: title line, column line, footer.
const TABLE_CHROME: u16 = 3;

/// The whole UI state. Built from snapshots; rendered by `render`; changed only by `update`.
#[derive(Debug, Clone)]
pub struct App {
    pub snapshot: Option<Arc<Snapshot>>,
    /// The newest snapshot that arrived while paused.
    pub held: Option<Arc<Snapshot>>,
    /// Wall clock (Unix ms) as of the last tick or snapshot: what "ago" is measured against.
    pub now_ms: u64,
    pub view: View,
    pub paused: bool,
    pub help: bool,
    pub quit: bool,
    pub color: bool,
    pub filter: Filter,
    /// The active filter as text (what the prompt starts from).
    pub filter_text: String,
    pub prompt: Option<Prompt>,
    /// Set by Enter on a process: the connections view shows only this pid's sockets.
    pub drill_pid: Option<u32>,
    pub conn_sort: ConnSort,
    pub conn_reverse: bool,
    pub proc_sort: ProcSort,
    pub proc_reverse: bool,
    /// Visible connections: indices into `snapshot.connections`, filtered and sorted.
    pub rows: Vec<usize>,
    pub procs: Vec<ProcessSummary>,
    pub conn_sel: usize,
    /// The selected socket's cookie: the selection follows it across refreshes.
    pub conn_cookie: Option<u64>,
    pub conn_offset: usize,
    pub proc_sel: usize,
    pub proc_pid: Option<u32>,
    pub proc_offset: usize,
    pub detail: Option<Detail>,
    /// What the session has seen of each socket, shared with the collector thread.
    pub history: Shared,
    /// The collector thread records each snapshot in `history` (the live view); otherwise `update` does, when the
    /// snapshot arrives (a replay, tests).
    pub history_elsewhere: bool,
    /// Header counts of the current snapshot.
    pub counts: Counts,
    /// The snapshot the newest one replaced: the event loop hands it to the collector thread to free, so that
    /// freeing 200,000 sockets does not hold up keys.
    pub retired: Option<Arc<Snapshot>>,
    pub collector_error: Option<String>,
    /// Refreshes come this far apart instead of every interval, to stay within the CPU budget.
    pub stretched: Option<Stretch>,
    /// Deaths and state changes of watched sockets, newest first.
    pub log: EventLog,
    /// Events that arrived while paused.
    pub held_log: Vec<WatchEvent>,
    pub log_sel: usize,
    pub log_offset: usize,
    /// The table `L` (or Esc, Tab) goes back to.
    pub log_return: View,
    /// Whether destroy notifications arrive (`None` until the collector says).
    pub destroy_events: Option<bool>,
    /// The newest warning of the log's feed (why destroy notifications are missing or were lost).
    pub log_warning: Option<String>,
    pub width: u16,
    pub height: u16,
    /// The `K`/`E` question waiting for y/N.
    pub confirm: Option<Pending>,
    /// Answered yes: the event loop hands it to the collector thread, which performs it and sends `ActDone`.
    pub act_request: Option<Pending>,
    /// The last `K`/`E` outcome and when it came (Unix ms); shown in the footer for [`STATUS_MS`].
    pub status: Option<(String, u64)>,
    /// Set when the view shows a recording (`kwatch replay DIR`), not the live host.
    pub replay: Option<crate::tui::replay::Replay>,
}

/// How long a `K`/`E` outcome stays in the footer.
pub const STATUS_MS: u64 = 10_000;

impl App {
    pub fn new(filter: Filter, color: bool) -> App {
        let filter_text = filter.to_text();
        App {
            snapshot: None,
            held: None,
            now_ms: 0,
            view: View::Connections,
            paused: false,
            help: false,
            quit: false,
            color,
            filter,
            filter_text,
            prompt: None,
            drill_pid: None,
            conn_sort: ConnSort::Severity,
            conn_reverse: false,
            proc_sort: ProcSort::Worst,
            proc_reverse: false,
            rows: Vec::new(),
            procs: Vec::new(),
            conn_sel: 0,
            conn_cookie: None,
            conn_offset: 0,
            proc_sel: 0,
            proc_pid: None,
            proc_offset: 0,
            detail: None,
            history: Shared::default(),
            history_elsewhere: false,
            counts: Counts::default(),
            retired: None,
            collector_error: None,
            stretched: None,
            log: EventLog::default(),
            held_log: Vec::new(),
            log_sel: 0,
            log_offset: 0,
            log_return: View::Connections,
            destroy_events: None,
            log_warning: None,
            width: 80,
            height: 24,
            confirm: None,
            act_request: None,
            status: None,
            replay: None,
        }
    }

    /// What keys mean now: help over the prompt over the detail pane over the tables.
    pub fn mode(&self) -> Mode {
        if self.confirm.is_some() {
            Mode::Confirm
        } else if self.help {
            Mode::Help
        } else if self.prompt.is_some() {
            Mode::Filter
        } else if self.detail.is_some() {
            Mode::Detail
        } else {
            Mode::Browse
        }
    }

    /// Lines the header takes: host, keepalive, states, stuck, then one each for held dead sockets, unreadable
    /// processes, the first collector warning, missing destroy notifications and a collector error when there
    /// are any.
    pub fn header_lines(&self) -> u16 {
        let extra = u16::from(self.collector_error.is_some())
            + u16::from(self.destroy_events == Some(false));
        match self.snapshot.as_ref() {
            None => 2 + extra,
            Some(s) => {
                4 + extra
                    + u16::from(!s.held_dead.is_empty())
                    + u16::from(!s.unreadable.is_empty())
                    + u16::from(!s.warnings.is_empty())
            }
        }
    }

    /// Rows the log view gives the held dead sockets above the events: a title, a column line and up to
    /// [`HELD_ROWS`] sockets; none when there are none.
    pub fn held_lines(&self) -> u16 {
        let n = self.snapshot.as_ref().map_or(0, |s| s.held_dead.len());
        if n == 0 {
            0
        } else {
            2 + n.min(HELD_ROWS) as u16
        }
    }

    /// Log lines that fit on screen below the held dead sockets.
    pub fn log_page(&self) -> usize {
        let chrome = self.header_lines() + TABLE_CHROME + self.held_lines();
        usize::from(self.height.saturating_sub(chrome)).max(1)
    }

    /// Table rows that fit on screen.
    pub fn page(&self) -> usize {
        let chrome = self.header_lines() + TABLE_CHROME;
        usize::from(self.height.saturating_sub(chrome)).max(1)
    }

    /// The connection under the cursor in the connections view.
    pub fn selected_conn(&self) -> Option<&Connection> {
        let snap = self.snapshot.as_ref()?;
        self.rows
            .get(self.conn_sel)
            .and_then(|i| snap.connections.get(*i))
    }

    pub fn selected_proc(&self) -> Option<&ProcessSummary> {
        self.procs.get(self.proc_sel)
    }

    /// Number of rows of the table in view.
    pub fn len(&self) -> usize {
        match self.view {
            View::Connections => self.rows.len(),
            View::Processes => self.procs.len(),
            View::Log => self.log.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Recomputes rows and process summaries from the snapshot, filter and sort; keeps the selection on the same
    /// socket (cookie) and process (pid) when they are still there, else on the same line.
    fn refresh(&mut self) {
        let Some(snap) = self.snapshot.as_ref() else {
            self.rows.clear();
            self.procs.clear();
            return;
        };
        let (rows, procs) = view_rows(snap, &self.view_spec());
        self.install(rows, procs);
    }

    /// What orders and filters the tables now.
    pub fn view_spec(&self) -> ViewSpec {
        ViewSpec {
            filter: self.filter.clone(),
            drill_pid: self.drill_pid,
            conn_sort: self.conn_sort,
            conn_reverse: self.conn_reverse,
            proc_sort: self.proc_sort,
            proc_reverse: self.proc_reverse,
        }
    }

    /// Takes rows and process summaries computed for the current snapshot, and keeps the selection on the same
    /// socket and process.
    fn install(&mut self, rows: Vec<usize>, procs: Vec<ProcessSummary>) {
        let Some(snap) = self.snapshot.as_ref() else {
            return;
        };
        self.rows = rows;
        self.procs = procs;

        let by_cookie = self.conn_cookie.and_then(|cookie| {
            self.rows
                .iter()
                .position(|i| snap.connections[*i].cookie == cookie)
        });
        self.conn_sel = by_cookie.unwrap_or(self.conn_sel.min(self.rows.len().saturating_sub(1)));
        self.conn_cookie = self
            .rows
            .get(self.conn_sel)
            .map(|i| snap.connections[*i].cookie);
        let by_pid = self
            .proc_pid
            .and_then(|pid| self.procs.iter().position(|p| p.pid == pid));
        self.proc_sel = by_pid.unwrap_or(self.proc_sel.min(self.procs.len().saturating_sub(1)));
        self.proc_pid = self.procs.get(self.proc_sel).map(|p| p.pid);

        if let Some(detail) = self.detail.as_mut() {
            match snap
                .connections
                .iter()
                .find(|c| c.cookie == detail.conn.cookie)
            {
                Some(conn) => {
                    detail.conn = conn.clone();
                    detail.gone = false;
                }
                None => detail.gone = true,
            }
        }
        self.scroll_into_view();
    }

    /// A snapshot from the collector, with its rows when they were prepared there: shown, or held while paused
    /// (a held one is shown at resume, its rows computed then).
    fn receive(&mut self, snapshot: Arc<Snapshot>, prepared: Option<Box<Prepared>>, now_ms: u64) {
        self.now_ms = now_ms;
        match prepared {
            // The one held before is freed on the collector thread too.
            _ if self.paused => self.retired = self.held.replace(snapshot).or(self.retired.take()),
            Some(prepared) => self.apply_prepared(snapshot, *prepared),
            None => self.apply_snapshot(snapshot),
        }
    }

    fn apply_snapshot(&mut self, snapshot: Arc<Snapshot>) {
        let counts = Counts::of(&snapshot);
        self.take_snapshot(snapshot, counts);
        self.refresh();
    }

    /// A snapshot with its rows already computed (on the collector thread): used when they were computed for
    /// the view as it is now, else computed again here.
    fn apply_prepared(&mut self, snapshot: Arc<Snapshot>, prepared: Prepared) {
        self.take_snapshot(snapshot, prepared.counts);
        if prepared.spec == self.view_spec() {
            self.install(prepared.rows, prepared.procs);
        } else {
            self.refresh();
        }
    }

    /// Counts belong to the snapshot: taken with it, not redone when only the view changes.
    fn take_snapshot(&mut self, snapshot: Arc<Snapshot>, counts: Counts) {
        self.counts = counts;
        if !self.history_elsewhere {
            self.history.lock().history.observe(
                &snapshot,
                snapshot.taken_at_unix_ms,
                self.conn_cookie,
            );
        }
        self.retired = self.snapshot.replace(snapshot);
        self.collector_error = None;
    }

    /// Moves the cursor of the table in view to `to` (clamped) and remembers what it is on.
    fn select(&mut self, to: usize) {
        let last = self.len().saturating_sub(1);
        let to = to.min(last);
        match self.view {
            View::Connections => {
                self.conn_sel = to;
                self.conn_cookie = self.selected_conn().map(|c| c.cookie);
                if self.detail.is_some() {
                    self.detail = self.selected_conn().map(|c| Detail {
                        conn: c.clone(),
                        gone: false,
                    });
                }
            }
            View::Processes => {
                self.proc_sel = to;
                self.proc_pid = self.selected_proc().map(|p| p.pid);
            }
            View::Log => self.log_sel = to,
        }
        self.scroll_into_view();
    }

    fn cursor(&self) -> usize {
        match self.view {
            View::Connections => self.conn_sel,
            View::Processes => self.proc_sel,
            View::Log => self.log_sel,
        }
    }

    /// Adds watch events; a cursor below the top stays on its event, one on the top follows the newest.
    fn apply_log(&mut self, events: Vec<WatchEvent>) {
        for e in &events {
            match e {
                WatchEvent::Start { destroy_events, .. } => {
                    self.destroy_events = Some(*destroy_events);
                }
                WatchEvent::Warning { message, .. } => self.log_warning = Some(message.clone()),
                _ => {}
            }
        }
        let before = self.log.added();
        self.log.extend(events);
        let added = (self.log.added() - before) as usize;
        if self.log_sel > 0 {
            self.log_sel = (self.log_sel + added).min(self.log.len().saturating_sub(1));
            self.log_offset += added;
        }
        self.scroll_into_view();
    }

    /// Keeps the cursor on screen: scrolls only when it would leave the page.
    fn scroll_into_view(&mut self) {
        let page = self.page();
        for (sel, offset) in [
            (self.conn_sel, &mut self.conn_offset),
            (self.proc_sel, &mut self.proc_offset),
        ] {
            *offset = clamp_offset(*offset, sel, page);
        }
        self.log_offset = clamp_offset(self.log_offset, self.log_sel, self.log_page());
    }
}

/// The first visible row so that `sel` is on a page of `page` rows starting near `offset`.
pub fn clamp_offset(offset: usize, sel: usize, page: usize) -> usize {
    let page = page.max(1);
    if sel < offset {
        sel
    } else if sel >= offset + page {
        sel + 1 - page
    } else {
        offset
    }
}

/// `K`/`E`: the question, or why there is nothing to ask about.
fn ask(app: &mut App, kind: ActKind) {
    match act::plan(app, kind) {
        Ok(pending) => app.confirm = Some(pending),
        Err(why) => app.status = Some((why, app.now_ms)),
    }
}

/// Applies one action. Pure: no clock, no I/O; time arrives inside `Tick` and `Snapshot`. Routes it to one of
/// four parts: the filter prompt, `K`/`E`, what the other threads send, and moving around (keys and the mouse).
pub fn update(app: &mut App, action: Action) {
    match action {
        Action::FilterOpen
        | Action::FilterChar(_)
        | Action::FilterBackspace
        | Action::FilterClearLine
        | Action::FilterApply
        | Action::FilterCancel => filter_prompt(app, action),
        Action::Kill
        | Action::EnableKeepalive
        | Action::ConfirmYes
        | Action::ConfirmNo
        | Action::ActDone(_) => act_keys(app, action),
        Action::Snapshot { .. }
        | Action::PreparedSnapshot { .. }
        | Action::CollectorError(_)
        | Action::Log(_)
        | Action::Stretched(_)
        | Action::Tick { .. }
        | Action::Resize { .. } => incoming(app, action),
        _ => navigate(app, action),
    }
}

/// Moving around: the cursor, sort, views, detail, pause, help, quit.
fn navigate(app: &mut App, action: Action) {
    match action {
        Action::Up => app.select(app.cursor().saturating_sub(1)),
        Action::Down => app.select(app.cursor() + 1),
        Action::PageUp => app.select(app.cursor().saturating_sub(app.page())),
        Action::PageDown => app.select(app.cursor() + app.page()),
        Action::Home => app.select(0),
        Action::End => app.select(usize::MAX),
        Action::ScrollUp => app.select(app.cursor().saturating_sub(WHEEL_ROWS)),
        Action::ScrollDown => app.select(app.cursor() + WHEEL_ROWS),
        Action::SortNext | Action::SortReverse if app.view == View::Log => {}
        Action::SortNext => {
            match app.view {
                View::Connections => {
                    app.conn_sort = next_in(&ConnSort::ALL, app.conn_sort);
                    app.conn_reverse = false;
                }
                View::Processes => {
                    app.proc_sort = next_in(&ProcSort::ALL, app.proc_sort);
                    app.proc_reverse = false;
                }
                View::Log => {}
            }
            app.refresh();
        }
        Action::SortReverse => {
            match app.view {
                View::Connections => app.conn_reverse = !app.conn_reverse,
                View::Processes => app.proc_reverse = !app.proc_reverse,
                View::Log => {}
            }
            app.refresh();
        }
        Action::SwitchView => {
            app.detail = None;
            app.view = match app.view {
                View::Connections => View::Processes,
                View::Processes => View::Connections,
                View::Log => app.log_return,
            };
            if app.view == View::Processes && app.drill_pid.take().is_some() {
                app.refresh();
            }
        }
        Action::Enter => match app.view {
            View::Connections => {
                app.detail = match app.detail {
                    Some(_) => None,
                    None => app.selected_conn().map(|c| Detail {
                        conn: c.clone(),
                        gone: false,
                    }),
                };
            }
            View::Processes => {
                if let Some(pid) = app.selected_proc().map(|p| p.pid) {
                    app.drill_pid = Some(pid);
                    app.view = View::Connections;
                    app.conn_sel = 0;
                    app.conn_cookie = None;
                    app.refresh();
                }
            }
            View::Log => {}
        },
        Action::Back => {
            if app.view == View::Log {
                app.view = app.log_return;
            } else if app.detail.is_some() {
                app.detail = None;
            } else if app.view == View::Connections && app.drill_pid.is_some() {
                app.drill_pid = None;
                app.view = View::Processes;
                app.refresh();
            } else if !app.filter_text.is_empty() || app.filter != Filter::default() {
                app.filter = Filter::default();
                app.filter_text.clear();
                app.refresh();
            }
        }
        Action::TogglePause => {
            app.paused = !app.paused;
            if !app.paused
                && let Some(held) = app.held.take()
            {
                app.apply_snapshot(held);
            }
            if !app.paused && !app.held_log.is_empty() {
                let held = std::mem::take(&mut app.held_log);
                app.apply_log(held);
            }
        }
        Action::ToggleLog => {
            if app.view == View::Log {
                app.view = app.log_return;
            } else {
                app.detail = None;
                app.log_return = app.view;
                app.view = View::Log;
            }
        }
        Action::ToggleHelp => app.help = !app.help,
        Action::Quit => app.quit = true,
        // Routed to another of update's parts.
        _ => {}
    }
}

/// The filter prompt: typing, applying (a bad filter shows its error), cancelling.
fn filter_prompt(app: &mut App, action: Action) {
    match action {
        Action::FilterOpen => {
            app.prompt = Some(Prompt {
                text: app.filter_text.clone(),
                error: None,
            });
        }
        Action::FilterChar(c) => {
            if let Some(p) = app.prompt.as_mut() {
                p.text.push(c);
                p.error = None;
            }
        }
        Action::FilterBackspace => {
            if let Some(p) = app.prompt.as_mut() {
                p.text.pop();
                p.error = None;
            }
        }
        Action::FilterClearLine => {
            if let Some(p) = app.prompt.as_mut() {
                p.text.clear();
                p.error = None;
            }
        }
        Action::FilterApply => {
            if let Some(p) = app.prompt.as_mut() {
                match Filter::parse(&p.text) {
                    Ok(filter) => {
                        app.filter = filter;
                        app.filter_text = p.text.trim().to_string();
                        app.prompt = None;
                        app.refresh();
                    }
                    Err(e) => p.error = Some(e.to_string()),
                }
            }
        }
        Action::FilterCancel => app.prompt = None,
        // Routed to another of update's parts.
        _ => {}
    }
}

/// `K`/`E`: the question, its answer, and the outcome the collector thread sends back.
fn act_keys(app: &mut App, action: Action) {
    match action {
        Action::Kill => ask(app, ActKind::Kill),
        Action::EnableKeepalive => ask(app, ActKind::Keepalive),
        Action::ConfirmYes => app.act_request = app.confirm.take(),
        Action::ConfirmNo => {
            let asked = app.confirm.take().is_some();
            if asked {
                app.status = Some(("nothing done".to_string(), app.now_ms));
            }
        }
        Action::ActDone(line) => app.status = Some((line, app.now_ms)),
        // Routed to another of update's parts.
        _ => {}
    }
}

/// What the collector, the terminal and the clock send: snapshots, errors, log events, pace, time, size.
fn incoming(app: &mut App, action: Action) {
    match action {
        Action::Snapshot { snapshot, now_ms } => app.receive(snapshot, None, now_ms),
        Action::PreparedSnapshot {
            snapshot,
            prepared,
            now_ms,
        } => app.receive(snapshot, Some(prepared), now_ms),
        Action::CollectorError(e) => app.collector_error = Some(e),
        Action::Log(events) => {
            if app.paused {
                app.held_log.extend(events);
                let over = app
                    .held_log
                    .len()
                    .saturating_sub(crate::tui::event_log::LOG_MAX);
                app.held_log.drain(..over);
            } else {
                app.apply_log(events);
            }
        }
        Action::Stretched(period) => app.stretched = period,
        Action::Tick { now_ms } => app.now_ms = now_ms,
        Action::Resize { width, height } => {
            app.width = width;
            app.height = height;
            app.scroll_into_view();
        }
        // Routed to another of update's parts.
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::analyze::{Thresholds, analyze};
    use crate::model::TcpState;
    use crate::tui::event_log::LOG_MAX;
    use crate::tui::prepare::prepare;

    const T0: u64 = 1_700_000_000_000;

    fn busy() -> Snapshot {
        let mut s = crate::testing::fixture("busy.json");
        analyze(&mut s, &Thresholds::default());
        s
    }

    fn app() -> App {
        let mut app = App::new(Filter::default(), false);
        update(
            &mut app,
            Action::Resize {
                width: 120,
                height: 30,
            },
        );
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(busy()),
                now_ms: T0 + 500,
            },
        );
        app
    }

    fn cookies(app: &App) -> Vec<u64> {
        let snap = app.snapshot.as_ref().unwrap();
        app.rows
            .iter()
            .map(|i| snap.connections[*i].cookie)
            .collect()
    }

    fn selected(app: &App) -> u64 {
        app.selected_conn().unwrap().cookie
    }

    #[test]
    fn rows_prepared_off_the_ui_thread_are_used_only_for_the_view_they_were_made_for() {
        // The reference: the UI thread's own computation, after sorting by the next column.
        let mut plain = app();
        update(&mut plain, Action::SortNext);
        update(
            &mut plain,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(busy()),
                now_ms: T0 + 1_500,
            },
        );
        // Prepared for the view as it is: taken as is (the counts show it was not recomputed here).
        let mut fresh = app();
        update(&mut fresh, Action::SortNext);
        let mut prepared = prepare(&busy(), &fresh.view_spec());
        assert_eq!(prepared.rows, plain.rows);
        prepared.counts.by_code.clear();
        update(
            &mut fresh,
            Action::PreparedSnapshot {
                snapshot: std::sync::Arc::new(busy()),
                prepared: Box::new(prepared),
                now_ms: T0 + 1_500,
            },
        );
        assert_eq!(fresh.rows, plain.rows);
        assert!(fresh.counts.by_code.is_empty());
        // A key that changes the view sorts again but does not count the snapshot again.
        update(&mut fresh, Action::SortReverse);
        assert_ne!(fresh.rows, plain.rows);
        assert!(fresh.counts.by_code.is_empty());
        // Prepared for the view before a key changed it: computed again for the view shown.
        let mut stale = app();
        let old = prepare(&busy(), &stale.view_spec());
        update(&mut stale, Action::SortNext);
        update(
            &mut stale,
            Action::PreparedSnapshot {
                snapshot: std::sync::Arc::new(busy()),
                prepared: Box::new(old),
                now_ms: T0 + 1_500,
            },
        );
        assert_eq!(stale.rows, plain.rows);
        assert_eq!(stale.counts, Counts::of(&busy()));
        // The snapshot replaced is handed over for freeing elsewhere.
        assert!(stale.retired.is_some());
    }

    #[test]
    fn header_counts_cover_every_socket_once() {
        let snap = busy();
        let counts = Counts::of(&snap);
        let by_state: u32 = counts.states.iter().map(|(_, n, _)| n).sum();
        assert_eq!(by_state as usize, snap.connections.len());
        let stuck = snap.connections.iter().filter(|c| c.is_stuck()).count();
        assert_eq!(counts.stuck() as usize, stuck);
        assert!(
            counts.states.windows(2).all(|w| w[0].1 >= w[1].1),
            "most first"
        );
    }

    #[test]
    fn default_sort_puts_the_worst_first() {
        let app = app();
        let snap = app.snapshot.as_ref().unwrap();
        let worst: Vec<_> = app
            .rows
            .iter()
            .map(|i| snap.connections[*i].worst())
            .collect();
        let mut sorted = worst.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(worst, sorted);
        // Among the critical ones the longest idle comes first: 1004 (idle 2h03m) before 1007 (10m12s).
        assert_eq!(cookies(&app)[..2], [1004, 1007]);
    }

    #[test]
    fn navigation_moves_and_clamps() {
        let mut app = app();
        assert_eq!(app.conn_sel, 0);
        update(&mut app, Action::Up);
        assert_eq!(app.conn_sel, 0, "stays on the first row");
        update(&mut app, Action::Down);
        update(&mut app, Action::Down);
        assert_eq!(app.conn_sel, 2);
        update(&mut app, Action::End);
        assert_eq!(app.conn_sel, 13);
        update(&mut app, Action::Down);
        assert_eq!(app.conn_sel, 13, "stays on the last row");
        update(&mut app, Action::Home);
        assert_eq!(app.conn_sel, 0);
        update(&mut app, Action::PageDown);
        assert_eq!(app.conn_sel, app.page().min(13));
        update(&mut app, Action::ScrollUp);
        assert_eq!(app.conn_sel, app.page().min(13) - 3);
        assert_eq!(app.conn_cookie, Some(selected(&app)));
    }

    #[test]
    fn small_screens_scroll_to_keep_the_cursor_visible() {
        let mut app = app();
        update(
            &mut app,
            Action::Resize {
                width: 80,
                height: 13,
            },
        );
        let page = app.page();
        assert!(
            page < 14,
            "the test needs a page shorter than the table: {page}"
        );
        update(&mut app, Action::End);
        assert_eq!(app.conn_offset, 14 - page);
        update(&mut app, Action::Home);
        assert_eq!(app.conn_offset, 0);
    }

    #[test]
    fn sort_cycles_through_every_column_and_reverses() {
        let mut app = app();
        for want in ConnSort::ALL.iter().skip(1) {
            update(&mut app, Action::SortNext);
            assert_eq!(app.conn_sort, *want);
        }
        update(&mut app, Action::SortNext);
        assert_eq!(app.conn_sort, ConnSort::Severity, "wraps around");

        // Recv-q: biggest first; reversed: smallest first.
        while app.conn_sort != ConnSort::RecvQ {
            update(&mut app, Action::SortNext);
        }
        assert_eq!(cookies(&app)[0], 1007, "the socket with 2048 unread bytes");
        update(&mut app, Action::SortReverse);
        assert!(app.conn_reverse);
        assert_ne!(cookies(&app)[0], 1007);
        assert_eq!(*cookies(&app).last().unwrap(), 1007);
        update(&mut app, Action::SortNext);
        assert!(
            !app.conn_reverse,
            "a new column starts in its natural order"
        );
    }

    #[test]
    fn the_cursor_stays_on_its_socket_when_the_sort_changes() {
        let mut app = app();
        update(&mut app, Action::Down);
        let cookie = selected(&app);
        update(&mut app, Action::SortNext);
        update(&mut app, Action::SortNext);
        assert_eq!(selected(&app), cookie);
    }

    #[test]
    fn filter_applies_and_a_bad_one_shows_its_error() {
        let mut app = app();
        update(&mut app, Action::FilterOpen);
        assert_eq!(app.mode(), Mode::Filter);
        for c in "port:443".chars() {
            update(&mut app, Action::FilterChar(c));
        }
        update(&mut app, Action::FilterApply);
        assert_eq!(app.mode(), Mode::Browse);
        assert_eq!(app.filter_text, "port:443");
        let mut got = cookies(&app);
        got.sort_unstable();
        assert_eq!(got, [1001, 1003, 1009, 1010, 1011, 1013]);

        update(&mut app, Action::FilterOpen);
        assert_eq!(
            app.prompt.as_ref().unwrap().text,
            "port:443",
            "the prompt starts from the active filter"
        );
        update(&mut app, Action::FilterClearLine);
        for c in "port:99999".chars() {
            update(&mut app, Action::FilterChar(c));
        }
        update(&mut app, Action::FilterApply);
        assert_eq!(
            app.mode(),
            Mode::Filter,
            "a bad filter keeps the prompt open"
        );
        let err = app.prompt.as_ref().unwrap().error.clone().unwrap();
        assert!(err.contains("'99999'"), "{err}");
        assert_eq!(app.filter_text, "port:443", "the old filter still applies");
        update(&mut app, Action::FilterBackspace);
        assert_eq!(
            app.prompt.as_ref().unwrap().error,
            None,
            "editing clears the error"
        );
        update(&mut app, Action::FilterCancel);
        assert_eq!(app.mode(), Mode::Browse);
        assert_eq!(cookies(&app).len(), 6);

        update(&mut app, Action::Back);
        assert_eq!(app.filter_text, "");
        assert_eq!(cookies(&app).len(), 14, "Esc clears the filter");
    }

    #[test]
    fn empty_filter_text_clears_the_filter() {
        let mut app = App::new(Filter::parse("stuck").unwrap(), false);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(busy()),
                now_ms: T0,
            },
        );
        assert_eq!(app.filter_text, "stuck");
        assert_eq!(app.rows.len(), 6);
        update(&mut app, Action::FilterOpen);
        update(&mut app, Action::FilterClearLine);
        update(&mut app, Action::FilterApply);
        assert_eq!(app.rows.len(), 14);
    }

    #[test]
    fn selection_follows_the_cookie_across_snapshots() {
        let mut app = app();
        update(&mut app, Action::Down);
        update(&mut app, Action::Down);
        let cookie = selected(&app);
        // The next snapshot lists the sockets in another order and lost one that sorted above ours.
        let mut next = busy();
        next.taken_at_unix_ms += 1_000;
        next.connections.reverse();
        let above = cookies(&app)[0];
        next.connections.retain(|c| c.cookie != above);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(next),
                now_ms: T0 + 1_500,
            },
        );
        assert_eq!(selected(&app), cookie);
        assert_eq!(app.conn_sel, 1);

        // When the selected socket itself goes, the cursor stays on the same line.
        let mut next = busy();
        next.connections
            .retain(|c| c.cookie != cookie && c.cookie != above);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(next),
                now_ms: T0 + 2_500,
            },
        );
        assert_eq!(app.conn_sel, 1);
        assert_ne!(selected(&app), cookie);
        assert_eq!(app.conn_cookie, Some(selected(&app)));
    }

    #[test]
    fn pause_holds_snapshots_until_resumed() {
        let mut app = app();
        update(&mut app, Action::TogglePause);
        assert!(app.paused);
        let mut next = busy();
        next.taken_at_unix_ms += 1_000;
        next.connections.truncate(3);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(next),
                now_ms: T0 + 1_500,
            },
        );
        assert_eq!(app.rows.len(), 14, "paused: the table does not change");
        assert_eq!(app.snapshot.as_ref().unwrap().taken_at_unix_ms, T0);
        assert!(app.held.is_some());
        update(&mut app, Action::TogglePause);
        assert!(!app.paused);
        assert_eq!(app.rows.len(), 3, "resumed: the newest held snapshot shows");
        assert!(app.held.is_none());
    }

    #[test]
    fn tab_switches_views_and_enter_on_a_process_opens_its_connections() {
        let mut app = app();
        update(&mut app, Action::SwitchView);
        assert_eq!(app.view, View::Processes);
        // Worst first: java (2231) holds the critical dead peer and retransmitting sockets.
        let pids: Vec<u32> = app.procs.iter().map(|p| p.pid).collect();
        assert_eq!(pids[0], 2231, "{pids:?}");
        update(&mut app, Action::Down);
        let pid = app.selected_proc().unwrap().pid;
        update(&mut app, Action::Enter);
        assert_eq!(app.view, View::Connections);
        assert_eq!(app.drill_pid, Some(pid));
        let snap = app.snapshot.as_ref().unwrap();
        assert!(!app.rows.is_empty());
        assert!(
            app.rows
                .iter()
                .all(|i| snap.connections[*i].owners.iter().any(|o| o.pid == pid))
        );
        update(&mut app, Action::Back);
        assert_eq!(app.view, View::Processes, "Esc goes back to the processes");
        assert_eq!(app.drill_pid, None);
        assert_eq!(app.selected_proc().unwrap().pid, pid, "on the same process");
        update(&mut app, Action::SwitchView);
        assert_eq!(app.view, View::Connections);
        assert_eq!(app.rows.len(), 14);
    }

    #[test]
    fn detail_opens_on_the_selected_socket_and_survives_its_close() {
        let mut app = app();
        update(&mut app, Action::Enter);
        assert_eq!(app.mode(), Mode::Detail);
        assert_eq!(app.detail.as_ref().unwrap().conn.cookie, 1004);
        update(&mut app, Action::Down);
        assert_eq!(
            app.detail.as_ref().unwrap().conn.cookie,
            selected(&app),
            "Down moves the detail too"
        );
        let cookie = selected(&app);
        let mut next = busy();
        next.connections.retain(|c| c.cookie != cookie);
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(next),
                now_ms: T0 + 1_000,
            },
        );
        let detail = app.detail.as_ref().unwrap();
        assert_eq!(
            detail.conn.cookie, cookie,
            "still showing the socket the user opened"
        );
        assert!(detail.gone);
        update(&mut app, Action::Back);
        assert_eq!(app.mode(), Mode::Browse);
    }

    #[test]
    fn help_toggles_and_quit_quits() {
        let mut app = app();
        update(&mut app, Action::ToggleHelp);
        assert_eq!(app.mode(), Mode::Help);
        update(&mut app, Action::ToggleHelp);
        assert_eq!(app.mode(), Mode::Browse);
        assert!(!app.quit);
        update(&mut app, Action::Quit);
        assert!(app.quit);
    }

    #[test]
    fn collector_errors_show_until_the_next_good_snapshot() {
        let mut app = app();
        update(&mut app, Action::CollectorError("dump failed".into()));
        assert_eq!(app.collector_error.as_deref(), Some("dump failed"));
        assert_eq!(app.rows.len(), 14, "the last good data stays");
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(busy()),
                now_ms: T0 + 1_000,
            },
        );
        assert_eq!(app.collector_error, None);
    }

    fn watch_event(n: u64) -> WatchEvent {
        use crate::events::SocketId;
        use crate::model::StateName;
        use crate::model::keepalive::DeathCause;
        use crate::model::{Family, Owner};
        WatchEvent::Destroy {
            time_unix_ms: T0 + n,
            socket: SocketId {
                cookie: n,
                family: Family::Ipv4,
                local_addr: "192.0.2.1".parse().unwrap(),
                local_port: 40000,
                peer_addr: "192.0.2.2".parse().unwrap(),
                peer_port: 9100,
            },
            owners: vec![Owner { pid: 7, fd: 3 }],
            comm: Some("app".into()),
            last_state: StateName(TcpState::Established),
            probes: Some(3),
            retransmits: Some(0),
            cause: DeathCause::KeepaliveExhausted,
        }
    }

    /// The cookies of the logged destroy events, newest first.
    fn logged(app: &App) -> Vec<u64> {
        app.log
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Destroy { socket, .. } => Some(socket.cookie),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn l_toggles_the_log_and_esc_or_tab_go_back_to_the_table() {
        let mut app = app();
        update(&mut app, Action::SwitchView);
        update(&mut app, Action::ToggleLog);
        assert_eq!((app.view, app.mode()), (View::Log, Mode::Browse));
        update(&mut app, Action::SortNext);
        assert_eq!(app.proc_sort, ProcSort::Worst, "no sort in the log");
        update(&mut app, Action::ToggleLog);
        assert_eq!(app.view, View::Processes, "back where it was opened");
        update(&mut app, Action::ToggleLog);
        update(&mut app, Action::Back);
        assert_eq!(app.view, View::Processes);
        update(&mut app, Action::SwitchView);
        update(&mut app, Action::Enter);
        assert_eq!(app.mode(), Mode::Detail);
        update(&mut app, Action::ToggleLog);
        assert_eq!((app.view, app.mode()), (View::Log, Mode::Browse));
        update(&mut app, Action::SwitchView);
        assert_eq!(app.view, View::Connections);
        assert_eq!(app.filter_text, "", "Esc in the log is not a filter clear");
    }

    #[test]
    fn log_events_arrive_newest_first_bounded_and_the_cursor_keeps_its_event() {
        let mut app = app();
        update(&mut app, Action::ToggleLog);
        assert!(app.is_empty());
        update(&mut app, Action::Log(vec![watch_event(1), watch_event(2)]));
        assert_eq!(logged(&app), [2, 1]);
        // On the top row the cursor follows the newest event.
        update(&mut app, Action::Log(vec![watch_event(3)]));
        assert_eq!((app.log_sel, logged(&app)[app.log_sel]), (0, 3));
        update(&mut app, Action::Down);
        assert_eq!(logged(&app)[app.log_sel], 2);
        update(&mut app, Action::Log(vec![watch_event(4), watch_event(5)]));
        assert_eq!(logged(&app)[app.log_sel], 2, "below the top it stays put");
        update(
            &mut app,
            Action::Log((10..10 + LOG_MAX as u64).map(watch_event).collect()),
        );
        assert_eq!(app.log.len(), LOG_MAX);
        assert_eq!(logged(&app)[0], 9 + LOG_MAX as u64);
        assert!(app.log_sel < LOG_MAX);
        update(&mut app, Action::End);
        assert_eq!(app.log_sel, LOG_MAX - 1);
        assert!(
            app.log_offset + app.log_page() >= LOG_MAX,
            "scrolled to the end"
        );
    }

    #[test]
    fn paused_log_holds_events_and_a_missing_subscription_shows_in_the_header() {
        let mut app = app();
        let lines = app.header_lines();
        update(&mut app, Action::TogglePause);
        update(
            &mut app,
            Action::Log(vec![
                WatchEvent::Warning {
                    time_unix_ms: T0,
                    message: "no destroy notifications: permission denied".into(),
                },
                WatchEvent::Start {
                    time_unix_ms: T0,
                    sockets: 14,
                    destroy_events: false,
                },
                watch_event(1),
            ]),
        );
        assert!(app.log.is_empty(), "paused");
        update(&mut app, Action::TogglePause);
        assert_eq!(app.log.len(), 3);
        assert_eq!(app.destroy_events, Some(false));
        assert!(
            app.log_warning
                .as_deref()
                .unwrap()
                .contains("permission denied")
        );
        assert_eq!(app.header_lines(), lines + 1);
    }

    #[test]
    fn held_dead_sockets_add_a_header_line_and_count_per_process() {
        use crate::model::HeldDeadSocket;
        use crate::model::keepalive::DeathCause;
        let mut app = app();
        let lines = app.header_lines();
        let mut snap = busy();
        snap.held_dead = vec![HeldDeadSocket {
            pid: 640,
            fd: 9,
            inode: 77,
            local_addr: None,
            local_port: None,
            tcp_info: None,
            cause: DeathCause::Reset,
        }];
        update(
            &mut app,
            Action::Snapshot {
                snapshot: std::sync::Arc::new(snap),
                now_ms: T0 + 1_000,
            },
        );
        assert_eq!(app.header_lines(), lines + 1);
        let sshd = app.procs.iter().find(|p| p.pid == 640).unwrap();
        assert_eq!(sshd.held_dead_sockets, 1);
        assert_eq!(app.held_lines(), 3);
    }

    #[test]
    fn processes_sort_cycles() {
        let mut app = app();
        update(&mut app, Action::SwitchView);
        while app.proc_sort != ProcSort::Pid {
            update(&mut app, Action::SortNext);
        }
        let pids: Vec<u32> = app.procs.iter().map(|p| p.pid).collect();
        let mut sorted = pids.clone();
        sorted.sort_unstable();
        assert_eq!(pids, sorted);
        update(&mut app, Action::SortReverse);
        let pids: Vec<u32> = app.procs.iter().map(|p| p.pid).collect();
        sorted.reverse();
        assert_eq!(pids, sorted);
    }
}
