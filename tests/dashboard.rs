//! The dashboard in a real browser: Debian's Chromium driven through
//! chromedriver (WebDriver) against a running tree with the shipped
//! `actors.toml`.
//!
//! Without Chromium the test prints why it was skipped and passes, so
//! `cargo test` works anywhere; `.ci/run` installs Chromium and sets
//! `SEAWALL_REQUIRE_BROWSER=1`, which turns a missing browser into a failure.
//! Set `SEAWALL_SCREENSHOT=path.png` to keep the screenshot somewhere else
//! than `target/dashboard.png`.

mod browser;
mod support;

use browser::{browser_available, open_dashboard, poll};
use fantoccini::Locator;
use seawall::config::Config;
use seawall::{BreakerState, Seawall};
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "dashboard-test-token-0123456789";

const KITE_STATE: &str =
    "const t = document.querySelector('[data-service=\"kite_api\"] .state'); return t ? t.textContent : '';";
const TRADING: &str = "return document.getElementById('trading-mode').textContent;";
/// Whether the page has had its answer from the fleet route, and whether
/// the fleet strip shows.
const FLEET_ASKED: &str = "const asked = performance.getEntriesByName(location.origin + '/api/v1/fleet/health').length > 0; \
     if (!asked) return 'waiting'; \
     return document.getElementById('fleet').classList.contains('on') ? 'asked, shown' : 'asked, hidden';";

fn screenshot_path() -> PathBuf {
    std::env::var_os("SEAWALL_SCREENSHOT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png"),
        PathBuf::from,
    )
}

/// The shipped `actors.toml` on an ephemeral port, with `admin_token`.
async fn start_shipped(admin_token: Option<&str>) -> Seawall {
    let text = include_str!("../actors.toml").replace("127.0.0.1:8080", "127.0.0.1:0");
    let config = Config::from_toml_with_env(&text, "actors.toml", |_| None).expect("valid");
    let (builder, _probes) = support::register_all(Seawall::builder(config.clone()), &config);
    builder
        .admin_token(admin_token.map(str::to_string))
        .start()
        .await
        .expect("the tree starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dashboard_when_kite_forced_open_then_tile_and_banner_follow_live_without_reload() {
    if !browser_available("test_dashboard") {
        return;
    }
    let seawall = start_shipped(Some(TOKEN)).await;
    let addr = seawall.http_addr().expect("serving");
    let kite = seawall.control("kite_api").unwrap();

    let (_driver, client) = open_dashboard(addr).await;
    let (ok, state) = poll(&client, KITE_STATE, Duration::from_secs(10), |s| {
        s == "CLOSED"
    })
    .await;
    assert!(
        ok,
        "the kite_api tile shows CLOSED from the stream, got {state:?}"
    );
    let (ok, mode) = poll(&client, TRADING, Duration::from_secs(5), |s| s == "Active").await;
    assert!(ok, "the banner says Active, got {mode:?}");
    // Not in a fleet: once the page has heard the fleet route's 404, the
    // fleet strip stays hidden (tests/dashboard_fleet.rs shows it shown).
    let (ok, fleet) = poll(&client, FLEET_ASKED, Duration::from_secs(5), |s| {
        s.starts_with("asked")
    })
    .await;
    assert_eq!((ok, fleet.as_str()), (true, "asked, hidden"));

    // The operator types the token once, then clicks force-open on the tile.
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css(
            "[data-service=\"kite_api\"] button[data-action=\"force-open\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let (ok, state) = poll(&client, KITE_STATE, Duration::from_secs(2), |s| {
        s.contains("OPEN")
    })
    .await;
    assert!(
        ok,
        "within 2 s and without a reload the tile says open, got {state:?}"
    );
    assert_eq!(
        kite.state(),
        BreakerState::ForcedOpen,
        "the click reached the breaker"
    );
    let (ok, mode) = poll(&client, TRADING, Duration::from_secs(2), |s| s == "Halted").await;
    assert!(ok, "within 2 s the banner says Halted, got {mode:?}");
    let logged: String = client
        .execute("return document.getElementById('log').textContent;", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        logged.contains("admin forced open kite_api"),
        "the admin action is in the live log: {logged}"
    );
    let stored = client
        .execute("return sessionStorage.getItem('seawall-token');", vec![])
        .await
        .unwrap();
    assert_eq!(
        stored.as_str(),
        Some(TOKEN),
        "the token is kept in session storage"
    );
    assert!(
        !client.current_url().await.unwrap().as_str().contains(TOKEN),
        "never in the URL"
    );

    let png = client.screenshot().await.expect("a screenshot");
    let path = screenshot_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&path, &png).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG was saved to {}",
        path.display()
    );

    let reset = "/api/v1/system/health/circuit-breakers/kite_api/reset";
    assert_eq!(support::post(addr, reset, Some(TOKEN)).await.0, 200);
    let (ok, state) = poll(&client, KITE_STATE, Duration::from_secs(2), |s| {
        s == "CLOSED"
    })
    .await;
    assert!(ok, "after the reset the tile comes back, got {state:?}");
    let (ok, mode) = poll(&client, TRADING, Duration::from_secs(2), |s| s == "Active").await;
    assert!(ok, "after the reset the banner comes back, got {mode:?}");

    client.close().await.unwrap();
    seawall.shutdown().await;
}

/// `live`, or `stale: ` and what the page says over its figures.
const STALENESS: &str = "return document.body.classList.contains('stale') \
     ? 'stale: ' + document.getElementById('stale').textContent : 'live';";
const BANNER_OPACITY: &str = "return getComputedStyle(document.getElementById('banner')).opacity;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_dashboard_when_engine_stops_answering_then_page_says_so_over_its_last_figures() {
    if !browser_available("test_dashboard_staleness") {
        return;
    }
    let seawall = start_shipped(None).await;
    let addr = seawall.http_addr().expect("serving");
    let (_driver, client) = open_dashboard(addr).await;
    let (ok, state) = poll(&client, KITE_STATE, Duration::from_secs(10), |s| {
        s == "CLOSED"
    })
    .await;
    assert!(ok, "the page is live first: {state:?}");
    let (_, live) = poll(&client, STALENESS, Duration::ZERO, |_| true).await;
    assert_eq!(live, "live");

    // A stream that stops without an error (a stopped process, a hung
    // proxy): no snapshot for 3.5 s, and the page says it is not live.
    client.execute("stream.close();", vec![]).await.unwrap();
    let (ok, stale) = poll(&client, STALENESS, Duration::from_secs(6), |s| {
        s.starts_with("stale")
    })
    .await;
    assert!(ok, "a silent stream is noticed: {stale:?}");
    assert!(
        stale.contains("Engine unreachable (no update for over 3.5 s)")
            && stale.contains("nothing below is live")
            && stale.contains("s ago"),
        "{stale:?}"
    );
    let (_, opacity) = poll(&client, BANNER_OPACITY, Duration::ZERO, |_| true).await;
    assert_eq!(opacity, "0.45", "the last known banner is dimmed");

    // A fresh page is live again.
    client.refresh().await.unwrap();
    let (ok, live) = poll(&client, STALENESS, Duration::from_secs(5), |s| s == "live").await;
    assert!(ok, "live again after a reload: {live:?}");
    let (ok, mode) = poll(&client, TRADING, Duration::from_secs(5), |s| s == "Active").await;
    assert!(ok, "{mode:?}");

    // The engine goes away: the banner's green "Active" is covered at once.
    seawall.shutdown().await;
    let (ok, stale) = poll(&client, STALENESS, Duration::from_secs(3), |s| {
        s.starts_with("stale")
    })
    .await;
    assert!(ok, "a closed connection is noticed: {stale:?}");
    assert!(
        stale.contains("Engine unreachable (connection lost)"),
        "{stale:?}"
    );
    client.close().await.unwrap();
}
