//! Exponential backoff with seeded jitter (KIP-580).
//!
//! As the Java client's `ExponentialBackoff` (3.7+): the n-th consecutive
//! failure waits `retry.backoff.ms * 2^n`, capped at `retry.backoff.max.ms`,
//! scaled by a random factor in `[0.8, 1.2]`. The random factor comes from the
//! engine's seeded [`Rng`], so a schedule replays exactly.

use std::time::Duration;

use crate::rng::Rng;

/// Relative jitter applied to every backoff (Java: `RETRY_BACKOFF_JITTER` 0.2).
const JITTER: f64 = 0.2;

/// Consecutive-failure counter that yields the next delay.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempts: 0,
        }
    }

    /// The delay before the next retry; counts one more failure.
    pub fn next_delay(&mut self, rng: &mut Rng) -> Duration {
        let exp = self.attempts.min(31);
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .initial
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max)
            .min(self.max);
        let factor = 1.0 - JITTER + 2.0 * JITTER * rng.next_unit();
        base.mul_f64(factor)
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Consecutive failures counted so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let mut rng = Rng::new(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let expected = [100u64, 200, 400, 800, 1000, 1000];
        for base in expected {
            let d = b.next_delay(&mut rng).as_secs_f64() * 1000.0;
            let base = base as f64;
            assert!(
                d >= base * 0.8 - 1e-6 && d <= base * 1.2 + 1e-6,
                "{d} vs {base}"
            );
        }
        b.reset();
        let d = b.next_delay(&mut rng);
        assert!(d <= Duration::from_millis(120));
    }

    #[test]
    fn jitter_is_reproducible_from_the_seed() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
            (0..5).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
