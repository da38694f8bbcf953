//! Dump + /proc map + join + analysis: one `Snapshot`.

use std::path::PathBuf;

use crate::analyze::Thresholds;
use crate::diag::DumpRequest;
use crate::model::Snapshot;

/// Everything a snapshot needs to be taken.
#[derive(Debug, Clone)]
pub struct Options {
    pub request: DumpRequest,
    pub proc_root: PathBuf,
    /// Map processes at all (`false` skips the /proc scan).
    pub map_processes: bool,
    /// Limit the /proc scan to these pids (from `--pid`).
    pub only_pids: Option<Vec<u32>>,
    pub thresholds: Thresholds,
}

/// Takes one snapshot: kernel dump, process map, join, analysis.
pub fn collect(_opts: &Options) -> anyhow::Result<Snapshot> {
    unimplemented!("collect::collect")
}
