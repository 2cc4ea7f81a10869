//! Recovery on tokio's paused clock: strategies on backoff, crash restarts
//! with OTP intensity and escalation, retries that respect idempotency, and
//! a seeded soak of 10,000 randomly failing calls.

mod support;

use seawall::breaker::TransitionReason;
use seawall::config::{Config, MaxAttempts};
use seawall::recovery::{RecoveryContext, RecoveryError, RecoveryStrategy};
use seawall::{BreakerState, CallError, Event, Seawall, ServiceHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{kite_config, Probe, Req, Scripted};
use tokio::sync::broadcast;
use tokio::time::Instant;

async fn start(config: Config) -> (Seawall, ServiceHandle<Scripted>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let p = Arc::clone(&probe);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Scripted {
            probe: Arc::clone(&p),
        })
        .start()
        .await
        .expect("tree starts");
    let handle = seawall.handle::<Scripted>("kite_api").unwrap();
    (seawall, handle, probe)
}

use support::wait_for;

fn is_transition_to(to: BreakerState) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Transition { transition, .. } if transition.to == to)
}

async fn trip(kite: &ServiceHandle<Scripted>) {
    while kite.state() == BreakerState::Closed {
        let _ = kite.call(Req::Fail).await;
    }
}

/// The recovery schedule that actually ran, as gaps between reconnects.
async fn recovery_gaps(seed: u64) -> (Vec<Duration>, Duration, seawall::backoff::Backoff) {
    let mut config = kite_config(|s| {
        s.concurrency = 1;
        s.recovery.initial_delay = Duration::from_secs(1);
        s.recovery.max_delay = Duration::from_secs(8);
        s.recovery.multiplier = 2.0;
        s.recovery.jitter = 0.2;
        s.recovery.max_attempts = MaxAttempts::Count(7);
    });
    config.runtime.seed = Some(seed);
    let backoff = config.services["kite_api"].recovery.backoff();
    let (seawall, kite, probe) = start(config).await;
    let mut events = seawall.subscribe();
    probe.down.store(true, Ordering::SeqCst);
    trip(&kite).await;
    let opened = Instant::now();
    let gave_up = wait_for(&mut events, |e| matches!(e, Event::RecoveryGaveUp { .. })).await;
    assert!(matches!(gave_up, Event::RecoveryGaveUp { attempts: 7, .. }));
    let stats = kite.supervision();
    assert_eq!((stats.recovery_attempts, stats.recovery_failures), (7, 7));
    let times = probe.reconnect_times.lock().unwrap().clone();
    assert_eq!(times.len(), 7, "one reconnect per attempt");
    let mut gaps = vec![times[0] - opened];
    gaps.extend(times.windows(2).map(|w| w[1] - w[0]));
    seawall.shutdown().await;
    (gaps, times[0] - opened, backoff)
}

#[tokio::test(start_paused = true)]
async fn test_recovery_when_attempts_fail_then_schedule_grows_caps_and_jitters_within_bounds() {
    let (gaps, _, backoff) = recovery_gaps(7).await;
    for (n, gap) in gaps.iter().enumerate() {
        let (low, high) = backoff.bounds(n as u32);
        assert!(
            *gap >= low && *gap <= high,
            "attempt {n}: {gap:?} outside {low:?}..={high:?}"
        );
        assert!(*gap <= Duration::from_secs(8), "capped at max_delay");
    }
    assert!(gaps[3] > gaps[0] * 4, "grows: {gaps:?}");
    assert_eq!(gaps, recovery_gaps(7).await.0, "same seed, same schedule");
    assert_ne!(gaps, recovery_gaps(8).await.0, "another seed, other jitter");
}

struct CountingStrategy {
    attempts: Arc<AtomicUsize>,
}

impl RecoveryStrategy<Scripted> for CountingStrategy {
    async fn recover(
        &self,
        ctx: &RecoveryContext<Scripted>,
    ) -> Result<seawall::Evidence, RecoveryError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        assert_eq!(ctx.service(), "kite_api");
        ctx.reconnect_all().await
    }
}

#[tokio::test(start_paused = true)]
async fn test_recovery_when_dependency_returns_then_half_open_at_once_then_closed() {
    let probe = Arc::new(Probe::default());
    let attempts = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&probe);
    let seawall = Seawall::builder(kite_config(|s| s.concurrency = 2))
        .service_with_recovery(
            "kite_api",
            move || Scripted {
                probe: Arc::clone(&p),
            },
            CountingStrategy {
                attempts: Arc::clone(&attempts),
            },
        )
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let mut events = seawall.subscribe();

    probe.down.store(true, Ordering::SeqCst);
    trip(&kite).await;
    let opened = Instant::now();
    // The first attempt fails; the dependency comes back before the second.
    wait_for(&mut events, |e| {
        matches!(e, Event::RecoveryAttempted { error: Some(_), .. })
    })
    .await;
    probe.down.store(false, Ordering::SeqCst);

    let half_open = wait_for(&mut events, is_transition_to(BreakerState::HalfOpen)).await;
    let Event::Transition { transition, .. } = half_open else {
        unreachable!()
    };
    assert_eq!(transition.reason, TransitionReason::RecoverySucceeded);
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "long before the 5m open duration"
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the custom strategy ran"
    );
    assert_eq!(
        probe.reconnects.load(Ordering::SeqCst),
        1 + 2,
        "2nd attempt reconnected both actors"
    );

    for i in 0..3 {
        kite.call(Req::Ok(i)).await.unwrap();
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    let stats = kite.supervision();
    assert_eq!((stats.recovery_attempts, stats.recoveries), (2, 1));

    // After a close that held for the stability window (the last open
    // duration, 5 min), the backoff starts again from initial_delay.
    tokio::time::sleep(Duration::from_secs(301)).await;
    probe.down.store(true, Ordering::SeqCst);
    trip(&kite).await;
    let reopened = Instant::now();
    wait_for(&mut events, |e| {
        matches!(e, Event::RecoveryAttempted { .. })
    })
    .await;
    let first = reopened.elapsed();
    assert!(
        first <= Duration::from_millis(1200),
        "reset to ~1s, got {first:?}"
    );
    seawall.shutdown().await;
}

fn restart_config(max_restarts: u32, period: Duration) -> Config {
    let mut config = kite_config(|s| {
        s.concurrency = 1;
        s.failure_threshold = 100;
        s.restart.max_restarts = max_restarts;
        s.restart.period = period;
        s.restart.initial_delay = Duration::from_millis(100);
        s.restart.max_delay = Duration::from_secs(1);
    });
    config.runtime.auto_recovery_enabled = false;
    config
}

async fn crash_once(kite: &ServiceHandle<Scripted>, events: &mut broadcast::Receiver<Event>) {
    let err = kite.call(Req::Panic).await.unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }), "{err}");
    wait_for(events, |e| {
        matches!(
            e,
            Event::ServiceActorRestarted { .. } | Event::Escalated { .. }
        )
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn test_restart_when_panics_repeat_within_period_then_escalates_until_reset() {
    let (seawall, kite, probe) = start(restart_config(3, Duration::from_secs(10))).await;
    let mut events = seawall.subscribe();
    for _ in 0..3 {
        crash_once(&kite, &mut events).await;
        assert_eq!(kite.state(), BreakerState::Closed);
    }
    let err = kite.call(Req::Panic).await.unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }));
    let escalated = wait_for(&mut events, |e| matches!(e, Event::Escalated { .. })).await;
    let Event::Escalated { reason, .. } = escalated else {
        unreachable!()
    };
    assert!(reason.contains("4 service-actor failures"), "{reason}");
    assert!(reason.contains("max_restarts"), "{reason}");
    assert_eq!(kite.state(), BreakerState::ForcedOpen);
    assert_eq!(kite.supervision().escalations, 1);
    let m = kite.metrics();
    assert_eq!(m.failures, 4, "each crash counted once, by its call");
    assert_eq!(m.crashes, 0, "and not again by supervision");

    // Nothing but a reset (or a recovery) clears it: an hour later, still held.
    let restarts = kite.supervision().restarts;
    assert_eq!(restarts, 3);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(kite.state(), BreakerState::ForcedOpen);
    assert_eq!(
        kite.supervision().restarts,
        restarts,
        "no restart after escalation"
    );
    // The service actors were started 4 times; the one other instance is
    // the health checks' own, which never takes calls.
    assert!(probe.started.load(Ordering::SeqCst) <= 5);

    seawall.breaker("kite_api").unwrap().reset();
    wait_for(&mut events, |e| {
        matches!(e, Event::ServiceActorRestarted { .. })
    })
    .await;
    assert_eq!(
        kite.call(Req::Ok(3)).await.unwrap(),
        3,
        "revived by the reset"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_restart_when_same_panics_spread_beyond_period_then_no_escalation() {
    let (seawall, kite, _) = start(restart_config(3, Duration::from_secs(10))).await;
    let mut events = seawall.subscribe();
    for _ in 0..8 {
        crash_once(&kite, &mut events).await;
        kite.call(Req::Ok(0)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    assert_eq!(kite.supervision().escalations, 0);
    assert_eq!(kite.supervision().restarts, 8);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_restart_when_escalated_and_recovery_on_then_recovery_clears_it() {
    let mut config = restart_config(1, Duration::from_secs(60));
    config.runtime.auto_recovery_enabled = true;
    let (seawall, kite, _) = start(config).await;
    let mut events = seawall.subscribe();
    crash_once(&kite, &mut events).await;
    kite.call(Req::Panic).await.unwrap_err();
    wait_for(&mut events, |e| matches!(e, Event::Escalated { .. })).await;
    let half_open = wait_for(&mut events, is_transition_to(BreakerState::HalfOpen)).await;
    let Event::Transition { transition, .. } = half_open else {
        unreachable!()
    };
    assert_eq!(transition.reason, TransitionReason::RecoverySucceeded);
    assert_eq!(kite.call(Req::Ok(1)).await.unwrap(), 1);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_crash_when_request_in_flight_then_caller_gets_error_within_timeout() {
    let (seawall, kite, _) = start(restart_config(5, Duration::from_secs(60))).await;
    let k = kite.clone();
    let started = Instant::now();
    let crashing =
        tokio::spawn(async move { k.call(Req::SleepThenPanic(Duration::from_secs(1))).await });
    while kite.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    // Queued behind the crashing request on the same service actor.
    let queued = kite.call(Req::Ok(1)).await.unwrap_err();
    assert!(matches!(queued, CallError::Crashed { .. }), "{queued}");
    let crashed = crashing.await.unwrap().unwrap_err();
    assert!(matches!(crashed, CallError::Crashed { .. }), "{crashed}");
    assert!(
        started.elapsed() < kite.call_timeout(),
        "answered at the crash, not the timeout"
    );
    assert_eq!(
        kite.metrics().consecutive_failures,
        1,
        "one crash, one failure"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_retry_when_request_not_idempotent_then_never_resent() {
    let (seawall, kite, probe) = start(kite_config(|s| s.failure_threshold = 100)).await;
    let err = kite.call_with_retry(Req::PlaceOrderFail).await.unwrap_err();
    assert!(matches!(err, CallError::Service { .. }), "{err}");
    assert_eq!(probe.received(), 1, "an order is sent once");

    let err = kite
        .call_with_retry(Req::PlaceOrderSlow(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Unknown { .. }),
        "a timed-out order is Unknown: {err}"
    );
    assert!(err.to_string().contains("reconcile"));
    assert_eq!(probe.received(), 2);

    let err = kite
        .call_with_retry(Req::PlaceOrderAmbiguous)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Unknown {
                source: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(probe.received(), 3);
    assert_eq!(kite.supervision().retries, 0);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_retry_when_idempotent_then_at_most_max_retries_with_backoff() {
    let (seawall, kite, probe) = start(kite_config(|s| {
        s.failure_threshold = 100;
        s.retry.max_retries = 3;
        s.retry.delay = Duration::from_millis(100);
        s.retry.jitter = 0.0;
    }))
    .await;
    let started = Instant::now();
    let err = kite.call_with_retry(Req::Fail).await.unwrap_err();
    assert!(matches!(err, CallError::Service { .. }));
    assert_eq!(probe.received(), 4, "1 attempt + 3 retries");
    assert_eq!(kite.supervision().retries, 3);
    assert_eq!(started.elapsed(), Duration::from_millis(100 + 200 + 400));
    assert_eq!(
        kite.metrics().failures,
        4,
        "each attempt counted by the breaker"
    );

    probe.down.store(false, Ordering::SeqCst);
    let err = kite.call_with_retry(Req::Business).await.unwrap_err();
    assert!(matches!(err, CallError::Service { .. }));
    assert_eq!(
        probe.received(),
        5,
        "an ignored (input) error is not retried"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_retry_when_breaker_opens_then_not_retried_into_it() {
    let (seawall, kite, probe) = start(kite_config(|s| {
        s.failure_threshold = 2;
        s.retry.max_retries = 5;
        s.retry.delay = Duration::from_millis(10);
    }))
    .await;
    let err = kite.call_with_retry(Req::Fail).await.unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Rejected {
                state: BreakerState::Open,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        probe.received(),
        2,
        "no attempt reached the service after it opened"
    );
    assert_eq!(kite.supervision().retries, 2);
    let err = kite.call_with_retry(Req::Ok(1)).await.unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(kite.supervision().retries, 2, "a refusal is not retried");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_pre_start_when_start_fails_then_respawned_after_backoff() {
    let mut config = restart_config(5, Duration::from_secs(60));
    config
        .services
        .get_mut("kite_api")
        .unwrap()
        .restart
        .initial_delay = Duration::from_millis(500);
    let probe = Arc::new(Probe::default());
    probe.failing_starts.store(2, Ordering::SeqCst);
    let p = Arc::clone(&probe);
    let t0 = Instant::now();
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Scripted {
            probe: Arc::clone(&p),
        })
        .start()
        .await
        .unwrap();
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    wait_for(&mut events, |e| {
        matches!(e, Event::ServiceActorRestarted { .. })
    })
    .await;
    // Two failed starts: waits of ~500ms then ~1s (±10%) before the third.
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(1350), "{waited:?}");
    assert!(waited <= Duration::from_millis(1650), "{waited:?}");
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
    assert_eq!(kite.metrics().crashes, 2);
    assert_eq!(kite.call(Req::Ok(2)).await.unwrap(), 2);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_soak_when_10000_random_failures_then_each_call_answered_once_and_tree_closes() {
    let mut config = kite_config(|s| {
        s.concurrency = 4;
        s.max_in_flight = 64;
        s.open_timeout = Duration::from_secs(30);
    });
    config.runtime.seed = Some(2026);
    let (seawall, kite, probe) = start(config).await;
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut answered = 0usize;
    let mut ok = 0usize;
    for _batch in 0..200 {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let request = match rng.u32(0..100) {
                0..=59 => Req::Ok(1),
                60..=89 => Req::Fail,
                90..=96 => Req::Business,
                97..=98 => Req::Sleep(Duration::from_secs(10)),
                _ => Req::Panic,
            };
            let k = kite.clone();
            calls.spawn(async move { k.call(request).await });
        }
        while let Some(result) = calls.join_next().await {
            let reply = result.expect("no panic escapes a call");
            answered += 1;
            ok += usize::from(reply.is_ok());
        }
        // Let the breaker, restarts and recovery move between batches.
        tokio::time::sleep(Duration::from_millis(rng.u64(0..2000))).await;
    }
    assert_eq!(answered, 10_000, "every call got exactly one reply");
    assert!(ok > 0 && ok < 10_000);
    assert!(
        kite.supervision().restarts > 0,
        "panics restarted service actors"
    );
    assert!(
        kite.metrics().transitions > 0,
        "the breaker tripped along the way"
    );

    // The failures stop: the tree must come back to Closed on its own.
    let stopped = Instant::now();
    let mut i = 0;
    while kite.state() != BreakerState::Closed {
        i += 1;
        let _ = kite.call(Req::Ok(i)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            stopped.elapsed() < Duration::from_secs(600),
            "not Closed within 10 minutes"
        );
    }
    assert_eq!(kite.call(Req::Ok(7)).await.unwrap(), 7);
    let m = kite.metrics();
    assert_eq!(
        m.admitted,
        m.successes + m.failures + m.ignored + m.timeouts + m.in_flight
    );
    assert!(probe.received() <= 10_000 + i as usize + 1);
    seawall.shutdown().await;
}
