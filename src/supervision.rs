//! OTP restart intensity: at most `max_restarts` within a sliding `period`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do about one more crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart; this is restart number `nth` (0-based) in the current window,
    /// which picks the delay from the restart backoff.
    Restart {
        /// Restarts already in the window before this one.
        nth: u32,
    },
    /// More than `max_restarts` crashes within `period`: stop restarting
    /// and escalate.
    Escalate {
        /// Crashes in the window, this one included.
        crashes: u32,
    },
}

/// A true sliding window of crash times (not fixed buckets): a crash counts
/// for exactly `period` after it happened. Time is an argument.
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    max_restarts: u32,
    period: Duration,
    crashes: VecDeque<Instant>,
}

impl RestartIntensity {
    /// Allows `max_restarts` restarts within any `period`.
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
            // Allocated at the first crash: most services never crash,
            // and a tree may hold thousands of them.
            crashes: VecDeque::new(),
        }
    }

    /// Counts a crash at `now` and decides.
    pub fn crash(&mut self, now: Instant) -> RestartDecision {
        while let Some(oldest) = self.crashes.front() {
            if now.saturating_duration_since(*oldest) >= self.period {
                self.crashes.pop_front();
            } else {
                break;
            }
        }
        self.crashes.push_back(now);
        let count = self.crashes.len() as u32;
        if count > self.max_restarts {
            RestartDecision::Escalate { crashes: count }
        } else {
            RestartDecision::Restart { nth: count - 1 }
        }
    }

    /// Forgets past crashes (after a successful recovery or a reset).
    pub fn clear(&mut self) {
        self.crashes.clear();
    }

    /// The window length.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The restart bound.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_crash_when_more_than_max_within_period_then_escalates() {
        let t0 = Instant::now();
        let mut w = RestartIntensity::new(3, Duration::from_secs(10));
        for i in 0..3 {
            assert_eq!(
                w.crash(t0 + Duration::from_secs(i)),
                RestartDecision::Restart { nth: i as u32 }
            );
        }
        assert_eq!(
            w.crash(t0 + Duration::from_secs(3)),
            RestartDecision::Escalate { crashes: 4 }
        );
    }

    #[test]
    fn test_crash_when_spread_beyond_period_then_never_escalates() {
        let t0 = Instant::now();
        let mut w = RestartIntensity::new(3, Duration::from_secs(10));
        for i in 0..20u64 {
            let decision = w.crash(t0 + Duration::from_secs(4 * i));
            assert!(
                matches!(decision, RestartDecision::Restart { .. }),
                "crash {i}"
            );
        }
    }

    #[test]
    fn test_crash_when_window_slides_then_old_crashes_expire_exactly_at_period() {
        let t0 = Instant::now();
        let mut w = RestartIntensity::new(1, Duration::from_secs(5));
        assert!(matches!(w.crash(t0), RestartDecision::Restart { nth: 0 }));
        assert!(matches!(
            w.crash(t0 + Duration::from_millis(4999)),
            RestartDecision::Escalate { .. }
        ));
        let mut w = RestartIntensity::new(1, Duration::from_secs(5));
        w.crash(t0);
        assert!(matches!(
            w.crash(t0 + Duration::from_secs(5)),
            RestartDecision::Restart { nth: 0 }
        ));
    }
}
