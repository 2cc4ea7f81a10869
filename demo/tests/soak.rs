//! Chaos soak: seeded random fault schedules hit all four services — the
//! broker over real HTTP (refused connections, 5xx, 429, slow answers, an
//! expired token, placed-but-timed-out orders, a client crash after an order
//! was sent), bad quotes from the feed, slow and failing database queries —
//! while the demo engine trades with the shipped actors.toml, auto-recovery
//! on. Real time (the broker is a real socket); 2 seeds × 30 s in CI, set
//! SEAWALL_SOAK_SECONDS and SEAWALL_SOAK_SEEDS for longer runs. Every
//! invariant is read from the dependency's side.

use seawall::config::Config;
use seawall_demo::{run, DemoOptions};
use std::time::Duration;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn soak(seed: u64) {
    let seconds = env_u64("SEAWALL_SOAK_SECONDS", 30);
    let db_path =
        std::env::temp_dir().join(format!("seawall-soak-{}-{seed}.db", std::process::id()));
    let _ = std::fs::remove_file(&db_path);
    let mut config = Config::seed_defaults();
    assert!(config.runtime.auto_recovery_enabled);
    config.runtime.seed = Some(seed);
    let summary = run(DemoOptions {
        config,
        duration: Some(Duration::from_secs(seconds)),
        scenario: "random".to_string(),
        db_path: db_path.clone(),
        compress: true,
        status_line: false,
        admin_token: None,
        seed,
        plant: None,
        stop: Default::default(),
        config_file: None,
    })
    .await
    .expect("no panic escapes and the engine completes");
    let report = summary.render();
    println!("seed {seed}\n{report}");
    assert!(
        summary.violations().is_empty(),
        "seed {seed}: {:?}\n{report}",
        summary.violations()
    );
    assert_eq!(
        summary.orders.reconciled, summary.orders.unknown,
        "every unknown order settled by tag\n{report}"
    );
    assert_eq!(
        summary.trades_recorded, summary.orders.placed,
        "every placed order recorded once\n{report}"
    );
    assert!(
        summary.all_recovered(),
        "all Closed after the faults stop (seed {seed})\n{report}"
    );
    let tripped = summary.services.values().filter(|s| s.trips > 0).count();
    assert!(tripped >= 1, "the faults must bite (seed {seed})\n{report}");
    assert!(
        summary.prices.bad_quotes_injected > 0,
        "the feed served bad quotes (seed {seed})\n{report}"
    );
    let _ = std::fs::remove_file(db_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_soak_when_random_faults_hit_all_services_then_invariants_hold_and_tree_closes() {
    let seeds = env_u64("SEAWALL_SOAK_SEEDS", 2);
    let runs: Vec<_> = (0..seeds).map(|seed| tokio::spawn(soak(seed))).collect();
    for run in runs {
        run.await.expect("soak run");
    }
}
