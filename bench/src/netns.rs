//! The benchmark's network namespace: created with `ip netns add`, entered by this process, deleted on drop.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use anyhow::Context;

/// Every namespace this benchmark creates starts with this.
pub const PREFIX: &str = "kwatch-bench-";

/// A named namespace that this process has entered; dropping it deletes the name (the namespace itself goes
/// when its last process and socket do).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `kwatch-bench-<pid>`, moves this thread (and so everything it spawns later) into it and brings
    /// `lo` up.
    pub fn create_and_enter() -> anyhow::Result<Netns> {
        let name = format!("{PREFIX}{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        let path = format!("/run/netns/{}", ns.name);
        let file = File::open(&path).with_context(|| format!("cannot open '{path}'"))?;
        // SAFETY: setns on a namespace fd we own; it changes only this thread's network namespace, and this
        // runs on the main thread before any other thread exists.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot enter namespace '{}'", ns.name));
        }
        ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!(
                "kwatch-bench: cannot delete namespace '{}': {e:#}",
                self.name
            );
        }
    }
}

/// Deletes `kwatch-bench-PID` namespaces left by runs whose process no longer exists (killed with SIGKILL).
pub fn remove_stale() -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run 'ip' (install iproute2)")?;
    let mut removed = Vec::new();
    for name in stale(&String::from_utf8_lossy(&out.stdout), |pid| {
        // SAFETY: signal 0 only checks that the pid exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }) {
        ip(&["netns", "delete", &name])?;
        removed.push(name);
    }
    Ok(removed)
}

/// Pure: the benchmark namespaces in `ip netns list` output whose pid is not alive.
fn stale(listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| {
            let pid: u32 = name.strip_prefix(PREFIX)?.parse().ok()?;
            (!alive(pid)).then(|| name.to_string())
        })
        .collect()
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    crate::cmd::stdout_of("ip", args, "iproute2").map(drop)
}

/// Writes a sysctl of the current network namespace (`net.core.somaxconn` → /proc/sys/net/core/somaxconn).
pub fn set_sysctl(name: &str, value: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("cannot set '{name}' to '{value}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_benchmark_namespaces_are_stale() {
        let listing = "kwatch-bench-12 (id: 0)\nkwatch-bench-13\nother-12\nkwatch-bench-x\n";
        assert_eq!(stale(listing, |pid| pid == 13), vec!["kwatch-bench-12"]);
    }
}
