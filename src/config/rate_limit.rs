//! `[services.NAME.rate_limit]`: the dependency's own request limits.

use super::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[services.NAME.rate_limit]`: limits per request class (the service's
/// `Policy::request_class`), paced so the dependency never has to say 429.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// How long a request may wait for its slot before it is refused.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
    /// Limits per class; `default` covers classes not named.
    pub classes: BTreeMap<String, ClassLimit>,
}

fn default_max_wait() -> Duration {
    Duration::from_secs(1)
}

/// One class's limits; a request must fit all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLimit {
    /// Requests per calendar second.
    pub per_second: Option<u32>,
    /// Requests per minute.
    pub per_minute: Option<u32>,
    /// Requests per day.
    pub per_day: Option<u32>,
}

impl RateLimitConfig {
    pub(crate) fn problems(&self, name: &str, out: &mut Vec<Problem>) {
        let key = |f: &str| format!("services.{name}.rate_limit.{f}");
        super::error::check_max_duration(
            out,
            key("max_wait"),
            self.max_wait,
            Duration::from_secs(60),
        );
        if self.classes.is_empty() {
            out.push(Problem::new(
                key("classes"),
                "names no class",
                "add one, such as classes.default = { per_second = 10 }",
            ));
        }
        for (class, limit) in &self.classes {
            let all = [
                ("per_second", limit.per_second),
                ("per_minute", limit.per_minute),
                ("per_day", limit.per_day),
            ];
            if all.iter().all(|(_, v)| v.is_none()) {
                out.push(Problem::new(
                    key(&format!("classes.{class}")),
                    "sets no limit",
                    "set per_second, per_minute and/or per_day",
                ));
            }
            for (field, value) in all {
                if let Some(v) = value {
                    if !(1..=1_000_000).contains(&v) {
                        out.push(Problem::new(
                            key(&format!("classes.{class}.{field}")),
                            format!("must be between 1 and 1000000 (got {v})"),
                            "set the dependency's documented limit",
                        ));
                    }
                }
            }
        }
    }
}
