//! `--profile`: runs `kwatch-bench-profile` (phase by phase, heap counted) in the benchmark's namespace, and
//! samples one `kwatch --once --json` with `perf record -e cpu-clock` (a software clock: no hardware counters
//! needed, so it works in a VM), then lists the functions that took the most samples, kernel ones included.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;

/// Functions listed from the perf profile, most samples first.
const TOP: usize = 30;

/// The markdown of both profiles. perf missing or refused leaves a line saying so.
pub fn run(kwatch: &Path, dir: &Path, stop: &AtomicBool) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?.with_file_name("kwatch-bench-profile");
    let (out, err) = (dir.join("profile.md"), dir.join("profile.err"));
    let s = crate::measure::run(
        &[exe.to_string_lossy().into()],
        &out,
        &err,
        Duration::from_secs(900),
        stop,
    )?;
    let mut md = if s.status == 0 && !s.timed_out {
        std::fs::read_to_string(&out).context("cannot read the profile")?
    } else {
        format!(
            "kwatch-bench-profile failed (status {}{}): {}\n",
            s.status,
            if s.timed_out {
                ", stopped after 900 s"
            } else {
                ""
            },
            std::fs::read_to_string(&err).unwrap_or_default().trim()
        )
    };
    md.push('\n');
    md.push_str(&perf(kwatch, dir, stop)?);
    Ok(md)
}

/// `perf record` of one `kwatch --once --json`, and its top functions by samples (self time).
fn perf(kwatch: &Path, dir: &Path, stop: &AtomicBool) -> anyhow::Result<String> {
    if !crate::which("perf") {
        return Ok(
            "perf is not installed: no sampled profile (apt-get install linux-perf).\n".into(),
        );
    }
    let data = dir.join("perf.data");
    let argv: Vec<String> = [
        "perf",
        "record",
        "-e",
        "cpu-clock",
        "-F",
        "999",
        "-o",
        &data.to_string_lossy(),
        "--",
        &kwatch.to_string_lossy(),
        "--once",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let err = dir.join("perf.err");
    let s = crate::measure::run(
        &argv,
        Path::new("/dev/null"),
        &err,
        Duration::from_secs(300),
        stop,
    )?;
    if s.status != 0 || s.timed_out {
        return Ok(format!(
            "perf record failed (status {}): {}\n",
            s.status,
            std::fs::read_to_string(&err).unwrap_or_default().trim()
        ));
    }
    let report_out = dir.join("perf.txt");
    let r = crate::measure::run(
        &[
            "perf",
            "report",
            "-i",
            &data.to_string_lossy(),
            "--stdio",
            "--no-children",
            "--sort",
            "dso,sym",
        ]
        .map(String::from),
        &report_out,
        &err,
        Duration::from_secs(300),
        stop,
    )?;
    let text = std::fs::read_to_string(&report_out).unwrap_or_default();
    if r.status != 0 || r.timed_out {
        return Ok(format!(
            "perf report failed (status {}): {}\n",
            r.status,
            std::fs::read_to_string(&err).unwrap_or_default().trim()
        ));
    }
    let rows = top_functions(&text);
    let kernel: f64 = rows_all(&text)
        .iter()
        .filter(|r| r.1.contains("kernel"))
        .map(|r| r.0)
        .sum();
    let mut md = format!(
        "### perf: `kwatch --once --json`, samples by function (cpu-clock at 999 Hz, every thread; under perf: wall {}, CPU {} with perf's own)\n\n\
         {:.1} % of the samples are in the kernel.\n\n| samples | where | function |\n|---:|---|---|\n",
        crate::report::fmt_duration(s.wall),
        crate::report::fmt_duration(s.cpu),
        kernel
    );
    for (pct, dso, sym) in rows.into_iter().take(TOP) {
        md.push_str(&format!("| {pct:.1} % | {dso} | `{sym}` |\n"));
    }
    Ok(md)
}

/// `perf report --stdio --sort dso,sym` lines: `    12.34%  kwatch  [.] kwatch::diag::parse`.
fn rows_all(text: &str) -> Vec<(f64, String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pct: f64 = it.next()?.strip_suffix('%')?.parse().ok()?;
            let dso = it.next()?.to_string();
            let rest: Vec<&str> = it.collect();
            // `[.]` (user) or `[k]` (kernel), then the symbol.
            let sym = rest.get(1..).map(|s| s.join(" ")).unwrap_or_default();
            Some((pct, dso, sym.replace('|', "\\|")))
        })
        .collect()
}

fn top_functions(text: &str) -> Vec<(f64, String, String)> {
    let mut rows = rows_all(text);
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn perf_report_lines_are_read() {
        let text = "# Samples: 4\n#\n    50.00%  [kernel.kallsyms]  [k] tcp_diag_dump\n    \
                    25.00%  kwatch             [.] kwatch::diag::parse::h123\n\n";
        let rows = top_functions(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            (50.0, "[kernel.kallsyms]".into(), "tcp_diag_dump".into())
        );
        assert_eq!(rows[1].2, "kwatch::diag::parse::h123");
    }
}
