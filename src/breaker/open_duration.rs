//! How long a breaker stays open, growing on each re-open.

use super::JitterSource;
use crate::backoff::Backoff;
use std::time::Duration;

/// Computes the open duration for the n-th consecutive re-open.
///
/// The first open lasts exactly `base` (the seed's timeout, so "5 minutes"
/// means five minutes). Each re-open without a clean close in between
/// multiplies it by `multiplier`, capped at `max`, then spreads it by up to
/// `±jitter` of itself, never below `base` nor above `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenDurationPolicy {
    /// The first open duration.
    pub base: Duration,
    /// The cap.
    pub max: Duration,
    /// Growth per re-open.
    pub multiplier: f64,
    /// Relative spread, 0–1.
    pub jitter: f64,
}

impl OpenDurationPolicy {
    fn schedule(&self) -> Backoff {
        Backoff {
            initial: self.base,
            max: self.max.max(self.base),
            multiplier: self.multiplier,
            jitter: self.jitter,
        }
    }

    /// The duration for re-open number `reopens` (0 for the first open).
    pub fn duration(&self, reopens: u32, jitter: &mut dyn JitterSource) -> Duration {
        if reopens == 0 {
            return self.base;
        }
        self.schedule().delay(reopens, jitter).max(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OpenDurationPolicy {
        OpenDurationPolicy {
            base: Duration::from_secs(60),
            max: Duration::from_secs(600),
            multiplier: 2.0,
            jitter: 0.1,
        }
    }

    #[test]
    fn test_duration_when_first_open_then_exactly_base() {
        let mut j = 0.99;
        assert_eq!(policy().duration(0, &mut j), Duration::from_secs(60));
    }

    #[test]
    fn test_duration_when_reopened_then_grows_within_jitter_and_caps() {
        let p = policy();
        let mut low = 0.0;
        let mut high = 0.999_999;
        let d1_low = p.duration(1, &mut low).as_secs_f64();
        let d1_high = p.duration(1, &mut high).as_secs_f64();
        assert!((107.9..=108.1).contains(&d1_low), "{d1_low}");
        assert!((131.9..=132.1).contains(&d1_high), "{d1_high}");
        assert_eq!(p.duration(10, &mut high), Duration::from_secs(600));
        let capped_low = p.duration(10, &mut low).as_secs_f64();
        assert!((539.9..=540.1).contains(&capped_low), "{capped_low}");
    }
}
