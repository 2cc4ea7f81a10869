//! A change of breaker state and why it happened.

use super::BreakerState;
use std::fmt;
use std::time::{Duration, Instant};

/// One change of state, returned by every method that can cause one so the
/// caller can log it, publish it and schedule the next timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// Why it changed.
    pub reason: TransitionReason,
    /// When it changed, on the clock the caller passed in.
    pub at: Instant,
    /// The breaker's epoch after the change (its transition count).
    pub epoch: u64,
    /// When an Open state will let probes in, if the new state is Open.
    pub open_until: Option<Instant>,
    /// A trip within the stability window after the last recovery: the
    /// breaker is flapping, and this open lasts longer than the last.
    pub flap: bool,
    /// The failure that caused this trip was the service actor's own crash,
    /// not the dependency's: nothing another engine should act on.
    pub crash: bool,
}

/// Why a breaker changed state. Serializable, so a fleet hint carries the
/// origin's reason as it was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `count` consecutive failures reached `failure_threshold`.
    ConsecutiveFailures {
        /// Failures in a row.
        count: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// The failure rate over the window reached its threshold.
    FailureRate {
        /// Observed rate, 0–1.
        rate: f64,
        /// Configured threshold, 0–1.
        threshold: f64,
        /// Calls in the window when it tripped.
        calls: u32,
    },
    /// The slow-call rate over the window reached its threshold.
    SlowCallRate {
        /// Observed rate, 0–1.
        rate: f64,
        /// Configured threshold, 0–1.
        threshold: f64,
        /// Calls in the window when it tripped.
        calls: u32,
    },
    /// The open duration passed.
    OpenElapsed {
        /// How long it stayed open.
        open_for: Duration,
    },
    /// Enough consecutive probes succeeded.
    ProbesSucceeded {
        /// Consecutive probe successes since entering HalfOpen.
        successes: u32,
    },
    /// A probe failed.
    ProbeFailed,
    /// A probe did not return within `half_open_probe_timeout`.
    ProbeTimedOut,
    /// A probe succeeded, but slower than `slow_call_duration` while the
    /// slow-call rule is on: it counts against closing.
    ProbeSlow {
        /// How long it took.
        elapsed: Duration,
    },
    /// A recovery strategy reported the dependency back.
    RecoverySucceeded,
    /// Supervision restarted an escalated service without evidence that
    /// the dependency is back: it waits out the open duration.
    Deescalated,
    /// An operator or escalation forced the state; the text says why.
    Manual(String),
    /// Supervision gave up on the service (restart intensity exceeded).
    Escalated(String),
    /// An operator reset the breaker to Closed.
    Reset,
    /// The dependency named how long to stay away (a 429 with
    /// `Retry-After`, a ban): open for exactly that long.
    OpenFor {
        /// The duration it named.
        duration: Duration,
    },
    /// Another node of the fleet opened its breaker for this shared
    /// dependency; `reason` is why it did.
    FleetHint {
        /// The node that saw the failures.
        origin: String,
        /// Its own transition's reason.
        reason: Box<TransitionReason>,
    },
    /// Another node of the fleet closed its breaker after real probe
    /// successes: this one probes for itself.
    FleetRecovered {
        /// The node whose probes succeeded.
        origin: String,
    },
}

/// Why a breaker last left Closed, small enough to travel with every
/// rejection without an allocation (Polly's BrokenCircuitException carries
/// the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TripCause {
    /// Not known (the breaker never tripped).
    Unknown,
    /// `failure_threshold` consecutive failures.
    ConsecutiveFailures,
    /// The failure rate over the window.
    FailureRate,
    /// The slow-call rate over the window.
    SlowCallRate,
    /// A HalfOpen probe failed, timed out, or was slow.
    ProbeFailed,
    /// An operator forced it open.
    Manual,
    /// Supervision escalated (restart intensity exceeded).
    Escalated,
    /// The dependency asked for a pause (a 429 with Retry-After, a ban).
    DependencyAsked,
}

impl TripCause {
    pub(crate) fn of(reason: &TransitionReason) -> Option<Self> {
        Some(match reason {
            TransitionReason::ConsecutiveFailures { .. } => TripCause::ConsecutiveFailures,
            TransitionReason::FailureRate { .. } => TripCause::FailureRate,
            TransitionReason::SlowCallRate { .. } => TripCause::SlowCallRate,
            TransitionReason::ProbeFailed
            | TransitionReason::ProbeTimedOut
            | TransitionReason::ProbeSlow { .. } => TripCause::ProbeFailed,
            TransitionReason::Manual(_) => TripCause::Manual,
            TransitionReason::Escalated(_) => TripCause::Escalated,
            TransitionReason::OpenFor { .. } => TripCause::DependencyAsked,
            TransitionReason::FleetHint { reason, .. } => return TripCause::of(reason),
            _ => return None,
        })
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => TripCause::ConsecutiveFailures,
            2 => TripCause::FailureRate,
            3 => TripCause::SlowCallRate,
            4 => TripCause::ProbeFailed,
            5 => TripCause::Manual,
            6 => TripCause::Escalated,
            7 => TripCause::DependencyAsked,
            _ => TripCause::Unknown,
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            TripCause::Unknown => 0,
            TripCause::ConsecutiveFailures => 1,
            TripCause::FailureRate => 2,
            TripCause::SlowCallRate => 3,
            TripCause::ProbeFailed => 4,
            TripCause::Manual => 5,
            TripCause::Escalated => 6,
            TripCause::DependencyAsked => 7,
        }
    }

    /// A short name for messages and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TripCause::Unknown => "unknown",
            TripCause::ConsecutiveFailures => "consecutive failures",
            TripCause::FailureRate => "failure rate",
            TripCause::SlowCallRate => "slow-call rate",
            TripCause::ProbeFailed => "a failed probe",
            TripCause::Manual => "an operator",
            TripCause::Escalated => "escalation",
            TripCause::DependencyAsked => "the dependency (Retry-After)",
        }
    }
}

impl fmt::Display for TripCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::ConsecutiveFailures { count, threshold } => {
                write!(f, "{count} consecutive failures (threshold {threshold})")
            }
            TransitionReason::FailureRate {
                rate,
                threshold,
                calls,
            } => write_rate(f, "failure", *rate, *threshold, *calls),
            TransitionReason::SlowCallRate {
                rate,
                threshold,
                calls,
            } => write_rate(f, "slow-call", *rate, *threshold, *calls),
            TransitionReason::OpenElapsed { open_for } => {
                write!(f, "open for {}", to_millis(*open_for))
            }
            TransitionReason::ProbesSucceeded { successes } => {
                write!(f, "{successes} consecutive probe successes")
            }
            TransitionReason::ProbeFailed => f.write_str("a probe failed"),
            TransitionReason::ProbeTimedOut => f.write_str("a probe timed out"),
            TransitionReason::ProbeSlow { elapsed } => {
                write!(f, "a probe was slow ({})", to_millis(*elapsed))
            }
            TransitionReason::RecoverySucceeded => f.write_str("recovery succeeded"),
            TransitionReason::Deescalated => f.write_str(
                "service actors restarted without evidence; waiting out the open duration",
            ),
            TransitionReason::Manual(reason) => write!(f, "manual: {reason}"),
            TransitionReason::Escalated(reason) => write!(f, "escalated: {reason}"),
            TransitionReason::Reset => f.write_str("reset by operator"),
            TransitionReason::OpenFor { duration } => write!(
                f,
                "the dependency asked for {} (Retry-After)",
                humantime::format_duration(*duration)
            ),
            TransitionReason::FleetHint { origin, reason } => {
                write!(f, "fleet hint from {origin}: {reason}")
            }
            TransitionReason::FleetRecovered { origin } => write!(
                f,
                "fleet: {origin} closed after probe successes; probing here"
            ),
        }
    }
}

/// A rate rule's trip, as "failure rate 55.0% over 20 calls (threshold 50.0%)".
fn write_rate(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    rate: f64,
    threshold: f64,
    calls: u32,
) -> fmt::Result {
    write!(
        f,
        "{what} rate {:.1}% over {calls} calls (threshold {:.1}%)",
        rate * 100.0,
        threshold * 100.0
    )
}

/// A duration to the millisecond, as humantime writes it ("1s 250ms").
fn to_millis(duration: Duration) -> humantime::FormattedDuration {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis))
}
