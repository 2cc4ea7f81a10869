//! Model-based property test of the pure breaker state machine.
//!
//! Random sequences of acquisitions, outcomes, clock advances and manual
//! commands drive both the real [`CircuitBreaker`] and a deliberately naive
//! reference model; after every step the two must agree and the invariants
//! must hold. Jitter is pinned to the midpoint so the model can compute open
//! durations exactly. Set `PROPTEST_CASES` for longer runs (default 1,000).

use proptest::prelude::*;
use seawall::breaker::{
    BreakerSettings, BreakerState, CircuitBreaker, FailureKind, Outcome, Permit,
};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Complete { pick: usize, outcome: Outcome },
    Advance(Duration),
    ForceOpen,
    Disable,
    MetricsOnly,
    Reset,
    Recovered,
    Escalate,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Success),
        3 => Just(Outcome::Failure(FailureKind::Server)),
        1 => Just(Outcome::Failure(FailureKind::Timeout)),
        1 => Just(Outcome::Ignored),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Acquire),
        8 => (any::<usize>(), outcome()).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        4 => (0u64..40_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        1 => (1u64..200).prop_map(|s| Op::Advance(Duration::from_secs(s))),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::MetricsOnly),
        1 => Just(Op::Reset),
        1 => Just(Op::Recovered),
        1 => Just(Op::Escalate),
    ]
}

/// The reference: what the rules say, written as plainly as possible.
#[derive(Debug)]
struct Model {
    failure_threshold: u32,
    success_threshold: u32,
    max_probes: u32,
    base: Duration,
    max: Duration,
    probe_timeout: Duration,
    state: BreakerState,
    epoch: u64,
    consecutive_failures: u32,
    probe_successes: u32,
    probes: Vec<Instant>,
    open_until: Option<Instant>,
    reopens: u32,
    /// When the model last closed after probes, and how long its last open was.
    recovered_at: Option<Instant>,
    last_open: Duration,
    flaps: u64,
    admitted: u64,
    decided: u64,
    escalated: bool,
}

impl Model {
    fn enter(&mut self, to: BreakerState) {
        self.escalated = false;
        self.state = to;
        self.epoch += 1;
        self.probes.clear();
        self.probe_successes = 0;
        if to != BreakerState::Open {
            self.open_until = None;
        }
        if to == BreakerState::Closed {
            self.consecutive_failures = 0;
        }
    }

    fn open(&mut self, now: Instant) {
        let grown = self.base.as_secs_f64() * 2f64.powi(self.reopens as i32);
        let duration = if self.reopens == 0 {
            self.base
        } else {
            Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
        };
        self.enter(BreakerState::Open);
        self.last_open = duration;
        self.open_until = Some(now + duration);
    }

    /// Closed → Open: a trip within the stability window (the last open
    /// duration) after a recovery is a flap and keeps growing the backoff.
    fn trip(&mut self, now: Instant) {
        let flap = self
            .recovered_at
            .take()
            .is_some_and(|at| now - at < self.last_open);
        if flap {
            self.flaps += 1;
            self.reopens += 1;
        } else {
            self.reopens = 0;
        }
        self.open(now);
    }

    fn poll(&mut self, now: Instant) {
        match self.state {
            BreakerState::Open if now >= self.open_until.unwrap() => {
                self.enter(BreakerState::HalfOpen)
            }
            BreakerState::HalfOpen
                if self.probes.iter().any(|s| now - *s >= self.probe_timeout) =>
            {
                self.reopens += 1;
                self.open(now);
            }
            _ => {}
        }
    }
}

struct Outstanding {
    permit: Permit,
    started: Instant,
    probe_started: Option<Instant>,
}

fn run(
    failure_threshold: u32,
    success_threshold: u32,
    max_probes: u32,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut settings = BreakerSettings::seed_default(
        failure_threshold,
        success_threshold,
        Duration::from_secs(10),
    );
    settings.half_open_max_calls = max_probes;
    settings.max_open_timeout = Duration::from_secs(80);
    settings.half_open_probe_timeout = Duration::from_secs(30);
    let mut breaker = CircuitBreaker::with_jitter(settings, now, Box::new(0.5));
    let mut model = Model {
        failure_threshold,
        success_threshold,
        max_probes,
        base: Duration::from_secs(10),
        max: Duration::from_secs(80),
        probe_timeout: Duration::from_secs(30),
        state: BreakerState::Closed,
        epoch: 0,
        consecutive_failures: 0,
        probe_successes: 0,
        probes: Vec::new(),
        open_until: None,
        reopens: 0,
        recovered_at: None,
        last_open: Duration::ZERO,
        flaps: 0,
        admitted: 0,
        decided: 0,
        escalated: false,
    };
    let mut outstanding: Vec<Outstanding> = Vec::new();

    for op in ops {
        match op {
            Op::Acquire => {
                let result = breaker.try_acquire(now);
                let expect_admit = match model.state {
                    BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly => {
                        true
                    }
                    BreakerState::HalfOpen => (model.probes.len() as u32) < model.max_probes,
                    BreakerState::Open | BreakerState::ForcedOpen => false,
                };
                prop_assert_eq!(
                    result.is_ok(),
                    expect_admit,
                    "admission in {:?}",
                    model.state
                );
                if let Ok(permit) = result {
                    prop_assert!(
                        !(model.state == BreakerState::Open && now < model.open_until.unwrap()),
                        "admitted while Open before the open duration passed"
                    );
                    model.admitted += 1;
                    let probe_started = (model.state == BreakerState::HalfOpen).then_some(now);
                    if let Some(at) = probe_started {
                        model.probes.push(at);
                    }
                    prop_assert_eq!(permit.is_probe(), probe_started.is_some());
                    outstanding.push(Outstanding {
                        permit,
                        started: now,
                        probe_started,
                    });
                }
            }
            Op::Complete { pick, outcome } => {
                if outstanding.is_empty() {
                    continue;
                }
                let call = outstanding.swap_remove(pick % outstanding.len());
                let before = breaker.state();
                let transition = breaker.record(call.permit, outcome, now - call.started, now);
                model.decided += 1;
                if call.permit.epoch() == model.epoch {
                    if let Some(at) = call.probe_started {
                        let i = model.probes.iter().position(|p| *p == at).unwrap();
                        model.probes.swap_remove(i);
                    }
                    match (model.state, outcome) {
                        (_, Outcome::Ignored) | (BreakerState::Disabled, _) => {}
                        (BreakerState::Closed | BreakerState::MetricsOnly, Outcome::Success) => {
                            model.consecutive_failures = 0;
                        }
                        (BreakerState::Closed | BreakerState::MetricsOnly, Outcome::Failure(_)) => {
                            model.consecutive_failures += 1;
                            if model.state == BreakerState::Closed
                                && model.consecutive_failures >= model.failure_threshold
                            {
                                model.trip(now);
                            }
                        }
                        (BreakerState::HalfOpen, Outcome::Success) => {
                            model.probe_successes += 1;
                            if model.probe_successes >= model.success_threshold {
                                prop_assert_eq!(model.probe_successes, model.success_threshold);
                                model.recovered_at = Some(now);
                                model.enter(BreakerState::Closed);
                            }
                        }
                        (BreakerState::HalfOpen, Outcome::Failure(_)) => {
                            model.reopens += 1;
                            model.open(now);
                        }
                        _ => prop_assert!(false, "current permit in {:?}", model.state),
                    }
                }
                if let Some(t) = &transition {
                    if t.to == BreakerState::Closed {
                        prop_assert_eq!(before, BreakerState::HalfOpen);
                        prop_assert!(call.permit.is_probe(), "closed by a non-probe");
                    }
                }
            }
            Op::Advance(d) => {
                now += d;
                breaker.poll(now);
                model.poll(now);
            }
            Op::ForceOpen => {
                breaker.force_open("operator", now);
                // The same command with the same reason is a no-op.
                // An operator's force-open takes over an escalated one.
                if model.state != BreakerState::ForcedOpen || model.escalated {
                    model.enter(BreakerState::ForcedOpen);
                }
            }
            Op::Disable => {
                breaker.disable("operator", now);
                // The same command with the same reason is a no-op.
                if model.state != BreakerState::Disabled {
                    model.enter(BreakerState::Disabled);
                }
            }
            Op::MetricsOnly => {
                breaker.metrics_only("operator", now);
                // The same command with the same reason is a no-op.
                if model.state != BreakerState::MetricsOnly {
                    model.enter(BreakerState::MetricsOnly);
                }
            }
            Op::Reset => {
                breaker.reset(now);
                model.reopens = 0;
                model.recovered_at = None;
                model.enter(BreakerState::Closed);
            }
            Op::Recovered => {
                let recoverable = model.state == BreakerState::Open
                    || (model.state == BreakerState::ForcedOpen && model.escalated);
                let moved = breaker.recovery_succeeded(now).is_some();
                prop_assert_eq!(moved, recoverable, "recovery from {:?}", model.state);
                if recoverable {
                    model.enter(BreakerState::HalfOpen);
                }
            }
            Op::Escalate => {
                let moved = breaker.escalate("restart intensity", now).is_some();
                let expect = model.state != BreakerState::Disabled
                    && !(model.state == BreakerState::ForcedOpen && model.escalated);
                prop_assert_eq!(moved, expect, "escalation from {:?}", model.state);
                if expect {
                    model.enter(BreakerState::ForcedOpen);
                    model.escalated = true;
                }
            }
        }

        let m = breaker.metrics();
        prop_assert_eq!(breaker.state(), model.state);
        prop_assert_eq!(breaker.is_escalated(), model.escalated);
        prop_assert_eq!(breaker.epoch(), model.epoch);
        prop_assert_eq!(breaker.open_until(), model.open_until);
        prop_assert_eq!(m.flaps, model.flaps);
        prop_assert!(breaker.probes_in_flight() <= max_probes);
        prop_assert_eq!(breaker.probes_in_flight() as usize, model.probes.len());
        prop_assert_eq!(
            m.admitted,
            m.successes + m.failures + m.ignored + m.timeouts + m.in_flight
        );
        prop_assert_eq!(m.admitted, model.admitted);
        prop_assert_eq!(m.in_flight as usize, outstanding.len());
        prop_assert_eq!(m.admitted - m.in_flight, model.decided);
        if model.state == BreakerState::Closed {
            prop_assert_eq!(m.consecutive_failures, model.consecutive_failures);
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn test_breaker_when_driven_randomly_then_matches_model_and_invariants(
        failure_threshold in 1u32..6,
        success_threshold in 1u32..5,
        max_probes in 1u32..4,
        ops in proptest::collection::vec(op(), 1..250),
    ) {
        run(failure_threshold, success_threshold, max_probes, ops)?;
    }
}
