//! The seed's environment variables, applied over `actors.toml`.

use super::{Config, Problem};
use std::time::Duration;

/// The overrides found in the environment, parsed but not yet applied.
///
/// The seed's variables are tree-wide: `CIRCUIT_BREAKER_FAILURE_THRESHOLD`
/// and `CIRCUIT_BREAKER_RECOVERY_TIMEOUT` apply to every service. An empty
/// variable counts as unset. Bad values become [`Problem`]s naming the
/// variable, never a panic and never a silent default.
#[derive(Debug, Default)]
pub struct EnvOverrides {
    circuit_breaker_enabled: Option<bool>,
    failure_threshold: Option<u32>,
    recovery_timeout: Option<Duration>,
    health_check_interval: Option<Duration>,
    health_score_threshold: Option<u32>,
    graceful_degradation_enabled: Option<bool>,
    auto_recovery_enabled: Option<bool>,
    problems: Vec<Problem>,
}

/// Every variable the loader reads, for docs and `check-config`.
pub const VARIABLES: [&str; 7] = [
    "CIRCUIT_BREAKER_ENABLED",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT",
    "HEALTH_CHECK_INTERVAL",
    "HEALTH_SCORE_THRESHOLD",
    "GRACEFUL_DEGRADATION_ENABLED",
    "AUTO_RECOVERY_ENABLED",
];

impl EnvOverrides {
    /// Reads the seed's variables through `env`.
    pub fn read(env: &impl Fn(&str) -> Option<String>) -> Self {
        let mut o = Self::default();
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CIRCUIT_BREAKER_ENABLED") {
            o.circuit_breaker_enabled = o.boolean("CIRCUIT_BREAKER_ENABLED", &v);
        }
        if let Some(v) = get("CIRCUIT_BREAKER_FAILURE_THRESHOLD") {
            o.failure_threshold = match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Some(n),
                _ => o.problem(
                    "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
                    &v,
                    "is not a whole number of 1 or more",
                    "set it to the consecutive failures that open a breaker, such as 5",
                ),
            };
        }
        if let Some(v) = get("CIRCUIT_BREAKER_RECOVERY_TIMEOUT") {
            o.recovery_timeout = o.duration("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", &v);
        }
        if let Some(v) = get("HEALTH_CHECK_INTERVAL") {
            o.health_check_interval = o.duration("HEALTH_CHECK_INTERVAL", &v);
        }
        if let Some(v) = get("HEALTH_SCORE_THRESHOLD") {
            o.health_score_threshold = match v.trim().parse::<u32>() {
                Ok(n) if n <= 100 => Some(n),
                _ => o.problem(
                    "HEALTH_SCORE_THRESHOLD",
                    &v,
                    "is not a score from 0 to 100",
                    "set it to a whole number such as 80",
                ),
            };
        }
        if let Some(v) = get("GRACEFUL_DEGRADATION_ENABLED") {
            o.graceful_degradation_enabled = o.boolean("GRACEFUL_DEGRADATION_ENABLED", &v);
        }
        if let Some(v) = get("AUTO_RECOVERY_ENABLED") {
            o.auto_recovery_enabled = o.boolean("AUTO_RECOVERY_ENABLED", &v);
        }
        o
    }

    fn problem<T>(&mut self, var: &str, value: &str, what: &str, fix: &str) -> Option<T> {
        self.problems.push(Problem::new(
            var,
            format!("={value:?} {what}"),
            fix.to_string(),
        ));
        None
    }

    fn boolean(&mut self, var: &str, value: &str) -> Option<bool> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => self.problem(var, value, "is not a boolean", "use true or false"),
        }
    }

    /// Seconds as a bare number (the seed's form, `300`) or a humantime duration (`5m`).
    fn duration(&mut self, var: &str, value: &str) -> Option<Duration> {
        let v = value.trim();
        let parsed = match v.parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(v).ok(),
        };
        match parsed {
            Some(d) if !d.is_zero() => Some(d),
            _ => self.problem(
                var,
                value,
                "is not a duration longer than 0",
                "give seconds (300) or a duration such as \"5m\"",
            ),
        }
    }

    /// Applies what parsed to `config`; returns the problems found while reading.
    pub fn apply(self, config: &mut Config) -> Vec<Problem> {
        let rt = &mut config.runtime;
        if let Some(v) = self.circuit_breaker_enabled {
            rt.circuit_breaker_enabled = v;
        }
        if let Some(v) = self.health_check_interval {
            rt.health_check_interval = v;
        }
        if let Some(v) = self.health_score_threshold {
            // Any score from 0 to 100 is a valid threshold: the degraded and
            // critical bands below it follow it down rather than conflict.
            rt.health_score_threshold = v;
            rt.degraded_score_threshold = rt.degraded_score_threshold.min(v);
            rt.critical_score_threshold =
                rt.critical_score_threshold.min(rt.degraded_score_threshold);
        }
        if let Some(v) = self.graceful_degradation_enabled {
            rt.graceful_degradation_enabled = v;
        }
        if let Some(v) = self.auto_recovery_enabled {
            rt.auto_recovery_enabled = v;
        }
        for service in config.services.values_mut() {
            if let Some(n) = self.failure_threshold {
                service.failure_threshold = n;
            }
            if let Some(d) = self.recovery_timeout {
                service.open_timeout = d;
                if let Some(max) = service.max_open_timeout {
                    service.max_open_timeout = Some(max.max(d));
                }
            }
        }
        self.problems
    }
}
