//! The event bus: what the tree tells its observers.
//!
//! Breaker transitions, service-actor crashes and restarts, and shutdown
//! progress are broadcast on a `tokio::sync::broadcast` channel. The health
//! aggregator listens here, and so can engine code
//! ([`crate::Seawall::subscribe`]). Events for one breaker arrive in the
//! order its state changed.

use crate::breaker::Transition;
use crate::health::HealthStatus;
use crate::modes::Modes;
use std::sync::Arc;

/// Something that happened in the tree.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A breaker changed state.
    Transition {
        /// The service whose breaker moved.
        service: Arc<str>,
        /// What changed, when, and why.
        transition: Transition,
    },
    /// A service actor failed (panicked, or its start-up failed).
    ServiceActorFailed {
        /// The service.
        service: Arc<str>,
        /// Which of its `concurrency` actors.
        worker: usize,
        /// What it failed with.
        error: String,
    },
    /// A failed service actor was started again.
    ServiceActorRestarted {
        /// The service.
        service: Arc<str>,
        /// Which of its `concurrency` actors.
        worker: usize,
    },
    /// Supervision gave up on a service (restart intensity exceeded): its
    /// breaker is forced open until a recovery succeeds or an operator resets it.
    Escalated {
        /// The service.
        service: Arc<str>,
        /// Why, with the numbers.
        reason: String,
    },
    /// The recovery actor ran one attempt of the service's strategy.
    RecoveryAttempted {
        /// The service.
        service: Arc<str>,
        /// 1-based attempt number since the breaker opened.
        attempt: u32,
        /// `None` on success, else what went wrong.
        error: Option<String>,
    },
    /// The recovery strategy gave up after `max_attempts`.
    RecoveryGaveUp {
        /// The service.
        service: Arc<str>,
        /// Attempts made.
        attempts: u32,
    },
    /// A service's credentials failed (`failure` is the error) or work
    /// again (`None`). Orders are halted while any credentials fail.
    Auth {
        /// The service.
        service: Arc<str>,
        /// The error, or `None` once a call succeeds again.
        failure: Option<String>,
    },
    /// The trading modes changed (also on `Seawall::modes`).
    ModesChanged(Modes),
    /// Something an operator should see now.
    Alert(Alert),
    /// A service finished shutting down; in-flight calls were answered.
    ServiceStopped {
        /// The service.
        service: Arc<str>,
    },
    /// A reload applied a new config ([`crate::Seawall::reload`]).
    ConfigReloaded(ReloadSummary),
    /// An operator commanded a breaker (reset, force-open, disable) or
    /// reloaded the config through the HTTP face.
    AdminAction {
        /// What was done: "reset", "forced open", "disabled", "config reload".
        action: Arc<str>,
        /// The breaker, or empty for tree-wide actions.
        service: Arc<str>,
        /// Who asked: the client's address.
        client: String,
        /// The reason the operator gave, if any.
        reason: Option<String>,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadSummary {
    /// The new config's version (see [`crate::config::Config::version`]).
    pub version: String,
    /// Where the config came from: the file path, or "api".
    pub source: String,
    /// Services whose tables changed, applied in place.
    pub changed: Vec<String>,
    /// Run-time breakers the new file added.
    pub added: Vec<String>,
    /// Run-time breakers the new file removed.
    pub removed: Vec<String>,
}

impl Event {
    /// The service the event is about (empty for tree-wide events).
    pub fn service(&self) -> &str {
        match self {
            Event::ModesChanged(_) | Event::ConfigReloaded(_) => "",
            Event::AdminAction { service, .. } => service,
            Event::Alert(Alert::ScoreCrossed { .. }) => "",
            Event::Alert(Alert::Escalation { service, .. })
            | Event::Alert(Alert::Flap { service, .. })
            | Event::Alert(Alert::Auth { service, .. }) => service,
            Event::Transition { service, .. }
            | Event::ServiceActorFailed { service, .. }
            | Event::ServiceActorRestarted { service, .. }
            | Event::Escalated { service, .. }
            | Event::RecoveryAttempted { service, .. }
            | Event::RecoveryGaveUp { service, .. }
            | Event::Auth { service, .. }
            | Event::ServiceStopped { service } => service,
        }
    }
}

/// An alert from the health aggregator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Alert {
    /// The score crossed `HEALTH_SCORE_THRESHOLD`, in either direction.
    ScoreCrossed {
        /// The new score.
        score: u8,
        /// The threshold.
        threshold: u32,
        /// Whether it went below (else back at or above).
        below: bool,
        /// The status now.
        status: HealthStatus,
        /// What to do.
        recommendations: Vec<String>,
    },
    /// A service's credentials failed (trading rule 5).
    Auth {
        /// The service.
        service: Arc<str>,
        /// The error.
        error: String,
    },
    /// Supervision escalated a service.
    Escalation {
        /// The service.
        service: Arc<str>,
        /// Why.
        reason: String,
    },
    /// A breaker re-opened within its stability window after recovering:
    /// flapping is worse than staying open, so its next open lasts longer.
    Flap {
        /// The service.
        service: Arc<str>,
        /// Flaps so far.
        flaps: u64,
        /// When this longer open period ends.
        open_until: Option<std::time::Instant>,
    },
}
