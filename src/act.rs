//! Acting on what kwatch finds: destroy sockets, or turn keepalive on in running programs.
//!
//! Both commands take one snapshot, select sockets with the live view's filter syntax, show exactly those in the
//! table of `--once`, ask on the terminal (`--yes` skips the question, `--dry-run` stops after showing), act on
//! each socket and report each result. Selection and report lines are pure ([`plan`]); the kernel and the owners' fds are
//! reached through `diag::sock_destroy` and `sockopt::enable`.
//!
//! Listening sockets are left alone unless the filter names `state:listen`: killing one stops a service from
//! accepting, which `port:5000` alone does not ask for.
//!
//! Exit status (through [`Unfinished`] and `run::main`): 0 when every socket the command was for was handled (a
//! socket that closed meanwhile counts as handled), or a dry run listed some; 1 when there was nothing to do
//! (nothing matched, every match was left alone by rule, or the question was answered no); 2 on errors and when
//! not one socket could be handled; 3 when some were and some were not.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub mod plan;

use crate::cli::{KeepaliveArgs, KillArgs};
use crate::collect;
use crate::config::Config;
use crate::diag::sock_destroy::{DestroyError, Destroyer};
use crate::exit::{EXIT_FAILED, EXIT_NOTHING_TO_DO, Unfinished, failure_status};
use crate::filter::Filter;
use crate::model::{Connection, NamespaceInfo, Snapshot};
use crate::output::table;
use crate::sockopt::Reader;
use crate::sockopt::enable::{EnableError, enable_keepalive};
pub use plan::{
    Plan, Tally, is_yes, names_listen, plan_keepalive, plan_kill, readback_text, select,
    socket_line,
};
use plan::{plural, tally_total};

/// What the owner of a killed socket is left with, said before asking and after acting.
pub const FD_NOTE: &str = "note: the owning program keeps its file descriptor: the socket becomes a dead fd in \
that program (reads and writes fail with ECONNABORTED) until the program closes it";

/// What a command was asked for, for its messages: the FILTER words and the filter flags as terms.
fn asked_text(words: &[String], flags: &Filter) -> String {
    let mut parts: Vec<String> = words
        .iter()
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let flags = flags.to_text();
    if !flags.is_empty() {
        parts.push(flags);
    }
    parts.join(" ")
}

/// The filter of a command: the FILTER words parsed as one text; an empty filter (everything, when no flag
/// narrows it either) is refused.
pub fn parse_filter(words: &[String], flags: &Filter) -> anyhow::Result<Filter> {
    let text = words.join(" ");
    let filter = Filter::parse(&text).with_context(|| format!("invalid filter '{text}'"))?;
    if filter.is_empty() && flags.is_empty() {
        anyhow::bail!(
            "refusing to act on every socket: give a filter such as 'port:443' or 'state:close-wait pid:1234', \
             or flags such as --port 443"
        );
    }
    Ok(filter)
}

/// Takes the snapshot the command acts on and the sockets both filters match.
fn snapshot_for(filter: &Filter, config: &Config) -> anyhow::Result<Snapshot> {
    let snapshot = collect::collect(&config.collect_options(filter))?;
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    Ok(snapshot)
}

/// Asks `question [y/N]` on the terminal. Without a terminal on stdin, refuses: a script must say `--yes`.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "not asking without a terminal: stdin is not a tty; pass --yes to act without asking, or \
             --dry-run to only show"
        );
    }
    let mut err = io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

/// Shows the plan: the table of targets, then the skipped and unreachable ones and the listeners left alone,
/// apart. Returns false when there is nothing to act on.
fn preview(
    out: &mut impl Write,
    what: &str,
    plan: &Plan,
    snapshot: &Snapshot,
    filter_text: &str,
    config: &Config,
) -> anyhow::Result<bool> {
    if plan.targets.is_empty() {
        writeln!(out, "no sockets to {what} match '{filter_text}'")?;
    } else {
        let n = plan.targets.len();
        writeln!(out, "{n} {} to {what}:", plural(n))?;
        table::write(out, snapshot, &plan.targets, &config.table_options())?;
    }
    for line in plan.skipped_lines() {
        writeln!(out, "{line}")?;
    }
    for line in plan.listener_lines(snapshot) {
        writeln!(out, "{line}")?;
    }
    Ok(!plan.targets.is_empty())
}

/// The error for a plan with no targets: nothing to do (status 1), or nothing reachable (status 2).
fn nothing_done(plan: &Plan, verb: &str, filter_text: &str) -> anyhow::Error {
    let unreachable = tally_total(&plan.unreachable);
    if unreachable > 0 {
        return Unfinished::error(
            EXIT_FAILED,
            format!(
                "could not {verb} any of the {unreachable} matching {}: no owning process known (run as root \
                 to read every process's fds)",
                plural(unreachable)
            ),
        );
    }
    let left = tally_total(&plan.skipped) + plan.listeners.len();
    let why = if left > 0 {
        format!("every matching socket was skipped ({left}, see above)")
    } else {
        format!("no socket matches '{filter_text}'")
    };
    Unfinished::error(EXIT_NOTHING_TO_DO, format!("nothing to {verb}: {why}"))
}

/// `kwatch kill FILTER…`.
pub fn kill(kill: &KillArgs, config: &Config) -> anyhow::Result<()> {
    let flags = config.filter.clone();
    let filter = parse_filter(&kill.filter, &flags)?;
    let snapshot = snapshot_for(&filter, config)?;
    let matching = select(&snapshot, &[&filter, &flags]);
    let plan = plan_kill(&matching, names_listen(&[&filter, &flags]));
    let mut out = io::stdout().lock();
    let asked = asked_text(&kill.filter, &flags);
    if !preview(&mut out, "kill", &plan, &snapshot, &asked, config)? {
        out.flush()?;
        return Err(nothing_done(&plan, "kill", &asked));
    }
    let n = plan.targets.len();
    writeln!(out, "{FD_NOTE}")?;
    if kill.dry_run {
        writeln!(
            out,
            "dry run: would kill {n} {}; nothing was killed",
            plural(n)
        )?;
        return Ok(());
    }
    out.flush()?;
    if !kill.yes && !confirm(&format!("kill {n} {}?", plural(n)))? {
        writeln!(out, "nothing was killed")?;
        out.flush()?;
        return Err(Unfinished::error(
            EXIT_NOTHING_TO_DO,
            "nothing was killed: the answer was no",
        ));
    }
    let results = kill_all(&plan.targets, &snapshot.namespaces, &config.proc_root);
    let mut failed = 0;
    let mut gone = 0;
    for (conn, result) in plan.targets.iter().zip(&results) {
        let line = socket_line(conn, &snapshot);
        match result {
            Some(Ok(())) => writeln!(out, "killed   {line}")?,
            Some(Err(DestroyError::Gone)) => {
                gone += 1;
                writeln!(out, "gone     {line}: already closed")?;
            }
            Some(Err(e)) => {
                failed += 1;
                writeln!(out, "FAILED   {line}: {e}")?;
            }
            None => {
                failed += 1;
                writeln!(out, "not tried {line}")?;
            }
        }
    }
    let killed = n - failed - gone;
    writeln!(
        out,
        "killed {killed} of {n} {}{}",
        plural(n),
        if gone > 0 {
            format!(" ({gone} already gone)")
        } else {
            String::new()
        }
    )?;
    out.flush()?;
    let Some(status) = failure_status(failed, n) else {
        return Ok(());
    };
    let fatal = results.iter().find_map(|r| match r {
        Some(Err(e)) if e.is_fatal() => Some(format!(": {e}")),
        _ => None,
    });
    Err(Unfinished::error(
        status,
        format!(
            "could not kill {failed} of {n} {}{}",
            plural(n),
            fatal.unwrap_or_default()
        ),
    ))
}

/// Where a socket's SOCK_DESTROY must be sent from: `None` for kwatch's own namespace (or an unknown one),
/// else the path of its network namespace to enter (`/run/netns/NAME`, or `PROC/PID/ns/net` of a process in it).
/// A netlink socket only reaches the sockets of the namespace it was opened in.
pub fn destroy_place(
    conn: &Connection,
    namespaces: &[NamespaceInfo],
    own_inode: Option<u64>,
    proc_root: &Path,
) -> Result<Option<PathBuf>, String> {
    let Some(ns) = &conn.netns else {
        return Ok(None);
    };
    let info = namespaces.iter().find(|i| i.netns.inode == ns.inode);
    if info.is_some_and(|i| i.current) || own_inode == Some(ns.inode) {
        return Ok(None);
    }
    if let Some(name) = ns
        .name
        .as_ref()
        .or(info.and_then(|i| i.netns.name.as_ref()))
    {
        return Ok(Some(Path::new(crate::netns::RUN_NETNS).join(&**name)));
    }
    match info.and_then(|i| i.pid) {
        Some(pid) => Ok(Some(proc_root.join(format!("{pid}/ns/net")))),
        None => Err(format!(
            "cannot reach network namespace '{}': it has no name and no known process",
            ns.label()
        )),
    }
}

/// Destroys each socket in turn, each from inside its network namespace. Per socket: `Some(result)`, or `None`
/// when not tried because an earlier error showed every attempt would fail (no permission, unsupported kernel).
pub fn kill_all(
    targets: &[&Connection],
    namespaces: &[NamespaceInfo],
    proc_root: &Path,
) -> Vec<Option<Result<(), DestroyError>>> {
    let own_inode = rustix::fs::stat(proc_root.join("thread-self/ns/net"))
        .ok()
        .map(|st| st.st_ino);
    let places: Vec<Result<Option<PathBuf>, String>> = targets
        .iter()
        .map(|c| destroy_place(c, namespaces, own_inode, proc_root))
        .collect();
    let mut results: Vec<Option<Result<(), DestroyError>>> = Vec::new();
    results.resize_with(targets.len(), || None);
    let mut done = vec![false; targets.len()];
    for i in 0..targets.len() {
        if done[i] {
            continue;
        }
        // Every socket of the same place, in order, through one netlink socket opened there.
        let group: Vec<usize> = (i..targets.len())
            .filter(|&j| !done[j] && places[j] == places[i])
            .collect();
        for &j in &group {
            done[j] = true;
        }
        let conns: Vec<&Connection> = group.iter().map(|&j| targets[j]).collect();
        let outcome = match &places[i] {
            Err(why) => group
                .iter()
                .map(|_| Some(Err(DestroyError::Netns(why.clone()))))
                .collect(),
            Ok(None) => destroy_group(&conns),
            Ok(Some(path)) => crate::netns::enter::open(path)
                .and_then(|file| crate::netns::enter::run_in(&file, || destroy_group(&conns)))
                .unwrap_or_else(|e| {
                    let why = format!("cannot enter network namespace '{}': {e}", path.display());
                    group
                        .iter()
                        .map(|_| Some(Err(DestroyError::Netns(why.clone()))))
                        .collect()
                }),
        };
        let fatal = outcome
            .iter()
            .any(|r| matches!(r, Some(Err(e)) if e.is_fatal()));
        for (&j, r) in group.iter().zip(outcome) {
            results[j] = r;
        }
        if fatal {
            break;
        }
    }
    results
}

/// Destroys `conns` through one netlink socket opened on this thread, stopping at the first fatal error.
fn destroy_group(conns: &[&Connection]) -> Vec<Option<Result<(), DestroyError>>> {
    let mut results: Vec<Option<Result<(), DestroyError>>> = Vec::with_capacity(conns.len());
    match Destroyer::open() {
        Err(e) => results.push(Some(Err(e))),
        Ok(mut destroyer) => {
            for conn in conns {
                let result = destroyer.destroy(conn);
                let fatal = result.as_ref().is_err_and(DestroyError::is_fatal);
                results.push(Some(result));
                if fatal {
                    break;
                }
            }
        }
    }
    results.resize_with(conns.len(), || None);
    results
}

/// `kwatch keepalive FILTER…`.
pub fn keepalive(ka: &KeepaliveArgs, config: &Config) -> anyhow::Result<()> {
    if !config.map_processes {
        anyhow::bail!("keepalive needs the owning processes: drop --no-processes");
    }
    let flags = config.filter.clone();
    let filter = parse_filter(&ka.filter, &flags)?;
    let snapshot = snapshot_for(&filter, config)?;
    let matching = select(&snapshot, &[&filter, &flags]);
    let plan = plan_keepalive(&matching);
    let mut out = io::stdout().lock();
    let v = ka.values();
    let asked = asked_text(&ka.filter, &flags);
    if !preview(&mut out, "change", &plan, &snapshot, &asked, config)? {
        out.flush()?;
        return Err(nothing_done(&plan, "change", &asked));
    }
    let n = plan.targets.len();
    let settings = format!(
        "idle {}s, intvl {}s, cnt {}: a silent peer is dropped after {}s",
        v.idle_s,
        v.intvl_s,
        v.cnt,
        v.dead_after_s()
    );
    if ka.dry_run {
        writeln!(
            out,
            "dry run: would turn keepalive on ({settings}) for {n} {}; nothing was changed",
            plural(n)
        )?;
        return Ok(());
    }
    out.flush()?;
    if !ka.yes
        && !confirm(&format!(
            "turn keepalive on ({settings}) for {n} {}?",
            plural(n)
        ))?
    {
        writeln!(out, "nothing was changed")?;
        out.flush()?;
        return Err(Unfinished::error(
            EXIT_NOTHING_TO_DO,
            "nothing was changed: the answer was no",
        ));
    }
    let mut reader = Reader::new();
    let mut failed = 0;
    let mut denied = false;
    for conn in &plan.targets {
        let line = socket_line(conn, &snapshot);
        match enable_keepalive(&mut reader, conn, v) {
            Ok(read) if v.applied_in(&read) => {
                writeln!(out, "on       {line}: {}", readback_text(v, &read))?;
            }
            Ok(read) => {
                failed += 1;
                writeln!(out, "FAILED   {line}: {}", readback_text(v, &read))?;
            }
            Err(e) => {
                failed += 1;
                denied |= matches!(e, EnableError::Permission(_));
                writeln!(out, "FAILED   {line}: {e}")?;
            }
        }
    }
    // Matching sockets whose owner is unknown were asked for too, and are not changed.
    let asked_n = plan.asked();
    let failed = failed + (asked_n - n);
    writeln!(
        out,
        "keepalive on for {} of {asked_n} {}",
        asked_n - failed,
        plural(asked_n)
    )?;
    out.flush()?;
    let Some(status) = failure_status(failed, asked_n) else {
        return Ok(());
    };
    let hint = if denied {
        ": duplicating another process's socket needs root or CAP_SYS_PTRACE"
    } else if asked_n > n {
        ": some owners could not be read (run as root)"
    } else {
        ""
    };
    Err(Unfinished::error(
        status,
        format!(
            "could not turn keepalive on for {failed} of {asked_n} {}{hint}",
            plural(asked_n)
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
