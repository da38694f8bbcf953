//! Runs what the command line asked for: the flags resolved once, then one mode.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::cli::Args;
use crate::config::{self, Config, Mode};
use crate::filter::Filter;
use crate::{act, exit, generate, once, record, replay, serve, tui, watch};

/// Entry point of the binary: see [`exit::exit_code`] for what each outcome exits with.
pub fn main() -> ExitCode {
    let args = Args::parse();
    // Every mode may hold many fds: the live view's /proc scan, the exporter's connections.
    crate::rlimit::raise_nofile();
    crate::heap::return_large_blocks();
    exit::exit_code(run(&args))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = Config::new(args);
    match config::mode(args)? {
        Mode::Serve(serve) => serve::run(serve, &config),
        Mode::Kill(kill) => act::kill(kill, &config),
        Mode::Keepalive(ka) => act::keepalive(ka, &config),
        Mode::Generate(g) => generate::run(g, Args::command()),
        Mode::Once { json } => once::run(&config, json, &mut stdout()?),
        Mode::Watch { ndjson } => watch::run(&config, ndjson, &mut io::stdout().lock()),
        Mode::Record(rec) => record::run(rec, &config),
        Mode::ReplayOnce { dir, at_ms, json } => {
            replay::once(dir, at_ms, json, &config, &mut stdout()?)
        }
        Mode::ReplayEvents {
            dir,
            from_ms,
            to_ms,
            ndjson,
        } => replay::events(dir, (from_ms, to_ms), ndjson, &config, &mut stdout()?),
        Mode::Live => tui::run(live(&config, None)),
        Mode::ReplayLive { dir, at_ms, tz } => tui::run(live(
            &config,
            Some(tui::replay::Source {
                dir: dir.to_path_buf(),
                at_ms,
                tz,
            }),
        )),
    }
}

/// What the live view needs, on the host or (`replay`) on a recording.
fn live(config: &Config, replay: Option<tui::replay::Source>) -> tui::Config {
    tui::Config {
        pace: config.pace.clone(),
        // The live view collects everything: its filter starts from the flags but `/` may widen it later.
        collect: config.collect_options(&Filter::default()),
        filter: config.filter.clone(),
        color: config.live_color(),
        replay,
    }
}

/// Standard output for the reports: its fd through a plain buffer. Rust's `Stdout` is line-buffered whatever it
/// writes to, so every write was searched for its last newline (`memrchr` over the whole document: 2.2 % of
/// `--once --json`'s samples at a million sockets, on the thread that writes).
fn stdout() -> anyhow::Result<io::BufWriter<File>> {
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("cannot write to standard output")?;
    Ok(io::BufWriter::with_capacity(1 << 16, File::from(fd)))
}
