//! `[services.NAME.recovery]`, `.restart` and `.retry`: how a service comes back.

use super::Problem;
use crate::backoff::Backoff;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[services.NAME.recovery]`: the reconnect schedule the recovery actor
/// follows while the breaker is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// Wait before the first attempt.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Cap on the wait between attempts.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Growth of the wait per attempt (≥ 1).
    pub multiplier: f64,
    /// Relative spread of each wait, 0 ≤ jitter < 1.
    pub jitter: f64,
    /// Attempts before giving up until the next open; `"unlimited"` never gives up.
    pub max_attempts: MaxAttempts,
    /// Deadline for one attempt of the strategy.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// After a successful recovery, probe the HalfOpen breaker with the
    /// service's health check (up to `success_threshold` times), so it can
    /// close even when the engine's own calls are refused upstream (orders
    /// while trading is Halted).
    pub confirm_with_health_checks: bool,
}

impl Default for RecoveryConfig {
    /// Kite's ticker: from 1 s, doubling, capped at 60 s, 50 tries.
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: MaxAttempts::Count(50),
            attempt_timeout: Duration::from_secs(30),
            confirm_with_health_checks: false,
        }
    }
}

impl RecoveryConfig {
    /// The schedule as a [`Backoff`].
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.initial_delay,
            max: self.max_delay,
            multiplier: self.multiplier,
            jitter: self.jitter,
        }
    }
}

/// A bound on attempts, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxAttempts {
    /// At most this many.
    Count(u32),
    /// Keep trying; written `"unlimited"`.
    Unlimited(Unlimited),
}

/// The word `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlimited {
    /// No bound.
    Unlimited,
}

impl MaxAttempts {
    /// Whether attempt number `n` (1-based) may run.
    pub fn allows(self, n: u32) -> bool {
        match self {
            MaxAttempts::Count(max) => n <= max,
            MaxAttempts::Unlimited(_) => true,
        }
    }
}

/// `[services.NAME.restart]`: restarting crashed service actors, with
/// OTP restart intensity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// Restarts allowed within `period`; one more escalates (the breaker is
    /// forced open and the recovery strategy takes over).
    pub max_restarts: u32,
    /// The sliding window restarts are counted over.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Wait before the first restart in a window.
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Cap on the wait as restarts repeat.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            period: Duration::from_secs(30),
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RestartConfig {
    /// The restart delay schedule.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.initial_delay,
            max: self.max_delay,
            multiplier: 2.0,
            jitter: 0.1,
        }
    }
}

/// `[services.NAME.retry]`: the seed's `@with_retry(max_retries=3, delay=1.0)`,
/// applied by `ServiceHandle::call_with_retry` to idempotent requests only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Growth of the wait per retry (≥ 1).
    pub multiplier: f64,
    /// Relative spread of each wait, 0 ≤ jitter < 1.
    pub jitter: f64,
    /// No attempt starts after this much time since the first.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            delay: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.1,
            deadline: Duration::from_secs(30),
        }
    }
}

impl RetryConfig {
    /// The wait schedule between attempts.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.delay,
            max: self.deadline,
            multiplier: self.multiplier,
            jitter: self.jitter,
        }
    }
}

pub(crate) fn check_backoff(
    out: &mut Vec<Problem>,
    key: &dyn Fn(&str) -> String,
    (initial_name, initial): (&str, Duration),
    (max_name, max): (&str, Duration),
    multiplier: Option<f64>,
    jitter: f64,
) {
    if max < initial {
        out.push(Problem::new(
            key(max_name),
            format!(
                "({}) must not be shorter than {initial_name} ({})",
                humantime::format_duration(max),
                humantime::format_duration(initial)
            ),
            format!("raise {max_name} or lower {initial_name}"),
        ));
    }
    if let Some(m) = multiplier {
        if m > 100.0 {
            out.push(Problem::new(
                key("multiplier"),
                format!("must be at most 100 (got {m})"),
                "use 2.0 to double the wait each time",
            ));
        }
        if !(m.is_finite() && m >= 1.0) {
            out.push(Problem::new(
                key("multiplier"),
                format!("must be at least 1.0 (got {m})"),
                "use 1.0 for a fixed delay or 2.0 to double it each time",
            ));
        }
    }
    if !(0.0..1.0).contains(&jitter) {
        out.push(Problem::new(
            key("jitter"),
            format!("must be at least 0 and below 1 (got {jitter})"),
            "use a fraction such as 0.2 for ±20%",
        ));
    }
}

impl RecoveryConfig {
    pub(crate) fn problems(&self, name: &str, out: &mut Vec<Problem>) {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        for (field, value, max) in [
            ("initial_delay", self.initial_delay, DAY),
            ("max_delay", self.max_delay, DAY),
            ("attempt_timeout", self.attempt_timeout, HOUR),
        ] {
            super::error::check_max_duration(
                out,
                format!("services.{name}.recovery.{field}"),
                value,
                max,
            );
        }
        let key = |f: &str| format!("services.{name}.recovery.{f}");
        if self.initial_delay.is_zero() {
            out.push(Problem::new(
                key("initial_delay"),
                "must be longer than 0",
                "set a duration such as \"1s\" so a dead dependency is not hammered",
            ));
        }
        check_backoff(
            out,
            &key,
            ("initial_delay", self.initial_delay),
            ("max_delay", self.max_delay),
            Some(self.multiplier),
            self.jitter,
        );
        if let MaxAttempts::Count(n) = self.max_attempts {
            super::error::check_max_count(out, key("max_attempts"), u64::from(n), 1_000_000);
        }
        if self.max_attempts == MaxAttempts::Count(0) {
            out.push(Problem::new(
                key("max_attempts"),
                "must be at least 1 (got 0)",
                "set a number of attempts, or \"unlimited\"; turn recovery off with AUTO_RECOVERY_ENABLED=false",
            ));
        }
        if self.attempt_timeout.is_zero() {
            out.push(Problem::new(
                key("attempt_timeout"),
                "must be longer than 0",
                "set a duration such as \"30s\"",
            ));
        }
    }
}

impl RestartConfig {
    pub(crate) fn problems(&self, name: &str, out: &mut Vec<Problem>) {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        for (field, value, max) in [
            ("period", self.period, DAY),
            ("initial_delay", self.initial_delay, HOUR),
            ("max_delay", self.max_delay, HOUR),
        ] {
            super::error::check_max_duration(
                out,
                format!("services.{name}.restart.{field}"),
                value,
                max,
            );
        }
        let key = |f: &str| format!("services.{name}.restart.{f}");
        if self.period.is_zero() {
            out.push(Problem::new(
                key("period"),
                "must be longer than 0",
                "set the window restarts are counted over, such as \"30s\"",
            ));
        }
        check_backoff(
            out,
            &key,
            ("initial_delay", self.initial_delay),
            ("max_delay", self.max_delay),
            None,
            0.0,
        );
    }
}

impl RetryConfig {
    pub(crate) fn problems(&self, name: &str, out: &mut Vec<Problem>) {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        for (field, value, max) in [
            ("delay", self.delay, HOUR),
            ("deadline", self.deadline, DAY),
        ] {
            super::error::check_max_duration(
                out,
                format!("services.{name}.retry.{field}"),
                value,
                max,
            );
        }
        let key = |f: &str| format!("services.{name}.retry.{f}");
        if self.max_retries > 100 {
            out.push(Problem::new(
                key("max_retries"),
                format!("must be at most 100 (got {})", self.max_retries),
                "retries multiply load on a struggling dependency; use 3 or so",
            ));
        }
        if self.deadline.is_zero() {
            out.push(Problem::new(
                key("deadline"),
                "must be longer than 0",
                "set the longest a retried call may take, such as \"30s\"",
            ));
        }
        check_backoff(
            out,
            &key,
            ("delay", self.delay),
            ("deadline", self.deadline),
            Some(self.multiplier),
            self.jitter,
        );
    }
}
