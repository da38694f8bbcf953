//! One collection at a time: callers arriving while one runs wait for it and share its result, within a deadline.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Why [`Coalescer::get`] returned no value.
#[derive(Debug, thiserror::Error)]
pub enum Missed {
    #[error("collection did not finish within {}", crate::duration::format_duration_ms(.0.as_millis() as u64))]
    TimedOut(Duration),
    #[error("collection panicked")]
    Panicked,
    #[error("cannot start a collection thread")]
    Spawn(#[source] std::io::Error),
}

/// Runs `work` on a background thread when asked, never twice at once. A caller that times out leaves the work
/// running; the next caller waits for that same run instead of starting another, so slow collections cannot
/// pile up however often scrapes arrive.
pub struct Coalescer<T> {
    shared: Arc<Shared<T>>,
    work: Arc<dyn Fn() -> T + Send + Sync>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

struct State<T> {
    /// Runs started and finished; one is running while `started > finished`.
    started: u64,
    finished: u64,
    /// The result of the newest finished run (`None`: it panicked).
    last: Option<T>,
    /// Callers waiting for a run.
    waiting: usize,
}

impl<T: Clone + Send + 'static> Coalescer<T> {
    pub fn new(work: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Coalescer {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    started: 0,
                    finished: 0,
                    last: None,
                    waiting: 0,
                }),
                done: Condvar::new(),
            }),
            work: Arc::new(work),
        }
    }

    /// The result of the run in progress, or of a new run when none is; waits at most `timeout`.
    pub fn get(&self, timeout: Duration) -> Result<T, Missed> {
        let mut state = self.shared.lock();
        if state.started == state.finished {
            let run = state.started + 1;
            let shared = Arc::clone(&self.shared);
            let work = Arc::clone(&self.work);
            std::thread::Builder::new()
                .name("kwatch-collect".into())
                .spawn(move || {
                    let value = catch_unwind(AssertUnwindSafe(|| work())).ok();
                    let mut state = shared.lock();
                    state.finished = run;
                    state.last = value;
                    shared.done.notify_all();
                })
                .map_err(Missed::Spawn)?;
            state.started = run;
        }
        let target = state.started;
        state.waiting += 1;
        let (mut state, _) = self
            .shared
            .done
            .wait_timeout_while(state, timeout, |s| s.finished < target)
            .unwrap_or_else(PoisonError::into_inner);
        state.waiting -= 1;
        if state.finished < target {
            return Err(Missed::TimedOut(timeout));
        }
        state.last.clone().ok_or(Missed::Panicked)
    }
}

impl<T> Coalescer<T> {
    /// Callers now waiting for a run.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting
    }
}

impl<T> Shared<T> {
    /// Nothing panics while holding the lock, so a poisoned one still holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;

    /// A coalescer whose runs block until the test releases them; counts runs.
    fn gated() -> (Coalescer<u32>, mpsc::Sender<()>, Arc<AtomicU32>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let c = Coalescer::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            gate.lock().unwrap().recv().unwrap();
            n
        });
        (c, release, runs)
    }

    #[test]
    fn concurrent_callers_share_one_run() {
        let (c, release, runs) = gated();
        let c = Arc::new(c);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || c.get(Duration::from_secs(30)))
            })
            .collect();
        // Release the run only once all four callers wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.waiting() < 4 {
            assert!(std::time::Instant::now() < deadline, "callers never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap().unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The next call starts a fresh run.
        release.send(()).unwrap();
        assert_eq!(c.get(Duration::from_secs(30)).unwrap(), 2);
    }

    #[test]
    fn timeout_leaves_the_run_going_and_the_next_caller_joins_it() {
        let (c, release, runs) = gated();
        let err = c.get(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Missed::TimedOut(_)));
        assert_eq!(err.to_string(), "collection did not finish within 20ms");
        // Still the first run: no second one started while it hangs.
        let err = c.get(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Missed::TimedOut(_)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        release.send(()).unwrap();
        assert_eq!(c.get(Duration::from_secs(30)).unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_run_is_reported_and_does_not_wedge() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let c = Coalescer::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            assert!(n > 0, "first run fails");
            n
        });
        assert!(matches!(
            c.get(Duration::from_secs(30)),
            Err(Missed::Panicked)
        ));
        assert_eq!(c.get(Duration::from_secs(30)).unwrap(), 1);
    }
}
