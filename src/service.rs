//! What a protected dependency looks like to seawall.
//!
//! Implement [`Service`] once per dependency (the broker client, the
//! database pool member, an AI agent, the market-data feed). seawall runs
//! each instance inside its own service actor, so methods take `&mut self`
//! and need no locking: with `concurrency = N` the runtime builds N
//! instances from your factory, like a connection pool, and one more for
//! health checks, so a check never queues behind the service's calls.
//!
//! Three small traits, each with one job:
//!
//! * [`Service`]: the types and the call;
//! * [`Policy`]: how the breaker reads errors, answers and requests
//!   (named by `Service::Policy`, so a wrapper keeps it whole);
//! * [`Lifecycle`]: start, reconnect and health check.
//!
//! # Evidence
//!
//! Recovery shortens an outage only on evidence from the dependency itself.
//! [`Lifecycle::reconnect`] and [`Lifecycle::health_check`] answer
//! [`Evidence::Observed`] when they really reached the dependency. Their
//! defaults answer [`Evidence::NotImplemented`]: a service that implements
//! only `call` gives no evidence, so its breaker waits out `open_timeout`
//! and closes only on `success_threshold` real probe successes.

use crate::breaker::{FailureKind, Outcome};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// What an order request does to exposure: the one thing the order gate
/// needs to know about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderIntent {
    /// A new order that adds risk.
    Open,
    /// A change to a resting order (may add risk, so gated like `Open`).
    Modify,
    /// A cancel of a resting order (reduces risk; always allowed).
    Cancel,
    /// An order that closes or reduces a position.
    Exit,
}

/// What a reconnect or health check learned about the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// It reached the dependency, and the dependency answered well.
    Observed,
    /// This probe is not implemented: nothing was learned, and nothing may
    /// be concluded from the `Ok`.
    NotImplemented,
}

/// One protected dependency: its types, how the breaker reads it, and the call.
///
/// Only the call is implemented here. How the breaker judges the
/// dependency's errors, answers and requests is the [`Policy`] named by
/// [`Service::Policy`] ([`DefaultPolicy`] for the safe defaults), and
/// connecting, reconnecting and health checks are the [`Lifecycle`] trait.
/// A wrapper (such as `Chaos`) that says `type Policy =
/// S::Policy` keeps the whole policy: there is no method to forget.
pub trait Service: Send + 'static {
    /// What the engine asks of the dependency.
    type Request: Send + 'static;
    /// What the dependency answers.
    type Response: Send + 'static;
    /// What can go wrong; the policy decides whether it is the dependency's fault.
    type Error: std::error::Error + Send + Sync + 'static;
    /// How the breaker reads this dependency; [`DefaultPolicy`] counts every
    /// error as a failure and treats no request as idempotent or an order.
    type Policy: Policy<Self::Request, Self::Response, Self::Error>;

    /// Performs one request.
    fn call(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
}

/// How the breaker reads a dependency's errors, answers and requests.
///
/// Every function has the safe default; implement the ones your dependency
/// needs on a unit type and name it as [`Service::Policy`]. The functions
/// take no instance: a policy is a property of the dependency's protocol,
/// not of one connection, and it is read on the hot path without a lock.
pub trait Policy<Request, Response, Error>: Send + Sync + 'static {
    /// Decides what an error means for the breaker: a dependency failure,
    /// or something to count but ignore (an input error, a margin reject,
    /// a 429). The default counts every error as a failure.
    fn classify(error: &Error) -> Outcome {
        let _ = error;
        Outcome::Failure(FailureKind::Other)
    }

    /// Decides what a successful reply means for the breaker: a reply can be
    /// a failure of the dependency too (an empty quote, a book missing an
    /// order it placed). A `Failure` is counted as one and the caller gets
    /// `CallError::Invalid`; `Ignored` is returned to the caller but does
    /// not count. The default counts every reply as a success.
    fn classify_response(response: &Response) -> Outcome {
        let _ = response;
        Outcome::Success
    }

    /// Whether `error` means the engine's credentials are no longer valid
    /// (Kite's `TokenException`). Trading rule 5: such an error should be
    /// classified `Ignored` (it does not trip or retry); this flag halts
    /// orders at once and raises an auth alert, until a call succeeds again.
    fn is_auth_failure(error: &Error) -> bool {
        let _ = error;
        false
    }

    /// Whether `request` may be sent twice with the effect of once. Only
    /// idempotent requests are ever retried, and any unknown outcome of a
    /// request that is not idempotent (a timeout, a crash after it was sent)
    /// is reported as `CallError::Unknown`. The default, `false`, is the
    /// safe one: order placement, modification and cancellation must never
    /// say `true` (Kite has no idempotency key).
    fn is_idempotent(request: &Request) -> bool {
        let _ = request;
        false
    }

    /// Whether `request` is an order, and what it does to exposure. Every
    /// path that sends a request checks this against the trading mode (the
    /// one order gate), so a broker's policy must answer it for every order
    /// it can send. The default, `None`, is for services that send no orders.
    fn order_intent(request: &Request) -> Option<OrderIntent> {
        let _ = request;
        None
    }

    /// Which of `[services.NAME.rate_limit].classes` the request counts
    /// against (Kite: "quote", "orders", …). The default is `"default"`.
    fn request_class(request: &Request) -> &'static str {
        let _ = request;
        "default"
    }

    /// How long the dependency asked to be left alone, if `error` says so
    /// (a 429 with `Retry-After`, a ban). That request class is paused for
    /// exactly that long, or, with no rate limits configured, the breaker
    /// opens for exactly that long.
    fn retry_after(error: &Error) -> Option<std::time::Duration> {
        let _ = error;
        None
    }
}

/// The safe defaults: every error a failure, every reply a success, no
/// request idempotent or an order, one rate class.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl<Request, Response, Error> Policy<Request, Response, Error> for DefaultPolicy {}

/// Connecting, reconnecting and probing a dependency.
///
/// Every method has a default that gives no evidence, so `impl Lifecycle
/// for MyService {}` is enough for a dependency that needs no session.
/// Registration requires it, so a wrapper can only run a service's
/// lifecycle by implementing it too (see `Chaos`).
pub trait Lifecycle: Service {
    /// Runs when the service actor starts (connect, log in). An error here
    /// is a start-up failure of the service actor.
    fn start(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Re-establishes the connection after an outage; the default recovery
    /// strategy calls it. Answer [`Evidence::Observed`] only when the
    /// dependency answered; the default answers `NotImplemented`.
    fn reconnect(&mut self) -> impl Future<Output = Result<Evidence, Self::Error>> + Send {
        async { Ok(Evidence::NotImplemented) }
    }

    /// A cheap probe of the dependency, run on the health interval on an
    /// instance of its own (never behind the service's calls), and by the
    /// default recovery strategy. Answer [`Evidence::Observed`] only when
    /// the dependency answered; the default answers `NotImplemented`.
    fn health_check(&mut self) -> impl Future<Output = Result<Evidence, Self::Error>> + Send {
        async { Ok(Evidence::NotImplemented) }
    }
}

/// The policy of `S`, read as functions of `S` inside the crate.
pub(crate) trait Judged: Service {
    #[inline]
    fn classify(error: &Self::Error) -> Outcome {
        <Self::Policy as Policy<_, _, _>>::classify(error)
    }
    #[inline]
    fn classify_response(response: &Self::Response) -> Outcome {
        <Self::Policy as Policy<_, _, _>>::classify_response(response)
    }
    #[inline]
    fn is_auth_failure(error: &Self::Error) -> bool {
        <Self::Policy as Policy<_, _, _>>::is_auth_failure(error)
    }
    #[inline]
    fn is_idempotent(request: &Self::Request) -> bool {
        <Self::Policy as Policy<_, _, _>>::is_idempotent(request)
    }
    #[inline]
    fn order_intent(request: &Self::Request) -> Option<OrderIntent> {
        <Self::Policy as Policy<_, _, _>>::order_intent(request)
    }
    #[inline]
    fn request_class(request: &Self::Request) -> &'static str {
        <Self::Policy as Policy<_, _, _>>::request_class(request)
    }
    #[inline]
    fn retry_after(error: &Self::Error) -> Option<std::time::Duration> {
        <Self::Policy as Policy<_, _, _>>::retry_after(error)
    }
}

impl<S: Service> Judged for S {}
