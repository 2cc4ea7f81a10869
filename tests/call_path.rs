//! The protected call path end to end, on tokio's paused clock, with the
//! seed's kite_api breaker: 5 failures to open, 3 probe successes to close,
//! 5 minutes open.

mod support;

use seawall::breaker::TransitionReason;
use seawall::{BreakerState, CallError, Event, Seawall, ServiceHandle};
use std::sync::Arc;
use std::time::Duration;
use support::{kite_config, Probe, Req, Scripted, TestError};
use tokio::sync::broadcast;
use tokio::time::Instant;

async fn start(
    edit: impl FnOnce(&mut seawall::config::ServiceConfig),
) -> (Seawall, ServiceHandle<Scripted>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let p = Arc::clone(&probe);
    // These tests pin the breaker's own timers; recovery has its own tests.
    let mut config = kite_config(edit);
    config.runtime.auto_recovery_enabled = false;
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

/// Waits (in virtual time) for the next transition of the breaker.
async fn next_transition(events: &mut broadcast::Receiver<Event>) -> seawall::breaker::Transition {
    loop {
        match tokio::time::timeout(Duration::from_secs(3600), events.recv()).await {
            Ok(Ok(Event::Transition { transition, .. })) => return transition,
            Ok(Ok(_)) => continue,
            other => panic!("no transition: {other:?}"),
        }
    }
}

async fn trip(handle: &ServiceHandle<Scripted>) {
    for _ in 0..5 {
        let err = handle.call(Req::Fail).await.unwrap_err();
        assert!(matches!(
            err,
            CallError::Service {
                source: TestError::Down,
                ..
            }
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn test_call_when_five_consecutive_failures_then_sixth_rejected_without_reaching_service() {
    let (seawall, kite, probe) = start(|_| {}).await;
    for _ in 0..4 {
        kite.call(Req::Fail).await.unwrap_err();
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    kite.call(Req::Fail).await.unwrap_err();
    assert_eq!(kite.state(), BreakerState::Open, "exact after the 5th");
    assert_eq!(probe.received(), 5);

    let err = kite.call(Req::Ok(1)).await.unwrap_err();
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
    assert!(err.to_string().contains("kite_api"));
    assert_eq!(
        probe.received(),
        5,
        "the 6th call never reached the service"
    );
    assert_eq!(kite.metrics().rejected, 1);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_state_when_five_minutes_pass_without_traffic_then_half_open() {
    let (seawall, kite, _) = start(|_| {}).await;
    let mut events = seawall.subscribe();
    trip(&kite).await;
    let opened = next_transition(&mut events).await;
    assert_eq!(opened.to, BreakerState::Open);
    let opened_at = Instant::now();

    tokio::time::sleep(Duration::from_secs(300) - Duration::from_millis(1)).await;
    assert_eq!(kite.state(), BreakerState::Open, "not a moment early");

    let half_open = next_transition(&mut events).await;
    assert_eq!(half_open.to, BreakerState::HalfOpen);
    assert!(matches!(
        half_open.reason,
        TransitionReason::OpenElapsed { .. }
    ));
    assert_eq!(kite.state(), BreakerState::HalfOpen, "true with no traffic");
    assert_eq!(opened_at.elapsed(), Duration::from_secs(300));
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_half_open_when_three_probes_succeed_then_closes() {
    let (seawall, kite, _) = start(|_| {}).await;
    let mut events = seawall.subscribe();
    trip(&kite).await;
    next_transition(&mut events).await;
    assert_eq!(
        next_transition(&mut events).await.to,
        BreakerState::HalfOpen
    );
    for i in 0..2 {
        assert_eq!(kite.call(Req::Ok(i)).await.unwrap(), i);
        assert_eq!(
            kite.state(),
            BreakerState::HalfOpen,
            "after {} probes",
            i + 1
        );
    }
    kite.call(Req::Ok(2)).await.unwrap();
    assert_eq!(kite.state(), BreakerState::Closed);
    let closed = next_transition(&mut events).await;
    assert_eq!(
        closed.reason,
        TransitionReason::ProbesSucceeded { successes: 3 }
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_half_open_when_probe_fails_then_reopens_for_longer() {
    let (seawall, kite, _) = start(|_| {}).await;
    let mut events = seawall.subscribe();
    trip(&kite).await;
    let first = next_transition(&mut events).await;
    let first_open = first.open_until.unwrap() - first.at;
    assert_eq!(first_open, Duration::from_secs(300));
    next_transition(&mut events).await;

    kite.call(Req::Fail).await.unwrap_err();
    let reopened = next_transition(&mut events).await;
    assert_eq!(reopened.to, BreakerState::Open);
    assert_eq!(reopened.reason, TransitionReason::ProbeFailed);
    let second_open = reopened.open_until.unwrap() - reopened.at;
    assert!(second_open > first_open, "{second_open:?}");
    let (low, high) = (Duration::from_secs(540), Duration::from_secs(660));
    assert!(
        (low..=high).contains(&second_open),
        "2× ± 10%: {second_open:?}"
    );
    assert_eq!(kite.state(), BreakerState::Open);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_service_exceeds_call_timeout_then_counts_as_failure() {
    let (seawall, kite, _) = start(|_| {}).await;
    let started = Instant::now();
    let err = kite
        .call(Req::Sleep(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(7),
        "kite_api call_timeout"
    );
    assert!(err.to_string().contains("call_timeout"));
    let m = kite.metrics();
    assert_eq!(m.timeouts, 1);
    assert_eq!(m.consecutive_failures, 1);
    for _ in 0..4 {
        kite.call(Req::Sleep(Duration::from_secs(60)))
            .await
            .unwrap_err();
    }
    assert_eq!(kite.state(), BreakerState::Open, "five timeouts trip it");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_outcome_ignored_then_never_trips() {
    let (seawall, kite, probe) = start(|_| {}).await;
    for _ in 0..100 {
        let err = kite.call(Req::Business).await.unwrap_err();
        assert!(matches!(
            err,
            CallError::Service {
                source: TestError::Business,
                outcome: seawall::Outcome::Ignored,
                ..
            }
        ));
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    assert_eq!(probe.received(), 100);
    assert_eq!(kite.metrics().ignored, 100);
    assert_eq!(kite.metrics().consecutive_failures, 0);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_over_bulkhead_bound_then_shed_with_service_and_bound() {
    let (seawall, kite, probe) = start(|s| {
        s.concurrency = 1;
        s.max_in_flight = 2;
    })
    .await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let k = kite.clone();
            tokio::spawn(async move { k.call(Req::Sleep(Duration::from_secs(1))).await })
        })
        .collect();
    while kite.in_flight() < 2 {
        tokio::task::yield_now().await;
    }
    let err = kite.call(Req::Ok(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Shed {
                max_in_flight: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("kite_api") && text.contains("max_in_flight") && text.contains('2'),
        "{text}"
    );
    for task in slow {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        probe.received(),
        2,
        "the shed call never reached the service"
    );
    assert_eq!(
        kite.state(),
        BreakerState::Closed,
        "shedding is not a failure"
    );
    kite.call(Req::Ok(3)).await.unwrap();
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_concurrency_two_then_fast_answered_while_slow_runs() {
    let (seawall, kite, _) = start(|s| s.concurrency = 2).await;
    let k = kite.clone();
    let slow = tokio::spawn(async move { k.call(Req::Sleep(Duration::from_secs(5))).await });
    while kite.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    assert_eq!(kite.call(Req::Ok(42)).await.unwrap(), 42);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!slow.is_finished(), "the slow request is still running");
    assert_eq!(slow.await.unwrap().unwrap(), 0);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_concurrency_one_then_fast_waits_behind_slow() {
    // The contrast to the test above: with one service actor, order is kept.
    let (seawall, kite, _) = start(|s| s.concurrency = 1).await;
    let k = kite.clone();
    let slow = tokio::spawn(async move { k.call(Req::Sleep(Duration::from_secs(5))).await });
    while kite.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    kite.call(Req::Ok(1)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(slow.is_finished());
    seawall.shutdown().await;
}

/// Under concurrency the calls already admitted when the breaker trips still
/// reach the service, but no more than `max_in_flight` of them.
#[tokio::test(start_paused = true)]
async fn test_call_when_many_concurrent_failures_then_overshoot_bounded_by_max_in_flight() {
    let (seawall, kite, probe) = start(|s| {
        s.concurrency = 4;
        s.max_in_flight = 16;
    })
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let k = kite.clone();
        tasks.spawn(async move { k.call(Req::Fail).await });
    }
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        if result.unwrap().unwrap_err().is_refusal() {
            refused += 1;
        }
    }
    assert_eq!(kite.state(), BreakerState::Open);
    assert!(probe.received() >= 5);
    assert!(
        probe.received() <= 5 + 16,
        "{} calls reached the service; bound is threshold + max_in_flight",
        probe.received()
    );
    assert_eq!(refused, 200 - probe.received());
    let m = kite.metrics();
    assert_eq!(
        m.admitted,
        m.successes + m.failures + m.ignored + m.timeouts + m.in_flight
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_cast_when_failures_then_recorded_by_service_actor() {
    let (seawall, kite, probe) = start(|_| {}).await;
    let mut events = seawall.subscribe();
    for _ in 0..5 {
        kite.cast(Req::Fail).unwrap();
    }
    assert_eq!(next_transition(&mut events).await.to, BreakerState::Open);
    assert_eq!(probe.received(), 5);
    assert!(kite.cast(Req::Ok(1)).unwrap_err().is_refusal());
    seawall.shutdown().await;
}

/// A cast's deadline is the service actor's one reused timer: each cast must
/// time out at its own deadline, never at an earlier cast's, and a cast
/// that finishes in time must not be cut short by a timer left over.
#[tokio::test(start_paused = true)]
async fn test_cast_when_the_service_outlives_call_timeout_then_each_cast_times_out_at_its_own_deadline(
) {
    // One service actor, so every cast runs on the same timer.
    let (seawall, kite, _) = start(|s| {
        s.call_timeout = Duration::from_secs(1);
        s.concurrency = 1;
    })
    .await;
    let settled = |kite: &ServiceHandle<Scripted>| {
        let m = kite.metrics();
        (m.successes, m.timeouts)
    };

    kite.cast(Req::Sleep(Duration::from_secs(5))).unwrap();
    tokio::time::sleep(Duration::from_millis(990)).await;
    assert_eq!(settled(&kite), (0, 0), "not before its deadline");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        settled(&kite),
        (0, 1),
        "at its deadline, not the service's 5 s"
    );

    // The timer has fired once; this cast needs it re-armed, 1 s from now.
    kite.cast(Req::Sleep(Duration::from_millis(600))).unwrap();
    tokio::time::sleep(Duration::from_millis(610)).await;
    assert_eq!(settled(&kite), (1, 1), "finished in time, not cut short");

    // Its timer was left armed for 0.4 s from now: the next cast's own
    // deadline must replace it.
    kite.cast(Req::Sleep(Duration::from_millis(900))).unwrap();
    tokio::time::sleep(Duration::from_millis(910)).await;
    assert_eq!(settled(&kite), (2, 1), "a left-over deadline cut it short");

    kite.cast(Req::Sleep(Duration::from_secs(5))).unwrap();
    tokio::time::sleep(Duration::from_millis(990)).await;
    assert_eq!(settled(&kite), (2, 1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(settled(&kite), (2, 2));
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_caller_gives_up_then_outcome_ignored_and_nothing_leaks() {
    let (seawall, kite, _) = start(|_| {}).await;
    let abandoned = tokio::time::timeout(
        Duration::from_secs(1),
        kite.call(Req::Sleep(Duration::from_secs(3))),
    )
    .await;
    assert!(abandoned.is_err());
    let m = kite.metrics();
    assert_eq!(m.ignored, 1);
    assert_eq!(m.in_flight, 0);
    assert_eq!(kite.state(), BreakerState::Closed);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_execute_with_resilience_when_over_bulkhead_bound_then_shed_and_function_never_runs() {
    let (seawall, _kite, _probe) = start(|s| {
        s.concurrency = 1;
        s.max_in_flight = 2;
    })
    .await;
    let seawall = Arc::new(seawall);
    let release = Arc::new(tokio::sync::Notify::new());
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (s, release, running) = (seawall.clone(), release.clone(), running.clone());
            tokio::spawn(async move {
                s.execute_with_resilience_for(
                    "kite_api",
                    None,
                    || async move {
                        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        release.notified().await;
                        Ok::<_, TestError>(1)
                    },
                    |_| None,
                )
                .await
            })
        })
        .collect();
    while running.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    let shed = seawall
        .execute_with_resilience_for(
            "kite_api",
            None,
            || async move {
                r.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, TestError>(1)
            },
            |_| None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            shed,
            CallError::Shed {
                max_in_flight: 2,
                ..
            }
        ),
        "{shed}"
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    release.notify_waiters();
    for task in held {
        assert!(task.await.unwrap().unwrap().is_live());
    }
    // The bulkhead room came back with the calls.
    let after = seawall
        .execute_with_resilience_for(
            "kite_api",
            None,
            || async { Ok::<_, TestError>(2) },
            |_| None,
        )
        .await
        .unwrap();
    assert!(after.is_live());
    let seawall = Arc::into_inner(seawall).expect("the only owner");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_call_when_caller_drops_a_half_open_probe_then_slot_freed_and_next_probe_admitted() {
    let (seawall, kite, _probe) = start(|_| {}).await;
    trip(&kite).await;
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(kite.state(), BreakerState::HalfOpen);
    // The one probe slot (half_open_max_calls = 1) holds a call that hangs;
    // its caller gives up on it.
    let hung = {
        let k = kite.clone();
        tokio::spawn(async move { k.call(Req::Sleep(Duration::from_secs(3600))).await })
    };
    while kite.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        kite.call(Req::Ok(1)).await.unwrap_err(),
        CallError::Rejected { .. }
    ));
    hung.abort();
    let _ = hung.await;
    // The abandoned probe went back as Ignored: the breaker admits probes
    // again and closes on real successes.
    for i in 0..3 {
        kite.call(Req::Ok(i)).await.unwrap();
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    assert_eq!(kite.metrics().ignored, 1);
    seawall.shutdown().await;
}

/// A service whose call with request 0 blocks its thread until the test
/// lets it go: code that cannot be cancelled (a blocking client, a stuck
/// foreign call), so the service actor cannot notice its caller leave.
struct Stuck {
    gate: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl seawall::Service for Stuck {
    type Request = u64;
    type Response = u64;
    type Error = TestError;
    type Policy = seawall::DefaultPolicy;
    async fn call(&mut self, n: u64) -> Result<u64, TestError> {
        if n == 0 {
            let _ = self.gate.lock().unwrap().recv();
        }
        Ok(n)
    }
}

impl seawall::Lifecycle for Stuck {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_call_when_callers_give_up_on_a_stuck_service_then_their_slots_stay_held_until_it_is_done(
) {
    let (release, gate) = std::sync::mpsc::channel();
    let gate = Arc::new(std::sync::Mutex::new(gate));
    let mut config = kite_config(|s| {
        s.concurrency = 1;
        s.max_in_flight = 2;
        s.call_timeout = Duration::from_millis(50);
    });
    config.runtime.auto_recovery_enabled = false;
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Stuck {
            gate: Arc::clone(&gate),
        })
        .start()
        .await
        .expect("tree starts");
    let kite: ServiceHandle<Stuck> = seawall.handle("kite_api").unwrap();
    // The first request blocks the service actor; its caller gives up.
    assert!(kite.call(0).await.is_err());
    // The second waits in the mailbox behind it; its caller gives up too.
    assert!(kite.call(1).await.is_err());
    assert_eq!(
        kite.in_flight(),
        2,
        "both requests are still with the stuck service actor: the callers' giving up frees nothing"
    );
    let err = kite.call(2).await.unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Shed {
                max_in_flight: 2,
                ..
            }
        ),
        "a stuck dependency cannot queue more than max_in_flight: {err}"
    );
    release.send(()).unwrap();
    // Once the service actor is done with them, their slots are free.
    tokio::time::timeout(Duration::from_secs(10), async {
        while kite.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the slots are released once the service actor is done");
    assert_eq!(kite.call(3).await.unwrap(), 3);
    seawall.shutdown().await;
}

/// A refusal comes back at once. An engine loop that retries it without
/// awaiting anything else must still give its runtime back now and then, or
/// the breaker actor's timer (Open → HalfOpen) never runs on a
/// current-thread runtime and the loop spins forever. Every refusal is a
/// yield point under tokio's cooperative budget, as tokio's own resources are.
#[test]
fn test_call_when_the_caller_retries_refusals_without_awaiting_then_the_breaker_still_reaches_half_open(
) {
    let (answer, refusals, received) = support::on_own_current_thread(
        Duration::from_secs(20),
        "the breaker never left Open: the refusal loop starved its runtime",
        || async {
            let (seawall, kite, probe) =
                start(|s| s.open_timeout = Duration::from_millis(50)).await;
            trip(&kite).await;
            assert_eq!(kite.state(), BreakerState::Open);
            let mut refusals = 0u64;
            // The careless loop: retry at once until a probe is admitted.
            let answer = loop {
                match kite.call(Req::Ok(7)).await {
                    Err(CallError::Rejected { .. }) => refusals += 1,
                    other => break other,
                }
            };
            seawall.shutdown().await;
            (
                answer.map_err(|e| e.to_string()),
                refusals,
                probe.received(),
            )
        },
    );
    assert_eq!(
        answer,
        Ok(7),
        "the first admitted call is the probe, and it succeeds"
    );
    assert!(refusals > 0, "the loop was refused while Open");
    assert_eq!(
        received, 6,
        "5 failures, then only the probe reached the service"
    );
}

/// The same loop over `execute_with_resilience` (a call that is not an
/// order, so the order gate stays out of it): its refusals yield too.
#[test]
fn test_execute_with_resilience_when_retried_without_awaiting_then_the_breaker_still_reaches_half_open(
) {
    let (refusals, ran) = support::on_own_current_thread(
        Duration::from_secs(20),
        "the breaker never left Open: the refusal loop starved its runtime",
        || async {
            let mut config = kite_config(|s| s.open_timeout = Duration::from_millis(50));
            config.runtime.auto_recovery_enabled = false;
            let seawall = Seawall::builder(config)
                .service("kite_api", || Scripted {
                    probe: Arc::new(Probe::default()),
                })
                .start()
                .await
                .expect("tree starts");
            let ran = std::sync::atomic::AtomicUsize::new(0);
            let down = |fail: bool| {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if fail {
                        Err(TestError::Down)
                    } else {
                        Ok(7u32)
                    }
                }
            };
            for _ in 0..5 {
                let _ = seawall
                    .execute_with_resilience_for("kite_api", None, || down(true), |_| None)
                    .await;
            }
            assert_eq!(
                seawall.handle::<Scripted>("kite_api").unwrap().state(),
                BreakerState::Open
            );
            let mut refusals = 0u64;
            loop {
                match seawall
                    .execute_with_resilience_for("kite_api", None, || down(false), |_| None)
                    .await
                {
                    Err(CallError::Rejected { .. }) => refusals += 1,
                    Ok(reply) => {
                        assert_eq!(reply.into_value(), 7);
                        break;
                    }
                    Err(other) => panic!("{other}"),
                }
            }
            seawall.shutdown().await;
            (refusals, ran.load(std::sync::atomic::Ordering::SeqCst))
        },
    );
    assert!(refusals > 0, "the loop was refused while Open");
    assert_eq!(ran, 6, "5 failures, then only the probe ran the function");
}
