//! Pure analysis: which connections are stuck and why, and the per-process rollup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Connection, Finding, FindingCode, Snapshot, TcpState};

/// When a socket counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// CLOSE_WAIT younger than this (judged from tcp_info) is not flagged.
    pub close_wait_after_ms: u64,
    /// ESTABLISHED without keepalive and idle longer than this is flagged `no_keepalive_idle`.
    pub idle_after_ms: u64,
    /// Retransmit timer with at least this many retransmits (or this much backoff) is flagged.
    pub retransmit_min: u32,
}

/// Findings for one socket.
pub fn find_stuck(_conn: &Connection, _t: &Thresholds) -> Vec<Finding> {
    unimplemented!("analyze::find_stuck")
}

/// Fills `findings` of every connection in the snapshot.
pub fn analyze(_snapshot: &mut Snapshot, _t: &Thresholds) {
    unimplemented!("analyze::analyze")
}

/// One process's sockets and findings, for the rollup (JSON `processes`, the TUI processes view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    pub user: Option<String>,
    pub sockets: u32,
    pub by_state: BTreeMap<TcpState, u32>,
    pub findings: BTreeMap<FindingCode, u32>,
    /// ESTABLISHED sockets with no timer pending (SO_KEEPALIVE off), of `by_state[established]`.
    pub established_without_keepalive: u32,
}

/// Per-process rollup over the given connections, worst first.
pub fn rollup<'a>(
    _snapshot: &Snapshot,
    _conns: impl IntoIterator<Item = &'a Connection>,
) -> Vec<ProcessSummary> {
    unimplemented!("analyze::rollup")
}
