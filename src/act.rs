//! Acting on what kwatch finds: destroy sockets, or turn keepalive on in running programs.
//!
//! Both commands take one snapshot, select sockets with the live view's filter syntax, show exactly those in the
//! table of `--once`, ask on the terminal (`--yes` skips the question, `--dry-run` stops after showing), act on
//! each socket and report each result. Selection and report lines are pure ([`plan_kill`], [`plan_keepalive`],
//! [`socket_line`]); the kernel and the owners' fds are reached through [`destroy`] and [`keepalive`].
//!
//! Exit status: 0 when every selected socket was handled (a socket that closed meanwhile counts as handled) and
//! when nothing matched; non-zero (2, through `run::main`) when any socket could not be handled or the question
//! could not be asked.

pub mod destroy;
pub mod keepalive;

use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{Args, ColorChoice};
use crate::collect;
use crate::escape::escape;
use crate::filter::Filter;
use crate::model::{Connection, NamespaceInfo, Snapshot, TcpState};
use crate::output::table;
use crate::sockopt::Reader;
use destroy::{DestroyError, Destroyer};
use keepalive::{EnableError, KeepaliveValues};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The owning program keeps its file descriptor: the socket becomes a dead fd in \
that program (reads and writes fail with ECONNABORTED) until it closes it.\n\
Needs root or CAP_NET_ADMIN, and a kernel built with CONFIG_INET_DIAG_DESTROY.\n\
Exit status: 0 when every socket was killed or had closed meanwhile, or nothing matched; 2 when any \
could not be killed, or when asking was impossible (no terminal and no --yes).\n\
Examples:\n  kwatch kill --dry-run state:close-wait comm:myapp\n  kwatch kill dport:5432 pid:1234\n  \
kwatch kill --yes code:dead_peer_suspect"
)]
pub struct KillArgs {
    /// Do not ask: kill at once (for scripts).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Only show which sockets would be killed.
    #[arg(short = 'n', long, conflicts_with = "yes")]
    pub dry_run: bool,

    /// Which sockets, in the filter syntax of the live view: `port:443 state:close-wait pid:1234 stuck`.
    #[arg(required = true, value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Only ESTABLISHED and CLOSE-WAIT sockets are changed; others are listed as skipped.\n\
Needs root (or CAP_SYS_PTRACE over the owners) to duplicate their sockets with pidfd_getfd (Linux 5.6+).\n\
Exit status: 0 when every socket has the settings (read back) or nothing matched; 2 otherwise.\n\
Examples:\n  kwatch keepalive --dry-run comm:myapp state:established\n  \
kwatch keepalive --idle 60 --intvl 10 --cnt 5 dport:5432\n  kwatch keepalive --yes --idle 5m code:no_keepalive_idle"
)]
pub struct KeepaliveArgs {
    /// TCP_KEEPIDLE: seconds of silence before the first probe (1-32767; `90`, `90s` or `5m`).
    #[arg(long, default_value = "60", value_parser = keepalive::parse_idle, value_name = "SECONDS")]
    pub idle: u32,

    /// TCP_KEEPINTVL: seconds between unanswered probes (1-32767).
    #[arg(long, default_value = "10", value_parser = keepalive::parse_intvl, value_name = "SECONDS")]
    pub intvl: u32,

    /// TCP_KEEPCNT: unanswered probes before the kernel resets the connection (1-127).
    #[arg(long, default_value = "5", value_parser = keepalive::parse_cnt, value_name = "N")]
    pub cnt: u32,

    /// Do not ask: apply at once (for scripts).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Only show which sockets would be changed.
    #[arg(short = 'n', long, conflicts_with = "yes")]
    pub dry_run: bool,

    /// Which sockets, in the filter syntax of the live view.
    #[arg(required = true, value_name = "FILTER")]
    pub filter: Vec<String>,
}

impl KeepaliveArgs {
    pub fn values(&self) -> KeepaliveValues {
        KeepaliveValues {
            idle_s: self.idle,
            intvl_s: self.intvl,
            cnt: self.cnt,
        }
    }
}

/// What the owner of a killed socket is left with, said before asking and after acting.
pub const FD_NOTE: &str = "note: the owning program keeps its file descriptor: the socket becomes a dead fd in \
that program (reads and writes fail with ECONNABORTED) until the program closes it";

/// The sockets a command will act on, and the matching ones it leaves alone with the reason.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub targets: Vec<&'a Connection>,
    /// Matching sockets left out, counted by reason (a sentence fragment, see [`Plan::skipped_lines`]).
    pub skipped: BTreeMap<&'static str, BTreeMap<TcpState, u64>>,
}

impl Plan<'_> {
    fn skip(&mut self, reason: &'static str, state: TcpState) {
        *self
            .skipped
            .entry(reason)
            .or_default()
            .entry(state)
            .or_default() += 1;
    }

    /// One line per reason: `skipped 3 sockets (2 listen, 1 time-wait): not ESTABLISHED or CLOSE-WAIT ...`.
    pub fn skipped_lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|(reason, states)| {
                let n: u64 = states.values().sum();
                let parts: Vec<String> = states
                    .iter()
                    .map(|(s, k)| format!("{k} {}", s.name()))
                    .collect();
                format!(
                    "skipped {n} {} ({}): {reason}",
                    if n == 1 { "socket" } else { "sockets" },
                    parts.join(", ")
                )
            })
            .collect()
    }
}

const SKIP_TIME_WAIT: &str = "TIME-WAIT sockets belong to no program and expire by themselves";
const SKIP_STATE: &str = "keepalive only runs on ESTABLISHED and CLOSE-WAIT connections";
const SKIP_NO_OWNER: &str =
    "no owning process known (orphaned, or its fds are unreadable: run as root)";

/// The sockets of `snapshot` that `filters` all match, in snapshot order.
pub fn select<'a>(snapshot: &'a Snapshot, filters: &[&Filter]) -> Vec<&'a Connection> {
    snapshot
        .connections
        .iter()
        .filter(|c| filters.iter().all(|f| f.matches_in(c, snapshot)))
        .collect()
}

/// Which of `matching` to kill: all but TIME-WAIT (no program holds those, and they expire by themselves).
pub fn plan_kill<'a>(matching: &[&'a Connection]) -> Plan<'a> {
    let mut plan = Plan::default();
    for c in matching {
        if c.state == TcpState::TimeWait {
            plan.skip(SKIP_TIME_WAIT, c.state);
        } else {
            plan.targets.push(c);
        }
    }
    plan
}

/// Which of `matching` to turn keepalive on for: ESTABLISHED and CLOSE-WAIT sockets with a known owner.
pub fn plan_keepalive<'a>(matching: &[&'a Connection]) -> Plan<'a> {
    let mut plan = Plan::default();
    for c in matching {
        if !matches!(c.state, TcpState::Established | TcpState::CloseWait) {
            plan.skip(SKIP_STATE, c.state);
        } else if c.owners.is_empty() {
            plan.skip(SKIP_NO_OWNER, c.state);
        } else {
            plan.targets.push(c);
        }
    }
    plan
}

/// `ESTAB 127.0.0.1:41234 -> 127.0.0.1:5000 curl[1234]/fd 5`: one socket in a report line, names escaped.
pub fn socket_line(c: &Connection, snapshot: &Snapshot) -> String {
    let endpoint = |a: std::net::IpAddr, p: u16| match a {
        std::net::IpAddr::V4(a) => format!("{a}:{p}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{p}"),
    };
    let mut line = format!(
        "{} {} -> {}",
        c.state.label(),
        endpoint(c.local_addr, c.local_port),
        endpoint(c.peer_addr, c.peer_port)
    );
    for o in &c.owners {
        line.push_str(&format!(
            " {}[{}]/fd {}",
            escape(snapshot.comm(o.pid)),
            o.pid,
            o.fd
        ));
    }
    line
}

/// Whether an answer to `[y/N]` is a yes.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The filter of a command: the FILTER words parsed as one text; an empty filter (everything) is refused.
pub fn parse_filter(words: &[String], flags: &Filter) -> anyhow::Result<Filter> {
    let text = words.join(" ");
    let filter = Filter::parse(&text).with_context(|| format!("invalid filter '{text}'"))?;
    if filter.is_empty() && flags.is_empty() {
        anyhow::bail!(
            "refusing to act on every socket: give a filter such as 'port:443' or 'state:close-wait pid:1234'"
        );
    }
    Ok(filter)
}

/// Takes the snapshot the command acts on and the sockets both filters match.
fn snapshot_for(filter: &Filter, args: &Args) -> anyhow::Result<Snapshot> {
    let snapshot = collect::collect(&crate::run::collect_options(args, filter))?;
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    Ok(snapshot)
}

fn table_options(args: &Args) -> table::TableOptions {
    let is_tty = io::stdout().is_terminal();
    table::TableOptions {
        width: if is_tty {
            crossterm::terminal::size().ok().map(|(w, _)| w as usize)
        } else {
            None
        },
        color: match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        },
    }
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

/// Shows the plan: the table of targets, the skipped ones. Returns false when there is nothing to do.
fn preview(
    out: &mut impl Write,
    what: &str,
    plan: &Plan,
    snapshot: &Snapshot,
    filter_text: &str,
    args: &Args,
) -> anyhow::Result<bool> {
    if plan.targets.is_empty() {
        writeln!(out, "no sockets to {what} match '{filter_text}'")?;
        for line in plan.skipped_lines() {
            writeln!(out, "{line}")?;
        }
        return Ok(false);
    }
    let n = plan.targets.len();
    writeln!(out, "{n} {} to {what}:", plural(n))?;
    table::write(out, snapshot, &plan.targets, &table_options(args))?;
    for line in plan.skipped_lines() {
        writeln!(out, "{line}")?;
    }
    Ok(true)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "socket" } else { "sockets" }
}

/// `kwatch kill FILTER…`.
pub fn kill(kill: &KillArgs, args: &Args) -> anyhow::Result<()> {
    let flags = args.filter();
    let filter = parse_filter(&kill.filter, &flags)?;
    let snapshot = snapshot_for(&filter, args)?;
    let matching = select(&snapshot, &[&filter, &flags]);
    let plan = plan_kill(&matching);
    let mut out = io::stdout().lock();
    if !preview(
        &mut out,
        "kill",
        &plan,
        &snapshot,
        &kill.filter.join(" "),
        args,
    )? {
        return Ok(());
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
        return Ok(());
    }
    let results = kill_all(&plan.targets, &snapshot.namespaces, &args.proc_root);
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
    if let Some(Some(Err(fatal))) = results
        .iter()
        .find(|r| matches!(r, Some(Err(e)) if e.is_fatal()))
    {
        anyhow::bail!("{fatal}");
    }
    if failed > 0 {
        anyhow::bail!("could not kill '{failed}' of '{n}' sockets");
    }
    Ok(())
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

/// Turns keepalive on for one socket through the first owner whose fd can be duplicated.
pub fn enable_keepalive(
    reader: &mut Reader,
    conn: &Connection,
    v: KeepaliveValues,
) -> Result<crate::keepalive::KeepaliveSettings, EnableError> {
    let mut last = None;
    for owner in &conn.owners {
        match keepalive::enable(reader, *owner, conn.inode, v) {
            Ok(read) => return Ok(read),
            // Setting failed on the shared socket: another owner's fd is the same socket.
            Err(e @ EnableError::Set { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(EnableError::Set {
        option: "SO_KEEPALIVE",
        source: io::Error::other("no owning process known"),
    }))
}

/// How a read-back compares with what was set: `keepalive on, idle 60s intvl 10s cnt 5`, plus what differs.
pub fn readback_text(v: KeepaliveValues, read: &crate::keepalive::KeepaliveSettings) -> String {
    let show = |x: Option<u32>| x.map_or("?".to_string(), |x| x.to_string());
    let mut text = format!(
        "keepalive {}, idle {}s intvl {}s cnt {}",
        match read.enabled {
            Some(true) => "on",
            Some(false) => "OFF",
            None => "?",
        },
        show(read.idle_s),
        show(read.intvl_s),
        show(read.cnt)
    );
    if !v.applied_in(read) {
        text.push_str(" (differs from what was set)");
    }
    if let Some(ms) = read.user_timeout_ms.filter(|ms| *ms > 0) {
        text.push_str(&format!(
            "; TCP_USER_TIMEOUT {ms} ms also applies: the connection may be reset sooner"
        ));
    }
    text
}

/// `kwatch keepalive FILTER…`.
pub fn keepalive(ka: &KeepaliveArgs, args: &Args) -> anyhow::Result<()> {
    if args.no_processes {
        anyhow::bail!("keepalive needs the owning processes: drop --no-processes");
    }
    let flags = args.filter();
    let filter = parse_filter(&ka.filter, &flags)?;
    let snapshot = snapshot_for(&filter, args)?;
    let matching = select(&snapshot, &[&filter, &flags]);
    let plan = plan_keepalive(&matching);
    let mut out = io::stdout().lock();
    let v = ka.values();
    let what = "change";
    if !preview(&mut out, what, &plan, &snapshot, &ka.filter.join(" "), args)? {
        return Ok(());
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
        return Ok(());
    }
    let mut reader = Reader::new();
    let mut failed = 0;
    let mut denied = false;
    for conn in &plan.targets {
        let line = socket_line(conn, &snapshot);
        match enable_keepalive(&mut reader, conn, v) {
            Ok(read) if v.applied_in(&read) => {
                writeln!(out, "on       {line}: {}", readback_text(v, &read))?
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
    writeln!(out, "keepalive on for {} of {n} {}", n - failed, plural(n))?;
    out.flush()?;
    if failed > 0 {
        let hint = if denied {
            ": duplicating another process's socket needs root or CAP_SYS_PTRACE"
        } else {
            ""
        };
        anyhow::bail!("could not turn keepalive on for '{failed}' of '{n}' sockets{hint}");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
