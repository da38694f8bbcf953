//! `--once`: one snapshot to stdout, as the table or as one JSON document.

use std::io::Write;
use std::time::Instant;

use crate::collect;
use crate::config::Config;
use crate::model::Connection;
use crate::output::{json, table};

pub fn run(config: &Config, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let filter = &config.filter;
    let snapshot = collect::collect(&config.collect_options(filter))?;
    let conns: Vec<&Connection> = snapshot
        .connections
        .iter()
        .filter(|c| filter.matches_in(c, &snapshot))
        .collect();
    for warning in &snapshot.warnings {
        eprintln!("kwatch: warning: {warning}");
    }
    if json {
        json::write(out, &snapshot, &conns, started.elapsed().as_micros() as u64)?;
    } else {
        table::write(out, &snapshot, &conns, &config.table_options())?;
    }
    out.flush()?;
    // The process ends here: freeing 200,000 connections one by one would only delay the exit.
    std::mem::forget(snapshot);
    Ok(())
}
