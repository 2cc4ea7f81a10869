//! The breaker actor: supervises a service's actors and drives its breaker's
//! timers, events, restarts and shutdown.
//!
//! # Who hears of a transition, in order
//!
//! The cell hands each transition to this actor under the breaker's lock, so
//! they arrive in the order they happened. For each one the actor tells a
//! fixed list of observers, in this order:
//!
//! 1. the recovery actor (opened: schedule reconnects; left Open: stop);
//! 2. the health actor, directly (modes, score, alerts), never through the
//!    bus, so it can neither lag nor drop one;
//! 3. on a close, the hooks attached to the breaker (a degradation's journal
//!    replay), each run as a task the tree tracks;
//! 4. the broadcast bus, for subscribers outside the tree.

use super::health_actor::HealthMsg;
use super::recovery_actor::RecoveryMsg;
use super::service_actor::{CountedCrash, Factory, ServiceActor, ServiceActors};
use crate::breaker::{BreakerState, SeededJitter, Transition, TransitionReason};
use crate::cell::{BreakerCell, CellNotice};
use crate::clock::now;
use crate::config::ServiceConfig;
use crate::event::Event;
use crate::service::Service;
use crate::stats::SupervisionCounters;
use crate::supervision::{RestartDecision, RestartIntensity};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The pending timer that will send the next [`BreakerMsg::Tick`].
type TimerHandle = JoinHandle<Result<(), ractor::MessagingErr<BreakerMsg>>>;

/// What the breaker actor is told.
pub(crate) enum BreakerMsg {
    /// The breaker changed state (sent under the breaker's lock, so in order).
    Transitioned(Transition),
    /// A timer fired: poll the state machine for timed transitions.
    Tick,
    /// A deadline may have moved (a probe was admitted): re-arm the timer.
    Rearm,
    /// A reload changed the service's config: take its restart rules, re-arm.
    Reconfigured,
    /// Run `hook` each time the breaker closes (observer 3 in the module docs).
    OnClosed(ClosedHook),
    /// Start service actor number `worker` again after a crash.
    Respawn { worker: usize },
    /// Start every service actor that is not running (recovery after escalation).
    Revive {
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// The service's credentials failed (`Some`) or work again (`None`).
    Auth(Option<String>),
    /// Drain the service actors within `grace`, then stop.
    Shutdown {
        grace: Duration,
        reply: RpcReplyPort<()>,
    },
}

// Under the `fleet` feature ractor drops its blanket `Message` impl: each
// message type names itself (local only: never serialized).
#[cfg(feature = "fleet")]
impl ractor::Message for BreakerMsg {}

/// What runs when a breaker closes: it starts its own tracked work and returns at once.
pub(crate) type ClosedHook = Box<dyn Fn() + Send + Sync>;

impl From<CellNotice> for BreakerMsg {
    fn from(notice: CellNotice) -> Self {
        match notice {
            CellNotice::Transitioned(t) => BreakerMsg::Transitioned(t),
            CellNotice::Rearm => BreakerMsg::Rearm,
            CellNotice::Reconfigured => BreakerMsg::Reconfigured,
            CellNotice::Auth(reason) => BreakerMsg::Auth(reason),
        }
    }
}

/// What a breaker actor is started with.
pub(crate) struct BreakerArgs<S: Service> {
    pub(crate) cell: Arc<BreakerCell>,
    pub(crate) actors: Arc<ServiceActors<S>>,
    pub(crate) factory: Factory<S>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) recovery: Option<ActorRef<RecoveryMsg>>,
    /// The health actor, once it runs (it starts after the breakers).
    pub(crate) health: Arc<OnceLock<ActorRef<HealthMsg>>>,
    pub(crate) seed: u64,
}

pub(crate) struct BreakerActorState<S: Service> {
    args: BreakerArgs<S>,
    timer: Option<(Instant, TimerHandle)>,
    intensity: RestartIntensity,
    /// The table the restart rules were last read from (the cell's own,
    /// shared): a reload that changes `restart` starts a fresh history.
    config: Arc<ServiceConfig>,
    jitter: SeededJitter,
    /// Restart intensity was exceeded: no automatic restarts until a
    /// recovery succeeds or an operator resets the breaker.
    suspended: bool,
    /// Run on every close, after the health actor is told.
    closed_hooks: Vec<ClosedHook>,
    closing: bool,
}

/// Supervises one service's actors and owns its breaker's timers.
pub(crate) struct BreakerActor<S: Service>(PhantomData<fn() -> S>);

impl<S: Service> BreakerActor<S> {
    /// Logs a transition, tells recovery, revives the service actors after a
    /// lifted escalation, announces it, and re-arms the timer.
    async fn on_transition(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        transition: crate::breaker::Transition,
    ) {
        let service = Self::service(state);
        if transition.to.rejects_all() {
            tracing::warn!(%service, from = %transition.from, to = %transition.to,
                reason = %transition.reason, "breaker transition");
        } else {
            tracing::info!(%service, from = %transition.from, to = %transition.to,
                reason = %transition.reason, "breaker transition");
        }
        Self::notify_recovery(state, &transition);
        if state.suspended && !transition.to.rejects_all() && !state.closing {
            // An operator reset (or a recovery) lifted the escalation:
            // bring the service actors back.
            if let Err(error) = Box::pin(Self::revive(myself, state)).await {
                tracing::warn!(%service, %error, "could not restart service actors");
            }
        }
        let closed = transition.to == BreakerState::Closed;
        let event = Event::Transition {
            service,
            transition,
        };
        Self::tell_health(state, &event);
        if closed {
            for hook in &state.closed_hooks {
                hook();
            }
        }
        let _ = state.args.events.send(event);
        Self::reschedule(myself, state);
    }

    /// Starts service actor `worker` again after a crash.
    async fn respawn(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        worker: usize,
    ) {
        if state.closing || state.suspended || state.args.actors.get(worker).is_some() {
            return;
        }
        match Box::pin(Self::spawn_worker(myself, state, worker)).await {
            Ok(()) => {
                let service = Self::service(state);
                tracing::info!(%service, worker, "service actor restarted");
                SupervisionCounters::bump(&state.args.cell.stats.restarts);
                let _ = state
                    .args
                    .events
                    .send(Event::ServiceActorRestarted { service, worker });
            }
            Err(error) => Self::on_crash(myself, state, worker, error, false),
        }
    }

    /// Refuses new calls, drains every service actor within `grace`, then stops.
    async fn shut_down(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        grace: Duration,
    ) {
        state.closing = true;
        state.args.cell.begin_closing();
        Self::reschedule(myself, state);
        for worker in 0..state.args.actors.len() {
            if let Some(actor) = state.args.actors.get(worker) {
                if Box::pin(actor.drain_and_wait(Some(grace))).await.is_err() {
                    actor.kill();
                }
            }
            state.args.cell.set_worker_up(worker, false);
            state.args.actors.set(worker, None);
        }
        let service = Self::service(state);
        tracing::info!(%service, "service stopped");
        let _ = state.args.events.send(Event::ServiceStopped { service });
        myself.stop(Some("shutdown".to_string()));
    }

    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }

    fn service(state: &BreakerActorState<S>) -> Arc<str> {
        Arc::clone(state.args.cell.name())
    }

    /// Starts service actor `worker`, linked to this breaker actor. A failed
    /// start comes back from ractor's spawn rather than as a supervision
    /// event, so it is returned here to go down the crash path.
    async fn spawn_worker(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        worker: usize,
    ) -> Result<(), String> {
        let actor = ServiceActor {
            factory: state.args.factory.clone(),
            cell: Arc::clone(&state.args.cell),
        };
        match Actor::spawn_linked(None, actor, (), myself.get_cell()).await {
            Ok((actor, _)) => {
                state.args.actors.set(worker, Some(actor));
                state.args.cell.set_worker_up(worker, true);
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// A service actor crashed (or failed to start): count it unless its
    /// call already did, then restart it after backoff or escalate.
    fn on_crash(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        worker: usize,
        error: String,
        already_counted: bool,
    ) {
        state.args.cell.set_worker_up(worker, false);
        state.args.actors.set(worker, None);
        if state.closing {
            return;
        }
        let service = Self::service(state);
        if !already_counted {
            state.args.cell.apply(|m| m.record_crash(now()));
        }
        tracing::warn!(%service, worker, %error, "service actor failed");
        let _ = state.args.events.send(Event::ServiceActorFailed {
            service: Arc::clone(&service),
            worker,
            error,
        });
        if state.suspended {
            return;
        }
        match state.intensity.crash(now()) {
            RestartDecision::Restart { nth } => {
                let delay = state.config.restart.backoff().delay(nth, &mut state.jitter);
                myself.send_after(delay, move || BreakerMsg::Respawn { worker });
            }
            RestartDecision::Escalate { crashes } => {
                let reason = format!(
                    "{crashes} service-actor failures within {} (services.{service}.restart.max_restarts = {})",
                    humantime::format_duration(state.intensity.period()),
                    state.intensity.max_restarts()
                );
                tracing::error!(%service, %reason, "restart intensity exceeded; escalating");
                state.suspended = true;
                SupervisionCounters::bump(&state.args.cell.stats.escalations);
                state.args.cell.apply(|m| m.escalate(reason.clone(), now()));
                Self::tell(state, Event::Escalated { service, reason });
            }
        }
    }

    /// Starts every missing service actor; clears the restart history on success.
    async fn revive(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
    ) -> Result<(), String> {
        for worker in 0..state.args.actors.len() {
            if state.args.actors.get(worker).is_none() {
                Self::spawn_worker(myself, state, worker).await?;
                SupervisionCounters::bump(&state.args.cell.stats.restarts);
                let service = Self::service(state);
                let _ = state
                    .args
                    .events
                    .send(Event::ServiceActorRestarted { service, worker });
            }
        }
        state.suspended = false;
        state.intensity.clear();
        Ok(())
    }

    fn reschedule(myself: &ActorRef<BreakerMsg>, state: &mut BreakerActorState<S>) {
        let next = if state.closing {
            None
        } else {
            state.args.cell.next_deadline()
        };
        if state.timer.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, handle)) = state.timer.take() {
            handle.abort();
        }
        if let Some(at) = next {
            let delay = at.saturating_duration_since(now());
            let handle = myself.send_after(delay, || BreakerMsg::Tick);
            state.timer = Some((at, handle));
        }
    }

    /// Tells the recovery actor what a transition means for it.
    /// Tells the health actor (its modes and score), then outside
    /// subscribers on the bus, in that order. Recovery hears of a
    /// transition first, through [`Self::notify_recovery`].
    /// Tells the health actor, then the bus (observers 2 and 4).
    fn tell(state: &BreakerActorState<S>, event: Event) {
        Self::tell_health(state, &event);
        let _ = state.args.events.send(event);
    }

    fn tell_health(state: &BreakerActorState<S>, event: &Event) {
        if let Some(health) = state.args.health.get() {
            let _ = health.cast(HealthMsg::Observed(event.clone()));
        }
    }

    fn notify_recovery(state: &BreakerActorState<S>, transition: &Transition) {
        let Some(recovery) = &state.args.recovery else {
            return;
        };
        let service = Self::service(state);
        let escalated = matches!(transition.reason, TransitionReason::Escalated(_));
        let flap = transition.flap;
        let msg = match transition.to {
            BreakerState::Open => RecoveryMsg::BreakerOpened { service, flap },
            BreakerState::ForcedOpen if escalated => RecoveryMsg::BreakerOpened { service, flap },
            _ => RecoveryMsg::BreakerLeftOpen { service },
        };
        let _ = recovery.cast(msg);
    }

    /// What a message does (see [`Actor::handle`] for why this is boxed).
    async fn dispatch(
        myself: ActorRef<BreakerMsg>,
        message: BreakerMsg,
        state: &mut BreakerActorState<S>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BreakerMsg::Transitioned(transition) => {
                Box::pin(Self::on_transition(&myself, state, transition)).await;
            }
            BreakerMsg::Tick => {
                state.timer = None;
                state.args.cell.apply(|m| m.poll(now()));
                Self::reschedule(&myself, state);
            }
            BreakerMsg::Rearm => Self::reschedule(&myself, state),
            BreakerMsg::OnClosed(hook) => state.closed_hooks.push(hook),
            BreakerMsg::Reconfigured => {
                let config = state.args.cell.config();
                if config.restart != state.config.restart {
                    // The crash history restarts with the new limits.
                    let restart = &config.restart;
                    state.intensity = RestartIntensity::new(restart.max_restarts, restart.period);
                }
                state.config = config;
                Self::reschedule(&myself, state);
            }
            BreakerMsg::Respawn { worker } => {
                Box::pin(Self::respawn(&myself, state, worker)).await;
            }
            BreakerMsg::Auth(failure) => {
                let service = Self::service(state);
                match &failure {
                    Some(error) => {
                        tracing::error!(%service, %error, "auth failure: orders halted until a call succeeds")
                    }
                    None => tracing::info!(%service, "auth restored"),
                }
                Self::tell(state, Event::Auth { service, failure });
            }
            BreakerMsg::Revive { reply } => {
                let result = if state.closing {
                    Err("shutting down".to_string())
                } else {
                    Box::pin(Self::revive(&myself, state)).await
                };
                let _ = reply.send(result);
            }
            BreakerMsg::Shutdown { grace, reply } => {
                Box::pin(Self::shut_down(&myself, state, grace)).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl<S: Service> Actor for BreakerActor<S> {
    type Msg = BreakerMsg;
    type State = BreakerActorState<S>;
    type Arguments = BreakerArgs<S>;

    async fn pre_start(
        &self,
        myself: ActorRef<BreakerMsg>,
        args: BreakerArgs<S>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let inbox = myself.clone();
        args.cell.attach(Box::new(move |notice| {
            let _ = inbox.cast(BreakerMsg::from(notice));
        }));
        let config = args.cell.config();
        let mut state = BreakerActorState {
            intensity: RestartIntensity::new(config.restart.max_restarts, config.restart.period),
            config,
            jitter: SeededJitter::new(args.seed),
            suspended: false,
            closed_hooks: Vec::new(),
            args,
            timer: None,
            closing: false,
        };
        for worker in 0..state.args.actors.len() {
            if let Err(error) = Box::pin(Self::spawn_worker(&myself, &mut state, worker)).await {
                Self::on_crash(&myself, &mut state, worker, error, false);
            }
        }
        Self::reschedule(&myself, &mut state);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BreakerMsg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, handle)) = state.timer.take() {
            handle.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<BreakerMsg>,
        message: BreakerMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor keeps each actor's message loop in one allocation
        // sized for its largest handler future, for the actor's whole life.
        // Breaker messages are rare (transitions, timers), so one small box
        // per message costs less than the bytes every service's breaker
        // actor would otherwise keep for good (112 B each, measured).
        Box::pin(Self::dispatch(myself, message, state)).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<BreakerMsg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden on purpose: ractor's default stops this actor when any
        // child exits, which would take the whole service down with one crash.
        let (id, error, counted) = match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let counted = error.downcast_ref::<CountedCrash>().is_some();
                (cell.get_id(), error.to_string(), counted)
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell.get_id(),
                reason.unwrap_or_else(|| "stopped unexpectedly".to_string()),
                false,
            ),
            _ => return Ok(()),
        };
        if let Some(worker) = state.args.actors.position(id) {
            Self::on_crash(&myself, state, worker, error, counted);
        }
        Ok(())
    }
}
