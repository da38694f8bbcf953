//! The interactive view refuses to start without a terminal and says what to use instead.

use assert_cmd::Command;
use predicates::str::contains;

#[test]
fn without_a_terminal_the_tui_suggests_once() {
    // assert_cmd pipes stdout, so it is not a terminal.
    Command::cargo_bin("kwatch")
        .expect("kwatch binary")
        .assert()
        .failure()
        .stderr(contains(
            "kwatch needs a terminal for the interactive view; use --once",
        ));
}
