//! The demo trading engine against a Kite-compatible broker over real HTTP
//! on loopback, with the shipped actors.toml (auto-recovery on), in real
//! time: every invariant is read from the dependency's side (the broker's
//! ledger, the feed's own count, the database's rows).

use seawall::config::Config;
use seawall_demo::{run, DemoOptions, PlantedViolation};
use std::time::Duration;

fn options(scenario: &str, seconds: u64, seed: u64) -> DemoOptions {
    let db_path = std::env::temp_dir().join(format!(
        "seawall-demo-test-{}-{scenario}-{seed}.db",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&db_path);
    let config = Config::seed_defaults();
    assert!(config.runtime.auto_recovery_enabled, "the shipped config");
    DemoOptions {
        config,
        duration: Some(Duration::from_secs(seconds)),
        scenario: scenario.to_string(),
        db_path,
        compress: true,
        status_line: false,
        admin_token: None,
        seed,
        plant: None,
        stop: Default::default(),
        config_file: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_demo_when_default_scenario_over_http_then_rules_hold_on_the_broker_side_and_all_recover(
) {
    let opts = options("default", 40, 42);
    let path = opts.db_path.clone();
    let summary = run(opts).await.expect("demo runs");
    let report = summary.render();
    println!("{report}");
    assert!(
        summary.violations().is_empty(),
        "{:?}\n{report}",
        summary.violations()
    );
    assert_eq!(
        summary.orders.received_by_broker_while_halted, 0,
        "{report}"
    );
    assert_eq!(summary.prices.bad_prices_used, 0, "{report}");
    assert!(
        summary.prices.bad_quotes_injected > 0,
        "the feed served bad quotes\n{report}"
    );
    assert!(summary.services["kite_api"].trips >= 1, "{report}");
    for (name, s) in &summary.services {
        assert_eq!(s.flaps, 0, "{name} flapped\n{report}");
        assert_eq!(s.final_state, "closed", "{name}\n{report}");
    }
    assert!(summary.orders.placed > 0, "{report}");
    assert!(
        summary.orders.refused_while_halted > 0,
        "the outage halted orders\n{report}"
    );
    assert!(
        summary.orders.unknown > 0,
        "ambiguous orders happened\n{report}"
    );
    assert_eq!(
        summary.orders.reconciled, summary.orders.unknown,
        "every unknown order was settled by tag\n{report}"
    );
    assert_eq!(summary.orders.duplicate_orders, 0, "{report}");
    assert_eq!(summary.orders.mismatched_replies, 0, "{report}");
    assert!(
        summary.services["market_data"].degraded_replies > 0,
        "last-known prices were used\n{report}"
    );
    assert!(
        summary.services["kite_api"].degraded_replies > 0,
        "cached broker quotes were served during the outage\n{report}"
    );
    assert!(
        summary.trading.reports > 0,
        "trading metrics reported\n{report}"
    );
    assert!(summary.trading.order_reject_rate.is_some(), "{report}");
    assert!(
        !summary.protected_positions.is_empty(),
        "open positions got broker-side stops when trading left Active\n{report}"
    );
    assert_eq!(
        summary.orders.protective_stops_at_broker,
        summary.protected_positions.len() as u64,
        "the broker holds every stop the summary lists\n{report}"
    );
    // Every placed order is in the database, once (journaled writes replayed).
    assert_eq!(summary.trades_recorded, summary.orders.placed, "{report}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_demo_when_engine_skips_the_order_gate_then_broker_ledger_catches_it() {
    let mut opts = options("default", 12, 43);
    opts.plant = Some(PlantedViolation::SkipOrderGate);
    let summary = run(opts).await.expect("demo runs");
    assert!(
        summary.orders.received_by_broker_while_halted > 0,
        "the planted violation must be caught:\n{}",
        summary.render()
    );
    assert!(!summary.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_demo_when_engine_skips_price_validation_then_dependencies_catch_bad_prices() {
    let mut opts = options("default", 30, 44);
    opts.plant = Some(PlantedViolation::SkipPriceValidation);
    let summary = run(opts).await.expect("demo runs");
    assert!(summary.prices.bad_quotes_injected > 0);
    assert!(
        summary.prices.bad_prices_used > 0,
        "the planted violation must be caught:\n{}",
        summary.render()
    );
}

#[tokio::test]
async fn test_demo_when_unknown_scenario_then_error_names_choices() {
    let err = run(options("apocalypse", 5, 1)).await.unwrap_err();
    assert!(err.to_string().contains("default"), "{err}");
}
