//! The 0–100 health score, as pure arithmetic over cached inputs.
//!
//! | component | points | definition |
//! |---|---|---|
//! | resilience | 40 | `40 × Π (1 − impactᵢ × (1 − availabilityᵢ))` over services; availability is 1 for Closed (and Disabled, MetricsOnly), 0.5 for HalfOpen, 0 for Open and ForcedOpen; `impact` is `services.NAME.health_impact` (0–1) |
//! | system | 30 | 10 each for CPU, memory and disk: full up to 80 % use, none from 95 %, linear between (the seed's warning and critical levels); a resource not yet sampled counts as full |
//! | services | 20 | `20 × healthy / checked` over services whose last health check is fresh (younger than 3 × the interval); a failed, timed-out or stale check is unhealthy; before any check, full |
//! | trading | 10 | 4 for order reject rate (full ≤ 5 %, none ≥ 50 %), 3 for last order-ack age (full ≤ 30 s, none ≥ 5 min), 3 for last reconciliation age (full ≤ 5 min, none ≥ 30 min); a metric never reported counts as full; then ×0 while Halted, ×0.5 while Reducing |
//!
//! Status comes from the total and thresholds (`health_score_threshold`,
//! `degraded_score_threshold`, `critical_score_threshold`), and is never
//! better than the modes allow: Halted is at best *unhealthy*, any other
//! degraded mode at best *degraded*. So an open broker breaker — impact 1,
//! orders halted — reads as unhealthy, never healthy (the original read 85).

use crate::breaker::BreakerState;
use crate::modes::{Modes, TradingMode};
use serde::Serialize;
use std::time::Duration;

/// Overall status, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// At or above `health_score_threshold`, modes normal.
    Healthy,
    /// At or above `degraded_score_threshold`, or a degraded mode.
    Degraded,
    /// At or above `critical_score_threshold`, or orders halted.
    Unhealthy,
    /// Below `critical_score_threshold`.
    Critical,
}

impl HealthStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Critical => "critical",
        }
    }
}

/// Metrics the engine reports about its own trading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TradingMetrics {
    /// Rejected / attempted orders over the engine's recent window, 0–1.
    pub order_reject_rate: Option<f64>,
    /// Time since the last order acknowledgement.
    pub last_order_ack_age: Option<Duration>,
    /// Time since positions were last reconciled with the broker.
    pub last_reconciliation_age: Option<Duration>,
}

/// One service, as the score sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInput {
    /// The breaker state.
    pub state: BreakerState,
    /// `health_impact`, 0–1.
    pub impact: f64,
    /// The last health check: `None` before any, `Some(false)` failed,
    /// timed out or stale.
    pub healthy: Option<bool>,
}

/// Everything the score depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInputs {
    /// Each service.
    pub services: Vec<ServiceInput>,
    /// CPU use, 0–100, if sampled.
    pub cpu_percent: Option<f64>,
    /// Memory use, 0–100, if sampled.
    pub memory_percent: Option<f64>,
    /// Disk use, 0–100, if sampled.
    pub disk_percent: Option<f64>,
    /// The engine's trading metrics.
    pub trading: TradingMetrics,
    /// The current trading mode.
    pub trading_mode: TradingMode,
}

/// The score and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreBreakdown {
    /// 0–100.
    pub total: u8,
    /// 0–40.
    pub resilience: f64,
    /// 0–30.
    pub system: f64,
    /// 0–20.
    pub services: f64,
    /// 0–10.
    pub trading: f64,
}

/// The thresholds that turn a score into a status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// At or above: healthy.
    pub healthy: u32,
    /// At or above: degraded.
    pub degraded: u32,
    /// Below: critical.
    pub critical: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            healthy: 80,
            degraded: 60,
            critical: 40,
        }
    }
}

/// Availability of one breaker state, 0–1.
pub fn availability(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly => 1.0,
        BreakerState::HalfOpen => 0.5,
        BreakerState::Open | BreakerState::ForcedOpen => 0.0,
    }
}

/// 0–40.
pub fn resilience(services: &[ServiceInput]) -> f64 {
    let kept: f64 = services
        .iter()
        .map(|s| 1.0 - s.impact.clamp(0.0, 1.0) * (1.0 - availability(s.state)))
        .product();
    40.0 * kept
}

/// Points for one resource: `max` up to 80 % use, 0 from 95 %, linear between.
pub fn resource_points(percent: Option<f64>, max: f64) -> f64 {
    match percent {
        None => max,
        Some(p) => max * ((95.0 - p) / 15.0).clamp(0.0, 1.0),
    }
}

/// 0–30.
pub fn system(cpu: Option<f64>, memory: Option<f64>, disk: Option<f64>) -> f64 {
    resource_points(cpu, 10.0) + resource_points(memory, 10.0) + resource_points(disk, 10.0)
}

/// 0–20.
pub fn service_health(services: &[ServiceInput]) -> f64 {
    let checked: Vec<bool> = services.iter().filter_map(|s| s.healthy).collect();
    if checked.is_empty() {
        return 20.0;
    }
    20.0 * checked.iter().filter(|h| **h).count() as f64 / checked.len() as f64
}

/// Linear from full at `good` to none at `bad` (`good < bad`).
fn falling(value: f64, good: f64, bad: f64) -> f64 {
    ((bad - value) / (bad - good)).clamp(0.0, 1.0)
}

/// 0–10.
pub fn trading(metrics: &TradingMetrics, mode: TradingMode) -> f64 {
    let rejects = metrics
        .order_reject_rate
        .map_or(1.0, |r| falling(r, 0.05, 0.50));
    let ack = metrics
        .last_order_ack_age
        .map_or(1.0, |a| falling(a.as_secs_f64(), 30.0, 300.0));
    let recon = metrics
        .last_reconciliation_age
        .map_or(1.0, |a| falling(a.as_secs_f64(), 300.0, 1800.0));
    let points = 4.0 * rejects + 3.0 * ack + 3.0 * recon;
    points
        * match mode {
            TradingMode::Active => 1.0,
            TradingMode::Reducing => 0.5,
            TradingMode::Halted => 0.0,
        }
}

/// The whole score.
pub fn score(inputs: &ScoreInputs) -> ScoreBreakdown {
    let resilience = resilience(&inputs.services);
    let system = system(
        inputs.cpu_percent,
        inputs.memory_percent,
        inputs.disk_percent,
    );
    let services = service_health(&inputs.services);
    let trading = trading(&inputs.trading, inputs.trading_mode);
    let total = (resilience + system + services + trading)
        .round()
        .clamp(0.0, 100.0) as u8;
    ScoreBreakdown {
        total,
        resilience,
        system,
        services,
        trading,
    }
}

/// The status for a score under `modes`.
pub fn status(total: u8, thresholds: Thresholds, modes: &Modes) -> HealthStatus {
    let total = u32::from(total);
    let by_score = if total >= thresholds.healthy {
        HealthStatus::Healthy
    } else if total >= thresholds.degraded {
        HealthStatus::Degraded
    } else if total >= thresholds.critical {
        HealthStatus::Unhealthy
    } else {
        HealthStatus::Critical
    };
    let floor = if modes.trading == TradingMode::Halted {
        HealthStatus::Unhealthy
    } else if modes.is_degraded() {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    by_score.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn svc(state: BreakerState, impact: f64, healthy: Option<bool>) -> ServiceInput {
        ServiceInput {
            state,
            impact,
            healthy,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn test_resilience_when_states_vary_then_impact_weighted_product() {
        use BreakerState::*;
        assert!(close(resilience(&[]), 40.0));
        assert!(close(resilience(&[svc(Closed, 1.0, None)]), 40.0));
        assert!(close(resilience(&[svc(HalfOpen, 1.0, None)]), 20.0));
        assert!(close(
            resilience(&[svc(Open, 1.0, None), svc(Closed, 1.0, None)]),
            0.0
        ));
        assert!(close(resilience(&[svc(ForcedOpen, 0.5, None)]), 20.0));
        assert!(close(
            resilience(&[svc(Open, 0.5, None), svc(Open, 0.5, None)]),
            10.0
        ));
        assert!(close(resilience(&[svc(Open, 0.0, None)]), 40.0));
        assert!(close(resilience(&[svc(Disabled, 1.0, None)]), 40.0));
    }

    #[test]
    fn test_resource_points_when_at_boundaries_then_full_linear_zero() {
        assert!(close(resource_points(None, 10.0), 10.0));
        assert!(close(resource_points(Some(0.0), 10.0), 10.0));
        assert!(close(resource_points(Some(80.0), 10.0), 10.0));
        assert!(close(resource_points(Some(87.5), 10.0), 5.0));
        assert!(close(resource_points(Some(95.0), 10.0), 0.0));
        assert!(close(resource_points(Some(100.0), 10.0), 0.0));
        assert!(close(system(Some(80.0), Some(95.0), None), 20.0));
    }

    #[test]
    fn test_service_health_when_checks_vary_then_fraction_of_checked() {
        use BreakerState::Closed;
        assert!(close(service_health(&[svc(Closed, 1.0, None)]), 20.0));
        let mixed = [
            svc(Closed, 1.0, Some(true)),
            svc(Closed, 1.0, Some(false)),
            svc(Closed, 1.0, None),
            svc(Closed, 1.0, Some(true)),
        ];
        assert!(close(service_health(&mixed), 20.0 * 2.0 / 3.0));
        assert!(close(service_health(&[svc(Closed, 1.0, Some(false))]), 0.0));
    }

    #[test]
    fn test_trading_when_at_boundaries_then_full_linear_zero_and_mode_scaled() {
        let m = |r: Option<f64>, ack: Option<u64>, rec: Option<u64>| TradingMetrics {
            order_reject_rate: r,
            last_order_ack_age: ack.map(Duration::from_secs),
            last_reconciliation_age: rec.map(Duration::from_secs),
        };
        assert!(close(
            trading(&m(None, None, None), TradingMode::Active),
            10.0
        ));
        assert!(close(
            trading(&m(Some(0.05), Some(30), Some(300)), TradingMode::Active),
            10.0
        ));
        assert!(close(
            trading(&m(Some(0.50), Some(300), Some(1800)), TradingMode::Active),
            0.0
        ));
        assert!(close(
            trading(&m(Some(0.275), None, None), TradingMode::Active),
            8.0
        ));
        assert!(close(
            trading(&m(None, Some(165), None), TradingMode::Active),
            8.5
        ));
        assert!(close(
            trading(&m(None, None, Some(1050)), TradingMode::Active),
            8.5
        ));
        assert!(close(
            trading(&m(None, None, None), TradingMode::Reducing),
            5.0
        ));
        assert!(close(
            trading(&m(None, None, None), TradingMode::Halted),
            0.0
        ));
    }

    #[test]
    fn test_status_when_broker_open_then_never_healthy() {
        let at = SystemTime::UNIX_EPOCH;
        let t = Thresholds::default();
        let normal = Modes::normal(at);
        assert_eq!(status(80, t, &normal), HealthStatus::Healthy);
        assert_eq!(status(79, t, &normal), HealthStatus::Degraded);
        assert_eq!(status(60, t, &normal), HealthStatus::Degraded);
        assert_eq!(status(59, t, &normal), HealthStatus::Unhealthy);
        assert_eq!(status(40, t, &normal), HealthStatus::Unhealthy);
        assert_eq!(status(39, t, &normal), HealthStatus::Critical);
        let mut halted = Modes::normal(at);
        halted.trading = TradingMode::Halted;
        assert_eq!(status(100, t, &halted), HealthStatus::Unhealthy);
        let mut read_only = Modes::normal(at);
        read_only.database = crate::modes::DatabaseMode::ReadOnly;
        assert_eq!(status(100, t, &read_only), HealthStatus::Degraded);

        // The original's case: only the broker breaker open, all else fine.
        let inputs = ScoreInputs {
            services: vec![
                svc(BreakerState::Open, 1.0, Some(false)),
                svc(BreakerState::Closed, 1.0, Some(true)),
                svc(BreakerState::Closed, 0.5, Some(true)),
                svc(BreakerState::Closed, 0.5, Some(true)),
            ],
            cpu_percent: Some(10.0),
            memory_percent: Some(10.0),
            disk_percent: Some(10.0),
            trading: TradingMetrics::default(),
            trading_mode: TradingMode::Halted,
        };
        let s = score(&inputs);
        assert_eq!(s.total, 45);
        assert_eq!(status(s.total, t, &halted), HealthStatus::Unhealthy);
    }
}
