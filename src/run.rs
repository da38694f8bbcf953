//! Runs what the command line asked for: the flags resolved once, then one mode.

use std::io;
use std::process::ExitCode;

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
        Mode::Once { json } => once::run(&config, json),
        Mode::Watch { ndjson } => watch::run(&config, ndjson, &mut io::stdout().lock()),
        Mode::Record(rec) => record::run(rec, &config),
        Mode::ReplayOnce { dir, at_ms, json } => {
            replay::once(dir, at_ms, json, &config, &mut stdout())
        }
        Mode::ReplayEvents {
            dir,
            from_ms,
            to_ms,
            ndjson,
        } => replay::events(dir, (from_ms, to_ms), ndjson, &config, &mut stdout()),
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

/// Standard output, buffered for the reports.
fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(1 << 16, io::stdout().lock())
}
