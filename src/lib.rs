//! kwatch: every TCP socket with its timer, probe count and owning processes, and which ones are stuck.

// Pedantic lints are on for the library and the binary (CI denies warnings); the integration tests in tests/ are
// separate crates and stay on the default lints, since their fixtures and asserts gain little from them.
#![warn(clippy::pedantic)]
// Return values here are data the caller plainly uses; #[must_use] on hundreds of getters would be noise.
#![allow(clippy::must_use_candidate)]
// Docs name kernel fields, flags and files (tcpi_rtt, SO_KEEPALIVE, /proc/net/tcp) in prose, not as code items.
#![allow(clippy::doc_markdown)]
// Errors are anyhow/thiserror values whose messages say what failed; an # Errors section per fn would repeat them.
#![allow(clippy::missing_errors_doc, clippy::missing_panics_doc)]
// Casts between kernel/ABI integer widths (u32 jiffies, i32 fds, u8 states, usize counts) are deliberate and
// range-checked where it matters; From/TryFrom at every netlink and /proc field would obscure the layout.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
// Counts shown as percentages and rates are far below 2^52, where f64 is exact.
#![allow(clippy::cast_precision_loss)]
// Long functions are the render and dispatch tables, read top to bottom; splitting them scatters one screen.
#![allow(clippy::too_many_lines)]
// Names like rtt/rto, src/dst and ns/ms follow the kernel's names for paired fields.
#![allow(clippy::similar_names)]
// Option structs mirror independent command-line flags and kernel booleans, not a hidden state machine.
#![allow(clippy::struct_excessive_bools)]
// Local type aliases and consts sit beside the one table or loop that uses them, rather than far above it.
#![allow(clippy::items_after_statements)]
// push_str(&format!(..)) reads plainly; write! into a String would add an infallible Result to ignore at each site.
#![allow(clippy::format_push_string)]
// Handlers take their message (an Action, a channel, a config) by value as dispatched, like the event loop hands it.
#![allow(clippy::needless_pass_by_value)]

/// One line on stderr that cannot fell a daemon (`kwatch serve`, `kwatch record`): `eprintln!` panics when stderr
/// is a pipe whose reader is gone (a supervisor restarted, `kwatch serve 2>&1 | head`); here only the line is lost.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

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
pub mod heap;
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
