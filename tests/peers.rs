//! What the peers (resilience4j, Polly, Pekko) ship, seawall has too:
//! rate limits per request class, "open for the duration the dependency
//! names", rejections that carry their reason, and result classification.

mod support;

use seawall::breaker::TripCause;
use seawall::config::Config;
use seawall::{BreakerState, CallError, FailureKind, Outcome, Seawall, Service};
use seawall::{Lifecycle, Policy};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Quote,
    Order,
    Throttled(Duration),
    EmptyQuote,
}

#[derive(Debug, thiserror::Error)]
enum Err {
    #[error("429 Too many requests (Retry-After {0:?})")]
    TooMany(Duration),
}

/// A broker that logs when each request reached it: the dependency's side.
#[derive(Clone, Default)]
struct Broker {
    log: Arc<Mutex<Vec<(Instant, Req)>>>,
}

impl Service for Broker {
    type Request = Req;
    type Response = Option<f64>;
    type Error = Err;
    type Policy = BrokerPolicy;
    async fn call(&mut self, request: Req) -> Result<Option<f64>, Err> {
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), request.clone()));
        match request {
            Req::Throttled(d) => Err(Err::TooMany(d)),
            Req::EmptyQuote => Ok(None),
            _ => Ok(Some(1520.0)),
        }
    }
}

/// How the breaker reads `Broker`.
pub struct BrokerPolicy;

impl Policy<Req, Option<f64>, Err> for BrokerPolicy {
    fn classify(_: &Err) -> Outcome {
        Outcome::Ignored // a 429 throttles, it does not trip
    }
    fn classify_response(response: &Option<f64>) -> Outcome {
        match response {
            Some(_) => Outcome::Success,
            None => Outcome::Failure(FailureKind::Invalid),
        }
    }
    fn request_class(request: &Req) -> &'static str {
        match request {
            Req::Order => "orders",
            _ => "quote",
        }
    }
    fn retry_after(error: &Err) -> Option<Duration> {
        let Err::TooMany(d) = error;
        Some(*d)
    }
}

impl Lifecycle for Broker {}

async fn shipped_kite(
    edit: impl FnOnce(&mut Config),
) -> (Seawall, seawall::ServiceHandle<Broker>, Broker) {
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == "kite_api");
    edit(&mut config);
    let broker = Broker::default();
    let b = broker.clone();
    let seawall = Seawall::builder(config)
        .service("kite_api", move || b.clone())
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Broker>("kite_api").unwrap();
    (seawall, kite, broker)
}

#[tokio::test(start_paused = true)]
async fn test_rate_limit_when_100_quotes_in_one_second_then_broker_sees_at_most_one_per_second() {
    let (seawall, kite, broker) = shipped_kite(|_| {}).await;
    let t0 = Instant::now();
    let mut calls = Vec::new();
    for i in 0..100u64 {
        let kite = kite.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 10)).await;
            kite.call(Req::Quote).await
        }));
    }
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => {}
            Err(CallError::RateLimited {
                limit, retry_in, ..
            }) => {
                assert!(
                    limit.contains("services.kite_api.rate_limit.classes.quote")
                        && limit.contains("1/s"),
                    "{limit}"
                );
                assert!(retry_in > Duration::ZERO);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let log = broker.log.lock().unwrap().clone();
    let times: Vec<Duration> = log.iter().map(|(at, _)| *at - t0).collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "quotes reached the broker faster than 1/s: {times:?}"
        );
    }
    assert!(log.len() >= 2, "some waited for their slot: {times:?}");
    assert_eq!(log.len() + refused, 100, "every request answered");
    // Orders have their own budget: a quote flood does not starve them.
    kite.call(Req::Order).await.unwrap();
    seawall.shutdown().await;
}

/// A call an open breaker will refuse is refused before the rate-limit
/// wait: it neither waits for a slot nor spends one of the broker's, so the
/// first call after the breaker closes goes at once. Counted on the
/// broker's side (its log) and in virtual time.
#[tokio::test(start_paused = true)]
async fn test_rate_limit_when_breaker_open_then_refused_at_once_and_no_slot_spent() {
    let (seawall, kite, broker) = shipped_kite(|_| {}).await;
    let control = seawall.control("kite_api").unwrap();
    control.force_open("maintenance window");
    let t0 = Instant::now();
    for _ in 0..5 {
        let err = kite.call(Req::Quote).await.unwrap_err();
        assert!(matches!(err, CallError::Rejected { .. }), "{err}");
    }
    assert!(matches!(
        kite.cast(Req::Quote),
        Err(CallError::Rejected { .. })
    ));
    assert_eq!(Instant::now(), t0, "a refused call waited for a rate slot");
    control.reset();
    kite.call(Req::Quote)
        .await
        .expect("the quote slot is unspent");
    let log = broker.log.lock().unwrap().clone();
    assert_eq!(
        log.len(),
        1,
        "only the call after the reset reached the broker"
    );
    assert_eq!(
        log[0].0, t0,
        "it went at once: no refused call spent its slot"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_retry_after_when_dependency_names_a_pause_then_that_class_pauses_exactly_that_long() {
    let (seawall, kite, broker) = shipped_kite(|c| {
        let limits = c
            .services
            .get_mut("kite_api")
            .unwrap()
            .rate_limit
            .as_mut()
            .unwrap();
        limits.max_wait = Duration::from_millis(100);
    })
    .await;
    let err = kite
        .call(Req::Throttled(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Service { .. }), "{err}");
    assert_eq!(kite.state(), BreakerState::Closed, "a 429 does not trip");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paused = kite.call(Req::Quote).await.unwrap_err();
    assert!(
        matches!(&paused, CallError::RateLimited { limit, .. } if limit.contains("Retry-After")),
        "{paused}"
    );
    let left = paused.retry_in().unwrap();
    assert!(
        left > Duration::from_millis(3900) && left <= Duration::from_secs(4),
        "{left:?}"
    );
    kite.call(Req::Order)
        .await
        .expect("another class is not paused");
    tokio::time::sleep(left).await;
    kite.call(Req::Quote)
        .await
        .expect("exactly the named pause, no longer");
    assert_eq!(broker.log.lock().unwrap().len(), 3);
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_retry_after_when_no_rate_limits_then_breaker_open_for_exactly_that_long() {
    let (seawall, kite, _) = shipped_kite(|c| {
        let kite = c.services.get_mut("kite_api").unwrap();
        kite.rate_limit = None;
        kite.recovery.confirm_with_health_checks = false;
    })
    .await;
    let _ = kite.call(Req::Throttled(Duration::from_secs(42))).await;
    assert_eq!(kite.state(), BreakerState::Open);
    let err = kite.call(Req::Quote).await.unwrap_err();
    let CallError::Rejected { cause, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*cause, TripCause::DependencyAsked);
    assert_eq!(err.retry_in(), Some(Duration::from_secs(42)));
    tokio::time::sleep(Duration::from_millis(41_900)).await;
    assert_eq!(kite.state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        kite.state(),
        BreakerState::HalfOpen,
        "open for exactly 42 s"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_rejection_when_open_then_carries_time_to_next_probe_and_trip_cause() {
    let (seawall, kite, _) = shipped_kite(|c| {
        c.services.get_mut("kite_api").unwrap().rate_limit = None;
    })
    .await;
    for _ in 0..5 {
        let _ = kite.call(Req::EmptyQuote).await;
    }
    assert_eq!(kite.state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let err = kite.call(Req::Quote).await.unwrap_err();
    let CallError::Rejected { cause, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*cause, TripCause::ConsecutiveFailures);
    assert_eq!(
        err.retry_in(),
        Some(Duration::from_secs(240)),
        "5 min open, 1 min gone"
    );
    let text = err.to_string();
    assert!(
        text.contains("consecutive failures") && text.contains("next probe in 4m"),
        "{text}"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_result_classification_when_reply_is_empty_then_counted_as_failure_and_trips() {
    let (seawall, kite, _) = shipped_kite(|c| {
        c.services.get_mut("kite_api").unwrap().rate_limit = None;
    })
    .await;
    let err = kite.call(Req::EmptyQuote).await.unwrap_err();
    assert!(matches!(err, CallError::Invalid { .. }), "{err}");
    assert_eq!(kite.metrics().failures, 1);
    for _ in 0..4 {
        let _ = kite.call(Req::EmptyQuote).await;
    }
    assert_eq!(
        kite.state(),
        BreakerState::Open,
        "five empty quotes trip it"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_slow_start_when_breaker_just_closed_then_in_flight_ramps_and_surplus_is_shed() {
    let (seawall, kite, _) = shipped_kite(|c| {
        let kite = c.services.get_mut("kite_api").unwrap();
        kite.rate_limit = None;
        kite.slow_start = Some(Duration::from_secs(10));
        kite.open_timeout = Duration::from_secs(1);
        kite.recovery.confirm_with_health_checks = false;
    })
    .await;
    for _ in 0..5 {
        let _ = kite.call(Req::EmptyQuote).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..3 {
        kite.call(Req::Quote).await.unwrap();
    }
    assert_eq!(kite.state(), BreakerState::Closed);
    // A backlog of 40 arrives at once: the ramp admits 1 in flight at first.
    let burst = || async {
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let kite = kite.clone();
                tokio::spawn(async move { kite.call(Req::Quote).await })
            })
            .collect();
        let (mut ok, mut shed) = (0, 0);
        for c in calls {
            match c.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e @ CallError::SlowStart { .. }) => {
                    assert!(
                        e.to_string().contains("services.kite_api.slow_start"),
                        "{e}"
                    );
                    shed += 1
                }
                Err(e) => panic!("{e}"),
            }
        }
        (ok, shed)
    };
    let (ok, shed) = burst().await;
    assert!(
        ok <= 2 && ok + shed == 40,
        "at the start: {ok} admitted, {shed} shed"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (ok, shed) = burst().await;
    assert!(
        (28..=36).contains(&ok) && ok + shed == 40,
        "half way (64 × 0.5 = 32): {ok} admitted, {shed} shed"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (ok, shed) = burst().await;
    assert_eq!((ok, shed), (40, 0), "after the window, no ramp");
    seawall.shutdown().await;
}

#[derive(Debug, thiserror::Error)]
enum SvcErr {
    #[error("InputException: bad symbol")]
    Input,
    #[error("NetworkException: down")]
    Network,
}

#[tokio::test(start_paused = true)]
async fn test_register_circuit_breaker_when_added_at_run_time_then_execute_with_resilience_uses_it_with_classifier(
) {
    let (seawall, _, _) = shipped_kite(|_| {}).await;
    let mut config = seawall::config::ServiceConfig {
        failure_threshold: 3,
        ..Default::default()
    };
    let control = seawall
        .register_circuit_breaker("my_service", config.clone())
        .await
        .unwrap();
    assert_eq!(control.state(), BreakerState::Closed);
    let classify = |e: &SvcErr| match e {
        SvcErr::Input => Outcome::Ignored,
        SvcErr::Network => Outcome::Failure(FailureKind::Connection),
    };
    for _ in 0..5 {
        let out = seawall
            .execute_with_resilience_classified(
                "my_service",
                None,
                classify,
                || async { Err::<u32, _>(SvcErr::Input) },
                |_| Some(0),
            )
            .await;
        assert!(
            matches!(
                out,
                Err(CallError::Service {
                    outcome: Outcome::Ignored,
                    ..
                })
            ),
            "an input error is the caller's to see, not a fallback"
        );
    }
    assert_eq!(
        control.state(),
        BreakerState::Closed,
        "input errors never trip"
    );
    for _ in 0..3 {
        let _ = seawall
            .execute_with_resilience_classified(
                "my_service",
                None,
                classify,
                || async { Err::<u32, _>(SvcErr::Network) },
                |_| None,
            )
            .await;
    }
    assert_eq!(control.state(), BreakerState::Open);
    let refused = seawall
        .execute_with_resilience("my_service", || async { Ok::<_, SvcErr>(1) }, |_| Some(7))
        .await
        .unwrap();
    assert!(!refused.is_live(), "open: the fallback answers at once");
    let dup = seawall
        .register_circuit_breaker("my_service", config.clone())
        .await
        .unwrap_err();
    assert!(dup.to_string().contains("already exists"), "{dup}");
    config.failure_threshold = 0;
    let bad = seawall
        .register_circuit_breaker("other", config)
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("services.other.failure_threshold"), "{bad}");
    // The default for a breaker without an open_timeout is the seed's 300 s.
    assert_eq!(
        control.metrics().open_until.unwrap() - control.metrics().state_changed_at,
        Duration::from_secs(300)
    );
    seawall.shutdown().await;
}
