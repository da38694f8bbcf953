//! How often the live view and `--watch` refresh: every `--interval` when the user gave one; otherwise every
//! second, or less often on a host where a refresh is expensive, so that kwatch stays a light guest on the busy
//! server it inspects. At 200,000 sockets one refresh costs about 0.4 s of CPU, most of it the kernel filling
//! the dump, and every second that would be 40 % of a core: there the default waits longer instead.

use std::time::Duration;

/// The default refresh interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The share of one core refreshes may use when the user did not choose an interval.
pub const CPU_BUDGET: f64 = 0.25;

/// The longest the budget stretches the time between refreshes: the view is never staler than this for cost. A
/// million sockets cost about 2.5 s of CPU a refresh, a quarter of a core at one every 10 s; the cap leaves room
/// for a busier host before the header has to say the refreshes are over the budget.
pub const MAX_PERIOD: Duration = Duration::from_secs(30);

/// Periods are rounded up to this step, so that the one shown stays put while costs wobble.
const STEP_MS: u64 = 100;

/// When the next refresh starts, from what the last ones cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    interval: Duration,
    /// Share of one core refreshes may use; `None`: every `interval`, whatever a refresh costs.
    budget: Option<f64>,
    /// CPU time of a steady refresh, smoothed; `None` until one was measured.
    cost: Option<Duration>,
    /// The first refresh's cost, used until a later one is measured.
    first: Option<Duration>,
    /// Refreshes recorded so far.
    refreshes: u64,
}

impl Pace {
    /// Every `interval` (the user chose it), however much a refresh costs.
    pub fn fixed(interval: Duration) -> Pace {
        Pace {
            interval,
            budget: None,
            cost: None,
            first: None,
            refreshes: 0,
        }
    }

    /// Every `interval`, or less often, so that refreshes use at most `budget` of one core.
    pub fn budgeted(interval: Duration, budget: f64) -> Pace {
        Pace {
            budget: Some(budget),
            ..Pace::fixed(interval)
        }
    }

    /// From `--interval` and `--cpu-budget` (a share of one core, 0.25 for 25 %): an interval given alone is kept
    /// as it is; otherwise the interval (or the default) within the budget (or [`CPU_BUDGET`]).
    pub fn from_flags(interval: Option<Duration>, budget: Option<f64>) -> Pace {
        match (interval, budget) {
            (Some(interval), None) => Pace::fixed(interval),
            (interval, budget) => Pace::budgeted(
                interval.unwrap_or(DEFAULT_INTERVAL),
                budget.unwrap_or(CPU_BUDGET),
            ),
        }
    }

    /// The interval refreshes keep when they are cheap.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records the CPU time one refresh took. The first only sets a provisional cost until the second is in:
    /// it reads every process and every socket's options, which later refreshes remember, so it overstates the
    /// cost, but a million sockets refreshed every second until a warm refresh was measured took a third of a
    /// core for the first 20 s. Later ones are smoothed, half the old cost and half the new, so that one slow
    /// refresh does not double the wait.
    pub fn record(&mut self, cpu: Duration) {
        self.refreshes += 1;
        if self.refreshes == 1 {
            self.first = Some(cpu);
            return;
        }
        self.cost = Some(match self.cost {
            Some(old) => (old + cpu) / 2,
            None => cpu,
        });
    }

    /// Time from the start of one refresh to the start of the next.
    pub fn period(&self) -> Duration {
        let (Some(budget), Some(cost)) = (self.budget, self.cost.or(self.first)) else {
            return self.interval;
        };
        if budget <= 0.0 {
            return self.interval;
        }
        let needed = cost.as_secs_f64() / budget;
        if needed <= self.interval.as_secs_f64() {
            return self.interval;
        }
        let ms = (needed * 1000.0).ceil() as u64;
        let stepped = Duration::from_millis(ms.div_ceil(STEP_MS) * STEP_MS);
        stepped.min(MAX_PERIOD.max(self.interval))
    }

    /// The period, when the budget made it longer than the interval (for the header to say so).
    pub fn stretched(&self) -> Option<Stretch> {
        let period = self.period();
        (period > self.interval).then(|| Stretch {
            period,
            over_budget: self.over_budget(period),
        })
    }

    /// Whether refreshes every `period` still cost more than the budget: the period is at [`MAX_PERIOD`] and a
    /// refresh costs more than the budget's share of it (over 7.5 s of CPU a refresh at the default budget).
    fn over_budget(&self, period: Duration) -> bool {
        match (self.budget, self.cost.or(self.first)) {
            (Some(budget), Some(cost)) if !period.is_zero() => {
                cost.as_secs_f64() / period.as_secs_f64() > budget
            }
            _ => false,
        }
    }
}

/// Refreshes less often than the interval, because of the CPU budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Time from the start of one refresh to the start of the next.
    pub period: Duration,
    /// Even so, refreshes use more than the budget: the period is capped at [`MAX_PERIOD`].
    pub over_budget: bool,
}

/// CPU time this process has used so far, all threads (a refresh runs on several).
pub fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn cheap_refreshes_keep_the_interval() {
        let mut pace = Pace::budgeted(SEC, 0.25);
        for _ in 0..5 {
            pace.record(ms(50));
        }
        assert_eq!(pace.period(), SEC);
        assert_eq!(pace.stretched(), None);
    }

    #[test]
    fn expensive_refreshes_wait_long_enough_to_stay_within_the_budget() {
        let mut pace = Pace::budgeted(SEC, 0.25);
        // The first, cold refresh sets a provisional pace (1.5 s at a quarter of a core: every 6 s) ...
        pace.record(ms(1500));
        assert_eq!(pace.period(), ms(6000));
        // ... which the first warm one replaces.
        pace.record(ms(450));
        // 450 ms of CPU per refresh at a quarter of a core: one every 1.8 s.
        assert_eq!(pace.period(), ms(1800));
        assert_eq!(
            pace.stretched(),
            Some(Stretch {
                period: ms(1800),
                over_budget: false
            })
        );
        // Steady cost within the budget at that period.
        assert!(ms(450).as_secs_f64() / pace.period().as_secs_f64() <= 0.25);
    }

    #[test]
    fn costs_are_smoothed_and_the_period_rounded_up_to_a_step() {
        let mut pace = Pace::budgeted(SEC, 0.25);
        pace.record(SEC);
        pace.record(ms(400));
        pace.record(ms(500)); // smoothed: 450 ms
        assert_eq!(pace.period(), ms(1800));
        pace.record(ms(452)); // 451 ms -> 1.804 s -> 1.9 s
        assert_eq!(pace.period(), ms(1900));
        // Cheap again: back to the interval within a few refreshes.
        for _ in 0..8 {
            pace.record(ms(10));
        }
        assert_eq!(pace.period(), SEC);
    }

    #[test]
    fn a_million_sockets_stretch_the_period_past_5_s_within_the_budget() {
        // A refresh at a million sockets costs about 2.5 s of CPU: one every 10 s keeps to a quarter of a core.
        let mut pace = Pace::budgeted(SEC, 0.25);
        pace.record(ms(9000));
        pace.record(ms(2500));
        assert_eq!(pace.period(), ms(10_000));
        assert_eq!(
            pace.stretched(),
            Some(Stretch {
                period: ms(10_000),
                over_budget: false
            })
        );
        assert!(ms(2500).as_secs_f64() / pace.period().as_secs_f64() <= 0.25);
    }

    #[test]
    fn the_stretch_is_capped() {
        let mut pace = Pace::budgeted(SEC, 0.25);
        pace.record(SEC);
        pace.record(ms(10_000));
        assert_eq!(pace.period(), MAX_PERIOD);
        // 10 s of CPU every 30 s is a third of a core: the pace says it is over the budget, not within it.
        assert_eq!(
            pace.stretched(),
            Some(Stretch {
                period: MAX_PERIOD,
                over_budget: true
            })
        );
        // An interval longer than the cap is kept as it is.
        let mut slow = Pace::budgeted(ms(40_000), 0.25);
        slow.record(SEC);
        slow.record(ms(10_000));
        assert_eq!(slow.period(), ms(40_000));
    }

    #[test]
    fn a_chosen_interval_is_kept_whatever_a_refresh_costs() {
        let mut pace = Pace::from_flags(Some(ms(500)), None);
        pace.record(SEC);
        pace.record(ms(900));
        assert_eq!(pace.period(), ms(500));
        assert_eq!(pace.stretched(), None);
        assert_eq!(
            Pace::from_flags(None, None),
            Pace::budgeted(SEC, CPU_BUDGET)
        );
        // A budget given keeps the interval as the shortest period.
        assert_eq!(
            Pace::from_flags(Some(ms(500)), Some(0.1)),
            Pace::budgeted(ms(500), 0.1)
        );
        assert_eq!(
            Pace::from_flags(None, Some(0.05)),
            Pace::budgeted(SEC, 0.05)
        );
    }

    #[test]
    fn process_cpu_moves_forward() {
        let before = process_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu() > before);
    }
}
