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

/// Slots of a count window (calls), for resizing.
fn kind_len(kind: WindowKind) -> usize {
    match kind {
        WindowKind::Count(n) => n.max(1) as usize,
        WindowKind::Time(d) => d.as_secs().max(1) as usize,
    }
}
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

    /// The same outcomes in a window of another size, for a reload: the most
    /// recent `min(old, new)` calls (or seconds) are kept, in order. A change
    /// of kind (count ↔ time) starts empty: a count window keeps no times,
    /// and a time window keeps no order within a second.
    pub fn resized(&self, kind: WindowKind, now: Instant) -> Self {
        let mut next = Self::new(kind, now);
        match (&self.inner, &mut next.inner) {
            (
                Inner::Count {
                    ring,
                    next: at,
                    filled,
                },
                Inner::Count { .. },
            ) => {
                let keep = (*filled).min(kind_len(kind));
                let oldest = (*at + ring.len() - keep) % ring.len();
                for i in 0..keep {
                    let bits = ring[(oldest + i) % ring.len()];
                    next.record(bits & FAILED != 0, bits & SLOW != 0, now);
                }
            }
            (
                Inner::Time {
                    buckets,
                    origin,
                    newest_second,
                },
                Inner::Time {
                    buckets: into,
                    origin: o,
                    newest_second: n,
                },
            ) => {
                let (old_len, new_len) = (buckets.len() as u64, into.len() as u64);
                *o = *origin;
                *n = *newest_second;
                let keep = old_len.min(new_len).min(newest_second + 1);
                for s in (newest_second + 1 - keep)..=*newest_second {
                    let bucket = buckets[(s % old_len) as usize];
                    into[(s % new_len) as usize] = bucket;
                    next.calls += bucket.calls;
                    next.failures += bucket.failures;
                    next.slow += bucket.slow;
                }
                next.advance(now);
            }
            _ => {}
        }
        next
    }

    /// Calls currently in the window.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Failures currently in the window.
    pub fn failures(&self) -> u32 {
        self.failures
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
    #[test]
    fn test_resize_count_window_when_shrunk_then_most_recent_outcomes_kept() {
        let now = Instant::now();
        let mut w = RateWindow::new(WindowKind::Count(5), now);
        for failed in [true, true, false, false, true, false, true] {
            w.record(failed, false, now);
        }
        // The window holds the last five: false, false, true, false, true.
        let shrunk = w.resized(WindowKind::Count(3), now);
        assert_eq!(shrunk.calls(), 3);
        assert_eq!(
            shrunk.failure_rate(),
            Some(2.0 / 3.0),
            "last three: true, false, true"
        );
        let grown = w.resized(WindowKind::Count(10), now);
        assert_eq!(grown.calls(), 5);
        assert_eq!(grown.failure_rate(), Some(2.0 / 5.0));
        let mut grown = grown;
        for _ in 0..5 {
            grown.record(false, false, now);
        }
        assert_eq!(grown.calls(), 10, "the grown window fills to its new size");
    }

    #[test]
    fn test_resize_time_window_when_shrunk_then_recent_seconds_kept() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(WindowKind::Time(Duration::from_secs(10)), t0);
        w.record(true, false, t0);
        w.record(false, true, t0 + Duration::from_secs(7));
        w.record(true, false, t0 + Duration::from_secs(9));
        let now = t0 + Duration::from_secs(9);
        let shrunk = w.resized(WindowKind::Time(Duration::from_secs(3)), now);
        assert_eq!(
            shrunk.calls(),
            2,
            "seconds 7 and 9 are within the last three"
        );
        assert_eq!(shrunk.slow_rate(), Some(0.5));
        let mut grown = w.resized(WindowKind::Time(Duration::from_secs(30)), now);
        assert_eq!(grown.calls(), 3);
        grown.advance(t0 + Duration::from_secs(38));
        assert_eq!(grown.calls(), 1, "seconds slide out at the new size");
        let switched = w.resized(WindowKind::Count(10), now);
        assert_eq!(switched.calls(), 0, "a change of kind starts empty");
    }
}
