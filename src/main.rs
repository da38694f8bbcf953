//! The `kwatch` binary: parse the command line, run, map errors to an exit code.

fn main() -> std::process::ExitCode {
    kwatch::run::main()
}
