//! The tunables of one breaker, already validated.

use std::time::Duration;

/// Everything the state machine needs to know about one service's rules.
///
/// Built from `[services.NAME]` in `actors.toml` by the config loader, which
/// validates it; [`BreakerSettings::seed_default`] gives the seed's shape for
/// tests and embedding without a file.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (the seed's rule).
    pub failure_threshold: u32,
    /// Consecutive probe successes, counted from entry into HalfOpen, that close it.
    pub success_threshold: u32,
    /// The first open duration (the seed's `timeout`).
    pub open_timeout: Duration,
    /// The cap on the open duration as it grows on re-opens.
    pub max_open_timeout: Duration,
    /// How much the open duration grows on each re-open.
    pub open_backoff_multiplier: f64,
    /// Relative jitter applied to re-open durations, 0–1.
    pub open_jitter: f64,
    /// Probes admitted at once while HalfOpen.
    pub half_open_max_calls: u32,
    /// A probe outstanding for longer than this re-opens the breaker.
    pub half_open_probe_timeout: Duration,
    /// An optional failure-rate / slow-call-rate rule.
    pub rate_rule: Option<RateRule>,
    /// How long a breaker must stay Closed after a recovery before the
    /// re-open backoff resets; a trip sooner is a flap. `None`: the last
    /// open duration.
    pub stability_window: Option<Duration>,
}

impl BreakerSettings {
    /// A breaker with the seed's consecutive-failure rule and no rate rule,
    /// with growth ×2 capped at 8× the base, 10% jitter and one probe.
    pub fn seed_default(failure_threshold: u32, success_threshold: u32, open: Duration) -> Self {
        Self {
            failure_threshold,
            success_threshold,
            open_timeout: open,
            max_open_timeout: open.saturating_mul(8),
            open_backoff_multiplier: 2.0,
            open_jitter: 0.1,
            half_open_max_calls: 1,
            half_open_probe_timeout: Duration::from_secs(30),
            rate_rule: None,
            stability_window: None,
        }
    }
}

/// A rate-based trip rule over a sliding window.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRule {
    /// The window the rates are computed over.
    pub window: WindowKind,
    /// No rate trips until the window holds at least this many calls.
    pub minimum_calls: u32,
    /// Trip when failures / calls reaches this (0–1), if set.
    pub failure_rate_threshold: Option<f64>,
    /// Trip when slow calls / calls reaches this (0–1), if set.
    pub slow_call_rate_threshold: Option<f64>,
    /// A call taking at least this long is slow.
    pub slow_call_duration: Duration,
}

/// The shape of a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last N calls.
    Count(u32),
    /// The calls of the last N whole seconds.
    Time(Duration),
}
