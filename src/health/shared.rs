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
        report::build(
            &self.controls,
            &cache,
            ReportContext {
                thresholds: self.thresholds,
                check_interval: self.check_interval,
                modes: &modes,
                started,
                config: self.config_version(),
            },
            now(),
        )
    }
}
