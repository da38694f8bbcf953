//! Command-line arguments: clap derive, validation only, no I/O.
