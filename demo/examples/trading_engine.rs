//! The demo trading engine, as an example: four simulated dependencies
//! (a Kite broker, a SQLite trade store, AI agents, a market-data feed)
//! behind seawall, a strategy loop, and a scenario of outages in compressed
//! time. It is the same engine the `seawall` binary runs by default.
//!
//! ```text
//! cargo run --example trading_engine            # 30 s of the default scenario
//! cargo run --example trading_engine -- 60s calm
//! ```

use seawall::config::Config;
use seawall_demo::{run, DemoOptions};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let duration = match args.next() {
        Some(d) => humantime::parse_duration(&d)?,
        None => Duration::from_secs(30),
    };
    let scenario = args.next().unwrap_or_else(|| "default".to_string());
    let mut config = Config::load("actors.toml")?;
    config.runtime.http = None;
    let summary = run(DemoOptions {
        config,
        duration: Some(duration),
        scenario,
        db_path: std::env::temp_dir().join("seawall-example.db"),
        compress: true,
        status_line: true,
        admin_token: None,
        seed: 7,
        plant: None,
        stop: Default::default(),
        config_file: None,
    })
    .await?;
    println!("{}", summary.render());
    Ok(())
}
