//! The read model behind every report: what the health actor last cached,
//! plus the controls, so a report is built from cached state alone.

use super::report::{self, HealthCache, ReportContext};
use super::score::Thresholds;
use crate::cell::BreakerControl;
use crate::clock::now;
use crate::modes::Modes;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// State shared between the health actor (writer) and report readers.
pub(crate) struct HealthShared {
    pub(crate) cache: Mutex<HealthCache>,
    pub(crate) controls: Vec<BreakerControl>,
    pub(crate) modes: watch::Receiver<Modes>,
    pub(crate) thresholds: Thresholds,
    pub(crate) check_interval: Duration,
    /// The config's version; a reload replaces it.
    pub(crate) config: Mutex<super::ConfigVersion>,
}

impl HealthShared {
    /// The config's version, as last recorded.
    pub(crate) fn config_version(&self) -> super::ConfigVersion {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Builds a report from cached state.
    pub(crate) fn report(&self) -> super::HealthReport {
        let started = std::time::Instant::now();
        let modes = self.modes.borrow().clone();
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        report::build(&self.controls, &cache, self.context(&modes, started), now())
    }

    /// The report's score, status and advice alone ([`report::summary`]):
    /// what the health actor needs on every interval.
    pub(crate) fn summary(&self) -> report::Summary {
        let modes = self.modes.borrow().clone();
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let context = self.context(&modes, std::time::Instant::now());
        report::summary(&self.controls, &cache, context, now())
    }

    fn context<'a>(
        &self,
        modes: &'a crate::modes::Modes,
        started: std::time::Instant,
    ) -> ReportContext<'a> {
        ReportContext {
            thresholds: self.thresholds,
            check_interval: self.check_interval,
            modes,
            started,
            config: self.config_version(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::BreakerCell;
    use crate::config::Config;
    use crate::health::report::CheckResult;
    use crate::health::ConfigVersion;
    use crate::modes::{Modes, OrderGate, TradingMode};
    use std::sync::Arc;
    use std::time::SystemTime;

    fn shared(trading: TradingMode) -> HealthShared {
        let gate = Arc::new(OrderGate::default());
        let controls = Config::seed_defaults()
            .services
            .into_iter()
            .map(|(name, config)| {
                let cell = BreakerCell::for_test(&name, config, Arc::clone(&gate));
                BreakerControl::new(Arc::new(cell))
            })
            .collect();
        let modes = Modes {
            trading,
            ..Modes::normal(SystemTime::now())
        };
        HealthShared {
            cache: Mutex::new(HealthCache::default()),
            controls,
            modes: watch::channel(modes).1,
            thresholds: Default::default(),
            check_interval: Duration::from_secs(30),
            config: Mutex::new(ConfigVersion {
                version: "test".to_string(),
                loaded_at: SystemTime::now(),
                last_reload_at: None,
                reloads: 0,
            }),
        }
    }

    /// The health actor alerts from the summary and the operator reads the
    /// report: the two must agree on the score, the status and the advice.
    #[test]
    fn test_summary_when_services_are_out_and_trading_halted_then_it_matches_the_full_report() {
        let shared = shared(TradingMode::Halted);
        let named = |name: &str| {
            let control = shared.controls.iter().find(|c| c.name() == name);
            control.expect("a seed service").clone()
        };
        named("kite_api")
            .cell()
            .apply(|m| m.force_open("maintenance", now()));
        shared.cache.lock().unwrap().checks.insert(
            Arc::from("database"),
            CheckResult {
                healthy: false,
                at: now(),
                latency: Duration::from_millis(3),
                error: Some("connection refused".to_string()),
            },
        );
        let summary = shared.summary();
        let report = shared.report();
        assert!(report.health_score < 100, "the state must cost points");
        assert!(
            report.recommendations.len() >= 2,
            "{:?}",
            report.recommendations
        );
        assert_eq!(summary.health_score, report.health_score);
        assert_eq!(summary.status, report.status);
        assert_eq!(summary.recommendations, report.recommendations);
    }
}
