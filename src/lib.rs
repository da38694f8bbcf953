//! kwatch: every TCP socket with its timer, probe count and owning processes, and which ones are stuck.

pub mod act;
pub mod analyze;
pub mod cli;
pub mod collect;
pub mod config;
pub mod diag;
pub mod duration;
pub mod escape;
pub mod events;
pub mod exit;
pub mod filter;
pub mod format;
pub mod generate;
pub mod held_dead;
pub mod model;
pub mod moment;
pub mod netns;
pub mod once;
pub mod output;
pub mod pace;
pub mod parallel;
pub mod proc;
pub mod record;
pub mod recording;
pub mod replay;
pub mod rlimit;
pub mod run;
pub mod serve;
pub mod sockopt;
pub mod sysctl;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tui;
pub mod watch;
