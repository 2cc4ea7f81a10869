//! Degradation: safe answers while a dependency is out, that say so.
//!
//! A [`DegradedHandle`] wraps a service's handle with its
//! [`Degradation`] strategy and the current trading [`Modes`]:
//!
//! 1. **Before** a call, the one order gate refuses an order the trading
//!    mode does not allow (the same gate every path passes), and the
//!    strategy may refuse or divert it (a write joining the journal).
//! 2. A **live** reply is first validated by the strategy (a quote with a
//!    price of 0, NaN or an epoch timestamp is a failure of the feed); a
//!    good one is returned as [`Reply::Live`], and the strategy learns from
//!    it (last-known prices, cached reads).
//! 3. When the call is refused by the breaker or fails against the
//!    dependency, the strategy may answer instead: [`Reply::Fallback`]
//!    carries the value, the reason, its age and the strategy. If it has no
//!    usable answer (a price past `max_staleness`, an uncached read), the
//!    caller gets [`CallError::Refused`] saying why. Errors that are the
//!    caller's to see — an ignored business reject, an ambiguous order
//!    outcome — are never papered over.
//!
//! With `GRACEFUL_DEGRADATION_ENABLED=false` step 3 is skipped: calls fail
//! fast with the breaker's error.
//!
//! The config's `[services.NAME.degradation].strategy` decides the modes a
//! service's outage forces; the typed strategy registered in code
//! ([`crate::Seawall::set_degradation`]) must be of the same kind.

mod cache;
mod hold;
mod orders;
mod price_book;
mod reply;

pub use cache::{DbOp, DbRequest, ReadOnlyCache};
pub use hold::{Action, ConservativeHold, Decision, DecisionSource};
pub use orders::{CachedReads, DisableOrders, OrderIntent};
pub use price_book::{Instrument, LastKnownPrice, PriceBook, PriceRefused, Quote};
pub use reply::{Fallback, Reply};

use crate::config::StrategyKind;
use crate::handle::{return_at_once, CallError, ServiceHandle};
use crate::modes::Modes;
use crate::service::Service;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// A boxed future, for the dyn-compatible strategy trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a strategy says before a call is sent.
pub enum Admit<T> {
    /// Send it to the service.
    Send,
    /// Refuse it; the text says why and since when.
    Refuse(String),
    /// Do not send it; answer with this instead (a write joining the journal).
    Answer(Fallback<T>),
}

/// What a strategy answers for a call that could not be answered live.
pub enum FallbackAnswer<T> {
    /// No fallback applies: the caller gets the original error.
    Pass,
    /// A substitute answer.
    Answer(Fallback<T>),
    /// A fallback applies but has nothing usable; the text says why.
    Refuse(String),
}

/// A per-service degradation strategy.
pub trait Degradation<S: Service>: Send + Sync + 'static {
    /// Which kind it is; must match `[services.NAME.degradation].strategy`.
    fn kind(&self) -> StrategyKind;

    /// May refuse or divert a request before it is sent, given the modes.
    fn admit(&self, request: &S::Request, modes: &Modes) -> Admit<S::Response> {
        let _ = (request, modes);
        Admit::Send
    }

    /// Judges a live reply before it is counted: an unusable one (a price
    /// of 0) is a failure of the dependency, counted by the breaker and
    /// answered by [`Self::fallback`], never returned as [`Reply::Live`].
    fn validate(&self, request: &S::Request, response: &S::Response) -> Result<(), String> {
        let _ = (request, response);
        Ok(())
    }

    /// Learns from a live reply.
    fn observe(&self, request: &S::Request, response: &S::Response) {
        let _ = (request, response);
    }

    /// Answers for a call that could not be answered live.
    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>>;

    /// Whether [`Self::recovered`] has work left (writes awaiting replay);
    /// a degraded call on a Closed breaker runs it first.
    fn needs_recovery(&self) -> bool {
        false
    }

    /// Runs when the breaker closes again (replaying journaled writes).
    fn recovered<'a>(&'a self, handle: &'a ServiceHandle<S>) -> BoxFuture<'a, ()> {
        let _ = handle;
        Box::pin(async {})
    }
}

/// A shared strategy is a strategy: keep an `Arc` to inspect it (a write
/// journal's length at shutdown) while the degraded handle uses it.
impl<S: Service, D: Degradation<S>> Degradation<S> for Arc<D> {
    fn kind(&self) -> StrategyKind {
        (**self).kind()
    }
    fn admit(&self, request: &S::Request, modes: &Modes) -> Admit<S::Response> {
        (**self).admit(request, modes)
    }
    fn validate(&self, request: &S::Request, response: &S::Response) -> Result<(), String> {
        (**self).validate(request, response)
    }
    fn observe(&self, request: &S::Request, response: &S::Response) {
        (**self).observe(request, response)
    }
    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        (**self).fallback(request, error)
    }
    fn needs_recovery(&self) -> bool {
        (**self).needs_recovery()
    }
    fn recovered<'a>(&'a self, handle: &'a ServiceHandle<S>) -> BoxFuture<'a, ()> {
        (**self).recovered(handle)
    }
}

/// Another service of the same type answers instead (the seed's
/// "alternative data sources").
pub struct Failover<S: Service> {
    to: ServiceHandle<S>,
}

impl<S: Service> Failover<S> {
    /// Fails over to `to`.
    pub fn to(to: ServiceHandle<S>) -> Self {
        Self { to }
    }
}

impl<S: Service> Degradation<S> for Failover<S>
where
    S::Request: Clone + Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::Failover
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        _error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        Box::pin(async move {
            match self.to.call(request.clone()).await {
                Ok(value) => FallbackAnswer::Answer(Fallback {
                    value,
                    reason: format!("answered by failover service {}", self.to.name()),
                    age: None,
                    strategy: StrategyKind::Failover,
                }),
                Err(e) => FallbackAnswer::Refuse(format!("failover also failed: {e}")),
            }
        })
    }
}

/// A closure registered with `register_degradation_strategy` (the seed's API).
pub struct CustomFallback<S: Service> {
    #[allow(clippy::type_complexity)]
    f: Box<dyn Fn(&S::Request, &CallError<S::Error>) -> Option<S::Response> + Send + Sync>,
}

impl<S: Service> CustomFallback<S> {
    /// Wraps `f`; `None` means no fallback for that call.
    pub fn new(
        f: impl Fn(&S::Request, &CallError<S::Error>) -> Option<S::Response> + Send + Sync + 'static,
    ) -> Self {
        Self { f: Box::new(f) }
    }
}

impl<S: Service> Degradation<S> for CustomFallback<S>
where
    S::Request: Sync,
{
    fn kind(&self) -> StrategyKind {
        StrategyKind::Custom
    }

    fn fallback<'a>(
        &'a self,
        request: &'a S::Request,
        error: &'a CallError<S::Error>,
    ) -> BoxFuture<'a, FallbackAnswer<S::Response>> {
        let answer = match (self.f)(request, error) {
            Some(value) => FallbackAnswer::Answer(Fallback {
                value,
                reason: format!("custom fallback: {error}"),
                age: None,
                strategy: StrategyKind::Custom,
            }),
            None => FallbackAnswer::Pass,
        };
        Box::pin(async move { answer })
    }
}

/// A service handle with its degradation strategy and the trading modes.
pub struct DegradedHandle<S: Service> {
    handle: ServiceHandle<S>,
    strategy: Arc<dyn Degradation<S>>,
    /// `[services.NAME.degradation].failover_to`: asked first, before the strategy's fallback.
    failover: Option<ServiceHandle<S>>,
    modes: watch::Receiver<Modes>,
    enabled: bool,
}

impl<S: Service> Clone for DegradedHandle<S> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            strategy: Arc::clone(&self.strategy),
            failover: self.failover.clone(),
            modes: self.modes.clone(),
            enabled: self.enabled,
        }
    }
}

impl<S: Service> DegradedHandle<S> {
    pub(crate) fn new(
        handle: ServiceHandle<S>,
        strategy: Arc<dyn Degradation<S>>,
        modes: watch::Receiver<Modes>,
        enabled: bool,
    ) -> Self {
        Self {
            handle,
            strategy,
            failover: None,
            modes,
            enabled,
        }
    }

    /// Asks `to` first whenever the service cannot answer live: the
    /// alternative source, then the strategy's own fallback, then nothing.
    pub(crate) fn with_failover(mut self, to: Option<ServiceHandle<S>>) -> Self {
        self.failover = to;
        self
    }

    /// The plain handle underneath.
    pub fn handle(&self) -> &ServiceHandle<S> {
        &self.handle
    }

    /// Runs the strategy's recovery hook (replays a write journal) now.
    pub async fn recovered(&self) {
        self.strategy.recovered(&self.handle).await;
    }

    /// Calls the service; answers with a fallback when it cannot answer live.
    pub async fn call(&self, request: S::Request) -> Result<Reply<S::Response>, CallError<S::Error>>
    where
        S::Request: Clone,
    {
        let reply = self.answer(request).await;
        if matches!(reply, Ok(Reply::Fallback(_))) {
            crate::stats::SupervisionCounters::bump(&self.handle.counters().degraded_replies);
        }
        reply
    }

    async fn answer(&self, request: S::Request) -> Result<Reply<S::Response>, CallError<S::Error>>
    where
        S::Request: Clone,
    {
        let service = || self.handle.label();
        if self.strategy.needs_recovery() && self.handle.state() == crate::BreakerState::Closed {
            self.strategy.recovered(&self.handle).await;
        }
        let admitted = {
            let modes = self.modes.borrow();
            self.strategy.admit(&request, &modes)
        };
        // The strategy's answer awaits nothing, so it spends cooperative
        // budget first (see `handle/cooperative.rs`); a refusal of the call
        // below spends it inside the call.
        match admitted {
            Admit::Send => {}
            Admit::Refuse(reason) => return_at_once!(Err(CallError::Refused {
                service: service(),
                reason,
            })),
            Admit::Answer(fallback) => return_at_once!(Ok(Reply::Fallback(fallback))),
        }
        let error = match self.validated_call(&self.handle, &request).await {
            Ok(response) => return Ok(Reply::Live(response)),
            Err(error) => error,
        };
        if !self.enabled || !falls_back(&error) {
            return Err(error);
        }
        if let Some(to) = &self.failover {
            // The alternative source passes the same validation as a live
            // answer (a bad quote from a backup feed is no better).
            if let Ok(value) = self.validated_call(to, &request).await {
                return Ok(Reply::Fallback(Fallback {
                    value,
                    reason: format!("answered by failover service {}: {error}", to.name()),
                    age: None,
                    strategy: crate::config::StrategyKind::Failover,
                }));
            }
        }
        match self.strategy.fallback(&request, &error).await {
            FallbackAnswer::Pass => Err(error),
            FallbackAnswer::Answer(fallback) => Ok(Reply::Fallback(fallback)),
            FallbackAnswer::Refuse(reason) => Err(CallError::Refused {
                service: service(),
                reason: format!("{reason} (after: {error})"),
            }),
        }
    }

    /// A call through `on` whose answer the strategy validates, and on
    /// success observes (a cached price, the last good answer).
    async fn validated_call(
        &self,
        on: &ServiceHandle<S>,
        request: &S::Request,
    ) -> Result<S::Response, CallError<S::Error>>
    where
        S::Request: Clone,
    {
        let strategy = &self.strategy;
        let response = on
            .call_checked(request.clone(), |response| {
                strategy.validate(request, response)
            })
            .await?;
        strategy.observe(request, &response);
        Ok(response)
    }
}

/// Whether an error may be answered by a fallback: refusals and dependency
/// failures, never a business reject, an ambiguous outcome or shutdown.
fn falls_back<E: std::error::Error>(error: &CallError<E>) -> bool {
    match error {
        CallError::Rejected { .. }
        | CallError::Shed { .. }
        | CallError::RateLimited { .. }
        | CallError::SlowStart { .. }
        | CallError::Invalid { .. }
        | CallError::Timeout { .. }
        | CallError::Crashed { .. }
        | CallError::Unavailable { .. } => true,
        CallError::Service { outcome, .. } => outcome.is_failure(),
        _ => false,
    }
}
