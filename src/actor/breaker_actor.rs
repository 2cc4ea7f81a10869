//! The breaker actor: supervises a service's actors and drives its breaker's
//! timers, events and shutdown.

use super::service_actor::{Factory, ServiceActor, ServiceActors};
use crate::breaker::Transition;
use crate::cell::{now, BreakerCell};
use crate::event::Event;
use crate::service::Service;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Delay before a failed service actor is started again.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// The pending timer that will send the next [`BreakerMsg::Tick`].
type TimerHandle = JoinHandle<Result<(), ractor::MessagingErr<BreakerMsg>>>;

/// What the breaker actor is told.
pub(crate) enum BreakerMsg {
    /// The breaker changed state (sent under the breaker's lock, so in order).
    Transitioned(Transition),
    /// A timer fired: poll the state machine for timed transitions.
    Tick,
    /// Start service actor number `worker` again.
    Respawn { worker: usize },
    /// Drain the service actors within `grace`, then stop.
    Shutdown {
        grace: Duration,
        reply: RpcReplyPort<()>,
    },
}

/// What a breaker actor is started with.
pub(crate) struct BreakerArgs<S: Service> {
    pub(crate) cell: Arc<BreakerCell>,
    pub(crate) actors: Arc<ServiceActors<S>>,
    pub(crate) factory: Factory<S>,
    pub(crate) events: broadcast::Sender<Event>,
}

pub(crate) struct BreakerActorState<S: Service> {
    args: BreakerArgs<S>,
    timer: Option<(Instant, TimerHandle)>,
    closing: bool,
}

/// Supervises one service's actors and owns its breaker's timers.
pub(crate) struct BreakerActor<S: Service>(PhantomData<fn() -> S>);

impl<S: Service> BreakerActor<S> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }

    /// Starts service actor `worker`, linked to this breaker actor.
    async fn spawn_worker(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        worker: usize,
    ) -> bool {
        let actor = ServiceActor {
            factory: Arc::clone(&state.args.factory),
        };
        match Actor::spawn_linked(None, actor, (), myself.get_cell()).await {
            Ok((actor, _)) => {
                state.args.actors.set(worker, Some(actor));
                true
            }
            Err(error) => {
                // ractor returns a pre_start failure from spawn instead of
                // sending it to the supervisor: count it here so it is not lost.
                let service = Arc::clone(state.args.cell.name());
                tracing::warn!(%service, worker, %error, "service actor failed to start");
                state.args.cell.apply(|m| m.record_crash(now()));
                let _ = state.args.events.send(Event::ServiceActorFailed {
                    service,
                    worker,
                    error: error.to_string(),
                });
                myself.send_after(RESTART_DELAY, move || BreakerMsg::Respawn { worker });
                false
            }
        }
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

    fn on_service_actor_exit(
        myself: &ActorRef<BreakerMsg>,
        state: &mut BreakerActorState<S>,
        id: ractor::ActorId,
        error: Option<String>,
    ) {
        let Some(worker) = state.args.actors.position(id) else {
            return;
        };
        state.args.actors.set(worker, None);
        if state.closing {
            return;
        }
        let service = Arc::clone(state.args.cell.name());
        let error = error.unwrap_or_else(|| "stopped unexpectedly".to_string());
        tracing::warn!(%service, worker, %error, "service actor failed; restarting");
        let _ = state.args.events.send(Event::ServiceActorFailed {
            service,
            worker,
            error,
        });
        myself.send_after(RESTART_DELAY, move || BreakerMsg::Respawn { worker });
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
        args.cell.attach(myself.clone());
        let mut state = BreakerActorState {
            args,
            timer: None,
            closing: false,
        };
        for worker in 0..state.args.actors.len() {
            Self::spawn_worker(&myself, &mut state, worker).await;
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
        match message {
            BreakerMsg::Transitioned(transition) => {
                let service = Arc::clone(state.args.cell.name());
                if transition.to.rejects_all() {
                    tracing::warn!(%service, from = %transition.from, to = %transition.to,
                        reason = %transition.reason, "breaker transition");
                } else {
                    tracing::info!(%service, from = %transition.from, to = %transition.to,
                        reason = %transition.reason, "breaker transition");
                }
                let _ = state.args.events.send(Event::Transition {
                    service,
                    transition,
                });
                Self::reschedule(&myself, state);
            }
            BreakerMsg::Tick => {
                state.timer = None;
                state.args.cell.apply(|m| m.poll(now()));
                Self::reschedule(&myself, state);
            }
            BreakerMsg::Respawn { worker } => {
                if !state.closing
                    && state.args.actors.get(worker).is_none()
                    && Self::spawn_worker(&myself, state, worker).await
                {
                    let service = Arc::clone(state.args.cell.name());
                    tracing::info!(%service, worker, "service actor restarted");
                    let _ = state
                        .args
                        .events
                        .send(Event::ServiceActorRestarted { service, worker });
                }
            }
            BreakerMsg::Shutdown { grace, reply } => {
                state.closing = true;
                state.args.cell.begin_closing();
                Self::reschedule(&myself, state);
                for worker in 0..state.args.actors.len() {
                    if let Some(actor) = state.args.actors.get(worker) {
                        if actor.drain_and_wait(Some(grace)).await.is_err() {
                            actor.kill();
                        }
                    }
                    state.args.actors.set(worker, None);
                }
                let service = Arc::clone(state.args.cell.name());
                tracing::info!(%service, "service stopped");
                let _ = state.args.events.send(Event::ServiceStopped { service });
                let _ = reply.send(());
                myself.stop(Some("shutdown".to_string()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<BreakerMsg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden on purpose: ractor's default stops this actor when any
        // child exits, which would take the whole service down with one crash.
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                Self::on_service_actor_exit(&myself, state, cell.get_id(), Some(error.to_string()));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                Self::on_service_actor_exit(&myself, state, cell.get_id(), reason);
            }
            _ => {}
        }
        Ok(())
    }
}
