//! Reconfiguration without a restart: a reload applies in place, keeps what
//! the breakers learned, and an invalid one changes nothing.
//!
//! Every tree here runs the shipped `actors.toml` (auto-recovery on, all
//! four services), with the HTTP face on an ephemeral port.

mod support;

use seawall::config::Config;
use seawall::{BreakerState, Event, Seawall};
use std::sync::Arc;
use support::{register_all, wait_for, Probe, Req, Scripted};

/// The shipped file, listening on an ephemeral port, with a count window on
/// kite_api that never trips (so its contents can be watched).
fn shipped(kite_threshold: u32, window: u32) -> String {
    let text = include_str!("../actors.toml").replace("127.0.0.1:8080", "127.0.0.1:0");
    text.replace(
        "[services.kite_api]\nfailure_threshold = 5\n",
        &format!(
            "[services.kite_api]\nfailure_threshold = {kite_threshold}\n\
             rate_window = {{ calls = {window}, minimum_calls = {window}, failure_rate_threshold = 1.0 }}\n"
        ),
    )
}

fn no_env(_: &str) -> Option<String> {
    None
}

async fn start(
    text: &str,
    file: Option<std::path::PathBuf>,
) -> (Seawall, Vec<(String, Arc<Probe>)>) {
    let config = Config::from_toml_with_env(text, "actors.toml", no_env).expect("valid");
    assert!(
        config.runtime.auto_recovery_enabled,
        "the shipped file recovers"
    );
    let (mut builder, probes) = register_all(Seawall::builder(config.clone()), &config);
    if let Some(file) = file {
        builder = builder.config_file(file);
    }
    let seawall = builder
        .admin_token(Some("reload-test-token-0123456789".to_string()))
        .start()
        .await
        .expect("the tree starts");
    (seawall, probes)
}

#[tokio::test(start_paused = true)]
async fn test_reload_when_threshold_lowered_after_four_failures_then_next_failure_opens_and_history_kept(
) {
    let (seawall, probes) = start(&shipped(5, 20), None).await;
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let broker = &probes.iter().find(|(n, _)| n == "kite_api").unwrap().1;
    for _ in 0..4 {
        assert!(kite.call(Req::Fail).await.is_err());
    }
    let control = seawall.control("kite_api").unwrap();
    let before = control.metrics();
    assert_eq!(before.consecutive_failures, 4);
    assert_eq!((before.window_calls, before.window_failures), (4, 4));
    let version = seawall.health_report().config.version;

    let mut events = seawall.subscribe();
    // Threshold 5 → 3, and the window shrinks from 20 calls to 10.
    let summary = seawall
        .reload_from_str(&shipped(3, 10), no_env)
        .await
        .expect("a valid reload applies");
    assert_eq!(summary.changed, vec!["kite_api".to_string()]);
    assert_ne!(summary.version, version);
    let after = control.metrics();
    assert_eq!(
        after, before,
        "state, counters and window contents survive the reload"
    );
    assert_eq!(
        control.state(),
        BreakerState::Closed,
        "a reload alone never trips"
    );
    assert_eq!(control.config().failure_threshold, 3);
    let report = seawall.health_report();
    assert_eq!(report.config.version, summary.version);
    assert_eq!(report.config.reloads, 1);
    assert!(report.config.last_reload_at.is_some());
    assert!(matches!(
        wait_for(&mut events, |e| matches!(e, Event::ConfigReloaded(_))).await,
        Event::ConfigReloaded(s) if s == summary
    ));

    let sent = broker.received();
    assert!(kite.call(Req::Fail).await.is_err());
    assert_eq!(
        control.state(),
        BreakerState::Open,
        "the fifth failure trips at 3"
    );
    assert_eq!(
        broker.received(),
        sent + 1,
        "the failing call reached the broker"
    );
    match wait_for(&mut events, |e| matches!(e, Event::Transition { .. })).await {
        Event::Transition { transition, .. } => assert_eq!(
            transition.reason,
            seawall::breaker::TransitionReason::ConsecutiveFailures {
                count: 5,
                threshold: 3
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(kite.call(Req::Ok(1)).await.is_err(), "open: rejected");
    assert_eq!(
        broker.received(),
        sent + 1,
        "the rejected call never reached the broker"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_reload_when_invalid_then_nothing_changes_and_every_error_names_its_key() {
    let (seawall, _) = start(&shipped(5, 20), None).await;
    let control = seawall.control("kite_api").unwrap();
    let before = (seawall.config(), seawall.health_report().config);
    let mut events = seawall.subscribe();

    let bad = shipped(3, 20)
        .replace(
            "call_timeout = \"7s\"",
            "call_timeout = 7\nfailure_treshold = 2",
        )
        .replace("concurrency = 4\n", "concurrency = 0\n");
    let error = seawall.reload_from_str(&bad, no_env).await.unwrap_err();
    let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "services.kite_api.call_timeout",
        "services.kite_api.failure_treshold",
        "services.kite_api.concurrency",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(
        error.problems().iter().all(|p| !p.fix.is_empty()),
        "each says the fix"
    );

    // Valid values, but what a running tree cannot change.
    let unchangeable = shipped(3, 20)
        .replace("health_score_threshold = 80", "health_score_threshold = 70")
        .replace("concurrency = 4\n", "concurrency = 8\n");
    // ai_agents, registered in code, loses its tables.
    let (head, rest) = unchangeable.split_once("[services.ai_agents]").unwrap();
    let (_, tail) = rest.split_once("[services.market_data]").unwrap();
    let unchangeable = format!("{head}[services.market_data]{tail}");
    let error = seawall
        .reload_from_str(&unchangeable, no_env)
        .await
        .unwrap_err();
    let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "runtime.health_score_threshold",
        "services.kite_api.concurrency",
        "services.ai_agents",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let removed = error
        .problems()
        .iter()
        .find(|p| p.key == "services.ai_agents")
        .unwrap();
    assert!(
        removed.message.contains("registered in code"),
        "{removed:?}"
    );

    assert_eq!(*seawall.config(), *before.0, "the config is unchanged");
    assert_eq!(
        seawall.health_report().config,
        before.1,
        "the version is unchanged"
    );
    assert_eq!(
        control.config().failure_threshold,
        5,
        "the breaker is unchanged"
    );
    let refusals = [
        wait_for(&mut events, |e| matches!(e, Event::AdminAction { .. })).await,
        wait_for(&mut events, |e| matches!(e, Event::AdminAction { .. })).await,
    ];
    for event in refusals {
        let Event::AdminAction { reason, .. } = event else {
            unreachable!()
        };
        assert!(reason.unwrap().starts_with("refused"), "audited as refused");
    }
    assert!(
        events.try_recv().is_err(),
        "no ConfigReloaded for a refused reload"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_reload_when_table_added_then_removed_then_run_time_breaker_follows_the_file() {
    let text = shipped(5, 20);
    let (seawall, _) = start(&text, None).await;
    let added = format!("{text}\n[services.news_feed]\nfailure_threshold = 2\n");
    let summary = seawall.reload_from_str(&added, no_env).await.unwrap();
    assert_eq!(summary.added, vec!["news_feed".to_string()]);
    let news = seawall
        .control("news_feed")
        .expect("a run-time breaker now");
    for _ in 0..2 {
        let _ = seawall
            .execute_with_resilience_for(
                "news_feed",
                None,
                || async { Err::<(), _>(std::io::Error::other("down")) },
                |_| None,
            )
            .await;
    }
    assert_eq!(news.state(), BreakerState::Open, "it is a working breaker");

    let summary = seawall.reload_from_str(&text, no_env).await.unwrap();
    assert_eq!(summary.removed, vec!["news_feed".to_string()]);
    assert!(
        seawall.control("news_feed").is_none(),
        "removed with its table"
    );
    seawall.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn test_reload_when_rate_limit_raised_then_new_limit_starts_with_its_burst_spent() {
    let text = shipped(5, 20);
    let (seawall, probes) = start(&text, None).await;
    let kite = seawall.handle::<Scripted>("kite_api").unwrap();
    let broker = &probes.iter().find(|(n, _)| n == "kite_api").unwrap().1;
    assert!(kite.call(Req::Ok(1)).await.is_ok());
    let raised = text.replace(
        "default = { per_second = 10 }",
        "default = { per_second = 20 }",
    );
    seawall.reload_from_str(&raised, no_env).await.unwrap();
    let start = tokio::time::Instant::now();
    assert!(kite.call(Req::Ok(2)).await.is_ok());
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(50),
        "the first call after the reload waits one new period (1/20 s), no fresh burst: {:?}",
        start.elapsed()
    );
    assert_eq!(broker.received(), 2);
    seawall.shutdown().await;
}

/// One POST to the reload route: (status, body).
async fn post_reload(addr: std::net::SocketAddr, token: Option<&str>) -> (u16, String) {
    support::post(addr, "/api/v1/system/config/reload", token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_reload_when_file_edited_then_admin_route_and_sighup_apply_it_and_bad_edit_changes_nothing(
) {
    let dir = std::env::temp_dir().join(format!("seawall-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("actors.toml");
    std::fs::write(&file, shipped(5, 20)).unwrap();
    let (seawall, _) = start(&shipped(5, 20), Some(file.clone())).await;
    let addr = seawall.http_addr().unwrap();
    let control = seawall.control("kite_api").unwrap();
    let token = "reload-test-token-0123456789";

    assert_eq!(post_reload(addr, None).await.0, 401, "admin only");

    std::fs::write(
        &file,
        shipped(5, 20).replace("concurrency = 4\n", "concurrency = 0\nbogus = 1\n"),
    )
    .unwrap();
    let (status, body) = post_reload(addr, Some(token)).await;
    assert_eq!(status, 422, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"services.kite_api.concurrency"), "{keys:?}");
    assert!(keys.contains(&"services.kite_api.bogus"), "{keys:?}");
    assert_eq!(control.config().failure_threshold, 5);

    std::fs::write(&file, shipped(4, 20)).unwrap();
    let (status, body) = post_reload(addr, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(control.config().failure_threshold, 4);
    let report: serde_json::Value = tokio::task::spawn_blocking(move || {
        let body = ureq::get(&format!("http://{addr}/api/v1/system/health/comprehensive"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(report["config"]["reloads"], 1);
    assert!(report["config"]["last_reload_at"].is_string());

    // SIGHUP, as systemd's ExecReload sends it.
    seawall.reload_on_sighup().expect("SIGHUP is watched");
    let mut events = seawall.subscribe();
    std::fs::write(&file, shipped(2, 20)).unwrap();
    let pid = std::process::id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let reloaded = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        wait_for(&mut events, |e| matches!(e, Event::ConfigReloaded(_))),
    )
    .await
    .expect("the SIGHUP reload within 10 s");
    let Event::ConfigReloaded(summary) = reloaded else {
        unreachable!()
    };
    assert_eq!(summary.changed, vec!["kite_api".to_string()]);
    assert_eq!(control.config().failure_threshold, 2);
    seawall.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
