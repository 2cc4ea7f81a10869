//! [`ServiceHandle`]: how engine code talks to a protected dependency.
//!
//! A handle is a cheap clone (one `Arc`). A call goes:
//!
//! 1. **Admission.** One atomic load of the published breaker state. Open
//!    rejects here, so a rejected call never reaches the service actor,
//!    allocates nothing and takes no lock.
//! 2. **Bulkhead.** One atomic add bounds the requests in flight at
//!    `max_in_flight`; over it the call is shed at once with an error naming
//!    the service and the bound. (ractor mailboxes are unbounded; this is
//!    what keeps a stalled dependency from queueing the engine's memory away.)
//! 3. **Dispatch.** The request goes straight to the least busy of the
//!    service's `concurrency` service actors, with the caller's deadline.
//! 4. **Outcome.** The reply (or the timeout) is classified and recorded
//!    before the caller sees it, so sequential accounting is exact.
//!
//! If the caller drops the future mid-call, the outcome is recorded as
//! [`Outcome::Ignored`]: the dependency did
//! nothing wrong, and a HalfOpen probe slot is never leaked.

mod call_error;
mod cooperative;
mod health_probe;
mod retry;

pub use call_error::CallError;
pub use retry::RetryPolicy;

pub(crate) use cooperative::{return_at_once, spends_budget};
pub(crate) use health_probe::HealthProbe;

use crate::actor::{CallFailure, ServiceActors, ServiceMsg};
use crate::breaker::{BreakerMetrics, BreakerState, FailureKind, Outcome};
use crate::cell::{deadline_after, Admission, BreakerCell, Refusal, Slot};
use crate::modes::OrderGate;
use crate::service::Judged;
use crate::service::{Evidence, Service};
use std::sync::Arc;
use std::time::Duration;

/// The engine's way to reach one protected dependency.
pub struct ServiceHandle<S: Service> {
    inner: Arc<Inner<S>>,
}

struct Inner<S: Service> {
    cell: Arc<BreakerCell>,
    actors: Arc<ServiceActors<S>>,
    gate: Arc<OrderGate>,
    probe: HealthProbe<S>,
}

impl<S: Service> Clone for ServiceHandle<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Service> std::fmt::Debug for ServiceHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("service", &self.inner.cell.name())
            .field("state", &self.inner.cell.state())
            .finish()
    }
}

impl<S: Service> ServiceHandle<S> {
    pub(crate) fn new(
        cell: Arc<BreakerCell>,
        actors: Arc<ServiceActors<S>>,
        gate: Arc<OrderGate>,
        probe: HealthProbe<S>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cell,
                actors,
                gate,
                probe,
            }),
        }
    }

    /// The retry policy from `[services.NAME.retry]`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::from(&self.inner.cell.config().retry)
    }

    /// The counters behind [`Self::supervision`], for the layers that bump them.
    pub(crate) fn counters(&self) -> &crate::stats::SupervisionCounters {
        &self.inner.cell.stats
    }

    /// Supervision counters: restarts, escalations, recoveries, retries.
    pub fn supervision(&self) -> crate::stats::SupervisionStats {
        self.inner.cell.stats.snapshot()
    }

    /// The name as errors carry it.
    pub(crate) fn label(&self) -> &'static str {
        self.inner.cell.label()
    }

    /// The service's name, as in `actors.toml`.
    pub fn name(&self) -> &str {
        self.inner.cell.name()
    }

    /// The breaker's state as published, without locking. It is kept true
    /// with no traffic: the breaker actor's timer moves Open → HalfOpen.
    pub fn state(&self) -> BreakerState {
        self.inner.cell.state()
    }

    /// A snapshot of the breaker's counters and timings.
    pub fn metrics(&self) -> BreakerMetrics {
        self.inner.cell.metrics()
    }

    /// Requests currently admitted and not yet finished.
    pub fn in_flight(&self) -> u32 {
        self.inner.cell.in_flight()
    }

    /// The call deadline (`call_timeout`).
    pub fn call_timeout(&self) -> Duration {
        self.inner.cell.call_timeout()
    }

    fn refused(&self, refusal: Refusal) -> CallError<S::Error> {
        refusal_error(&self.inner.cell, refusal)
    }

    fn rate_limited(&self, refusal: crate::cell::RateRefusal) -> CallError<S::Error> {
        CallError::RateLimited {
            service: self.inner.cell.label(),
            limit: refusal.limit,
            retry_in: refusal.retry_in,
        }
    }

    /// The breaker's yes, then a bulkhead slot on a running service actor;
    /// a refused slot withdraws the admission unrecorded.
    #[inline]
    fn admit_with_slot<C: std::ops::Deref<Target = BreakerCell>>(
        &self,
        cell: C,
        unfinished: Outcome,
    ) -> Result<(Admission<C>, Slot), Refusal> {
        let admission = Admission::admit(cell, unfinished)?;
        match self.inner.cell.take_slot() {
            Ok(slot) => Ok((admission, slot)),
            Err(refusal) => {
                admission.withdraw();
                Err(refusal)
            }
        }
    }

    /// The one order gate: an order the trading mode does not allow never
    /// reaches admission. A request that is not an order costs nothing here
    /// (`order_intent` is a static function, `None` for most services).
    /// Its refusal is the reason, made an error by [`Self::gate_refused`].
    #[inline]
    fn gate(&self, request: &S::Request) -> Result<(), String> {
        match S::order_intent(request) {
            None => Ok(()),
            Some(intent) => self.inner.gate.check(intent),
        }
    }

    fn gate_refused(&self, reason: String) -> CallError<S::Error> {
        CallError::Refused {
            service: self.inner.cell.label(),
            reason,
        }
    }
}

/// The error for a refusal, naming the service and its bound.
pub(crate) fn refusal_error<E: std::error::Error>(
    cell: &BreakerCell,
    refusal: Refusal,
) -> CallError<E> {
    let service = cell.label();
    {
        match refusal {
            Refusal::Rejected(state, info) => CallError::Rejected {
                service,
                state,
                open_until: info.open_until,
                cause: info.cause,
            },
            Refusal::ShuttingDown => CallError::ShuttingDown { service },
            Refusal::Shed => CallError::Shed {
                service,
                max_in_flight: cell.max_in_flight(),
            },
            Refusal::Unavailable => CallError::Unavailable { service },
            Refusal::SlowStart(allowed) => CallError::SlowStart { service, allowed },
        }
    }
}

impl<S: Service> ServiceHandle<S> {
    /// Sends `request` and waits for the answer, at most `call_timeout`.
    ///
    /// A timeout counts as a failure for the breaker. The request is only
    /// sent to the dependency if it is still wanted: one that waited in a
    /// mailbox past its deadline is dropped unsent. For a request that is not
    /// [idempotent](crate::Policy::is_idempotent), any unknown outcome (a timeout,
    /// a crash or panic after it was sent) is [`CallError::Unknown`]: it may
    /// have taken effect. An [order](crate::Policy::order_intent) the trading mode
    /// does not allow is refused before admission.
    ///
    /// A refusal comes back at once, and still spends the task's
    /// cooperative budget (see `handle/cooperative.rs`): a loop that
    /// retries it without awaiting anything else cannot starve the
    /// breaker's own timer.
    pub async fn call(&self, request: S::Request) -> Result<S::Response, CallError<S::Error>> {
        self.call_checked(request, |_| Ok(())).await
    }

    /// [`Self::call`], with `check` judging a successful reply before its
    /// outcome is recorded: a reply it refuses (a quote with a price of 0)
    /// is a failure of the dependency, counted by the breaker, and the
    /// caller gets [`CallError::Invalid`].
    //
    // One function of some 70 lines on purpose: it is the hot path, and its
    // shape is measured. Moving the part before the wait into a function of
    // its own (one refusal exit instead of several) made a refusal 31 ns instead
    // of 16, the result of the split being moved through the call's future
    // (BENCHMARKS.md, stop 15).
    pub(crate) async fn call_checked(
        &self,
        request: S::Request,
        check: impl FnOnce(&S::Response) -> Result<(), String>,
    ) -> Result<S::Response, CallError<S::Error>> {
        // Each refusal below answers without awaiting anything, so it
        // spends cooperative budget first (see `cooperative.rs`).
        if let Err(reason) = self.gate(&request) {
            return_at_once!(Err(self.gate_refused(reason)));
        }
        let inner = &*self.inner;
        let cell = &*inner.cell;
        if cell.paced() {
            // An open breaker refuses before the wait: a call that will be
            // refused spends none of the dependency's request budget.
            if let Some(refusal) = cell.refusing_all() {
                return_at_once!(Err(self.refused(refusal)));
            }
            let class = S::request_class(&request);
            // Boxed: only paced services pay for the wait's state, the
            // call future of every other service stays small.
            if let Err(refusal) = Box::pin(cell.pace(class)).await {
                return_at_once!(Err(self.rate_limited(refusal)));
            }
        }
        // A caller that stops waiting (its future dropped) leaves an outcome
        // nobody knows: recorded as Ignored, never as a success.
        let (pending, slot) = match self.admit_with_slot(cell, Outcome::Ignored) {
            Ok(admitted) => admitted,
            Err(refusal) => return_at_once!(Err(self.refused(refusal))),
        };
        let idempotent = S::is_idempotent(&request);
        // The deadline comes from the admission's clock reading: the timer
        // below reads no clock of its own.
        let deadline = deadline_after(pending.started(), cell.call_timeout());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let worker = slot.worker();
        let msg = ServiceMsg::Call {
            request,
            reply: tx,
            slot,
        };
        if !inner.actors.send(worker, msg) {
            // The service actor stopped between the slot and the send: its
            // crash is counted once by supervision, not again per call.
            pending.finish(Outcome::Ignored);
            return_at_once!(Err(CallError::Unavailable {
                service: cell.label(),
            }));
        }
        // The slot comes back with the answer: released here, on the
        // caller's thread (see `Answer`).
        let reply = tokio::time::timeout_at(deadline, rx)
            .await
            .map(|answer| answer.map(|(result, _slot)| result));
        let (outcome, result) = match reply {
            Ok(Ok(Ok((response, outcome)))) => self.judge(response, outcome, check),
            Ok(Ok(Err(failure))) => self.failed(failure, idempotent),
            // The deadline passed: the caller's own timer is the only one.
            Err(_) => self.failed(CallFailure::Expired, idempotent),
            // The service actor stopped before answering: it crashed while
            // this request waited behind another, or was killed mid-call.
            // The crash itself is counted once by supervision. Which of the
            // two cannot be told here, so a request that is not idempotent
            // may have been sent: unknown.
            Ok(Err(_)) => (
                Outcome::Ignored,
                Err(self.lost(
                    idempotent,
                    "the service actor stopped before answering; the request may have been sent",
                )),
            ),
        };
        pending.finish(outcome);
        result
    }

    /// A reply the service gave: its own classification, then `check`.
    fn judge(
        &self,
        response: S::Response,
        outcome: Outcome,
        check: impl FnOnce(&S::Response) -> Result<(), String>,
    ) -> (Outcome, Result<S::Response, CallError<S::Error>>) {
        let service = self.label();
        match (outcome, check(&response)) {
            (Outcome::Failure(kind), _) => (
                outcome,
                Err(CallError::Invalid {
                    service,
                    reason: format!("the service classified the answer as a {kind} failure"),
                }),
            ),
            (_, Err(reason)) => (
                Outcome::Failure(FailureKind::Invalid),
                Err(CallError::Invalid { service, reason }),
            ),
            (outcome, Ok(())) => (outcome, Ok(response)),
        }
    }

    /// A call that failed in the service actor, or was never answered.
    fn failed(
        &self,
        failure: CallFailure<S::Error>,
        idempotent: bool,
    ) -> (Outcome, Result<S::Response, CallError<S::Error>>) {
        let service = self.label();
        match failure {
            CallFailure::Service(error, outcome) => {
                let error = if outcome == Outcome::Failure(FailureKind::Ambiguous) {
                    CallError::Unknown {
                        service,
                        reason: error.to_string(),
                        source: Some(error),
                    }
                } else {
                    CallError::Service {
                        service,
                        outcome,
                        source: error,
                    }
                };
                (outcome, Err(error))
            }
            CallFailure::Refused(reason) => (
                Outcome::Ignored,
                Err(CallError::Refused { service, reason }),
            ),
            CallFailure::Expired => {
                let timeout = self.inner.cell.call_timeout();
                let error = if idempotent {
                    CallError::Timeout { service, timeout }
                } else {
                    self.lost(
                        false,
                        &format!(
                            "no answer within {} for a request that is not idempotent",
                            humantime::format_duration(timeout)
                        ),
                    )
                };
                (Outcome::Failure(FailureKind::Timeout), Err(error))
            }
            CallFailure::Panicked => (
                Outcome::Failure(FailureKind::Crash),
                Err(self.lost(
                    idempotent,
                    "the service panicked after the request reached it",
                )),
            ),
        }
    }

    /// A crash: harmless to retry for an idempotent request, otherwise an
    /// unknown outcome, because the request may have taken effect.
    fn lost(&self, idempotent: bool, reason: &str) -> CallError<S::Error> {
        if idempotent {
            CallError::Crashed {
                service: self.label(),
            }
        } else {
            CallError::Unknown {
                service: self.label(),
                reason: reason.to_string(),
                source: None,
            }
        }
    }

    /// Sends `request` without waiting for an answer. Admission and the
    /// bulkhead apply as for [`Self::call`]; the outcome is recorded by the
    /// service actor when the request finishes (or by its crash).
    ///
    /// Unlike [`Self::call`], a refusal here cannot yield to the runtime
    /// (this is not an `async fn`): a loop that retries refused casts must
    /// await something between attempts, or it starves the breaker's timer.
    pub fn cast(&self, request: S::Request) -> Result<(), CallError<S::Error>> {
        self.gate(&request)
            .map_err(|reason| self.gate_refused(reason))?;
        let inner = &*self.inner;
        let cell = &inner.cell;
        if cell.paced() {
            if let Some(refusal) = cell.refusing_all() {
                return Err(self.refused(refusal));
            }
            cell.pace_now(S::request_class(&request))
                .map_err(|refusal| self.rate_limited(refusal))?;
        }
        // A service actor that dies before finishing it records a crash.
        let crash = Outcome::Failure(FailureKind::Crash);
        let (completion, slot) = self
            .admit_with_slot(Arc::clone(cell), crash)
            .map_err(|refusal| self.refused(refusal))?;
        let worker = slot.worker();
        let msg = ServiceMsg::Cast {
            request,
            deadline: deadline_after(completion.started(), inner.cell.call_timeout()),
            completion,
            slot,
        };
        if inner.actors.send(worker, msg) {
            Ok(())
        } else {
            // The undelivered message's completion recorded the failure.
            Err(CallError::Unavailable {
                service: cell.label(),
            })
        }
    }

    /// How many service actors the service runs (`concurrency`).
    pub fn concurrency(&self) -> usize {
        self.inner.actors.len()
    }

    /// Asks service actor `worker` to [`Lifecycle::reconnect`](crate::Lifecycle::reconnect) its connection.
    /// Recovery strategies use this; it bypasses the breaker on purpose.
    pub async fn reconnect_worker(&self, worker: usize) -> Result<Evidence, CallError<S::Error>> {
        self.control(worker, |reply| ServiceMsg::Reconnect { reply })
            .await
    }

    /// Runs the service's health check on an instance of its own, within
    /// `call_timeout`. It bypasses the breaker (so it can tell whether an
    /// open dependency is back) and the service actors' mailboxes (so a slow
    /// but successful call never makes it time out).
    pub async fn health_check(&self) -> Result<Evidence, CallError<S::Error>> {
        let inner = &*self.inner;
        let check = inner.probe.check(inner.cell.label());
        match tokio::time::timeout(inner.cell.call_timeout(), check).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                service: inner.cell.label(),
                timeout: inner.cell.call_timeout(),
            }),
        }
    }

    pub(crate) fn cell(&self) -> &Arc<BreakerCell> {
        &self.inner.cell
    }

    async fn control(
        &self,
        worker: usize,
        build: impl FnOnce(tokio::sync::oneshot::Sender<Result<Evidence, S::Error>>) -> ServiceMsg<S>,
    ) -> Result<Evidence, CallError<S::Error>> {
        let inner = &*self.inner;
        let service = || inner.cell.label();
        let (tx, rx) = tokio::sync::oneshot::channel();
        if worker >= inner.actors.len() || !inner.actors.send(worker, build(tx)) {
            return Err(CallError::Unavailable { service: service() });
        }
        match tokio::time::timeout(inner.cell.call_timeout(), rx).await {
            Ok(Ok(Ok(evidence))) => Ok(evidence),
            Ok(Ok(Err(source))) => Err(CallError::Service {
                service: service(),
                outcome: Outcome::Failure(FailureKind::Other),
                source,
            }),
            Ok(Err(_)) => Err(CallError::Crashed { service: service() }),
            Err(_) => Err(CallError::Timeout {
                service: service(),
                timeout: inner.cell.call_timeout(),
            }),
        }
    }
}
