//! Success rate and latency over the last 1, 5 and 15 minutes, each with
//! its direction against the window before it.
//!
//! The health actor takes a compact snapshot of each breaker's counters and
//! latency histogram once a minute and keeps 31 of them; a window's figures
//! are the difference between the newest snapshot and the one a window
//! earlier, and its direction compares that with the window before. Trends
//! are computed when a snapshot is taken and cached, so a report never
//! computes them.

use crate::breaker::SparseHistogram;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The windows reported.
pub const WINDOWS: [(&str, Duration); 3] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
    ("15m", Duration::from_secs(900)),
];

/// Snapshots kept: enough for the 15-minute window and the one before it.
const KEEP: usize = 31;

/// Which way a figure is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Better than the window before.
    Improving,
    /// Within the noise band of the window before.
    Stable,
    /// Worse than the window before.
    Degrading,
    /// Not enough history or calls to say.
    Unknown,
}

/// One window's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendWindow {
    /// "1m", "5m" or "15m".
    pub window: &'static str,
    /// Calls decided (success, failure, timeout) in the window.
    pub calls: u64,
    /// successes / decided calls.
    pub success_rate: Option<f64>,
    /// Median response time, ms.
    pub p50_ms: Option<f64>,
    /// 99th-percentile response time, ms.
    pub p99_ms: Option<f64>,
    /// Success rate against the window before (±1 percentage point is stable).
    pub success_rate_direction: Direction,
    /// p99 against the window before (±10 % is stable; lower is improving).
    pub latency_direction: Direction,
}

/// All windows for one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trends {
    /// 1m, 5m, 15m.
    pub windows: Vec<TrendWindow>,
}

#[derive(Debug, Clone)]
struct Point {
    at: Instant,
    successes: u64,
    failures: u64,
    latency: SparseHistogram,
}

/// The snapshots of one service.
#[derive(Debug, Clone, Default)]
pub struct TrendTracker {
    points: VecDeque<Point>,
}

struct Figures {
    calls: u64,
    success_rate: Option<f64>,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

impl TrendTracker {
    /// Records a snapshot of cumulative counters taken at `at`.
    pub fn push(&mut self, at: Instant, successes: u64, failures: u64, latency: SparseHistogram) {
        if self.points.len() == KEEP {
            self.points.pop_front();
        }
        self.points.push_back(Point {
            at,
            successes,
            failures,
            latency,
        });
    }

    /// The newest snapshot at least `age` older than `from`.
    fn at_least(&self, from: Instant, age: Duration) -> Option<&Point> {
        self.points
            .iter()
            .rev()
            .find(|p| from.saturating_duration_since(p.at) >= age)
    }

    fn figures(newer: &Point, older: &Point) -> Figures {
        let successes = newer.successes.saturating_sub(older.successes);
        let failures = newer.failures.saturating_sub(older.failures);
        let calls = successes + failures;
        let latency = newer.latency.since(&older.latency);
        Figures {
            calls,
            success_rate: (calls > 0).then(|| successes as f64 / calls as f64),
            p50: latency.quantile(0.5),
            p99: latency.quantile(0.99),
        }
    }

    /// The trends as of the newest snapshot.
    pub fn trends(&self) -> Trends {
        let Some(newest) = self.points.back() else {
            return Trends::default();
        };
        let windows = WINDOWS
            .iter()
            .filter_map(|(name, w)| {
                let start = self.at_least(newest.at, *w)?;
                let now = Self::figures(newest, start);
                let before = self
                    .at_least(start.at, *w)
                    .map(|earlier| Self::figures(start, earlier));
                let success_rate_direction = match (&before, now.success_rate) {
                    (Some(b), Some(rate)) => match b.success_rate {
                        Some(old) if rate > old + 0.01 => Direction::Improving,
                        Some(old) if rate < old - 0.01 => Direction::Degrading,
                        Some(_) => Direction::Stable,
                        None => Direction::Unknown,
                    },
                    _ => Direction::Unknown,
                };
                let latency_direction = match (before.as_ref().and_then(|b| b.p99), now.p99) {
                    (Some(old), Some(new)) => {
                        let (old, new) = (old.as_secs_f64(), new.as_secs_f64());
                        if new < old * 0.9 {
                            Direction::Improving
                        } else if new > old * 1.1 {
                            Direction::Degrading
                        } else {
                            Direction::Stable
                        }
                    }
                    _ => Direction::Unknown,
                };
                Some(TrendWindow {
                    window: name,
                    calls: now.calls,
                    success_rate: now.success_rate,
                    p50_ms: now.p50.map(|d| d.as_secs_f64() * 1000.0),
                    p99_ms: now.p99.map(|d| d.as_secs_f64() * 1000.0),
                    success_rate_direction,
                    latency_direction,
                })
            })
            .collect();
        Trends { windows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::LatencyHistogram;

    #[test]
    fn test_trends_when_failures_rise_then_success_rate_degrading() {
        let t0 = Instant::now();
        let mut tracker = TrendTracker::default();
        let mut hist = LatencyHistogram::default();
        let (mut ok, mut bad) = (0u64, 0u64);
        for minute in 0..=10u64 {
            tracker.push(
                t0 + Duration::from_secs(60 * minute),
                ok,
                bad,
                hist.sparse(),
            );
            // Minutes 0–8: all good and fast; minute 9 onwards: half fail, slow.
            for _ in 0..100 {
                if minute >= 9 {
                    ok += 50;
                    bad += 50;
                    hist.record(Duration::from_millis(200));
                } else {
                    ok += 100;
                    hist.record(Duration::from_millis(10));
                }
            }
        }
        let trends = tracker.trends();
        let one = &trends.windows[0];
        assert_eq!(one.window, "1m");
        assert_eq!(one.calls, 10_000);
        assert_eq!(one.success_rate, Some(0.5));
        assert_eq!(one.success_rate_direction, Direction::Degrading);
        assert_eq!(one.latency_direction, Direction::Degrading);
        assert!(one.p99_ms.unwrap() > 150.0);
        let five = &trends.windows[1];
        assert_eq!(five.window, "5m");
        assert_eq!(five.success_rate, Some(0.9));
        assert_eq!(five.success_rate_direction, Direction::Degrading);
        assert_eq!(trends.windows.len(), 2, "no 15-minute window yet");
    }
}
