//! Property test of the HTTP router on a live loopback server: random
//! methods, paths (percent-encoded bytes included), headers and bodies. No
//! panic, no 5xx outside the documented health codes, and every error the
//! app shapes is JSON `{"detail": …}`.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use seawall::config::{Config, HttpConfig};
use seawall::Seawall;
use std::io::{Read, Write};

const TOKEN: &str = "s3cret-token-0123456789abcdef";

const SEGMENTS: &[&str] = &[
    "api",
    "v1",
    "system",
    "health",
    "comprehensive",
    "circuit-breakers",
    "kite_api",
    "database",
    "reset",
    "force-open",
    "disable",
    "livez",
    "readyz",
    "metrics",
    "..",
    "%FF",
    "%00",
    "%2F",
    "x%20y",
    "",
    "ghost",
];

fn request() -> impl Strategy<Value = (String, String, Option<String>, Vec<u8>)> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let path = prop::collection::vec(prop::sample::select(SEGMENTS.to_vec()), 0..7)
        .prop_map(|parts| format!("/{}", parts.join("/")));
    let auth = prop_oneof![
        Just(None),
        Just(Some(TOKEN.to_string())),
        "[a-zA-Z0-9]{0,40}".prop_map(Some),
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        Just(b"{\"reason\": \"maintenance\"}".to_vec()),
        Just(b"{\"reason\": 7}".to_vec()),
        Just(b"{not json".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6000),
    ];
    (method.prop_map(str::to_string), path, auth, body)
}

fn send(addr: &str, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_router_when_random_requests_then_no_panic_no_stray_5xx_and_json_errors() {
    let mut config = Config::seed_defaults();
    config.runtime.http = Some(HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..HttpConfig::default()
    });
    let builder = Seawall::builder(config.clone())
        .admin_token(Some(TOKEN.to_string()))
        .system_sampler(support::calm_machine());
    let (builder, _) = support::register_all(builder, &config);
    let seawall = builder.start().await.unwrap();
    let addr = seawall.http_addr().unwrap().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600);
        let mut runner = TestRunner::new(RunnerConfig {
            cases,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let result = runner.run(&request(), |(method, path, auth, body)| {
            let (code, text) = send(&addr, &method, &path, auth.as_deref(), &body);
            prop_assert!(code != 0, "no answer to {method} {path}");
            let documented_503 =
                code == 503 && (path == "/readyz" || path == "/api/v1/system/health/comprehensive");
            prop_assert!(
                code < 500 || documented_503,
                "{code} for {method} {path}\n{text}"
            );
            if code >= 400 && !documented_503 {
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
                let json: Result<serde_json::Value, _> = serde_json::from_str(body);
                prop_assert!(
                    json.as_ref().is_ok_and(|j| j.get("detail").is_some()),
                    "{code} for {method} {path} is not JSON {{detail}}:\n{text}"
                );
            }
            Ok(())
        });
        let (alive, _) = send(&addr, "GET", "/livez", None, b"");
        (result.map_err(|e| e.to_string()), alive)
    })
    .await
    .unwrap();
    let (result, alive) = outcome;
    assert_eq!(alive, 200, "still alive after the run");
    if let Err(failure) = result {
        panic!("{failure}");
    }
    seawall.shutdown().await;
}
