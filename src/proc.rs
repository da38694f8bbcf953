//! The /proc seam: which processes hold which socket inodes, with their names and users.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::model::{Owner, Process, UnreadableProcess};

/// Socket inode → owners, plus what is known of each owning process.
#[derive(Debug, Clone, Default)]
pub struct ProcMap {
    pub owners: HashMap<u64, Vec<Owner>>,
    pub processes: BTreeMap<u32, Process>,
    pub unreadable: Vec<UnreadableProcess>,
}

/// Scans `proc_root` (normally `/proc`); `only_pids` limits the scan to those processes.
pub fn map_inodes(_proc_root: &Path, _only_pids: Option<&[u32]>) -> ProcMap {
    unimplemented!("proc::map_inodes")
}
