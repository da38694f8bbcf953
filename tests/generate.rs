//! `kwatch generate`: the man pages render in `man` without a warning and list the filter terms of `kill` and
//! `keepalive`; the bash completion, loaded by a real bash, completes `kwatch --sta` to `--state`; zsh and fish
//! scripts are produced. Needs man-db and bash (skipped with a reason without them, failing in CI).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{KWATCH, must_run_privileged};

/// `kwatch ARGS`, which must succeed.
fn kwatch(args: &[&str]) -> Output {
    let out = common::kwatch(None, args);
    assert!(
        out.status.success(),
        "kwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `tool` runs (`tool --version`); prints why not and returns false, except in CI where it panics.
fn can_run(test: &str, tool: &str, package: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if runs {
        return true;
    }
    let reason = format!("'{tool}' not found (apt-get install {package})");
    if must_run_privileged() {
        panic!("{test}: must run in CI but cannot: {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

fn man_pages(dir: &Path) -> Vec<String> {
    kwatch(&["generate", "man", dir.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn one_man_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet is created.
    let names = man_pages(&dir.path().join("man1"));
    assert_eq!(
        names,
        [
            "kwatch-generate.1",
            "kwatch-keepalive.1",
            "kwatch-kill.1",
            "kwatch-record.1",
            "kwatch-replay.1",
            "kwatch-serve.1",
            "kwatch.1"
        ]
    );
}

#[test]
fn man_pages_render_without_warnings() {
    if !can_run("man_pages_render_without_warnings", "man", "man-db") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in man_pages(dir.path()) {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.path().join(&name))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{name}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let title = name.trim_end_matches(".1").to_uppercase();
        assert!(text.starts_with(&format!("{title}(1)")), "{name}:\n{text}");
        assert!(text.contains("OPTIONS"), "{name}:\n{text}");
    }
}

/// The terms `Filter::parse` accepts, as its error for an unknown term lists them.
fn filter_terms() -> Vec<String> {
    let err = kwatch::filter::Filter::parse("nosuchterm:1")
        .unwrap_err()
        .to_string();
    let list = err.split("expected ").nth(1).unwrap();
    let terms: Vec<String> = list
        .split([',', ' '])
        .filter(|t| !t.is_empty() && *t != "or")
        .map(str::to_string)
        .collect();
    assert!(terms.len() >= 10, "{err}");
    terms
}

#[test]
fn kill_and_keepalive_pages_list_every_filter_term() {
    let dir = tempfile::tempdir().unwrap();
    man_pages(dir.path());
    for page in ["kwatch-kill.1", "kwatch-keepalive.1"] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap();
        // The table of terms: the lines kept as they are (.nf), each a term or several (`4, ipv4, 6, ipv6`,
        // `comm:nginx, or bare nginx`) ahead of its meaning.
        let table: Vec<&str> = roff
            .split(".nf\n")
            .skip(1)
            .flat_map(|block| block.split(".fi\n").next().unwrap().lines())
            .flat_map(|line| line.split("  ").next().unwrap().split(", "))
            .collect();
        for term in filter_terms() {
            assert!(
                table.iter().any(|t| t.starts_with(&term)),
                "{page} does not list the filter term '{term}' in {table:?}"
            );
        }
    }
}

#[test]
fn bash_completes_a_long_flag() {
    if !can_run("bash_completes_a_long_flag", "bash", "bash") {
        return;
    }
    let script = String::from_utf8(kwatch(&["generate", "completions", "bash"]).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kwatch.bash");
    std::fs::write(&file, script).unwrap();
    // What bash does on Tab after `kwatch --sta` (or after a subcommand), without a terminal: set the completion
    // variables, call the function `complete -p kwatch` names, print what it put in COMPREPLY.
    let complete = |line: &str| -> Vec<String> {
        let program = r#"
            source "$1"
            func=$(complete -p kwatch | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
            [ -n "$func" ] || { echo "no completion function for kwatch" >&2; exit 1; }
            COMP_LINE=$2
            COMP_POINT=${#COMP_LINE}
            read -r -a COMP_WORDS <<< "$COMP_LINE"
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            "$func" kwatch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", program, "bash"])
            .arg(&file)
            .arg(line)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete("kwatch --sta"), ["--state"]);
    assert_eq!(complete("kwatch kill --dry"), ["--dry-run"]);
    assert_eq!(complete("kwatch serve --pid-l"), ["--pid-label"]);
    assert!(complete("kwatch ke").contains(&"keepalive".to_string()));
}

#[test]
fn zsh_and_fish_scripts_name_the_flags() {
    let zsh = String::from_utf8(kwatch(&["generate", "completions", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef kwatch"), "{zsh}");
    let fish = String::from_utf8(kwatch(&["generate", "completions", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c kwatch") && fish.contains("-l state"));
}

#[test]
fn an_unknown_shell_is_refused() {
    let out = Command::new(KWATCH)
        .args(["generate", "completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tcsh'"));
}
