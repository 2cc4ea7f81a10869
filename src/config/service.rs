//! `[services.NAME]`: one protected dependency's breaker, timeouts and bulkhead.

use super::{DegradationConfig, Problem, RecoveryConfig, RestartConfig, RetryConfig};
use crate::breaker::{BreakerSettings, RateRule, WindowKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One `[services.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Consecutive failures that open the breaker. Env: `CIRCUIT_BREAKER_FAILURE_THRESHOLD`.
    pub failure_threshold: u32,
    /// Consecutive HalfOpen probe successes that close it.
    pub success_threshold: u32,
    /// How long the breaker stays open the first time (the seed's `timeout`;
    /// default 300 s, the seed's `CIRCUIT_BREAKER_RECOVERY_TIMEOUT`).
    /// Env: `CIRCUIT_BREAKER_RECOVERY_TIMEOUT`.
    #[serde(with = "humantime_serde")]
    pub open_timeout: Duration,
    /// Cap on the open duration as it grows on re-opens; 8× `open_timeout` when absent.
    #[serde(with = "humantime_serde")]
    pub max_open_timeout: Option<Duration>,
    /// Growth of the open duration per re-open.
    pub open_backoff_multiplier: f64,
    /// Relative jitter on re-open durations, 0 ≤ jitter < 1.
    pub open_jitter: f64,
    /// Probes admitted at once while HalfOpen.
    pub half_open_max_calls: u32,
    /// A probe outstanding longer than this re-opens the breaker.
    #[serde(with = "humantime_serde")]
    pub half_open_probe_timeout: Duration,
    /// How long the breaker must stay Closed after a recovery before its
    /// re-open backoff and recovery attempt count reset; a trip sooner is a
    /// flap (counted, alerted, and the next open lasts longer). Absent: the
    /// last open duration.
    #[serde(with = "humantime_serde")]
    pub stability_window: Option<Duration>,
    /// After the breaker closes from HalfOpen, requests in flight ramp from 1
    /// up to `max_in_flight` over this window, and the surplus is shed (slow
    /// start, as Envoy does for recovered hosts): a dependency that has just
    /// come back is not hit by the whole backlog at once. Absent: no ramp.
    #[serde(with = "humantime_serde")]
    pub slow_start: Option<Duration>,
    /// Deadline for one call; a timeout counts as a failure.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Deadline for a service actor's start (`Lifecycle::start`: a login,
    /// a connect). One that outlives it is a failed start, counted and
    /// retried on the restart backoff; without it, a connect into a black
    /// hole would hold up the tree's start and its breaker actor for good.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// Requests handled at once, each on its own service actor.
    pub concurrency: u32,
    /// Requests admitted but not yet finished; more are shed at once.
    pub max_in_flight: u32,
    /// An optional rate-based trip rule.
    pub rate_window: Option<RateWindowConfig>,
    /// The dependency's request limits, per request class (paced, not tripped).
    /// With `shared` in a fleet, they are the whole fleet's budget.
    pub rate_limit: Option<super::RateLimitConfig>,
    /// The dependency this service shares with other engines of a fleet,
    /// such as `"kite:ACCOUNT"`: their breakers hint each other, and its
    /// rate limits are split between the live nodes.
    pub shared: Option<String>,
    /// The reconnect schedule while the breaker is open.
    pub recovery: RecoveryConfig,
    /// Restarting crashed service actors.
    pub restart: RestartConfig,
    /// Retries of idempotent requests.
    pub retry: RetryConfig,
    /// The fallback and mode effects while the breaker is out of service.
    pub degradation: DegradationConfig,
    /// How much this service's outage costs the health score's resilience
    /// component, 0–1: 1 takes it to zero (the broker, prices), 0.5 halves it.
    pub health_impact: f64,
    /// `[[services.NAME.chaos]]`: faults to inject when the service runs
    /// under `Chaos` (the demo applies them on top of its scenario).
    pub chaos: Vec<super::ChaosPhaseConfig>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 3,
            // The seed's CIRCUIT_BREAKER_RECOVERY_TIMEOUT default.
            open_timeout: Duration::from_secs(300),
            max_open_timeout: None,
            open_backoff_multiplier: 2.0,
            open_jitter: 0.1,
            half_open_max_calls: 1,
            half_open_probe_timeout: Duration::from_secs(30),
            stability_window: None,
            slow_start: None,
            call_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
            concurrency: 1,
            max_in_flight: 64,
            rate_window: None,
            rate_limit: None,
            shared: None,
            recovery: RecoveryConfig::default(),
            restart: RestartConfig::default(),
            retry: RetryConfig::default(),
            degradation: DegradationConfig::default(),
            health_impact: 1.0,
            chaos: Vec::new(),
        }
    }
}

/// `[services.NAME.rate_window]`: trip on failure or slow-call rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateWindowConfig {
    /// A count window of the last N calls (give this or `duration`).
    pub calls: Option<u32>,
    /// A time window of the last N seconds (give this or `calls`).
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Calls the window must hold before any rate can trip.
    pub minimum_calls: u32,
    /// Trip at this failure rate, 0 < rate ≤ 1.
    pub failure_rate_threshold: Option<f64>,
    /// Trip at this slow-call rate, 0 < rate ≤ 1.
    pub slow_call_rate_threshold: Option<f64>,
    /// Calls at least this long are slow.
    #[serde(default, with = "humantime_serde")]
    pub slow_call_duration: Option<Duration>,
}

impl ServiceConfig {
    /// The effective cap on the open duration.
    pub fn effective_max_open_timeout(&self) -> Duration {
        self.max_open_timeout
            .unwrap_or_else(|| self.open_timeout.saturating_mul(8))
    }

    /// The state machine's settings (call after validation).
    pub fn breaker_settings(&self) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            open_timeout: self.open_timeout,
            max_open_timeout: self.effective_max_open_timeout(),
            open_backoff_multiplier: self.open_backoff_multiplier,
            open_jitter: self.open_jitter,
            half_open_max_calls: self.half_open_max_calls,
            half_open_probe_timeout: self.half_open_probe_timeout,
            stability_window: self.stability_window,
            rate_rule: self.rate_window.as_ref().map(|w| RateRule {
                window: match (w.calls, w.duration) {
                    (Some(calls), _) => WindowKind::Count(calls),
                    (None, Some(d)) => WindowKind::Time(d),
                    (None, None) => WindowKind::Count(100),
                },
                minimum_calls: w.minimum_calls,
                failure_rate_threshold: w.failure_rate_threshold,
                slow_call_rate_threshold: w.slow_call_rate_threshold,
                slow_call_duration: w.slow_call_duration.unwrap_or(Duration::MAX),
            }),
        }
    }

    /// Everything wrong with this table, each naming its key and the fix.
    pub(crate) fn problems(
        &self,
        name: &str,
        services: &dyn Fn(&str) -> bool,
        out: &mut Vec<Problem>,
    ) {
        self.degradation.problems(name, services, out);
        for (i, phase) in self.chaos.iter().enumerate() {
            phase.problems(&format!("services.{name}.chaos[{i}]"), out);
        }
        let key = |field: &str| format!("services.{name}.{field}");
        self.name_problems(name, out);
        self.breaker_problems(&key, out);
        self.call_problems(&key, out);
        self.bound_problems(&key, out);
        if let Some(window) = &self.rate_window {
            window.problems(name, out);
        }
        if let Some(limits) = &self.rate_limit {
            limits.problems(name, out);
        }
        self.recovery.problems(name, out);
        self.restart.problems(name, out);
        self.retry.problems(name, out);
    }

    /// The name itself, and how much the service weighs in the score.
    fn name_problems(&self, name: &str, out: &mut Vec<Problem>) {
        let key = |field: &str| format!("services.{name}.{field}");
        if !(0.0..=1.0).contains(&self.health_impact) {
            out.push(Problem::new(
                key("health_impact"),
                format!("must be between 0 and 1 (got {})", self.health_impact),
                "use 1.0 for a service the engine cannot trade without, 0.5 for one it can limp along without",
            ));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.push(Problem::new(
                format!("services.{name}"),
                format!("has an unusable name {name:?}"),
                "use letters, digits, '_' or '-' (it appears in URLs and metric labels)",
            ));
        }
        if let Some(shared) = &self.shared {
            if shared.is_empty() || shared.len() > 128 || shared.chars().any(char::is_control) {
                out.push(Problem::new(
                    key("shared"),
                    format!("{shared:?} is not a dependency name"),
                    "name the dependency the same way on every node, such as \"kite:ACCOUNT\" (1–128 characters)",
                ));
            }
        }
    }

    /// Thresholds and open durations.
    fn breaker_problems(&self, key: &dyn Fn(&str) -> String, out: &mut Vec<Problem>) {
        if self.failure_threshold < 1 {
            out.push(Problem::new(
                key("failure_threshold"),
                format!("must be at least 1 (got {})", self.failure_threshold),
                "set it to 1 or more",
            ));
        }
        if self.success_threshold < 1 {
            out.push(Problem::new(
                key("success_threshold"),
                format!("must be at least 1 (got {})", self.success_threshold),
                "set it to 1 or more",
            ));
        }
        if self.open_timeout.is_zero() {
            out.push(Problem::new(
                key("open_timeout"),
                "must be longer than 0",
                "set a duration such as \"60s\"",
            ));
        }
        if let Some(max) = self.max_open_timeout {
            if max < self.open_timeout {
                out.push(Problem::new(
                    key("max_open_timeout"),
                    format!(
                        "({}) must not be shorter than open_timeout ({})",
                        humantime::format_duration(max),
                        humantime::format_duration(self.open_timeout)
                    ),
                    "raise it, or remove it to use 8× open_timeout",
                ));
            }
        }
        if !(self.open_backoff_multiplier.is_finite() && self.open_backoff_multiplier >= 1.0) {
            out.push(Problem::new(
                key("open_backoff_multiplier"),
                format!(
                    "must be at least 1.0 (got {})",
                    self.open_backoff_multiplier
                ),
                "use 1.0 for a fixed open duration or 2.0 to double it on each re-open",
            ));
        }
        if !(0.0..1.0).contains(&self.open_jitter) {
            out.push(Problem::new(
                key("open_jitter"),
                format!("must be at least 0 and below 1 (got {})", self.open_jitter),
                "use a fraction such as 0.1 for ±10%",
            ));
        }
    }

    /// HalfOpen probes, the call timeout and the bulkhead.
    fn call_problems(&self, key: &dyn Fn(&str) -> String, out: &mut Vec<Problem>) {
        if !(1..=1000).contains(&self.half_open_max_calls) {
            out.push(Problem::new(
                key("half_open_max_calls"),
                format!(
                    "must be between 1 and 1000 (got {})",
                    self.half_open_max_calls
                ),
                "set the number of probes allowed at once, usually 1",
            ));
        }
        if self.half_open_probe_timeout.is_zero() {
            out.push(Problem::new(
                key("half_open_probe_timeout"),
                "must be longer than 0",
                "set a duration such as \"30s\"",
            ));
        }
        if self.call_timeout.is_zero() {
            out.push(Problem::new(
                key("call_timeout"),
                "must be longer than 0",
                "set a duration such as \"10s\"",
            ));
        }
        if self.start_timeout.is_zero() {
            out.push(Problem::new(
                key("start_timeout"),
                "must be longer than 0",
                "set a duration such as \"30s\": how long a login or connect may take",
            ));
        }
        if !(1..=1024).contains(&self.concurrency) {
            out.push(Problem::new(
                key("concurrency"),
                format!("must be between 1 and 1024 (got {})", self.concurrency),
                "use 1 where order matters, or the size of the connection pool",
            ));
        }
        if self.max_in_flight < self.concurrency.max(1) {
            out.push(Problem::new(
                key("max_in_flight"),
                format!(
                    "({}) must be at least concurrency ({})",
                    self.max_in_flight, self.concurrency
                ),
                "raise it; it bounds queued plus running requests",
            ));
        }
    }

    /// Upper bounds: an absurd value is a typo, not a wish.
    fn bound_problems(&self, key: &dyn Fn(&str) -> String, out: &mut Vec<Problem>) {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        for (field, value, max) in [
            ("open_timeout", Some(self.open_timeout), DAY),
            ("max_open_timeout", self.max_open_timeout, 7 * DAY),
            (
                "half_open_probe_timeout",
                Some(self.half_open_probe_timeout),
                HOUR,
            ),
            ("stability_window", self.stability_window, 7 * DAY),
            ("slow_start", self.slow_start, HOUR),
            ("call_timeout", Some(self.call_timeout), HOUR),
            ("start_timeout", Some(self.start_timeout), HOUR),
        ] {
            if let Some(value) = value {
                super::error::check_max_duration(out, key(field), value, max);
            }
        }
        for (field, value, max) in [
            (
                "failure_threshold",
                u64::from(self.failure_threshold),
                100_000,
            ),
            (
                "success_threshold",
                u64::from(self.success_threshold),
                100_000,
            ),
            ("max_in_flight", u64::from(self.max_in_flight), 1_000_000),
            (
                "restart.max_restarts",
                u64::from(self.restart.max_restarts),
                10_000,
            ),
            (
                "degradation.cache_capacity",
                self.degradation.cache_capacity as u64,
                1_000_000,
            ),
        ] {
            super::error::check_max_count(out, key(field), value, max);
        }
        if self.open_backoff_multiplier > 100.0 {
            out.push(Problem::new(
                key("open_backoff_multiplier"),
                format!("must be at most 100 (got {})", self.open_backoff_multiplier),
                "use 2.0 to double the open duration on each re-open",
            ));
        }
        super::error::check_max_duration(
            out,
            key("degradation.max_staleness"),
            self.degradation.max_staleness,
            Duration::from_secs(86_400),
        );
    }
}

impl RateWindowConfig {
    fn problems(&self, name: &str, out: &mut Vec<Problem>) {
        let key = |field: &str| format!("services.{name}.rate_window.{field}");
        match (self.calls, self.duration) {
            (Some(_), Some(_)) | (None, None) => out.push(Problem::new(
                format!("services.{name}.rate_window"),
                "needs exactly one of `calls` or `duration`",
                "give `calls = 100` for the last 100 calls, or `duration = \"60s\"` for the last minute",
            )),
            (Some(0), None) => out.push(Problem::new(
                key("calls"),
                "must be at least 1 (got 0)",
                "set the number of recent calls to judge, such as 100",
            )),
            (None, Some(d)) if d < Duration::from_secs(1) => out.push(Problem::new(
                key("duration"),
                format!("must be at least 1s (got {})", humantime::format_duration(d)),
                "windows are kept in whole seconds; use \"60s\" or similar",
            )),
            _ => {}
        }
        if let Some(calls) = self.calls {
            super::error::check_max_count(out, key("calls"), u64::from(calls), 100_000);
        }
        super::error::check_max_count(
            out,
            key("minimum_calls"),
            u64::from(self.minimum_calls),
            100_000,
        );
        if let Some(d) = self.duration {
            super::error::check_max_duration(out, key("duration"), d, Duration::from_secs(3600));
        }
        if self.minimum_calls < 1 {
            out.push(Problem::new(
                key("minimum_calls"),
                "must be at least 1 (got 0)",
                "set how many calls the window needs before a rate can trip, such as 20",
            ));
        }
        if let Some(calls) = self.calls {
            if self.minimum_calls > calls {
                out.push(Problem::new(
                    key("minimum_calls"),
                    format!(
                        "({}) must not exceed services.{name}.rate_window.calls ({calls})",
                        self.minimum_calls
                    ),
                    "lower it, or the rate rule can never trip",
                ));
            }
        }
        self.rate_problems(name, out);
    }

    /// The rates to trip on, and what makes a call slow.
    fn rate_problems(&self, name: &str, out: &mut Vec<Problem>) {
        let key = |field: &str| format!("services.{name}.rate_window.{field}");
        if self.failure_rate_threshold.is_none() && self.slow_call_rate_threshold.is_none() {
            out.push(Problem::new(
                format!("services.{name}.rate_window"),
                "sets no rate to trip on",
                "add failure_rate_threshold and/or slow_call_rate_threshold",
            ));
        }
        for (field, value) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if let Some(rate) = value {
                if !(rate > 0.0 && rate <= 1.0) {
                    out.push(Problem::new(
                        key(field),
                        format!("must be above 0 and at most 1 (got {rate})"),
                        "use a fraction such as 0.5 for 50%",
                    ));
                }
            }
        }
        match (self.slow_call_rate_threshold, self.slow_call_duration) {
            (Some(_), None) => out.push(Problem::new(
                key("slow_call_duration"),
                "is required when slow_call_rate_threshold is set",
                "set the duration from which a call is slow, such as \"2s\"",
            )),
            (_, Some(d)) if d.is_zero() => out.push(Problem::new(
                key("slow_call_duration"),
                "must be longer than 0",
                "set the duration from which a call is slow, such as \"2s\"",
            )),
            _ => {}
        }
    }
}
