//! What `kwatch --version` and every `--help` print, so that a flag cannot vanish or change unnoticed.
//!
//! One insta snapshot per command (tests/snapshots/cli_help__*.snap). After an intended change of the command line,
//! review and accept the new text: `INSTA_UPDATE=always cargo test --test cli_help` (or `cargo insta review`),
//! then `git diff tests/snapshots`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::KWATCH;

/// `kwatch ARGS` at a fixed width of 100 columns; stdout, after checking it succeeded.
fn run(args: &[&str]) -> String {
    let out = Command::new(KWATCH)
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("LINES")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_of_kwatch() {
    insta::assert_snapshot!("kwatch", run(&["--help"]));
}

#[test]
fn help_of_serve() {
    insta::assert_snapshot!("serve", run(&["serve", "--help"]));
}

#[test]
fn help_of_kill() {
    insta::assert_snapshot!("kill", run(&["kill", "--help"]));
}

#[test]
fn help_of_keepalive() {
    insta::assert_snapshot!("keepalive", run(&["keepalive", "--help"]));
}

#[test]
fn help_of_record() {
    insta::assert_snapshot!("record", run(&["record", "--help"]));
}

#[test]
fn help_of_replay() {
    insta::assert_snapshot!("replay", run(&["replay", "--help"]));
}

#[test]
fn help_of_generate() {
    insta::assert_snapshot!("generate", run(&["generate", "--help"]));
}

#[test]
fn every_subcommand_has_a_help_snapshot() {
    // A new subcommand needs its own test above: the list below must name them all.
    let commands: Vec<String> = <kwatch::cli::Args as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(
        commands,
        ["serve", "kill", "keepalive", "record", "replay", "generate"]
    );
}

#[test]
fn version_names_the_commit_when_built_from_git() {
    let version = run(&["--version"]);
    let expected = format!("kwatch {}", env!("CARGO_PKG_VERSION"));
    let rest = version
        .trim_end()
        .strip_prefix(&expected)
        .unwrap_or_else(|| panic!("{version:?} does not start with {expected:?}"));
    // The tests run from the source tree: when it is a git checkout, the commit must be there.
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    match head {
        Some(head) => {
            let commit = rest
                .strip_prefix(" (")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("no commit in {version:?}"));
            assert!(commit.len() >= 7, "{version:?}");
            // HEAD may have moved since the build (a commit without a rebuild): the build script reruns then, so
            // the commit named is HEAD's.
            assert!(head.starts_with(commit), "{version:?} is not HEAD {head}");
        }
        None => assert_eq!(rest, "", "{version:?}"),
    }
}
