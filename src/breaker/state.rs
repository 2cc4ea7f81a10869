//! The states a breaker can be in.

use serde::Serialize;
use std::fmt;

/// The state of one breaker.
///
/// The first three are driven by traffic and timers; the last three are set
/// by an operator (or by escalation) and carry a reason alongside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted against the trip rules.
    Closed = 0,
    /// Calls are rejected at once until the open duration passes.
    Open = 1,
    /// A limited number of probe calls test whether the dependency is back.
    HalfOpen = 2,
    /// Held open by an operator or by escalation, regardless of traffic.
    ForcedOpen = 3,
    /// The breaker is out of the way: every call is admitted, nothing trips.
    Disabled = 4,
    /// Every call is admitted and counted, but the breaker never trips.
    MetricsOnly = 5,
}

impl BreakerState {
    /// Whether calls are rejected in this state without reaching the service.
    pub fn rejects_all(self) -> bool {
        matches!(self, BreakerState::Open | BreakerState::ForcedOpen)
    }

    /// Whether this state was set by a command rather than by traffic.
    pub fn is_manual(self) -> bool {
        matches!(
            self,
            BreakerState::ForcedOpen | BreakerState::Disabled | BreakerState::MetricsOnly
        )
    }

    /// The lower-case name used in logs, JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
            BreakerState::MetricsOnly => "metrics_only",
        }
    }

    /// Every state, in discriminant order (for one-hot metrics).
    pub const ALL: [BreakerState; 6] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::ForcedOpen,
        BreakerState::Disabled,
        BreakerState::MetricsOnly,
    ];

    /// The inverse of `self as u8`; unknown values read as `Closed`'s
    /// opposite, `ForcedOpen`, so a corrupted word fails closed.
    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            4 => BreakerState::Disabled,
            5 => BreakerState::MetricsOnly,
            _ => BreakerState::ForcedOpen,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
