//! Chaos soak: seeded random fault schedules hit all four services while the
//! demo engine trades, in virtual time. In CI it plays 10 virtual minutes per
//! seed for 3 seeds (a few seconds of wall time); set SEAWALL_SOAK_SECONDS
//! and SEAWALL_SOAK_SEEDS for longer runs.

use seawall::config::Config;
use seawall::demo::{run, DemoOptions};
use std::time::Duration;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[tokio::test(start_paused = true)]
async fn test_soak_when_random_faults_hit_all_services_then_invariants_hold_and_tree_closes() {
    let seconds = env_u64("SEAWALL_SOAK_SECONDS", 600);
    let seeds = env_u64("SEAWALL_SOAK_SEEDS", 3);
    let rss_before = rss_bytes();
    for seed in 0..seeds {
        let db_path =
            std::env::temp_dir().join(format!("seawall-soak-{}-{seed}.db", std::process::id()));
        let _ = std::fs::remove_file(&db_path);
        let mut config = Config::seed_defaults();
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
        })
        .await
        .expect("no panic escapes and the engine completes");
        let report = summary.render();
        assert_eq!(
            summary.calls_made, summary.replies_received,
            "every call answered once\n{report}"
        );
        assert_eq!(summary.orders_placed_while_halted, 0, "{report}");
        assert_eq!(summary.duplicate_orders, 0, "no order sent twice\n{report}");
        assert_eq!(summary.non_positive_prices_used, 0, "{report}");
        assert_eq!(summary.stale_prices_used, 0, "{report}");
        assert!(
            summary.all_recovered(),
            "all Closed after the faults stop (seed {seed})\n{report}"
        );
        let tripped = summary.services.values().filter(|s| s.trips > 0).count();
        assert!(tripped >= 2, "the faults must bite (seed {seed})\n{report}");
        let _ = std::fs::remove_file(db_path);
    }
    let growth = rss_bytes().saturating_sub(rss_before);
    assert!(
        growth < 256 * 1024 * 1024,
        "memory grew by {} MiB",
        growth / 1024 / 1024
    );
}
