//! What a protected dependency looks like to seawall.
//!
//! Implement [`Service`] once per dependency (the broker client, the
//! database pool member, an AI agent, the market-data feed). seawall runs
//! each instance inside its own service actor, so methods take `&mut self`
//! and need no locking: with `concurrency = N` the runtime builds N
//! instances from your factory, like a connection pool.

use crate::breaker::{FailureKind, Outcome};
use std::future::Future;

/// One protected dependency.
///
/// Only [`Service::call`] is required. The rest have safe defaults: every
/// error counts as a failure, reconnecting and health checks succeed.
pub trait Service: Send + 'static {
    /// What the engine asks of the dependency.
    type Request: Send + 'static;
    /// What the dependency answers.
    type Response: Send + 'static;
    /// What can go wrong; `classify` decides whether it is the dependency's fault.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Performs one request.
    fn call(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// Decides what an error means for the breaker: a dependency failure,
    /// or something to count but ignore (an input error, a margin reject,
    /// a 429). The default counts every error as a failure.
    fn classify(&self, error: &Self::Error) -> Outcome {
        let _ = error;
        Outcome::Failure(FailureKind::Other)
    }

    /// Whether `error` means the engine's credentials are no longer valid
    /// (Kite's `TokenException`). Trading rule 5: such an error should be
    /// classified `Ignored` (it does not trip or retry); this flag raises an
    /// auth alert and halts orders until a call succeeds again.
    fn is_auth_failure(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Whether `request` may be sent twice with the effect of once. Only
    /// idempotent requests are ever retried, and a timeout of a request that
    /// is not idempotent is reported as `CallError::Unknown`. The default,
    /// `false`, is the safe one: order placement, modification and
    /// cancellation must never say `true` (Kite has no idempotency key).
    fn is_idempotent(request: &Self::Request) -> bool {
        let _ = request;
        false
    }

    /// Runs when the service actor starts (connect, log in). An error here
    /// is a start-up failure of the service actor.
    fn start(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Re-establishes the connection after an outage; the default recovery
    /// strategy calls it.
    fn reconnect(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// A cheap probe of the dependency's health, run on the health interval.
    fn health_check(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}
