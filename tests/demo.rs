//! The demo trading engine's built-in scenario, in compressed virtual time:
//! the trading rules hold and every breaker that tripped recovers.

use seawall::config::Config;
use seawall::demo::{run, DemoOptions};
use std::time::Duration;

fn options(scenario: &str, seconds: u64) -> DemoOptions {
    let db_path = std::env::temp_dir().join(format!(
        "seawall-demo-test-{}-{scenario}.db",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&db_path);
    DemoOptions {
        config: Config::seed_defaults(),
        duration: Some(Duration::from_secs(seconds)),
        scenario: scenario.to_string(),
        db_path,
        compress: true,
        status_line: false,
        admin_token: None,
        seed: 42,
    }
}

#[tokio::test(start_paused = true)]
async fn test_demo_when_default_scenario_then_rules_hold_and_all_recover() {
    let opts = options("default", 60);
    let path = opts.db_path.clone();
    let summary = run(opts).await.expect("demo runs");
    println!("{}", summary.render());
    assert_eq!(
        summary.orders_placed_while_halted, 0,
        "no order placed while Halted"
    );
    assert_eq!(
        summary.non_positive_prices_used, 0,
        "no price of 0 or less used"
    );
    assert!(
        summary.all_recovered(),
        "every tripped breaker recovered:\n{}",
        summary.render()
    );
    for name in ["kite_api", "database", "ai_agents", "market_data"] {
        assert!(
            summary.services[name].trips >= 1,
            "{name} never tripped:\n{}",
            summary.render()
        );
    }
    assert!(summary.orders_placed > 0);
    assert!(
        summary.orders_refused_while_halted > 0,
        "the kite outage halted orders"
    );
    assert!(
        summary.services["market_data"].degraded_replies > 0,
        "last-known prices were used"
    );
    assert!(
        summary.services["ai_agents"].degraded_replies > 0,
        "HOLD decisions were used"
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test(start_paused = true)]
async fn test_demo_when_unknown_scenario_then_error_names_choices() {
    let err = run(options("apocalypse", 5)).await.unwrap_err();
    assert!(err.to_string().contains("default"), "{err}");
}
