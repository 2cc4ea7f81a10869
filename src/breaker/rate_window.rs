//! Sliding windows over recent outcomes, for the rate-based trip rules.

use super::WindowKind;
use std::time::Instant;

/// Failure and slow-call counts over the last N calls or N seconds.
///
/// Storage is allocated once at construction; recording is O(1) amortised
/// and never allocates.
#[derive(Debug, Clone)]
pub struct RateWindow {
    inner: Inner,
    calls: u32,
    failures: u32,
    slow: u32,
}

#[derive(Debug, Clone)]
enum Inner {
    Count {
        /// Bit 0: failure, bit 1: slow.
        ring: Box<[u8]>,
        next: usize,
        filled: usize,
    },
    Time {
        buckets: Box<[Bucket]>,
        origin: Instant,
        newest_second: u64,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    calls: u32,
    failures: u32,
    slow: u32,
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;

impl RateWindow {
    /// An empty window of the given shape; `origin` anchors time buckets.
    pub fn new(kind: WindowKind, origin: Instant) -> Self {
        let inner = match kind {
            WindowKind::Count(n) => Inner::Count {
                ring: vec![0; n.max(1) as usize].into_boxed_slice(),
                next: 0,
                filled: 0,
            },
            WindowKind::Time(d) => {
                let seconds = d.as_secs().max(1) as usize;
                Inner::Time {
                    buckets: vec![Bucket::default(); seconds].into_boxed_slice(),
                    origin,
                    newest_second: 0,
                }
            }
        };
        Self {
            inner,
            calls: 0,
            failures: 0,
            slow: 0,
        }
    }

    /// Adds one outcome observed at `now`.
    pub fn record(&mut self, failed: bool, slow: bool, now: Instant) {
        match &mut self.inner {
            Inner::Count { ring, next, filled } => {
                if *filled == ring.len() {
                    let old = ring[*next];
                    self.calls -= 1;
                    self.failures -= u32::from(old & FAILED != 0);
                    self.slow -= u32::from(old & SLOW != 0);
                } else {
                    *filled += 1;
                }
                ring[*next] = (u8::from(failed) * FAILED) | (u8::from(slow) * SLOW);
                *next = (*next + 1) % ring.len();
            }
            Inner::Time { .. } => {
                self.advance(now);
                if let Inner::Time {
                    buckets,
                    newest_second,
                    ..
                } = &mut self.inner
                {
                    let len = buckets.len() as u64;
                    let bucket = &mut buckets[(*newest_second % len) as usize];
                    bucket.calls += 1;
                    bucket.failures += u32::from(failed);
                    bucket.slow += u32::from(slow);
                }
            }
        }
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
    }

    /// Drops time buckets that have slid out of the window by `now`.
    pub fn advance(&mut self, now: Instant) {
        if let Inner::Time {
            buckets,
            origin,
            newest_second,
        } = &mut self.inner
        {
            let second = now.saturating_duration_since(*origin).as_secs();
            if second <= *newest_second {
                return;
            }
            let len = buckets.len() as u64;
            let steps = (second - *newest_second).min(len);
            for s in (second - steps + 1)..=second {
                let bucket = &mut buckets[(s % len) as usize];
                self.calls -= bucket.calls;
                self.failures -= bucket.failures;
                self.slow -= bucket.slow;
                *bucket = Bucket::default();
            }
            *newest_second = second;
        }
    }

    /// Empties the window (after a clean close or a reset).
    pub fn clear(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::Count { ring, next, filled } => {
                ring.fill(0);
                *next = 0;
                *filled = 0;
            }
            Inner::Time {
                buckets,
                origin,
                newest_second,
            } => {
                buckets.fill(Bucket::default());
                *newest_second = now.saturating_duration_since(*origin).as_secs();
            }
        }
        self.calls = 0;
        self.failures = 0;
        self.slow = 0;
    }

    /// Calls currently in the window.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Failures / calls, or `None` for an empty window.
    pub fn failure_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| f64::from(self.failures) / f64::from(self.calls))
    }

    /// Slow calls / calls, or `None` for an empty window.
    pub fn slow_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| f64::from(self.slow) / f64::from(self.calls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn test_count_window_when_full_then_oldest_outcome_slides_out() {
        let now = Instant::now();
        let mut w = RateWindow::new(WindowKind::Count(3), now);
        w.record(true, false, now);
        w.record(false, false, now);
        w.record(false, true, now);
        assert_eq!(w.calls(), 3);
        assert_eq!(w.failure_rate(), Some(1.0 / 3.0));
        w.record(false, false, now);
        assert_eq!(w.calls(), 3);
        assert_eq!(w.failure_rate(), Some(0.0));
        assert_eq!(w.slow_rate(), Some(1.0 / 3.0));
    }

    #[test]
    fn test_time_window_when_seconds_pass_then_old_buckets_expire() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(WindowKind::Time(Duration::from_secs(10)), t0);
        w.record(true, false, t0);
        w.record(true, false, t0 + Duration::from_secs(5));
        assert_eq!(w.calls(), 2);
        w.advance(t0 + Duration::from_secs(10));
        assert_eq!(w.calls(), 1, "the second-0 bucket slid out");
        w.advance(t0 + Duration::from_secs(100));
        assert_eq!(w.calls(), 0);
        assert_eq!(w.failure_rate(), None);
    }
}
