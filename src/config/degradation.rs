//! `[services.NAME.degradation]`: what to answer, and which modes to enter,
//! while a service's breaker is out of service.

use super::Problem;
use crate::modes::{DatabaseMode, DecisionMode, ModeEffects, PriceMode, TradingMode};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fallback a service uses while its breaker is out of service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// No fallback: calls fail fast with the breaker's error.
    #[default]
    None,
    /// The broker: new orders refused with a clear error; trading Halted.
    DisableOrders,
    /// AI agents: HOLD with confidence 0 (or a technical indicator).
    ConservativeHold,
    /// Market data: the last good quote with its age; Reducing trading.
    LastKnownPrice,
    /// Database: reads from a cache, writes journaled and replayed.
    ReadOnlyCache,
    /// Another configured service of the same kind (`failover_to`).
    Failover,
    /// A closure registered with `register_degradation_strategy`.
    Custom,
}

/// One `[services.NAME.degradation]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DegradationConfig {
    /// Which fallback.
    pub strategy: StrategyKind,
    /// `last_known_price`: quotes older than this are refused, never used.
    #[serde(with = "humantime_serde")]
    pub max_staleness: Duration,
    /// `conservative_hold`: decide from a technical indicator over
    /// last-known prices instead of holding.
    pub technical_only: bool,
    /// `read_only_cache`: how many recent read results to keep.
    pub cache_capacity: usize,
    /// `read_only_cache`: how many writes the journal holds while the
    /// database is out. A write beyond it is refused (the caller is told;
    /// it is not lost in silence): an outage of a whole trading day must
    /// not grow memory until the process is killed and the journal with it.
    pub journal_capacity: usize,
    /// Another service of the same type that answers first whenever this
    /// one cannot answer live (the seed's "alternative data sources"); with
    /// any strategy, its own fallback comes after (market data: the
    /// alternative source, then the last good price, then nothing).
    pub failover_to: Option<String>,
    /// Overrides the modes this service's outage forces (default: from `strategy`).
    pub on_open: Option<ModeEffects>,
}

impl Default for DegradationConfig {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::None,
            max_staleness: Duration::from_secs(5),
            technical_only: false,
            cache_capacity: 1024,
            journal_capacity: 100_000,
            failover_to: None,
            on_open: None,
        }
    }
}

impl DegradationConfig {
    /// The modes this service's outage forces.
    pub fn effects(&self) -> ModeEffects {
        if let Some(effects) = self.on_open {
            return effects;
        }
        let mut e = ModeEffects::default();
        match self.strategy {
            StrategyKind::DisableOrders => e.trading = Some(TradingMode::Halted),
            StrategyKind::LastKnownPrice => {
                e.price = Some(PriceMode::LastKnown);
                e.trading = Some(TradingMode::Reducing);
            }
            StrategyKind::ConservativeHold => {
                e.decision = Some(if self.technical_only {
                    DecisionMode::TechnicalOnly
                } else {
                    DecisionMode::Hold
                });
            }
            StrategyKind::ReadOnlyCache => e.database = Some(DatabaseMode::ReadOnly),
            StrategyKind::None | StrategyKind::Failover | StrategyKind::Custom => {}
        }
        e
    }

    pub(crate) fn problems(
        &self,
        name: &str,
        services: &dyn Fn(&str) -> bool,
        out: &mut Vec<Problem>,
    ) {
        let key = |f: &str| format!("services.{name}.degradation.{f}");
        if self.max_staleness.is_zero() {
            out.push(Problem::new(
                key("max_staleness"),
                "must be longer than 0",
                "set how old a last-known price may be, such as \"5s\"",
            ));
        }
        if self.cache_capacity == 0 {
            out.push(Problem::new(
                key("cache_capacity"),
                "must be at least 1 (got 0)",
                "set how many recent reads to keep, such as 1024",
            ));
        }
        if !(1..=10_000_000).contains(&self.journal_capacity) {
            out.push(Problem::new(
                key("journal_capacity"),
                format!(
                    "must be between 1 and 10000000 (got {})",
                    self.journal_capacity
                ),
                "set how many writes to hold while the database is out, such as 100000",
            ));
        }
        match (&self.strategy, &self.failover_to) {
            (StrategyKind::Failover, None) => out.push(Problem::new(
                key("failover_to"),
                "is required when strategy = \"failover\"",
                "name another [services.X] to switch to",
            )),
            (StrategyKind::Failover, Some(to)) if to == name => out.push(Problem::new(
                key("failover_to"),
                format!("names the service itself ({to:?})"),
                "name another [services.X] to switch to",
            )),
            (StrategyKind::Failover, Some(to)) if !services(to) => out.push(Problem::new(
                key("failover_to"),
                format!("names {to:?}, which has no [services.{to}] table"),
                "add that service, or name one that exists",
            )),
            (_, Some(to)) if to == name => out.push(Problem::new(
                key("failover_to"),
                format!("names the service itself ({to:?})"),
                "name another [services.X] to switch to",
            )),
            (_, Some(to)) if !services(to) => out.push(Problem::new(
                key("failover_to"),
                format!("names {to:?}, which has no [services.{to}] table"),
                "add that service, or name one that exists",
            )),
            _ => {}
        }
    }
}
