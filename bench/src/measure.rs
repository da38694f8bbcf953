//! Runs one command and measures it: wall time, CPU time and peak RSS from `wait4`, with a timeout.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What one run cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub wall: Duration,
    /// User + system CPU time of the child (and any children it waited for).
    pub cpu: Duration,
    /// The system (kernel) part of `cpu`: for `ss`, mostly the kernel's socket dump itself.
    pub sys: Duration,
    /// `ru_maxrss` of the child, in KiB.
    pub max_rss_kib: u64,
    /// Exit code, or `128 + signal`.
    pub status: i32,
    /// Killed when its timeout passed: `wall` is the timeout, `cpu` and `max_rss_kib` are what it had used by
    /// then (lower bounds).
    pub timed_out: bool,
}

/// Runs `argv` with stdin from /dev/null, stdout into `stdout_to` and stderr into `stderr_to`, and waits for it,
/// killing it (by pid) when `timeout` passes (a sample with `timed_out`) or `stop` is set (an error).
pub fn run(
    argv: &[String],
    stdout_to: &Path,
    stderr_to: &Path,
    timeout: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<Sample> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let stdout = File::create(stdout_to)
        .with_context(|| format!("cannot create '{}'", stdout_to.display()))?;
    let stderr = File::create(stderr_to)
        .with_context(|| format!("cannot create '{}'", stderr_to.display()))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: the hook only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // Dies with us: a measured command never outlives the benchmark.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run '{prog}'"))?;
    let pid = child.id() as libc::pid_t;

    // A watchdog kills the child on timeout or interrupt. The child is reaped only after the watchdog has
    // stopped, so the pid it may kill is always still ours.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let deadline = started + timeout;
            loop {
                match done_rx.recv_timeout(Duration::from_millis(50)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return false,
                }
                if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                    // SAFETY: `pid` is our child, not yet reaped (see above); kill has no memory effects.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
            }
        });
        let exited = wait_exited(pid);
        let wall = started.elapsed();
        let _ = done_tx.send(());
        let killed = handle.join().unwrap_or(false);
        (exited, wall, killed)
    });
    let (exited, wall, killed) = watchdog;
    exited?;
    let (status, usage) = reap(pid)?;
    drop(child);
    if killed && stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        sys: tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        status,
        timed_out: killed,
    })
}

impl Sample {
    /// One line for a parent process to read back with [`Sample::parse`] (written by kwatch-bench-spawn).
    #[allow(dead_code)]
    pub fn to_line(self) -> String {
        format!(
            "sample wall_ns={} cpu_ns={} sys_ns={} max_rss_kib={} status={} timed_out={}",
            self.wall.as_nanos(),
            self.cpu.as_nanos(),
            self.sys.as_nanos(),
            self.max_rss_kib,
            self.status,
            u8::from(self.timed_out)
        )
    }

    pub fn parse(line: &str) -> anyhow::Result<Sample> {
        let mut fields = line.trim().split(' ');
        if fields.next() != Some("sample") {
            bail!("not a sample line '{line}'");
        }
        let mut value = |key: &str| -> anyhow::Result<i64> {
            let field = fields
                .next()
                .with_context(|| format!("no '{key}' in '{line}'"))?;
            let v = field
                .strip_prefix(key)
                .and_then(|f| f.strip_prefix('='))
                .with_context(|| format!("expected '{key}=' in '{line}'"))?;
            v.parse()
                .with_context(|| format!("invalid '{key}' in '{line}'"))
        };
        Ok(Sample {
            wall: Duration::from_nanos(value("wall_ns")?.max(0) as u64),
            cpu: Duration::from_nanos(value("cpu_ns")?.max(0) as u64),
            sys: Duration::from_nanos(value("sys_ns")?.max(0) as u64),
            max_rss_kib: value("max_rss_kib")?.max(0) as u64,
            status: value("status")? as i32,
            timed_out: value("timed_out")? != 0,
        })
    }
}

/// Blocks until `pid` has exited, without reaping it.
fn wait_exited(pid: libc::pid_t) -> anyhow::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waitid failed");
        }
    }
}

/// Reaps `pid` and returns its exit status and resource usage.
fn reap(pid: libc::pid_t) -> anyhow::Result<(i32, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 writes into it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: both out-pointers are valid for writes.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return Ok((code, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4 failed");
        }
    }
}

/// CPU time (user + system) this process has used so far, all threads.
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes; RUSAGE_SELF cannot fail with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kwatch-bench-test-{}-{name}", std::process::id()))
    }

    #[test]
    fn measures_a_command_that_burns_cpu() {
        let stop = AtomicBool::new(false);
        let argv: Vec<String> = [
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
        ]
        .map(String::from)
        .to_vec();
        let (out, err) = (tmp("out1"), tmp("err1"));
        let s = run(&argv, &out, &err, Duration::from_secs(60), &stop).unwrap();
        assert_eq!(s.status, 3);
        assert!(!s.timed_out, "{s:?}");
        assert!(s.cpu > Duration::ZERO && s.sys <= s.cpu, "{s:?}");
        assert!(s.max_rss_kib > 0, "{s:?}");
        assert!(s.wall >= s.cpu / 2, "{s:?}");
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
    }

    #[test]
    fn samples_survive_a_line() {
        let s = Sample {
            wall: Duration::from_nanos(123_456_789),
            cpu: Duration::from_nanos(98_765),
            sys: Duration::from_nanos(8_765),
            max_rss_kib: 4242,
            status: 137,
            timed_out: true,
        };
        assert_eq!(Sample::parse(&s.to_line()).unwrap(), s);
        assert!(Sample::parse("sample wall_ns=1").is_err());
        assert!(Sample::parse("hello").is_err());
    }

    #[test]
    fn kills_a_command_that_outlives_its_timeout() {
        let stop = AtomicBool::new(false);
        let argv: Vec<String> = ["sleep", "30"].map(String::from).to_vec();
        let (out, err) = (tmp("out2"), tmp("err2"));
        let started = Instant::now();
        let s = run(&argv, &out, &err, Duration::from_millis(200), &stop).unwrap();
        assert!(s.timed_out, "{s:?}");
        assert_eq!(s.status, 128 + libc::SIGKILL, "{s:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
    }
}
