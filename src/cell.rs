//! The published breaker: where handles, service actors and the breaker
//! actor meet.
//!
//! The state machine itself sits behind a mutex, but the call path reads only
//! one atomic word — state, a closing flag and the epoch — to admit or reject
//! a call. Only HalfOpen (a rare state, and one that must count its probes)
//! and outcome recording take the lock, for a few tens of nanoseconds with no
//! await inside. Every transition is published to the word and handed, still
//! under the lock, to the breaker actor's mailbox, so the actor sees
//! transitions in the order they happened.
//!
//! # Accounting under concurrency
//!
//! Sequential calls are exact: an outcome is recorded before the caller sees
//! its reply, so after `failure_threshold` failures the very next call is
//! rejected. Concurrent calls admitted before the trip was published still
//! reach the service; their number is bounded by the calls in flight at that
//! moment, so by `max_in_flight`. Their late outcomes count in the metrics but
//! cannot move the new state (see [`crate::breaker`], "Permits and epochs").

mod admission;
mod control;
mod rate_limit;
mod tally;
mod word;

use crate::breaker::{
    BreakerMetrics, BreakerState, CircuitBreaker, Outcome, Permit, Rejected, Transition, TripCause,
};
use crate::clock::now;
use crate::config::ServiceConfig;
use crate::modes::{OrderGate, TradingMode};
use crate::stats::SupervisionCounters;
pub(crate) use admission::{Admission, Capacity};
use arc_swap::{ArcSwap, ArcSwapOption};
pub use control::BreakerControl;
use rate_limit::Unpaced;
pub(crate) use rate_limit::{FleetShare, RateLimits, RateRefusal};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tally::Rejections;

use word::Word;

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Rejected(BreakerState, RejectInfo),
    ShuttingDown,
    Shed,
    /// Slow start after a recovery: only this many may be in flight yet.
    SlowStart(u32),
    /// No service actor is running to take the call (all restarting).
    Unavailable,
}

/// Why an open breaker refused, and until when: read from two atomics, no
/// lock, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RejectInfo {
    pub(crate) open_until: Option<Instant>,
    pub(crate) cause: TripCause,
}

/// What the cell tells its breaker actor. Transitions are sent under the
/// breaker's lock, so the actor sees them in order.
pub(crate) enum CellNotice {
    /// The breaker changed state.
    Transitioned(crate::breaker::Transition),
    /// A deadline may have moved (a probe was admitted): re-arm the timer.
    Rearm,
    /// The service's credentials failed (`Some`) or work again (`None`).
    Auth(Option<String>),
    /// A reload changed the service's config: re-read what the actor keeps
    /// (restart rules) and re-arm its timer.
    Reconfigured,
}

/// A duration as saturating nanoseconds, for an atomic.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The breaker actor's inbox as the cell sees it: the cell sits below the
/// actors, so it holds a function, not the actor's message type.
pub(crate) type NoticeSink = Box<dyn Fn(CellNotice) + Send + Sync>;

/// A bulkhead slot on one service actor, released on drop.
pub(crate) struct Slot {
    cell: Arc<BreakerCell>,
    worker: usize,
}

impl Slot {
    pub(crate) fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for Slot {
    #[inline]
    fn drop(&mut self) {
        if self.cell.workers > 1 {
            self.cell.busy[self.worker].fetch_sub(1, Ordering::Release);
        }
        self.cell.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Service names as `'static` text, each stored once per process: a name
/// registered again (a run-time breaker re-added) reuses its first copy.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<std::collections::HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// One service's breaker as shared between the call path and the actors.
///
/// The layout is fixed (`repr(C)`) and ordered by heat: a call touches the
/// fields up to `cause` (admission, bulkhead, deadline, 46 bytes) and the
/// machine right after them (the outcome), and nothing else of the cell.
/// With thousands of services each call finds its cell cold, so every
/// further line it touched would be one more miss (`benches/scale.rs`,
/// N = 10,000).
///
/// Not over-aligned to a cache line: the call also bumps the `Arc`'s count
/// (its bulkhead slot holds one), which sits right before these fields, so
/// count and call-path fields are 62 contiguous bytes either way; and an
/// over-aligned allocation went through glibc's aligned path, which left
/// about 200 bytes of slack per service (2 MiB over 10,000 services, with
/// no throughput difference in the interleaved rounds; BENCHMARKS.md).
#[repr(C)]
pub(crate) struct BreakerCell {
    // ── The call path's line ──
    word: AtomicU64,
    /// `call_timeout` in nanoseconds, live.
    call_timeout: AtomicU64,
    /// Slow start: when the ramp began (nanoseconds after `born`, 0: not
    /// ramping).
    ramp_from: AtomicU64,
    /// Which of the first 64 service actors run (bit `i`: worker `i`); a
    /// restarting one takes no calls.
    up_first: AtomicU64,
    in_flight: AtomicU32,
    /// `max_in_flight`, live: a reload may change it.
    max_in_flight: AtomicU32,
    /// How many service actors the service runs (`concurrency`).
    workers: u32,
    /// Whether `limits` holds any: the call path of an unpaced service
    /// reads this flag, never the swap.
    limited: AtomicBool,
    /// The last trip's cause (`TripCause` as a byte).
    cause: std::sync::atomic::AtomicU8,
    // ── The outcome's lines ──
    machine: Mutex<CircuitBreaker>,
    // ── Everything else: off the caller's path ──
    /// Read by the service actor on every success; kept off the callers'
    /// line, which its thread would otherwise pull across on every call.
    auth_failed: AtomicBool,
    label: &'static str,
    name: Arc<str>,
    rejected_unlocked: Rejections,
    /// Calls in flight per service actor, for `concurrency > 1` only.
    busy: Box<[AtomicU32]>,
    /// Workers 64 and up, 64 per word (concurrency may reach 1024).
    up_rest: Box<[AtomicU64]>,
    next_worker: AtomicUsize,
    /// Where notices for the breaker actor go, once it runs.
    actor: OnceLock<NoticeSink>,
    pub(crate) stats: SupervisionCounters,
    gate: Arc<OrderGate>,
    /// When an Open breaker admits probes: nanoseconds after `born`, 0 for none.
    open_until: AtomicU64,
    /// Slow start: the window in nanoseconds (0: none).
    slow_start: AtomicU64,
    /// The dependency's request limits, if it has any.
    limits: ArcSwapOption<RateLimits>,
    /// This node's share of them when they are a fleet budget
    /// (`FleetShare::pack`; 0: the whole budget).
    share: AtomicU64,
    /// `[services.NAME]` as last loaded; a reload swaps it.
    config: ArcSwap<ServiceConfig>,
    born: Instant,
    /// The last transition to Open, for a fleet hint sent again after the
    /// event bus outran the hint sender (boxed: trips are rare).
    #[cfg(feature = "fleet")]
    last_trip: Mutex<Option<Box<Transition>>>,
}

impl BreakerCell {
    pub(crate) fn new(
        name: Arc<str>,
        machine: CircuitBreaker,
        config: Arc<ServiceConfig>,
        gate: Arc<OrderGate>,
    ) -> Self {
        let word = Word::pack(machine.state(), machine.epoch(), false).bits();
        let concurrency = config.concurrency as usize;
        let limits = config
            .rate_limit
            .as_ref()
            .map(|limits| Arc::new(RateLimits::new(&name, limits, FleetShare::WHOLE)));
        Self {
            label: intern(&name),
            name,
            word: AtomicU64::new(word),
            machine: Mutex::new(machine),
            rejected_unlocked: Rejections::new(),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(config.max_in_flight),
            workers: u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX),
            busy: if concurrency > 1 {
                (0..concurrency).map(|_| AtomicU32::new(0)).collect()
            } else {
                Box::new([])
            },
            up_first: AtomicU64::new(0),
            up_rest: (0..concurrency.max(1).saturating_sub(1) / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            next_worker: AtomicUsize::new(0),
            actor: OnceLock::new(),
            stats: SupervisionCounters::default(),
            auth_failed: AtomicBool::new(false),
            gate,
            open_until: AtomicU64::new(0),
            slow_start: AtomicU64::new(nanos(config.slow_start.unwrap_or_default())),
            ramp_from: AtomicU64::new(0),
            call_timeout: AtomicU64::new(nanos(config.call_timeout)),
            limited: AtomicBool::new(limits.is_some()),
            limits: ArcSwapOption::new(limits),
            share: AtomicU64::new(0),
            config: ArcSwap::new(config),
            cause: std::sync::atomic::AtomicU8::new(0),
            born: now(),
            #[cfg(feature = "fleet")]
            last_trip: Mutex::new(None),
        }
    }

    /// A cell for `config` with a fresh machine: for unit tests above the
    /// cell that need a breaker without a tree.
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, config: ServiceConfig, gate: Arc<OrderGate>) -> Self {
        let machine = CircuitBreaker::new(config.breaker_settings(), now());
        Self::new(Arc::from(name), machine, Arc::new(config), gate)
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The name as errors carry it: interned once, so building an error
    /// (a rejection, on the hot path) copies a pointer, not a refcount.
    #[inline]
    pub(crate) fn label(&self) -> &'static str {
        self.label
    }

    pub(crate) fn attach(&self, sink: NoticeSink) {
        let _ = self.actor.set(sink);
    }

    fn lock(&self) -> MutexGuard<'_, CircuitBreaker> {
        // The machine never panics while locked; if something else did,
        // its state is still consistent, so carry on rather than poison
        // every later call.
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The published state, read without the lock.
    pub(crate) fn state(&self) -> BreakerState {
        Word::read(&self.word).state()
    }

    /// Admission: one atomic load on the Closed and Open paths.
    #[inline]
    pub(crate) fn admit(&self, now: impl FnOnce() -> Instant) -> Result<Permit, Refusal> {
        let word = Word::read(&self.word);
        if word.closing() {
            return Err(Refusal::ShuttingDown);
        }
        match word.state() {
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                Ok(Permit::unaccounted(word.epoch()))
            }
            state @ (BreakerState::Open | BreakerState::ForcedOpen) => Err(self.reject(state)),
            BreakerState::HalfOpen => {
                let permit =
                    self.lock()
                        .try_acquire(now())
                        .map_err(|Rejected { state, .. }| {
                            Refusal::Rejected(state, self.reject_info())
                        })?;
                // The probe's deadline is a timer in the breaker actor: arm
                // it now, or a probe that never returns holds HalfOpen.
                if let Some(notify) = self.actor.get() {
                    notify(CellNotice::Rearm);
                }
                Ok(permit)
            }
        }
    }

    /// The refusal [`Self::admit`] would give now if the published state
    /// refuses every call (Open or ForcedOpen), counted as a rejection;
    /// `None` otherwise, the permit left to admission. A paced request asks
    /// this before its rate-limit wait, so a call that will be refused
    /// neither waits for a slot nor spends one of the dependency's.
    pub(crate) fn refusing_all(&self) -> Option<Refusal> {
        let word = Word::read(&self.word);
        match word.state() {
            state @ (BreakerState::Open | BreakerState::ForcedOpen) if !word.closing() => {
                Some(self.reject(state))
            }
            _ => None,
        }
    }

    /// Counts a rejection by `state` and says why.
    #[inline]
    fn reject(&self, state: BreakerState) -> Refusal {
        self.rejected_unlocked.bump();
        Refusal::Rejected(state, self.reject_info())
    }

    /// Whether the dependency has request limits: one flag, no swap.
    #[inline]
    pub(crate) fn paced(&self) -> bool {
        self.limited.load(Ordering::Acquire)
    }

    /// The dependency's request limits, if configured.
    #[inline]
    pub(crate) fn limits(&self) -> Option<Arc<RateLimits>> {
        if !self.limited.load(Ordering::Acquire) {
            return None;
        }
        self.limits.load_full()
    }

    /// Waits for a slot in the dependency's limits for a request of
    /// `class`, up to `max_wait`. Limits replaced while it waits (a reload,
    /// a fleet re-split) hand it on to the new ones, with the same
    /// deadline.
    pub(crate) async fn pace(&self, class: &str) -> Result<(), RateRefusal> {
        let mut until = None;
        while let Some(limits) = self.limits() {
            let until = *until.get_or_insert_with(|| limits.wait_limit());
            match limits.acquire(class, until).await {
                Ok(()) => return Ok(()),
                Err(Unpaced::Refused(refusal)) => return Err(refusal),
                // The new limits are stored a moment after the old retire.
                Err(Unpaced::Retired) => tokio::task::yield_now().await,
            }
        }
        Ok(())
    }

    /// A slot now or a refusal: for `cast`, which cannot wait.
    pub(crate) fn pace_now(&self, class: &str) -> Result<(), RateRefusal> {
        while let Some(limits) = self.limits() {
            match limits.try_acquire_now(class) {
                Ok(()) => return Ok(()),
                Err(Unpaced::Refused(refusal)) => return Err(refusal),
                Err(Unpaced::Retired) => std::thread::yield_now(),
            }
        }
        Ok(())
    }

    /// This node's share of the rate limits (the whole when not in a fleet).
    pub(crate) fn share(&self) -> FleetShare {
        FleetShare::unpack(self.share.load(Ordering::Acquire))
    }

    /// Keeps the fleet share of the rate limits valid for `for_` from now.
    #[cfg_attr(not(feature = "fleet"), allow(dead_code))]
    pub(crate) fn renew_share_lease(&self, for_: Duration) {
        if let Some(limits) = self.limits() {
            limits.renew_lease(for_);
        }
    }

    /// Paces from now on by `share` of the configured limits. The new
    /// limits continue the old ones' schedule ([`RateLimits::replacing`]):
    /// a new share never hands out a burst the old one had already given.
    /// `false` when nothing changed.
    pub(crate) fn set_share(&self, share: FleetShare) -> bool {
        let machine = self.lock();
        if self.share() == share {
            return false;
        }
        self.share.store(share.pack(), Ordering::Release);
        let config = self.config.load();
        if let Some(limits) = &config.rate_limit {
            let previous = self.limits.load_full();
            let limits = RateLimits::replacing(&self.name, limits, share, previous.as_deref());
            self.limits.store(Some(Arc::new(limits)));
        }
        drop(machine);
        true
    }

    /// The dependency asked to be left alone for `duration` (Retry-After):
    /// pause the request's class, or with no limits to pause, open the
    /// breaker for exactly that long.
    pub(crate) fn dependency_asked(&self, class: &str, duration: Duration) {
        let paused = self
            .limits()
            .is_some_and(|limits| limits.pause(class, duration));
        if !paused {
            self.apply(|m| m.open_for(duration, now()));
        }
    }

    /// Until when, and why, the breaker refuses.
    #[inline]
    fn reject_info(&self) -> RejectInfo {
        let nanos = self.open_until.load(Ordering::Relaxed);
        RejectInfo {
            open_until: (nanos != 0).then(|| self.born + Duration::from_nanos(nanos)),
            cause: TripCause::from_u8(self.cause.load(Ordering::Relaxed)),
        }
    }

    /// Marks service actor `worker` as running or not. The breaker actor
    /// calls it on every start, crash and stop.
    pub(crate) fn set_worker_up(&self, worker: usize, up: bool) {
        let Some(word) = self.up_word(worker) else {
            return;
        };
        let bit = 1u64 << (worker % 64);
        if up {
            word.fetch_or(bit, Ordering::Release);
        } else {
            word.fetch_and(!bit, Ordering::Release);
        }
    }

    /// Whether service actor `worker` is running.
    #[inline]
    fn worker_up(&self, worker: usize) -> bool {
        self.up_word(worker)
            .is_some_and(|word| word.load(Ordering::Acquire) & (1u64 << (worker % 64)) != 0)
    }

    fn up_word(&self, worker: usize) -> Option<&AtomicU64> {
        if worker >= self.workers as usize {
            return None;
        }
        match worker / 64 {
            0 => Some(&self.up_first),
            chunk => self.up_rest.get(chunk - 1),
        }
    }

    /// Takes a bulkhead slot on the least busy running service actor.
    #[inline]
    pub(crate) fn take_slot(self: &Arc<Self>) -> Result<Slot, Refusal> {
        let taken = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max_in_flight.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Shed);
        }
        if self.ramp_from.load(Ordering::Relaxed) != 0 {
            if let Some(cap) = self.ramp_cap() {
                if taken >= cap {
                    self.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refusal::SlowStart(cap));
                }
            }
        }
        // One service actor needs no load balancing (and no busy counter).
        let worker = if self.workers > 1 {
            self.pick_worker()
        } else if self.up_first.load(Ordering::Acquire) & 1 != 0 {
            Some(0)
        } else {
            None
        };
        let Some(worker) = worker else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Unavailable);
        };
        if self.workers > 1 {
            self.busy[worker].fetch_add(1, Ordering::AcqRel);
        }
        Ok(Slot {
            cell: Arc::clone(self),
            worker,
        })
    }

    /// While ramping after a recovery: how many may be in flight now, from 1
    /// up to `max_in_flight` across the slow-start window. `None` (and the
    /// ramp ends) once the window has passed.
    #[cold]
    fn ramp_cap(&self) -> Option<u32> {
        let window = Duration::from_nanos(self.slow_start.load(Ordering::Relaxed));
        if window.is_zero() {
            self.ramp_from.store(0, Ordering::Relaxed);
            return None;
        }
        let from = Duration::from_nanos(self.ramp_from.load(Ordering::Relaxed));
        let elapsed = now()
            .saturating_duration_since(self.born)
            .saturating_sub(from);
        if elapsed >= window {
            self.ramp_from.store(0, Ordering::Relaxed);
            return None;
        }
        let share = elapsed.as_secs_f64() / window.as_secs_f64();
        Some(((f64::from(self.max_in_flight()) * share) as u32).max(1))
    }

    /// The least busy running service actor: a restarting one's slot takes
    /// no calls, so healthy siblings serve them.
    fn pick_worker(&self) -> Option<usize> {
        let n = self.busy.len();
        let start = self.next_worker.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = None;
        let mut best_load = u32::MAX;
        for i in 0..n {
            let idx = (start + i) % n;
            if !self.worker_up(idx) {
                continue;
            }
            let load = self.busy[idx].load(Ordering::Acquire);
            if load == 0 {
                return Some(idx);
            }
            if load < best_load {
                best = Some(idx);
                best_load = load;
            }
        }
        best
    }

    pub(crate) fn max_in_flight(&self) -> u32 {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    /// `call_timeout`, as last loaded.
    #[inline]
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_nanos(self.call_timeout.load(Ordering::Relaxed))
    }

    /// `[services.NAME]`, as last loaded.
    pub(crate) fn config(&self) -> Arc<ServiceConfig> {
        self.config.load_full()
    }

    /// Runs `config` from now on, keeping the breaker's state, metrics,
    /// window contents and counters ([`CircuitBreaker::reconfigure`]).
    ///
    /// Rate limits that changed continue the old ones' schedule
    /// ([`RateLimits::replacing`]), so a reload never grants a fresh burst
    /// on top of what was just sent: the new pace starts after the last
    /// turn the old limits gave.
    pub(crate) fn reconfigure(&self, config: Arc<ServiceConfig>) {
        let mut machine = self.lock();
        machine.reconfigure(config.breaker_settings(), now());
        let old = self.config.load_full();
        self.max_in_flight
            .store(config.max_in_flight, Ordering::Relaxed);
        self.slow_start.store(
            nanos(config.slow_start.unwrap_or_default()),
            Ordering::Relaxed,
        );
        self.call_timeout
            .store(nanos(config.call_timeout), Ordering::Relaxed);
        if old.rate_limit != config.rate_limit {
            let limits = config.rate_limit.as_ref().map(|limits| {
                let previous = self.limits.load_full();
                Arc::new(RateLimits::replacing(
                    &self.name,
                    limits,
                    self.share(),
                    previous.as_deref(),
                ))
            });
            self.limited.store(limits.is_some(), Ordering::Release);
            self.limits.store(limits);
        }
        self.config.store(config);
        drop(machine);
        if let Some(notify) = self.actor.get() {
            notify(CellNotice::Reconfigured);
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Gives back a permit whose call never started (shed by the bulkhead).
    pub(crate) fn cancel(&self, permit: Permit) {
        if permit.is_counted() {
            self.lock().cancel(permit);
        }
    }

    /// Records an outcome; a resulting transition is published at once.
    pub(crate) fn record(&self, permit: Permit, outcome: Outcome, elapsed: Duration, now: Instant) {
        let mut machine = self.lock();
        if let Some(t) = machine.record(permit, outcome, elapsed, now) {
            self.publish(&machine, t);
        }
    }

    /// Runs a state-changing operation under the lock and publishes its result.
    pub(crate) fn apply(
        &self,
        op: impl FnOnce(&mut CircuitBreaker) -> Option<Transition>,
    ) -> Option<Transition> {
        let mut machine = self.lock();
        let t = op(&mut machine)?;
        self.publish(&machine, t.clone());
        Some(t)
    }

    fn publish(&self, machine: &CircuitBreaker, t: Transition) {
        // A CAS loop, so a concurrent `begin_closing` is never overwritten.
        let (state, epoch) = (machine.state(), machine.epoch());
        let until = machine.open_until().map_or(0, |at| {
            let nanos = at.saturating_duration_since(self.born).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
        });
        self.open_until.store(until, Ordering::Relaxed);
        if self.slow_start.load(Ordering::Relaxed) != 0 {
            let ramp = if t.from == BreakerState::HalfOpen && t.to == BreakerState::Closed {
                let at = t.at.saturating_duration_since(self.born).as_nanos();
                u64::try_from(at).unwrap_or(u64::MAX).max(1)
            } else {
                0
            };
            self.ramp_from.store(ramp, Ordering::Relaxed);
        }
        if let Some(cause) = TripCause::of(&t.reason) {
            self.cause.store(cause.as_u8(), Ordering::Relaxed);
        }
        #[cfg(feature = "fleet")]
        if t.to == BreakerState::Open {
            *self.last_trip.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(t.clone()));
        }
        if !matches!(
            state,
            BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly
        ) {
            // The trading mode this outage implies tightens the order gate
            // at once, before the state is visible and before the health
            // actor (which publishes the modes, and alone loosens them) runs.
            if let Some(mode) = self.config.load().degradation.effects().trading {
                self.gate.raise(mode);
            }
        }
        word::publish(&self.word, state, epoch);
        if let Some(notify) = self.actor.get() {
            notify(CellNotice::Transitioned(t));
        }
    }

    /// The service reported an auth failure: orders stop at once (trading
    /// rule 5), and the breaker actor is told once.
    pub(crate) fn auth_failed(&self, message: String) {
        self.gate.raise(TradingMode::Halted);
        if !self.auth_failed.swap(true, Ordering::AcqRel) {
            if let Some(notify) = self.actor.get() {
                notify(CellNotice::Auth(Some(message)));
            }
        }
    }

    /// The order gate every order path reads.
    pub(crate) fn gate(&self) -> &OrderGate {
        &self.gate
    }

    /// A call succeeded: clears an auth failure (one relaxed load otherwise).
    #[inline]
    pub(crate) fn auth_ok(&self) {
        if self.auth_failed.load(Ordering::Relaxed)
            && self.auth_failed.swap(false, Ordering::AcqRel)
        {
            if let Some(notify) = self.actor.get() {
                notify(CellNotice::Auth(None));
            }
        }
    }

    /// Refuses new calls from now on; calls already admitted finish.
    pub(crate) fn begin_closing(&self) {
        word::begin_closing(&self.word);
    }

    /// Counters and a compact latency snapshot, for trends.
    pub(crate) fn trend_point(&self) -> (u64, u64, crate::breaker::SparseHistogram) {
        let machine = self.lock();
        let m = machine.metrics();
        (
            m.successes,
            m.failures + m.timeouts,
            machine.latency().sparse(),
        )
    }

    /// The last transition to Open, whatever the state now.
    #[cfg(feature = "fleet")]
    pub(crate) fn last_trip(&self) -> Option<Transition> {
        let last = self.last_trip.lock().unwrap_or_else(|p| p.into_inner());
        last.as_deref().cloned()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lock().next_deadline()
    }

    pub(crate) fn metrics(&self) -> BreakerMetrics {
        let mut metrics = self.lock().metrics();
        metrics.rejected += self.rejected_unlocked.total();
        metrics
    }
}

/// `at + d`, saturating about 30 years ahead instead of panicking on an
/// absurd duration.
pub(crate) fn deadline_after(at: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(crate::breaker::saturating_add(at.into_std(), d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cell(service: &str, gate: &Arc<OrderGate>) -> BreakerCell {
        let config = Config::seed_defaults().services.remove(service).unwrap();
        BreakerCell::for_test(service, config, Arc::clone(gate))
    }

    #[test]
    fn test_publish_when_breaker_leaves_service_then_order_gate_tightens_before_any_actor_runs() {
        let gate = Arc::new(OrderGate::default());
        let database = cell("database", &gate);
        database.apply(|m| m.force_open("test", now()));
        assert_eq!(
            gate.trading(),
            TradingMode::Active,
            "the database's outage has no trading effect"
        );
        let kite = cell("kite_api", &gate);
        kite.apply(|m| m.force_open("test", now()));
        assert_eq!(
            gate.trading(),
            TradingMode::Halted,
            "disable_orders halts at the trip itself, with no health actor running"
        );
        kite.apply(|m| Some(m.reset(now())));
        assert_eq!(
            gate.trading(),
            TradingMode::Halted,
            "only the health actor loosens the gate, with the modes it publishes"
        );
    }

    fn cell_with_workers(workers: u32) -> Arc<BreakerCell> {
        let config = ServiceConfig {
            concurrency: workers,
            max_in_flight: workers * 4,
            ..ServiceConfig::default()
        };
        Arc::new(BreakerCell::for_test(
            "wide",
            config,
            Arc::new(OrderGate::default()),
        ))
    }

    #[test]
    fn test_take_slot_when_only_workers_past_the_first_word_run_then_calls_go_to_them() {
        let cell = cell_with_workers(130);
        assert_eq!(
            cell.take_slot().err(),
            Some(Refusal::Unavailable),
            "no service actor runs yet"
        );
        // Worker 129 lives in the third word of the up flags.
        cell.set_worker_up(129, true);
        let slots: Vec<Slot> = (0..3).map(|_| cell.take_slot().unwrap()).collect();
        assert!(slots.iter().all(|slot| slot.worker() == 129));
        cell.set_worker_up(64, true);
        let next = cell.take_slot().unwrap();
        assert_eq!(next.worker(), 64, "the least busy running worker");
        cell.set_worker_up(129, false);
        cell.set_worker_up(64, false);
        assert_eq!(cell.take_slot().err(), Some(Refusal::Unavailable));
        // Out of range is ignored, never a panic.
        cell.set_worker_up(130, true);
        assert_eq!(cell.take_slot().err(), Some(Refusal::Unavailable));
    }

    #[test]
    fn test_take_slot_when_the_single_worker_restarts_then_calls_wait_for_it() {
        let cell = cell_with_workers(1);
        assert_eq!(cell.take_slot().err(), Some(Refusal::Unavailable));
        cell.set_worker_up(0, true);
        let slot = cell.take_slot().unwrap();
        assert_eq!((slot.worker(), cell.in_flight()), (0, 1));
        drop(slot);
        assert_eq!(cell.in_flight(), 0, "a dropped slot is released");
        cell.set_worker_up(0, false);
        assert_eq!(cell.take_slot().err(), Some(Refusal::Unavailable));
    }

    #[tokio::test(start_paused = true)]
    async fn test_pace_when_a_fleet_re_splits_mid_wait_then_callers_move_to_the_new_share_without_crowding(
    ) {
        let config = ServiceConfig {
            rate_limit: Some(rate_limit::kite_orders()),
            ..ServiceConfig::default()
        };
        let cell = Arc::new(BreakerCell::for_test(
            "kite_api",
            config,
            Arc::new(OrderGate::default()),
        ));
        let start = tokio::time::Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (cell, sent) = (Arc::clone(&cell), Arc::clone(&sent));
            callers.spawn(async move {
                while start.elapsed() < Duration::from_secs(4) {
                    cell.pace("orders").await.unwrap();
                    sent.lock().unwrap().push(start.elapsed());
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(1_505)).await;
        assert!(cell.set_share(FleetShare { rank: 0, of: 2 }));
        while callers.join_next().await.is_some() {}
        let mut sent = sent.lock().unwrap().clone();
        sent.sort();
        let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        // 400/min paces one every 150 ms; its half, one every 300 ms.
        assert_eq!(gaps.iter().min(), Some(&Duration::from_millis(150)));
        let late = sent
            .iter()
            .position(|at| *at >= Duration::from_millis(2_600))
            .unwrap();
        assert_eq!(gaps[late..].iter().min(), Some(&Duration::from_millis(300)));
    }
}
