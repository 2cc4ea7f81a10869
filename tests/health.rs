//! Health and modes end to end on paused time: the score, the status, the
//! trading modes and the recommendations follow a tripped broker breaker
//! and its recovery; mode changes are event-driven and immediate; alerts.

mod support;

use seawall::config::Config;
use seawall::event::Alert;
use seawall::health::HealthStatus;
use seawall::modes::{DatabaseMode, DecisionMode, PriceMode, TradingMode};
use seawall::{BreakerState, Event, Seawall, ServiceHandle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use support::{Probe, Req, Scripted};
use tokio::sync::broadcast;
use tokio::time::Instant;

struct Tree {
    seawall: Seawall,
    probes: Vec<(String, Arc<Probe>)>,
}

impl Tree {
    fn handle(&self, name: &str) -> ServiceHandle<Scripted> {
        self.seawall.handle::<Scripted>(name).unwrap()
    }

    fn probe(&self, name: &str) -> &Arc<Probe> {
        &self.probes.iter().find(|(n, _)| n == name).unwrap().1
    }
}

/// The shipped four services, each a scripted service.
async fn tree(edit: impl FnOnce(&mut Config)) -> Tree {
    let mut config = Config::seed_defaults();
    config.runtime.seed = Some(11);
    edit(&mut config);
    // A fixed machine: the score never depends on the one running the test.
    let builder = Seawall::builder(config.clone()).system_sampler(support::calm_machine());
    let (builder, probes) = support::register_all(builder, &config);
    Tree {
        seawall: builder.start().await.unwrap(),
        probes,
    }
}

async fn wait_for(events: &mut broadcast::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(3600), events.recv())
            .await
            .expect("event within an hour of virtual time")
            .expect("bus open");
        if want(&event) {
            return event;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn test_report_when_all_in_service_then_healthy_and_active() {
    let t = tree(|_| {}).await;
    let report = t.seawall.health_report();
    assert_eq!(
        report.status,
        HealthStatus::Healthy,
        "{:?}",
        report.components
    );
    assert!(report.health_score >= 80);
    assert_eq!(report.trading.status, TradingMode::Active);
    assert!(report.trading.trading_enabled);
    assert_eq!(report.circuit_breakers.len(), 4);
    assert!(
        report.recommendations.is_empty(),
        "{:?}",
        report.recommendations
    );
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "status",
        "health_score",
        "timestamp",
        "response_time_ms",
        "resilience",
        "system_metrics",
        "services",
        "trading",
        "recommendations",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    for field in [
        "overall_status",
        "services",
        "circuit_breakers",
        "timestamp",
    ] {
        assert!(
            json["resilience"].get(field).is_some(),
            "missing resilience.{field}"
        );
    }
    let kite = &json["resilience"]["services"]["kite_api"];
    for field in [
        "state",
        "success_rate",
        "consecutive_failures",
        "avg_response_time",
        "last_success",
        "last_failure",
    ] {
        assert!(
            kite.get(field).is_some(),
            "missing resilience.services.kite_api.{field}"
        );
    }
    for (group, fields) in [
        ("cpu", &["usage_percent", "count", "status"][..]),
        (
            "memory",
            &["usage_percent", "available_gb", "total_gb", "status"][..],
        ),
        (
            "disk",
            &["usage_percent", "free_gb", "total_gb", "status"][..],
        ),
        (
            "network",
            &["bytes_sent", "bytes_recv", "packets_sent", "packets_recv"][..],
        ),
    ] {
        for field in fields {
            assert!(
                json["system_metrics"][group].get(*field).is_some(),
                "missing {group}.{field}"
            );
        }
    }
    for field in ["status", "trading_enabled", "last_check"] {
        assert!(
            json["trading"].get(field).is_some(),
            "missing trading.{field}"
        );
    }
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_modes_when_kite_trips_then_halted_unhealthy_and_back_to_active_after_recovery() {
    // Calls do the probing here (health-check confirmation has its own test).
    let t = tree(|c| {
        let kite = c.services.get_mut("kite_api").unwrap();
        kite.recovery.confirm_with_health_checks = false;
    })
    .await;
    let kite = t.handle("kite_api");
    let mut modes = t.seawall.modes();
    let mut events = t.seawall.subscribe();
    let probe = t.probe("kite_api");
    probe.down.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        kite.call(Req::Fail).await.unwrap_err();
    }
    assert_eq!(kite.state(), BreakerState::Open);
    let tripped_at = Instant::now();
    let halted = tokio::time::timeout(
        Duration::from_millis(1),
        modes.wait_for(|m| m.trading == TradingMode::Halted),
    )
    .await
    .expect("Halted within 1 ms of the tripping outcome")
    .unwrap()
    .clone();
    assert_eq!(
        tripped_at.elapsed(),
        Duration::ZERO,
        "driven by the event, not a poll"
    );
    assert!(
        halted.reason.contains("kite_api breaker open"),
        "{}",
        halted.reason
    );

    let report = t.seawall.health_report();
    assert!(report.health_score < 80, "score {}", report.health_score);
    assert_ne!(report.status, HealthStatus::Healthy);
    assert_eq!(report.trading.status, TradingMode::Halted);
    assert!(!report.trading.trading_enabled);
    assert!(
        report
            .recommendations
            .iter()
            .any(|r| r.starts_with("kite_api")),
        "{:?}",
        report.recommendations
    );
    let alert = wait_for(&mut events, |e| {
        matches!(e, Event::Alert(Alert::ScoreCrossed { below: true, .. }))
    })
    .await;
    let Event::Alert(Alert::ScoreCrossed {
        recommendations, ..
    }) = alert
    else {
        unreachable!()
    };
    assert!(recommendations.iter().any(|r| r.contains("kite_api")));

    // The broker comes back: recovery → HalfOpen (still Halted: unproven) → Closed → Active.
    probe.down.store(false, Ordering::SeqCst);
    wait_for(&mut events, |e| matches!(e, Event::Transition { transition, .. } if transition.to == BreakerState::HalfOpen)).await;
    assert_eq!(
        t.seawall.modes().borrow().trading,
        TradingMode::Halted,
        "fail closed while probing"
    );
    for i in 0..3 {
        kite.call(Req::Ok(i)).await.unwrap();
    }
    modes
        .wait_for(|m| m.trading == TradingMode::Active)
        .await
        .unwrap();
    let report = t.seawall.health_report();
    assert_eq!(report.trading.status, TradingMode::Active);
    assert!(report.health_score >= 80, "{}", report.health_score);
    wait_for(&mut events, |e| {
        matches!(e, Event::Alert(Alert::ScoreCrossed { below: false, .. }))
    })
    .await;
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_modes_when_each_service_out_then_default_mapping_applies() {
    let t = tree(|_| {}).await;
    let mut modes = t.seawall.modes();
    for name in ["market_data", "ai_agents", "database"] {
        t.seawall.breaker(name).unwrap().force_open("test");
    }
    let m = modes
        .wait_for(|m| {
            m.database == DatabaseMode::ReadOnly
                // The shipped ai_agents config is technical-only (the seed's
                // "technical indicators only"); HOLD is its fallback's own
                // answer when no price history exists.
                && m.decision == DecisionMode::TechnicalOnly
                && m.price == PriceMode::LastKnown
        })
        .await
        .unwrap()
        .clone();
    assert_eq!(
        m.trading,
        TradingMode::Reducing,
        "stale prices: reduce exposure only"
    );
    let report = t.seawall.health_report();
    assert_ne!(report.status, HealthStatus::Healthy);
    for name in ["market_data", "ai_agents", "database"] {
        assert!(
            report.recommendations.iter().any(|r| r.starts_with(name)),
            "{name}"
        );
        t.seawall.breaker(name).unwrap().reset();
    }
    modes.wait_for(|m| !m.is_degraded()).await.unwrap();
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_modes_when_ai_configured_hold_only_then_hold_not_technical() {
    let t = tree(|c| {
        c.services
            .get_mut("ai_agents")
            .unwrap()
            .degradation
            .technical_only = false;
    })
    .await;
    let mut modes = t.seawall.modes();
    t.seawall.breaker("ai_agents").unwrap().force_open("test");
    modes
        .wait_for(|m| m.decision == DecisionMode::Hold)
        .await
        .unwrap();
    assert_eq!(modes.borrow().trading, TradingMode::Active);
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_escalation_when_restarts_exhausted_then_alert_published() {
    let t = tree(|c| {
        let kite = c.services.get_mut("kite_api").unwrap();
        kite.concurrency = 1;
        kite.restart.max_restarts = 0;
        c.runtime.auto_recovery_enabled = false;
    })
    .await;
    let mut events = t.seawall.subscribe();
    t.handle("kite_api").call(Req::Panic).await.unwrap_err();
    let alert = wait_for(&mut events, |e| {
        matches!(e, Event::Alert(Alert::Escalation { .. }))
    })
    .await;
    assert_eq!(alert.service(), "kite_api");
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_health_checks_when_interval_passes_then_results_in_report() {
    let t = tree(|c| {
        c.runtime.health_check_interval = Duration::from_secs(10);
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let report = t.seawall.health_report();
    for name in ["kite_api", "database", "ai_agents", "market_data"] {
        assert_eq!(report.services[name].status, "healthy", "{name}");
        assert!(t.probe(name).health_checks.load(Ordering::SeqCst) >= 1);
    }
    t.seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_trading_metrics_when_reported_then_scored_and_shown() {
    let t = tree(|_| {}).await;
    let before = t.seawall.health_report().components.trading;
    t.seawall
        .report_trading_metrics(seawall::health::TradingMetrics {
            order_reject_rate: Some(0.5),
            last_order_ack_age: Some(Duration::from_secs(600)),
            last_reconciliation_age: Some(Duration::from_secs(3600)),
        });
    let mut after = before;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        after = t.seawall.health_report().components.trading;
        if after != before {
            break;
        }
    }
    assert_eq!(before, 10.0);
    assert_eq!(after, 0.0);
    assert!(t.seawall.health_report().trading.last_check.is_some());
    t.seawall.shutdown().await;
}

/// A feed that answers calls but whose health check reports stale data.
struct StaleFeed(Arc<std::sync::atomic::AtomicBool>);

impl seawall::Service for StaleFeed {
    type Request = ();
    type Response = ();
    type Error = support::TestError;
    type Policy = seawall::DefaultPolicy;
    async fn call(&mut self, _: ()) -> Result<(), support::TestError> {
        Ok(())
    }
}

impl seawall::Lifecycle for StaleFeed {
    async fn health_check(&mut self) -> Result<seawall::Evidence, support::TestError> {
        if self.0.load(Ordering::SeqCst) {
            Err(support::TestError::Down)
        } else {
            Ok(seawall::Evidence::Observed)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn test_modes_when_market_data_stale_without_a_trip_then_last_known_and_reducing() {
    let stale = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = Arc::clone(&stale);
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == "market_data");
    config.runtime.health_check_interval = Duration::from_secs(5);
    let seawall = Seawall::builder(config)
        .service("market_data", move || StaleFeed(Arc::clone(&s)))
        .start()
        .await
        .unwrap();
    let mut modes = seawall.modes();
    stale.store(true, Ordering::SeqCst);
    let m = modes
        .wait_for(|m| m.price == PriceMode::LastKnown)
        .await
        .unwrap()
        .clone();
    assert_eq!(m.trading, TradingMode::Reducing);
    assert!(
        m.reason.contains("market_data health check failing"),
        "{}",
        m.reason
    );
    assert_eq!(
        seawall.breaker("market_data").unwrap().state(),
        BreakerState::Closed,
        "no trip needed"
    );
    stale.store(false, Ordering::SeqCst);
    modes
        .wait_for(|m| m.price == PriceMode::Live)
        .await
        .unwrap();
    seawall.shutdown().await;
}

/// A broker whose token can expire.
struct Broker(Arc<std::sync::atomic::AtomicBool>);

#[derive(Debug, thiserror::Error)]
#[error("TokenException: access token expired")]
struct TokenExpired;

impl seawall::Service for Broker {
    type Request = ();
    type Response = ();
    type Error = TokenExpired;
    type Policy = BrokerPolicy;
    async fn call(&mut self, _: ()) -> Result<(), TokenExpired> {
        if self.0.load(Ordering::SeqCst) {
            Err(TokenExpired)
        } else {
            Ok(())
        }
    }
}

/// How the breaker reads `Broker`.
pub struct BrokerPolicy;

impl seawall::Policy<(), (), TokenExpired> for BrokerPolicy {
    fn classify(_: &TokenExpired) -> seawall::Outcome {
        seawall::Outcome::Ignored
    }
    fn is_auth_failure(_: &TokenExpired) -> bool {
        true
    }
}

impl seawall::Lifecycle for Broker {}

#[tokio::test(start_paused = true)]
async fn test_auth_failure_when_token_expires_then_alert_and_halt_without_trip_until_success() {
    let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let e = Arc::clone(&expired);
    let mut config = Config::seed_defaults();
    config.services.retain(|name, _| name == "kite_api");
    let seawall = Seawall::builder(config)
        .service("kite_api", move || Broker(Arc::clone(&e)))
        .start()
        .await
        .unwrap();
    let kite = seawall.handle::<Broker>("kite_api").unwrap();
    let mut events = seawall.subscribe();
    let mut modes = seawall.modes();
    expired.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        kite.call(()).await.unwrap_err();
    }
    assert_eq!(
        kite.state(),
        BreakerState::Closed,
        "an expired token does not trip"
    );
    let halted = modes
        .wait_for(|m| m.trading == TradingMode::Halted)
        .await
        .unwrap()
        .clone();
    assert!(halted.reason.contains("auth failure"), "{}", halted.reason);
    wait_for(&mut events, |e| {
        matches!(e, Event::Alert(Alert::Auth { .. }))
    })
    .await;
    expired.store(false, Ordering::SeqCst);
    kite.call(()).await.unwrap();
    modes
        .wait_for(|m| m.trading == TradingMode::Active)
        .await
        .unwrap();
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_score_when_sampler_reports_full_disk_then_system_component_drops() {
    let config = Config::seed_defaults();
    let builder =
        Seawall::builder(config.clone()).system_sampler(support::machine(10.0, 40.0, 99.0));
    let (builder, _) = support::register_all(builder, &config);
    let seawall = builder.start().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let report = seawall.health_report();
    assert!(
        (report.components.system - 20.0).abs() < 1e-9,
        "a disk at 99 % takes its 10 points: {:?}",
        report.components
    );
    seawall.shutdown().await;
}
