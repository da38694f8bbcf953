//! A token bucket: at most `burst` requests at once, refilled by one every `interval` (the web config's
//! `rate_limit`).

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    burst: u32,
    tokens: u32,
    /// When the last token was added (or the bucket was last full).
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(interval: Duration, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            interval,
            burst,
            tokens: burst,
            refilled: now,
        }
    }

    /// Takes a token if one is left at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned =
            (elapsed.as_nanos() / self.interval.as_nanos().max(1)).min(u128::from(self.burst));
        if earned > 0 {
            self.tokens = (self.tokens + earned as u32).min(self.burst);
            self.refilled = if self.tokens == self.burst {
                now
            } else {
                self.refilled + self.interval * earned as u32
            };
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_one_per_interval() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Duration::from_secs(1), 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
        assert!(!b.take(t0 + Duration::from_millis(1500)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(100);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }
}
