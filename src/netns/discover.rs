//! Which network namespaces exist: named ones under /run/netns and those processes run in (`/proc/PID/ns/net`),
//! told apart by the (device, inode) of the namespace file behind each path.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// A network namespace found on the host, with a path to enter it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dev: u64,
    pub inode: u64,
    /// Its name under /run/netns, if it has one.
    pub name: Option<String>,
    /// Where to open it: `/run/netns/NAME` for named ones, else `/proc/PID/ns/net`.
    pub path: PathBuf,
    /// The first process found running in it (none for a named namespace no process runs in).
    pub pid: Option<u32>,
    /// kwatch's own namespace (that of the thread that looked).
    pub current: bool,
}

/// Every namespace found, and how many processes' namespaces could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// kwatch's own namespace first, then named ones by name, then the others by inode.
    pub found: Vec<Found>,
    /// Processes whose `ns/net` could not be read (not root, or a security module refuses even root):
    /// namespaces only they run in are missing. Kernel threads are not counted.
    pub unreadable: u32,
    /// The error of the first of them, e.g. `Permission denied (os error 13)`.
    pub first_error: Option<String>,
}

/// The namespace a path refers to, as (device, inode) of the file behind it (`stat` follows the
/// `/proc/PID/ns/net` link and sees through the /run/netns bind mount).
pub fn identify(path: &Path) -> io::Result<(u64, u64)> {
    let st = rustix::fs::stat(path)?;
    Ok((st.st_dev, st.st_ino))
}

/// The namespaces named under `run_netns` (usually /run/netns), sorted by name. A missing directory has none.
/// A leftover of a failed `ip netns add` (a plain file, no namespace mounted on it) is listed too: entering it
/// fails with a message that says so.
pub fn named(run_netns: &Path) -> Vec<(String, (u64, u64))> {
    let Ok(dir) = std::fs::read_dir(run_netns) else {
        return Vec::new();
    };
    let mut out: Vec<(String, (u64, u64))> = dir
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let id = identify(&entry.path()).ok()?;
            Some((name, id))
        })
        .collect();
    out.sort();
    out
}

/// Finds every distinct network namespace: kwatch's own (`proc_root/thread-self/ns/net`), the named ones under
/// `run_netns`, and every one a process runs in (`proc_root/PID/ns/net`).
pub fn discover(proc_root: &Path, run_netns: &Path) -> Discovery {
    let current = identify(&proc_root.join("thread-self/ns/net")).ok();
    let mut by_id: HashMap<(u64, u64), Found> = HashMap::new();
    for (name, id) in named(run_netns) {
        by_id.entry(id).or_insert_with(|| Found {
            dev: id.0,
            inode: id.1,
            path: run_netns.join(&name),
            name: Some(name),
            pid: None,
            current: false,
        });
    }
    let mut unreadable = 0;
    let mut first_error = None;
    let mut pids: Vec<u32> = std::fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let path = proc_root.join(format!("{pid}/ns/net"));
        match identify(&path) {
            Ok(id) => {
                let found = by_id.entry(id).or_insert_with(|| Found {
                    dev: id.0,
                    inode: id.1,
                    name: None,
                    path,
                    pid: None,
                    current: false,
                });
                found.pid.get_or_insert(pid);
            }
            // The process ended meanwhile: nothing missed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Kernel threads run in the initial namespace and hold no sockets: nothing missed.
            Err(_) if crate::proc::is_kernel_thread(proc_root, pid) => {}
            // Others need ptrace access (root), which a security module may refuse even to root.
            Err(e) => {
                unreadable += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(id) = current {
        let own = by_id.entry(id).or_insert_with(|| Found {
            dev: id.0,
            inode: id.1,
            name: None,
            path: proc_root.join("thread-self/ns/net"),
            pid: None,
            current: true,
        });
        own.current = true;
    }
    let mut found: Vec<Found> = by_id.into_values().collect();
    found.sort_by(|a, b| {
        (!a.current, a.name.is_none(), &a.name, a.inode).cmp(&(
            !b.current,
            b.name.is_none(),
            &b.name,
            b.inode,
        ))
    });
    Discovery {
        found,
        unreadable,
        first_error,
    }
}

/// The namespace `--netns SPEC` names: a name under `run_netns`, or a path (anything with a `/`, such as
/// `/proc/PID/ns/net`). Its name is looked up when given as a path.
pub fn resolve(spec: &str, proc_root: &Path, run_netns: &Path) -> Result<Found, super::NetnsError> {
    let by_name = !spec.contains('/');
    let path = if by_name {
        run_netns.join(spec)
    } else {
        PathBuf::from(spec)
    };
    let id = identify(&path).map_err(|source| super::NetnsError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let name = if by_name {
        Some(spec.to_string())
    } else {
        named(run_netns)
            .into_iter()
            .find(|(_, n)| *n == id)
            .map(|(name, _)| name)
    };
    let current = identify(&proc_root.join("thread-self/ns/net")).is_ok_and(|own| own == id);
    Ok(Found {
        dev: id.0,
        inode: id.1,
        name,
        path,
        pid: None,
        current,
    })
}

/// kwatch's own namespace (that of the calling thread), named if /run/netns has a name for it. Falls back to an
/// unidentified one (inode 0) when `proc_root/thread-self/ns/net` cannot be read: listing it needs no entering.
pub fn resolve_current(proc_root: &Path, run_netns: &Path) -> Found {
    let path = proc_root.join("thread-self/ns/net");
    let id = identify(&path).unwrap_or((0, 0));
    let name = (id != (0, 0))
        .then(|| {
            named(run_netns)
                .into_iter()
                .find(|(_, n)| *n == id)
                .map(|(name, _)| name)
        })
        .flatten();
    Found {
        dev: id.0,
        inode: id.1,
        name,
        path,
        pid: None,
        current: true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;

    use super::*;

    /// A fake /proc where each namespace is a file and a process "in" it has a hard link to that file as its
    /// ns/net (same device and inode, as the real links have), plus a fake /run/netns.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("proc")).unwrap();
            fs::create_dir_all(dir.path().join("store")).unwrap();
            Tree { dir }
        }
        fn proc(&self) -> PathBuf {
            self.dir.path().join("proc")
        }
        fn run(&self) -> PathBuf {
            self.dir.path().join("run/netns")
        }
        /// The namespace file `ns` (created on first use).
        fn ns(&self, ns: &str) -> PathBuf {
            let p = self.dir.path().join("store").join(ns);
            if !p.exists() {
                fs::write(&p, ns).unwrap();
            }
            p
        }
        fn inode(&self, ns: &str) -> u64 {
            identify(&self.ns(ns)).unwrap().1
        }
        fn process(&self, pid: &str, ns: &str) {
            let dir = self.proc().join(pid).join("ns");
            fs::create_dir_all(&dir).unwrap();
            fs::hard_link(self.ns(ns), dir.join("net")).unwrap();
        }
        fn name(&self, name: &str, ns: &str) {
            fs::create_dir_all(self.run()).unwrap();
            fs::hard_link(self.ns(ns), self.run().join(name)).unwrap();
        }
    }

    #[test]
    fn finds_each_namespace_once_own_first_then_named_then_by_inode() {
        let t = Tree::new();
        t.process("thread-self", "host");
        t.process("1", "host");
        t.process("20", "web");
        t.process("21", "web");
        t.process("30", "anon");
        t.process("7", "db");
        t.name("db", "db");
        t.name("empty", "nobody-runs-here");
        // Not a pid: ignored even with an ns/net inside.
        t.process("self", "other");
        let d = discover(&t.proc(), &t.run());
        let got: Vec<(u64, Option<&str>, Option<u32>, bool)> = d
            .found
            .iter()
            .map(|f| (f.inode, f.name.as_deref(), f.pid, f.current))
            .collect();
        let mut unnamed = vec![
            (t.inode("web"), None, Some(20), false),
            (t.inode("anon"), None, Some(30), false),
        ];
        unnamed.sort();
        let mut want = vec![
            (t.inode("host"), None, Some(1), true),
            (t.inode("db"), Some("db"), Some(7), false),
            (t.inode("nobody-runs-here"), Some("empty"), None, false),
        ];
        want.extend(unnamed);
        assert_eq!(got, want);
        assert_eq!(d.unreadable, 0);
        // Named ones are entered by name, the others through their first process.
        assert_eq!(d.found[1].path, t.run().join("db"));
        let web = d.found.iter().find(|f| f.inode == t.inode("web")).unwrap();
        assert_eq!(web.path, t.proc().join("20/ns/net"));
    }

    #[test]
    fn named_are_sorted_and_a_missing_directory_has_none() {
        let t = Tree::new();
        t.name("b", "x");
        t.name("a", "y");
        let got: Vec<String> = named(&t.run()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(named(Path::new("/nonexistent/run/netns")), vec![]);
    }

    #[test]
    fn unreadable_processes_are_counted_and_vanished_ones_are_not() {
        let t = Tree::new();
        t.process("thread-self", "host");
        t.process("1", "host");
        // A dangling ns/net: the process ended between readdir and stat.
        fs::create_dir_all(t.proc().join("2/ns")).unwrap();
        std::os::unix::fs::symlink(t.proc().join("gone"), t.proc().join("2/ns/net")).unwrap();
        // A loop stands in for an error other than "not found".
        fs::create_dir_all(t.proc().join("3/ns")).unwrap();
        std::os::unix::fs::symlink(t.proc().join("3/ns/net"), t.proc().join("3/ns/net")).unwrap();
        // A kernel thread's ns/net is closed to non-root users too, and nothing is missed there.
        fs::create_dir_all(t.proc().join("4/ns")).unwrap();
        std::os::unix::fs::symlink(t.proc().join("4/ns/net"), t.proc().join("4/ns/net")).unwrap();
        fs::write(
            t.proc().join("4/stat"),
            "4 (kworker/0:0) I 2 0 0 0 -1 69238880 0 0 0 0\n",
        )
        .unwrap();
        let d = discover(&t.proc(), &t.run());
        assert_eq!(d.found.len(), 1);
        assert!(d.found[0].current);
        assert_eq!(d.unreadable, 1);
        assert!(
            d.first_error
                .as_deref()
                .is_some_and(|e| e.contains("os error 40")),
            "{:?}",
            d.first_error
        );
    }

    #[test]
    fn resolve_by_name_by_path_and_errors() {
        let t = Tree::new();
        t.process("thread-self", "host");
        t.process("5", "web");
        t.name("web", "web");
        let by_name = resolve("web", &t.proc(), &t.run()).unwrap();
        assert_eq!(
            (by_name.inode, by_name.name.as_deref()),
            (t.inode("web"), Some("web"))
        );
        assert!(!by_name.current);
        let path = t.proc().join("5/ns/net");
        let by_path = resolve(path.to_str().unwrap(), &t.proc(), &t.run()).unwrap();
        assert_eq!(by_path.inode, t.inode("web"));
        assert_eq!(by_path.path, path);
        let own = t.proc().join("thread-self/ns/net");
        assert!(
            resolve(own.to_str().unwrap(), &t.proc(), &t.run())
                .unwrap()
                .current
        );
        let err = resolve("nope", &t.proc(), &t.run())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot open network namespace '"), "{err}");
        assert!(err.contains("run/netns/nope'"), "{err}");
    }

    #[test]
    fn this_machine_has_at_least_its_own_namespace() {
        let d = discover(Path::new("/proc"), Path::new("/run/netns"));
        let own = identify(Path::new("/proc/thread-self/ns/net")).unwrap();
        assert!(d.found[0].current);
        assert_eq!((d.found[0].dev, d.found[0].inode), own);
        let mut ids: Vec<_> = d.found.iter().map(|f| (f.dev, f.inode)).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), d.found.len(), "each namespace once");
    }
}
