//! Lifecycle of the tree: every actor hook, restarts, handles across
//! restarts, manual commands, and graceful shutdown.

mod support;

use seawall::{BreakerState, CallError, Event, Seawall, StartError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::{kite_config, Probe, Req, Scripted};
use tokio::sync::broadcast;

async fn next_event(
    events: &mut broadcast::Receiver<Event>,
    want: impl Fn(&Event) -> bool,
) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(600), events.recv())
            .await
            .expect("event within 10 virtual minutes")
            .expect("bus open");
        if want(&event) {
            return event;
        }
    }
}

fn scripted(probe: &Arc<Probe>) -> impl Fn() -> Scripted + Send + Sync + 'static {
    let probe = Arc::clone(probe);
    move || Scripted {
        probe: Arc::clone(&probe),
    }
}

#[tokio::test(start_paused = true)]
async fn test_pre_start_when_service_starts_then_start_hook_ran_per_actor() {
    let probe = Arc::new(Probe::default());
    let seawall = Seawall::builder(kite_config(|s| s.concurrency = 3))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    assert_eq!(
        probe.started.load(Ordering::SeqCst),
        3,
        "one service value per actor"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_handle_when_service_actor_panics_then_caller_gets_error_and_handle_survives_restart()
{
    let probe = Arc::new(Probe::default());
    let seawall = Seawall::builder(kite_config(|s| s.concurrency = 1))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();

    let err = kite.call(Req::Panic).await.unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }), "{err}");
    assert_eq!(
        kite.metrics().consecutive_failures,
        1,
        "the crash is a failure"
    );

    let failed = next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorFailed { .. })
    })
    .await;
    assert_eq!(failed.service(), "kite_api");
    next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorRestarted { .. })
    })
    .await;
    assert_eq!(
        kite.call(Req::Ok(9)).await.unwrap(),
        9,
        "the old handle reaches the new actor"
    );
    assert_eq!(probe.started.load(Ordering::SeqCst), 2);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_pre_start_when_start_fails_then_counted_and_respawned_not_lost() {
    let probe = Arc::new(Probe::default());
    probe.failing_starts.store(2, Ordering::SeqCst);
    let seawall = Seawall::builder(kite_config(|s| s.concurrency = 1))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .expect("a failing service start does not fail the tree");
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let err = kite.call(Req::Ok(1)).await.unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err}");

    next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorFailed { .. })
    })
    .await;
    next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorRestarted { .. })
    })
    .await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
    assert_eq!(kite.metrics().crashes, 2, "both failed starts were counted");
    assert_eq!(kite.call(Req::Ok(5)).await.unwrap(), 5);
    seawall.shutdown().await;
}

/// A start that never finishes (a login or connect into a black hole)
/// must not hold up the tree: `start()` returns after `start_timeout`, the
/// service is unavailable meanwhile, the hang is a counted failed start
/// naming the key, and the restart backoff brings the service up once its
/// dependency answers.
#[tokio::test(start_paused = true)]
async fn test_pre_start_when_start_hangs_then_tree_starts_and_service_restarts_after_start_timeout()
{
    let probe = Arc::new(Probe::default());
    probe.hanging_starts.store(1, Ordering::SeqCst);
    let began = tokio::time::Instant::now();
    let starting = Seawall::builder(kite_config(|s| {
        s.concurrency = 1;
        s.start_timeout = Duration::from_secs(5);
    }))
    .service("kite_api", scripted(&probe))
    .start();
    let seawall = tokio::time::timeout(Duration::from_secs(3600), starting)
        .await
        .expect("a hanging service start does not hold up the tree")
        .expect("tree starts");
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(5),
        "start waited start_timeout"
    );
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let err = kite.call(Req::Ok(1)).await.unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err}");
    assert_eq!(
        kite.metrics().crashes,
        1,
        "the hang was counted as a failed start"
    );

    next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorRestarted { .. })
    })
    .await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 2);
    assert_eq!(kite.call(Req::Ok(5)).await.unwrap(), 5);
    seawall.shutdown().await;
}

/// The hang's error names the key to raise.
#[tokio::test(start_paused = true)]
async fn test_pre_start_when_start_hangs_then_failure_event_names_start_timeout() {
    let probe = Arc::new(Probe::default());
    probe.hanging_starts.store(2, Ordering::SeqCst);
    let seawall = Seawall::builder(kite_config(|s| {
        s.concurrency = 1;
        s.start_timeout = Duration::from_secs(5);
    }))
    .service("kite_api", scripted(&probe))
    .start()
    .await
    .unwrap();
    let mut events = seawall.subscribe();
    // The second start hangs too: its failure comes after the tree is up.
    let Event::ServiceActorFailed { error, .. } = next_event(&mut events, |e| {
        matches!(e, Event::ServiceActorFailed { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        error.contains("services.kite_api.start_timeout") && error.contains("5s"),
        "{error}"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_health_check_and_reconnect_when_called_then_reach_service() {
    let probe = Arc::new(Probe::default());
    let seawall = Seawall::builder(kite_config(|_| {}))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    kite.health_check().await.unwrap();
    kite.reconnect_worker(0).await.unwrap();
    assert_eq!(probe.health_checks.load(Ordering::SeqCst), 1);
    assert_eq!(probe.reconnects.load(Ordering::SeqCst), 1);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_manual_commands_when_issued_then_state_and_events_follow() {
    let probe = Arc::new(Probe::default());
    let seawall = Seawall::builder(kite_config(|_| {}))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let control = seawall.breaker("kite_api").unwrap();

    control.force_open("exchange maintenance").unwrap();
    assert_eq!(kite.state(), BreakerState::ForcedOpen);
    assert!(kite.call(Req::Ok(1)).await.unwrap_err().is_refusal());
    assert_eq!(
        kite.metrics().manual_reason.as_deref(),
        Some("exchange maintenance")
    );
    let e = next_event(&mut events, |e| matches!(e, Event::Transition { .. })).await;
    assert!(
        matches!(e, Event::Transition { ref transition, .. } if transition.to == BreakerState::ForcedOpen)
    );

    control.disable("sandbox").unwrap();
    for _ in 0..20 {
        kite.call(Req::Fail).await.unwrap_err();
    }
    assert_eq!(kite.state(), BreakerState::Disabled);

    control.reset().unwrap();
    assert_eq!(kite.state(), BreakerState::Closed);
    assert_eq!(
        probe.received(),
        20,
        "nothing reached the service while forced open"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_start_when_circuit_breaker_disabled_by_config_then_breakers_disabled() {
    let probe = Arc::new(Probe::default());
    let mut config = kite_config(|_| {});
    config.runtime.circuit_breaker_enabled = false;
    let seawall = Seawall::builder(config)
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    assert_eq!(kite.state(), BreakerState::Disabled);
    assert_eq!(
        kite.metrics().manual_reason.as_deref(),
        Some("CIRCUIT_BREAKER_ENABLED=false")
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_start_when_service_not_configured_then_error_names_it() {
    let probe = Arc::new(Probe::default());
    let err = Seawall::builder(kite_config(|_| {}))
        .service("broker_two", scripted(&probe))
        .start()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StartError::NotConfigured { .. }));
    assert!(err.to_string().contains("[services.broker_two]"));
}

#[tokio::test(start_paused = true)]
async fn test_handle_when_wrong_name_or_type_then_clear_error() {
    struct Other;
    impl seawall::Service for Other {
        type Request = ();
        type Response = ();
        type Error = std::io::Error;
        type Policy = seawall::DefaultPolicy;
        async fn call(&mut self, _: ()) -> Result<(), std::io::Error> {
            Ok(())
        }
    }

    impl seawall::Lifecycle for Other {}
    let probe = Arc::new(Probe::default());
    let seawall = Seawall::builder(kite_config(|_| {}))
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .unwrap();
    let unknown = seawall.handle::<Scripted>("kite").unwrap_err();
    assert!(unknown.to_string().contains("kite_api"), "{unknown}");
    let wrong = seawall.handle::<Other>("kite_api").unwrap_err();
    assert!(wrong.to_string().contains("Scripted"), "{wrong}");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_shutdown_when_calls_in_flight_then_answered_and_services_stop_in_reverse_order() {
    let probe = Arc::new(Probe::default());
    let mut config = kite_config(|_| {});
    let mut second = config.services["kite_api"].clone();
    second.concurrency = 1;
    config.services.insert("database".to_string(), second);
    let seawall = Seawall::builder(config)
        .service("kite_api", scripted(&probe))
        .service("database", scripted(&probe))
        .start()
        .await
        .unwrap();
    let mut events = seawall.subscribe();
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let db = seawall.handle::<Scripted>("database").unwrap();

    let k = kite.clone();
    let in_flight = tokio::spawn(async move { k.call(Req::Sleep(Duration::from_secs(2))).await });
    let d = db.clone();
    let blocker = tokio::spawn(async move { d.call(Req::Sleep(Duration::from_secs(1))).await });
    while db.in_flight() < 1 {
        tokio::task::yield_now().await;
    }
    let d = db.clone();
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let d = d.clone();
            tokio::spawn(async move { d.call(Req::Ok(i)).await })
        })
        .collect();
    while kite.in_flight() < 1 || db.in_flight() < 4 {
        tokio::task::yield_now().await;
    }

    let token = seawall.shutdown_token();
    let stopping = tokio::spawn(seawall.shutdown());
    token.cancelled().await;
    let refused = kite.call(Req::Ok(1)).await.unwrap_err();
    assert!(
        matches!(refused, CallError::ShuttingDown { .. }),
        "{refused}"
    );

    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        0,
        "in-flight call answered"
    );
    assert_eq!(blocker.await.unwrap().unwrap(), 0);
    for (i, call) in queued.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            i as u32,
            "queued call answered"
        );
    }
    stopping.await.unwrap();
    let first = next_event(&mut events, |e| matches!(e, Event::ServiceStopped { .. })).await;
    let second = next_event(&mut events, |e| matches!(e, Event::ServiceStopped { .. })).await;
    assert_eq!(
        first.service(),
        "database",
        "registered last, stopped first"
    );
    assert_eq!(second.service(), "kite_api");
}

/// An engine that returns early with `?`, or unwinds, drops its tree
/// without `shutdown()`. The tree must not run on unseen: its handles
/// refuse new calls at once, its actors stop (the event bus closes when the
/// last of them is gone), and its HTTP port is free for the next tree.
#[tokio::test]
async fn test_drop_when_tree_dropped_without_shutdown_then_calls_refused_actors_stop_and_port_freed(
) {
    let probe = Arc::new(Probe::default());
    let mut config = kite_config(|_| {});
    config.runtime.http = Some(seawall::config::HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..seawall::config::HttpConfig::default()
    });
    let seawall = Seawall::builder(config.clone())
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .expect("tree starts");
    let addr = seawall.http_addr().expect("listening");
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let mut events = seawall.subscribe();
    kite.call(Req::Ok(1)).await.unwrap();

    drop(seawall);

    let err = kite.call(Req::Ok(2)).await.unwrap_err();
    assert!(matches!(err, CallError::ShuttingDown { .. }), "{err}");
    assert_eq!(
        probe.received(),
        1,
        "nothing reached the service after the drop"
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Err(broadcast::error::RecvError::Closed) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the tree's actors kept running after the drop"
    );

    // The next tree takes the same port.
    config.runtime.http.as_mut().unwrap().listen = addr;
    let next = Seawall::builder(config)
        .service("kite_api", scripted(&probe))
        .start()
        .await
        .expect("the port of the dropped tree is free");
    assert_eq!(next.http_addr(), Some(addr));
    next.shutdown().await;
}
