//! Pure: medians, ratios and the markdown tables the benchmark prints.

use std::fmt::Write;
use std::time::Duration;

use crate::measure::Sample;

/// The command every ratio is taken against (processes mapped, quadratically).
pub const SS_P: &str = "ss -tanop";
/// The second reference: the kernel dump alone, no process mapping.
pub const SS: &str = "ss -tano";

/// Everything measured for one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub samples: Vec<Sample>,
}

/// Summary statistics of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub runs: usize,
    pub wall: Duration,
    pub cpu: Duration,
    /// The kernel's part of `cpu` (system time), median.
    pub sys: Duration,
    /// Largest peak RSS over the runs, KiB.
    pub max_rss_kib: u64,
    /// A run was stopped at its cap: `wall` is the cap (the true time is longer), `cpu`, `sys` and
    /// `max_rss_kib` are what it had used by then (lower bounds).
    pub stopped: bool,
}

impl Row {
    pub fn stats(&self) -> Option<Stats> {
        if self.samples.is_empty() {
            return None;
        }
        Some(Stats {
            runs: self.samples.len(),
            wall: median(self.samples.iter().map(|s| s.wall).collect()),
            cpu: median(self.samples.iter().map(|s| s.cpu).collect()),
            sys: median(self.samples.iter().map(|s| s.sys).collect()),
            stopped: self.samples.iter().any(|s| s.timed_out),
            max_rss_kib: self
                .samples
                .iter()
                .map(|s| s.max_rss_kib)
                .max()
                .unwrap_or(0),
        })
    }
}

/// The median; the mean of the middle two for an even count; zero for none.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    match xs.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2,
    }
}

/// `12.3 ms`, `1.23 s`, `850 µs`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        let ms = s * 1e3;
        if ms >= 100.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms:.1} ms")
        }
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

pub fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "–".to_string();
    }
    let r = a / b;
    if r < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A ratio where either side may be a lower bound (a run stopped at its cap): `a` a lower bound makes the ratio
/// one (`> r×`), `b` a lower bound makes it an upper bound (`< r×`), both make it unknown.
fn bounded_ratio(a: f64, a_low: bool, b: f64, b_low: bool) -> String {
    match (a_low, b_low) {
        (false, false) => ratio(a, b),
        (true, false) => format!("> {}", ratio(a, b)),
        (false, true) => format!("< {}", ratio(a, b)),
        (true, true) => "–".to_string(),
    }
}

fn stats_of(rows: &[Row], label: &str) -> Option<Stats> {
    rows.iter().find(|r| r.label == label).and_then(Row::stats)
}

/// The comparison table: one line per command, ratios of wall time to `ss -tanop` and `ss -tano`, and of peak
/// RSS to `ss -tanop`. A command stopped at its cap shows `> cap` and bounds instead of ratios.
pub fn table(rows: &[Row]) -> String {
    let ss_p = stats_of(rows, SS_P);
    let ss = stats_of(rows, SS);
    let mut out = String::new();
    out.push_str(
        "| command | runs | wall (median) | CPU user+sys (median) | of which kernel (sys) | peak RSS | wall ÷ `ss -tanop` | wall ÷ `ss -tano` | RSS ÷ `ss -tanop` |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let Some(st) = row.stats() else {
            let _ = writeln!(out, "| `{}` | 0 | – | – | – | – | – | – | – |", row.label);
            continue;
        };
        let wall = st.wall.as_secs_f64();
        let at_least = if st.stopped { "≥ " } else { "" };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {at_least}{} | {at_least}{} | {at_least}{} | {} | {} | {} |",
            row.label,
            st.runs,
            if st.stopped {
                format!("> {} (stopped)", fmt_duration(st.wall))
            } else {
                fmt_duration(st.wall)
            },
            fmt_duration(st.cpu),
            fmt_duration(st.sys),
            fmt_mib(st.max_rss_kib),
            ss_p.map_or("–".into(), |b| bounded_ratio(
                wall,
                st.stopped,
                b.wall.as_secs_f64(),
                b.stopped
            )),
            ss.map_or("–".into(), |b| bounded_ratio(
                wall,
                st.stopped,
                b.wall.as_secs_f64(),
                b.stopped
            )),
            ss_p.map_or("–".into(), |b| bounded_ratio(
                st.max_rss_kib as f64,
                st.stopped,
                b.max_rss_kib as f64,
                b.stopped
            )),
        );
    }
    out
}

/// One target of issue 5 and whether this run meets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

/// The targets of issue 5 that apply at `n`, judged on `kwatch_json` (the label of `kwatch --once --json`).
pub fn targets(n: usize, rows: &[Row], kwatch_json: &str, lsof: &str) -> Vec<Target> {
    let mut out = Vec::new();
    let (Some(k), Some(ss_p), Some(ss)) = (
        stats_of(rows, kwatch_json),
        stats_of(rows, SS_P),
        stats_of(rows, SS),
    ) else {
        return out;
    };
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    if let Some(l) = stats_of(rows, lsof) {
        out.push(Target {
            what: format!("`{kwatch_json}` faster than `{lsof}`"),
            measured: format!("{:.2}× lsof", r(k.wall, l.wall)),
            met: k.wall < l.wall,
        });
    }
    // `ss -tanop` stopped at its cap: its time and RSS are lower bounds, so kwatch's ratios to it are upper
    // bounds (`< r`), which still prove a target met when they are below it.
    let bound = if ss_p.stopped { "< " } else { "" };
    if (10_000..100_000).contains(&n) {
        out.push(Target {
            what: "≤ 0.6× `ss -tanop` (target at N=10,000)".into(),
            measured: format!("{bound}{:.3}×", r(k.wall, ss_p.wall)),
            met: r(k.wall, ss_p.wall) <= 0.6,
        });
    }
    if n >= 100_000 {
        out.push(Target {
            what: "≤ 0.05× `ss -tanop` (target at N=100,000)".into(),
            measured: format!("{bound}{:.3}×", r(k.wall, ss_p.wall)),
            met: r(k.wall, ss_p.wall) <= 0.05,
        });
        out.push(Target {
            what: "≤ 2.0× `ss -tano` (target at N=100,000)".into(),
            measured: format!("{:.2}×", r(k.wall, ss.wall)),
            met: r(k.wall, ss.wall) <= 2.0,
        });
        let rss = k.max_rss_kib as f64 / (ss_p.max_rss_kib as f64).max(1.0);
        out.push(Target {
            what: "peak RSS ≤ 2× `ss -tanop` (target at N=100,000)".into(),
            measured: format!("{bound}{rss:.2}×"),
            met: rss <= 2.0,
        });
    }
    out
}

/// The targets of issue 19 on the commands' rows (N=500,000: a million sockets), judged on `kwatch_json`.
pub fn million_targets(rows: &[Row], kwatch_json: &str, lsof: &str) -> Vec<Target> {
    let mut out = Vec::new();
    let Some(k) = stats_of(rows, kwatch_json) else {
        return out;
    };
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    if let Some(ss) = stats_of(rows, SS) {
        out.push(Target {
            what: format!("`{kwatch_json}` wall ≤ 1.3× `{SS}`"),
            measured: format!(
                "{} ÷ {} = {:.2}×",
                fmt_duration(k.wall),
                fmt_duration(ss.wall),
                r(k.wall, ss.wall)
            ),
            met: r(k.wall, ss.wall) <= 1.3,
        });
    }
    out.push(Target {
        what: format!("`{kwatch_json}` peak RSS ≤ 200 MiB"),
        measured: fmt_mib(k.max_rss_kib),
        met: k.max_rss_kib <= 200 * 1024,
    });
    if let Some(l) = stats_of(rows, lsof) {
        out.push(Target {
            what: format!("`{kwatch_json}` ≤ 0.2× `{lsof}`"),
            measured: format!(
                "{} ÷ {} = {:.2}×",
                fmt_duration(k.wall),
                fmt_duration(l.wall),
                r(k.wall, l.wall)
            ),
            met: r(k.wall, l.wall) <= 0.2,
        });
    }
    out
}

/// Issue 19's targets for `kwatch record` at a million sockets: its own CPU per refresh (over a projected day)
/// at most 10 % of the snapshot's, and a steady day's store at most 500 MB.
pub fn record_targets(own: Duration, snapshot: Duration, day_bytes: u64) -> Vec<Target> {
    let share = own.as_secs_f64() / snapshot.as_secs_f64().max(1e-9);
    vec![
        Target {
            what: "`kwatch record`: its own CPU per refresh ≤ 10 % of the snapshot's".into(),
            measured: format!(
                "{} ÷ {} = {:.1} %",
                fmt_duration(own),
                fmt_duration(snapshot),
                share * 100.0
            ),
            met: share <= 0.10,
        },
        Target {
            what: "`kwatch record`: a steady day's store ≤ 500 MB (default pace, projected)".into(),
            measured: format!("{:.0} MB", day_bytes as f64 / 1e6),
            met: day_bytes <= 500_000_000,
        },
    ]
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---:|---|\n");
    for t in targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            t.what,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn row(label: &str, walls: &[u64], rss: u64) -> Row {
        Row {
            label: label.into(),
            samples: walls
                .iter()
                .map(|w| Sample {
                    wall: ms(*w),
                    cpu: ms(*w / 2),
                    sys: ms(1),
                    max_rss_kib: rss,
                    status: 0,
                    timed_out: false,
                })
                .collect(),
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(
            median(vec![ms(4), ms(1), ms(3), ms(2)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(vec![]), Duration::ZERO);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(fmt_duration(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(fmt_duration(ms(185)), "185 ms");
        assert_eq!(fmt_duration(ms(28_500)), "28.50 s");
    }

    #[test]
    fn table_has_ratios_to_both_references() {
        let rows = vec![
            row("kwatch --once --json", &[10, 12, 11], 4096),
            row(SS_P, &[100, 100], 2048),
            row(SS, &[20], 1024),
            row("lsof -nP -iTCP", &[], 0),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| `kwatch --once --json` | 3 | 11.0 ms | 5.0 ms | 1.0 ms | 4.0 MiB | 0.11× | 0.55× | 2.00× |"),
            "{t}"
        );
        assert!(t.contains("| `ss -tanop` | 2 | 100 ms |"), "{t}");
        assert!(t.contains("| `lsof -nP -iTCP` | 0 | – |"), "{t}");
    }

    #[test]
    fn a_command_stopped_at_its_cap_gives_bounds_not_ratios() {
        let mut stopped = row(SS_P, &[60_000], 400_000);
        stopped.samples[0].timed_out = true;
        let rows = vec![
            row("kwatch --once --json", &[3000], 300_000),
            stopped,
            row(SS, &[2000], 8000),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| 293.0 MiB | < 0.050× | 1.50× | < 0.75× |"),
            "{t}"
        );
        assert!(
            t.contains("| `ss -tanop` | 1 | > 60.00 s (stopped) | ≥ 30.00 s |"),
            "{t}"
        );
        assert!(t.contains("| – | > 30.00× | – |"), "{t}");
        let big = targets(500_000, &rows, "kwatch --once --json", "lsof -nP -iTCP");
        assert_eq!(big[0].measured, "< 0.050×");
        assert!(big[0].met);
    }

    #[test]
    fn targets_depend_on_n() {
        let rows = vec![
            row("kwatch --once --json", &[50], 60_000),
            row(SS_P, &[1000], 38_000),
            row(SS, &[40], 2000),
            row("lsof -nP -iTCP", &[300], 9000),
        ];
        let small = targets(1000, &rows, "kwatch --once --json", "lsof -nP -iTCP");
        assert_eq!(small.len(), 1);
        assert!(small[0].met);
        let big = targets(100_000, &rows, "kwatch --once --json", "lsof -nP -iTCP");
        assert_eq!(big.len(), 4);
        assert!(big[1].met, "{big:?}");
        assert!(big[2].met, "{big:?}");
        assert!(big[3].met, "{big:?}");
        let mid = targets(10_000, &rows, "kwatch --once --json", "lsof -nP -iTCP");
        assert!(targets_table(&mid).contains("≤ 0.6×"));
    }

    #[test]
    fn record_targets_are_a_share_of_the_snapshot_and_a_day_of_bytes() {
        let t = record_targets(ms(150), ms(5000), 480_000_000);
        assert_eq!(t[0].measured, "150 ms ÷ 5.00 s = 3.0 %");
        assert!(t[0].met && t[1].met);
        assert_eq!(t[1].measured, "480 MB");
        let t = record_targets(ms(600), ms(5000), 890_000_000);
        assert!(!t[0].met && !t[1].met);
    }

    #[test]
    fn million_targets_compare_with_ss_tano_and_lsof() {
        let rows = vec![
            row("kwatch --once --json", &[2600], 250 * 1024),
            row(SS, &[2000], 8000),
            row("lsof -nP -iTCP", &[11_000], 480 * 1024),
        ];
        let t = million_targets(&rows, "kwatch --once --json", "lsof -nP -iTCP");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].measured, "2.60 s ÷ 2.00 s = 1.30×");
        assert!(t[0].met);
        assert_eq!(t[1].measured, "250.0 MiB");
        assert!(!t[1].met);
        assert_eq!(t[2].measured, "2.60 s ÷ 11.00 s = 0.24×");
        assert!(!t[2].met);
    }
}
