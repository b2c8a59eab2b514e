//! Retry spacing for commits and fetches: the engine's KIP-580 [`Backoff`]
//! (`retry.backoff.ms × 2ⁿ` capped at `retry.backoff.max.ms`, ±20 % jitter)
//! with its own seeded [`Rng`], so commit retries neither disturb nor depend
//! on the group's other timers and still replay exactly from the seed.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::rng::Rng;

/// Consecutive-failure counter plus its jitter source.
#[derive(Clone, Debug)]
pub(crate) struct RetrySchedule {
    backoff: Backoff,
    rng: Rng,
}

impl RetrySchedule {
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            backoff: Backoff::new(initial, max),
            rng: Rng::new(seed),
        }
    }

    /// When to retry after one more failure at `now`.
    pub(crate) fn next_retry(&mut self, now: Instant) -> Instant {
        let delay = self.backoff.next_delay(&mut self.rng);
        now.checked_add(delay).unwrap_or(now)
    }

    /// Forget past failures (after a success).
    pub(crate) fn reset(&mut self) {
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_origin as base;

    #[test]
    fn doubles_within_jitter_caps_and_replays_from_the_seed() {
        let t0 = base();
        let mut a = RetrySchedule::new(Duration::from_millis(100), Duration::from_secs(1), 9);
        let mut b = a.clone();
        for base in [100f64, 200., 400., 800., 1000., 1000.] {
            let d = a.next_retry(t0).duration_since(t0).as_secs_f64() * 1000.0;
            assert!(
                d >= base * 0.8 - 1e-6 && d <= base * 1.2 + 1e-6,
                "{d} vs {base}"
            );
            assert_eq!(
                b.next_retry(t0).duration_since(t0).as_secs_f64() * 1000.0,
                d
            );
        }
        a.reset();
        assert!(a.next_retry(t0).duration_since(t0) <= Duration::from_millis(120));
    }
}
