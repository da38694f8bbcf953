//! `kwatch serve` as Prometheus meets it: the exporter started in the benchmark's namespace on a free loopback
//! port and scraped over plain HTTP/1.1 as Prometheus scrapes, with its `X-Prometheus-Scrape-Timeout-Seconds`
//! header (10 s, Prometheus's default `scrape_timeout`): the first scrape half a scrape interval after the exporter
//! listens (Prometheus spreads targets over the interval), the next ones an interval apart (default 15 s, past
//! `--min-interval`, so each waits for a fresh collection). The exporter starts its first (cold) collection when it
//! starts; a first scrape that comes before it ends joins it. Its CPU and RSS are read from /proc, the RSS also
//! just before each scrape (what it holds between scrapes). A scrape answered 503 means the collection outlasted
//! `--scrape-timeout`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::report::fmt_duration;

/// The exporter's own default, which its answer must beat (Prometheus's default `scrape_timeout` is 10 s).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the harness waits for one response before giving up on it.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(120);
/// What the scrapes say their timeout is: Prometheus's default `scrape_timeout`.
const SCRAPER_TIMEOUT_SECS: u32 = 10;

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    pub time: Duration,
    /// HTTP status code; 0 when no status line came.
    pub status: u16,
    pub bytes: usize,
}

/// What the exporter cost.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub scrapes: Vec<Scrape>,
    /// VmRSS after the last scrape and VmHWM (peak), KiB.
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The largest VmRSS just before a scrape after the first: what the exporter holds between scrapes, KiB.
    pub rss_between_kib: u64,
    /// Time between the starts of two scrapes.
    pub interval: Duration,
    /// CPU time of the whole exporter process (every thread) over the scrapes, divided by their number.
    pub cpu_per_scrape: Duration,
}

impl Exporter {
    /// The slowest scrape answered 200, `None` when none was.
    pub fn slowest_ok(&self) -> Option<Duration> {
        self.scrapes
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.time)
            .max()
    }

    /// Every scrape answered 200 within the exporter's scrape timeout.
    pub fn all_within_timeout(&self) -> bool {
        !self.scrapes.is_empty()
            && self
                .scrapes
                .iter()
                .all(|s| s.status == 200 && s.time <= SCRAPE_TIMEOUT)
    }
}

/// The exporter process, stopped by pid (SIGTERM, then SIGKILL) and reaped when dropped.
struct Served {
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; the child is not reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kwatch serve --listen 127.0.0.1:0` and scrapes it `scrapes` times, `interval` apart.
pub fn measure(
    kwatch: &Path,
    scrapes: usize,
    interval: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<Exporter> {
    let mut cmd = Command::new(kwatch);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the hook only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // Dies with the harness.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start 'kwatch serve'")?;
    let stderr = child
        .stderr
        .take()
        .context("'kwatch serve' has no stderr")?;
    let served = Served { child };
    let pid = served.child.id();

    // Its stderr, line by line, until it exits; the address comes in the first line.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = wait_for_address(&rx, Duration::from_secs(30), stop)?;
    let listening = Instant::now();

    let cpu0 = crate::live::process_cpu(pid)?;
    let mut done = Vec::new();
    let mut rss_between_kib = 0;
    for i in 0..scrapes {
        let at = listening + interval / 2 + interval * i as u32;
        crate::live::pause(at.saturating_duration_since(Instant::now()), stop)?;
        if i > 0 {
            rss_between_kib = rss_between_kib.max(crate::live::process_rss(pid)?.0);
        }
        done.push(scrape(addr)?);
    }
    let cpu = crate::live::process_cpu(pid)?.saturating_sub(cpu0);
    let (rss_kib, hwm_kib) = crate::live::process_rss(pid)?;
    // Warnings the exporter printed (a failed scrape names its reason there).
    for line in rx.try_iter() {
        crate::progress(&format!("kwatch serve: {line}"));
    }
    drop(served);
    Ok(Exporter {
        // The startup collection included: each scrape here had one collection of its own, or shared it.
        cpu_per_scrape: cpu / scrapes.max(1) as u32,
        scrapes: done,
        rss_kib,
        hwm_kib,
        rss_between_kib,
        interval,
    })
}

/// `kwatch: serving metrics on http://127.0.0.1:PORT/metrics` gives that address.
fn wait_for_address(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<SocketAddr> {
    let deadline = Instant::now() + timeout;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "'kwatch serve' did not say where it listens within {} s",
                timeout.as_secs()
            );
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(addr) = address_in(&line) {
                    return Ok(addr);
                }
                crate::progress(&format!("kwatch serve: {line}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("'kwatch serve' exited"),
        }
    }
}

fn address_in(line: &str) -> Option<SocketAddr> {
    line.split_once("http://")?
        .1
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

/// One `GET /metrics` on a fresh connection, read to the end (the request asks the server to close).
fn scrape(addr: SocketAddr) -> anyhow::Result<Scrape> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to the exporter at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kwatch-bench\r\n\
         X-Prometheus-Scrape-Timeout-Seconds: {SCRAPER_TIMEOUT_SECS}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    // Bounded: by the deadline, and each read by its timeout.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the exporter's answer"),
        }
        if started.elapsed() > RESPONSE_DEADLINE {
            bail!(
                "the exporter did not finish its answer within {} s",
                RESPONSE_DEADLINE.as_secs()
            );
        }
    }
    Ok(Scrape {
        time: started.elapsed(),
        status: status_of(&response),
        bytes: response.len(),
    })
}

/// The code of an `HTTP/1.1 200 OK` status line; 0 when there is none.
fn status_of(response: &[u8]) -> u16 {
    let line = response.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The markdown lines for the report.
pub fn table(e: &Exporter) -> String {
    let mut out = format!(
        "| `kwatch serve`, scraped over HTTP on loopback every {} (scrape timeout {SCRAPER_TIMEOUT_SECS} s) | \
         value |\n|---|---:|\n",
        fmt_duration(e.interval)
    );
    for (i, s) in e.scrapes.iter().enumerate() {
        let which = if i == 0 {
            format!(
                "first scrape, {} after the exporter listens (its startup collection began then)",
                fmt_duration(e.interval / 2)
            )
        } else {
            format!("scrape {}", i + 1)
        };
        out.push_str(&format!(
            "| {which} | {}, HTTP {}, {:.1} KiB |\n",
            fmt_duration(s.time),
            s.status,
            s.bytes as f64 / 1024.0
        ));
    }
    out.push_str(&format!(
        "| exporter CPU per scrape, every thread (its startup collection included) | {} |\n\
         | exporter RSS between scrapes (largest, just before one) | {:.1} MiB |\n\
         | exporter RSS after the scrapes / peak RSS | {:.1} / {:.1} MiB |\n",
        fmt_duration(e.cpu_per_scrape),
        e.rss_between_kib as f64 / 1024.0,
        e.rss_kib as f64 / 1024.0,
        e.hwm_kib as f64 / 1024.0,
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_serving_line() {
        assert_eq!(
            address_in("kwatch: serving metrics on http://127.0.0.1:40123/metrics"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            address_in("kwatch: serving metrics on https://127.0.0.1:1/metrics"),
            None
        );
        assert_eq!(address_in("kwatch: warning: x"), None);
    }

    #[test]
    fn status_codes_are_read_from_the_status_line() {
        assert_eq!(
            status_of(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"),
            200
        );
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n"), 503);
        assert_eq!(status_of(b""), 0);
        assert_eq!(status_of(b"garbage"), 0);
    }
}
