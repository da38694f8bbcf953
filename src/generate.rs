//! The `generate` subcommand: man pages and shell completions rendered from the clap definitions.
//!
//! Packages run it at build time (`packaging/build-deb.sh`); `cargo install` users run it themselves
//! (docs/install.md). Rendering is pure ([`man_pages`], [`completions`]); [`run`] only writes the result.

use std::io::Write;
use std::path::Path;

use crate::cli::{Generate, GenerateArgs};
use anyhow::Context;
use clap_complete::Shell;
use roff::{Roff, bold, roman};

/// Does what `kwatch generate ...` asked, for the command line `cmd` (the whole of kwatch's).
pub fn run(args: &GenerateArgs, cmd: clap::Command) -> anyhow::Result<()> {
    match &args.what {
        Generate::Man { dir } => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory '{}'", dir.display()))?;
            for (name, page) in man_pages(cmd) {
                write_file(&dir.join(name), &page)?;
            }
            Ok(())
        }
        Generate::Completions { shell } => {
            let script = completions(cmd, *shell);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)?;
            out.flush()?;
            Ok(())
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write '{}'", path.display()))
}

/// The completion script of `shell` for `cmd`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

/// Every man page of `cmd`: its own (`kwatch.1`) and one per visible subcommand (`kwatch-serve.1`, ...), as
/// (file name, roff source).
pub fn man_pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = subcommands.iter().map(page_name).collect();
    // The footer names the program and version on every page, subcommands' included.
    let source = match cmd.get_version() {
        Some(version) => format!("{} {version}", cmd.get_name()),
        None => cmd.get_name().to_string(),
    };
    let mut pages = vec![(
        format!("{}.1", page_name(&cmd)),
        man_page(
            &cmd,
            &source,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
    )];
    let parent = page_name(&cmd);
    for sub in &subcommands {
        pages.push((
            format!("{}.1", page_name(sub)),
            man_page(sub, &source, &[parent.as_str()]),
        ));
    }
    pages
}

/// `kwatch`, `kwatch-serve`: the name clap gives a built subcommand, which is also the page's.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// One page: clap_mangen's title, name, synopsis, options and subcommands; the description and the text after
/// the options rendered here so that indented lines (examples, the filter terms) keep their lines; and a SEE
/// ALSO naming the related pages.
fn man_page(cmd: &clap::Command, source: &str, see_also: &[&str]) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page_name(cmd).to_uppercase())
        .source(source);
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let mut roff = Roff::default();
    if let Some(text) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        roff.control("SH", ["DESCRIPTION"]);
        blocks(&mut roff, &text.to_string());
    }
    let _ = roff.to_writer(&mut out);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        let _ = man.render_subcommands_section(&mut out);
    }
    let mut roff = Roff::default();
    if let Some(text) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        roff.control("SH", ["NOTES"]);
        blocks(&mut roff, &text.to_string());
    }
    if let Some(version) = cmd.get_version() {
        roff.control("SH", ["VERSION"]);
        roff.text([roman(format!("v{version}"))]);
    }
    if !see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        let mut line = Vec::new();
        for (i, name) in see_also.iter().enumerate() {
            if i > 0 {
                line.push(roman(", "));
            }
            line.push(bold(*name));
            line.push(roman("(1)"));
        }
        roff.text(line);
    }
    let _ = roff.to_writer(&mut out);
    out
}

/// Help text as roff: each unindented line is a paragraph; a run of indented lines (examples, a table of terms)
/// is kept line for line, indented, less the two spaces that mark it.
fn blocks(roff: &mut Roff, text: &str) {
    let mut in_block = false;
    for line in text.lines() {
        let indented = line.starts_with("  ");
        if indented && !in_block {
            roff.control("RS", ["4"]).control("nf", []);
            in_block = true;
        } else if !indented && in_block {
            roff.control("fi", []).control("RE", []);
            in_block = false;
        }
        if let Some(line) = line.strip_prefix("  ") {
            roff.text([roman(line)]);
        } else if !line.trim().is_empty() {
            roff.control("PP", []).text([roman(line)]);
        }
    }
    if in_block {
        roff.control("fi", []).control("RE", []);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn demo() -> Command {
        Command::new("demo")
            .version("1.2.3")
            .about("Shows things.")
            .arg(Arg::new("once").long("once").help("Print once."))
            .subcommand(
                Command::new("zap")
                    .about("Zaps.")
                    .long_about("Zaps things.\n\nTerms:\n  a:1   first\n  .b    starts with a dot")
                    .after_help("Needs root.\nExamples:\n  demo zap a:1"),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_subcommand_and_one_for_the_command() {
        let names: Vec<String> = man_pages(demo()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["demo.1", "demo-zap.1"]);
    }

    #[test]
    fn indented_lines_stay_lines_and_roff_controls_are_escaped() {
        let pages = man_pages(demo());
        let zap = String::from_utf8(pages[1].1.clone()).unwrap();
        assert!(zap.contains("\n.TH DEMO-ZAP 1  \"demo 1.2.3\" \n"), "{zap}");
        assert!(
            zap.contains(".RS 4\n.nf\na:1   first\n\\&.b    starts with a dot\n.fi\n.RE"),
            "{zap}"
        );
        assert!(
            zap.contains(".SH NOTES\n.PP\nNeeds root.\n.PP\nExamples:\n.RS 4\n.nf\ndemo zap a:1")
        );
        assert!(zap.contains(".SH \"SEE ALSO\"\n\\fBdemo\\fR(1)"), "{zap}");
        let demo = String::from_utf8(pages[0].1.clone()).unwrap();
        assert!(demo.contains("\\fBdemo\\-zap\\fR(1)"), "{demo}");
    }

    #[test]
    fn completions_name_the_flags() {
        let bash = String::from_utf8(completions(demo(), Shell::Bash)).unwrap();
        assert!(bash.contains("--once"), "{bash}");
        let zsh = String::from_utf8(completions(demo(), Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef demo"), "{zsh}");
    }
}
