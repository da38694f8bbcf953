//! The one event channel: an input thread (keys, mouse, resize), a collector thread (snapshots, and the results of
//! `K`/`E`, which it performs) and a signal thread feed it; the UI thread only receives.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{self as ct, KeyEvent, MouseEvent};

use crate::collect::{Collector, Options};
use crate::model::{NamespaceInfo, Snapshot};

/// From this many TCP sockets in kwatch's namespace, the first frame is the dump alone (owners pending): at
/// 200,000 sockets the full first snapshot took ~1 s, at a million ~5 s of which the dump is ~1.5 s.
const DUMP_FIRST_FROM: u64 = 100_000;
use crate::pace::{Pace, Stretch, process_cpu};
use crate::tui::act::Pending;
use crate::tui::event_log::Feed;
use crate::tui::history::Shared;
use crate::tui::perform::perform;
use crate::tui::prepare::{Prepared, ViewSpec, prepare};

/// Everything the UI thread reacts to.
#[derive(Debug)]
pub enum UiEvent {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// A snapshot, with its rows computed for the view the collector last heard of ([`Control::View`]).
    Snapshot(Arc<Snapshot>, Option<Box<Prepared>>),
    /// Watch events (deaths, state changes) of the snapshot that follows, oldest first.
    Log(Vec<crate::events::WatchEvent>),
    /// What `K`/`E` did, in one line for the footer (performed on the collector thread).
    ActDone(String),
    /// Refreshes now come this far apart instead of every interval, to stay within the CPU budget (`None`: back
    /// to the interval). Sent when it changes.
    Stretched(Option<Stretch>),
    CollectorError(String),
    /// The input thread could not read the terminal, or the collector panicked: the UI must end.
    Fatal(String),
    /// SIGTERM, SIGHUP or SIGINT arrived.
    Signal(i32),
    /// From the source thread of a replay.
    Replay(crate::tui::replay::Message),
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
    /// `K`/`E` answered yes, with the namespaces of the snapshot it was planned on: perform it, answer with
    /// [`UiEvent::ActDone`], then take the next snapshot at once.
    Act(Box<(Pending, Vec<NamespaceInfo>)>),
    /// The view changed: compute the rows of the next snapshots for this one.
    View(Box<ViewSpec>),
    /// A snapshot the UI no longer shows: freed here, off the UI thread.
    Retire(Arc<Snapshot>),
    /// A move through recorded time (only a replay's source thread acts on it).
    Replay(crate::tui::replay::Go),
}

/// Takes a snapshot as often as `pace` says (every interval, or less often when refreshes are expensive and the
/// user did not choose the interval) until the UI hangs up `control` (dropping its sender). [`Control::Act`]
/// performs `K`/`E` here, off the UI thread, and takes the next snapshot at once. Each snapshot goes with its rows, sorted and filtered for the view the UI
/// last sent, so that the UI thread does no per-socket work when it arrives (it does when the view changed in
/// between); the session `history` is recorded here too. A dump that takes longer than the interval is followed by the next at once:
/// the UI never waits on it, it just shows how old its data is. One [`Collector`] serves every refresh, so only
/// what changed in /proc is read again. A [`Feed`] turns destroy notifications and each snapshot into watch events,
/// sent just before that snapshot.
pub fn spawn_collector(
    opts: Options,
    mut pace: Pace,
    history: Shared,
    tx: Sender<UiEvent>,
    control: Receiver<Control>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("kwatch-collector".into())
        .spawn(move || {
            let proc_root = opts.proc_root.clone();
            let mut feed = Feed::open(&opts);
            let mut collector = Collector::new(opts);
            // On a big host the first frame shows the dump alone, owners pending, and the full snapshot follows at
            // once: the /proc map and the socket options of a million sockets take seconds more.
            let mut dump_first = collector.expects_at_least(DUMP_FIRST_FROM);
            let mut view: Option<ViewSpec> = None;
            let mut stretched = None;
            // The process's CPU time when the last refresh began.
            let mut cycle_cpu: Option<Duration> = None;
            // The snapshots sent last and before it: the UI shows the last, and hands the one it replaced back
            // here to be freed.
            let (mut last_sent, mut replaced) = (Weak::new(), Weak::new());
            loop {
                // Never three snapshots at once (shown, replaced, being taken): the replaced one is freed before
                // the next is taken, waiting a little for the UI to hand it back. One the UI keeps (paused, it
                // shows an older one) is waited for only that long.
                if let Err(()) = wait_retired(&replaced, &control, &mut view, &proc_root, &tx) {
                    return;
                }
                // An action performed while this snapshot was taken: the one after it shows the result.
                let mut acted = false;
                // A refresh's cost, for the pace: the process's CPU time over the whole last cycle, every thread:
                // the dump, the /proc update, the rows and the events, and also what the UI thread did with the
                // snapshot and its keys until now (counted only during the refresh, a million sockets used 32 %
                // of a core while the pace believed 24 %).
                let (started, cpu) = (Instant::now(), process_cpu());
                if let Some(last) = cycle_cpu.replace(cpu) {
                    pace.record(cpu.saturating_sub(last));
                    if pace.stretched() != stretched {
                        stretched = pace.stretched();
                        if tx.send(UiEvent::Stretched(stretched)).is_err() {
                            return;
                        }
                    }
                }
                // Notifications first, then the dump: a socket destroyed in between is still in `feed`'s memory.
                feed.drain();
                let partial = std::mem::take(&mut dump_first);
                let (event, sent) = match std::panic::catch_unwind(AssertUnwindSafe(|| {
                    if partial {
                        collector.collect_dump_only()
                    } else {
                        collector.collect()
                    }
                })) {
                    Ok(Ok(snapshot)) => {
                        // Shared by the view and the feed's tracker, which keeps it until the next step.
                        let snapshot = Arc::new(snapshot);
                        // The newest view the UI has sent, including while this snapshot was taken.
                        match drain(&control, &mut view, &proc_root, &tx) {
                            Ok(true) => acted = true,
                            Ok(false) => {}
                            Err(()) => return,
                        }
                        // The rows first, then the watch events: one after the other rather than side by side,
                        // so that what each builds for a moment (the rows' sort keys, 23-46 MiB at a million sockets;
                        // the tracker's next state, 23 MiB) is not held at once beside two snapshots. The first
                        // frame on a big host is the dump alone, which has no events.
                        let prepared = view.as_ref().map(|v| Box::new(prepare(&snapshot, v)));
                        // Events and history wait for the full snapshot: without owners, a socket held by a
                        // process would look held by none.
                        let events = if partial {
                            Vec::new()
                        } else {
                            feed.step_shared(&snapshot, snapshot.taken_at_unix_ms)
                        };
                        if !events.is_empty() && tx.send(UiEvent::Log(events)).is_err() {
                            return;
                        }
                        replaced = std::mem::replace(&mut last_sent, Arc::downgrade(&snapshot));
                        (
                            UiEvent::Snapshot(Arc::clone(&snapshot), prepared),
                            Some(snapshot),
                        )
                    }
                    Ok(Err(e)) => (UiEvent::CollectorError(crate::exit::error_line(&e)), None),
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(ToString::to_string)
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_string());
                        let _ = tx.send(UiEvent::Fatal(format!("the collector panicked: {msg}")));
                        return;
                    }
                };
                if tx.send(event).is_err() {
                    return;
                }
                // The history records the snapshot after the UI has it (the UI draws meanwhile), here rather than
                // on the UI thread: a million sockets take a second the first time, 0.1 s at each refresh.
                if partial {
                    continue;
                }
                if let Some(snapshot) = sent {
                    history.observe(&snapshot, snapshot.taken_at_unix_ms);
                }
                if acted {
                    continue;
                }
                let next = started + pace.period();
                loop {
                    match control.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Ok(message) => {
                            if obey(message, &mut view, &proc_root, &tx) {
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

/// Acts on one message: performs `K`/`E` and answers, keeps the newest view, frees a retired snapshot. True when
/// the next snapshot is due now (after an action).
fn obey(
    message: Control,
    view: &mut Option<ViewSpec>,
    proc_root: &Path,
    tx: &Sender<UiEvent>,
) -> bool {
    match message {
        Control::Act(act) => {
            let (pending, namespaces) = *act;
            let _ = tx.send(UiEvent::ActDone(perform(&pending, &namespaces, proc_root)));
            true
        }
        Control::View(v) => {
            *view = Some(*v);
            false
        }
        Control::Retire(old) => {
            drop(old);
            false
        }
        Control::Replay(_) => false,
    }
}

/// How long the collector waits for the UI to hand back the snapshot it replaced before taking the next.
const RETIRE_WAIT: Duration = Duration::from_secs(2);

/// Obeys messages until `replaced` is freed (the UI handed it back) or [`RETIRE_WAIT`] passed; `Err` when the UI
/// hung up. An action performed meanwhile needs nothing more: the next snapshot is taken right after.
fn wait_retired(
    replaced: &Weak<Snapshot>,
    control: &Receiver<Control>,
    view: &mut Option<ViewSpec>,
    proc_root: &Path,
    tx: &Sender<UiEvent>,
) -> Result<(), ()> {
    let deadline = Instant::now() + RETIRE_WAIT;
    while replaced.strong_count() > 0 {
        match control.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(message) => {
                obey(message, view, proc_root, tx);
            }
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(()),
        }
    }
    Ok(())
}

/// Takes every message already waiting. `Ok(true)` when it performed an action, which the snapshot just taken
/// predates; `Err` when the UI hung up.
fn drain(
    control: &Receiver<Control>,
    view: &mut Option<ViewSpec>,
    proc_root: &Path,
    tx: &Sender<UiEvent>,
) -> Result<bool, ()> {
    let mut acted = false;
    loop {
        match control.try_recv() {
            Ok(message) => acted |= obey(message, view, proc_root, tx),
            Err(TryRecvError::Empty) => return Ok(acted),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn the_replaced_snapshot_handed_back_is_freed_before_the_next_is_taken() {
        let (tx, _ui) = mpsc::channel();
        let (to_collector, control) = mpsc::channel();
        let mut view = None;
        let replaced = Arc::new(Snapshot::default());
        let weak = Arc::downgrade(&replaced);
        // The UI handed it back: freed here, and the wait ends without its deadline.
        to_collector.send(Control::Retire(replaced)).unwrap();
        let started = Instant::now();
        assert_eq!(
            wait_retired(&weak, &control, &mut view, Path::new("/proc"), &tx),
            Ok(())
        );
        assert_eq!(weak.strong_count(), 0);
        assert!(started.elapsed() < RETIRE_WAIT);
        // Nothing to wait for: at once.
        assert_eq!(
            wait_retired(&Weak::new(), &control, &mut view, Path::new("/proc"), &tx),
            Ok(())
        );
        // The UI hung up while it still held one: the collector stops.
        let held = Arc::new(Snapshot::default());
        drop(to_collector);
        assert_eq!(
            wait_retired(
                &Arc::downgrade(&held),
                &control,
                &mut view,
                Path::new("/proc"),
                &tx
            ),
            Err(())
        );
    }
}
