//! The health aggregator: trading modes on events, health checks and
//! resource samples on intervals, trends, alerts.

use crate::breaker::BreakerState;
use crate::cell::BreakerControl;
use crate::clock::now;
use crate::event::{Alert, Event};
use crate::health::report::CheckResult;
use crate::health::score::{HealthStatus, TradingMetrics};
use crate::health::system::{SampleSource, SystemSample, SystemSampler};
use crate::health::trends::{TrendTracker, Trends};
use crate::health::HealthShared;
use crate::modes::{ModeEffects, Modes};
use crate::service::Evidence;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// One service's health check, type-erased. `Ok(NotImplemented)` also
/// stands for an inconclusive answer (throttled, or an auth error): neither
/// healthy nor a failure.
pub(crate) type CheckFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Evidence, String>> + Send>> + Send + Sync>;

/// How often trend snapshots are taken.
const TREND_INTERVAL: Duration = Duration::from_secs(60);

/// What the health actor is started with.
pub(crate) struct HealthArgs {
    pub(crate) shared: Arc<HealthShared>,
    pub(crate) checks: Vec<(Arc<str>, CheckFn)>,
    pub(crate) modes: watch::Sender<Modes>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) check_timeout: Duration,
    pub(crate) sample_interval: Duration,
    pub(crate) alert_threshold: u32,
    /// The order gate every order path reads; set with every published mode.
    pub(crate) gate: Arc<crate::modes::OrderGate>,
    /// Where breaker actors find this actor; set first thing in `pre_start`.
    pub(crate) inbox: Arc<std::sync::OnceLock<ActorRef<HealthMsg>>>,
    /// Where resource samples come from (`None`: sysinfo).
    pub(crate) sampler: Option<Box<dyn SampleSource>>,
}

/// What the health actor is told.
pub(crate) enum HealthMsg {
    /// A transition, escalation or auth change, told by its breaker actor
    /// directly (never through the bus, so it cannot lag or be dropped).
    Observed(Event),
    CheckTick,
    /// A check finished; `None` when it taught nothing (not implemented,
    /// or inconclusive), which leaves the last result in place.
    CheckDone {
        service: Arc<str>,
        result: Option<CheckResult>,
    },
    SampleTick,
    Sampled(SystemSample),
    TrendTick,
    Trading(TradingMetrics),
    /// Re-score after a burst of events (debounced).
    ScoreTick,
    /// A reload changed services' configs: re-derive every service's mode
    /// effects and publish the modes they give.
    Reconfigured,
}

// Under the `fleet` feature ractor drops its blanket `Message` impl: each
// message type names itself (local only: never serialized).
#[cfg(feature = "fleet")]
impl ractor::Message for HealthMsg {}

/// How long score alerts may lag the events behind them: a burst of
/// transitions (a mass outage over thousands of services) costs one report,
/// not one per event. Modes are never delayed.
const SCORE_DEBOUNCE: Duration = Duration::from_millis(100);

pub(crate) struct HealthState {
    args: HealthArgs,
    /// Service name → index in `controls`, so an event costs O(1) at 10k services.
    index: HashMap<Arc<str>, usize>,
    out_of_service: BTreeMap<Arc<str>, (String, ModeEffects)>,
    /// Services whose credentials failed, with the error.
    auth_failures: HashMap<Arc<str>, String>,
    checking: HashSet<Arc<str>>,
    /// The running health checks: owned, so stopping the actor aborts them.
    check_tasks: tokio::task::JoinSet<()>,
    sampler: Arc<Mutex<Box<dyn SampleSource>>>,
    sampling: bool,
    trends: HashMap<Arc<str>, TrendTracker>,
    below_threshold: Option<bool>,
    score_pending: bool,
    tasks: Vec<JoinHandle<()>>,
}

/// Aggregates health and publishes trading modes.
pub(crate) struct HealthActor;

impl HealthActor {
    fn rescore_soon(myself: &ActorRef<HealthMsg>, state: &mut HealthState) {
        if !state.score_pending {
            state.score_pending = true;
            myself.send_after(SCORE_DEBOUNCE, || HealthMsg::ScoreTick);
        }
    }

    /// Re-reads one service's breaker and updates the modes if they change.
    /// Re-reads one service's breaker (and its last health check) and
    /// updates its entry in the out-of-service set. A service is out of
    /// service while its breaker is not Closed, and also while its last
    /// health check fails: a feed that answers but is stale, or a database
    /// that refuses connections between calls, degrades the modes without
    /// waiting for traffic to trip the breaker.
    fn refresh_service(state: &mut HealthState, control: &BreakerControl) {
        let name = control.shared_name();
        let s = control.state();
        let breaker_in_service = matches!(
            s,
            BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly
        );
        let failing_check = state.args.shared.cache.lock().ok().and_then(|cache| {
            cache
                .checks
                .get(&name)
                .filter(|c| !c.healthy)
                .map(|c| c.error.clone().unwrap_or_default())
        });
        // Read from the live config, so a reload's effects apply on the spot.
        let mut effects = control.config().degradation.effects();
        if let Some(error) = state.auth_failures.get(&name) {
            // Trading rule 5: failed credentials halt orders, whatever the breaker says.
            effects.trading = Some(crate::modes::TradingMode::Halted);
            let why = format!("auth failure ({error})");
            state.out_of_service.insert(name, (why, effects));
            return;
        }
        if effects == ModeEffects::default() || (breaker_in_service && failing_check.is_none()) {
            state.out_of_service.remove(&name);
            return;
        }
        let why = if breaker_in_service {
            format!(
                "health check failing ({})",
                failing_check.unwrap_or_default()
            )
        } else {
            match control.metrics().manual_reason {
                Some(reason) => format!("breaker {s} ({reason})"),
                None => format!("breaker {s}"),
            }
        };
        state.out_of_service.insert(name, (why, effects));
    }

    fn publish_modes(state: &mut HealthState) {
        let modes = Modes::from_effects(
            state
                .out_of_service
                .iter()
                .map(|(name, (why, e))| (&**name, why.clone(), *e)),
            SystemTime::now(),
        );
        let previous = state.args.modes.borrow().epoch;
        let changed = !state.args.modes.borrow().same_modes(&modes);
        let epoch = if changed { previous + 1 } else { previous };
        // The gate enforces publication `epoch`; each order it releases
        // carries that epoch, so an audit judges it against these modes.
        state.args.gate.set(modes.trading, epoch);
        if changed {
            // Stamped after the gate moved: an order released before this
            // instant was released under the previous mode.
            let mut modes = modes;
            modes.epoch = epoch;
            modes.changed_at = SystemTime::now();
            tracing::warn!(trading = ?modes.trading, decision = ?modes.decision, price = ?modes.price,
                database = ?modes.database, reason = %modes.reason, "trading modes changed");
            state.args.modes.send_replace(modes.clone());
            let _ = state.args.events.send(Event::ModesChanged(modes));
        }
    }

    fn controls(state: &HealthState) -> &[BreakerControl] {
        &state.args.shared.controls
    }

    fn check_score(state: &mut HealthState) {
        let mut report = state.args.shared.summary();
        let below = u32::from(report.health_score) < state.args.alert_threshold;
        if state.below_threshold != Some(below) {
            let first = state.below_threshold.is_none();
            state.below_threshold = Some(below);
            if first && !below {
                return;
            }
            let alert = Alert::ScoreCrossed {
                score: report.health_score,
                threshold: state.args.alert_threshold,
                below,
                status: report.status,
                recommendations: std::mem::take(&mut report.recommendations),
            };
            if below || report.status != HealthStatus::Healthy {
                tracing::warn!(score = report.health_score, "health score below threshold");
            } else {
                tracing::info!(
                    score = report.health_score,
                    "health score back above threshold"
                );
            }
            let _ = state.args.events.send(Event::Alert(alert));
        }
    }
}

impl Actor for HealthActor {
    type Msg = HealthMsg;
    type State = HealthState;
    type Arguments = HealthArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HealthMsg>,
        mut args: HealthArgs,
    ) -> Result<HealthState, ActorProcessingErr> {
        let sampler_source = args.sampler.take();
        // From now on every breaker tells this actor of its changes; the
        // ones before are read from the published states below.
        let _ = args.inbox.set(myself.clone());
        let interval = args.shared.check_interval;
        let sample_interval = args.sample_interval;
        let tasks = vec![
            myself.send_interval(interval, || HealthMsg::CheckTick),
            myself.send_interval(sample_interval, || HealthMsg::SampleTick),
            myself.send_interval(TREND_INTERVAL, || HealthMsg::TrendTick),
        ];
        let index = args
            .shared
            .controls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.shared_name(), i))
            .collect();
        let mut state = HealthState {
            index,
            args,
            out_of_service: BTreeMap::new(),
            auth_failures: HashMap::new(),
            checking: HashSet::new(),
            check_tasks: tokio::task::JoinSet::new(),
            sampler: Arc::new(Mutex::new(
                sampler_source.unwrap_or_else(|| Box::new(SystemSampler::new())),
            )),
            sampling: false,
            trends: HashMap::new(),
            below_threshold: None,
            score_pending: false,
            tasks,
        };
        // Breakers may have moved before this actor was their observer.
        for control in state.args.shared.controls.clone() {
            Self::refresh_service(&mut state, &control);
        }
        Self::publish_modes(&mut state);
        let _ = myself.cast(HealthMsg::SampleTick);
        let _ = myself.cast(HealthMsg::TrendTick);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<HealthMsg>,
        state: &mut HealthState,
    ) -> Result<(), ActorProcessingErr> {
        for task in state.tasks.drain(..) {
            task.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<HealthMsg>,
        message: HealthMsg,
        state: &mut HealthState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HealthMsg::Observed(event) => Self::observed(&myself, state, event),
            HealthMsg::ScoreTick => {
                state.score_pending = false;
                Self::check_score(state);
            }
            HealthMsg::Reconfigured => {
                let controls = state.args.shared.controls.clone();
                for control in &controls {
                    Self::refresh_service(state, control);
                }
                Self::publish_modes(state);
                Self::rescore_soon(&myself, state);
            }
            HealthMsg::CheckTick => Self::start_checks(&myself, state),
            HealthMsg::CheckDone { service, result } => {
                state.checking.remove(&service);
                if let Some(result) = result {
                    if let Ok(mut cache) = state.args.shared.cache.lock() {
                        cache.checks.insert(Arc::clone(&service), result);
                    }
                    Self::service_changed(&myself, state, &service);
                }
            }
            HealthMsg::SampleTick => Self::start_sample(&myself, state),
            HealthMsg::Sampled(sample) => {
                state.sampling = false;
                if let Ok(mut cache) = state.args.shared.cache.lock() {
                    cache.system = Some(sample);
                }
                Self::check_score(state);
            }
            HealthMsg::TrendTick => Self::take_trends(state),
            HealthMsg::Trading(metrics) => {
                if let Ok(mut cache) = state.args.shared.cache.lock() {
                    cache.trading = metrics;
                    cache.trading_reported_at = Some(SystemTime::now());
                }
                Self::check_score(state);
            }
        }
        Ok(())
    }
}

impl HealthActor {
    /// An event from a breaker actor, one of the health actor's typed
    /// observers: a transition (and a flap alert), an escalation, or a
    /// change of the service's credentials.
    fn observed(myself: &ActorRef<HealthMsg>, state: &mut HealthState, event: Event) {
        match event {
            Event::Transition {
                service,
                transition,
            } => {
                if transition.flap {
                    Self::alert_flap(state, &service, transition.open_until);
                }
                Self::service_changed(myself, state, &service);
            }
            Event::Escalated { service, reason } => {
                let alert = Alert::Escalation { service, reason };
                let _ = state.args.events.send(Event::Alert(alert));
            }
            Event::Auth { service, failure } => {
                Self::auth_changed(state, &service, failure);
                Self::service_changed(myself, state, &service);
            }
            _ => {}
        }
    }

    /// One service's state moved: its entry, the modes, then the score.
    fn service_changed(myself: &ActorRef<HealthMsg>, state: &mut HealthState, service: &Arc<str>) {
        if let Some(i) = state.index.get(service).copied() {
            let control = Self::controls(state)[i].clone();
            Self::refresh_service(state, &control);
        }
        // Also for a run-time breaker, whose trip may have raised the gate
        // at once: the modes follow the tree's services, and the gate them.
        Self::publish_modes(state);
        Self::rescore_soon(myself, state);
    }

    fn alert_flap(state: &HealthState, service: &Arc<str>, open_until: Option<std::time::Instant>) {
        let flaps = state
            .index
            .get(service)
            .map(|i| Self::controls(state)[*i].metrics().flaps)
            .unwrap_or(0);
        let _ = state.args.events.send(Event::Alert(Alert::Flap {
            service: Arc::clone(service),
            flaps,
            open_until,
        }));
    }

    fn auth_changed(state: &mut HealthState, service: &Arc<str>, failure: Option<String>) {
        match failure {
            Some(error) => {
                state
                    .auth_failures
                    .insert(Arc::clone(service), error.clone());
                let _ = state.args.events.send(Event::Alert(Alert::Auth {
                    service: Arc::clone(service),
                    error,
                }));
            }
            None => {
                state.auth_failures.remove(service);
            }
        }
    }

    /// Starts every health check not already running, each on its own task
    /// (a slow check never holds up the actor), answering with `CheckDone`.
    fn start_checks(myself: &ActorRef<HealthMsg>, state: &mut HealthState) {
        while state.check_tasks.try_join_next().is_some() {}
        for (service, check) in state.args.checks.clone() {
            if !state.checking.insert(Arc::clone(&service)) {
                continue; // the previous check is still running
            }
            let me = myself.clone();
            let timeout = state.args.check_timeout;
            state.check_tasks.spawn(async move {
                let started = now();
                let outcome = tokio::time::timeout(timeout, check()).await;
                let at = now();
                let (healthy, error) = match outcome {
                    Ok(Ok(Evidence::NotImplemented)) => {
                        let _ = me.cast(HealthMsg::CheckDone {
                            service,
                            result: None,
                        });
                        return;
                    }
                    Ok(Ok(Evidence::Observed)) => (true, None),
                    Ok(Err(e)) => (false, Some(e)),
                    Err(_) => (
                        false,
                        Some(format!(
                            "timed out after {} (runtime.health_check_timeout)",
                            humantime::format_duration(timeout)
                        )),
                    ),
                };
                let result = Some(CheckResult {
                    healthy,
                    at,
                    latency: at.saturating_duration_since(started),
                    error,
                });
                let _ = me.cast(HealthMsg::CheckDone { service, result });
            });
        }
    }

    /// Samples CPU, memory and disk off the actor (sysinfo blocks).
    fn start_sample(myself: &ActorRef<HealthMsg>, state: &mut HealthState) {
        if state.sampling {
            return;
        }
        state.sampling = true;
        let sampler = Arc::clone(&state.sampler);
        let me = myself.clone();
        tokio::task::spawn_blocking(move || {
            let sample = sampler.lock().map(|mut s| s.sample());
            if let Ok(sample) = sample {
                let _ = me.cast(HealthMsg::Sampled(sample));
            }
        });
    }

    /// One trend point per service, and the trends it gives.
    fn take_trends(state: &mut HealthState) {
        let at = now();
        let mut computed = BTreeMap::new();
        // A service that has never been called has no trend: it shares one
        // empty value and keeps no history (10,000 idle services cost nothing).
        let untouched = Arc::new(Trends::default());
        for control in Self::controls(state).to_vec() {
            let name = control.shared_name();
            let (ok, bad, latency) = control.trend_point();
            if ok == 0 && bad == 0 && !state.trends.contains_key(&name) {
                computed.insert(name, Arc::clone(&untouched));
                continue;
            }
            let tracker = state.trends.entry(Arc::clone(&name)).or_default();
            tracker.push(at, ok, bad, latency);
            computed.insert(name, Arc::new(tracker.trends()));
        }
        let score = state.args.shared.summary().health_score;
        if let Ok(mut cache) = state.args.shared.cache.lock() {
            cache.trends = Arc::new(computed);
            cache.scores.push_front(score);
            cache.scores.truncate(crate::health::report::SCORE_HISTORY);
        }
    }
}
