//! The pure breaker's trip rules, open-duration growth and manual states.

use seawall::breaker::{
    BreakerSettings, BreakerState, CircuitBreaker, FailureKind, Outcome, RateRule,
    TransitionReason, WindowKind,
};
use std::time::{Duration, Instant};

const FAIL: Outcome = Outcome::Failure(FailureKind::Server);
const MS: Duration = Duration::from_millis(1);

fn kite() -> BreakerSettings {
    BreakerSettings::seed_default(5, 3, Duration::from_secs(300))
}

fn call(b: &mut CircuitBreaker, outcome: Outcome, elapsed: Duration, now: Instant) {
    let permit = b.try_acquire(now).expect("admitted");
    b.record(permit, outcome, elapsed, now);
}

#[test]
fn test_record_when_threshold_consecutive_failures_then_opens_and_rejects() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..4 {
        call(&mut b, FAIL, MS, now);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, FAIL, MS, now);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.open_until(), Some(now + Duration::from_secs(300)));
    let rejected = b.try_acquire(now).unwrap_err();
    assert_eq!(rejected.state, BreakerState::Open);
    assert_eq!(b.metrics().rejected, 1);
}

#[test]
fn test_record_when_success_between_failures_then_consecutive_count_resets() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..4 {
        call(&mut b, FAIL, MS, now);
    }
    call(&mut b, Outcome::Success, MS, now);
    for _ in 0..4 {
        call(&mut b, FAIL, MS, now);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn test_record_when_only_ignored_outcomes_then_never_trips() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..1000 {
        call(&mut b, Outcome::Ignored, MS, now);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.metrics().ignored, 1000);
    assert_eq!(b.metrics().success_rate, None, "no division by zero");
}

#[test]
fn test_failure_rate_when_below_minimum_calls_then_no_trip_and_at_minimum_then_trips() {
    let now = Instant::now();
    let mut settings = BreakerSettings::seed_default(100, 1, Duration::from_secs(60));
    settings.rate_rule = Some(RateRule {
        window: WindowKind::Count(20),
        minimum_calls: 10,
        failure_rate_threshold: Some(0.5),
        slow_call_rate_threshold: None,
        slow_call_duration: Duration::from_secs(1),
    });
    let mut b = CircuitBreaker::new(settings, now);
    for i in 0..9 {
        let outcome = if i % 2 == 0 { FAIL } else { Outcome::Success };
        call(&mut b, outcome, MS, now);
    }
    assert_eq!(b.state(), BreakerState::Closed, "9 calls < minimum 10");
    assert_eq!(b.metrics().window_failure_rate, None);
    let permit = b.try_acquire(now).unwrap();
    let t = b
        .record(permit, Outcome::Success, MS, now)
        .expect("trips at 5/10");
    assert!(
        matches!(t.reason, TransitionReason::FailureRate { calls: 10, .. }),
        "{:?}",
        t.reason
    );
}

#[test]
fn test_slow_call_rate_when_slow_successes_dominate_then_trips() {
    let now = Instant::now();
    let mut settings = BreakerSettings::seed_default(100, 1, Duration::from_secs(60));
    settings.rate_rule = Some(RateRule {
        window: WindowKind::Time(Duration::from_secs(60)),
        minimum_calls: 4,
        failure_rate_threshold: None,
        slow_call_rate_threshold: Some(0.75),
        slow_call_duration: Duration::from_millis(500),
    });
    let mut b = CircuitBreaker::new(settings, now);
    call(&mut b, Outcome::Success, MS, now);
    for _ in 0..2 {
        call(&mut b, Outcome::Success, Duration::from_secs(1), now);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    call(&mut b, Outcome::Success, Duration::from_secs(1), now);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn test_time_window_when_old_failures_slide_out_then_rate_forgets_them() {
    let t0 = Instant::now();
    let mut settings = BreakerSettings::seed_default(100, 1, Duration::from_secs(60));
    settings.rate_rule = Some(RateRule {
        window: WindowKind::Time(Duration::from_secs(10)),
        minimum_calls: 4,
        failure_rate_threshold: Some(0.5),
        slow_call_rate_threshold: None,
        slow_call_duration: Duration::from_secs(1),
    });
    let mut b = CircuitBreaker::new(settings, t0);
    call(&mut b, FAIL, MS, t0);
    call(&mut b, FAIL, MS, t0);
    call(&mut b, FAIL, MS, t0);
    let later = t0 + Duration::from_secs(30);
    for _ in 0..4 {
        call(&mut b, Outcome::Success, MS, later);
    }
    call(&mut b, FAIL, MS, later);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "1 failure in 5 once the old 3 expired"
    );
}

#[test]
fn test_half_open_when_probe_fails_then_reopens_longer_and_only_a_stable_close_resets_duration() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::with_jitter(kite(), t0, Box::new(0.5));
    for _ in 0..5 {
        call(&mut b, FAIL, MS, t0);
    }
    let t1 = t0 + Duration::from_secs(300);
    assert!(b.poll(t1 - MS).is_none(), "not before 5 minutes");
    assert_eq!(b.poll(t1).unwrap().to, BreakerState::HalfOpen);
    call(&mut b, FAIL, MS, t1);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.open_until(),
        Some(t1 + Duration::from_secs(600)),
        "doubled"
    );
    let t2 = t1 + Duration::from_secs(600);
    b.poll(t2);
    for _ in 0..3 {
        call(&mut b, Outcome::Success, MS, t2);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // A trip inside the stability window (the last open duration, 10 min)
    // is a flap: it is counted and the open grows again.
    let t3 = t2 + Duration::from_secs(599);
    for _ in 0..5 {
        call(&mut b, FAIL, t3 - t2, t3);
    }
    assert_eq!(b.metrics().flaps, 1);
    assert_eq!(
        b.open_until(),
        Some(t3 + Duration::from_secs(1200)),
        "a flap doubles the open again"
    );
    let t4 = t3 + Duration::from_secs(1200);
    b.poll(t4);
    for _ in 0..3 {
        call(&mut b, Outcome::Success, MS, t4);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Closed for the whole window (now 20 min): the next trip is no flap,
    // and the open duration is back to base.
    let t5 = t4 + Duration::from_secs(1200);
    for _ in 0..5 {
        call(&mut b, FAIL, MS, t5);
    }
    assert_eq!(b.metrics().flaps, 1, "a stable close is no flap");
    assert_eq!(
        b.open_until(),
        Some(t5 + Duration::from_secs(300)),
        "back to base"
    );
}

#[test]
fn test_half_open_when_probe_outlives_deadline_then_reopens() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(kite(), t0);
    for _ in 0..5 {
        call(&mut b, FAIL, MS, t0);
    }
    let t1 = t0 + Duration::from_secs(300);
    b.poll(t1);
    let _probe = b.try_acquire(t1).unwrap();
    assert!(b.try_acquire(t1).is_err(), "one probe at a time");
    let deadline = b.next_deadline().unwrap();
    assert_eq!(deadline, t1 + Duration::from_secs(30));
    let t = b.poll(deadline).unwrap();
    assert_eq!(t.reason, TransitionReason::ProbeTimedOut);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn test_late_outcome_when_admitted_in_older_epoch_then_counts_but_cannot_close() {
    let t0 = Instant::now();
    let mut settings = kite();
    settings.success_threshold = 1;
    let mut b = CircuitBreaker::new(settings, t0);
    let slow = b.try_acquire(t0).unwrap();
    for _ in 0..5 {
        call(&mut b, FAIL, MS, t0);
    }
    let t1 = t0 + Duration::from_secs(300);
    b.poll(t1);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.record(slow, Outcome::Success, MS, t1).is_none());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.metrics().successes, 1);
}

#[test]
fn test_manual_states_when_set_then_carry_reason_and_behave() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    b.force_open("maintenance window", now);
    assert_eq!(b.state(), BreakerState::ForcedOpen);
    assert_eq!(b.manual_reason(), Some("maintenance window"));
    assert!(b.try_acquire(now).is_err());
    b.disable("broker sandbox", now);
    for _ in 0..50 {
        call(&mut b, FAIL, MS, now);
    }
    assert_eq!(b.state(), BreakerState::Disabled, "disabled never trips");
    b.metrics_only("shadow mode", now);
    for _ in 0..50 {
        call(&mut b, FAIL, MS, now);
    }
    assert_eq!(b.state(), BreakerState::MetricsOnly);
    assert_eq!(b.metrics().consecutive_failures, 50, "but counts");
    let t = b.reset(now);
    assert_eq!(t.to, BreakerState::Closed);
    assert_eq!(b.manual_reason(), None);
    assert_eq!(b.metrics().consecutive_failures, 0);
}

#[test]
fn test_reconfigure_when_threshold_lowered_then_next_failure_opens_and_history_kept() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..4 {
        call(&mut b, FAIL, MS, now);
    }
    let before = b.metrics();
    b.reconfigure(
        BreakerSettings::seed_default(3, 3, Duration::from_secs(300)),
        now,
    );
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "a reload alone never trips"
    );
    assert_eq!(b.metrics(), before, "counters survive the reload");
    call(&mut b, FAIL, MS, now);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.settings().failure_threshold, 3);
}

#[test]
fn test_reconfigure_when_open_timeout_changes_then_current_open_period_keeps_its_deadline() {
    let now = Instant::now();
    let mut b = CircuitBreaker::with_jitter(
        kite(),
        now,
        Box::new(seawall::breaker::SeededJitter::new(1)),
    );
    for _ in 0..5 {
        call(&mut b, FAIL, MS, now);
    }
    let until = b.open_until().expect("open");
    b.reconfigure(
        BreakerSettings::seed_default(5, 1, Duration::from_secs(10)),
        now,
    );
    assert_eq!(
        b.open_until(),
        Some(until),
        "the open period already running is kept"
    );
    let later = until + MS;
    assert!(b.poll(later).is_some(), "HalfOpen at the old deadline");
    call(&mut b, FAIL, MS, later);
    let reopened = b.open_until().expect("re-opened");
    assert!(
        reopened <= later + Duration::from_secs(20) + Duration::from_secs(2),
        "the next open period grows from the new 10 s base, not 300 s"
    );
}

#[test]
fn test_reconfigure_when_probe_slots_shrink_then_in_flight_probe_keeps_its_slot_and_no_more_admitted(
) {
    let now = Instant::now();
    let mut settings = kite();
    settings.half_open_max_calls = 3;
    let mut b = CircuitBreaker::new(settings, now);
    for _ in 0..5 {
        call(&mut b, FAIL, MS, now);
    }
    let later = b.open_until().unwrap() + MS;
    b.poll(later);
    let p1 = b.try_acquire(later).expect("probe 1");
    let p2 = b.try_acquire(later).expect("probe 2");
    let mut shrunk = kite();
    shrunk.half_open_max_calls = 1;
    b.reconfigure(shrunk, later);
    assert!(
        b.try_acquire(later).is_err(),
        "two in flight, one allowed: no third"
    );
    b.record(p2, Outcome::Success, MS, later);
    assert!(
        b.try_acquire(later).is_err(),
        "still one in flight, the new limit"
    );
    b.record(p1, Outcome::Success, MS, later);
    assert_eq!(b.probes_in_flight(), 0);
}

#[test]
fn test_hint_open_when_closed_then_opens_with_origin_and_reason_else_left_alone() {
    let now = Instant::now();
    let seen = TransitionReason::ConsecutiveFailures {
        count: 5,
        threshold: 5,
    };
    let mut b = CircuitBreaker::new(kite(), now);
    let t = b
        .hint_open("n1", seen.clone(), now)
        .expect("a Closed breaker opens");
    assert_eq!(t.to, BreakerState::Open);
    assert_eq!(
        t.reason,
        TransitionReason::FleetHint {
            origin: "n1".into(),
            reason: Box::new(seen.clone()),
        }
    );
    assert_eq!(b.open_until(), Some(now + Duration::from_secs(300)));
    assert!(!t.crash);
    // Its own open duration passes, then it probes for itself.
    let later = now + Duration::from_secs(300);
    assert_eq!(b.poll(later).map(|t| t.to), Some(BreakerState::HalfOpen));
    // HalfOpen (testing for itself), forced and disabled breakers ignore hints.
    assert!(b.hint_open("n1", seen.clone(), later).is_none());
    b.force_open("operator", later);
    assert!(b.hint_open("n1", seen.clone(), later).is_none());
    assert!(
        b.hint_probe("n1", later).is_none(),
        "a hint never lifts an operator's hold"
    );
    b.disable("operator", later);
    assert!(b.hint_open("n1", seen, later).is_none());
}

#[test]
fn test_hint_open_when_dependency_named_a_pause_then_every_node_keeps_it() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    let pause = Duration::from_secs(42);
    let t = b
        .hint_open("n1", TransitionReason::OpenFor { duration: pause }, now)
        .unwrap();
    assert_eq!(t.open_until, Some(now + pause));
    assert_eq!(b.open_until(), Some(now + pause));
}

#[test]
fn test_hint_probe_when_open_then_half_open_and_own_probes_decide() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..5 {
        call(&mut b, FAIL, MS, now);
    }
    let t = b.hint_probe("n2", now).expect("an Open breaker probes");
    assert_eq!(t.to, BreakerState::HalfOpen);
    // Its own failed probe re-opens it, whatever the other node saw.
    call(&mut b, FAIL, MS, now);
    assert_eq!(b.state(), BreakerState::Open);
    // A Closed breaker has nothing to probe.
    let mut closed = CircuitBreaker::new(kite(), now);
    assert!(closed.hint_probe("n2", now).is_none());
}

#[test]
fn test_trip_when_last_failure_was_a_crash_then_transition_says_crash() {
    let now = Instant::now();
    let mut b = CircuitBreaker::new(kite(), now);
    for _ in 0..4 {
        call(&mut b, FAIL, MS, now);
    }
    let t = b.record_crash(now).expect("the fifth failure trips");
    assert!(
        t.crash,
        "a crash is the service's own fault, not the dependency's"
    );
    let mut dependency = CircuitBreaker::new(kite(), now);
    for _ in 0..4 {
        call(
            &mut dependency,
            Outcome::Failure(FailureKind::Crash),
            MS,
            now,
        );
    }
    let permit = dependency.try_acquire(now).unwrap();
    let t = dependency.record(permit, FAIL, MS, now).unwrap();
    assert!(!t.crash, "the tripping failure was the dependency's");
}
