//! The breaker itself: admission, outcome accounting and transitions.

use super::{
    BreakerMetrics, BreakerSettings, BreakerState, JitterSource, LatencyHistogram,
    OpenDurationPolicy, Outcome, RateWindow, SeededJitter, Transition, TransitionReason,
};
use std::fmt;
use std::time::{Duration, Instant};

/// `at + d`, saturating about 30 years ahead: no duration from config or
/// code can panic the breaker.
pub(crate) fn saturating_add(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    at.checked_add(d.min(FAR))
        .or_else(|| at.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(at)
}

/// Proof that a call was admitted; hand it back to [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an admitted call must record its outcome, or the probe slot leaks"]
pub struct Permit {
    epoch: u64,
    probe_slot: Option<u16>,
    counted: bool,
}

impl Permit {
    /// A permit issued from a published `(state, epoch)` without taking the
    /// breaker's lock. Only valid for states that admit every call (Closed,
    /// MetricsOnly, Disabled); the admission is counted when it is recorded.
    pub(crate) fn unaccounted(epoch: u64) -> Self {
        Self {
            epoch,
            probe_slot: None,
            counted: false,
        }
    }

    /// The epoch the call was admitted in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this call is a HalfOpen probe.
    pub fn is_probe(&self) -> bool {
        self.probe_slot.is_some()
    }

    /// Whether the breaker counted this admission when it was issued.
    pub(crate) fn is_counted(&self) -> bool {
        self.counted
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that rejected it.
    pub state: BreakerState,
    /// When an Open breaker will admit probes.
    pub open_until: Option<Instant>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            BreakerState::HalfOpen => f.write_str("half-open probe slots are all taken"),
            state => write!(f, "breaker is {state}"),
        }
    }
}

/// One breaker's rules, state and metrics.
///
/// Time is always an argument; call [`CircuitBreaker::poll`] at
/// [`CircuitBreaker::next_deadline`] to drive Open → HalfOpen and probe
/// deadlines (the breaker actor does this with a timer).
#[repr(C)]
pub struct CircuitBreaker {
    // What every recorded outcome touches comes first, in as few cache
    // lines as possible (the order is fixed by `repr(C)`): with thousands
    // of services each outcome finds its breaker cold.
    state: BreakerState,
    /// Whether the newest failure was the service actor's own crash (not
    /// the dependency's fault): a trip it causes is not hinted to a fleet.
    last_failure_crash: bool,
    consecutive_failures: u32,
    consecutive_successes: u32,
    epoch: u64,
    admitted: u64,
    in_flight: u64,
    successes: u64,
    last_success: Option<Instant>,
    latency: LatencyHistogram,
    /// Total response time per outcome (success, failure, ignored,
    /// timeout) in saturating nanoseconds: half a `Duration`'s size, and
    /// 584 years of summed response time before it saturates.
    elapsed_by_outcome: [u64; 4],
    window: Option<RateWindow>,
    settings: BreakerSettings,
    // Failures, transitions and probes: off the success path.
    failures: u64,
    ignored: u64,
    timeouts: u64,
    rejected: u64,
    crashes: u64,
    last_failure: Option<Instant>,
    probes_in_flight: u32,
    probe_successes: u32,
    probe_started: Box<[Option<Instant>]>,
    jitter: Box<dyn JitterSource>,
    manual_reason: Option<String>,
    escalated: bool,
    state_changed_at: Instant,
    open_until: Option<Instant>,
    reopens: u32,
    /// When the breaker last closed after probes, for the stability window.
    recovered_at: Option<Instant>,
    /// How long the last open period was set to last.
    last_open_duration: Duration,
    flaps: u64,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state)
            .field("epoch", &self.epoch)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("probes_in_flight", &self.probes_in_flight)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A Closed breaker with entropy-seeded jitter.
    pub fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self::with_jitter(
            settings,
            now,
            Box::new(SeededJitter::new(fastrand::u64(..))),
        )
    }

    /// A Closed breaker whose jitter comes from `jitter` (seed it to reproduce a run).
    pub fn with_jitter(
        settings: BreakerSettings,
        now: Instant,
        jitter: Box<dyn JitterSource>,
    ) -> Self {
        let window = settings
            .rate_rule
            .as_ref()
            .map(|rule| RateWindow::new(rule.window, now));
        let probes = settings.half_open_max_calls.clamp(1, u32::from(u16::MAX)) as usize;
        Self {
            jitter,
            state: BreakerState::Closed,
            manual_reason: None,
            escalated: false,
            epoch: 0,
            state_changed_at: now,
            open_until: None,
            reopens: 0,
            recovered_at: None,
            last_open_duration: Duration::ZERO,
            flaps: 0,
            probe_started: vec![None; probes].into_boxed_slice(),
            probes_in_flight: 0,
            probe_successes: 0,
            consecutive_failures: 0,
            consecutive_successes: 0,
            window,
            latency: LatencyHistogram::default(),
            admitted: 0,
            in_flight: 0,
            successes: 0,
            failures: 0,
            ignored: 0,
            timeouts: 0,
            rejected: 0,
            crashes: 0,
            last_failure_crash: false,
            elapsed_by_outcome: [0; 4],
            last_success: None,
            last_failure: None,
            settings,
        }
    }

    /// Runs new rules from `now` on, keeping everything the breaker has
    /// learned: its state, its open deadline, its counters and latency, its
    /// consecutive-failure count and the most recent outcomes of its window
    /// (resized if its size changed; see [`RateWindow::resized`]).
    ///
    /// Nothing trips or closes here: the new thresholds are judged on the
    /// next recorded outcome. A changed `open_timeout` applies to the next
    /// open period; the current one keeps its deadline. Probes in flight
    /// keep their slots even when `half_open_max_calls` shrinks below them.
    pub fn reconfigure(&mut self, settings: BreakerSettings, now: Instant) {
        self.window = match (&self.window, &settings.rate_rule) {
            (_, None) => None,
            (Some(window), Some(rule)) => Some(window.resized(rule.window, now)),
            (None, Some(rule)) => Some(RateWindow::new(rule.window, now)),
        };
        let wanted = settings.half_open_max_calls.clamp(1, u32::from(u16::MAX)) as usize;
        let occupied = self
            .probe_started
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        let mut slots = self.probe_started.to_vec();
        slots.resize(wanted.max(occupied), None);
        self.probe_started = slots.into_boxed_slice();
        self.settings = settings;
    }

    /// The rules this breaker runs.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// The transition count; permits from older epochs cannot move the state.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When an Open breaker will admit probes.
    pub fn open_until(&self) -> Option<Instant> {
        self.open_until
    }

    /// Probes currently out while HalfOpen.
    pub fn probes_in_flight(&self) -> u32 {
        self.probes_in_flight
    }

    /// Asks to let one call through at `now`.
    ///
    /// Open never admits, even past its open duration: [`Self::poll`] moves it
    /// to HalfOpen, so the published state and admission never disagree.
    #[inline]
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let _ = now;
        match self.state {
            BreakerState::Closed | BreakerState::MetricsOnly | BreakerState::Disabled => {
                self.admitted += 1;
                self.in_flight += 1;
                Ok(Permit {
                    epoch: self.epoch,
                    probe_slot: None,
                    counted: true,
                })
            }
            BreakerState::HalfOpen => {
                let room = self.probes_in_flight < self.settings.half_open_max_calls.max(1);
                let free = room
                    .then(|| self.probe_started.iter().position(Option::is_none))
                    .flatten();
                match free {
                    Some(slot) => {
                        self.probe_started[slot] = Some(now);
                        self.probes_in_flight += 1;
                        self.admitted += 1;
                        self.in_flight += 1;
                        Ok(Permit {
                            epoch: self.epoch,
                            probe_slot: Some(slot as u16),
                            counted: true,
                        })
                    }
                    None => Err(self.reject()),
                }
            }
            BreakerState::Open | BreakerState::ForcedOpen => Err(self.reject()),
        }
    }

    fn reject(&mut self) -> Rejected {
        self.rejected += 1;
        Rejected {
            state: self.state,
            open_until: self.open_until,
        }
    }

    /// Gives back a permit whose call never started (shed by a bulkhead):
    /// it leaves no outcome and frees its probe slot.
    pub fn cancel(&mut self, permit: Permit) {
        if !permit.counted {
            return;
        }
        self.admitted = self.admitted.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        if let (Some(slot), true) = (permit.probe_slot, permit.epoch == self.epoch) {
            self.probe_started[slot as usize] = None;
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    /// Counts a service actor that failed outside any call (its start-up
    /// failed). It is a failure for the trip rules — consecutive count in
    /// Closed, a failed probe in HalfOpen — but not a call, so it is kept
    /// out of the call counters and their invariant.
    pub fn record_crash(&mut self, now: Instant) -> Option<Transition> {
        self.crashes += 1;
        self.last_failure = Some(now);
        self.last_failure_crash = true;
        match self.state {
            BreakerState::Closed => {
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.check_trip(now)
            }
            BreakerState::MetricsOnly => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                None
            }
            BreakerState::HalfOpen => {
                self.reopens = self.reopens.saturating_add(1);
                let mut t = self.open(TransitionReason::ProbeFailed, now);
                t.crash = true;
                Some(t)
            }
            _ => None,
        }
    }

    /// Records the outcome of an admitted call that took `elapsed`, at `now`.
    #[inline]
    pub fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        elapsed: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let current = self.release(&permit);
        self.count(outcome, elapsed, now);
        if !current || self.state == BreakerState::Disabled {
            return None;
        }
        match (self.state, outcome) {
            (_, Outcome::Ignored) => None,
            (BreakerState::Closed | BreakerState::MetricsOnly, Outcome::Success) => {
                self.note_success();
                self.push_window(false, elapsed, now);
                self.check_trip(now)
            }
            (BreakerState::Closed | BreakerState::MetricsOnly, Outcome::Failure(kind)) => {
                self.note_failure(kind);
                self.push_window(true, elapsed, now);
                self.check_trip(now)
            }
            (BreakerState::HalfOpen, Outcome::Success) => {
                self.note_success();
                // A non-probe call admitted in this epoch cannot exist in
                // HalfOpen; only probes decide it.
                permit.probe_slot?;
                self.probe_succeeded(elapsed, now)
            }
            (BreakerState::HalfOpen, Outcome::Failure(kind)) => {
                self.note_failure(kind);
                // As for a success: only probes decide HalfOpen.
                permit.probe_slot?;
                self.reopens = self.reopens.saturating_add(1);
                Some(self.open(TransitionReason::ProbeFailed, now))
            }
            // No permit is issued in Open or ForcedOpen, and any transition
            // bumps the epoch, so a current permit cannot land here.
            (BreakerState::Open | BreakerState::ForcedOpen | BreakerState::Disabled, _) => None,
        }
    }

    /// Gives back what `permit` held (its place in flight, its probe slot);
    /// whether it was issued in the current epoch, the only one whose
    /// outcomes may move the breaker.
    #[inline]
    fn release(&mut self, permit: &Permit) -> bool {
        if permit.counted {
            self.in_flight = self.in_flight.saturating_sub(1);
        } else {
            self.admitted += 1;
        }
        let current = permit.epoch == self.epoch;
        if let Some(slot) = permit.probe_slot {
            if current {
                self.probe_started[slot as usize] = None;
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
            }
        }
        current
    }

    #[inline]
    fn note_success(&mut self) {
        self.consecutive_failures = 0;
        self.consecutive_successes = self.consecutive_successes.saturating_add(1);
    }

    #[inline]
    fn note_failure(&mut self, kind: super::FailureKind) {
        self.last_failure_crash = kind == super::FailureKind::Crash;
        self.consecutive_successes = 0;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
    }

    /// A HalfOpen probe succeeded: a slow one re-opens (under a slow-call
    /// rule), and `success_threshold` of them close the breaker.
    fn probe_succeeded(&mut self, elapsed: Duration, now: Instant) -> Option<Transition> {
        if let Some(rule) = &self.settings.rate_rule {
            if rule.slow_call_rate_threshold.is_some() && elapsed >= rule.slow_call_duration {
                self.reopens = self.reopens.saturating_add(1);
                return Some(self.open(TransitionReason::ProbeSlow { elapsed }, now));
            }
        }
        self.probe_successes += 1;
        if self.probe_successes < self.settings.success_threshold {
            return None;
        }
        let successes = self.probe_successes;
        // The re-open backoff is kept until the breaker has stayed Closed
        // for the stability window (see `trip`).
        self.recovered_at = Some(now);
        Some(self.enter(
            BreakerState::Closed,
            TransitionReason::ProbesSucceeded { successes },
            now,
        ))
    }

    #[inline]
    fn count(&mut self, outcome: Outcome, elapsed: Duration, now: Instant) {
        self.latency.record(elapsed);
        let kind = match outcome {
            Outcome::Success => 0,
            Outcome::Failure(super::FailureKind::Timeout) => 3,
            Outcome::Failure(_) => 1,
            Outcome::Ignored => 2,
        };
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_by_outcome[kind] = self.elapsed_by_outcome[kind].saturating_add(nanos);
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.last_success = Some(now);
            }
            Outcome::Failure(super::FailureKind::Timeout) => {
                self.timeouts += 1;
                self.last_failure = Some(now);
            }
            Outcome::Failure(_) => {
                self.failures += 1;
                self.last_failure = Some(now);
            }
            Outcome::Ignored => self.ignored += 1,
        }
    }

    #[inline]
    fn push_window(&mut self, failed: bool, elapsed: Duration, now: Instant) {
        if let (Some(window), Some(rule)) = (&mut self.window, &self.settings.rate_rule) {
            window.record(failed, elapsed >= rule.slow_call_duration, now);
        }
    }

    #[inline]
    fn check_trip(&mut self, now: Instant) -> Option<Transition> {
        if self.state != BreakerState::Closed {
            return None;
        }
        let reason = self.trip_reason()?;
        Some(self.trip(reason, now))
    }

    /// Closed → Open. A trip within the stability window after the last
    /// recovery is a flap: it is counted, and the open lasts longer than the
    /// last one. Only a close that held for the window resets the backoff.
    fn trip(&mut self, reason: TransitionReason, now: Instant) -> Transition {
        let window = self.stability_window();
        let flap = self
            .recovered_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) < window);
        if flap {
            self.flaps += 1;
            self.reopens = self.reopens.saturating_add(1);
        } else {
            self.reopens = 0;
        }
        let mut transition = self.open(reason, now);
        transition.flap = flap;
        transition.crash = self.last_failure_crash;
        transition
    }

    /// How long a close must hold before the re-open backoff resets.
    pub fn stability_window(&self) -> Duration {
        self.settings
            .stability_window
            .unwrap_or(self.last_open_duration)
    }

    /// Trips that came within the stability window after a recovery.
    pub fn flaps(&self) -> u64 {
        self.flaps
    }

    #[inline]
    fn trip_reason(&self) -> Option<TransitionReason> {
        if self.consecutive_failures >= self.settings.failure_threshold {
            return Some(TransitionReason::ConsecutiveFailures {
                count: self.consecutive_failures,
                threshold: self.settings.failure_threshold,
            });
        }
        let (window, rule) = (self.window.as_ref()?, self.settings.rate_rule.as_ref()?);
        let calls = window.calls();
        if calls < rule.minimum_calls {
            return None;
        }
        if let (Some(threshold), Some(rate)) = (rule.failure_rate_threshold, window.failure_rate())
        {
            if rate >= threshold {
                return Some(TransitionReason::FailureRate {
                    rate,
                    threshold,
                    calls,
                });
            }
        }
        if let (Some(threshold), Some(rate)) = (rule.slow_call_rate_threshold, window.slow_rate()) {
            if rate >= threshold {
                return Some(TransitionReason::SlowCallRate {
                    rate,
                    threshold,
                    calls,
                });
            }
        }
        None
    }

    fn open(&mut self, reason: TransitionReason, now: Instant) -> Transition {
        // Read from the settings each time rather than kept beside them:
        // one copy of the rule, and 48 bytes less in every breaker.
        let policy = OpenDurationPolicy {
            base: self.settings.open_timeout,
            max: self.settings.max_open_timeout,
            multiplier: self.settings.open_backoff_multiplier,
            jitter: self.settings.open_jitter,
        };
        let duration = policy.duration(self.reopens, self.jitter.as_mut());
        self.last_open_duration = duration;
        self.open_until = Some(saturating_add(now, duration));
        self.enter(BreakerState::Open, reason, now)
    }

    fn enter(&mut self, to: BreakerState, reason: TransitionReason, now: Instant) -> Transition {
        let from = self.state;
        self.state = to;
        self.epoch += 1;
        self.state_changed_at = now;
        if to != BreakerState::Open {
            self.open_until = None;
        }
        if !to.is_manual() {
            self.manual_reason = None;
        }
        self.escalated = false;
        self.probe_started.fill(None);
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        if to == BreakerState::Closed {
            self.consecutive_failures = 0;
            if let Some(window) = &mut self.window {
                window.clear(now);
            }
        }
        Transition {
            from,
            to,
            reason,
            at: now,
            epoch: self.epoch,
            open_until: self.open_until,
            flap: false,
            crash: false,
        }
    }

    /// Drives timed transitions: Open → HalfOpen once the open duration has
    /// passed, and HalfOpen → Open when a probe outlives its deadline.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            BreakerState::Open => {
                let until = self.open_until?;
                (now >= until).then(|| {
                    let open_for = now.saturating_duration_since(self.state_changed_at);
                    self.enter(
                        BreakerState::HalfOpen,
                        TransitionReason::OpenElapsed { open_for },
                        now,
                    )
                })
            }
            BreakerState::HalfOpen => {
                let deadline = self.settings.half_open_probe_timeout;
                let expired = self
                    .probe_started
                    .iter()
                    .flatten()
                    .any(|started| now.saturating_duration_since(*started) >= deadline);
                expired.then(|| {
                    self.reopens = self.reopens.saturating_add(1);
                    self.open(TransitionReason::ProbeTimedOut, now)
                })
            }
            _ => {
                if let Some(window) = &mut self.window {
                    window.advance(now);
                }
                None
            }
        }
    }

    /// When [`Self::poll`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            BreakerState::Open => self.open_until,
            BreakerState::HalfOpen => self
                .probe_started
                .iter()
                .flatten()
                .min()
                .map(|started| saturating_add(*started, self.settings.half_open_probe_timeout)),
            _ => None,
        }
    }

    /// A recovery strategy reports the dependency back: Open moves to
    /// HalfOpen at once, and so does ForcedOpen set by [`Self::escalate`].
    /// An operator's ForcedOpen, and every other state, is left alone.
    pub fn recovery_succeeded(&mut self, now: Instant) -> Option<Transition> {
        let recoverable = match self.state {
            BreakerState::Open => true,
            BreakerState::ForcedOpen => self.escalated,
            _ => false,
        };
        recoverable.then(|| {
            self.enter(
                BreakerState::HalfOpen,
                TransitionReason::RecoverySucceeded,
                now,
            )
        })
    }

    /// The dependency named how long to stay away (a 429 with `Retry-After`,
    /// a ban): open for exactly `duration` from `now`, whatever the backoff
    /// says. An Open breaker is held at least that long; manual states and
    /// Disabled are left alone. The re-open backoff is not touched: this is
    /// the dependency's instruction, not a failure.
    pub fn open_for(&mut self, duration: Duration, now: Instant) -> Option<Transition> {
        let until = saturating_add(now, duration);
        match self.state {
            BreakerState::Open => {
                if self.open_until.is_none_or(|at| at < until) {
                    self.open_until = Some(until);
                }
                None
            }
            BreakerState::Closed | BreakerState::HalfOpen => {
                let mut t = self.enter(
                    BreakerState::Open,
                    TransitionReason::OpenFor { duration },
                    now,
                );
                self.open_until = Some(until);
                t.open_until = Some(until);
                Some(t)
            }
            _ => None,
        }
    }

    /// Supervision's escalation is over without evidence: the service
    /// actors run again, but nothing proved the dependency is back. An
    /// escalated ForcedOpen becomes a timed Open, so the breaker waits out
    /// its open duration and real probes decide. Every other state is left
    /// alone.
    pub fn deescalate(&mut self, now: Instant) -> Option<Transition> {
        if !(self.state == BreakerState::ForcedOpen && self.escalated) {
            return None;
        }
        Some(self.open(TransitionReason::Deescalated, now))
    }

    /// Forces the breaker open because supervision gave up (restart
    /// intensity exceeded). Unlike an operator's [`Self::force_open`], a
    /// successful recovery clears it as well as a reset.
    pub fn escalate(&mut self, reason: impl Into<String>, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::Disabled {
            return None;
        }
        let reason = reason.into();
        if self.state == BreakerState::ForcedOpen && self.escalated {
            return None;
        }
        let transition = self.enter(
            BreakerState::ForcedOpen,
            TransitionReason::Escalated(reason.clone()),
            now,
        );
        self.manual_reason = Some(reason);
        self.escalated = true;
        Some(transition)
    }

    /// Another node of a fleet saw the shared dependency fail (`reason` is
    /// what it saw): a Closed breaker opens as if it had tripped, for its
    /// own open duration (or the pause the dependency named, for
    /// `OpenFor`), and then probes for itself. Every other state is
    /// left alone: a breaker already testing the dependency (HalfOpen), an
    /// operator's choice and Disabled weigh more than a hint.
    pub fn hint_open(
        &mut self,
        origin: &str,
        reason: TransitionReason,
        now: Instant,
    ) -> Option<Transition> {
        if self.state != BreakerState::Closed {
            return None;
        }
        // The dependency named its pause (Retry-After): every node keeps it.
        let named = match &reason {
            TransitionReason::OpenFor { duration } => Some(saturating_add(now, *duration)),
            _ => None,
        };
        let hint = TransitionReason::FleetHint {
            origin: origin.to_string(),
            reason: Box::new(reason),
        };
        let mut t = self.open(hint, now);
        if let Some(until) = named {
            self.open_until = Some(until);
            t.open_until = Some(until);
        }
        Some(t)
    }

    /// Another node closed its breaker for the shared dependency after
    /// real probe successes: an Open breaker moves to HalfOpen and probes
    /// for itself (its own probes decide). Every other state is left alone.
    pub fn hint_probe(&mut self, origin: &str, now: Instant) -> Option<Transition> {
        (self.state == BreakerState::Open).then(|| {
            self.enter(
                BreakerState::HalfOpen,
                TransitionReason::FleetRecovered {
                    origin: origin.to_string(),
                },
                now,
            )
        })
    }

    /// Whether the breaker is forced open by escalation (not by an operator).
    pub fn is_escalated(&self) -> bool {
        self.escalated
    }

    /// Holds the breaker open until reset, whatever the traffic.
    pub fn force_open(&mut self, reason: impl Into<String>, now: Instant) -> Option<Transition> {
        self.set_manual(BreakerState::ForcedOpen, reason.into(), now)
    }

    /// Takes the breaker out of the way: every call is admitted, nothing trips.
    pub fn disable(&mut self, reason: impl Into<String>, now: Instant) -> Option<Transition> {
        self.set_manual(BreakerState::Disabled, reason.into(), now)
    }

    /// Counts every call but never trips.
    pub fn metrics_only(&mut self, reason: impl Into<String>, now: Instant) -> Option<Transition> {
        self.set_manual(BreakerState::MetricsOnly, reason.into(), now)
    }

    fn set_manual(&mut self, to: BreakerState, reason: String, now: Instant) -> Option<Transition> {
        if self.state == to && self.manual_reason.as_deref() == Some(reason.as_str()) {
            return None;
        }
        let transition = self.enter(to, TransitionReason::Manual(reason.clone()), now);
        self.manual_reason = Some(reason);
        Some(transition)
    }

    /// Returns to Closed with fresh counts, the base open duration and an
    /// empty window. Lifetime counters and latency are kept.
    pub fn reset(&mut self, now: Instant) -> Transition {
        self.reopens = 0;
        self.recovered_at = None;
        self.consecutive_successes = 0;
        self.enter(BreakerState::Closed, TransitionReason::Reset, now)
    }

    /// Response times so far.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// The reason for the current manual state.
    pub fn manual_reason(&self) -> Option<&str> {
        self.manual_reason.as_deref()
    }

    /// Copies out every counter.
    pub fn metrics(&self) -> BreakerMetrics {
        let decided = self.successes + self.failures + self.timeouts;
        let (p50_response, p99_response) = self.latency.p50_p99();
        let (window_failure_rate, window_slow_rate) = match (&self.window, &self.settings.rate_rule)
        {
            (Some(window), Some(rule)) if window.calls() >= rule.minimum_calls => {
                (window.failure_rate(), window.slow_rate())
            }
            _ => (None, None),
        };
        BreakerMetrics {
            state: self.state,
            manual_reason: self.manual_reason.clone(),
            admitted: self.admitted,
            in_flight: self.in_flight,
            successes: self.successes,
            failures: self.failures,
            ignored: self.ignored,
            timeouts: self.timeouts,
            rejected: self.rejected,
            crashes: self.crashes,
            elapsed_by_outcome: self.elapsed_by_outcome.map(Duration::from_nanos),
            consecutive_failures: self.consecutive_failures,
            consecutive_successes: self.consecutive_successes,
            success_rate: (decided > 0).then(|| self.successes as f64 / decided as f64),
            window_failure_rate,
            window_slow_rate,
            window_calls: self.window.as_ref().map_or(0, RateWindow::calls),
            window_failures: self.window.as_ref().map_or(0, RateWindow::failures),
            mean_response: self.latency.mean(),
            p50_response,
            p99_response,
            state_changed_at: self.state_changed_at,
            open_until: self.open_until,
            transitions: self.epoch,
            reopens: self.reopens,
            flaps: self.flaps,
            last_success: self.last_success,
            last_failure: self.last_failure,
        }
    }
}
