//! The HTTP endpoints on an ephemeral loopback port: status codes, JSON
//! fields, auth, probes and metrics.

mod support;

use seawall::config::{Config, HttpConfig};
use seawall::modes::TradingMode;
use seawall::Seawall;

async fn start(token: Option<&str>) -> (Seawall, String) {
    let mut config = Config::seed_defaults();
    config.runtime.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_remote_admin: false,
        ..HttpConfig::default()
    });
    config.runtime.auto_recovery_enabled = false;
    let builder = Seawall::builder(config.clone())
        .admin_token(token.map(str::to_string))
        .system_sampler(support::calm_machine());
    let (builder, _) = support::register_all(builder, &config);
    let seawall = builder.start().await.unwrap();
    let base = format!("http://{}", seawall.http_addr().expect("listening"));
    (seawall, base)
}

/// One request: (status, body). Runs the blocking client off the runtime.
async fn request(
    method: &'static str,
    url: String,
    token: Option<&'static str>,
    body: Option<&'static str>,
) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match method {
            "GET" => {
                let mut r = agent.get(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                r.call()
            }
            _ => {
                let mut r = agent.post(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                match body {
                    Some(b) => r.header("Content-Type", "application/json").send(b),
                    None => r.send_empty(),
                }
            }
        }
        .expect("request completes");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    })
    .await
    .unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const CB: &str = "/api/v1/system/health/circuit-breakers";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_health_endpoints_when_healthy_then_200_with_seed_fields() {
    let (seawall, base) = start(None).await;
    let (code, body) = request(
        "GET",
        format!("{base}/api/v1/system/health/comprehensive"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let report = json(&body);
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
        assert!(report.get(field).is_some(), "missing {field}");
    }
    let (code, body) = request("GET", format!("{base}{CB}"), None, None).await;
    assert_eq!(code, 200);
    let breakers = json(&body);
    assert!(breakers.get("timestamp").is_some());
    let kite = &breakers["circuit_breakers"]["kite_api"];
    for field in [
        "state",
        "failure_threshold",
        "success_threshold",
        "timeout",
        "metrics",
        "state_changed_at",
        "open_until",
    ] {
        assert!(kite.get(field).is_some(), "missing kite_api.{field}");
    }
    assert_eq!(kite["state"], "closed");
    assert_eq!(kite["failure_threshold"], 5);
    assert_eq!(kite["timeout"], 300.0);
    for field in [
        "success_count",
        "failure_count",
        "total_requests",
        "success_rate",
        "consecutive_failures",
        "avg_response_time",
        "p50_response_time",
        "p99_response_time",
        "last_success",
        "last_failure",
    ] {
        assert!(
            kite["metrics"].get(field).is_some(),
            "missing metrics.{field}"
        );
    }
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_routes_when_no_token_configured_then_403_naming_the_variable() {
    let (seawall, base) = start(None).await;
    let (code, body) = request(
        "POST",
        format!("{base}{CB}/kite_api/reset"),
        Some("anything"),
        None,
    )
    .await;
    assert_eq!(code, 403);
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("SEAWALL_ADMIN_TOKEN"));
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_routes_when_token_missing_or_wrong_then_401_and_right_then_acts() {
    let (seawall, base) = start(Some("s3cret-token-0123456789abcdef")).await;
    let url = format!("{base}{CB}/kite_api/force-open");
    let (code, body) = request("POST", url.clone(), None, None).await;
    assert_eq!(code, 401, "{body}");
    assert!(json(&body)["detail"].is_string());
    let (code, _) = request("POST", url.clone(), Some("wrong"), None).await;
    assert_eq!(code, 401);
    assert_eq!(
        seawall.breaker("kite_api").unwrap().state(),
        seawall::BreakerState::Closed
    );

    let (code, body) = request(
        "POST",
        url,
        Some("s3cret-token-0123456789abcdef"),
        Some(r#"{"reason":"exchange maintenance"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["new_state"], "forced_open");
    let control = seawall.breaker("kite_api").unwrap();
    assert_eq!(control.state(), seawall::BreakerState::ForcedOpen);
    assert_eq!(
        control.metrics().manual_reason.as_deref(),
        Some("exchange maintenance")
    );

    let (code, body) = request(
        "POST",
        format!("{base}{CB}/kite_api/reset"),
        Some("s3cret-token-0123456789abcdef"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let reset = json(&body);
    assert_eq!(reset["new_state"], "closed");
    assert!(reset["message"].is_string() && reset["timestamp"].is_string());

    let (code, body) = request(
        "POST",
        format!("{base}{CB}/database/disable"),
        Some("s3cret-token-0123456789abcdef"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["new_state"], "disabled");

    let (code, body) = request(
        "POST",
        format!("{base}{CB}/nope/reset"),
        Some("s3cret-token-0123456789abcdef"),
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert!(json(&body)["detail"].as_str().unwrap().contains("nope"));

    let (code, body) = request(
        "POST",
        format!("{base}{CB}/kite_api/force-open"),
        Some("s3cret-token-0123456789abcdef"),
        Some("{not json"),
    )
    .await;
    assert_eq!(code, 400);
    assert!(json(&body)["detail"].is_string());
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_probes_when_halted_then_readyz_503_comprehensive_503_livez_200() {
    let (seawall, base) = start(Some(TOKEN)).await;
    let (code, body) = request("GET", format!("{base}/readyz"), None, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["ready"], true);

    seawall.breaker("kite_api").unwrap().force_open("test");
    seawall
        .modes()
        .wait_for(|m| m.trading == TradingMode::Halted)
        .await
        .unwrap();
    let (code, body) = request("GET", format!("{base}/readyz"), None, None).await;
    assert_eq!(code, 503, "{body}");
    let ready = json(&body);
    assert_eq!(ready["ready"], false);
    assert!(ready["reason"].as_str().unwrap().contains("kite_api"));
    let (code, body) = request(
        "GET",
        format!("{base}/api/v1/system/health/comprehensive"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert_ne!(json(&body)["status"], "healthy");
    let (code, body) = request("GET", format!("{base}/livez"), None, None).await;
    assert_eq!(code, 200, "liveness never depends on dependencies: {body}");
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_metrics_when_scraped_then_prometheus_families_with_help_and_type() {
    let (seawall, base) = start(None).await;
    seawall.breaker("market_data").unwrap().force_open("test");
    let (code, text) = request("GET", format!("{base}/metrics"), None, None).await;
    assert_eq!(code, 200);
    for family in [
        "seawall_circuitbreaker_state",
        "seawall_circuitbreaker_calls_seconds",
        "seawall_circuitbreaker_not_permitted_calls_total",
        "seawall_health_score",
        "seawall_trading_mode",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }
    assert!(
        text.contains("seawall_circuitbreaker_state{name=\"market_data\",state=\"forced_open\"} 1")
    );
    assert!(text.contains("seawall_circuitbreaker_state{name=\"market_data\",state=\"closed\"} 0"));
    assert!(text.contains(
        "seawall_circuitbreaker_calls_seconds_count{name=\"kite_api\",kind=\"successful\"}"
    ));
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bad_path_or_method_when_requested_then_json_error_not_panic() {
    let (seawall, base) = start(Some(TOKEN)).await;
    let (code, body) = request("GET", format!("{base}/api/v1/nothing"), None, None).await;
    assert_eq!(code, 404);
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing"));
    let (code, body) = request("GET", format!("{base}{CB}/kite_api/reset"), None, None).await;
    assert_eq!(code, 405);
    assert!(json(&body)["detail"].is_string());
    let (code, body) = request(
        "POST",
        format!("{base}{CB}/kite_api/explode"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("reset, force-open or disable"));
    let (code, _) = request("GET", format!("{base}/livez"), None, None).await;
    assert_eq!(code, 200, "still serving");
    seawall.shutdown().await;
}

const TOKEN: &str = "s3cret-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_fleet_health_when_engine_has_no_fleet_then_404_naming_the_table() {
    let (seawall, base) = start(None).await;
    let (code, body) = request("GET", format!("{base}/api/v1/fleet/health"), None, None).await;
    assert_eq!(code, 404, "{body}");
    let detail = json(&body)["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("[fleet]"), "{detail}");
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_when_reason_too_long_or_has_control_characters_then_400_json() {
    let (seawall, base) = start(Some(TOKEN)).await;
    let url = format!("{base}/api/v1/system/health/circuit-breakers/kite_api/force-open");
    let long: &'static str =
        Box::leak(format!("{{\"reason\": \"{}\"}}", "x".repeat(300)).into_boxed_str());
    let (code, body) = request("POST", url.clone(), Some(TOKEN), Some(long)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("detail") && body.contains("256"), "{body}");
    let (code, body) = request(
        "POST",
        url.clone(),
        Some(TOKEN),
        Some("{\"reason\": \"ok\\nFAKE AUDIT LINE\"}"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("control characters"), "{body}");
    let big: &'static str =
        Box::leak(format!("{{\"reason\": \"{}\"}}", "y".repeat(10_000)).into_boxed_str());
    let (code, body) = request("POST", url, Some(TOKEN), Some(big)).await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("detail"), "{body}");
    assert_eq!(
        seawall.breaker("kite_api").unwrap().state(),
        seawall::BreakerState::Closed
    );
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_when_wrong_tokens_repeat_then_client_throttled_with_429() {
    let (seawall, base) = start(Some(TOKEN)).await;
    let url = format!("{base}/api/v1/system/health/circuit-breakers/kite_api/reset");
    for _ in 0..5 {
        let (code, _) = request("POST", url.clone(), Some("wrong-token-wrong-token"), None).await;
        assert_eq!(code, 401);
    }
    let (code, body) = request("POST", url.clone(), Some(TOKEN), None).await;
    assert_eq!(code, 429, "throttled even with the right token: {body}");
    seawall.shutdown().await;
}

#[tokio::test]
async fn test_start_when_admin_token_short_or_remote_without_opt_in_then_error_names_the_fix() {
    let mut config = Config::seed_defaults();
    config.services.clear();
    config.runtime.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_remote_admin: false,
        ..HttpConfig::default()
    });
    let err = Seawall::builder(config.clone())
        .admin_token(Some("abc".into()))
        .start()
        .await
        .err()
        .expect("a 3-byte token is refused")
        .to_string();
    assert!(
        err.contains("SEAWALL_ADMIN_TOKEN") && err.contains("16"),
        "{err}"
    );
    config.runtime.http = Some(HttpConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        allow_remote_admin: false,
        ..HttpConfig::default()
    });
    let err = Seawall::builder(config.clone())
        .admin_token(Some(TOKEN.into()))
        .start()
        .await
        .err()
        .expect("plaintext admin beyond loopback needs an opt-in")
        .to_string();
    assert!(err.contains("runtime.http.allow_remote_admin"), "{err}");
    config.runtime.http = Some(HttpConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        allow_remote_admin: true,
        ..HttpConfig::default()
    });
    let seawall = Seawall::builder(config)
        .admin_token(Some(TOKEN.into()))
        .start()
        .await
        .expect("with the opt-in it starts");
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_admin_when_path_is_not_utf8_then_json_400() {
    use std::io::{Read, Write};
    let (seawall, base) = start(Some(TOKEN)).await;
    let addr = base.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"POST /api/v1/system/health/circuit-breakers/%FF%FE/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"detail\""), "a JSON error: {answer}");
    seawall.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_start_when_http_port_taken_by_another_engine_then_error_names_the_key_and_nothing_keeps_running(
) {
    let (first, base) = start(None).await;
    let taken: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    // A second engine on the same host with the same `listen` (a second
    // run, or a unit started twice).
    let mut config = Config::seed_defaults();
    config.runtime.http = Some(HttpConfig {
        listen: taken,
        allow_remote_admin: false,
        ..HttpConfig::default()
    });
    config.runtime.auto_recovery_enabled = false;
    let builder = Seawall::builder(config.clone()).system_sampler(support::calm_machine());
    let (builder, probes) = support::register_all(builder, &config);
    let err = builder
        .start()
        .await
        .err()
        .expect("the port is taken")
        .to_string();
    assert!(
        err.contains("runtime.http.listen") && err.contains(&taken.to_string()),
        "{err}"
    );
    assert!(err.contains("pick a free port"), "the fix: {err}");
    // The half-started tree was stopped before start returned: every
    // service value it built is gone (only the test's own count is left).
    for (name, probe) in &probes {
        assert!(
            probe.started.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "{name} ran"
        );
        assert_eq!(
            std::sync::Arc::strong_count(probe),
            1,
            "{name}'s service actors still run after the failed start"
        );
    }
    // The first engine keeps its port and serves.
    let (code, _) = request("GET", format!("{base}/livez"), None, None).await;
    assert_eq!(code, 200);
    first.shutdown().await;
}
