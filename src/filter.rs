//! Pure filters on connections (port, pid, state, family, stuck), shared by the CLI and the TUI.

use crate::model::{Connection, Family, TcpState};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub ports: Vec<u16>,
    pub sports: Vec<u16>,
    pub dports: Vec<u16>,
    pub pids: Vec<u32>,
    pub states: Vec<TcpState>,
    pub stuck: bool,
    pub family: Option<Family>,
}

impl Filter {
    pub fn matches(&self, _c: &Connection) -> bool {
        unimplemented!("filter::matches")
    }
}
