//! The event bus: what the tree tells its observers.
//!
//! Breaker transitions, service-actor crashes and restarts, and shutdown
//! progress are broadcast on a `tokio::sync::broadcast` channel. The health
//! aggregator listens here, and so can engine code
//! ([`crate::Seawall::subscribe`]). Events for one breaker arrive in the
//! order its state changed.

use crate::breaker::Transition;
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
    /// A service finished shutting down; in-flight calls were answered.
    ServiceStopped {
        /// The service.
        service: Arc<str>,
    },
}

impl Event {
    /// The service the event is about.
    pub fn service(&self) -> &str {
        match self {
            Event::Transition { service, .. }
            | Event::ServiceActorFailed { service, .. }
            | Event::ServiceActorRestarted { service, .. }
            | Event::ServiceStopped { service } => service,
        }
    }
}
