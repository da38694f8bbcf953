//! Running a helper program (ip, ss, tmux) for its output, its stderr in the error when it fails.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Runs `program args` with no stdin and returns its stdout; `package` names what installs it.
pub fn stdout_of(program: &str, args: &[&str], package: &str) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run '{program}' (install {package})"))?;
    if !out.status.success() {
        bail!(
            "'{program} {}' failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
