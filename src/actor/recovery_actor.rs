//! The recovery actor: one per tree, runs each open service's recovery
//! strategy on its backoff.

use crate::breaker::SeededJitter;
use crate::cell::BreakerControl;
use crate::event::Event;
use crate::service::Evidence;
use crate::stats::SupervisionCounters;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// One attempt of a service's strategy, type-erased: takes the 1-based
/// attempt number and reports what it learned, or what went wrong.
pub(crate) type AttemptFn = Arc<
    dyn Fn(u32) -> Pin<Box<dyn Future<Output = Result<Evidence, String>> + Send>> + Send + Sync,
>;

/// A service the recovery actor can bring back.
pub(crate) struct Recoverable {
    pub(crate) attempt: AttemptFn,
    pub(crate) check: super::CheckFn,
    pub(crate) control: BreakerControl,
    pub(crate) seed: u64,
}

/// What the recovery actor is told.
pub(crate) enum RecoveryMsg {
    /// A service joined the tree.
    Register {
        service: Arc<str>,
        recoverable: Box<Recoverable>,
    },
    /// Its breaker opened (or was forced open by escalation); `flap` when
    /// it re-opened within the stability window after its last recovery.
    BreakerOpened { service: Arc<str>, flap: bool },
    /// Its breaker left Open (the backoff is not reset here: only a close
    /// that holds for the stability window resets it, seen at the next open).
    BreakerLeftOpen { service: Arc<str> },
    /// An attempt finished.
    AttemptFinished {
        service: Arc<str>,
        generation: u64,
        result: Result<Evidence, String>,
    },
}

// Under the `fleet` feature ractor drops its blanket `Message` impl: each
// message type names itself (local only: never serialized).
#[cfg(feature = "fleet")]
impl ractor::Message for RecoveryMsg {}

struct Job {
    recoverable: Recoverable,
    jitter: SeededJitter,
    /// Attempts since the breaker last stayed Closed for its stability
    /// window: the backoff exponent. A flapping breaker keeps backing off.
    attempts: u32,
    /// Attempts in the current open period, for `max_attempts`.
    attempts_this_open: u32,
    generation: u64,
    running: Option<JoinHandle<()>>,
}

pub(crate) struct RecoveryState {
    /// Boxed: the table of a tree of 10,000 services then grows by a
    /// pointer per slot, not by a whole job.
    jobs: HashMap<Arc<str>, Box<Job>>,
    pending_open: Vec<(Arc<str>, bool)>,
    events: broadcast::Sender<Event>,
    /// Confirmations by health check after a recovery: owned, so stopping
    /// the actor aborts them.
    confirming: tokio::task::JoinSet<()>,
}

/// Runs recovery strategies; the attempts themselves run in tasks so a slow
/// reconnect of one service never delays another's.
pub(crate) struct RecoveryActor;

impl RecoveryActor {
    fn schedule(myself: &ActorRef<RecoveryMsg>, service: &Arc<str>, job: &mut Job) {
        if job.running.is_some() {
            return;
        }
        // Read at each attempt, so a reload's schedule applies to the next one.
        let config = job.recoverable.control.config();
        let delay = config
            .recovery
            .backoff()
            .delay(job.attempts, &mut job.jitter);
        let attempt = job.attempts_this_open + 1;
        let run = Arc::clone(&job.recoverable.attempt);
        let timeout = config.recovery.attempt_timeout;
        let generation = job.generation;
        let service = Arc::clone(service);
        let myself = myself.clone();
        tracing::debug!(%service, attempt, ?delay, "recovery attempt scheduled");
        job.running = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let result = match tokio::time::timeout(timeout, run(attempt)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "attempt timed out after {} (services.{service}.recovery.attempt_timeout)",
                    humantime::format_duration(timeout)
                )),
            };
            let _ = myself.cast(RecoveryMsg::AttemptFinished {
                service,
                generation,
                result,
            });
        }));
    }

    fn stop(job: &mut Job) {
        job.generation += 1;
        if let Some(task) = job.running.take() {
            task.abort();
        }
    }
}

impl Actor for RecoveryActor {
    type Msg = RecoveryMsg;
    type State = RecoveryState;
    type Arguments = broadcast::Sender<Event>;

    async fn pre_start(
        &self,
        _myself: ActorRef<RecoveryMsg>,
        events: broadcast::Sender<Event>,
    ) -> Result<RecoveryState, ActorProcessingErr> {
        Ok(RecoveryState {
            jobs: HashMap::new(),
            pending_open: Vec::new(),
            events,
            confirming: tokio::task::JoinSet::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RecoveryMsg>,
        state: &mut RecoveryState,
    ) -> Result<(), ActorProcessingErr> {
        for job in state.jobs.values_mut() {
            Self::stop(job);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RecoveryMsg>,
        message: RecoveryMsg,
        state: &mut RecoveryState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RecoveryMsg::Register {
                service,
                recoverable,
            } => {
                let seed = recoverable.seed;
                let mut job = Box::new(Job {
                    recoverable: *recoverable,
                    jitter: SeededJitter::new(seed),
                    attempts: 0,
                    attempts_this_open: 0,
                    generation: 0,
                    running: None,
                });
                if let Some(i) = state.pending_open.iter().position(|(s, _)| *s == service) {
                    state.pending_open.swap_remove(i);
                    Self::schedule(&myself, &service, &mut job);
                }
                state.jobs.insert(service, job);
            }
            RecoveryMsg::BreakerOpened { service, flap } => match state.jobs.get_mut(&service) {
                Some(job) => {
                    job.attempts_this_open = 0;
                    if !flap {
                        // The last close held for its stability window.
                        job.attempts = 0;
                    }
                    Self::schedule(&myself, &service, job);
                }
                None => state.pending_open.push((service, flap)),
            },
            RecoveryMsg::BreakerLeftOpen { service } => {
                state.pending_open.retain(|(s, _)| *s != service);
                if let Some(job) = state.jobs.get_mut(&service) {
                    Self::stop(job);
                }
            }
            RecoveryMsg::AttemptFinished {
                service,
                generation,
                result,
            } => Self::attempt_finished(&myself, state, service, generation, result),
        }
        Ok(())
    }
}

impl RecoveryActor {
    /// Counts a finished attempt, then acts on its evidence: HalfOpen (and
    /// confirmation by health checks), waiting out the open duration, or the
    /// next attempt on the backoff.
    fn attempt_finished(
        myself: &ActorRef<RecoveryMsg>,
        state: &mut RecoveryState,
        service: Arc<str>,
        generation: u64,
        result: Result<Evidence, String>,
    ) {
        let Some(job) = state.jobs.get_mut(&service) else {
            return;
        };
        if generation != job.generation {
            return; // the breaker moved on while it ran
        }
        job.running = None;
        job.attempts += 1;
        job.attempts_this_open += 1;
        let attempt = job.attempts_this_open;
        // One view of the config for this attempt's decisions (a reload
        // applies from the next attempt).
        let config = job.recoverable.control.config();
        let stats = job.recoverable.control.stats();
        SupervisionCounters::bump(&stats.recovery_attempts);
        let _ = state.events.send(Event::RecoveryAttempted {
            service: Arc::clone(&service),
            attempt,
            error: result.as_ref().err().cloned(),
        });
        match result {
            Ok(Evidence::NotImplemented) => {
                // Nothing was learned from the dependency: the
                // breaker waits out its open duration (an escalated
                // one becomes a timed Open), and trying again would
                // learn nothing more.
                tracing::info!(%service, attempt,
                    "recovery has no evidence (reconnect and health check not implemented); waiting out the open duration");
                job.recoverable.control.deescalate();
            }
            Ok(Evidence::Observed) => {
                SupervisionCounters::bump(&stats.recoveries);
                tracing::info!(%service, attempt, "recovery succeeded");
                Self::recovered(&mut state.confirming, job, &config);
            }
            Err(error) => {
                SupervisionCounters::bump(&stats.recovery_failures);
                tracing::warn!(%service, attempt, %error, "recovery attempt failed");
                if config.recovery.max_attempts.allows(attempt + 1) {
                    Self::schedule(myself, &service, job);
                } else {
                    tracing::error!(%service, attempts = attempt, "recovery gave up");
                    let _ = state.events.send(Event::RecoveryGaveUp {
                        service,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// Evidence that the dependency is back: the breaker goes HalfOpen and,
    /// when `recovery.confirm_with_health_checks` is on, health-check probes
    /// (tracked in `confirming`) confirm it.
    fn recovered(
        confirming: &mut tokio::task::JoinSet<()>,
        job: &Job,
        config: &crate::config::ServiceConfig,
    ) {
        let moved = job.recoverable.control.recovery_succeeded().is_some();
        if moved && config.recovery.confirm_with_health_checks {
            let probes = config.success_threshold;
            let check = Arc::clone(&job.recoverable.check);
            let control = job.recoverable.control.clone();
            let timeout = config.recovery.attempt_timeout;
            while confirming.try_join_next().is_some() {}
            confirming.spawn(confirm(control, check, probes, timeout));
        }
    }
}

/// Probes a HalfOpen breaker with the service's health check, through the
/// breaker's own probe permits, until it closes, a probe fails, or the
/// engine's traffic holds the probe slots.
async fn confirm(
    control: BreakerControl,
    check: super::CheckFn,
    probes: u32,
    timeout: std::time::Duration,
) {
    use crate::breaker::{BreakerState, FailureKind, Outcome};
    use crate::cell::Admission;
    for _ in 0..probes {
        if control.state() != BreakerState::HalfOpen {
            return;
        }
        // Dropped mid-check (the recovery actor stopping), it records Ignored.
        let Ok(admission) = Admission::admit(&**control.cell(), Outcome::Ignored) else {
            return; // real calls are probing
        };
        let outcome = match tokio::time::timeout(timeout, check()).await {
            Ok(Ok(Evidence::Observed)) => Outcome::Success,
            Ok(Ok(Evidence::NotImplemented)) => {
                // No check to confirm with: real probes must do it.
                admission.withdraw();
                return;
            }
            Ok(Err(_)) => Outcome::Failure(FailureKind::Other),
            Err(_) => Outcome::Failure(FailureKind::Timeout),
        };
        admission.finish(outcome);
        if outcome != Outcome::Success {
            return;
        }
    }
}
