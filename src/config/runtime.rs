//! `[runtime]`: tree-wide switches and intervals.

use super::Problem;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `[runtime]` table. Every key has a default, so the table may be omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Master switch; `false` starts every breaker Disabled (calls pass,
    /// nothing trips). Env: `CIRCUIT_BREAKER_ENABLED`.
    pub circuit_breaker_enabled: bool,
    /// Whether open breakers answer with fallbacks. Env: `GRACEFUL_DEGRADATION_ENABLED`.
    pub graceful_degradation_enabled: bool,
    /// Whether an open breaker starts its recovery strategy. Env: `AUTO_RECOVERY_ENABLED`.
    pub auto_recovery_enabled: bool,
    /// How often each service's health check runs. Env: `HEALTH_CHECK_INTERVAL`.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// The score (0–100) below which the system alerts. Env: `HEALTH_SCORE_THRESHOLD`.
    pub health_score_threshold: u32,
    /// Scores at or above this (and below the healthy threshold) are degraded.
    pub degraded_score_threshold: u32,
    /// Scores below this are critical (between it and degraded: unhealthy).
    pub critical_score_threshold: u32,
    /// Deadline for one service health check.
    #[serde(with = "humantime_serde")]
    pub health_check_timeout: Duration,
    /// How often CPU, memory and disk are sampled (in a blocking task).
    #[serde(with = "humantime_serde")]
    pub system_sample_interval: Duration,
    /// How long shutdown waits for in-flight calls before stopping actors.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Seeds all jitter, so a run can be replayed; entropy when absent.
    pub seed: Option<u64>,
    /// `[runtime.http]`: serve the health endpoints, probes and metrics.
    pub http: Option<HttpConfig>,
}

/// `[runtime.http]`: where the HTTP endpoints listen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port, such as "127.0.0.1:8080" ("127.0.0.1:0" picks a free port).
    pub listen: std::net::SocketAddr,
    /// The admin routes are plaintext: with a non-loopback `listen` they
    /// start only when this is `true` (put TLS in front of them).
    #[serde(default)]
    pub allow_remote_admin: bool,
    /// A connection that sends no complete request head within this long
    /// is closed (slow headers, idle keep-alive).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections open at once; over it the oldest idle one is closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for HttpConfig {
    /// Loopback port 8080, admin routes local only, 10 s idle, 4096 connections.
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_remote_admin: false,
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    4096
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            circuit_breaker_enabled: true,
            graceful_degradation_enabled: true,
            auto_recovery_enabled: true,
            health_check_interval: Duration::from_secs(30),
            health_score_threshold: 80,
            degraded_score_threshold: 60,
            critical_score_threshold: 40,
            health_check_timeout: Duration::from_secs(5),
            system_sample_interval: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            seed: None,
            http: None,
        }
    }
}

impl RuntimeConfig {
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.score_problems(&mut problems);
        self.interval_problems(&mut problems);
        problems
    }

    /// The three score thresholds, in order and within 0–100.
    fn score_problems(&self, problems: &mut Vec<Problem>) {
        if self.health_score_threshold > 100 {
            problems.push(Problem::new(
                "runtime.health_score_threshold",
                format!("must be at most 100 (got {})", self.health_score_threshold),
                "set a score between 0 and 100, such as 80",
            ));
        }
        if !(self.critical_score_threshold <= self.degraded_score_threshold
            && self.degraded_score_threshold <= self.health_score_threshold)
        {
            problems.push(Problem::new(
                "runtime.degraded_score_threshold",
                format!(
                    "must lie between critical_score_threshold ({}) and health_score_threshold ({}) (got {})",
                    self.critical_score_threshold,
                    self.health_score_threshold,
                    self.degraded_score_threshold
                ),
                "keep critical ≤ degraded ≤ healthy, such as 40, 60 and 80",
            ));
        }
        for (key, n) in [
            (
                "runtime.degraded_score_threshold",
                self.degraded_score_threshold,
            ),
            (
                "runtime.critical_score_threshold",
                self.critical_score_threshold,
            ),
        ] {
            super::error::check_max_count(problems, key, u64::from(n), 100);
        }
    }

    /// Intervals, timeouts and the shutdown grace: positive and bounded.
    fn interval_problems(&self, problems: &mut Vec<Problem>) {
        if self.health_check_interval.is_zero() {
            problems.push(Problem::new(
                "runtime.health_check_interval",
                "must be longer than 0",
                "set a duration such as \"30s\"",
            ));
        }
        const DAY: Duration = Duration::from_secs(86_400);
        for (key, d, max) in [
            (
                "runtime.health_check_interval",
                self.health_check_interval,
                DAY,
            ),
            (
                "runtime.health_check_timeout",
                self.health_check_timeout,
                DAY,
            ),
            (
                "runtime.system_sample_interval",
                self.system_sample_interval,
                DAY,
            ),
            (
                "runtime.shutdown_grace",
                self.shutdown_grace,
                Duration::from_secs(600),
            ),
        ] {
            super::error::check_max_duration(problems, key, d, max);
        }
        for (key, d) in [
            ("runtime.health_check_interval", self.health_check_interval),
            (
                "runtime.system_sample_interval",
                self.system_sample_interval,
            ),
        ] {
            super::error::check_min_duration(problems, key, d, Duration::from_millis(100));
        }
        for (key, d) in [
            ("runtime.health_check_timeout", self.health_check_timeout),
            (
                "runtime.system_sample_interval",
                self.system_sample_interval,
            ),
        ] {
            if d.is_zero() {
                problems.push(Problem::new(
                    key,
                    "must be longer than 0",
                    "set a duration such as \"5s\"",
                ));
            }
        }
    }
}
