//! kwatch-bench-spawn: runs one measured command and prints its `Sample` line.
//!
//! Separate from the harness and kept small on purpose: Linux carries the RSS high-water mark of the process that
//! spawns a command into that command's `ru_maxrss` (the mm replaced at exec counts), so a spawner that has
//! parsed a 100 MB JSON document would report that as the peak RSS of `ss`. This one stays near 1 MiB.
//!
//! Usage: `kwatch-bench-spawn TIMEOUT_MS STDOUT STDERR -- COMMAND ARGS...`

#[allow(dead_code)]
#[path = "measure.rs"]
mod measure;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn main() -> ExitCode {
    // Die with the harness; the command we start dies with us (PR_SET_PDEATHSIG in `measure::run`).
    // SAFETY: prctl with PR_SET_PDEATHSIG has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } == 1 {
        return ExitCode::from(2);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [timeout_ms, stdout, stderr, dashes, argv @ ..] = args.as_slice() else {
        eprintln!("usage: kwatch-bench-spawn TIMEOUT_MS STDOUT STDERR -- COMMAND ARGS...");
        return ExitCode::from(2);
    };
    let Ok(timeout_ms) = timeout_ms.parse::<u64>() else {
        eprintln!("kwatch-bench-spawn: invalid timeout '{timeout_ms}'");
        return ExitCode::from(2);
    };
    if dashes != "--" || argv.is_empty() {
        eprintln!("kwatch-bench-spawn: expected '--' and a command");
        return ExitCode::from(2);
    }
    let never = AtomicBool::new(false);
    match measure::run(
        argv,
        Path::new(stdout),
        Path::new(stderr),
        Duration::from_millis(timeout_ms),
        &never,
    ) {
        Ok(sample) => {
            println!("{}", sample.to_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kwatch-bench-spawn: {e:#}");
            ExitCode::from(2)
        }
    }
}
