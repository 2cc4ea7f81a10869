//! `actors.toml`: the schema, the loader, environment overrides and validation.
//!
//! A tree is described by one file with a `[runtime]` table and one
//! `[services.NAME]` table per protected dependency:
//!
//! ```toml
//! [runtime]
//! health_check_interval = "30s"
//!
//! [services.kite_api]
//! failure_threshold = 5
//! success_threshold = 3
//! open_timeout = "5m"
//! call_timeout = "10s"
//! concurrency = 4
//! ```
//!
//! Durations use humantime (`"250ms"`, `"5m"`, `"1h 30m"`). Unknown keys are
//! errors, so a typo never silently falls back to a default.
//!
//! Loading goes: parse → apply the seed's environment overrides →
//! [`Config::validate`]. Every problem found is reported at once, each naming
//! the file (or variable), the key and the fix; a syntax error names its line
//! and column.

mod chaos;
mod degradation;
mod env;
mod error;
mod fleet;
mod rate_limit;
mod runtime;
mod service;
mod supervision;

pub use chaos::{ChaosPhaseConfig, FaultKind};
pub use degradation::{DegradationConfig, StrategyKind};
pub use env::{EnvOverrides, VARIABLES as ENV_VARIABLES};
pub(crate) use error::check_max_duration;
pub use error::{ConfigError, Problem};
pub use fleet::{FleetConfig, FLEET_COOKIE_VARIABLE};
pub use rate_limit::{ClassLimit, RateLimitConfig};
pub use runtime::{HttpConfig, RuntimeConfig};
pub use service::{RateWindowConfig, ServiceConfig};
pub use supervision::{MaxAttempts, RecoveryConfig, RestartConfig, RetryConfig, Unlimited};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The whole of `actors.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tree-wide switches and intervals.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// One entry per protected dependency, keyed by the name handles use.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[fleet]`: join other engines (needs seawall's `fleet` feature and
    /// `SEAWALL_FLEET_COOKIE`). Absent: this engine runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetConfig>,
}

impl Config {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            // Name the line and column of the first bad byte, like a syntax error.
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            ConfigError::Syntax {
                origin: path.display().to_string(),
                line,
                column,
                message: "the file is not valid UTF-8 here; save it as UTF-8".to_string(),
            }
        })?;
        Self::from_toml_with_env(&text, &path.display().to_string(), |key| {
            std::env::var(key).ok()
        })
    }

    /// Parses `text` (reported as `origin` in errors), applies overrides read
    /// through `env`, and validates. Tests pass a map lookup for `env`.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (mut config, mut problems) = Self::parse_collecting(text, origin)?;
        problems.extend(EnvOverrides::read(&env).apply(&mut config));
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Parses `text` without environment overrides or validation.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::syntax(origin, text, &e))
    }

    /// Parses `text`, collecting every schema error (unknown keys, values of
    /// the wrong type) instead of stopping at the first: each offending line
    /// is set aside and the rest parsed again, so one report lists them all.
    /// Broken TOML syntax is still one [`ConfigError::Syntax`].
    fn parse_collecting(text: &str, origin: &str) -> Result<(Self, Vec<Problem>), ConfigError> {
        /// More errors than this in one file are not worth listing one by one.
        const MAX_REPORTED: usize = 64;
        let mut problems = Vec::new();
        let mut rest = text.to_string();
        loop {
            let error = match toml::from_str::<Self>(&rest) {
                Ok(config) => return Ok((config, problems)),
                Err(error) => error,
            };
            // Not a schema error but broken TOML: report it as before.
            if problems.is_empty() && rest.parse::<toml::Table>().is_err() {
                return Err(ConfigError::syntax(origin, text, &error));
            }
            problems.push(error::schema_problem(&rest, &error));
            let Some(span) = error.span() else { break };
            let start = rest[..span.start.min(rest.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let next = rest[start..].trim_start();
            // A table header cannot be set aside without moving its keys.
            if next.starts_with('[') || problems.len() >= MAX_REPORTED {
                break;
            }
            rest.insert(start, '#');
            if rest.parse::<toml::Table>().is_err() {
                break; // a multi-line value: the rest cannot be read apart
            }
        }
        Err(ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        })
    }

    /// Checks every value; the error lists every problem found.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    fn problems(&self) -> Vec<Problem> {
        let mut problems = self.runtime.problems();
        let exists = |name: &str| self.services.contains_key(name);
        for (name, service) in &self.services {
            service.problems(name, &exists, &mut problems);
        }
        if let Some(fleet) = &self.fleet {
            fleet.problems(&mut problems);
        }
        problems
    }

    /// A hash of every effective value (16 hex digits, FNV-1a over the
    /// config's JSON form, streamed: no copy of a 10,000-service config is
    /// built): equal configs share it, any change moves it.
    pub fn version(&self) -> String {
        /// FNV-1a as an `io::Write`, so serde streams into it.
        struct Fnv(u64);
        impl std::io::Write for Fnv {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                for b in bytes {
                    self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        // Serializing plain config values into a sink cannot fail.
        let _ = serde_json::to_writer(&mut hash, self);
        format!("{:016x}", hash.0)
    }

    /// The seed's four default breakers, as shipped in `actors.toml`, but
    /// without `[runtime.http]`: embedding opens no port unless asked.
    pub fn seed_defaults() -> Self {
        let mut config = Self::parse(include_str!("../actors.toml"), "actors.toml")
            .unwrap_or_else(|e| unreachable!("the shipped actors.toml parses: {e}"));
        config.runtime.http = None;
        config
    }
}
