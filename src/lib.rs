//! kwatch: every TCP socket with its timer, probe count and owning processes, and which ones are stuck.

pub mod act;
pub mod analyze;
pub mod cli;
pub mod collect;
pub mod diag;
pub mod duration;
pub mod escape;
pub mod events;
pub mod filter;
pub mod format;
pub mod generate;
pub mod ghost;
pub mod model;
pub mod netns;
pub mod output;
pub mod pace;
pub mod parallel;
pub mod proc;
pub mod rlimit;
pub mod run;
pub mod serve;
pub mod sockopt;
pub mod sysctl;
pub mod tui;
