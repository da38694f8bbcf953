//! Build script: the version string `kwatch --version` prints, with the git commit it was built from.
//!
//! `KWATCH_VERSION` is `0.1.0 (f9fd803)` when built from a git checkout of kwatch itself, or from a `cargo package`
//! tarball, whose `.cargo_vcs_info.json` names the commit it was packaged from; otherwise just `0.1.0`. Git is
//! asked only about this crate's own repository: a crate unpacked under a home directory that is itself a git
//! repository (dotfiles) must not claim that repository's commit. Nothing here can fail the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = git_commit(&manifest_dir).or_else(|| packaged_commit(&manifest_dir));
    match commit {
        Some(commit) => println!("cargo:rustc-env=KWATCH_VERSION={version} ({commit})"),
        None => println!("cargo:rustc-env=KWATCH_VERSION={version}"),
    }
}

/// Output of `git ARGS` run in `dir`, trimmed; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The short commit of HEAD when `dir` is the top of a git work tree, and the files whose change means a new
/// commit (HEAD, the branch's ref, packed refs) registered for a rerun.
fn git_commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // A linked worktree keeps HEAD in its own git dir and refs in the common one.
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { dir.join(p) }
    };
    let git_dir = absolute(git(dir, &["rev-parse", "--git-dir"])?);
    let common_dir = absolute(git(dir, &["rev-parse", "--git-common-dir"])?);
    let mut watch = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(common_dir.join(branch));
    }
    // A path that does not exist would rerun this script on every build.
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}

/// The commit `cargo package` recorded in `.cargo_vcs_info.json` (`{"git": {"sha1": "..."}}`), shortened.
fn packaged_commit(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after = info.split_once("\"sha1\"")?.1;
    let sha1: String = after
        .trim_start_matches([' ', ':', '"'])
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (sha1.len() >= 7).then(|| sha1[..7].to_string())
}
