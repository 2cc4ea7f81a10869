//! Supervision counters: restarts, escalations, recovery attempts, retries.

use std::sync::atomic::{AtomicU64, Ordering};

/// What supervision has done for one service, for its status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SupervisionStats {
    /// Service actors restarted after a crash or failed start.
    pub restarts: u64,
    /// Times restart intensity was exceeded and the breaker forced open.
    pub escalations: u64,
    /// Recovery-strategy attempts.
    pub recovery_attempts: u64,
    /// Attempts that failed.
    pub recovery_failures: u64,
    /// Attempts that succeeded (each moved the breaker to HalfOpen).
    pub recoveries: u64,
    /// Retries of idempotent requests (attempts after the first).
    pub retries: u64,
    /// Replies served by a degradation strategy (a fallback, a cached
    /// value, a failover) instead of the live service.
    pub degraded_replies: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SupervisionCounters {
    pub(crate) restarts: AtomicU64,
    pub(crate) escalations: AtomicU64,
    pub(crate) recovery_attempts: AtomicU64,
    pub(crate) recovery_failures: AtomicU64,
    pub(crate) recoveries: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) degraded_replies: AtomicU64,
}

impl SupervisionCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SupervisionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SupervisionStats {
            restarts: get(&self.restarts),
            escalations: get(&self.escalations),
            recovery_attempts: get(&self.recovery_attempts),
            recovery_failures: get(&self.recovery_failures),
            recoveries: get(&self.recoveries),
            retries: get(&self.retries),
            degraded_replies: get(&self.degraded_replies),
        }
    }
}
