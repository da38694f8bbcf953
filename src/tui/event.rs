//! The one event channel: an input thread (keys, mouse, resize), a collector thread (snapshots) and a signal thread
//! feed it; the UI thread only receives.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{self as ct, KeyEvent, MouseEvent};

use crate::collect::{Collector, Options};
use crate::model::Snapshot;
use crate::pace::{Pace, process_cpu};
use crate::tui::app::{Prepared, ViewSpec, prepare};
use crate::tui::event_log::Feed;

/// Everything the UI thread reacts to.
#[derive(Debug)]
pub enum UiEvent {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// A snapshot, with its rows computed for the view the collector last heard of ([`Control::View`]).
    Snapshot(Box<Snapshot>, Option<Box<Prepared>>),
    /// Watch events (deaths, state changes) of the snapshot that follows, oldest first.
    Log(Vec<crate::events::WatchEvent>),
    /// Refreshes now come this far apart instead of every interval, to stay within the CPU budget (`None`: back
    /// to the interval). Sent when it changes.
    Stretched(Option<Duration>),
    CollectorError(String),
    /// The input thread could not read the terminal, or the collector panicked: the UI must end.
    Fatal(String),
    /// SIGTERM, SIGHUP or SIGINT arrived.
    Signal(i32),
}

/// How often the input thread checks whether it should stop.
const INPUT_POLL: Duration = Duration::from_millis(100);

/// Reads terminal events until `stop` is set or the receiver is gone. Only key presses are forwarded.
pub fn spawn_input(
    tx: Sender<UiEvent>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kwatch-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let event = match ct::poll(INPUT_POLL) {
                    Ok(false) => continue,
                    Ok(true) => ct::read(),
                    Err(e) => Err(e),
                };
                let event = match event {
                    Ok(ct::Event::Key(k)) if k.kind == ct::KeyEventKind::Press => UiEvent::Key(k),
                    Ok(ct::Event::Mouse(m)) => UiEvent::Mouse(m),
                    Ok(ct::Event::Resize(w, h)) => UiEvent::Resize(w, h),
                    Ok(_) => continue,
                    Err(e) => UiEvent::Fatal(format!("cannot read the terminal: {e}")),
                };
                let fatal = matches!(event, UiEvent::Fatal(_));
                if tx.send(event).is_err() || fatal {
                    return;
                }
            }
        })
}

/// What the UI thread tells the collector thread.
#[derive(Debug)]
pub enum Control {
    /// Take the next snapshot now (after `K`/`E`).
    Refresh,
    /// The view changed: compute the rows of the next snapshots for this one.
    View(Box<ViewSpec>),
    /// A snapshot the UI no longer shows: freed here, off the UI thread.
    Retire(Box<Snapshot>),
}

/// Takes a snapshot as often as `pace` says (every interval, or less often when refreshes are expensive and the
/// user did not choose the interval) until the UI hangs up `control` (dropping its sender). [`Control::Refresh`]
/// takes the next snapshot at once. Each snapshot goes with its rows, sorted and filtered for the view the UI
/// last sent, so that the UI thread does no per-socket work when it arrives (it does when the view changed in
/// between). A dump that takes longer than the interval is followed by the next at once:
/// the UI never waits on it, it just shows how old its data is. One [`Collector`] serves every refresh, so only
/// what changed in /proc is read again. A [`Feed`] turns destroy notifications and each snapshot into watch events,
/// sent just before that snapshot.
pub fn spawn_collector(
    opts: Options,
    mut pace: Pace,
    tx: Sender<UiEvent>,
    control: Receiver<Control>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kwatch-collector".into())
        .spawn(move || {
            let mut feed = Feed::open(&opts);
            let mut collector = Collector::new(opts);
            let mut view: Option<ViewSpec> = None;
            let mut stretched = None;
            loop {
                // A refresh's cost, for the pace: the process's CPU time while the dump, the /proc update, the rows
                // and the events are made (on several threads).
                let (started, cpu) = (Instant::now(), process_cpu());
                // Notifications first, then the dump: a socket destroyed in between is still in `feed`'s memory.
                feed.drain();
                let event = match std::panic::catch_unwind(AssertUnwindSafe(|| collector.collect()))
                {
                    Ok(Ok(snapshot)) => {
                        // The newest view the UI has sent, including while this snapshot was taken.
                        if drain(&control, &mut view).is_err() {
                            return;
                        }
                        // The rows are prepared while the feed turns the snapshot into watch events (both only
                        // read it): on a big host each takes tens of milliseconds, and the first frame waits.
                        let (prepared, events) = std::thread::scope(|s| {
                            let prepared = view
                                .as_ref()
                                .map(|v| s.spawn(|| Box::new(prepare(&snapshot, v))));
                            let events = feed.step(&snapshot, snapshot.taken_at_unix_ms);
                            let prepared = prepared.map(|h| {
                                h.join()
                                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                            });
                            (prepared, events)
                        });
                        if !events.is_empty() && tx.send(UiEvent::Log(events)).is_err() {
                            return;
                        }
                        UiEvent::Snapshot(Box::new(snapshot), prepared)
                    }
                    Ok(Err(e)) => UiEvent::CollectorError(crate::exit::error_line(&e)),
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_string());
                        let _ = tx.send(UiEvent::Fatal(format!("the collector panicked: {msg}")));
                        return;
                    }
                };
                if tx.send(event).is_err() {
                    return;
                }
                pace.record(process_cpu().saturating_sub(cpu));
                if pace.stretched() != stretched {
                    stretched = pace.stretched();
                    if tx.send(UiEvent::Stretched(stretched)).is_err() {
                        return;
                    }
                }
                let next = started + pace.period();
                loop {
                    match control.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Ok(message) => {
                            if obey(message, &mut view) {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        })
}

/// Acts on one message: keeps the newest view, frees a retired snapshot. True when it asks for a refresh now.
fn obey(message: Control, view: &mut Option<ViewSpec>) -> bool {
    match message {
        Control::Refresh => true,
        Control::View(v) => {
            *view = Some(*v);
            false
        }
        Control::Retire(old) => {
            drop(old);
            false
        }
    }
}

/// Takes every message already waiting (a refresh asked for now is the one being taken). `Err` when the UI hung
/// up.
fn drain(control: &Receiver<Control>, view: &mut Option<ViewSpec>) -> Result<(), ()> {
    loop {
        match control.try_recv() {
            Ok(message) => {
                obey(message, view);
            }
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => return Err(()),
        }
    }
}

/// Forwards SIGTERM, SIGHUP and SIGINT to the UI so that it restores the terminal before the process ends.
pub fn spawn_signals(tx: Sender<UiEvent>) -> std::io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT])?;
    let handle = signals.handle();
    thread::Builder::new()
        .name("kwatch-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(UiEvent::Signal(sig)).is_err() {
                    return;
                }
            }
        })?;
    Ok(handle)
}
