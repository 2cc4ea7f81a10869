//! The config a running tree keeps, with each service's table held once.
//!
//! A service's table is read by its breaker's cell (timeouts, limits,
//! restart rules) and by the runtime (reload diffs, degradation checks,
//! [`Seawall::config`](crate::Seawall::config)). Both hold the same
//! `Arc`, so a tree of 10,000 services keeps 10,000 tables, not 20,000
//! (`benches/scale.rs`, memory per service).

use crate::config::{Config, FleetConfig, RuntimeConfig, ServiceConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A [`Config`] whose service tables are shared with the cells.
pub(crate) struct RunningConfig {
    pub(crate) runtime: RuntimeConfig,
    pub(crate) fleet: Option<FleetConfig>,
    /// Keyed by the name its cell and registry share (`Arc<str>`).
    pub(crate) services: BTreeMap<Arc<str>, Arc<ServiceConfig>>,
    /// [`Config::version`], computed once.
    pub(crate) version: String,
}

impl RunningConfig {
    /// Takes `config` apart, moving each service's table into its `Arc`.
    pub(crate) fn new(config: Config) -> Self {
        Self::reusing(config, None)
    }

    /// Like [`Self::new`], but a table equal to one `previous` holds keeps
    /// `previous`'s `Arc`: the one its cell holds, so a reload that leaves a
    /// service unchanged does not leave it with two copies.
    pub(crate) fn reusing(config: Config, previous: Option<&RunningConfig>) -> Self {
        let version = config.version();
        let Config {
            runtime,
            services,
            fleet,
        } = config;
        let services = services
            .into_iter()
            .map(|(name, table)| {
                let kept = previous.and_then(|p| p.services.get_key_value(name.as_str()));
                // The name's text is kept once: a name the previous config
                // had reuses its `Arc`, as the table does when unchanged.
                let name = kept.map_or_else(|| Arc::from(name), |(key, _)| Arc::clone(key));
                let kept = kept
                    .map(|(_, kept)| kept)
                    .filter(|kept| ***kept == table)
                    .map(Arc::clone);
                let table = kept.unwrap_or_else(|| Arc::new(table));
                (name, table)
            })
            .collect();
        Self {
            runtime,
            fleet,
            services,
            version,
        }
    }

    /// The table of service `name`, if the config has one.
    pub(crate) fn service(&self, name: &str) -> Option<&Arc<ServiceConfig>> {
        self.services.get(name)
    }

    /// The whole config again, as [`Config`] (each table copied).
    pub(crate) fn to_config(&self) -> Config {
        Config {
            runtime: self.runtime.clone(),
            services: self
                .services
                .iter()
                .map(|(name, table)| (name.to_string(), ServiceConfig::clone(table)))
                .collect(),
            fleet: self.fleet.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_to_config_when_taken_apart_then_it_is_the_same_config() {
        let config = Config::seed_defaults();
        let running = RunningConfig::new(config.clone());
        assert_eq!(running.to_config(), config);
        assert_eq!(running.version, config.version());
    }

    #[test]
    fn test_reusing_when_a_table_is_unchanged_then_its_arc_is_kept_and_a_changed_one_is_new() {
        let config = Config::seed_defaults();
        let before = RunningConfig::new(config.clone());
        let mut next = config;
        next.services
            .get_mut("database")
            .expect("the seed has a database")
            .failure_threshold += 1;
        let after = RunningConfig::reusing(next.clone(), Some(&before));
        assert!(Arc::ptr_eq(
            &before.services["kite_api"],
            &after.services["kite_api"]
        ));
        assert!(!Arc::ptr_eq(
            &before.services["database"],
            &after.services["database"]
        ));
        assert_eq!(after.to_config(), next);
    }
}
