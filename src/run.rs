//! Runs what the command line asked for.
