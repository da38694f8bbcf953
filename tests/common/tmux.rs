//! A tmux server of a test's own, driven like a user at a terminal, and the check that kwatch left the terminal
//! as it found it.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(15);
pub const POLL: Duration = Duration::from_millis(50);

/// A tmux server of our own (its own socket name), killed when dropped, even when the test fails.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts a detached 160x50 session running a plain shell; `None` when tmux is not installed.
    pub fn start() -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            return None;
        }
        let tmux = Tmux {
            socket: format!("kwatch-test-{}", std::process::id()),
        };
        // A plain shell with a known prompt, and a TERM every terminfo database has.
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "160",
            "-y",
            "50",
            "env",
            "PS1=$ ",
            "sh",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(tmux)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    pub fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "main"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn display(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", "-t", "main", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Types text literally (no key-name lookup).
    pub fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "main", "-l", text]);
        assert!(
            out.status.success(),
            "send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Presses named keys: Enter, Tab, Escape, ...
    pub fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", "main", key]);
        assert!(
            out.status.success(),
            "send-keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Polls the pane until `ok` holds for its text; panics with the last capture at the deadline.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the pane shows:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls a tmux format until it equals `want`.
    pub fn wait_display(&self, format: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.display(format);
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {format} = '{want}' (is '{got}'); the pane shows:\n{}",
                    self.capture()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// After kwatch ended: the pane is back at the shell, out of the alternate screen, mouse off, and the tty is in
/// canonical mode with echo (not raw).
pub fn assert_terminal_restored(tmux: &Tmux, how: &str) {
    tmux.wait_display("#{pane_current_command}", "sh");
    tmux.wait_display("#{alternate_on}", "0");
    assert_eq!(
        tmux.display("#{mouse_any_flag}"),
        "0",
        "mouse reporting left on after {how}"
    );
    // Prefix each setting so that the typed command line itself cannot match.
    tmux.type_text(
        "clear; stty -a | tr ';' '\\n' | tr ' ' '\\n' | grep -x -e '-*icanon' -e '-*echo' | sed 's/^/tty:/'",
    );
    tmux.press("Enter");
    // Both lines, whichever their values: the pane may be captured between the two.
    let screen = tmux.wait_for("stty output", |s| {
        let words: Vec<&str> = s.split_whitespace().collect();
        words
            .iter()
            .any(|w| *w == "tty:icanon" || *w == "tty:-icanon")
            && words.iter().any(|w| *w == "tty:echo" || *w == "tty:-echo")
    });
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(
        words.contains(&"tty:icanon") && words.contains(&"tty:echo"),
        "tty not restored after {how}:\n{screen}"
    );
    assert!(
        !words.contains(&"tty:-icanon") && !words.contains(&"tty:-echo"),
        "tty left raw after {how}:\n{screen}"
    );
}
