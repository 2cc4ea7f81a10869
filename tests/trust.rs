//! The promise under a real outage: recovery shortens an outage only on
//! evidence, flapping is counted and backed off, health checks never queue
//! behind calls, probe deadlines fire in the running tree, and one order
//! gate covers every path that can send an order.
//!
//! Every count is taken on the dependency's side (what reached the service),
//! never next to the thing it checks.

mod support;

use seawall::breaker::TransitionReason;
use seawall::chaos::{Chaos, ChaosPhase, ChaosPlan, Fault};
use seawall::config::{Config, RateWindowConfig, StrategyKind};
use seawall::degradation::{LastKnownPrice, OrderIntent, PriceBook, Quote, Reply};
use seawall::event::Alert;
use seawall::modes::TradingMode;
use seawall::{
    BreakerState, CallError, Event, Evidence, FailureKind, Outcome, Seawall, Service, ServiceHandle,
};
use seawall::{DefaultPolicy, Lifecycle, Policy};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{kite_config, Req};
use tokio::sync::broadcast;
use tokio::time::Instant;

use support::{start_scripted, wait_for};

// ---- a service that implements only `call`, and a dependency that stays down ----

#[derive(Debug, thiserror::Error)]
#[error("NetworkException: broker unreachable")]
struct Down;

/// Implements `call` only: no reconnect, no health check, no evidence.
struct CallOnly {
    reached: Arc<AtomicUsize>,
}

impl Service for CallOnly {
    type Request = u32;
    type Response = u32;
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, _: u32) -> Result<u32, Down> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        Err(Down)
    }
}

impl Lifecycle for CallOnly {}

/// The shipped kite_api config (auto-recovery on, confirm with health
/// checks on), a service that only implements `call`, a broker that stays
/// down, and an engine that calls once a second for 10 virtual minutes.
async fn call_only_outage(ten_minutes: Duration) -> (Vec<(Duration, BreakerState)>, usize, u64) {
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == "kite_api");
    config.runtime.seed = Some(3);
    assert!(config.runtime.auto_recovery_enabled);
    let kite_cfg = config.services["kite_api"].clone();
    assert_eq!(kite_cfg.open_timeout, Duration::from_secs(300));
    let reached = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&reached);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || CallOnly {
            reached: Arc::clone(&r),
        })
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<CallOnly>("kite_api").unwrap();
    let mut events = seawall.subscribe();
    let t0 = Instant::now();
    let mut reached_in_first_five = 0;
    while t0.elapsed() < ten_minutes {
        let _ = kite.call(1).await;
        if t0.elapsed() <= Duration::from_secs(300) {
            reached_in_first_five = reached.load(Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut transitions = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Transition { transition, .. } = e {
            transitions.push((transition.at.duration_since(t0.into_std()), transition.to));
        }
    }
    let flaps = kite.metrics().flaps;
    seawall.shutdown().await;
    (transitions, reached_in_first_five, flaps)
}

#[tokio::test(start_paused = true)]
async fn test_recovery_when_service_implements_only_call_and_stays_down_then_waits_out_open_timeout_and_never_closes(
) {
    let (transitions, reached, flaps) = call_only_outage(Duration::from_secs(600)).await;
    assert!(
        transitions
            .iter()
            .all(|(_, to)| *to != BreakerState::Closed),
        "never Closed while the dependency is down: {transitions:?}"
    );
    let first_half_open = transitions
        .iter()
        .find(|(_, to)| *to == BreakerState::HalfOpen)
        .expect("HalfOpen once the open duration passed");
    assert!(
        first_half_open.0 >= Duration::from_secs(300),
        "no evidence, so the seed's 5 minutes means 5 minutes: {transitions:?}"
    );
    // failure_threshold (5) + half_open_max_calls (1).
    assert!(reached <= 5 + 1, "{reached} calls reached the broker");
    assert_eq!(flaps, 0);
}

// ---- evidence ----

/// A service whose reconnect and health check really reach a dependency.
struct Reachable {
    up: Arc<AtomicBool>,
}

impl Service for Reachable {
    type Request = u32;
    type Response = u32;
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, n: u32) -> Result<u32, Down> {
        if self.up.load(Ordering::SeqCst) {
            Ok(n)
        } else {
            Err(Down)
        }
    }
}

impl Lifecycle for Reachable {
    async fn reconnect(&mut self) -> Result<Evidence, Down> {
        self.health_check().await
    }
    async fn health_check(&mut self) -> Result<Evidence, Down> {
        if self.up.load(Ordering::SeqCst) {
            Ok(Evidence::Observed)
        } else {
            Err(Down)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn test_recovery_when_reconnect_reaches_dependency_then_half_open_early_and_closes_only_on_probes(
) {
    let mut config = kite_config(|s| s.recovery.confirm_with_health_checks = false);
    config.runtime.seed = Some(1);
    let up = Arc::new(AtomicBool::new(false));
    let u = Arc::clone(&up);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Reachable { up: Arc::clone(&u) })
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Reachable>("kite_api").unwrap();
    let mut events = seawall.subscribe();
    for i in 0..5 {
        let _ = kite.call(i).await;
    }
    assert_eq!(kite.state(), BreakerState::Open);
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        kite.state(),
        BreakerState::Open,
        "failed reconnects are no evidence"
    );
    up.store(true, Ordering::SeqCst);
    wait_for(&mut events, |e| {
        matches!(e, Event::Transition { transition, .. } if transition.to == BreakerState::HalfOpen
            && transition.reason == TransitionReason::RecoverySucceeded)
    })
    .await;
    assert!(
        opened.elapsed() < Duration::from_secs(120),
        "early, on evidence"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        kite.state(),
        BreakerState::HalfOpen,
        "recovery alone never closes it"
    );
    for i in 0..3 {
        kite.call(i).await.unwrap();
    }
    assert_eq!(
        kite.state(),
        BreakerState::Closed,
        "success_threshold probes close it"
    );
    seawall.shutdown().await;
}

// ---- flaps ----

#[tokio::test(start_paused = true)]
async fn test_flap_when_reopened_inside_stability_window_then_counted_alerted_longer_and_backoff_kept(
) {
    let mut config = kite_config(|s| {
        s.recovery.confirm_with_health_checks = false;
        s.open_timeout = Duration::from_secs(10);
        s.max_open_timeout = Some(Duration::from_secs(600));
        s.open_jitter = 0.0;
    });
    config.runtime.seed = Some(1);
    let up = Arc::new(AtomicBool::new(false));
    let u = Arc::clone(&up);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Reachable { up: Arc::clone(&u) })
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Reachable>("kite_api").unwrap();
    let mut events = seawall.subscribe();
    let cycle = |events: &mut broadcast::Receiver<Event>| {
        let kite = kite.clone();
        let up = Arc::clone(&up);
        let mut events = events.resubscribe();
        async move {
            up.store(false, Ordering::SeqCst);
            for i in 0..5 {
                let _ = kite.call(i).await;
            }
            assert_eq!(kite.state(), BreakerState::Open);
            let open_until = kite.metrics().open_until.unwrap();
            let opened = kite.metrics().state_changed_at;
            up.store(true, Ordering::SeqCst);
            wait_for(&mut events, |e| {
                matches!(e, Event::Transition { transition, .. } if transition.to == BreakerState::HalfOpen)
            })
            .await;
            for i in 0..3 {
                kite.call(i).await.unwrap();
            }
            assert_eq!(kite.state(), BreakerState::Closed);
            open_until - opened
        }
    };
    let first = cycle(&mut events).await;
    assert_eq!(first, Duration::from_secs(10));
    // Trip again at once: inside the stability window (the last open, 10 s).
    let second = cycle(&mut events).await;
    assert_eq!(kite.metrics().flaps, 1);
    assert_eq!(
        second,
        Duration::from_secs(20),
        "a flap lengthens the next open"
    );
    let alert = wait_for(&mut events, |e| {
        matches!(e, Event::Alert(Alert::Flap { .. }))
    })
    .await;
    let Event::Alert(Alert::Flap { service, flaps, .. }) = alert else {
        unreachable!()
    };
    assert_eq!((&*service, flaps), ("kite_api", 1));
    let report = seawall.health_report();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["circuit_breakers"]["kite_api"]["metrics"]["flaps"], 1,
        "the breaker report shows flaps: {json}"
    );
    // Closed for longer than the window (now 20 s): no flap, back to base.
    tokio::time::sleep(Duration::from_secs(21)).await;
    let third = cycle(&mut events).await;
    assert_eq!(kite.metrics().flaps, 1);
    assert_eq!(third, Duration::from_secs(10));
    seawall.shutdown().await;
}

// ---- health checks on their own path ----

/// A database with one connection: a slow query holds its only service actor.
struct SlowDb {
    checks: Arc<AtomicUsize>,
}

impl Service for SlowDb {
    type Request = Duration;
    type Response = ();
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, d: Duration) -> Result<(), Down> {
        tokio::time::sleep(d).await;
        Ok(())
    }
}

impl Lifecycle for SlowDb {
    async fn health_check(&mut self) -> Result<Evidence, Down> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(Evidence::Observed)
    }
}

#[tokio::test(start_paused = true)]
async fn test_health_check_when_only_service_actor_busy_with_slow_query_then_answers_at_once() {
    let config = kite_config(|s| {
        s.concurrency = 1;
        s.call_timeout = Duration::from_secs(5);
    });
    let checks = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&checks);
    let seawall = Seawall::builder(config)
        .service("kite_api", move || SlowDb {
            checks: Arc::clone(&c),
        })
        .start()
        .await
        .unwrap();
    let db = seawall.handle::<SlowDb>("kite_api").unwrap();
    let slow = tokio::spawn({
        let db = db.clone();
        async move { db.call(Duration::from_millis(2500)).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = Instant::now();
    let evidence = db.health_check().await.expect("the check is not queued");
    assert_eq!(evidence, Evidence::Observed);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "answered while the query runs, not after it"
    );
    assert!(slow.await.unwrap().is_ok());
    assert!(checks.load(Ordering::SeqCst) >= 1);
    seawall.shutdown().await;
}

// ---- probe deadline, slow probes, restarting slots ----

#[tokio::test(start_paused = true)]
async fn test_probe_when_it_never_returns_then_deadline_reopens_breaker_in_running_tree() {
    let mut config = kite_config(|s| {
        s.half_open_probe_timeout = Duration::from_secs(1);
        s.call_timeout = Duration::from_secs(5);
        s.open_timeout = Duration::from_secs(10);
        s.concurrency = 1;
    });
    config.runtime.auto_recovery_enabled = false;
    let (seawall, kite, _) = start_scripted(config).await;
    let mut events = seawall.subscribe();
    for _ in 0..5 {
        let _ = kite.call(Req::Fail).await;
    }
    wait_for(&mut events, |e| {
        matches!(e, Event::Transition { transition, .. } if transition.to == BreakerState::HalfOpen)
    })
    .await;
    let admitted = Instant::now();
    let stuck = tokio::spawn({
        let kite = kite.clone();
        async move { kite.call(Req::Sleep(Duration::from_secs(60))).await }
    });
    let reopened = wait_for(&mut events, |e| {
        matches!(e, Event::Transition { transition, .. } if transition.to == BreakerState::Open)
    })
    .await;
    let Event::Transition { transition, .. } = reopened else {
        unreachable!()
    };
    assert_eq!(transition.reason, TransitionReason::ProbeTimedOut);
    let after = admitted.elapsed();
    assert!(
        after >= Duration::from_secs(1) && after < Duration::from_secs(2),
        "the 1 s probe deadline fired, not the 5 s call timeout: {after:?}"
    );
    let _ = stuck.await;
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_probe_when_slow_and_slow_call_rule_on_then_reopens_instead_of_closing() {
    let mut config = kite_config(|s| {
        s.open_timeout = Duration::from_secs(10);
        s.success_threshold = 1;
        s.rate_window = Some(RateWindowConfig {
            calls: Some(10),
            duration: None,
            minimum_calls: 5,
            failure_rate_threshold: None,
            slow_call_rate_threshold: Some(0.5),
            slow_call_duration: Some(Duration::from_secs(1)),
        });
    });
    config.runtime.auto_recovery_enabled = false;
    let (seawall, kite, _) = start_scripted(config).await;
    for _ in 0..5 {
        let _ = kite.call(Req::Sleep(Duration::from_secs(2))).await;
    }
    assert_eq!(kite.state(), BreakerState::Open, "tripped by slow calls");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(kite.state(), BreakerState::HalfOpen);
    kite.call(Req::Sleep(Duration::from_secs(2))).await.unwrap();
    assert_eq!(
        kite.state(),
        BreakerState::Open,
        "a slow probe counts against closing"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(kite.state(), BreakerState::HalfOpen);
    kite.call(Req::Ok(1)).await.unwrap();
    assert_eq!(kite.state(), BreakerState::Closed, "a fast probe closes it");
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_crash_when_concurrency_two_then_sibling_serves_and_crash_counts_once() {
    let mut config = kite_config(|s| {
        s.concurrency = 2;
        s.failure_threshold = 100;
        s.restart.initial_delay = Duration::from_secs(1);
    });
    config.runtime.auto_recovery_enabled = false;
    let (seawall, kite, _) = start_scripted(config).await;
    assert!(kite.call(Req::Panic).await.is_err());
    for i in 0..6 {
        assert_eq!(
            kite.call(Req::Ok(i)).await.unwrap(),
            i,
            "the healthy sibling serves while the other restarts"
        );
    }
    let m = kite.metrics();
    assert_eq!(m.failures, 1, "one crash, one failure");
    assert_eq!(m.successes, 6);
    seawall.shutdown().await;
}

#[test]
fn test_validate_when_duration_absurd_then_rejected_naming_key_and_bound() {
    let text = include_str!("../actors.toml").replace(
        "open_timeout = \"5m\"",
        "open_timeout = \"300000000000years\"",
    );
    let err = Config::parse(&text, "actors.toml")
        .and_then(|c| c.validate("actors.toml").map(|_| c))
        .unwrap_err()
        .to_string();
    assert!(err.contains("services.kite_api.open_timeout"), "{err}");
    assert!(err.contains("at most"), "{err}");
    let text = include_str!("../actors.toml").replace(
        "call_timeout = \"7s\"",
        "call_timeout = \"300000000000years\"",
    );
    let err = Config::parse(&text, "actors.toml")
        .and_then(|c| c.validate("actors.toml").map(|_| c))
        .unwrap_err()
        .to_string();
    assert!(err.contains("services.kite_api.call_timeout"), "{err}");
}

#[test]
fn test_trip_when_durations_absurd_in_code_then_saturates_without_panic() {
    // Code can build a breaker without validation; its time arithmetic must
    // still saturate rather than panic on `Instant + Duration`.
    use seawall::breaker::{BreakerSettings, CircuitBreaker};
    let mut settings = BreakerSettings::seed_default(1, 1, Duration::MAX);
    settings.max_open_timeout = Duration::MAX;
    settings.half_open_probe_timeout = Duration::MAX;
    let t0 = std::time::Instant::now();
    let mut b = CircuitBreaker::new(settings, t0);
    let permit = b.try_acquire(t0).unwrap();
    b.record(
        permit,
        Outcome::Failure(FailureKind::Server),
        Duration::ZERO,
        t0,
    );
    assert_eq!(b.state(), BreakerState::Open);
    assert!(b.open_until().unwrap() > t0 + Duration::from_secs(86_400 * 365));
    assert!(b.recovery_succeeded(t0).is_some());
    let probe = b.try_acquire(t0).unwrap();
    assert!(b.next_deadline().is_some());
    assert!(b.poll(t0 + Duration::from_secs(3600)).is_none());
    b.record(
        probe,
        Outcome::Failure(FailureKind::Server),
        Duration::MAX,
        t0,
    );
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "re-open at the cap, no panic"
    );
}

// ---- the one order gate ----

#[derive(Debug, Clone, PartialEq)]
enum BrokerReq {
    Quote,
    Place(u32),
    Exit(u32),
    Cancel(u32),
}

#[derive(Debug, thiserror::Error)]
enum BrokerErr {
    #[error("TokenException: access token expired")]
    Token,
}

/// A broker that keeps its own ledger of every order that reached it.
#[derive(Clone)]
struct LedgerBroker {
    ledger: Arc<Mutex<Vec<BrokerReq>>>,
    token_expired: Arc<AtomicBool>,
}

impl Service for LedgerBroker {
    type Request = BrokerReq;
    type Response = u32;
    type Error = BrokerErr;
    type Policy = LedgerBrokerPolicy;
    async fn call(&mut self, request: BrokerReq) -> Result<u32, BrokerErr> {
        if self.token_expired.load(Ordering::SeqCst) {
            return Err(BrokerErr::Token);
        }
        if request != BrokerReq::Quote {
            self.ledger.lock().unwrap().push(request);
        }
        Ok(1)
    }
}

/// How the breaker reads `LedgerBroker`.
pub struct LedgerBrokerPolicy;

impl Policy<BrokerReq, u32, BrokerErr> for LedgerBrokerPolicy {
    fn classify(_: &BrokerErr) -> Outcome {
        Outcome::Ignored
    }
    fn is_auth_failure(error: &BrokerErr) -> bool {
        matches!(error, BrokerErr::Token)
    }
    fn is_idempotent(request: &BrokerReq) -> bool {
        *request == BrokerReq::Quote
    }
    fn order_intent(request: &BrokerReq) -> Option<OrderIntent> {
        match request {
            BrokerReq::Quote => None,
            BrokerReq::Place(_) => Some(OrderIntent::Open),
            BrokerReq::Exit(_) => Some(OrderIntent::Exit),
            BrokerReq::Cancel(_) => Some(OrderIntent::Cancel),
        }
    }
}

impl Lifecycle for LedgerBroker {}

/// A feed with no policy of its own: only kite's `order_intent` matters here.
struct Feed;

impl Service for Feed {
    type Request = String;
    type Response = Quote;
    type Error = Down;
    type Policy = DefaultPolicy;
    async fn call(&mut self, _: String) -> Result<Quote, Down> {
        Err(Down)
    }
}

impl Lifecycle for Feed {}

struct Desk {
    seawall: Seawall,
    kite: Option<ServiceHandle<LedgerBroker>>,
    ledger: Arc<Mutex<Vec<BrokerReq>>>,
    token_expired: Arc<AtomicBool>,
}

async fn desk(wrap_in_chaos: bool) -> Desk {
    let mut config = Config::seed_defaults();
    config
        .services
        .retain(|name, _| name == "kite_api" || name == "market_data");
    // The gate, not the pacing, is under test: paths follow each other at once.
    config.services.get_mut("kite_api").unwrap().rate_limit = None;
    let broker = LedgerBroker {
        ledger: Arc::default(),
        token_expired: Arc::default(),
    };
    let (ledger, token_expired) = (
        Arc::clone(&broker.ledger),
        Arc::clone(&broker.token_expired),
    );
    let builder = Seawall::builder(config).service("market_data", || Feed);
    let seawall = if wrap_in_chaos {
        let plan = ChaosPlan::new(Vec::new(), 1, |_: &str| BrokerErr::Token);
        builder
            .service("kite_api", move || {
                Chaos::new(broker.clone(), Arc::clone(&plan))
            })
            .start()
            .await
            .unwrap()
    } else {
        builder
            .service("kite_api", move || broker.clone())
            .start()
            .await
            .unwrap()
    };
    // The chaos-wrapped service has its own handle type.
    let kite = seawall.handle::<LedgerBroker>("kite_api").ok();
    Desk {
        kite,
        seawall,
        ledger,
        token_expired,
    }
}

async fn set_mode(seawall: &Seawall, open: &str, want: TradingMode) {
    seawall.breaker(open).unwrap().force_open("test");
    let mut modes = seawall.modes();
    modes.wait_for(|m| m.trading == want).await.unwrap();
}

/// Sends one order of each kind down every path; returns how many reached the broker.
async fn every_path(d: &Desk, order: BrokerReq) -> Vec<(&'static str, bool)> {
    let kite = d.kite.as_ref().expect("plain broker");
    let before = d.ledger.lock().unwrap().len();
    let mut out = Vec::new();
    let mut reached = |name, d: &Desk, before: &mut usize| {
        let now = d.ledger.lock().unwrap().len();
        out.push((name, now > *before));
        *before = now;
    };
    let mut before = before;
    let _ = kite.call(order.clone()).await;
    reached("call", d, &mut before);
    let _ = kite.cast(order.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    reached("cast", d, &mut before);
    let _ = kite.call_with_retry(order.clone()).await;
    reached("retry", d, &mut before);
    let degraded = d
        .seawall
        .degraded::<LedgerBroker>("kite_api")
        .expect("degraded handle");
    let _ = degraded.call(order.clone()).await;
    reached("degraded", d, &mut before);
    let intent = LedgerBrokerPolicy::order_intent(&order);
    let kite = kite.clone();
    let o = order.clone();
    let _ = d
        .seawall
        .execute_with_resilience_for(
            "kite_api",
            intent,
            || async move {
                kite.call(o)
                    .await
                    .map_err(|e| e.to_string())
                    .map_err(|_| Down)
            },
            |_| None,
        )
        .await;
    reached("execute_with_resilience", d, &mut before);
    out
}

#[tokio::test(start_paused = true)]
async fn test_gate_when_halted_or_reducing_then_every_path_refuses_what_the_mode_forbids() {
    let d = desk(false).await;
    // Active: every path delivers every order.
    for (path, reached) in every_path(&d, BrokerReq::Place(1)).await {
        assert!(reached, "Active: {path} delivers a new order");
    }
    // Reducing (market data out): new orders refused, exits and cancels pass.
    set_mode(&d.seawall, "market_data", TradingMode::Reducing).await;
    for (path, reached) in every_path(&d, BrokerReq::Place(2)).await {
        assert!(!reached, "Reducing: {path} must refuse a new order");
    }
    for (path, reached) in every_path(&d, BrokerReq::Exit(3)).await {
        assert!(reached, "Reducing: {path} delivers an exit");
    }
    // Halted (broker forced open for orders is not the cause here: we halt
    // through the auth rule so the broker still answers cancels).
    let kite = d.kite.clone().unwrap();
    d.token_expired.store(true, Ordering::SeqCst);
    let err = kite.call(BrokerReq::Quote).await.unwrap_err();
    assert!(matches!(err, CallError::Service { .. }), "{err}");
    d.token_expired.store(false, Ordering::SeqCst);
    for (path, reached) in every_path(&d, BrokerReq::Exit(4)).await {
        assert!(
            !reached,
            "Halted at once by an auth failure: {path} must refuse an exit"
        );
    }
    for (path, reached) in every_path(&d, BrokerReq::Cancel(5)).await {
        assert!(reached, "Halted: {path} still delivers a cancel");
    }
    let refused = kite.call(BrokerReq::Place(6)).await.unwrap_err();
    assert!(
        matches!(&refused, CallError::Refused { reason, .. } if reason.contains("orders disabled")),
        "{refused}"
    );
    // The plain execute_with_resilience fails closed on an order-sending breaker.
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let out = d
        .seawall
        .execute_with_resilience(
            "kite_api",
            || async move {
                r.store(true, Ordering::SeqCst);
                Ok::<_, Down>(1)
            },
            |_| None,
        )
        .await;
    assert!(out.is_err() && !ran.load(Ordering::SeqCst));
    d.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_gate_when_planted_ungated_path_then_ledger_check_catches_it() {
    // A planted violation: an "engine" that talks to the broker without the
    // handle. The broker-side ledger sees the order while Halted.
    let d = desk(false).await;
    set_mode(&d.seawall, "kite_api", TradingMode::Halted).await;
    let mut raw = LedgerBroker {
        ledger: Arc::clone(&d.ledger),
        token_expired: Arc::default(),
    };
    let before = d.ledger.lock().unwrap().len();
    let _ = raw.call(BrokerReq::Place(9)).await;
    let violations = d.ledger.lock().unwrap().len() - before;
    assert_eq!(violations, 1, "the ledger check catches an ungated order");
    d.seawall.shutdown().await;
}

/// Each order the broker received, with the release instant it was handed.
type ReleaseLedger = Arc<Mutex<Vec<(BrokerReq, Option<SystemTime>)>>>;

/// A broker whose quotes wait for the test's word, and whose ledger keeps
/// the release instant the runtime handed each order.
#[derive(Clone)]
struct QueueBroker {
    ledger: ReleaseLedger,
    entered: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

impl Service for QueueBroker {
    type Request = BrokerReq;
    type Response = u32;
    type Error = BrokerErr;
    type Policy = LedgerBrokerPolicy;
    async fn call(&mut self, request: BrokerReq) -> Result<u32, BrokerErr> {
        if request == BrokerReq::Quote {
            self.entered.notify_one();
            self.go.notified().await;
        } else {
            let released = seawall::modes::order_released_at();
            self.ledger.lock().unwrap().push((request, released));
        }
        Ok(1)
    }
}

impl Lifecycle for QueueBroker {}

#[tokio::test(start_paused = true)]
async fn test_gate_when_mode_tightens_while_order_waits_in_mailbox_then_refused_at_release_never_sent(
) {
    let mut config = Config::seed_defaults();
    config
        .services
        .retain(|name, _| name == "kite_api" || name == "market_data");
    let kite_cfg = config.services.get_mut("kite_api").unwrap();
    kite_cfg.rate_limit = None;
    kite_cfg.concurrency = 1;
    let broker = QueueBroker {
        ledger: Arc::default(),
        entered: Arc::default(),
        go: Arc::default(),
    };
    let (ledger, entered, go) = (
        Arc::clone(&broker.ledger),
        Arc::clone(&broker.entered),
        Arc::clone(&broker.go),
    );
    let seawall = Seawall::builder(config)
        .service("market_data", || Feed)
        .service("kite_api", move || broker.clone())
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<QueueBroker>("kite_api").unwrap();
    // An order released while Active carries its release instant.
    let before = SystemTime::now();
    kite.call(BrokerReq::Place(1)).await.unwrap();
    let released = ledger.lock().unwrap()[0]
        .1
        .expect("an order's release instant");
    assert!(released >= before && released <= SystemTime::now());
    assert!(
        seawall::modes::order_released_at().is_none(),
        "only inside a call"
    );
    // The one service actor is busy with a slow quote; an order admitted
    // while Active waits behind it in the mailbox.
    let slow = tokio::spawn({
        let kite = kite.clone();
        async move { kite.call(BrokerReq::Quote).await }
    });
    entered.notified().await;
    let waiting = tokio::spawn({
        let kite = kite.clone();
        async move { kite.call(BrokerReq::Place(7)).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!waiting.is_finished(), "the order waits in the mailbox");
    // The feed goes out: Reducing, new orders no longer allowed.
    set_mode(&seawall, "market_data", TradingMode::Reducing).await;
    go.notify_one();
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    let refused = waiting.await.unwrap().unwrap_err();
    assert!(
        matches!(&refused, CallError::Refused { reason, .. } if reason.contains("orders disabled")),
        "{refused}"
    );
    let sent: Vec<_> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        sent,
        vec![BrokerReq::Place(1)],
        "the waiting order never left"
    );
    // The refusal is not the broker's failure.
    let m = seawall.breaker("kite_api").unwrap().metrics();
    assert_eq!((m.failures, m.timeouts, m.crashes), (0, 0, 0));
    seawall.shutdown().await;
}

// ---- wrappers keep every policy; faults hit every path ----

#[test]
fn test_chaos_when_wrapping_then_every_policy_of_the_service_is_kept() {
    // The wrapper names the service's own policy type: it is kept whole, and
    // there is no method a wrapper could forget to forward.
    type Wrapped = <Chaos<LedgerBroker> as Service>::Policy;
    assert_eq!(
        std::any::TypeId::of::<Wrapped>(),
        std::any::TypeId::of::<<LedgerBroker as Service>::Policy>(),
    );
    let err = BrokerErr::Token;
    assert_eq!(
        Wrapped::classify(&err),
        LedgerBrokerPolicy::classify(&err),
        "classify"
    );
    assert!(Wrapped::is_auth_failure(&err), "is_auth_failure");
    for request in [
        BrokerReq::Quote,
        BrokerReq::Place(1),
        BrokerReq::Exit(1),
        BrokerReq::Cancel(1),
    ] {
        assert_eq!(
            Wrapped::is_idempotent(&request),
            LedgerBrokerPolicy::is_idempotent(&request),
            "is_idempotent({request:?})"
        );
        assert_eq!(
            Wrapped::order_intent(&request),
            LedgerBrokerPolicy::order_intent(&request),
            "order_intent({request:?})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn test_chaos_when_token_expires_then_trading_halts_through_the_wrapper() {
    let d = desk(true).await;
    let kite = d.seawall.handle::<Chaos<LedgerBroker>>("kite_api").unwrap();
    d.token_expired.store(true, Ordering::SeqCst);
    let _ = kite.call(BrokerReq::Quote).await;
    let mut modes = d.seawall.modes();
    modes
        .wait_for(|m| m.trading == TradingMode::Halted)
        .await
        .unwrap();
    assert!(matches!(
        kite.call(BrokerReq::Place(1)).await,
        Err(CallError::Refused { .. })
    ));
    assert_eq!(
        kite.state(),
        BreakerState::Closed,
        "an expired token does not trip"
    );
    d.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_chaos_when_outage_then_reconnects_and_health_checks_fail_too() {
    let plan = ChaosPlan::new(
        vec![ChaosPhase {
            from: Duration::ZERO,
            until: Duration::from_secs(60),
            probability: 1.0,
            fault: Fault::Error {
                kind: "NetworkException".into(),
            },
        }],
        1,
        |_: &str| Down,
    );
    let up = Arc::new(AtomicBool::new(true));
    let mut service = Chaos::new(
        Reachable {
            up: Arc::clone(&up),
        },
        Arc::clone(&plan),
    );
    assert!(
        service.reconnect().await.is_err(),
        "reconnect sees the outage"
    );
    assert!(
        service.health_check().await.is_err(),
        "health check sees it"
    );
    assert!(service.call(1).await.is_err(), "calls see it");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(service.health_check().await.unwrap(), Evidence::Observed);
}

// ---- live quotes, unknown outcomes ----

struct BadFeed {
    served: Arc<Mutex<Vec<f64>>>,
    next: Arc<Mutex<Vec<(f64, SystemTime)>>>,
}

impl Service for BadFeed {
    type Request = String;
    type Response = Quote;
    type Error = Down;
    type Policy = BadFeedPolicy;
    async fn call(&mut self, symbol: String) -> Result<Quote, Down> {
        let (price, at) = self.next.lock().unwrap().remove(0);
        self.served.lock().unwrap().push(price);
        Ok(Quote {
            instrument: symbol,
            price,
            exchange_time: at,
            received_at: tokio::time::Instant::now().into_std(),
        })
    }
}

/// How the breaker reads `BadFeed`.
pub struct BadFeedPolicy;

impl Policy<String, Quote, Down> for BadFeedPolicy {
    fn is_idempotent(_: &String) -> bool {
        true
    }
}

impl Lifecycle for BadFeed {}

#[tokio::test(start_paused = true)]
async fn test_live_quote_when_zero_nan_negative_or_epoch_then_failure_counted_and_never_live() {
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == "market_data");
    let now = SystemTime::now();
    let next = Arc::new(Mutex::new(vec![
        (101.5, now),
        (0.0, now),
        (f64::NAN, now),
        (-3.0, now),
        (99.0, SystemTime::UNIX_EPOCH),
        (98.0, now - Duration::from_secs(600)),
    ]));
    let served = Arc::new(Mutex::new(Vec::new()));
    let (n, s) = (Arc::clone(&next), Arc::clone(&served));
    let seawall = Seawall::builder(config)
        .service("market_data", move || BadFeed {
            served: Arc::clone(&s),
            next: Arc::clone(&n),
        })
        .start()
        .await
        .unwrap();
    let book = Arc::new(PriceBook::new(Duration::from_secs(5)));
    let feed = seawall
        .set_degradation::<BadFeed>("market_data", LastKnownPrice::new(Arc::clone(&book)))
        .unwrap();
    let first = feed.call("NSE:INFY".into()).await.unwrap();
    assert!(first.is_live());
    for _ in 0..5 {
        let reply = feed.call("NSE:INFY".into()).await.unwrap();
        let Reply::Fallback(fallback) = reply else {
            panic!("a bad live quote must never be Live");
        };
        assert_eq!(
            fallback.value.price, 101.5,
            "the last good price, with its age"
        );
        assert!(fallback.age.is_some());
        assert_eq!(fallback.strategy, StrategyKind::LastKnownPrice);
    }
    assert_eq!(served.lock().unwrap().len(), 6, "the feed served all six");
    let m = feed.handle().metrics();
    assert_eq!(
        (m.successes, m.failures),
        (1, 5),
        "each bad quote a feed failure"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_order_when_service_panics_after_receiving_it_then_unknown_and_not_retryable() {
    let mut config = kite_config(|s| s.concurrency = 1);
    config.runtime.auto_recovery_enabled = false;
    let (seawall, kite, probe) = start_scripted(config).await;
    let err = kite.call(Req::PlaceOrderThenPanic).await.unwrap_err();
    assert!(matches!(err, CallError::Unknown { .. }), "{err}");
    assert!(!err.is_retryable());
    tokio::time::sleep(Duration::from_secs(2)).await; // the service actor restarts
    let err = kite
        .call_with_retry(Req::PlaceOrderThenPanic)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unknown { .. }), "{err}");
    assert_eq!(
        probe.received(),
        2,
        "each order reached the service once, never re-sent"
    );
    // An idempotent read that panics is a plain crash, and may be retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = kite.call(Req::Panic).await.unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }), "{err}");
    seawall.shutdown().await;
}

// ---- each released order names the publication of the modes it was judged under ----

/// Each request, with the gate's release as its call saw it.
type Seen = Vec<(BrokerReq, Option<seawall::modes::Release>)>;

/// A broker that keeps, per order, the gate's release as the order saw it.
#[derive(Clone, Default)]
struct EpochBroker {
    seen: Arc<Mutex<Seen>>,
}

impl Service for EpochBroker {
    type Request = BrokerReq;
    type Response = u32;
    type Error = BrokerErr;
    type Policy = LedgerBrokerPolicy;

    async fn call(&mut self, request: BrokerReq) -> Result<u32, BrokerErr> {
        let release = seawall::modes::order_release();
        self.seen.lock().unwrap().push((request, release));
        Ok(1)
    }
}

impl Lifecycle for EpochBroker {}

#[tokio::test(start_paused = true)]
async fn test_release_when_modes_change_then_each_order_carries_the_epoch_it_was_judged_under() {
    let mut config = kite_config(|_| {});
    config.runtime.auto_recovery_enabled = false;
    let broker = EpochBroker::default();
    let b = broker.clone();
    let seawall = seawall::Seawall::builder(config)
        .service("kite_api", move || b.clone())
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<EpochBroker>("kite_api").unwrap();
    let control = seawall.control("kite_api").unwrap();
    let mut modes = seawall.modes();
    kite.call(BrokerReq::Place(1)).await.unwrap();
    control.force_open("test");
    modes
        .wait_for(|m| m.trading == TradingMode::Halted)
        .await
        .unwrap();
    let halted = modes.borrow().epoch;
    control.reset();
    modes
        .wait_for(|m| m.trading == TradingMode::Active)
        .await
        .unwrap();
    let active = modes.borrow().epoch;
    assert!(
        active > halted && halted > 0,
        "each publication has its own epoch"
    );
    kite.call(BrokerReq::Place(2)).await.unwrap();
    kite.call(BrokerReq::Quote).await.unwrap();
    let seen = broker.seen.lock().unwrap().clone();
    let epochs: Vec<_> = seen
        .iter()
        .map(|(r, rel)| (r.clone(), rel.map(|x| x.modes_epoch)))
        .collect();
    assert_eq!(
        epochs,
        vec![
            (BrokerReq::Place(1), Some(0)),
            (BrokerReq::Place(2), Some(active)),
            (BrokerReq::Quote, None),
        ],
        "orders carry the epoch of the Active publication that let them go; a quote is not an order"
    );
    seawall.shutdown().await;
}
