//! The `kwatch` binary: parse the command line, run, map errors to an exit code.

// Pedantic lints as for the library (src/lib.rs), where the allowed families are justified.
#![warn(clippy::pedantic)]

fn main() -> std::process::ExitCode {
    kwatch::run::main()
}
