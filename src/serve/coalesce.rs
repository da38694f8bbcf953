//! One collection at a time and at most one per `min_interval`: callers share the run in progress, or the
//! result of one that finished less than `min_interval` ago, within a deadline.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

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

/// Runs `work` on a background thread when asked, never twice at once, and not again until `min_interval` has
/// passed since the last run finished: a caller arriving sooner gets that run's result. A caller that times
/// out leaves the work running; the next caller waits for that same run instead of starting another. So
/// however often callers arrive, `work` runs at most once per (its own duration + `min_interval`).
pub struct Coalescer<T> {
    shared: Arc<Shared<T>>,
    work: Arc<dyn Fn() -> T + Send + Sync>,
    min_interval: Duration,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The number of the newest finished run, for waiters.
    finished: watch::Sender<u64>,
}

struct State<T> {
    /// Runs started and finished; one is running while `started > finished`.
    started: u64,
    finished: u64,
    /// The result of the newest finished run (`None`: it panicked) and when it finished.
    last: Option<T>,
    finished_at: Option<Instant>,
    /// Callers waiting for a run.
    waiting: usize,
}

impl<T: Clone + Send + 'static> Coalescer<T> {
    pub fn new(min_interval: Duration, work: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Coalescer {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    started: 0,
                    finished: 0,
                    last: None,
                    finished_at: None,
                    waiting: 0,
                }),
                finished: watch::Sender::new(0),
            }),
            work: Arc::new(work),
            min_interval,
        }
    }

    /// The result of a run that finished within `min_interval`, else of the run in progress, else of a new
    /// run; waits at most `timeout`.
    pub async fn get(&self, timeout: Duration) -> Result<T, Missed> {
        let (target, mut finished) = {
            let mut state = self.shared.lock();
            if state.started == state.finished {
                let fresh = state
                    .finished_at
                    .is_some_and(|at| at.elapsed() < self.min_interval);
                if fresh {
                    return state.last.clone().ok_or(Missed::Panicked);
                }
                self.start(&mut state)?;
            }
            state.waiting += 1;
            (state.started, self.shared.finished.subscribe())
        };
        let _waiting = Waiting(&self.shared);
        let done = tokio::time::timeout(timeout, finished.wait_for(|&f| f >= target)).await;
        match done {
            Err(_) => Err(Missed::TimedOut(timeout)),
            // The sender lives in `shared`, which we hold: it cannot be gone.
            Ok(Err(_)) => Err(Missed::Panicked),
            Ok(Ok(_)) => self.shared.lock().last.clone().ok_or(Missed::Panicked),
        }
    }

    /// Starts a run now unless one is running or one finished within `min_interval`, without waiting for it.
    /// `kwatch serve` takes its first collection
    /// at startup this way, so that the first scrape joins that run or gets its result instead of starting the
    /// coldest collection of all (first /proc scan, first socket options) within its own timeout.
    pub fn start_now(&self) -> Result<(), Missed> {
        let mut state = self.shared.lock();
        let fresh = state
            .finished_at
            .is_some_and(|at| at.elapsed() < self.min_interval);
        if state.started == state.finished && !fresh {
            self.start(&mut state)?;
        }
        Ok(())
    }

    fn start(&self, state: &mut State<T>) -> Result<(), Missed> {
        let run = state.started + 1;
        let shared = Arc::clone(&self.shared);
        let work = Arc::clone(&self.work);
        std::thread::Builder::new()
            .name("kwatch-collect".into())
            .spawn(move || {
                let value = catch_unwind(AssertUnwindSafe(|| work())).ok();
                {
                    let mut state = shared.lock();
                    state.finished = run;
                    state.last = value;
                    state.finished_at = Some(Instant::now());
                }
                shared.finished.send_replace(run);
            })
            .map_err(Missed::Spawn)?;
        state.started = run;
        Ok(())
    }
}

impl<T> Coalescer<T> {
    /// Callers now waiting for a run.
    pub fn waiting(&self) -> usize {
        self.shared.lock().waiting
    }
}

/// Counts a caller as waiting until it returns or is cancelled (its connection closed).
struct Waiting<'a, T>(&'a Shared<T>);

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
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

    const LONG: Duration = Duration::from_secs(3600);

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A coalescer whose runs block until the test releases them; counts runs.
    fn gated(min_interval: Duration) -> (Coalescer<u32>, mpsc::Sender<()>, Arc<AtomicU32>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let c = Coalescer::new(min_interval, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            gate.lock().unwrap().recv().unwrap();
            n
        });
        (c, release, runs)
    }

    #[test]
    fn concurrent_callers_share_one_run() {
        let (c, release, runs) = gated(Duration::ZERO);
        let c = Arc::new(c);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || block_on(c.get(Duration::from_secs(30))))
            })
            .collect();
        // Release the run only once all four callers wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.waiting() < 4 {
            assert!(Instant::now() < deadline, "callers never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap().unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.waiting(), 0);
        // With no floor, the next call starts a fresh run.
        release.send(()).unwrap();
        assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 2);
    }

    #[test]
    fn timeout_leaves_the_run_going_and_the_next_caller_joins_it() {
        // A floor longer than the test: whether the run finishes before or after the last call, that call
        // gets the first run's result and starts no second run.
        let (c, release, runs) = gated(LONG);
        let err = block_on(c.get(Duration::from_millis(20))).unwrap_err();
        assert!(matches!(err, Missed::TimedOut(_)));
        assert_eq!(err.to_string(), "collection did not finish within 20ms");
        // Still the first run: no second one started while it hangs.
        let err = block_on(c.get(Duration::from_millis(20))).unwrap_err();
        assert!(matches!(err, Missed::TimedOut(_)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.waiting(), 0);
        release.send(()).unwrap();
        assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_run_started_ahead_is_joined_by_the_first_caller() {
        let (c, release, runs) = gated(LONG);
        c.start_now().unwrap();
        // Running already: no second run.
        c.start_now().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 1 {
            assert!(Instant::now() < deadline, "the run never started");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The caller arrives while it runs and waits for it rather than starting another.
        let err = block_on(c.get(Duration::from_millis(20))).unwrap_err();
        assert!(matches!(err, Missed::TimedOut(_)));
        release.send(()).unwrap();
        assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 1);
        // Finished within the floor: nothing to start.
        c.start_now().unwrap();
        assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn callers_within_the_floor_get_the_last_result_without_a_run() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let c = Coalescer::new(LONG, move || counter.fetch_add(1, Ordering::SeqCst) + 1);
        for _ in 0..100 {
            assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let c = Coalescer::new(Duration::ZERO, move || {
            counter.fetch_add(1, Ordering::SeqCst) + 1
        });
        for n in 1..=5 {
            assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), n);
        }
    }

    #[test]
    fn a_panicking_run_is_reported_and_does_not_wedge() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let c = Coalescer::new(Duration::ZERO, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            assert!(n > 0, "first run fails");
            n
        });
        assert!(matches!(
            block_on(c.get(Duration::from_secs(30))),
            Err(Missed::Panicked)
        ));
        assert_eq!(block_on(c.get(Duration::from_secs(30))).unwrap(), 1);
    }
}
