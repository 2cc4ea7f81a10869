//! Exponential backoff with jitter and a cap: pure arithmetic, no clock.
//!
//! One schedule serves three places: how long a breaker stays open on each
//! re-open, how long to wait before restarting a crashed service actor, and
//! how long the recovery actor and retries wait between attempts. The n-th
//! delay (n from 0) is
//!
//! ```text
//! min(max, initial · multiplierⁿ) · (1 ± jitter), clamped to [0, max]
//! ```
//!
//! Jitter comes from a [`JitterSource`], so a seeded source replays a run.
//! This is Akka's BackoffSupervisor shape, with symmetric jitter so the mean
//! delay stays on the curve and the cap is never exceeded.

mod jitter;

pub use jitter::{JitterSource, SeededJitter};
use std::time::Duration;

/// An exponential schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
    /// Growth per attempt (≥ 1).
    pub multiplier: f64,
    /// Relative spread, 0 ≤ jitter < 1.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before the curve's jitter, for attempt `n` (0-based).
    pub fn nominal(&self, n: u32) -> Duration {
        let initial = self.initial.as_secs_f64();
        let max = self.max.as_secs_f64().max(initial);
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let grown = initial * self.multiplier.max(1.0).powi(exponent);
        seconds(grown.min(max), self.max)
    }

    /// The delay for attempt `n`, with jitter drawn from `source`.
    pub fn delay(&self, n: u32, source: &mut dyn JitterSource) -> Duration {
        let nominal = self.nominal(n).as_secs_f64();
        let spread = 1.0 + self.jitter * (2.0 * source.next_unit() - 1.0);
        seconds(
            (nominal * spread).min(self.max.as_secs_f64().max(self.initial.as_secs_f64())),
            self.max,
        )
    }

    /// The range [`Self::delay`] can return for attempt `n`.
    pub fn bounds(&self, n: u32) -> (Duration, Duration) {
        let nominal = self.nominal(n).as_secs_f64();
        let cap = self.max.as_secs_f64().max(self.initial.as_secs_f64());
        (
            seconds(nominal * (1.0 - self.jitter), self.max),
            seconds((nominal * (1.0 + self.jitter)).min(cap), self.max),
        )
    }
}

fn seconds(secs: f64, fallback: Duration) -> Duration {
    if secs.is_finite() && secs >= 0.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(fallback)
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::SeededJitter;

    fn kite_ticker() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    #[test]
    fn test_delay_when_seeded_then_grows_caps_and_stays_within_jitter() {
        let b = kite_ticker();
        let mut source = SeededJitter::new(42);
        let mut previous_nominal = Duration::ZERO;
        for n in 0..12 {
            let nominal = b.nominal(n);
            assert!(nominal >= previous_nominal, "nominal delays never shrink");
            previous_nominal = nominal;
            let expected = Duration::from_secs(2u64.pow(n).min(60));
            assert_eq!(nominal, expected, "attempt {n}");
            let (low, high) = b.bounds(n);
            let d = b.delay(n, &mut source);
            assert!(
                d >= low && d <= high,
                "attempt {n}: {d:?} outside {low:?}..{high:?}"
            );
            assert!(d <= b.max, "never above the cap");
        }
    }

    #[test]
    fn test_delay_when_same_seed_then_same_schedule() {
        let b = kite_ticker();
        let run = |seed| {
            let mut s = SeededJitter::new(seed);
            (0..8).map(|n| b.delay(n, &mut s)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn test_delay_when_huge_attempt_then_capped_not_overflowed() {
        let b = kite_ticker();
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(60));
    }
}
