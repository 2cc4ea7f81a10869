//! Why a call through a handle did not produce a response.

use crate::breaker::{BreakerState, Outcome, TripCause};

fn retry_hint(open_until: Option<std::time::Instant>) -> String {
    match open_until {
        Some(at) => format!(
            "; next probe in {}",
            humantime::format_duration(std::time::Duration::from_millis(
                u64::try_from(
                    at.saturating_duration_since(crate::clock::now())
                        .as_millis()
                )
                .unwrap_or(u64::MAX)
            ))
        ),
        None => String::new(),
    }
}
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
    #[error("{service}: breaker is {state} (tripped by {cause}{}), call rejected without reaching the service", retry_hint(*.open_until))]
    Rejected {
        /// The service.
        service: &'static str,
        /// The state that rejected it.
        state: BreakerState,
        /// When an Open breaker next admits a probe (see [`CallError::retry_in`]).
        open_until: Option<std::time::Instant>,
        /// What tripped it.
        cause: TripCause,
    },
    /// Too many requests in flight; shed at once.
    #[error("{service}: {max_in_flight} requests already in flight (services.{service}.max_in_flight), call shed")]
    Shed {
        /// The service.
        service: &'static str,
        /// The bound that was hit.
        max_in_flight: u32,
    },
    /// A limit of the dependency would be broken (`[services.NAME.rate_limit]`),
    /// and no slot came free within `max_wait`. Never reached the service.
    #[error("{service}: rate limit {limit} reached; next slot in {}, beyond services.{service}.rate_limit.max_wait", humantime::format_duration(Duration::from_millis(u64::try_from(.retry_in.as_millis()).unwrap_or(u64::MAX))))]
    RateLimited {
        /// The service.
        service: &'static str,
        /// The key of the class and the limit, such as
        /// `services.kite_api.rate_limit.classes.quote (1/s)`.
        limit: String,
        /// When a slot would have been free.
        retry_in: Duration,
    },
    /// The breaker closed a moment ago and traffic is ramping up (slow
    /// start): this request is the surplus, shed before it reached the
    /// dependency.
    #[error("{service}: recovering; slow start admits {allowed} in flight for now (services.{service}.slow_start), call shed")]
    SlowStart {
        /// The service.
        service: &'static str,
        /// Requests in flight the ramp admits at this moment.
        allowed: u32,
    },
    /// No answer within `call_timeout`; counted as a failure.
    #[error("{service}: no answer within {} (services.{service}.call_timeout)", humantime::format_duration(*.timeout))]
    Timeout {
        /// The service.
        service: &'static str,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The service actor crashed while handling an idempotent request (for
    /// one that is not idempotent, the outcome is [`CallError::Unknown`]).
    #[error("{service}: the service actor crashed while handling the call")]
    Crashed {
        /// The service.
        service: &'static str,
    },
    /// No service actor was running to take the request (it is restarting).
    #[error("{service}: no service actor is running (restarting after a failure)")]
    Unavailable {
        /// The service.
        service: &'static str,
    },
    /// The tree is shutting down and takes no new calls.
    #[error("{service}: shutting down, no new calls accepted")]
    ShuttingDown {
        /// The service.
        service: &'static str,
    },
    /// The request may or may not have taken effect: a timeout after it was
    /// sent for a request that is not idempotent, or a reply the service
    /// classified as [`FailureKind::Ambiguous`](crate::FailureKind::Ambiguous).
    /// Never retried; reconcile (for orders: check the order book by tag).
    #[error("{service}: outcome unknown ({reason}); reconcile before sending it again")]
    Unknown {
        /// The service.
        service: &'static str,
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
        service: &'static str,
        /// Why, with what to expect.
        reason: String,
    },
    /// The dependency answered with something unusable (a quote with a
    /// price of 0, NaN or an epoch timestamp); counted as its failure.
    #[error("{service}: unusable answer: {reason}")]
    Invalid {
        /// The service.
        service: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The service answered with an error.
    #[error("{service}: {source}")]
    Service {
        /// The service.
        service: &'static str,
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
            | CallError::RateLimited { service, .. }
            | CallError::SlowStart { service, .. }
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

    /// For a rejection by an Open breaker: how long until it admits a
    /// probe (Polly's `RetryAfter`). `None` for other errors and for states
    /// with no timer (ForcedOpen, probe slots taken).
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            CallError::Rejected {
                open_until: Some(at),
                ..
            } => Some(at.saturating_duration_since(crate::clock::now())),
            CallError::RateLimited { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// Whether the request was refused before reaching the service.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            CallError::Rejected { .. }
                | CallError::Shed { .. }
                | CallError::RateLimited { .. }
                | CallError::SlowStart { .. }
                | CallError::ShuttingDown { .. }
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
