//! The service actor: owns one instance of a [`Service`] and runs its requests.

use crate::breaker::{FailureKind, Outcome};
use crate::cell::{Admission, BreakerCell, Slot};
use crate::service::{Evidence, Judged, Lifecycle, Service};
use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Builds a fresh service value for each (re)started service actor.
/// A boxed future borrowing the service instance.
pub(crate) type Hook<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One lifecycle step of `S`, as a plain function pointer.
type Step<S, T> = for<'a> fn(&'a mut S) -> Hook<'a, Result<T, <S as Service>::Error>>;

/// How to build a service instance and run its [`Lifecycle`]: made where
/// the service's type is known to implement it (registration), so the
/// actors that run it need no more than `Service`.
pub(crate) struct Factory<S: Service> {
    make: Arc<dyn Fn() -> S + Send + Sync>,
    start: Step<S, ()>,
    reconnect: Step<S, Evidence>,
    health_check: Step<S, Evidence>,
}

impl<S: Service> Clone for Factory<S> {
    fn clone(&self) -> Self {
        Self {
            make: Arc::clone(&self.make),
            start: self.start,
            reconnect: self.reconnect,
            health_check: self.health_check,
        }
    }
}

fn start<S: Lifecycle>(service: &mut S) -> Hook<'_, Result<(), S::Error>> {
    Box::pin(service.start())
}

fn reconnect<S: Lifecycle>(service: &mut S) -> Hook<'_, Result<Evidence, S::Error>> {
    Box::pin(service.reconnect())
}

fn health_check<S: Lifecycle>(service: &mut S) -> Hook<'_, Result<Evidence, S::Error>> {
    Box::pin(service.health_check())
}

impl<S: Lifecycle> Factory<S> {
    pub(crate) fn new(make: Arc<dyn Fn() -> S + Send + Sync>) -> Self {
        Self {
            make,
            start: start::<S>,
            reconnect: reconnect::<S>,
            health_check: health_check::<S>,
        }
    }
}

impl<S: Service> Factory<S> {
    pub(crate) fn make(&self) -> S {
        (self.make)()
    }

    pub(crate) fn start<'a>(&self, service: &'a mut S) -> Hook<'a, Result<(), S::Error>> {
        (self.start)(service)
    }

    pub(crate) fn reconnect<'a>(&self, service: &'a mut S) -> Hook<'a, Result<Evidence, S::Error>> {
        (self.reconnect)(service)
    }

    pub(crate) fn health_check<'a>(
        &self,
        service: &'a mut S,
    ) -> Hook<'a, Result<Evidence, S::Error>> {
        (self.health_check)(service)
    }
}

/// Why a call failed inside the service actor.
pub(crate) enum CallFailure<E> {
    /// The service returned an error, classified by the service.
    Service(E, Outcome),
    /// The caller's deadline passed before the request was sent.
    Expired,
    /// The service panicked while handling the request; the actor restarts.
    Panicked,
    /// An order the trading mode stopped allowing while it waited: never sent.
    Refused(String),
}

/// The error a service actor fails with after a panic inside a call whose
/// outcome was already recorded, so supervision does not count it twice.
#[derive(Debug, thiserror::Error)]
#[error("the service panicked while handling a request: {0}")]
pub(crate) struct CountedCrash(pub(crate) String);

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string())
}

/// A call's answer: the response with how the service classified it, or why it failed.
pub(crate) type CallResult<S> =
    Result<(<S as Service>::Response, Outcome), CallFailure<<S as Service>::Error>>;

/// The answer travels back with the call's bulkhead slot, so the caller
/// releases it: the cell's call-path line is then written by the caller's
/// thread alone, not bounced to the service actor's thread and back on
/// every call. A caller that stopped waiting never receives it, and the
/// slot is released where the undelivered answer is dropped, once the
/// service actor is done with the request, as before.
pub(crate) type Answer<S> = (CallResult<S>, Slot);

/// What a service actor is asked to do.
pub(crate) enum ServiceMsg<S: Service> {
    Call {
        request: S::Request,
        reply: oneshot::Sender<Answer<S>>,
        slot: Slot,
    },
    Cast {
        request: S::Request,
        deadline: Instant,
        completion: CastCompletion,
        slot: Slot,
    },
    /// Reconnect this actor's own connection. A reconnect that hangs is
    /// dropped the moment its caller stops waiting, so it never wedges the
    /// service actor.
    Reconnect {
        reply: oneshot::Sender<Result<crate::service::Evidence, S::Error>>,
    },
}

// Under the `fleet` feature ractor drops its blanket `Message` impl: each
// message type names itself (local only: never serialized).
#[cfg(feature = "fleet")]
impl<S: Service> ractor::Message for ServiceMsg<S> {}

/// A fire-and-forget call's admission: the service actor records its
/// outcome; if the actor dies first, dropping it records the crash.
pub(crate) type CastCompletion = Admission<Arc<BreakerCell>>;

/// The current service actor for each of a service's `concurrency` slots.
/// Handles read it without locking; the breaker actor swaps in respawns, so
/// a handle taken before a restart keeps working after it.
pub(crate) struct ServiceActors<S: Service> {
    /// Slot 0, kept inline: with `concurrency = 1` (the default) a call
    /// reaches its actor without one more pointer to follow (one more cold
    /// cache line per call when there are thousands of services).
    first: ArcSwapOption<ActorRef<ServiceMsg<S>>>,
    /// Slots 1 and up.
    rest: Box<[ArcSwapOption<ActorRef<ServiceMsg<S>>>]>,
}

impl<S: Service> ServiceActors<S> {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            first: ArcSwapOption::empty(),
            rest: (1..n.max(1)).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rest.len() + 1
    }

    fn slot(&self, i: usize) -> &ArcSwapOption<ActorRef<ServiceMsg<S>>> {
        match i {
            0 => &self.first,
            i => &self.rest[i - 1],
        }
    }

    fn slots(&self) -> impl Iterator<Item = &ArcSwapOption<ActorRef<ServiceMsg<S>>>> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    pub(crate) fn set(&self, i: usize, actor: Option<ActorRef<ServiceMsg<S>>>) {
        self.slot(i).store(actor.map(Arc::new));
    }

    pub(crate) fn get(&self, i: usize) -> Option<Arc<ActorRef<ServiceMsg<S>>>> {
        self.slot(i).load_full()
    }

    /// Sends to slot `i` without cloning the actor ref; `false` when no
    /// actor is running there (restarting, or stopped). A message that
    /// cannot be delivered is dropped, which releases its bulkhead slot and
    /// closes its reply port.
    #[inline]
    pub(crate) fn send(&self, i: usize, msg: ServiceMsg<S>) -> bool {
        let guard = self.slot(i).load();
        match guard.as_deref() {
            Some(actor) => actor.cast(msg).is_ok(),
            None => false,
        }
    }

    /// Which slot holds the actor with this id.
    pub(crate) fn position(&self, id: ractor::ActorId) -> Option<usize> {
        self.slots().position(|slot| {
            slot.load()
                .as_deref()
                .is_some_and(|actor| actor.get_id() == id)
        })
    }
}

/// A request after the last order-gate check.
enum Released<S: Service> {
    /// It was sent; the service answered this.
    Ran(Result<S::Response, S::Error>),
    /// An order the trading mode no longer allows, with why.
    Refused(String),
}

/// What a service actor keeps between messages.
pub(crate) struct Worker<S> {
    service: S,
    /// The deadline of the cast being run: made on the first cast and reset
    /// for each one after. A cast's deadline then costs no allocation, and
    /// an actor never cast to reserves no room for a timer; a timer inside
    /// the message's future would be reserved, twice, in every service
    /// actor's task for its life (ractor sizes the task for the largest
    /// message future; `benches/scale.rs`, memory).
    cast_timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// The actor around one service value.
pub(crate) struct ServiceActor<S: Service> {
    pub(crate) factory: Factory<S>,
    pub(crate) cell: Arc<BreakerCell>,
}

impl<S: Service> ServiceActor<S> {
    /// Runs one call and answers it, unless its caller has stopped waiting.
    /// A panic is answered first, then fails the actor (already counted).
    ///
    /// Not an `async fn`, for the reason [`Actor::handle`] gives below: the
    /// block captures each argument once (an `async fn` would keep them twice).
    #[allow(clippy::manual_async_fn)]
    fn answer<'s, 'v>(
        &'s self,
        service: &'v mut S,
        request: S::Request,
        mut reply: oneshot::Sender<Answer<S>>,
        slot: Slot,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send + use<'s, 'v, S>
    {
        async move {
            let result = if reply.is_closed() {
                // The caller gave up (deadline passed, or cancelled)
                // while this waited in the mailbox: never send a request
                // nobody is waiting for.
                Err(CallFailure::Expired)
            } else {
                // Stop working on it the moment the caller stops waiting.
                // The caller's own deadline is the only timer per call.
                let class = S::request_class(&request);
                let call = AssertUnwindSafe(self.release(service, request)).catch_unwind();
                tokio::select! {
                    biased;
                    result = call => match result {
                        Ok(Released::Refused(reason)) => Err(CallFailure::Refused(reason)),
                        Ok(Released::Ran(ran)) => self.settle(class, ran),
                        Err(payload) => {
                            let _ = reply.send((Err(CallFailure::Panicked), slot));
                            let crash: ActorProcessingErr = Box::new(CountedCrash(panic_text(&*payload)));
                            return Err(crash);
                        }
                    },
                    () = reply.closed() => Err(CallFailure::Expired),
                }
            };
            let _ = reply.send((result, slot));
            Ok(())
        }
    }

    /// Reconnects this actor's connection, unless its caller stops waiting.
    async fn reconnect(
        &self,
        service: &mut S,
        mut reply: oneshot::Sender<Result<crate::service::Evidence, S::Error>>,
    ) -> Result<(), ActorProcessingErr> {
        tokio::select! {
            biased;
            result = self.factory.reconnect(service) => {
                let _ = reply.send(result);
            }
            () = reply.closed() => {}
        }
        Ok(())
    }

    /// Runs one fire-and-forget call within its deadline and records it.
    ///
    /// The deadline is the worker's one cast timer, reset for this cast, so
    /// the future holds a reference to it instead of a timer of its own.
    fn run_cast<'s, 'v>(
        &'s self,
        worker: &'v mut Worker<S>,
        request: S::Request,
        deadline: Instant,
        completion: CastCompletion,
        slot: Slot,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send + use<'s, 'v, S>
    {
        let Worker {
            service,
            cast_timer,
        } = worker;
        let timer = match cast_timer {
            Some(timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => cast_timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        async move {
            let class = S::request_class(&request);
            let call = AssertUnwindSafe(self.release(service, request)).catch_unwind();
            let outcome = tokio::select! {
                biased;
                result = call => match result {
                    Ok(Released::Refused(_)) => Outcome::Ignored,
                    Ok(Released::Ran(ran)) => match self.settle(class, ran) {
                        Ok((_, outcome)) | Err(CallFailure::Service(_, outcome)) => outcome,
                        Err(_) => Outcome::Ignored,
                    },
                    Err(payload) => {
                        drop(slot);
                        completion.finish(Outcome::Failure(FailureKind::Crash));
                        let crash: ActorProcessingErr =
                            Box::new(CountedCrash(panic_text(&*payload)));
                        return Err(crash);
                    }
                },
                () = timer.as_mut() => Outcome::Failure(FailureKind::Timeout),
            };
            drop(slot);
            completion.finish(outcome);
            Ok(())
        }
    }

    /// Checks an order against the gate once more, right before it leaves,
    /// then runs the call; a request that is not an order goes straight on.
    ///
    /// The gate is checked when this is called, right before the call's
    /// future is first polled. A plain fn choosing among futures, not an
    /// `async fn`: the service's call future is kept once, not once per arm
    /// and argument (its room is reserved in every service actor's task).
    fn release<'v>(
        &self,
        service: &'v mut S,
        request: S::Request,
    ) -> impl std::future::Future<Output = Released<S>> + Send + use<'v, S> {
        use futures_util::future::{ready, Either};
        match S::order_intent(&request) {
            None => Either::Left(service.call(request).map(Released::Ran)),
            Some(intent) => match self.cell.gate().release(intent) {
                // Boxed: an order is a network round trip, and its task-local
                // release would otherwise widen the room every service actor
                // keeps for its message future, orders or not (64 bytes).
                Ok(at) => Either::Right(Either::Left(
                    Box::pin(crate::modes::with_release(at, service.call(request)))
                        .map(Released::Ran),
                )),
                Err(reason) => Either::Right(Either::Right(ready(Released::Refused(reason)))),
            },
        }
    }

    /// The service's answer with how it classifies it; a success clears an
    /// auth failure, an error may raise one or ask for a pause.
    fn settle(&self, class: &'static str, ran: Result<S::Response, S::Error>) -> CallResult<S> {
        match ran {
            Ok(response) => {
                self.cell.auth_ok();
                let outcome = S::classify_response(&response);
                Ok((response, outcome))
            }
            Err(error) => {
                let outcome = self.classify(class, &error);
                Err(CallFailure::Service(error, outcome))
            }
        }
    }

    fn classify(&self, class: &'static str, error: &S::Error) -> Outcome {
        if S::is_auth_failure(error) {
            self.cell.auth_failed(error.to_string());
        }
        if let Some(pause) = S::retry_after(error) {
            self.cell.dependency_asked(class, pause);
        }
        S::classify(error)
    }
}

impl<S: Service> Actor for ServiceActor<S> {
    type Msg = ServiceMsg<S>;
    type State = Worker<S>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Worker<S>, ActorProcessingErr> {
        let mut service = self.factory.make();
        let deadline = self.cell.config().start_timeout;
        match tokio::time::timeout(deadline, self.factory.start(&mut service)).await {
            Ok(started) => started.map_err(|e| Box::new(e) as ActorProcessingErr)?,
            Err(_) => {
                let service = self.cell.name();
                return Err(format!(
                    "start did not finish within {} (services.{service}.start_timeout); counted as a failed start and retried on the restart backoff",
                    humantime::format_duration(deadline)
                )
                .into());
            }
        }
        Ok(Worker {
            service,
            cast_timer: None,
        })
    }

    // Not an `async fn`: rustc keeps an async fn's arguments twice in its
    // future (as passed and as bound), and ractor keeps room for this future
    // in the actor's task for the actor's whole life. Choosing the work
    // before the future starts keeps the message once.
    fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        worker: &mut Worker<S>,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send {
        use futures_util::future::Either;
        match message {
            ServiceMsg::Call {
                request,
                reply,
                slot,
            } => Either::Left(self.answer(&mut worker.service, request, reply, slot)),
            ServiceMsg::Cast {
                request,
                deadline,
                completion,
                slot,
            } => Either::Right(Either::Left(
                self.run_cast(worker, request, deadline, completion, slot),
            )),
            ServiceMsg::Reconnect { reply } => {
                Either::Right(Either::Right(self.reconnect(&mut worker.service, reply)))
            }
        }
    }
}
