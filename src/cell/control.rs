//! Operator controls over one breaker, without knowing its service type.

use super::BreakerCell;
use crate::breaker::{BreakerMetrics, BreakerState, Transition};
use crate::clock::now;
use crate::config::ServiceConfig;
use std::sync::Arc;

/// Inspect and command one breaker. Commands take effect at once on the
/// published state and are announced on the event bus like any transition.
#[derive(Clone)]
pub struct BreakerControl {
    cell: Arc<BreakerCell>,
}

impl std::fmt::Debug for BreakerControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerControl")
            .field("service", &self.cell.name())
            .field("state", &self.cell.state())
            .finish()
    }
}

impl BreakerControl {
    pub(crate) fn new(cell: Arc<BreakerCell>) -> Self {
        Self { cell }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        self.cell.name()
    }

    /// The service's name, shared (for map keys that outlive a borrow).
    pub fn shared_name(&self) -> Arc<str> {
        Arc::clone(self.cell.name())
    }

    /// The service's effective configuration, as last loaded (a reload
    /// replaces it; hold the `Arc` for one consistent view).
    pub fn config(&self) -> Arc<ServiceConfig> {
        self.cell.config()
    }

    /// Runs `config` from now on, keeping state, metrics, window contents
    /// and counters. [`crate::Seawall::reload`] validates a whole file
    /// first; this applies one service's table as given.
    pub(crate) fn reconfigure(&self, config: Arc<ServiceConfig>) {
        self.cell.reconfigure(config);
    }

    /// The published state, lock-free.
    pub fn state(&self) -> BreakerState {
        self.cell.state()
    }

    /// Counters and timings.
    pub fn metrics(&self) -> BreakerMetrics {
        self.cell.metrics()
    }

    /// Requests admitted and not yet finished.
    pub fn in_flight(&self) -> u32 {
        self.cell.in_flight()
    }

    /// Back to Closed with the base open duration; clears manual states.
    pub fn reset(&self) -> Option<Transition> {
        self.cell.apply(|m| Some(m.reset(now())))
    }

    /// Holds the breaker open, whatever the traffic, until reset.
    pub fn force_open(&self, reason: impl Into<String>) -> Option<Transition> {
        let reason = reason.into();
        self.cell.apply(|m| m.force_open(reason, now()))
    }

    /// Lets every call through and never trips, until reset.
    pub fn disable(&self, reason: impl Into<String>) -> Option<Transition> {
        let reason = reason.into();
        self.cell.apply(|m| m.disable(reason, now()))
    }

    /// Counts every call but never trips, until reset.
    pub fn metrics_only(&self, reason: impl Into<String>) -> Option<Transition> {
        let reason = reason.into();
        self.cell.apply(|m| m.metrics_only(reason, now()))
    }

    /// A recovery strategy reports the dependency back: Open → HalfOpen now.
    pub fn recovery_succeeded(&self) -> Option<Transition> {
        self.cell.apply(|m| m.recovery_succeeded(now()))
    }

    /// Ends an escalation whose recovery restarted the service actors but
    /// gave no evidence: the breaker becomes a timed Open.
    pub(crate) fn deescalate(&self) -> Option<Transition> {
        self.cell.apply(|m| m.deescalate(now()))
    }

    /// Another engine sharing this dependency saw it fail: a Closed breaker
    /// opens with the origin's `reason`, for its own open duration, then
    /// probes for itself. Other states are left alone (see
    /// [`crate::breaker::CircuitBreaker::hint_open`]).
    pub fn hint_open(
        &self,
        origin: &str,
        reason: crate::breaker::TransitionReason,
    ) -> Option<Transition> {
        self.cell.apply(|m| m.hint_open(origin, reason, now()))
    }

    /// Another engine closed its breaker for this dependency after real
    /// probe successes: an Open breaker moves to HalfOpen and probes.
    pub fn hint_probe(&self, origin: &str) -> Option<Transition> {
        self.cell.apply(|m| m.hint_probe(origin, now()))
    }

    /// The last transition to Open, whatever the state now.
    #[cfg(feature = "fleet")]
    pub(crate) fn last_trip(&self) -> Option<crate::breaker::Transition> {
        self.cell.last_trip()
    }

    /// This node's share of the service's rate limits.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn share(&self) -> crate::cell::FleetShare {
        self.cell.share()
    }

    /// Keeps this node's share valid for `for_` (renewed every heartbeat).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn renew_share_lease(&self, for_: std::time::Duration) {
        self.cell.renew_share_lease(for_);
    }

    /// Paces by `share` of the rate limits from now on (drained).
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn set_share(&self, share: crate::cell::FleetShare) -> bool {
        self.cell.set_share(share)
    }

    /// Restarts, escalations, recovery attempts and retries so far.
    pub fn supervision(&self) -> crate::stats::SupervisionStats {
        self.cell.stats.snapshot()
    }

    pub(crate) fn stats(&self) -> &crate::stats::SupervisionCounters {
        &self.cell.stats
    }

    pub(crate) fn trend_point(&self) -> (u64, u64, crate::breaker::SparseHistogram) {
        self.cell.trend_point()
    }

    pub(crate) fn cell(&self) -> &Arc<BreakerCell> {
        &self.cell
    }

    pub(crate) fn begin_closing(&self) {
        self.cell.begin_closing();
    }
}
