//! The dashboard tests' browser: Debian's Chromium driven through
//! chromedriver (WebDriver), and the wait for what the page shows.
//!
//! Without Chromium a test prints why it was skipped and passes, so
//! `cargo test` works anywhere; `.ci/run` installs Chromium and sets
//! `SEAWALL_REQUIRE_BROWSER=1`, which turns a missing browser into a failure.

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's paths; `SEAWALL_CHROMIUM` and `SEAWALL_CHROMEDRIVER` override them.
pub fn chromium() -> String {
    std::env::var("SEAWALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

pub fn chromedriver() -> String {
    std::env::var("SEAWALL_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_string())
}

/// chromedriver, killed when the test ends (even by a panic), and the
/// browser profile it was given, removed then.
pub struct Driver(Child, Option<std::path::PathBuf>);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(profile) = self.1.take() {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// Why the browser test cannot run here, if it cannot.
pub fn missing_browser() -> Option<String> {
    [chromium(), chromedriver()]
        .into_iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} not found; install Debian's chromium and chromium-driver"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub async fn start_driver() -> (Driver, String) {
    let port = free_port();
    let child = Command::new(chromedriver())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child, None);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port} within 10 s");
}

pub async fn browser(driver: &mut Driver, url: &str) -> Client {
    // One profile per browser: two Chromiums on one profile would be one
    // browser (the second hands its window to the first), and the tests of
    // one binary run in parallel.
    static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("seawall-chromium-{}-{n}", std::process::id()));
    driver.1 = Some(profile.clone());
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium(),
            // Headless as root in a container, with no network beyond loopback:
            // background networking would only hammer the closed network.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(url)
        .await
        .expect("a Chromium session through chromedriver")
}

/// The text the page shows for `script`'s result, polled until `want`
/// holds or `within` passes; the last text either way.
pub async fn poll(
    client: &Client,
    script: &str,
    within: Duration,
    want: impl Fn(&str) -> bool,
) -> (bool, String) {
    let deadline = Instant::now() + within;
    loop {
        let value = client.execute(script, vec![]).await.expect("script runs");
        let text = value.as_str().unwrap_or_default().to_string();
        if want(&text) {
            return (true, text);
        }
        if Instant::now() >= deadline {
            return (false, text);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A browser on the dashboard served at `addr`, and its chromedriver
/// (keep it alive as long as the browser).
pub async fn open_dashboard(addr: std::net::SocketAddr) -> (Driver, Client) {
    let (mut driver, url) = start_driver().await;
    let client = browser(&mut driver, &url).await;
    client
        .goto(&format!("http://{addr}/"))
        .await
        .expect("the page loads");
    (driver, client)
}

/// The dashboard's fleet strip as text: its status line, its node tiles,
/// its dependencies, joined by ` | `; `hidden` while the strip is off.
pub const FLEET_STRIP: &str = "const f = document.getElementById('fleet'); \
     if (!f.classList.contains('on')) return 'hidden'; \
     return [f.querySelector('#fleet-status').textContent, \
             f.querySelector('#fleet-nodes').textContent, \
             f.querySelector('#fleet-deps').textContent].join(' | ');";

/// Whether the browser test can run; when it cannot, says why on stderr
/// (or panics under `SEAWALL_REQUIRE_BROWSER=1`).
pub fn browser_available(test: &str) -> bool {
    let Some(why) = missing_browser() else {
        return true;
    };
    if std::env::var("SEAWALL_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("SEAWALL_REQUIRE_BROWSER=1 but the browser test cannot run: {why}");
    }
    // Written to stderr directly: the test harness captures `eprintln!`
    // of a passing test, and this must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{test} skipped: {why} (set SEAWALL_REQUIRE_BROWSER=1 to fail instead)"
    );
    false
}
