//! Running `kwatch serve` in tests: start it on a free loopback port, read where it listens, talk plain HTTP to
//! it, and watch its memory and CPU time in /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{KWATCH, poll};

/// A child process killed and reaped on drop, whatever the test's outcome.
pub struct ChildGuard {
    pub name: &'static str,
    pub child: Child,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit on its own, until the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll(timeout, || self.child.try_wait().unwrap())
    }

    /// Sends a signal to the child (which the guard has not reaped yet).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill() on the pid of our own child, not reaped yet, so the pid is still ours.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("killed {} (pid {})", self.name, self.child.id());
        }
    }
}

/// A `kwatch serve` command listening on a free loopback port, with `args` after `serve`.
pub fn serve_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(KWATCH);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Starts `kwatch serve --listen 127.0.0.1:0 ARGS` and reads the address it bound from stderr.
pub fn start_kwatch(args: &[&str]) -> (ChildGuard, SocketAddr, mpsc::Receiver<String>) {
    started(serve_command(args).spawn().expect("start kwatch serve"))
}

/// Guards a started `kwatch serve` and reads the address it bound from its first line on stderr; the later
/// lines arrive on the receiver.
pub fn started(child: Child) -> (ChildGuard, SocketAddr, mpsc::Receiver<String>) {
    let mut guard = ChildGuard {
        name: "kwatch serve",
        child,
    };
    let stderr = guard.child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end even when nobody listens any more: kwatch must never block on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[kwatch] {line}");
            let _ = tx.send(line);
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("kwatch serve prints where it listens");
    let addr = line
        .strip_prefix("kwatch: serving metrics on ")
        .and_then(|s| {
            s.strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"))
        })
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .parse()
        .unwrap();
    (guard, addr, lines)
}

/// Splits a raw HTTP response: (status, content type, body).
pub fn parse_response(raw: &str) -> (u16, String, String) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = header(head, "content-type").unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The value of header `name` in a response head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A plain HTTP/1.0 request: (status, content type, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    parse_response(&raw)
}

/// Waits (up to 60 s) for kwatch's first scrape to succeed: its first collection reads every process and may be
/// slow on a loaded machine. Returns the body.
pub fn warm_up(addr: SocketAddr) -> String {
    poll(Duration::from_secs(60), || {
        let (status, _, body) = http(addr, "GET", "/metrics");
        (status == 200).then_some(body)
    })
    .expect("kwatch serve never answered a scrape with 200")
}

/// Scrapes `/metrics` and requires a 200 with kwatch's metrics within `limit` plus the duration of the
/// collection behind the answer (`kwatch_scrape_duration_seconds`), connection included: a scrape may have to wait
/// for one collection, which a loaded machine stretches, but for nothing else. Returns the body; panics naming
/// `when` otherwise.
pub fn scrape_within(addr: SocketAddr, limit: Duration, when: &str) -> String {
    let started = Instant::now();
    // Generous socket timeouts: the bound is checked on the answer, with the collection's duration known.
    let patience = limit + Duration::from_secs(30);
    let attempt = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, patience)?;
        s.set_read_timeout(Some(patience))?;
        s.set_write_timeout(Some(patience))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        Ok(raw)
    };
    let raw = attempt()
        .unwrap_or_else(|e| panic!("scrape {when} failed after {:?}: {e}", started.elapsed()));
    let took = started.elapsed();
    let (status, _, body) = parse_response(&raw);
    assert_eq!(status, 200, "scrape {when}: {body}");
    assert!(
        body.contains("# TYPE kwatch_sockets gauge"),
        "scrape {when}: {body}"
    );
    let collection = sample(&body, "kwatch_scrape_duration_seconds")
        .map(Duration::from_secs_f64)
        .expect("kwatch_scrape_duration_seconds");
    eprintln!("scrape {when}: {took:?} (its collection took {collection:?})");
    assert!(
        took <= limit + collection,
        "scrape {when} took {took:?}, more than {limit:?} beyond its collection's {collection:?}"
    );
    body
}

/// The resident memory of a process, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The CPU time a process has used (user + system).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the comm, which ends at the last ')': state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The value of the one sample `series` (name with labels, as printed), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}
