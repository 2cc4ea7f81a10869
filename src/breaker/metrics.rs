//! A point-in-time view of one breaker's counters.

use super::BreakerState;
use std::time::{Duration, Instant};

/// Counters and timings for one breaker, copied out under the breaker's lock
/// so the health report never holds it while formatting.
///
/// Invariant: `admitted = successes + failures + ignored + timeouts + in_flight`.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerMetrics {
    /// The current state.
    pub state: BreakerState,
    /// The reason for a manual state, if in one.
    pub manual_reason: Option<String>,
    /// Calls let through.
    pub admitted: u64,
    /// Calls let through that have not reported an outcome yet.
    pub in_flight: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed, timeouts excluded.
    pub failures: u64,
    /// Calls classified as neither (business rejects, cancellations).
    pub ignored: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls rejected without reaching the service.
    pub rejected: u64,
    /// Service-actor start-up failures outside any call.
    pub crashes: u64,
    /// Total response time of successes, failures, ignored calls and
    /// timeouts, in that order (for the Prometheus `_sum` series).
    pub elapsed_by_outcome: [Duration; 4],
    /// Failures (timeouts included) in a row.
    pub consecutive_failures: u32,
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// successes / (successes + failures + timeouts); `None` before any.
    pub success_rate: Option<f64>,
    /// Failure rate over the rate window, if one is configured and holds
    /// at least `minimum_calls` (resilience4j reports −1 in that case).
    pub window_failure_rate: Option<f64>,
    /// Slow-call rate over the rate window, with the same rule.
    pub window_slow_rate: Option<f64>,
    /// Outcomes in the rate window now (0 without one), whatever `minimum_calls` says.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// Mean response time.
    pub mean_response: Option<Duration>,
    /// Median response time.
    pub p50_response: Option<Duration>,
    /// 99th-percentile response time.
    pub p99_response: Option<Duration>,
    /// When the state last changed.
    pub state_changed_at: Instant,
    /// When an Open breaker will admit probes.
    pub open_until: Option<Instant>,
    /// State changes since construction.
    pub transitions: u64,
    /// Re-opens since the last clean close (drives open-duration growth).
    pub reopens: u32,
    /// Re-opens within the stability window after a close: flaps.
    pub flaps: u64,
    /// When the last success and failure were recorded.
    pub last_success: Option<Instant>,
    /// When the last failure was recorded.
    pub last_failure: Option<Instant>,
}
