//! Health: the 0–100 score, its components, trends, alerts and the report.
//!
//! The score is the seed's weighted sum — resilience 40, system resources
//! 30, service health 20, trading 10 — but every component is defined so an
//! outage of something the engine cannot trade without reads as one (see
//! [`score`]). The [`HealthReport`] is assembled from cached state only: no
//! health check, no resource sampling and no I/O happens while building it.

pub mod report;
pub mod score;
mod shared;
pub mod system;
pub mod trends;

pub use report::{BreakerReport, ConfigVersion, HealthReport};
pub use score::{HealthStatus, ScoreBreakdown, ScoreInputs, TradingMetrics};
pub(crate) use shared::HealthShared;
pub use system::SystemSample;
pub use trends::{Direction, TrendWindow, Trends};
