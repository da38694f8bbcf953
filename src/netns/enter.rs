//! Entering a network namespace: on a thread made for it, never on the caller's, so the rest of kwatch stays in
//! its own namespace. A socket the thread opens lives in the entered namespace, and `/proc/sys/net` read from the
//! thread shows that namespace's sysctls (the kernel looks them up through the reading thread's namespace).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) to enter it later.
pub fn open(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Runs `f` on a new thread that has first entered the network namespace `ns`, and returns what `f` returned.
/// The thread ends with `f`; the calling thread's namespace does not change. A panic in `f` is resumed here.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("kwatch-netns".into())
            .spawn_scoped(s, || -> io::Result<T> {
                enter(ns)?;
                Ok(f())
            })?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `f(i)` for each namespace `namespaces[i]` on a thread inside it, at most `parallel` at a time. Result `i`
/// is `namespaces[i]`'s: `Err` when its thread could not start or enter it.
pub fn run_in_each<T: Send>(
    namespaces: &[&File],
    parallel: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<io::Result<T>> {
    let mut out = Vec::with_capacity(namespaces.len());
    let indexed: Vec<(usize, &File)> = namespaces.iter().copied().enumerate().collect();
    for chunk in indexed.chunks(parallel.max(1)) {
        std::thread::scope(|s| {
            let workers: Vec<_> = chunk
                .iter()
                .map(|&(i, ns)| {
                    let f = &f;
                    std::thread::Builder::new()
                        .name("kwatch-netns".into())
                        .spawn_scoped(s, move || -> io::Result<T> {
                            enter(ns)?;
                            Ok(f(i))
                        })
                })
                .collect();
            for worker in workers {
                out.push(match worker {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(e) => Err(e),
                });
            }
        });
    }
    out
}

/// Moves the calling thread into the network namespace `ns` (setns with CLONE_NEWNET, which also refuses a file
/// that is not a network namespace). Call only on a thread made for it.
fn enter(ns: &File) -> io::Result<()> {
    move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).map_err(io::Error::from)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn own_inode() -> u64 {
        rustix::fs::stat("/proc/thread-self/ns/net").unwrap().st_ino
    }

    #[test]
    fn entering_ones_own_namespace_runs_f_there_or_says_why_not() {
        let ns = open(Path::new("/proc/self/ns/net")).unwrap();
        let before = own_inode();
        match run_in(&ns, own_inode) {
            Ok(inside) => assert_eq!(inside, before),
            // Without CAP_SYS_ADMIN even one's own namespace cannot be entered.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}"),
        }
        assert_eq!(own_inode(), before, "the calling thread stays where it was");
    }

    #[test]
    fn a_file_that_is_not_a_namespace_is_refused() {
        let file = tempfile::tempfile().unwrap();
        let err = run_in(&file, || ()).unwrap_err();
        // EINVAL as root; EPERM unprivileged (checked first by the kernel).
        assert!(
            matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EPERM)),
            "{err}"
        );
        let results = run_in_each(&[&file, &file, &file], 2, |i| i);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_err));
    }
}
