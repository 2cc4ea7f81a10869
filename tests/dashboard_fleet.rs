//! The dashboard's fleet strip in a real browser, for an engine in a fleet.
//!
//! Its own test binary: the fleet cookie is read from the process's
//! environment, which no other test here may see changed.
#![cfg(feature = "fleet")]

mod browser;
mod support;

use browser::{browser_available, open_dashboard, poll, FLEET_STRIP};
use seawall::config::Config;
use seawall::Seawall;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dashboard_when_engine_in_a_fleet_then_strip_shows_its_node_and_shared_breaker_live() {
    if !browser_available("test_dashboard_fleet") {
        return;
    }
    // The only test in this binary: the environment is its own.
    std::env::set_var("SEAWALL_FLEET_COOKIE", "a-cookie-for-the-strip-test");
    let text = include_str!("../actors.toml")
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replacen(
            "[services.kite_api]",
            "[services.kite_api]\nshared = \"kite:ACC\"",
            1,
        );
    let text =
        format!("{text}\n[fleet]\nnode = \"solo\"\nlisten = \"127.0.0.1:0\"\nexpected_nodes = 1\n");
    let config = Config::from_toml_with_env(&text, "actors.toml", |_| None).expect("valid");
    let (builder, _probes) = support::register_all(Seawall::builder(config.clone()), &config);
    let seawall = builder.start().await.expect("the tree starts");
    let addr = seawall.http_addr().expect("serving");

    let (_driver, client) = open_dashboard(addr).await;
    let (ok, strip) = poll(&client, FLEET_STRIP, Duration::from_secs(10), |s| {
        s.contains("solo · score")
            && s.contains("this node")
            && s.contains("kite_api (kite:ACC): solo CLOSED")
    })
    .await;
    assert!(
        ok,
        "the strip shows this node and its shared breaker: {strip:?}"
    );
    assert!(strip.contains("as seen from solo"), "{strip:?}");

    // The strip follows the breaker within its 1 s poll, without a reload.
    seawall
        .control("kite_api")
        .unwrap()
        .force_open("the strip test");
    let (ok, strip) = poll(&client, FLEET_STRIP, Duration::from_secs(3), |s| {
        s.contains("kite_api (kite:ACC): solo FORCED OPEN")
    })
    .await;
    assert!(ok, "the strip shows the forced-open breaker: {strip:?}");

    client.close().await.unwrap();
    seawall.shutdown().await;
}
