//! Runs what the command line asked for: a snapshot to stdout, or the interactive view.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::cli::{Args, ColorChoice, Command, RecordArgs, ReplayArgs};
use crate::collect::{self, Options};
use crate::diag::{DumpRequest, PortFilter};
use crate::events;
use crate::filter::Filter;
use crate::model::{Connection, Family, TcpState};
use crate::output::{json, table};
use crate::tui;

/// Entry point of the binary: errors print one line (`kwatch: ...`) and exit 2 (`kill` and `keepalive`: 1, 2 or
/// 3, see [`crate::act`]); a closed pipe exits 0 quietly.
pub fn main() -> ExitCode {
    let args = Args::parse();
    // Every mode may hold many fds: the live view's /proc scan, the exporter's connections.
    crate::rlimit::raise_nofile();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kwatch: {}", error_line(&err));
            // `kill` and `keepalive` tell nothing to do (1) and a partial failure (3) apart from errors (2).
            ExitCode::from(
                err.downcast_ref::<crate::act::Unfinished>()
                    .map_or(2, |u| u.status),
            )
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let filter = args.filter();
    match &args.command {
        Some(Command::Serve(serve)) => return crate::serve::run(serve, &args),
        Some(Command::Kill(kill)) => return crate::act::kill(kill, &args),
        Some(Command::Keepalive(ka)) => return crate::act::keepalive(ka, &args),
        Some(Command::Record(rec)) => return record(rec, &args, filter),
        Some(Command::Replay(rep)) => return replay(rep, &args, filter),
        Some(Command::Generate(g)) => {
            return crate::generate::run(g, <Args as clap::CommandFactory>::command());
        }
        None => {}
    }
    if args.once {
        once(&args, &filter, &collect_options(&args, &filter))
    } else if args.watch {
        events::watch(
            &collect_options(&args, &filter),
            &filter,
            args.pace(),
            args.ndjson,
            &mut io::stdout().lock(),
        )
    } else {
        // The live view collects everything: its filter starts from the flags but `/` may widen it later.
        let options = collect_options(&args, &Filter::default());
        let mut config = tui::Config::new(args.pace(), options, filter);
        config.color &= args.color != ColorChoice::Never;
        tui::run(config)
    }
}

/// What to ask the kernel and /proc for: filters the kernel can apply (family, state, ports) go into the
/// request.
pub fn collect_options(args: &Args, filter: &Filter) -> Options {
    Options {
        request: DumpRequest {
            families: match filter.family {
                Some(f) => vec![f],
                None => vec![Family::Ipv4, Family::Ipv6],
            },
            states: state_mask(&filter.states),
            ports: PortFilter::new(&filter.ports, &filter.sports, &filter.dports),
        },
        proc_root: args.proc_root.clone(),
        map_processes: !args.no_processes,
        only_pids: (!filter.pids.is_empty()).then(|| filter.pids.clone()),
        thresholds: args.thresholds(),
        read_sockopts: !args.no_sockopt,
        netns: args.netns_scope(),
    }
}

/// The kernel's state bit mask for the requested states (all when none are named).
pub fn state_mask(states: &[TcpState]) -> u32 {
    if states.is_empty() {
        return u32::MAX;
    }
    states.iter().fold(0, |mask, s| {
        // The kernel lists embryonic connections as NEW_SYN_RECV request sockets.
        let extra = if *s == TcpState::SynRecv {
            1 << TcpState::NewSynRecv as u32
        } else {
            0
        };
        mask | 1 << *s as u32 | extra
    })
}

fn once(args: &Args, filter: &Filter, options: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let snapshot = collect::collect(options)?;
    let conns: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| filter.matches_in(c, &snapshot))
        .collect();
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if args.json {
        json::write(
            &mut out,
            &snapshot,
            &conns,
            started.elapsed().as_micros() as u64,
        )?;
    } else {
        table::write(&mut out, &snapshot, &conns, &table_options(args))?;
    }
    out.flush()?;
    // The process ends here: freeing 200,000 connections one by one would only delay the exit.
    std::mem::forget(snapshot);
    Ok(())
}

/// Width and colour of a table on stdout.
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

/// `kwatch record DIR`: the snapshot flags decide what is collected and kept.
fn record(rec: &RecordArgs, args: &Args, filter: Filter) -> anyhow::Result<()> {
    crate::record::record(&crate::record::RecordConfig {
        dir: rec.dir.clone(),
        options: collect_options(args, &filter),
        filter,
        pace: crate::pace::Pace::from_flags(rec.interval, rec.cpu_budget.map(|p| p / 100.0)),
        retention: crate::record::store::Retention {
            max_age_ms: rec.retain.as_millis() as u64,
            max_bytes: rec.max_size,
        },
        json_log: rec.json_log.clone(),
    })
}

/// `kwatch replay DIR --once | --events`: moments typed by the user are resolved in the local time zone.
fn replay(rep: &ReplayArgs, args: &Args, filter: Filter) -> anyhow::Result<()> {
    use crate::record::replay;
    let tz = jiff::tz::TimeZone::system();
    let now = crate::record::unix_ms();
    let resolve = |spec: &crate::record::time::TimeSpec| {
        spec.resolve(now, &tz)
            .map_err(|e| anyhow::anyhow!("invalid time: {e}"))
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    if rep.events {
        let cfg = replay::EventsConfig {
            dir: rep.dir.clone(),
            from_ms: rep.from.as_ref().map(resolve).transpose()?.unwrap_or(0),
            to_ms: rep.to.as_ref().map(resolve).transpose()?.unwrap_or(now),
            filter,
            ndjson: rep.ndjson,
        };
        if cfg.from_ms > cfg.to_ms {
            anyhow::bail!("invalid window: --from is after --to");
        }
        return replay::events(&cfg, &mut out);
    }
    let at_ms = rep.at.as_ref().map(resolve).transpose()?.unwrap_or(now);
    if !rep.once {
        // The store is opened before the terminal is taken: a missing or damaged one is an error line.
        replay::check(&rep.dir, at_ms)?;
        let mut config = tui::Config::new(args.pace(), collect_options(args, &filter), filter);
        config.replay = Some(crate::tui::replay::Source {
            dir: rep.dir.clone(),
            at_ms,
            tz,
        });
        return tui::run(config);
    }
    let cfg = replay::OnceConfig {
        dir: rep.dir.clone(),
        at_ms,
        filter,
        table: (!rep.json).then(|| table_options(args)),
    };
    replay::once(&cfg, &mut out)
}

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text the line already holds
/// (errors that print their source in their own message).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_names_each_cause_once() {
        let io = io::Error::from(io::ErrorKind::NotFound);
        let inner = crate::netns::NetnsError::Open {
            path: "/run/netns/x".into(),
            source: io,
        };
        let err = anyhow::Error::new(inner).context("taking a snapshot");
        let line = error_line(&err);
        assert_eq!(
            line,
            "taking a snapshot: cannot open network namespace '/run/netns/x': entity not found"
        );
        let plain = anyhow::anyhow!("outer").context("top");
        assert_eq!(error_line(&plain), "top: outer");
    }

    #[test]
    fn state_mask_names_the_kernel_bits() {
        assert_eq!(state_mask(&[]), u32::MAX);
        assert_eq!(state_mask(&[TcpState::Established]), 1 << 1);
        assert_eq!(
            state_mask(&[TcpState::CloseWait, TcpState::Listen]),
            1 << 8 | 1 << 10
        );
        assert_eq!(state_mask(&[TcpState::SynRecv]), 1 << 3 | 1 << 12);
    }
}
