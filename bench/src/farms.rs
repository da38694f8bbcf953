//! The running farm processes: started from this binary (`kwatch-bench farm ...`), awaited until ready, and
//! stopped by pid on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::farm::Role;

struct Farm {
    child: Child,
    /// Closing it tells the farm to exit.
    stdin: Option<ChildStdin>,
    role: Role,
}

/// Every farm started so far. Dropping it closes their stdin, kills them by pid and reaps them.
pub struct Farms {
    farms: Vec<Farm>,
    lines_tx: Sender<(usize, String)>,
    lines: Receiver<(usize, String)>,
}

impl Farms {
    pub fn new() -> Farms {
        let (lines_tx, lines) = mpsc::channel();
        Farms {
            farms: Vec::new(),
            lines_tx,
            lines,
        }
    }

    /// Starts one farm; its stdout lines arrive on the shared channel, tagged with its index.
    pub fn start(&mut self, role: Role) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
        let mut child = Command::new(exe)
            .arg("farm")
            .args(role.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a farm process")?;
        let index = self.farms.len();
        let stdout = child.stdout.take().context("farm has no stdout")?;
        let tx = self.lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((index, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send((index, "exited".to_string()));
        });
        let stdin = child.stdin.take();
        self.farms.push(Farm { child, stdin, role });
        Ok(())
    }

    /// Waits until every farm in `indices` has printed a line starting with `word`.
    pub fn wait_for(
        &self,
        indices: std::ops::Range<usize>,
        word: &str,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<usize> = indices.collect();
        while !pending.is_empty() {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{} farm(s) not '{word}' after {} s",
                    pending.len(),
                    timeout.as_secs()
                );
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((i, line)) if line.starts_with(word) => pending.retain(|p| *p != i),
                Ok((i, line)) if line == "exited" => {
                    bail!("farm {i} ({:?}) exited before '{word}'", self.farms[i].role)
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("farm output channel closed"),
            }
        }
        Ok(())
    }

    /// (pid, role) of every farm.
    pub fn pids(&self) -> Vec<(u32, &Role)> {
        self.farms.iter().map(|f| (f.child.id(), &f.role)).collect()
    }
}

impl Drop for Farms {
    fn drop(&mut self) {
        for farm in &mut self.farms {
            drop(farm.stdin.take());
            // Not yet reaped, so the pid is still this child's.
            let _ = farm.child.kill();
        }
        for farm in &mut self.farms {
            let _ = farm.child.wait();
        }
    }
}
