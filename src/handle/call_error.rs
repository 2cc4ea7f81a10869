//! Why a call through a handle did not produce a response.

use crate::breaker::{BreakerState, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// Why a call did not produce a response.
///
/// Every variant names the service. Refusals (`Rejected`, `Shed`,
/// `ShuttingDown`) are cheap: no backtrace, no allocation beyond a
/// reference-count bump of the name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E: std::error::Error + 'static> {
    /// The breaker is open; the request never reached the service.
    #[error("{service}: breaker is {state}, call rejected without reaching the service")]
    Rejected {
        /// The service.
        service: Arc<str>,
        /// The state that rejected it.
        state: BreakerState,
    },
    /// Too many requests in flight; shed at once.
    #[error("{service}: {max_in_flight} requests already in flight (services.{service}.max_in_flight), call shed")]
    Shed {
        /// The service.
        service: Arc<str>,
        /// The bound that was hit.
        max_in_flight: u32,
    },
    /// No answer within `call_timeout`; counted as a failure.
    #[error("{service}: no answer within {} (services.{service}.call_timeout)", humantime::format_duration(*.timeout))]
    Timeout {
        /// The service.
        service: Arc<str>,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The service actor crashed while handling an idempotent request (for
    /// one that is not idempotent, the outcome is [`CallError::Unknown`]).
    #[error("{service}: the service actor crashed while handling the call")]
    Crashed {
        /// The service.
        service: Arc<str>,
    },
    /// No service actor was running to take the request (it is restarting).
    #[error("{service}: no service actor is running (restarting after a failure)")]
    Unavailable {
        /// The service.
        service: Arc<str>,
    },
    /// The tree is shutting down and takes no new calls.
    #[error("{service}: shutting down, no new calls accepted")]
    ShuttingDown {
        /// The service.
        service: Arc<str>,
    },
    /// The request may or may not have taken effect: a timeout after it was
    /// sent for a request that is not idempotent, or a reply the service
    /// classified as [`FailureKind::Ambiguous`](crate::FailureKind::Ambiguous).
    /// Never retried; reconcile (for orders: check the order book by tag).
    #[error("{service}: outcome unknown ({reason}); reconcile before sending it again")]
    Unknown {
        /// The service.
        service: Arc<str>,
        /// What made it ambiguous.
        reason: String,
        /// The service's error, when it answered with one.
        #[source]
        source: Option<E>,
    },
    /// The degradation policy refused the call, or had no usable fallback
    /// (orders disabled, a price past `max_staleness`, an uncached read).
    #[error("{service}: {reason}")]
    Refused {
        /// The service.
        service: Arc<str>,
        /// Why, with what to expect.
        reason: String,
    },
    /// The dependency answered with something unusable (a quote with a
    /// price of 0, NaN or an epoch timestamp); counted as its failure.
    #[error("{service}: unusable answer: {reason}")]
    Invalid {
        /// The service.
        service: Arc<str>,
        /// What was wrong with it.
        reason: String,
    },
    /// The service answered with an error.
    #[error("{service}: {source}")]
    Service {
        /// The service.
        service: Arc<str>,
        /// How the service classified the error for the breaker.
        outcome: Outcome,
        /// The service's own error.
        source: E,
    },
}

impl<E: std::error::Error + 'static> CallError<E> {
    /// The service the call was for.
    pub fn service(&self) -> &str {
        match self {
            CallError::Rejected { service, .. }
            | CallError::Shed { service, .. }
            | CallError::Timeout { service, .. }
            | CallError::Crashed { service }
            | CallError::Unavailable { service }
            | CallError::ShuttingDown { service }
            | CallError::Unknown { service, .. }
            | CallError::Refused { service, .. }
            | CallError::Invalid { service, .. }
            | CallError::Service { service, .. } => service,
        }
    }

    /// Whether the request was refused before reaching the service.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CallError::Rejected { .. } | CallError::Shed { .. } | CallError::ShuttingDown { .. }
        )
    }
}

impl<E: std::error::Error + 'static> CallError<E> {
    /// Whether trying again could help and cannot do harm, for an idempotent
    /// request: dependency failures, timeouts, crashes and restarts. Never
    /// refusals (an open breaker is not retried into), never an ignored
    /// error (an input error will not change), never [`CallError::Unknown`].
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Timeout { .. }
            | CallError::Crashed { .. }
            | CallError::Invalid { .. }
            | CallError::Unavailable { .. } => true,
            CallError::Service { outcome, .. } => outcome.is_failure(),
            _ => false,
        }
    }
}
