//! `[[services.NAME.chaos]]`: scheduled faults for a service run under
//! `seawall::chaos::Chaos`.

use super::{check_max_duration, Problem};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fault kinds, as written in `[[services.NAME.chaos]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `error` (with `error_kind`).
    Error,
    /// `latency` (with `latency`).
    Latency,
    /// `timeout`.
    Timeout,
    /// `panic`.
    Panic,
    /// `outage`.
    Outage,
}

/// One `[[services.NAME.chaos]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosPhaseConfig {
    /// When it starts after the run starts.
    #[serde(with = "humantime_serde")]
    pub from: Duration,
    /// When it ends.
    #[serde(with = "humantime_serde")]
    pub until: Duration,
    /// What happens.
    pub fault: FaultKind,
    /// For `error`: the error kind the service builds (e.g. "NetworkException").
    pub error_kind: Option<String>,
    /// For `latency`: the added delay.
    #[serde(default, with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// The chance each call is hit, 0–1 (default 1).
    pub probability: Option<f64>,
}

impl ChaosPhaseConfig {
    pub(crate) fn problems(&self, key: &str, out: &mut Vec<Problem>) {
        const MONTH: Duration = Duration::from_secs(30 * 86_400);
        for (field, value, max) in [
            ("from", Some(self.from), MONTH),
            ("until", Some(self.until), MONTH),
            ("latency", self.latency, Duration::from_secs(3600)),
        ] {
            if let Some(value) = value {
                check_max_duration(out, format!("{key}.{field}"), value, max);
            }
        }
        if self.until <= self.from {
            out.push(Problem::new(
                format!("{key}.until"),
                "must be after `from`",
                "give the phase a positive length",
            ));
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                out.push(Problem::new(
                    format!("{key}.probability"),
                    format!("must be between 0 and 1 (got {p})"),
                    "use a fraction such as 0.5",
                ));
            }
        }
        if self.fault == FaultKind::Latency && self.latency.is_none() {
            out.push(Problem::new(
                format!("{key}.latency"),
                "is required when fault = \"latency\"",
                "set the added delay, such as \"2s\"",
            ));
        }
        if self.fault == FaultKind::Error && self.error_kind.is_none() {
            out.push(Problem::new(
                format!("{key}.error_kind"),
                "is required when fault = \"error\"",
                "name the error the service should raise, such as \"NetworkException\"",
            ));
        }
    }
}
