//! The interactive terminal UI: live connections and processes, detail pane, filter prompt; terminal always restored.
//!
//! Threads: input, collector and signals feed one channel of [`event::UiEvent`]s; the calling thread owns the
//! [`App`], turns events into [`Action`]s (keys through the pure [`keys::map_key`]) and draws with [`render`].

pub mod act;
pub mod app;
pub mod event;
pub mod event_log;
pub mod explain;
pub mod format;
pub mod history;
pub mod keys;
pub mod perform;
pub mod playback;
pub mod prepare;
pub mod render;
pub mod replay;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, MouseEventKind};

pub use app::{Action, App, Mode, View, update};
pub use keys::map_key;
pub use prepare::ViewSpec;

use crate::collect;
use crate::filter::Filter;
use crate::pace::Pace;
use crate::recording;
use event::{Control, UiEvent};

/// What `run` needs: built by `run.rs` from the resolved command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// When snapshots are taken: `--interval`, or every second within a CPU budget.
    pub pace: Pace,
    pub collect: collect::Options,
    /// The starting filter (from the CLI's filter flags); `/` edits it.
    pub filter: Filter,
    /// Use colours (not with `--color never` or NO_COLOR).
    pub color: bool,
    /// Show this recording instead of the live host (`kwatch replay DIR`).
    pub replay: Option<replay::Source>,
}

/// The error when stdout is not a terminal.
pub const NO_TTY: &str = "kwatch needs a terminal for the interactive view; use --once for a snapshot (or --once --json)";

/// How often the header's "refreshed ... ago" is redrawn when nothing else happens.
const TICK: Duration = Duration::from_millis(500);

/// Runs the interactive UI until `q`, Ctrl-C or a signal. The terminal is restored on every way out: return,
/// error, panic (ratatui's chained hook plus ours for the mouse) and SIGTERM/SIGHUP/SIGINT, after which the
/// process ends by that signal as it would have without kwatch's handler.
pub fn run(config: Config) -> anyhow::Result<()> {
    if let Some(source) = &config.replay {
        // The recording is read up to the moment before the terminal is taken: a missing or damaged one is an
        // error line.
        recording::cursor::check(&source.dir, source.at_ms)?;
    }
    if !std::io::stdout().is_terminal() {
        bail!(NO_TTY);
    }
    let (tx, rx) = mpsc::channel::<UiEvent>();
    let signals = event::spawn_signals(tx.clone()).context("cannot watch for signals")?;

    let outcome = {
        let _guard = TerminalGuard::enter();
        let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
        crossterm::execute!(std::io::stdout(), EnableMouseCapture)
            .context("cannot enable the mouse")?;
        event_loop(&mut terminal, config, tx, rx)
        // The guard restores the terminal here, before any error is printed or a signal ends the process.
    };
    signals.close();
    match outcome? {
        Exit::Quit => Ok(()),
        Exit::Signal(sig) => {
            let _ = std::io::stdout().flush();
            signal_hook::low_level::emulate_default_handler(sig)
                .with_context(|| format!("cannot end on signal '{sig}'"))?;
            Ok(())
        }
    }
}

/// How the event loop ended.
enum Exit {
    Quit,
    Signal(i32),
}

/// Restores the terminal when dropped (normal return, `?`, unwinding), and chains a panic hook that turns the
/// mouse off before ratatui's own hook leaves raw mode and the alternate screen.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> TerminalGuard {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
            previous(info);
        }));
        TerminalGuard
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    config: Config,
    tx: mpsc::Sender<UiEvent>,
    rx: mpsc::Receiver<UiEvent>,
) -> anyhow::Result<Exit> {
    let stop = Arc::new(AtomicBool::new(false));
    let _input =
        event::spawn_input(tx.clone(), stop.clone()).context("cannot start the input thread")?;
    // Dropping `control` (when this function returns) tells the collector to stop after its current dump.
    let (control, control_rx) = mpsc::channel::<Control>();
    let tz = config.replay.as_ref().map(|s| s.tz.clone());
    // The live view's collector records the session history; a replay's is recorded as snapshots arrive.
    let history = history::Shared::default();
    let history_elsewhere = config.replay.is_none();
    let _collector = match config.replay {
        None => {
            event::spawn_collector(config.collect, config.pace, history.clone(), tx, control_rx)
                .context("cannot start the collector thread")?
        }
        Some(source) => {
            playback::spawn(source, tx, control_rx).context("cannot start the replay thread")?
        }
    };
    let result = (|| {
        let mut app = App::new(config.filter, config.color);
        app.replay = tz.map(replay::Replay::new);
        app.history = history;
        app.history_elsewhere = history_elsewhere;
        // A replay's clock is the recorded time of the refresh shown: "for 5m" means then, not now.
        let clock = |app: &App| match (&app.replay, &app.snapshot) {
            (Some(_), Some(s)) => s.taken_at_unix_ms,
            _ => now_ms(),
        };
        let size = terminal.size()?;
        update(
            &mut app,
            Action::Resize {
                width: size.width,
                height: size.height,
            },
        );
        let now = clock(&app);
        update(&mut app, Action::Tick { now_ms: now });
        let mut told: Option<ViewSpec> = None;
        loop {
            terminal.draw(|frame| frame.render_widget(&app, frame.area()))?;
            // The collector prepares the next snapshot's rows for the view as it is now; the snapshot this
            // one replaced is freed there.
            let spec = app.view_spec();
            if told.as_ref() != Some(&spec) {
                let _ = control.send(Control::View(Box::new(spec.clone())));
                told = Some(spec);
            }
            if let Some(old) = app.retired.take() {
                let _ = control.send(Control::Retire(old));
            }
            let first = match rx.recv_timeout(TICK) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => bail!("every event source stopped"),
            };
            // Handle everything already queued before drawing again, so a burst of keys draws once.
            let mut events: Vec<UiEvent> = first.into_iter().collect();
            events.extend(rx.try_iter());
            let now = clock(&app);
            update(&mut app, Action::Tick { now_ms: now });
            for ev in events {
                let Some(ev) = replay::intercept(&mut app, ev, &control, now_ms()) else {
                    continue;
                };
                if let Some(exit) = handle(&mut app, ev)? {
                    return Ok(exit);
                }
                let now = clock(&app);
                update(&mut app, Action::Tick { now_ms: now });
                // `K`/`E` answered yes: the collector performs it, answers with `ActDone`, then refreshes at once.
                if let Some(pending) = app.act_request.take() {
                    let namespaces = app
                        .snapshot
                        .as_ref()
                        .map_or_else(Vec::new, |s| s.namespaces.clone());
                    let _ = control.send(Control::Act(Box::new((pending, namespaces))));
                }
            }
            if app.quit {
                return Ok(Exit::Quit);
            }
            // The selected socket keeps samples on any host: the collector thread reads which one it is.
            if app.history_elsewhere {
                let selected = app.conn_cookie;
                let mut session = app.history.lock();
                if session.selected != selected {
                    session.selected = selected;
                }
            }
        }
    })();
    stop.store(true, Ordering::Relaxed);
    result
}

/// Applies one event to the app; `Some` when the UI must end.
fn handle(app: &mut App, ev: UiEvent) -> anyhow::Result<Option<Exit>> {
    let action = match ev {
        UiEvent::Key(key) => map_key(app.mode(), key),
        UiEvent::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Action::ScrollUp),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown),
            _ => None,
        },
        UiEvent::Resize(width, height) => Some(Action::Resize { width, height }),
        UiEvent::Snapshot(snapshot, None) => Some(Action::Snapshot {
            snapshot,
            now_ms: now_ms(),
        }),
        UiEvent::Snapshot(snapshot, Some(prepared)) => Some(Action::PreparedSnapshot {
            snapshot,
            prepared,
            now_ms: now_ms(),
        }),
        UiEvent::CollectorError(e) => Some(Action::CollectorError(e)),
        UiEvent::Log(events) => Some(Action::Log(events)),
        UiEvent::Stretched(period) => Some(Action::Stretched(period)),
        UiEvent::ActDone(line) => Some(Action::ActDone(line)),
        UiEvent::Fatal(e) => bail!(e),
        UiEvent::Signal(sig) => return Ok(Some(Exit::Signal(sig))),
        // Handled by `replay::intercept`.
        UiEvent::Replay(_) => None,
    };
    if let Some(action) = action {
        update(app, action);
    }
    Ok(app.quit.then_some(Exit::Quit))
}
