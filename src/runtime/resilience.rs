//! Degradation registration and the seed's manual API on [`Seawall`].

use super::{HandleError, Seawall};
use crate::actor::BreakerMsg;
use crate::breaker::{FailureKind, Outcome};
use crate::cell::{Admission, BreakerCell, BreakerControl, Capacity};
use crate::config::StrategyKind;
use crate::degradation::{CustomFallback, Degradation, DegradedHandle, Fallback, Reply};
use crate::handle::{refusal_error, return_at_once, CallError};
use crate::modes::OrderIntent;
use crate::service::Service;
use crate::stats::SupervisionCounters;
use std::future::Future;
use std::sync::Arc;

/// Why a degradation strategy could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DegradationError {
    /// The service is not running, or runs another type.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// `failover_to` names a service that cannot stand in for this one.
    #[error("services.{service}.degradation.failover_to names `{to}`, which cannot answer for it: {reason}; name a registered service of the same type")]
    Failover {
        /// The service.
        service: String,
        /// The service `failover_to` names.
        to: String,
        /// Why it cannot.
        reason: String,
    },
    /// The service already has a strategy: attached by the builder or an
    /// earlier call. A second would add a second journal-replay hook beside
    /// the first, whose strategy may still hold journaled writes.
    #[error("services.{service}: a degradation strategy is already attached (by SeawallBuilder::degradation or an earlier set_degradation); get its handle with Seawall::degraded, or attach one strategy per service")]
    AlreadyAttached {
        /// The service.
        service: String,
    },
    /// The strategy is not the kind the config chose.
    #[error("services.{service}.degradation.strategy is {configured:?} but a {registered:?} strategy was registered; set strategy = \"{}\" in actors.toml or register a {configured:?} strategy", snake(*.registered))]
    KindMismatch {
        /// The service.
        service: String,
        /// What actors.toml says.
        configured: StrategyKind,
        /// What the code registered.
        registered: StrategyKind,
    },
}

fn snake(kind: StrategyKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// No fallback: what a service without a registered strategy uses.
struct NoFallback;

impl<S: Service> Degradation<S> for NoFallback {
    fn kind(&self) -> StrategyKind {
        StrategyKind::None
    }

    fn fallback<'a>(
        &'a self,
        _request: &'a S::Request,
        _error: &'a CallError<S::Error>,
    ) -> crate::degradation::BoxFuture<'a, crate::degradation::FallbackAnswer<S::Response>> {
        Box::pin(async { crate::degradation::FallbackAnswer::Pass })
    }
}

impl Seawall {
    /// Attaches `strategy` to service `name` and returns a degraded handle.
    ///
    /// The strategy must be the kind `[services.NAME.degradation].strategy`
    /// names. Its recovery hook (journal replay) runs each time the breaker
    /// closes again. One strategy per service: a second attachment is
    /// [`DegradationError::AlreadyAttached`] ([`Self::degraded`] returns the
    /// attached strategy's handle).
    pub fn set_degradation<S: Service>(
        &self,
        name: &str,
        strategy: impl Degradation<S>,
    ) -> Result<DegradedHandle<S>, DegradationError> {
        let handle = self.handle::<S>(name)?;
        let configured = self
            .reloader
            .running()
            .service(name)
            .map(|s| s.degradation.strategy)
            .unwrap_or_default();
        let registered = strategy.kind();
        if configured != registered {
            return Err(DegradationError::KindMismatch {
                service: name.to_string(),
                configured,
                registered,
            });
        }
        let strategy: Arc<dyn Degradation<S>> = Arc::new(strategy);
        let degraded = DegradedHandle::new(
            handle,
            strategy,
            self.modes(),
            self.reloader.running().runtime.graceful_degradation_enabled,
        )
        .with_failover(self.failover_for::<S>(name)?);
        // Claimed in one step, so two racing calls cannot both attach.
        match self.degradations.entry(name.to_string()) {
            dashmap::mapref::entry::Entry::Occupied(_) => {
                return Err(DegradationError::AlreadyAttached {
                    service: name.to_string(),
                })
            }
            dashmap::mapref::entry::Entry::Vacant(slot) => {
                slot.insert(Box::new(degraded.clone()));
            }
        }
        let failover = self
            .reloader
            .running()
            .service(name)
            .and_then(|s| s.degradation.failover_to.clone());
        self.reloader
            .degradation_registered(name, registered, failover);
        // The journal replay runs when the breaker closes: a hook of the
        // breaker actor (its typed observers, in their documented order), run
        // as a task the tree tracks, never a bus subscriber that could lag.
        if let Some(registered) = self.registered(name) {
            let (watcher, tasks) = (degraded.clone(), self.tasks.clone());
            let hook: crate::actor::ClosedHook = Box::new(move || {
                let watcher = watcher.clone();
                tasks.spawn(async move { watcher.recovered().await });
            });
            let _ = registered.actor.cast(BreakerMsg::OnClosed(hook));
        }
        Ok(degraded)
    }

    /// The seed's `register_degradation_strategy(name, fallback)`: a closure
    /// answers for calls that cannot be answered live (`None`: no answer).
    /// The config must say `strategy = "custom"`.
    pub fn register_degradation_strategy<S: Service>(
        &self,
        name: &str,
        fallback: impl Fn(&S::Request, &CallError<S::Error>) -> Option<S::Response>
            + Send
            + Sync
            + 'static,
    ) -> Result<DegradedHandle<S>, DegradationError>
    where
        S::Request: Sync,
    {
        self.set_degradation(name, CustomFallback::<S>::new(fallback))
    }

    /// The degraded handle for `name`: its registered strategy, or none;
    /// with `failover_to` in its config, the alternative service answers
    /// first either way (no code needed).
    pub fn degraded_of<S: Service>(
        &self,
        key: super::ServiceKey<S>,
    ) -> Result<DegradedHandle<S>, DegradationError> {
        self.degraded(key.name())
    }

    /// [`Self::degraded_of`] by name and turbofish type.
    pub fn degraded<S: Service>(&self, name: &str) -> Result<DegradedHandle<S>, DegradationError> {
        if let Some(entry) = self.degradations.get(name) {
            if let Some(d) = entry.downcast_ref::<DegradedHandle<S>>() {
                return Ok(d.clone());
            }
        }
        let handle = self.handle::<S>(name)?;
        Ok(DegradedHandle::new(
            handle,
            Arc::new(NoFallback),
            self.modes(),
            self.reloader.running().runtime.graceful_degradation_enabled,
        )
        .with_failover(self.failover_for::<S>(name)?))
    }

    /// The handle `[services.NAME.degradation].failover_to` names, if any.
    fn failover_for<S: Service>(
        &self,
        name: &str,
    ) -> Result<Option<crate::ServiceHandle<S>>, DegradationError> {
        let Some(to) = self
            .reloader
            .running()
            .service(name)
            .and_then(|s| s.degradation.failover_to.clone())
        else {
            return Ok(None);
        };
        self.handle::<S>(&to)
            .map(Some)
            .map_err(|e| DegradationError::Failover {
                service: name.to_string(),
                to,
                reason: e.to_string(),
            })
    }

    /// The seed's `execute_with_resilience(name, f, fallback)`, for code that
    /// is not yet a service actor: `f` runs under breaker `name` (admission,
    /// `call_timeout`, outcome accounting) and `fallback` answers when it is
    /// refused or fails (unless `GRACEFUL_DEGRADATION_ENABLED=false`). Any
    /// error of `f` counts as a failure; no bulkhead applies, as there is no
    /// service actor to protect.
    ///
    /// It passes the one order gate. `f` is opaque, so under a breaker whose
    /// service sends orders (`strategy = "disable_orders"`) it is gated as an
    /// order that adds risk: refused unless trading is Active (fail closed).
    /// Say what `f` does with [`Self::execute_with_resilience_for`].
    pub async fn execute_with_resilience<T, E, Fut>(
        &self,
        name: &str,
        f: impl FnOnce() -> Fut,
        fallback: impl FnOnce(&CallError<E>) -> Option<T>,
    ) -> Result<Reply<T>, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        let sends_orders = self
            .reloader
            .running()
            .service(name)
            .is_some_and(|s| s.degradation.strategy == StrategyKind::DisableOrders);
        let intent = sends_orders.then_some(OrderIntent::Open);
        self.execute_with_resilience_for(name, intent, f, fallback)
            .await
    }

    /// [`Self::execute_with_resilience`], with `intent` saying whether `f`
    /// sends an order and what it does to exposure (`None`: not an order).
    /// The order gate checks it before admission.
    pub async fn execute_with_resilience_for<T, E, Fut>(
        &self,
        name: &str,
        intent: Option<OrderIntent>,
        f: impl FnOnce() -> Fut,
        fallback: impl FnOnce(&CallError<E>) -> Option<T>,
    ) -> Result<Reply<T>, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        let every_error_fails = |_: &E| Outcome::Failure(FailureKind::Other);
        self.execute_with_resilience_classified(name, intent, every_error_fails, f, fallback)
            .await
    }

    /// [`Self::execute_with_resilience_for`], with `classify` deciding what
    /// each error of `f` means for the breaker (the seed's
    /// `expected_exception`): an input error is `Outcome::Ignored`, not a
    /// failure of the dependency. Ignored errors are never answered by the
    /// fallback: they are the caller's to see.
    pub async fn execute_with_resilience_classified<T, E, Fut>(
        &self,
        name: &str,
        intent: Option<OrderIntent>,
        classify: impl Fn(&E) -> Outcome,
        f: impl FnOnce() -> Fut,
        fallback: impl FnOnce(&CallError<E>) -> Option<T>,
    ) -> Result<Reply<T>, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: std::error::Error + 'static,
    {
        // Each refusal here answers without awaiting anything, so it spends
        // cooperative budget first (see `handle/cooperative.rs`).
        let Some(control) = self.control(name) else {
            return_at_once!(Err(CallError::Refused {
                service: "unregistered",
                reason: format!(
                    "no breaker named `{name}`; configured and registered: {}; add one with register_circuit_breaker",
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            }));
        };
        if let Some(intent) = intent {
            if let Err(reason) = self.gate.check(intent) {
                return_at_once!(Err(CallError::Refused {
                    service: control.cell().label(),
                    reason,
                }));
            }
        }
        let error = match run_guarded(&control, classify, f).await {
            Ok(value) => return Ok(Reply::Live(value)),
            // Not the dependency's fault (an input error): no fallback.
            Err(e @ CallError::Service { outcome, .. }) if !outcome.is_failure() => return Err(e),
            Err(e) => e,
        };
        if !self.reloader.running().runtime.graceful_degradation_enabled {
            return Err(error);
        }
        match fallback(&error) {
            Some(value) => {
                SupervisionCounters::bump(&control.stats().degraded_replies);
                Ok(Reply::Fallback(Fallback {
                    value,
                    reason: format!("fallback: {error}"),
                    age: None,
                    strategy: StrategyKind::Custom,
                }))
            }
            None => Err(error),
        }
    }
}

/// Runs `f` under the breaker of `control`: the bulkhead, the breaker's
/// admission, the call timeout, and one recorded outcome.
async fn run_guarded<T, E, Fut>(
    control: &BreakerControl,
    classify: impl Fn(&E) -> Outcome,
    f: impl FnOnce() -> Fut,
) -> Result<T, CallError<E>>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    let cell: &BreakerCell = control.cell();
    let service = cell.label();
    let timeout = control.config().call_timeout;
    let admitted =
        Capacity::take(cell).and_then(|room| Ok((room, Admission::admit(cell, Outcome::Ignored)?)));
    let (_room, admission) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => return_at_once!(Err(refusal_error(cell, refusal))),
    };
    match tokio::time::timeout(timeout, f()).await {
        Ok(Ok(value)) => {
            admission.finish(Outcome::Success);
            Ok(value)
        }
        Ok(Err(source)) => {
            let outcome = classify(&source);
            admission.finish(outcome);
            Err(CallError::Service {
                service,
                outcome,
                source,
            })
        }
        Err(_) => {
            admission.finish(Outcome::Failure(FailureKind::Timeout));
            Err(CallError::Timeout { service, timeout })
        }
    }
}
