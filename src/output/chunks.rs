//! Output rows turned into bytes on every core and written in order: the JSON document's socket rows and the
//! table's lines, which at 200,000 sockets are most of a one-shot run after the kernel dump and /proc.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Writes `items` in order: `render` turns `chunk` items at a time into bytes on every core while this thread
/// writes the chunks done, in order. A worker takes a chunk only within a window of one more chunk than there are
/// workers past the last one written, so only a few chunks are in memory. (Rendering a window, then writing it,
/// left the cores idle at each window's end and while it was written: at a million rows 0.95 s of wall for
/// 1.35 s of CPU on two cores.) `between` is written between two chunks (a JSON array's comma). The first
/// error, in order, is returned, and nothing after it is written.
pub fn write<T: Sync>(
    w: &mut impl Write,
    items: &[T],
    chunk: usize,
    between: &[u8],
    render: impl Fn(&[T]) -> io::Result<Vec<u8>> + Sync,
) -> io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    write_on(cores, w, items, chunk, between, render)
}

/// [`write`] on `cores` cores (the tests pick theirs).
fn write_on<T: Sync>(
    cores: usize,
    w: &mut impl Write,
    items: &[T],
    chunk: usize,
    between: &[u8],
    render: impl Fn(&[T]) -> io::Result<Vec<u8>> + Sync,
) -> io::Result<()> {
    let parts: Vec<&[T]> = items.chunks(chunk_len(items.len(), chunk, cores)).collect();
    let workers = cores.min(parts.len());
    if workers <= 1 {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                w.write_all(between)?;
            }
            w.write_all(&render(part)?)?;
        }
        return Ok(());
    }
    let pipe = Pipe {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        window: workers + 1,
        parts: parts.len(),
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                // Wakes the writer if `render` panics, so that it stops waiting; the scope then panics in turn.
                let _wake = WakeOnPanic(&pipe);
                while let Some(i) = pipe.take() {
                    let bytes = render(parts[i]);
                    pipe.done(i, bytes);
                }
            });
        }
        // ...and the workers if `w` panics: else they wait on the window and the scope never joins.
        let _wake = WakeOnPanic(&pipe);
        let written = pipe.write_in_order(w, between);
        pipe.stop();
        written
    })
}

/// Items per chunk: `most`, or fewer for a short list, so that each core gets several chunks and the chunks in
/// flight stay small beside the rest of a small snapshot (1,024 JSON rows are 1.2 MB, about two-thirds of a
/// 10,000-socket snapshot's 1.7 MiB, and the window holds one chunk more than there are cores).
fn chunk_len(items: usize, most: usize, cores: usize) -> usize {
    /// Chunks per core a short list is cut into.
    const PER_CORE: usize = 16;
    /// Below this many items a chunk does not shrink further: the hand-off would cost more than it saves.
    const LEAST: usize = 64;
    items
        .div_ceil(cores.max(1) * PER_CORE)
        .clamp(LEAST.min(most), most.max(1))
}

/// What the workers and the writer share.
struct Pipe {
    state: Mutex<State>,
    changed: Condvar,
    /// Chunks that may be taken past the last one written.
    window: usize,
    parts: usize,
}

#[derive(Default)]
struct State {
    /// The next chunk to take.
    next: usize,
    /// Chunks written.
    written: usize,
    /// Chunks rendered, not yet written.
    done: BTreeMap<usize, io::Result<Vec<u8>>>,
    /// The writer stopped (done, failed) or a worker panicked: nothing more is taken.
    stopped: bool,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The next chunk for a worker, once it is within the window; `None` when there is none left.
    fn take(&self) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next >= self.parts {
                return None;
            }
            if state.next < state.written + self.window {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.wait(state);
        }
    }

    fn done(&self, i: usize, bytes: io::Result<Vec<u8>>) {
        self.lock().done.insert(i, bytes);
        self.changed.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Writes every chunk in order as it is rendered; stops at the first error.
    fn write_in_order(&self, w: &mut impl Write, between: &[u8]) -> io::Result<()> {
        for i in 0..self.parts {
            let bytes = {
                let mut state = self.lock();
                loop {
                    if let Some(bytes) = state.done.remove(&i) {
                        break bytes;
                    }
                    if state.stopped {
                        // A worker panicked: the scope re-raises it.
                        return Ok(());
                    }
                    state = self.wait(state);
                }
            };
            if i > 0 {
                w.write_all(between)?;
            }
            w.write_all(&bytes?)?;
            self.lock().written = i + 1;
            self.changed.notify_all();
        }
        Ok(())
    }
}

struct WakeOnPanic<'a>(&'a Pipe);

impl Drop for WakeOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn short_lists_are_cut_into_smaller_chunks_long_ones_into_the_largest() {
        assert_eq!(chunk_len(1_000_000, 1024, 2), 1024);
        assert_eq!(chunk_len(10_000, 1024, 2), 313);
        assert_eq!(chunk_len(1_000, 1024, 2), 64);
        assert_eq!(chunk_len(0, 1024, 2), 64);
        assert_eq!(chunk_len(10, 8, 0), 8, "never above the most asked for");
        assert_eq!(chunk_len(5, 0, 1), 1, "never zero");
    }

    #[test]
    fn chunks_are_written_in_order_with_the_separator_between() {
        for n in [0usize, 1, 7, 64, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let mut out = Vec::new();
            write(&mut out, &items, 10, b"|", |part| {
                Ok(part
                    .iter()
                    .map(|i| i.to_string() + ";")
                    .collect::<String>()
                    .into_bytes())
            })
            .unwrap();
            let expected = items
                .chunks(10)
                .map(|c| c.iter().map(|i| i.to_string() + ";").collect::<String>())
                .collect::<Vec<_>>()
                .join("|");
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn the_first_error_in_order_is_returned() {
        let items: Vec<usize> = (0..100).collect();
        let mut out = Vec::new();
        let e = write(&mut out, &items, 10, b"", |part| {
            if part[0] >= 30 {
                Err(io::Error::other(format!("chunk {}", part[0])))
            } else {
                Ok(vec![b'.'])
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "chunk 30");
        assert_eq!(out, b"...");
    }

    #[test]
    fn a_panic_while_rendering_reaches_the_caller_instead_of_hanging() {
        let items: Vec<usize> = (0..100).collect();
        let caught = std::panic::catch_unwind(|| {
            let mut out = Vec::new();
            write_on(4, &mut out, &items, 10, b"", |part| {
                assert!(part[0] != 50, "rendering failed");
                Ok(vec![b'.'])
            })
        });
        assert!(caught.is_err());
    }

    #[test]
    fn a_panic_while_writing_reaches_the_caller_instead_of_hanging() {
        struct Bad(usize);
        impl Write for Bad {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                assert!(self.0 < 3, "writing failed");
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let items: Vec<usize> = (0..100).collect();
        let caught = std::panic::catch_unwind(|| {
            write_on(4, &mut Bad(0), &items, 1, b"", |_| Ok(vec![b'.']))
        });
        assert!(caught.is_err());
    }

    #[test]
    fn no_more_than_the_window_is_rendered_ahead_of_the_writer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A writer that stalls: a worker may not run further ahead than the window.
        // Four workers whatever the machine has; the writer pauses at each chunk so that they can run ahead.
        const WORKERS: usize = 4;
        struct Slow<'a>(&'a AtomicUsize, usize);
        impl Write for Slow<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_micros(100));
                self.1 += buf.len();
                // Chunk k is being written, so at most k + window = self.1 + WORKERS were taken and counted.
                let rendered = self.0.load(Ordering::SeqCst);
                assert!(
                    rendered <= self.1 + WORKERS,
                    "{rendered} rendered, {} written",
                    self.1
                );
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let rendered = AtomicUsize::new(0);
        let items: Vec<usize> = (0..200).collect();
        let mut slow = Slow(&rendered, 0);
        write_on(WORKERS, &mut slow, &items, 1, b"", |_| {
            rendered.fetch_add(1, Ordering::SeqCst);
            Ok(vec![b'.'])
        })
        .unwrap();
        assert_eq!(slow.1, 200);
    }
}
