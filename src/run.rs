//! Runs what the command line asked for: the flags resolved once, then one mode.

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::Args;
use crate::config::{self, Config, Mode};
use crate::filter::Filter;
use crate::{act, exit, generate, once, serve, tui, watch};

/// Entry point of the binary: see [`exit::exit_code`] for what each outcome exits with.
pub fn main() -> ExitCode {
    let args = Args::parse();
    // Every mode may hold many fds: the live view's /proc scan, the exporter's connections.
    crate::rlimit::raise_nofile();
    exit::exit_code(run(&args))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = Config::new(args);
    match config::mode(args) {
        Mode::Serve(serve) => serve::run(serve, &config),
        Mode::Kill(kill) => act::kill(kill, &config),
        Mode::Keepalive(ka) => act::keepalive(ka, &config),
        Mode::Generate(g) => generate::run(g, Args::command()),
        Mode::Once { json } => once::run(&config, json),
        Mode::Watch { ndjson } => watch::run(&config, ndjson, &mut io::stdout().lock()),
        Mode::Live => tui::run(tui::Config {
            pace: config.pace.clone(),
            // The live view collects everything: its filter starts from the flags but `/` may widen it later.
            collect: config.collect_options(&Filter::default()),
            filter: config.filter.clone(),
            color: config.live_color(),
        }),
    }
}
