//! Health: the 0–100 score, its components, trends, alerts and the report.
//!
//! The score is the seed's weighted sum — resilience 40, system resources
//! 30, service health 20, trading 10 — but every component is defined so an
//! outage of something the engine cannot trade without reads as one (see
//! [`score`]). The [`HealthReport`] is assembled from cached state only: no
//! health check, no resource sampling and no I/O happens while building it.

pub mod report;
pub mod score;
pub mod system;
pub mod trends;

pub use report::{BreakerReport, HealthReport};
pub use score::{HealthStatus, ScoreBreakdown, ScoreInputs, TradingMetrics};
pub use system::SystemSample;
pub use trends::{Direction, TrendWindow, Trends};

/// Serde helpers: `SystemTime` as RFC 3339 text, as dashboards expect.
pub(crate) mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub(crate) mod option {
        use serde::Serializer;
        use std::time::SystemTime;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
                None => s.serialize_none(),
            }
        }
    }
}
